package tui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
)

// msgKindShort names message kinds in one short word.
func msgKindShort(k registry.MessageKind) string {
	switch k {
	case registry.MessageBroadcast:
		return "broadcast"
	case registry.MessagePostgresChanges:
		return "db change"
	case registry.MessageSystem:
		return "system"
	case registry.MessagePresenceState:
		return "pres state"
	case registry.MessagePresenceDiff:
		return "pres diff"
	case registry.MessagePresence:
		return "presence"
	}
	return string(k)
}

func dirArrow(d registry.Direction) string {
	if d == registry.Out {
		return "→"
	}
	return "←"
}

// msgText returns a message's plain text for filtering.
func msgText(e *msgEntry) string {
	return string(e.ev.Kind) + " " + e.ev.Event + " " + string(e.ev.Payload) + e.ev.Preview
}

// msgMatches reports whether a message passes the messages filter.
func (m *Model) msgMatches(e *msgEntry) bool {
	return !m.msgFilter.active() || m.msgFilter.match(msgText(e))
}

// msgListHeight returns the rows of the messages list and of the detail.
func (m *Model) msgListHeight() (list, detail int) {
	h := m.lay.main.h - 3 // borders and tabs
	if h <= 4 {
		return max(1, h), 0
	}
	list = h * 45 / 100
	list = max(3, list)
	return list, h - list
}

// msgMove moves the message selection by delta matching messages.
func (m *Model) msgMove(delta int) {
	d, ok := m.chData[m.chans.sel]
	if !ok {
		return
	}
	d.cur.step(d.msgs.Len(), d.msgs.Index, func(i int) uint64 { return d.msgs.Ptr(i).seq }, delta,
		func(j int) bool { return m.msgMatches(d.msgs.Ptr(j)) })
	m.cache.main.valid = false
}

// msgEdge selects the first (top) or the newest message.
func (m *Model) msgEdge(top bool) {
	d, ok := m.chData[m.chans.sel]
	if !ok || d.msgs.Len() == 0 {
		return
	}
	if top {
		d.cur = cursor{seq: d.msgs.At(0).seq}
		m.msgMove(1)
		m.msgMove(-1)
		return
	}
	d.cur = cursor{seq: d.msgs.Seq(), follow: true}
	m.cache.main.valid = false
}

// msgRow renders a message of the selected channel as a row of width w
// (cached while on screen).
func (m *Model) msgRow(e *msgEntry, w int, narrow bool) string {
	if s, ok := m.msgRows.get(e.seq, w, m.chans.sel); ok {
		return s
	}
	l := newLine(w)
	if narrow {
		l.add(m.st.Subtle, e.ev.Time.Format("15:04:05")).plain(" ")
	} else {
		l.add(m.st.Subtle, e.ev.Time.Format("15:04:05.000")).plain(" ")
	}
	dp := m.st.Info
	if e.ev.Direction == registry.Out {
		dp = m.st.Highlight
	}
	l.add(dp, dirArrow(e.ev.Direction)).plain(" ")
	l.add(m.st.Muted, fitText(msgKindShort(e.ev.Kind), 10)).plain(" ")
	ev := e.ev.Event
	if e.ev.Queued {
		ev += " (queued)"
	}
	if ev != "" {
		ew := 12
		if narrow {
			ew = 8
		}
		l.add(m.st.Primary, fitText(sanitize(ev), ew)).plain(" ")
	}
	switch {
	case len(e.ev.Binary) > 0 && e.ev.Truncated:
		l.add(m.st.Muted, fmt.Sprintf("<%s binary, truncated>", sizeText(e.ev.Size)))
	case len(e.ev.Binary) > 0:
		l.add(m.st.Muted, fmt.Sprintf("<%d bytes binary>", len(e.ev.Binary)))
	case e.ev.Truncated:
		// A cut payload: the size first (the row is cut to the width),
		// then the start of its text.
		l.add(m.st.Warn, "["+sizeText(e.ev.Size)+", truncated] ").add(m.st.Text, sanitize(e.ev.Preview[:min(len(e.ev.Preview), 4*w)]))
	case e.ev.Kind == registry.MessagePostgresChanges:
		if where, rec, ok := changeRow(e.ev.Payload); ok {
			l.add(m.st.Muted, where+" ").add(m.st.Text, rec)
			break
		}
		l.add(m.st.Text, compactJSON(e.ev.Payload))
	default:
		l.add(m.st.Text, compactJSON(e.ev.Payload))
	}
	row := l.done()
	m.msgRows.put(e.seq, row)
	return row
}

