package tui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

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

// messagesTab is the Messages tab: the selected channel's messages
// (their selection is the channel's: chanData.cur), filtered, and the
// selected one in full.
type messagesTab struct {
	filter filter
	// rows caches the rendered rows on screen.
	rows rowCache
}

func (t *messagesTab) names() (full, short string) { return "Messages", "Msgs" }

func (t *messagesTab) note() string {
	if t.filter.active() {
		return "  /" + t.filter.text
	}
	return ""
}

func (t *messagesTab) reset() {}

func (t *messagesTab) page(h int) int { return max(1, h-4) / 2 }

func (t *messagesTab) update(tea.KeyPressMsg, KeyMap) bool { return false }

func (t *messagesTab) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Down, "↑/↓", "message"), withHelp(k.Open, "enter", "zoom")}
}

func (t *messagesTab) key(v *mainView, c registry.Name) tabKey {
	k := tabKey{text: t.filter.text}
	if d, ok := v.chData[c]; ok {
		k.a, k.n, k.cur = d.msgs.Seq(), d.msgs.Len(), d.cur
	}
	return k
}

func (t *messagesTab) restyle() { t.rows.reset() }

// matches reports whether a message passes the messages filter.
func (t *messagesTab) matches(e *msgEntry) bool {
	return !t.filter.active() || t.filter.match(msgText(e))
}

// listHeight returns the rows of the messages list and of the detail.
func (t *messagesTab) listHeight(v *mainView) (list, detail int) {
	h := v.r.h - 3 // borders and tabs
	if h <= 4 {
		return max(1, h), 0
	}
	list = h * 45 / 100
	list = max(3, list)
	return list, h - list
}

// navigate moves the selected message of the channel: by delta
// matching messages, to the first (top) or to the newest, which it then
// follows.
func (t *messagesTab) navigate(v *mainView, mv navMove) {
	d, ok := v.chData[v.sel]
	if !ok {
		return
	}
	switch {
	case mv.top:
		if d.msgs.Len() == 0 {
			return
		}
		d.cur = cursor{seq: d.msgs.At(0).seq}
		t.move(d, 1)
		t.move(d, -1)
	case mv.bottom:
		if d.msgs.Len() == 0 {
			return
		}
		d.cur = cursor{seq: d.msgs.Seq(), follow: true}
	default:
		t.move(d, mv.delta)
	}
}

// move moves the selection by delta matching messages.
func (t *messagesTab) move(d *chanData, delta int) {
	d.cur.step(d.msgs.Len(), d.msgs.Index, func(i int) uint64 { return d.msgs.Ptr(i).seq }, delta,
		func(j int) bool { return t.matches(d.msgs.Ptr(j)) })
}

// msgRow renders a message of the selected channel as a row of width w
// (cached while on screen).
func (t *messagesTab) row(v *mainView, e *msgEntry, w int, narrow bool) string {
	if s, ok := t.rows.get(e.seq, w, v.sel); ok {
		return s
	}
	l := newLine(w)
	if narrow {
		l.add(v.st.Subtle, e.ev.Time.Format("15:04:05")).plain(" ")
	} else {
		l.add(v.st.Subtle, e.ev.Time.Format("15:04:05.000")).plain(" ")
	}
	dp := v.st.Info
	if e.ev.Direction == registry.Out {
		dp = v.st.Highlight
	}
	l.add(dp, dirArrow(e.ev.Direction)).plain(" ")
	l.add(v.st.Muted, fitText(msgKindShort(e.ev.Kind), 10)).plain(" ")
	ev := e.ev.Event
	if e.ev.Queued {
		ev += " (queued)"
	}
	if ev != "" {
		ew := 12
		if narrow {
			ew = 8
		}
		l.add(v.st.Primary, fitText(sanitize(ev), ew)).plain(" ")
	}
	switch {
	case len(e.ev.Binary) > 0 && e.ev.Truncated:
		l.add(v.st.Muted, fmt.Sprintf("<%s binary, truncated>", sizeText(e.ev.Size)))
	case len(e.ev.Binary) > 0:
		l.add(v.st.Muted, fmt.Sprintf("<%d bytes binary>", len(e.ev.Binary)))
	case e.ev.Truncated:
		// A cut payload: the size first (the row is cut to the width),
		// then the start of its text.
		l.add(v.st.Warn, "["+sizeText(e.ev.Size)+", truncated] ").add(v.st.Text, sanitize(e.ev.Preview[:min(len(e.ev.Preview), 4*w)]))
	case e.ev.Kind == registry.MessagePostgresChanges:
		if where, rec, ok := changeRow(e.ev.Payload); ok {
			l.add(v.st.Muted, where+" ").add(v.st.Text, rec)
			break
		}
		l.add(v.st.Text, compactJSON(e.ev.Payload))
	default:
		l.add(v.st.Text, compactJSON(e.ev.Payload))
	}
	row := l.done()
	t.rows.put(e.seq, row)
	return row
}

