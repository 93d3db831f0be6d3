package tui

import (
	"fmt"
	"net/url"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
)

// cached is one rendered text area and whether it is still valid.
type cached struct {
	s     string
	valid bool
}

// viewCache holds the root's own rendered areas; Update invalidates
// what changed. The panes cache themselves (paneCache).
type viewCache struct {
	header, status, footer cached
	splice                 spliceCache
}

// View renders the screen from the cached areas, re-rendering only the
// invalid ones, and only their visible rows.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "rtm"
	return v
}

// Render returns the screen as text (the content of View).
func (m *Model) Render() string {
	if m.quitting {
		return ""
	}
	if m.width <= 0 || m.height <= 0 {
		return "rtm: starting…"
	}
	if m.lay.tiny {
		return m.renderTiny()
	}
	text := func(c *cached, f func() string) string {
		if !c.valid {
			c.s, c.valid = f(), true
		}
		return c.s
	}
	header := text(&m.cache.header, m.viewHeader)
	statusLine := m.viewStatusLine()
	footer := text(&m.cache.footer, m.viewFooter)

	// The body: the channels and main panes side by side over the log, or
	// the zoomed pane alone.
	var left, right, bottom *framed
	switch {
	case m.zoom && m.focus == focusChannels:
		left = m.chans.view(m.chansView())
	case m.zoom && m.focus == focusLog:
		bottom = m.log.view(m.st, true, m.epoch)
	case m.zoom:
		left = m.main.view(m.mainView())
	default:
		left = m.chans.view(m.chansView())
		right = m.main.view(m.mainView())
		bottom = m.log.view(m.st, m.focus == focusLog, m.epoch)
	}
	topRows := 0
	if left != nil {
		topRows = left.h
	}
	bottomRows := 0
	if bottom != nil {
		bottomRows = bottom.h
	}
	var b strings.Builder
	b.Grow(len(header) + len(statusLine) + len(footer) + left.size() + right.size() + bottom.size() + m.height*4)
	b.WriteString(header)
	b.WriteByte('\n')
	var dlg []string
	var dx, dy int
	if d := m.dialogs.top(); d != nil {
		dlg, dx, dy = d.view(m, m.width, topRows+bottomRows)
	}
	if len(dlg) == 0 {
		for i := 0; i < topRows; i++ {
			left.write(&b, i)
			right.write(&b, i)
			b.WriteByte('\n')
		}
		for i := 0; i < bottomRows; i++ {
			bottom.write(&b, i)
			b.WriteByte('\n')
		}
	} else {
		// A dialog: compose the body as lines, then draw over them.
		body := make([]string, 0, topRows+bottomRows)
		for i := 0; i < topRows; i++ {
			var lb strings.Builder
			left.write(&lb, i)
			right.write(&lb, i)
			body = append(body, lb.String())
		}
		for i := 0; i < bottomRows; i++ {
			body = append(body, bottom.row(i))
		}
		for _, l := range m.drawDialog(body, dlg, dx, dy, m.width) {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	b.WriteString(statusLine)
	b.WriteByte('\n')
	b.WriteString(footer)
	return b.String()
}

// renderTiny is the screen of a terminal too small for the panes.
func (m *Model) renderTiny() string {
	lines := []string{
		"rtm needs at least " + fmt.Sprintf("%dx%d", minWidth, minHeight),
		fmt.Sprintf("this terminal is %dx%d", m.width, m.height),
		"q quits",
	}
	var b strings.Builder
	for i := 0; i < m.height; i++ {
		s := ""
		if i < len(lines) {
			s = lines[i]
		}
		b.WriteString(fitText(s, m.width))
		if i < m.height-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// viewHeader renders the two header lines.
func (m *Model) viewHeader() string {
	w := m.width
	st := m.st
	s := m.state
	l1 := newLine(w)
	l1.add(st.Header.App, "rtm").plain("  ")
	if s.Target.Embedded {
		if m.lay.narrow {
			l1.add(st.Header.Embedded, "embedded").plain(" ")
		} else {
			l1.add(st.Header.Embedded, "embedded server").plain(" ")
		}
	}
	sep1 := "  ·  "
	if m.lay.narrow {
		sep1 = " · "
	}
	l1.add(st.Header.Value, sanitize(targetHost(s.Target.URL)))
	if db := m.opts.Database; db.Label != "" {
		p := st.Header.Value
		if db.Missing {
			p = st.Warn
		}
		label := db.Label
		if m.lay.narrow {
			label, _, _ = strings.Cut(label, " ") // "demo", "none", the host
		}
		l1.add(st.Subtle, sep1).add(st.Header.Label, "db ").add(p, sanitize(label))
	}
	tok := s.Token
	l1.add(st.Subtle, sep1)
	if tok.Present {
		who := tok.Subject
		if who == "" {
			who = "(no sub)"
		}
		l1.add(st.Header.Label, "as ").add(st.Header.Value, sanitize(who))
		if tok.Role != "" && !m.lay.narrow {
			l1.add(st.Muted, " ("+sanitize(tok.Role)+")")
		}
		if !tok.Expiry.IsZero() {
			left := tok.Expiry.Sub(m.now)
			p := st.OK
			txt := "token " + fmtCountdown(left)
			switch {
			case left <= 0:
				p, txt = st.Error, "token EXPIRED"
			case left < 5*60e9:
				p = st.Warn
			}
			l1.add(st.Subtle, sep1).add(p, txt)
		}
	} else {
		l1.add(st.Header.Label, "anon (API key only)")
	}
	if s.Target.Tenant != "" {
		l1.add(st.Subtle, sep1).add(st.Header.Label, "tenant ").add(st.Header.Value, sanitize(s.Target.Tenant))
	}
	if m.opts.ReadOnly {
		l1.add(st.Subtle, sep1).add(st.Warn, "read-only")
	}
	if m.opts.AppsURL != "" {
		l1.add(st.Subtle, sep1).add(st.Header.Label, "apps → ").add(st.Header.Value, sanitize(m.opts.AppsURL))
		// The embedded server's anon key, masked, when it fits whole.
		if key := registry.MaskSecret(m.opts.AppsAnonKey); key != "" && textWidth(sep1+"anon key "+key) <= l1.room() {
			l1.add(st.Subtle, sep1).add(st.Header.Label, "anon key ").add(st.Header.Value, key)
		}
	}

	sep, gap, spark := "  ·  ", "  ", 10
	if m.lay.narrow {
		sep, gap, spark = " · ", " ", 5
	}
	// The sparklines shrink (to 3 cells), then go, before anything is
	// cut: measure the line without them, share the room left.
	l2 := m.headerLine2(w, sep, gap, 0)
	if !l2.cut {
		n := 2
		if len(m.state.Socket.RTTHistory) > 1 {
			n = 3
		}
		if fit := min(spark, l2.room()/n-1); fit >= 3 {
			l2 = m.headerLine2(w, sep, gap, fit)
		}
	}
	if m.opts.Replay != nil {
		return l1.done() + "\n" + l2.done() + "\n" + m.viewReplay(w)
	}
	return l1.done() + "\n" + l2.done()
}

// headerLine2 builds the header's second line with sparklines of spark
// cells (0: none).
func (m *Model) headerLine2(w int, sep, gap string, spark int) *line {
	st, s := m.st, m.state
	l2 := newLine(w)
	so := s.Socket
	name := socketStatusName(so.Status)
	label := "socket "
	if m.multi() {
		label = sanitize(m.activeName()) + "'s socket "
	}
	l2.add(st.Header.Label, label).add(st.StatusPaint(name), statusDot(so.Status)+" "+name)
	if so.Status != registry.SocketConnected && so.Attempt > 0 {
		l2.add(st.Muted, fmt.Sprintf(" attempt %d", so.Attempt))
		if !so.NextAttemptAt.IsZero() && so.NextAttemptAt.After(m.now) {
			l2.add(st.Warn, " next in "+fmtCountdown(so.NextAttemptAt.Sub(m.now)))
		}
	}
	switch {
	case so.RTT > 0:
		p := st.Header.Value
		if so.Status != registry.SocketConnected {
			p = st.Muted // the last one measured
		}
		l2.add(st.Header.Label, gap+"rtt ").add(p, registry.FormatDuration(so.RTT))
	case so.Status == registry.SocketConnected:
		// Until the first heartbeat reply measures it.
		l2.add(st.Header.Label, gap+"rtt ").add(st.Muted, "measuring…")
	}
	if len(so.RTTHistory) > 1 && spark > 0 {
		l2.plain(" ").add(st.Spark, sparkline(durations(so.RTTHistory), spark))
	}
	l2.add(st.Subtle, sep).add(st.Header.Label, "channels ")
	total, limit := len(s.Channels), s.Stats.Limit
	cp := st.Header.Value
	if limit > 0 && total*10 >= limit*9 {
		cp = st.Warn
	}
	if limit > 0 {
		l2.add(cp, fmt.Sprintf("%d/%d", total, limit))
	} else {
		l2.add(cp, fmt.Sprintf("%d", total))
	}
	mt := s.Metrics
	l2.add(st.Subtle, sep).add(st.Header.Label, "in ").add(st.Header.Value, fmtRate(mt.InRate))
	if spark > 0 {
		l2.plain(" ").add(st.Spark, sparkline(mt.InHistory, spark))
	}
	l2.add(st.Header.Label, gap+"out ").add(st.Header.Value, fmtRate(mt.OutRate))
	if spark > 0 {
		l2.plain(" ").add(st.Spark, sparkline(mt.OutHistory, spark))
	}
	m.addLimitsSegment(l2, sep)
	if m.dropped > 0 {
		l2.add(st.Subtle, sep).add(st.Warn, fmt.Sprintf("UI dropped %d", m.dropped))
	}
	return l2
}

func statusDot(s registry.SocketStatus) string {
	switch s {
	case registry.SocketConnected:
		return "●"
	case registry.SocketConnecting:
		return "◌"
	case registry.SocketDisconnected:
		return "○"
	}
	return "·"
}

// viewStatusLine renders the status line, or the command line / filter
// input when open.
func (m *Model) viewStatusLine() string {
	w := m.width
	if in, ok := m.dialogs.top().(inputLine); ok {
		return in.statusLine(m, w)
	}
	if m.cache.status.valid {
		return m.cache.status.s
	}
	var out string
	switch {
	case m.status.text == "":
		out = newLine(w).add(m.st.Subtle, "? help · : commands · tab next pane").done()
	case m.lay.status.h >= 2 && textWidth(m.status.text) > w:
		p := m.st.StatusLine[levelName(m.status.level)]
		rows := wrapText(m.status.text, w)
		second := strings.Join(rows[1:], " ")
		out = newLine(w).add(p, rows[0]).done() + "\n" + newLine(w).add(p, second).done()
	default:
		out = newLine(w).add(m.st.StatusLine[levelName(m.status.level)], m.status.text).done()
	}
	for i := strings.Count(out, "\n") + 1; i < m.lay.status.h; i++ {
		out += "\n" + blank(w)
	}
	m.cache.status = cached{s: out, valid: true}
	return out
}

// padStatus adds blank rows below an input shown in a 2-row status area.
func (m *Model) padStatus(s string) string {
	for i := 1; i < m.lay.status.h; i++ {
		s += "\n" + blank(m.width)
	}
	return s
}

// fitInput cuts or pads a text input's view (which pads itself) to w
// cells, without an ellipsis.
func fitInput(s string, w int) string {
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "")
	}
	if n := ansi.StringWidth(s); n < w {
		s += blank(w - n)
	}
	return s
}

// fitANSI cuts or pads painted text to w cells.
func fitANSI(s string, w int) string {
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if n := ansi.StringWidth(s); n < w {
		s += blank(w - n)
	}
	return s
}

// focusName names the focused pane for the filter prompt.
func (m *Model) focusName() string {
	switch m.focus {
	case focusChannels:
		return "channels"
	case focusLog:
		return "log"
	}
	return "messages"
}

// viewFooter renders the short help of the focused pane.
func (m *Model) viewFooter() string {
	return fitANSI(m.help.ShortHelpView(m.ShortHelp()), m.width)
}

// ShortHelp implements help.KeyMap: the keys of the focused pane and the
// open dialog.
func (m *Model) ShortHelp() []key.Binding {
	k := m.keys
	if d := m.dialogs.top(); d != nil {
		return d.help(k)
	}
	var out []key.Binding
	switch m.focus {
	case focusChannels:
		out = append(out, m.chans.help(k)...)
	case focusMain:
		out = append(out, k.TabKeys)
		out = append(out, m.main.current().help(k)...)
	case focusLog:
		out = append(out, m.log.help(k)...)
	}
	out = append(out, m.channelActions()...)
	out = append(out, k.Filter, k.Command, k.NextFocus, k.Help, k.Quit)
	if m.opts.Replay != nil {
		out = append([]key.Binding{k.Replay.Pause, k.Replay.Seek, k.Replay.Speed}, out...)
	}
	return out
}

// channelActions returns the enabled actions on the selected channel.
func (m *Model) channelActions() []key.Binding {
	k := m.keys.Channel
	c, ok := m.selected()
	if !ok {
		return nil
	}
	var out []key.Binding
	if c.Name.Kind == registry.KindPresence {
		if c.Tracked {
			out = append(out, k.Untrack)
		} else {
			out = append(out, k.Track)
		}
	}
	out = append(out, k.Broadcast, k.Retry, k.Leave, k.Faults)
	if m.multi() {
		out = append(out, k.JoinOthers)
	}
	if doctorFor(c) {
		out = append(out, k.Doctor)
	}
	return enabled(out)
}

// FullHelp implements help.KeyMap: every key, by area.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	groups := [][]key.Binding{
		{k.Help, k.Command, k.Filter, k.NextFocus, k.PrevFocus, k.Open, k.Back, k.Apps, k.Limits, k.Quit},
		{k.TabKeys, k.NextTab, k.PrevTab, k.Zoom, k.Up, k.Down, k.Top, k.Bottom, k.PageUp, k.PageDown},
		enabled([]key.Binding{k.Channel.Track, k.Channel.Untrack, k.Channel.Broadcast, k.Channel.Retry, k.Channel.Leave, k.Channel.Faults, k.Channel.Doctor,
			k.AppsView.Channels, k.AppsView.Faults, k.AppsView.CopyEnv, k.AppsView.WriteEnv}),
		{k.Log.Follow, k.Log.Wrap, k.Log.Clear, k.Presence.Raw},
	}
	if m.multi() {
		groups[2] = append(groups[2], enabled([]key.Binding{k.Channel.JoinOthers})...)
	}
	if m.opts.Replay != nil {
		groups = append(groups, []key.Binding{k.Replay.Pause, k.Replay.Back, k.Replay.Forward, k.Replay.BackLong,
			k.Replay.ForwardLong, k.Replay.Faster, k.Replay.Slower})
	}
	return groups
}

// withHelp returns a copy of b with other help text.
func withHelp(b key.Binding, keys, desc string) key.Binding {
	b.SetHelp(keys, desc)
	return b
}

// enabled keeps the enabled bindings.
func enabled(bs []key.Binding) []key.Binding {
	out := bs[:0:0]
	for _, b := range bs {
		if b.Enabled() {
			out = append(out, b)
		}
	}
	return out
}

// targetHost shortens a target URL to its host for the header (the
// Info tab shows it in full).
func targetHost(raw string) string {
	if raw == "" {
		return "(no target yet)"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return u.Host
}