// viewMain renders the main pane: tabs and the selected tab.
func (m *Model) viewMain() *framed {
	r := m.lay.main
	inner, h := r.w-2, r.h-2
	lines := make([]string, 0, h)
	lines = append(lines, m.tabsLine(inner))
	body := h - 1
	c, ok := m.selected()
	var content []string
	switch {
	case !ok:
		content = []string{newLine(inner).add(m.st.Muted, "no channel selected — join one with :join presence contact:123").done()}
	case m.tab == tabMessages:
		content = m.viewMessages(c, inner, body)
	case m.tab == tabPresence:
		content = m.scrolled(m.viewPresence(c, inner, body), body)
	case m.tab == tabRetries:
		content = m.scrolled(m.viewRetries(c, inner, body), body)
	case m.tab == tabInfo:
		content = m.scrolled(m.viewInfo(c, inner, body), body)
	}
	lines = append(lines, content...)
	title := "no channel"
	if ok {
		title = c.Name.String() + " · " + chanStatus(&c)
	}
	return box(m.st, r.w, r.h, title, "", m.focus == focusMain, lines)
}

// scrolled applies the main pane's scroll offset to lines.
func (m *Model) scrolled(lines []string, h int) []string {
	if int(m.mainScroll) > 0 && len(lines) > h {
		off := min(int(m.mainScroll), len(lines)-h)
		lines = lines[off:]
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return lines
}

// tabsLine renders "1 Messages  2 Presence  3 Retries  4 Info".
func (m *Model) tabsLine(w int) string {
	l := newLine(w)
	// Full labels with separators, then without, then short names, so
	// all four fit a narrow pane.
	names := [numTabs]string{"Messages", "Presence", "Retries", "Info"}
	sep := "│"
	full := 0
	for _, n := range names {
		full += len(n) + 4
	}
	if full+int(numTabs)-1 > w {
		sep = ""
		if full > w {
			names = [numTabs]string{"Msgs", "Pres", "Retries", "Info"}
		}
	}
	for t := tab(0); t < numTabs; t++ {
		label := fmt.Sprintf(" %d %s ", t+1, names[t])
		if t == m.tab {
			l.add(m.st.Pane.TabActive, label)
		} else {
			l.add(m.st.Pane.Tab, label)
		}
		if t < numTabs-1 && sep != "" {
			l.add(m.st.Subtle, sep)
		}
	}
	if m.tab == tabMessages && m.msgFilter.active() {
		l.add(m.st.Muted, "  /"+m.msgFilter.text)
	}
	if m.tab == tabPresence && m.presenceRaw {
		l.add(m.st.Muted, "  raw frames")
	}
	return l.done()
}

// viewMessages renders the message list and the selected message.
func (m *Model) viewMessages(c registry.ChannelInfo, w, h int) []string {
	d, ok := m.chData[c.Name]
	if !ok || d.msgs.Len() == 0 {
		hint := "no messages yet"
		switch c.Name.Kind {
		case registry.KindBroadcast:
			hint += " — b sends a broadcast"
		case registry.KindPresence:
			hint += " — p tracks a presence"
		}
		return []string{newLine(w).add(m.st.Muted, hint).done()}
	}
	listH, detailH := m.msgListHeight()
	if listH+detailH > h {
		listH, detailH = h, 0
	}
	n := d.msgs.Len()
	if n < listH && detailH > 0 {
		// Few messages: give the room to the selected one.
		detailH += listH - max(1, n)
		listH = max(1, n)
	}
	sel := d.cur.index(n, d.msgs.Index)
	if d.cur.follow {
		for sel > 0 && !m.msgMatches(d.msgs.Ptr(sel)) {
			sel--
		}
	}
	// The window: the selected row and the rows before it, or after it
	// when it is near the top.
	var rows []int
	for i := sel; i >= 0 && len(rows) < listH; i-- {
		if m.msgMatches(d.msgs.Ptr(i)) {
			rows = append(rows, i)
		}
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	for i := sel + 1; i < n && len(rows) < listH; i++ {
		if m.msgMatches(d.msgs.Ptr(i)) {
			rows = append(rows, i)
		}
	}
	out := make([]string, 0, h)
	focused := m.focus == focusMain
	for _, i := range rows {
		e := d.msgs.Ptr(i)
		if i == sel {
			p := m.st.Table.SelectedBlur
			if focused {
				p = m.st.Table.Selected
			}
			plain := ansiStrip(m.msgRow(e, w, m.lay.narrow))
			out = append(out, p.Render(fitText(plain, w)))
			continue
		}
		out = append(out, m.msgRow(e, w, m.lay.narrow))
	}
	m.msgRows.flip()
	if len(rows) == 0 {
		out = append(out, newLine(w).add(m.st.Muted, "no message matches the filter").done())
	}
	for len(out) < listH {
		out = append(out, blank(w))
	}
	if detailH < 2 || len(rows) == 0 {
		return out
	}
	e := d.msgs.Ptr(sel)
	size := fmt.Sprintf("%d B", e.ev.Size)
	if e.ev.Truncated {
		size = fmt.Sprintf("%s, truncated to %s", sizeText(e.ev.Size), sizeText(len(e.ev.Preview)+len(e.ev.Binary)))
	}
	head := fmt.Sprintf("─ %s %s · %s · %s · %s ", msgKindShort(e.ev.Kind), sanitize(e.ev.Event), e.ev.Direction,
		size, e.ev.Time.Format("15:04:05.000"))
	out = append(out, newLine(w).add(m.st.Subtle, head+strings.Repeat("─", max(0, w-textWidth(head)))).done())
	var body []string
	switch {
	case e.ev.Truncated && len(e.ev.Binary) == 0:
		// Not JSON any more: its text, wrapped, as far as the pane goes.
		text := e.ev.Preview[:min(len(e.ev.Preview), detailH*w*4)]
		for _, l := range strings.Split(ansiHardwrap(sanitize(text), max(1, w)), "\n") {
			body = append(body, newLine(w).add(m.st.Text, l).done())
		}
	case len(e.ev.Binary) > 0:
		body = hexDump(m, e.ev.Binary, w)
	case e.ev.Kind == registry.MessagePostgresChanges:
		body = prettyJSON(m.st, changeDetail(e.ev.Payload), w)
	default:
		body = prettyJSON(m.st, e.ev.Payload, w)
	}
	room := detailH - 1
	if len(body) > room {
		more := len(body) - room + 1
		body = append(body[:room-1], newLine(w).add(m.st.Muted, fmt.Sprintf("… %d more lines (enter zooms)", more)).done())
	}
	out = append(out, body...)
	return out
}

// changeFields are the members of a postgres change's data that the UI
// reads.
type changeFields struct {
	Schema    string          `json:"schema"`
	Table     string          `json:"table"`
	Type      string          `json:"type"`
	Record    json.RawMessage `json:"record"`
	OldRecord json.RawMessage `json:"old_record"`
	Columns   []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"columns"`
}

// changeRow returns "schema.table" and the compact record of a postgres
// change (old_record for a DELETE), for its row in the messages list.
func changeRow(payload json.RawMessage) (where, rec string, ok bool) {
	var c changeFields
	if json.Unmarshal(payload, &c) != nil || c.Table == "" {
		return "", "", false
	}
	r := c.Record
	if len(r) == 0 || string(r) == "null" || string(r) == "{}" {
		r = c.OldRecord
	}
	return sanitize(c.Schema + "." + c.Table), compactJSON(r), true
}

// changeDetail reorders a postgres change for reading: the record and
// old_record first, then errors, type, schema, table and commit time, and
// the columns on one line ("id int8, name text"). The raw frame (Info)
// keeps the original.
func changeDetail(payload json.RawMessage) json.RawMessage {
	var members map[string]json.RawMessage
	var c changeFields
	if json.Unmarshal(payload, &members) != nil || json.Unmarshal(payload, &c) != nil {
		return payload
	}
	var b bytes.Buffer
	b.WriteByte('{')
	add := func(k string, v json.RawMessage) {
		if len(v) == 0 {
			return
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, k := range []string{"record", "old_record", "errors", "type", "schema", "table", "commit_timestamp"} {
		add(k, members[k])
		delete(members, k)
	}
	if len(c.Columns) > 0 {
		cols := make([]string, len(c.Columns))
		for i, col := range c.Columns {
			cols[i] = col.Name + " " + col.Type
		}
		v, _ := json.Marshal(strings.Join(cols, ", "))
		add("columns", v)
		delete(members, "columns")
	}
	rest := make([]string, 0, len(members))
	for k := range members {
		rest = append(rest, k)
	}
	slices.Sort(rest)
	for _, k := range rest {
		add(k, members[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// hexDump shows the first bytes of a binary payload, its secrets
// masked.
func hexDump(m *Model, b []byte, w int) []string {
	if t := registry.MaskText(string(b)); t != string(b) {
		b = []byte(t)
	}
	var out []string
	per := max(4, min(16, (w-10)/4))
	for off := 0; off < len(b) && len(out) < 16; off += per {
		end := min(off+per, len(b))
		var hx, as strings.Builder
		for _, c := range b[off:end] {
			fmt.Fprintf(&hx, "%02x ", c)
			if c >= 0x20 && c < 0x7f {
				as.WriteByte(c)
			} else {
				as.WriteByte('.')
			}
		}
		out = append(out, newLine(w).add(m.st.Subtle, fmt.Sprintf("%06x ", off)).add(m.st.Text, fitText(hx.String(), per*3)).add(m.st.Muted, as.String()).done())
	}
	return out
}

// viewPresence renders the viewers, the join/leave feed, or the raw
// presence frames.
func (m *Model) viewPresence(c registry.ChannelInfo, w, h int) []string {
	d := m.chData[c.Name]
	if m.presenceRaw {
		out := []string{newLine(w).add(m.st.Table.Header, "RAW PRESENCE FRAMES (presence_state / presence_diff) — v: viewers").done()}
		if d == nil || d.raw.Len() == 0 {
			return append(out, newLine(w).add(m.st.Muted, "none received yet").done())
		}
		// Newest last: collect frames from the newest until the pane is
		// full, each as a header and its payload wrapped.
		var blocks [][]string
		room := h - 1 + int(m.mainScroll)
		for i := d.raw.Len() - 1; i >= 0 && room > 0; i-- {
			e := d.raw.At(i)
			block := []string{newLine(w).add(m.st.Subtle, e.time.Format("15:04:05.000")).plain(" ").add(m.st.Primary, e.event).done()}
			for _, l := range strings.Split(ansiHardwrap(framePayload(e.text), max(1, w-2)), "\n") {
				block = append(block, newLine(w).plain("  ").add(m.st.Text, l).done())
			}
			blocks = append(blocks, block)
			room -= len(block)
		}
		for i := len(blocks) - 1; i >= 0; i-- {
			out = append(out, blocks[i]...)
		}
		if len(out) > h+int(m.mainScroll) {
			out = append(out[:1], out[len(out)-h+1:]...)
		}
		return out
	}
	users := m.state.Presence[c.Name]
	var out []string
	if c.Name.Kind != registry.KindPresence && len(users) == 0 {
		return []string{newLine(w).add(m.st.Muted, "not a presence channel — :join presence <type>:<id> to see viewers").done()}
	}
	tracked := ""
	if c.Tracked {
		tracked = " · you are tracked as " + sanitize(c.TrackedAs)
	}
	// The truncation first: at a narrow width it is what must show.
	out = append(out, newLine(w).add(m.st.Table.Header, fmt.Sprintf("VIEWERS %d", len(users))).
		add(m.st.Warn, truncatedMarker(c.PresenceTruncated)).add(m.st.Table.Header, tracked).done())
	idW := max(8, min(24, w/3))
	nameW := max(6, min(20, w/4))
	out = append(out, newLine(w).add(m.st.Muted, fitText("USER ID", idW)+" "+fitText("NAME", nameW)+" "+fitText("ONLINE", 8)+" METAS").done())
	maxUsers := max(1, h/2-2)
	narrowYou := idW+nameW+8+5+3+7 > w
	if i := slices.IndexFunc(users, func(u registry.PresenceUser) bool { return u.Self }); i > 0 {
		// You first: never hidden behind "… N more".
		users = append(append([]registry.PresenceUser{users[i]}, users[:i]...), users[i+1:]...)
	}
	for i, u := range users {
		if i == maxUsers && len(users) > maxUsers {
			out = append(out, newLine(w).add(m.st.Muted, fmt.Sprintf("… %d more", len(users)-maxUsers)).done())
			break
		}
		l := newLine(w)
		p := m.st.Text
		if u.Self {
			p = m.st.Highlight
		}
		l.add(p, fitText(sanitize(u.UserID), idW)).plain(" ")
		if u.Self && narrowYou {
			// No room for the marker at the end: it goes with the name.
			l.add(m.st.Highlight, fitText(truncText(sanitize(u.Name), max(1, nameW-6))+" (you)", nameW)).plain(" ")
		} else {
			l.add(m.st.Text, fitText(sanitize(u.Name), nameW)).plain(" ")
		}
		since := "-"
		if !u.OnlineSince.IsZero() {
			since = fmtAge(m.now.Sub(u.OnlineSince))
		}
		l.add(m.st.Muted, fitText(since, 8)).plain(" ")
		l.add(m.st.Text, fitRight(strconv.Itoa(u.Metas), 5))
		if u.Self && !narrowYou {
			l.add(m.st.Highlight, "  (you)")
		}
		out = append(out, l.done())
	}
	if len(users) == 0 {
		out = append(out, newLine(w).add(m.st.Muted, "nobody is present — p tracks you").done())
	}
	out = append(out, newLine(w).add(m.st.Table.Header, "JOIN / LEAVE").add(m.st.Muted, "  (v: raw frames)").done())
	room := h - len(out)
	if d == nil || d.feed.Len() == 0 {
		return append(out, newLine(w).add(m.st.Muted, "no joins or leaves yet").done())
	}
	// Newest last. A join of a user who is already present (a second
	// connection, or a re-track: Phoenix sends the new meta as a join and
	// the old one as a leave) reads as an update; the leave of a meta
	// that leaves others behind is not a departure. The raw frames (v)
	// show every message.
	var rows []string
	for i := d.feed.Len() - 1; i >= 0 && len(rows) < room; i-- {
		e := d.feed.At(i)
		if e.Action == registry.PresenceLeave && e.User.Metas > 0 {
			continue
		}
		l := newLine(w)
		l.add(m.st.Subtle, e.Time.Format("15:04:05")).plain(" ")
		switch {
		case e.Action == registry.PresenceJoin && e.User.Metas > 1:
			l.add(m.st.Info, "~ ").add(m.st.Text, sanitize(e.User.UserID)).add(m.st.Muted, " updated")
		case e.Action == registry.PresenceJoin:
			l.add(m.st.OK, "+ ").add(m.st.Text, sanitize(e.User.UserID)).add(m.st.Muted, " joined")
		default:
			l.add(m.st.Warn, "- ").add(m.st.Text, sanitize(e.User.UserID)).add(m.st.Muted, " left")
		}
		if e.User.Name != "" {
			l.add(m.st.Muted, " ("+sanitize(e.User.Name)+")")
		}
		l.add(m.st.Subtle, fmt.Sprintf(" · %d present", e.Count))
		rows = append(rows, l.done())
	}
	for i := len(rows) - 1; i >= 0; i-- {
		out = append(out, rows[i])
	}
	return out
}

// truncatedMarker tells that the presence shown is incomplete (the
// client's presence state reached its limits): how many users are not
// shown, else how many metas or early diffs were not kept ("" when
// complete).
func truncatedMarker(t *registry.PresenceTruncation) string {
	switch {
	case t == nil:
		return ""
	case t.Members > 0:
		return fmt.Sprintf(" · truncated: %d not shown", t.Members)
	case t.Metas > 0:
		return fmt.Sprintf(" · truncated: %d metas not kept", t.Metas)
	default:
		return fmt.Sprintf(" · truncated: %d diffs dropped", t.Diffs)
	}
}

// lastScheduled returns the newest scheduled retry of a scope (and
// channel), or nil.
func (m *Model) lastScheduled(scope registry.RetryScope, ch registry.Name) *registry.RetryEvent {
	for i := m.retries.Len() - 1; i >= 0; i-- {
		e := m.retries.Ptr(i)
		if e.Scope == scope && (scope == registry.ScopeSocket || e.Channel == ch) && e.Outcome == registry.RetryScheduled {
			return e
		}
	}
	return nil
}

// countdown renders "attempt 2/5 in 2.1s [████░░░░]" for the next
// attempt, scheduled by ev (nil when unknown).
func (m *Model) countdown(next time.Time, ev *registry.RetryEvent, w int) string {
	left := next.Sub(m.now)
	s := "next attempt in " + fmtCountdown(left)
	var total time.Duration
	if ev != nil {
		total = ev.Delay
		s = fmt.Sprintf("attempt %s in %s", attempts(ev.Attempt, ev.Max), fmtCountdown(left))
		if ev.Max == 0 && ev.Scope == registry.ScopeSocket {
			s = fmt.Sprintf("attempt %d in %s", ev.Attempt, fmtCountdown(left))
		}
	}
	if total <= 0 || w < len(s)+6 {
		return m.st.Warn.Render(s)
	}
	bw := min(20, w-len(s)-1)
	return m.st.Warn.Render(s) + " " + bar(m.st, float64(left)/float64(total), bw)
}

// viewRetries renders the policy, the countdowns and the attempt timeline.
func (m *Model) viewRetries(c registry.ChannelInfo, w, h int) []string {
	var out []string
	p := m.state.Policy
	pl := newLine(w).add(m.st.Muted, "policy ").add(m.st.Primary, sanitize(p.Spec))
	if p.Description != "" {
		pl.add(m.st.Muted, " · "+sanitize(p.Description))
	}
	if p.Breaker != nil {
		pl.add(m.st.Muted, " · breaker ").add(m.st.Warn, p.Breaker.State)
	}
	out = append(out, pl.done())

	// Channel line.
	cl := newLine(w).add(m.st.Muted, "channel ").add(m.st.StatusPaint(c.Status.String()), c.Status.String())
	cl.add(m.st.Muted, " · attempts ").add(m.st.Text, attempts(c.Attempts, c.MaxAttempts))
	if c.RetryReason != "" {
		cl.add(m.st.Muted, " · "+sanitize(c.RetryReason))
	}
	out = append(out, cl.done())
	switch {
	case !c.NextAttemptAt.IsZero() && c.NextAttemptAt.After(m.now):
		cd := m.countdown(c.NextAttemptAt, m.lastScheduled(registry.ScopeChannel, c.Name), w-2)
		out = append(out, newLine(w).plain("  ").raw(cd, min(w-2, textWidth(ansiStrip(cd)))).done())
	case c.Status == registry.StatusError:
		out = append(out, newLine(w).add(m.st.Error, "  retries exhausted — r retries now").done())
	}
	// Socket line.
	s := m.state.Socket
	sl := newLine(w).add(m.st.Muted, "socket  ").add(m.st.StatusPaint(socketStatusName(s.Status)), socketStatusName(s.Status))
	if s.Attempt > 0 {
		sl.add(m.st.Muted, fmt.Sprintf(" · attempt %d", s.Attempt))
	}
	if s.Reason != "" && s.Status != registry.SocketConnected {
		sl.add(m.st.Muted, " · "+sanitize(s.Reason))
	}
	out = append(out, sl.done())
	if !s.NextAttemptAt.IsZero() && s.NextAttemptAt.After(m.now) {
		cd := m.countdown(s.NextAttemptAt, m.lastScheduled(registry.ScopeSocket, registry.Name{}), w-2)
		out = append(out, newLine(w).plain("  ").raw(cd, min(w-2, textWidth(ansiStrip(cd)))).done())
	}
	// Timeline.
	hdr := fitRight("#", 3) + " " + fitText("TIME", 12) + " " + fitText("SCOPE", 7) + " " + fitRight("DELAY", 6) + " " + fitText("OUTCOME", 10) + " REASON / ERROR"
	out = append(out, newLine(w).add(m.st.Table.Header, hdr).done())
	room := h - len(out)
	var rows []*registry.RetryEvent
	for i := m.retries.Len() - 1; i >= 0 && len(rows) < room+int(m.mainScroll); i-- {
		e := m.retries.Ptr(i)
		if e.Scope == registry.ScopeSocket || e.Channel == c.Name {
			rows = append(rows, e)
		}
	}
	if len(rows) == 0 {
		return append(out, newLine(w).add(m.st.Muted, "no attempts yet — x opens the fault menu to provoke some").done())
	}
	for i := len(rows) - 1; i >= 0; i-- {
		e := rows[i]
		l := newLine(w)
		l.add(m.st.Text, fitRight(strconv.Itoa(e.Attempt), 3)).plain(" ")
		l.add(m.st.Subtle, e.Time.Format("15:04:05.000")).plain(" ")
		l.add(m.st.Muted, fitText(string(e.Scope), 7)).plain(" ")
		delay := ""
		if e.Delay > 0 {
			delay = fmtDur(e.Delay)
		}
		l.add(m.st.Text, fitRight(delay, 6)).plain(" ")
		l.add(outcomePaint(m, e.Outcome), fitText(string(e.Outcome), 10)).plain(" ")
		text := e.Reason
		if e.Err != "" {
			text = e.Err
		}
		l.add(m.st.Muted, sanitize(text))
		out = append(out, l.done())
	}
	return out
}

func outcomePaint(m *Model, o registry.RetryOutcome) themePaint {
	switch o {
	case registry.RetrySucceeded:
		return m.st.OK
	case registry.RetryFailed:
		return m.st.Warn
	case registry.RetryExhausted:
		return m.st.Error
	case registry.RetryScheduled, registry.RetryHeld:
		return m.st.Info
	}
	return m.st.Muted
}

func socketStatusName(s registry.SocketStatus) string {
	if s == 0 {
		return "idle"
	}
	return s.String()
}

// viewInfo renders the channel's configuration and its raw frames.
func (m *Model) viewInfo(c registry.ChannelInfo, w, h int) []string {
	var out []string
	kv := func(k string, parts ...any) {
		// The value wraps under itself (at most 4 rows), keeping each
		// part's paint.
		var segs []paintedText
		for i := 0; i+1 < len(parts); i += 2 {
			segs = append(segs, paintedText{parts[i].(themePaint), parts[i+1].(string)})
		}
		for i, row := range wrapPainted(segs, max(8, w-10), 4) {
			label := ""
			if i == 0 {
				label = k
			}
			l := newLine(w).add(m.st.Muted, fitText(label, 10))
			for _, sg := range row {
				l.add(sg.p, sg.s)
			}
			out = append(out, l.done())
		}
	}
	t := m.st.Text
	mu := m.st.Muted
	kv("Topic", t, c.Topic)
	reason := ""
	if c.Reason != "" {
		reason = " (" + sanitize(c.Reason) + ")"
	}
	kv("Status", m.st.StatusPaint(c.Status.String()), c.Status.String(), mu, reason)
	// Why no events? first, for subscription channels.
	if c.Name.Kind == registry.KindSubscription {
		switch {
		case c.Ready:
			kv("Ready", m.st.StatusPaint("ready"), "yes", mu, " — the server said \"Subscribed to PostgreSQL\" since the last join: changes flow")
		case changesRefused(&c):
			kv("Ready", m.st.StatusPaint("refused"), "no — "+sanitize(c.LastError))
			kv("Fix", m.st.Warn, changesHint(c.LastError))
		case c.Status == registry.StatusConnected:
			kv("Ready", m.st.Warn, "not yet", mu, " — waiting for the server's \"Subscribed to PostgreSQL\"; changes before it are missed")
		default:
			kv("Ready", mu, "no (not joined)")
		}
		if db := m.opts.Database; db.Detail != "" {
			p, detail := t, db.Detail
			if db.Missing {
				p = m.st.Warn
				if changesRefused(&c) && strings.Contains(c.LastError, "No database") {
					detail = db.Label + " (see Ready)"
				}
			}
			kv("Database", p, sanitize(detail))
		}
		doc := "not run — D checks why changes may not arrive"
		dp := mu
		if d, ok := m.chData[c.Name]; ok && d.doctor != nil {
			doc = d.doctor.summary()
			dp = m.st.OK
			if failed, _, errs := d.doctor.failed(); len(failed) > 0 || errs > 0 {
				dp = m.st.Error
			}
			if !d.doctor.running {
				doc += " at " + d.doctor.at.Format("15:04:05") + " (D shows it)"
			}
		}
		kv("Doctor", dp, doc)
	}
	joined := "never"
	if !c.JoinedAt.IsZero() {
		joined = c.JoinedAt.Format("15:04:05") + " (" + fmtAge(m.now.Sub(c.JoinedAt)) + " ago)"
	}
	kv("Join ref", t, orDash(c.JoinRef), mu, fmt.Sprintf(" · joins %d · joined %s", c.Joins, joined))
	kv("Created", t, c.CreatedAt.Format("15:04:05"), mu, fmt.Sprintf(" (%s ago) · refs %d · keep-alive %s", fmtAge(m.now.Sub(c.CreatedAt)), c.RefCount, yesNo(c.KeepAlive)))
	cfg := fmt.Sprintf("ack %s · self %s · presence %s · private %s", yesNo(c.Config.Ack), yesNo(c.Config.Self), yesNo(c.Config.Presence), yesNo(c.Config.Private))
	if c.Config.PresenceKey != "" {
		cfg += " · key " + sanitize(c.Config.PresenceKey)
	}
	kv("Config", t, cfg)
	var bs []string
	for _, b := range c.Bindings {
		s := b.Type
		if b.Event != "" {
			s += " " + b.Event
		}
		if b.Table != "" {
			s += " " + b.Schema + "." + b.Table
		}
		if b.Filter != "" {
			s += " [" + b.Filter + "]"
		}
		if b.ID != 0 {
			s += fmt.Sprintf(" #%d", b.ID)
		}
		s += fmt.Sprintf(" ×%d", b.Listeners)
		bs = append(bs, s)
	}
	kv("Bindings", t, orDash(sanitize(strings.Join(bs, " · "))))

	tok := m.state.Token
	if tok.Present {
		exp := "no expiry"
		if !tok.Expiry.IsZero() {
			exp = "expires in " + fmtCountdown(tok.Expiry.Sub(m.now))
			if !tok.Expiry.After(m.now) {
				exp = "EXPIRED"
			}
		}
		kv("Token", t, tok.Masked, mu, fmt.Sprintf(" · sub %s · role %s · %s", orDash(tok.Subject), orDash(tok.Role), exp))
	} else {
		kv("Token", mu, "none (API key only)")
	}
	if !c.TokenExpiry.IsZero() {
		kv("Join tok", t, "expires "+c.TokenExpiry.Format("15:04:05"), mu, " ("+fmtCountdown(c.TokenExpiry.Sub(m.now))+")")
	}
	if c.Tracked {
		kv("Tracked", m.st.Highlight, "as "+sanitize(c.TrackedAs))
	}
	kv("Messages", t, fmt.Sprintf("%d in · %d out", c.MessagesIn, c.MessagesOut), mu, fmt.Sprintf(" · queued %d · queue drops %d", c.Queued, c.QueueDropped))
	if c.LastError != "" {
		code := c.LastErrorCode
		if code != "" {
			code += ": "
		}
		kv("Last err", m.st.Error, sanitize(code+c.LastError), mu, " at "+c.LastErrorAt.Format("15:04:05"))
	}
	tg := m.state.Target
	where := tg.Serializer
	if tg.Embedded {
		where += " · embedded server"
	}
	target := tg.URL
	if u, err := url.QueryUnescape(target); err == nil {
		target = u // the masked key's "…" reads as itself
	}
	kv("Target", t, sanitize(target), mu, " · "+where)

	// Raw frames of this channel, oldest first.
	out = append(out, newLine(w).add(m.st.Table.Header, "RAW FRAMES").add(m.st.Muted, "  (→ out, ← in)").done())
	room := h - len(out) + int(m.mainScroll)
	var fr []*registry.FrameEvent
	for i := m.frames.Len() - 1; i >= 0 && len(fr) < room; i-- {
		f := m.frames.Ptr(i)
		if f.Channel == c.Name || f.Topic == c.Topic {
			fr = append(fr, f)
		}
	}
	if len(fr) == 0 {
		out = append(out, newLine(w).add(m.st.Muted, "no frames recorded for this channel").done())
	}
	for i := len(fr) - 1; i >= 0; i-- {
		f := fr[i]
		l := newLine(w)
		dp := m.st.Info
		if f.Direction == registry.Out {
			dp = m.st.Highlight
		}
		l.add(dp, dirArrow(f.Direction)).plain(" ")
		l.add(m.st.Subtle, f.Time.Format("15:04:05.000")).plain(" ")
		l.add(m.st.Primary, fitText(sanitize(f.Event), 12)).plain(" ")
		if frameCut(f) {
			l.add(m.st.Warn, "["+sizeText(f.Size)+", truncated] ")
		}
		if f.Text != "" {
			l.add(m.st.Text, sanitize(f.Text[:min(len(f.Text), 4*w)]))
		} else {
			l.add(m.st.Muted, fmt.Sprintf("<binary %d bytes>", f.Size))
		}
		out = append(out, l.done())
	}
	return out
}

// paintedText is a piece of text and its paint.
type paintedText struct {
	p themePaint
	s string
}

// wrapPainted wraps painted pieces at spaces to rows of w cells, at most
// maxRows (the last one cut with "…" by the line that draws it).
func wrapPainted(segs []paintedText, w, maxRows int) [][]paintedText {
	total := 0
	for _, sg := range segs {
		total += textWidth(sg.s)
	}
	if total <= w {
		return [][]paintedText{segs}
	}
	var rows [][]paintedText
	var row []paintedText
	used := 0
	for _, sg := range segs {
		words := strings.SplitAfter(sg.s, " ")
		for _, wd := range words {
			if wd == "" {
				continue
			}
			ww := textWidth(wd)
			for ww > w && len(rows) < maxRows-1 {
				// A word longer than a row (a URL) is cut across rows.
				if used > 0 {
					rows = append(rows, row)
					row, used = nil, 0
				}
				head := ansi.Truncate(wd, w, "")
				rows = append(rows, []paintedText{{sg.p, head}})
				wd = wd[len(head):]
				ww = textWidth(wd)
			}
			if used > 0 && used+textWidth(strings.TrimRight(wd, " ")) > w {
				if len(rows) == maxRows-1 {
					// The last row takes the rest, to be cut.
					row = append(row, paintedText{sg.p, wd})
					used += ww
					continue
				}
				rows = append(rows, row)
				row, used = nil, 0
			}
			row = append(row, paintedText{sg.p, wd})
			used += ww
		}
	}
	if len(row) > 0 {
		rows = append(rows, row)
	}
	// A row's last word keeps no trailing space (it would overflow).
	for _, r := range rows {
		if n := len(r); n > 0 {
			r[n-1].s = strings.TrimRight(r[n-1].s, " ")
		}
	}
	return rows
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