// viewMessages renders the message list and the selected message.
func (t *messagesTab) view(v *mainView, c registry.ChannelInfo, w, h int) []string {
	d, ok := v.chData[c.Name]
	if !ok || d.msgs.Len() == 0 {
		hint := "no messages yet"
		switch c.Name.Kind {
		case registry.KindBroadcast:
			hint += " — b sends a broadcast"
		case registry.KindPresence:
			hint += " — p tracks a presence"
		}
		return []string{newLine(w).add(v.st.Muted, hint).done()}
	}
	listH, detailH := t.listHeight(v)
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
		for sel > 0 && !t.matches(d.msgs.Ptr(sel)) {
			sel--
		}
	}
	// The window: the selected row and the rows before it, or after it
	// when it is near the top.
	var rows []int
	for i := sel; i >= 0 && len(rows) < listH; i-- {
		if t.matches(d.msgs.Ptr(i)) {
			rows = append(rows, i)
		}
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	for i := sel + 1; i < n && len(rows) < listH; i++ {
		if t.matches(d.msgs.Ptr(i)) {
			rows = append(rows, i)
		}
	}
	out := make([]string, 0, h)
	focused := v.focused
	for _, i := range rows {
		e := d.msgs.Ptr(i)
		if i == sel {
			p := v.st.Table.SelectedBlur
			if focused {
				p = v.st.Table.Selected
			}
			plain := ansiStrip(t.row(v, e, w, v.narrow))
			out = append(out, p.Render(fitText(plain, w)))
			continue
		}
		out = append(out, t.row(v, e, w, v.narrow))
	}
	t.rows.flip()
	if len(rows) == 0 {
		out = append(out, newLine(w).add(v.st.Muted, "no message matches the filter").done())
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
	out = append(out, newLine(w).add(v.st.Subtle, head+strings.Repeat("─", max(0, w-textWidth(head)))).done())
	var body []string
	switch {
	case e.ev.Truncated && len(e.ev.Binary) == 0:
		// Not JSON any more: its text, wrapped, as far as the pane goes.
		text := e.ev.Preview[:min(len(e.ev.Preview), detailH*w*4)]
		for _, l := range strings.Split(ansiHardwrap(sanitize(text), max(1, w)), "\n") {
			body = append(body, newLine(w).add(v.st.Text, l).done())
		}
	case len(e.ev.Binary) > 0:
		body = hexDump(v.st, e.ev.Binary, w)
	case e.ev.Kind == registry.MessagePostgresChanges:
		body = prettyJSON(v.st, changeDetail(e.ev.Payload), w)
	default:
		body = prettyJSON(v.st, e.ev.Payload, w)
	}
	room := detailH - 1
	if len(body) > room {
		more := len(body) - room + 1
		body = append(body[:room-1], newLine(w).add(v.st.Muted, fmt.Sprintf("… %d more lines (enter zooms)", more)).done())
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
func hexDump(st themeStyles, b []byte, w int) []string {
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
		out = append(out, newLine(w).add(st.Subtle, fmt.Sprintf("%06x ", off)).add(st.Text, fitText(hx.String(), per*3)).add(st.Muted, as.String()).done())
	}
	return out
}
