package tui

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/registry/apps"
	"rtm/theme"
)

// appsView is the Apps dialog (:apps, A): the app sockets seen by rtm's
// app proxy ([Options.Apps]) and, for the selected one, its channels and
// flags; with no app yet, what to set in the app. It is a dialog on the
// stack, not a main-pane tab: the tabs show the selected channel of
// rtm's own client, and an app socket is none of them.
//
// The selection is a socket and, once tab (or enter) moved it into the
// socket's channels, one of them; x opens the fault menu of the
// selected socket or channel (dialog_appfaults.go). c copies what to
// set in the app (SUPABASE_URL and, for the embedded server, its anon
// key in full) to the clipboard and w writes it to Options.AppsEnvFile
// (appenv.go); on screen the key is always masked.
//
// The snapshot it shows is the model's apps (refreshApps, on open and on
// the clock's tick while the dialog is open), numbered by appsGen; the
// view is cached on that number, the selection, the size, the styles
// and the model's epoch and clock.
type appsView struct {
	sel int
	// inChans is true while the selection is in the socket's channels;
	// ch is the selected channel then.
	inChans bool
	ch      int
	// socks and chans count the sockets and the selected socket's
	// channels (clamp), for the keys the view offers.
	socks, chans int
	// proxy is true when the proxy runs (c and w have something to
	// give); envFile is the file w writes, as the hint names it.
	proxy   bool
	envFile string
	cache   appsCache
}

// appsKey is what the Apps view renders from.
type appsKey struct {
	gen          uint64
	sel, ch      int
	inChans      bool
	w, h         int
	epoch, clock uint64
	st           *theme.Styles
}

// appsCache is the Apps view's last render.
type appsCache struct {
	key  appsKey
	rows []string
	x, y int
	ok   bool
}

// openApps reads the snapshot and opens the Apps view.
func (m *Model) openApps() {
	v := &appsView{}
	m.openDialog(v)
	m.refreshApps()
	v.sel = max(0, len(m.apps.Sockets)-1) // the newest socket
	v.clamp(m)
}

// refreshApps reads Options.Apps while the Apps view is open: a
// snapshot that differs from the last one becomes the view's data.
func (m *Model) refreshApps() {
	if m.opts.Apps == nil {
		return
	}
	var view *appsView
	for _, d := range m.dialogs {
		if v, ok := d.(*appsView); ok {
			view = v
		}
	}
	if view == nil {
		return
	}
	if v := m.opts.Apps.Version(); !m.appsRead || v != m.appsVersion {
		m.apps, m.appsVersion, m.appsRead = m.opts.Apps.Snapshot(), v, true
		m.appsGen++
		view.clamp(m)
	}
}

// clamp keeps the selection on the snapshot: a socket, and a channel
// of it only while it has some.
func (v *appsView) clamp(m *Model) {
	v.sel = max(0, min(len(m.apps.Sockets)-1, v.sel))
	v.socks, v.chans = len(m.apps.Sockets), 0
	if v.socks > 0 {
		v.chans = len(m.apps.Sockets[v.sel].Channels)
	}
	v.ch = max(0, min(v.chans-1, v.ch))
	v.inChans = v.inChans && v.chans > 0
	v.proxy, v.envFile = m.opts.AppsURL != "", filepath.Base(m.opts.AppsEnvFile)
}

// target is what the selection designates for the fault menu.
func (v *appsView) target(m *Model) (appTarget, bool) {
	v.clamp(m)
	if len(m.apps.Sockets) == 0 {
		return appTarget{}, false
	}
	s := m.apps.Sockets[v.sel]
	t := appTarget{socket: s.ID, closed: !s.Closed.IsZero()}
	if v.inChans {
		t.topic = s.Channels[v.ch].Topic
	}
	return t, true
}

func (v *appsView) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	k := m.keys
	v.clamp(m)
	// move moves the selection in the list it is in: the sockets (a new
	// socket starts on its first channel) or the socket's channels.
	move := func(to func(cur, n int) int) {
		if v.inChans {
			v.ch = to(v.ch, len(m.apps.Sockets[v.sel].Channels))
		} else if sel := to(v.sel, len(m.apps.Sockets)); sel != v.sel {
			v.sel, v.ch = sel, 0
		}
	}
	switch {
	case key.Matches(kp, k.Dialog.Cancel) && v.inChans:
		v.inChans = false
	case key.Matches(kp, k.Dialog.Cancel, k.Quit, k.Apps):
		return nil, true
	case key.Matches(kp, k.Help):
		m.openDialog(helpDialog{})
	case key.Matches(kp, k.AppsView.Channels) || (key.Matches(kp, k.Open) && !v.inChans):
		if len(m.apps.Sockets) == 0 {
			return nil, false
		}
		if s := m.apps.Sockets[v.sel]; len(s.Channels) == 0 {
			return m.setStatus(slog.LevelWarn, fmt.Sprintf("app socket #%d has no channels", s.ID)), false
		}
		v.inChans = !v.inChans
	case key.Matches(kp, k.AppsView.Faults):
		t, ok := v.target(m)
		if !ok {
			return m.setStatus(slog.LevelWarn, "no app socket yet: x injects faults into an app's traffic once it connects"), false
		}
		m.openDialog(newAppFaultMenu(m, t))
	case key.Matches(kp, DefaultKeyMap().AppsView.Faults):
		return m.setStatus(slog.LevelWarn, errReadOnly.Error()), false
	case key.Matches(kp, k.AppsView.CopyEnv):
		return m.copyAppEnv(), false
	case key.Matches(kp, k.AppsView.WriteEnv):
		return m.writeAppEnv(), false
	case key.Matches(kp, k.Up):
		move(func(cur, _ int) int { return max(0, cur-1) })
	case key.Matches(kp, k.Down):
		move(func(cur, n int) int { return max(0, min(n-1, cur+1)) })
	case key.Matches(kp, k.Top):
		move(func(int, int) int { return 0 })
	case key.Matches(kp, k.Bottom):
		move(func(_, n int) int { return max(0, n-1) })
	}
	return nil, false
}

func (v *appsView) help(k KeyMap) []key.Binding {
	var env []key.Binding
	if v.proxy {
		env = []key.Binding{withHelp(k.AppsView.CopyEnv, "c", "copy env"), withHelp(k.AppsView.WriteEnv, "w", "write "+v.envFile)}
	}
	if v.inChans {
		out := []key.Binding{withHelp(k.Down, "↑/↓", "select channel"), withHelp(k.AppsView.Channels, "tab", "sockets"),
			withHelp(k.AppsView.Faults, "x", "channel faults")}
		return append(append(out, env...), withHelp(k.Dialog.Cancel, "esc", "back"), k.Help)
	}
	out := []key.Binding{withHelp(k.Down, "↑/↓", "select socket")}
	if v.chans > 0 {
		out = append(out, withHelp(k.AppsView.Channels, "tab", "channels"))
	}
	if v.socks > 0 {
		out = append(out, withHelp(k.AppsView.Faults, "x", "socket faults"))
	}
	return append(append(out, env...), withHelp(k.Dialog.Cancel, "esc", "close"), k.Help)
}

// hint is the view's last row: its keys, as the footer has them.
func (v *appsView) hint(k KeyMap) string {
	var parts []string
	for _, b := range v.help(k) {
		if b.Enabled() {
			parts = append(parts, b.Help().Key+" "+b.Help().Desc)
		}
	}
	return strings.Join(parts, " · ")
}

// view renders the Apps view over the body, at most h rows high.
func (v *appsView) view(m *Model, bw, h int) ([]string, int, int) {
	w := max(40, min(m.width-4, 160))
	v.clamp(m)
	ck := appsKey{gen: m.appsGen, sel: v.sel, ch: v.ch, inChans: v.inChans, w: bw, h: h, epoch: m.epoch, clock: m.clock, st: m.st}
	if !v.cache.ok || v.cache.key != ck {
		rows, x, y := centred(dialogBox(m.st, v.title(m), v.body(m, w-4, max(1, h-4)), w), bw, h)
		v.cache = appsCache{key: ck, rows: rows, x: x, y: y, ok: true}
	}
	return v.cache.rows, v.cache.x, v.cache.y
}

// title names the view and the proxy.
func (v *appsView) title(m *Model) string {
	if m.opts.AppsURL == "" {
		return "Apps"
	}
	return "Apps — proxy " + sanitize(m.opts.AppsURL)
}

// body returns the view's rows, inner cells wide, at most room rows:
// the keys last, above them what did not fit.
func (v *appsView) body(m *Model, inner, room int) []string {
	st := m.st
	var body []string
	switch {
	case m.opts.Apps == nil:
		body = wrapLines(st.Muted, "The app proxy is off: rtm runs it unless --no-proxy is given or its --listen port is taken (the status line said so at start).", inner)
	case len(m.apps.Sockets) == 0:
		body = append(m.appsHint(inner, room-2), restRows(st, m.apps, inner)...)
	default:
		body = v.sockets(m, inner, room)
	}
	// The keys stay on the last row: what does not fit is cut above
	// them.
	if fit := room - 2; len(body) > fit && fit >= 1 {
		cut := len(body) - fit + 1
		body = append(body[:fit-1:fit-1], st.Muted.Render(truncText(fmt.Sprintf("… %d more rows (a taller terminal shows them)", cut), inner)))
	}
	body = append(body, "", st.Muted.Render(truncText(v.hint(m.keys), inner)))
	if len(body) > room {
		body = body[len(body)-room:]
	}
	return body
}

// appsHint is what to set in the app when none has connected, in at
// most room rows when it can: every name AppEnv lists, or only the
// plain ones and the prefixes when they do not fit. The wording
// follows the upstream: the embedded server's key is rtm's to give
// (Options.AppsAnonKey), a project's the app keeps.
func (m *Model) appsHint(inner, room int) []string {
	st := m.st
	intro := "No app has connected yet. Point your app's Supabase URL at the proxy (keep its anon key: the proxy forwards to your project):"
	if m.opts.AppsAnonKey != "" {
		intro = "No app has connected yet. The proxy forwards to rtm's embedded server (no project configured): set its URL and anon key in your app:"
	}
	out := append(wrapLines(st.Muted, intro, inner), "")
	outro := wrapLines(st.Muted, "Its sockets, channels, join attempts, presence and messages show here as it runs.", inner)
	env := m.appEnvShown()
	if len(out)+len(env)+1+len(outro) > room {
		// The plain names, and the prefixed ones in one row.
		names := AppEnvNames("")
		short := []string{env[0]}
		if len(env) > len(names) {
			short = append(short, env[len(names)])
		}
		env = append(short, "(the same under the "+strings.Join(names[1:], ", ")+" prefixes)")
	}
	for _, l := range env {
		out = append(out, truncText("  "+l, inner))
	}
	return append(append(out, ""), outro...)
}

// wrapLines wraps s to inner cells in paint p.
func wrapLines(p theme.Paint, s string, inner int) []string {
	var out []string
	for _, l := range wrapText(s, inner) {
		out = append(out, p.Render(l))
	}
	return out
}

// sockets renders the sockets (two rows each, the selected one marked),
// then the selected socket's channels and flags.
func (v *appsView) sockets(m *Model, inner, room int) []string {
	st, snap := m.st, m.apps
	var out []string
	// The sockets take at most half the room, a window around the
	// selection; only the selected one while the selection is in its
	// channels (its messages need the room).
	show := max(1, min(len(snap.Sockets), room/4))
	if v.inChans {
		show = 1
	}
	first := max(0, min(v.sel-show/2, len(snap.Sockets)-show))
	if m.opts.AppsAnonKey != "" {
		// The embedded server's: what a new app needs, and c and w give.
		env := m.appEnvShown()
		out = append(out, st.Muted.Render(truncText(env[0]+" · "+env[len(AppEnvNames(""))], inner)))
	}
	out = append(out, st.Table.Header.Render(truncText(fmt.Sprintf("APP SOCKETS %d", len(snap.Sockets)), inner)))
	for i := first; i < first+show; i++ {
		s := snap.Sockets[i]
		mark, p := "  ", st.Text
		if i == v.sel {
			mark, p = "▸ ", st.Bold
		}
		out = append(out, p.Render(truncText(mark+socketLine1(s), inner)),
			st.Muted.Render(truncText("    "+socketLine2(s, m), inner)))
	}
	if hidden := len(snap.Sockets) - show; hidden > 0 && !v.inChans {
		out = append(out, st.Muted.Render(truncText(fmt.Sprintf("  (%d more: ↑/↓)", hidden), inner)))
	}
	s := snap.Sockets[v.sel]
	out = append(out, "", st.Table.Header.Render(truncText(channelsHeading(s), inner)))
	if len(s.Channels) == 0 {
		out = append(out, st.Muted.Render("  none joined"))
	} else {
		// The channels take the room the flags and the footer leave (at
		// least 3 rows), a window around the selected one; the selected
		// channel's messages share it (at least 1 row).
		flags := 0
		for _, f := range snap.Flags {
			if f.Socket == s.ID {
				flags++
			}
		}
		avail := room - len(out) - 1 - (2 + max(1, flags)) - 2
		show := min(len(s.Channels), max(3, avail))
		if v.inChans {
			show = min(len(s.Channels), max(3, (avail-2)/2))
		}
		first := 0
		if v.inChans {
			first = max(0, min(v.ch-show/2, len(s.Channels)-show))
		}
		sel := -1
		if v.inChans {
			sel = v.ch - first
		}
		out = append(out, channelRows(st, s.Channels[first:first+show], sel, inner)...)
		if hidden := len(s.Channels) - show; hidden > 0 {
			out = append(out, st.Muted.Render(truncText(fmt.Sprintf("  (%d more: tab, ↑/↓)", hidden), inner)))
		}
		if v.inChans {
			c := s.Channels[v.ch]
			out = append(out, "", st.Table.Header.Render(truncText(messagesHeading(c), inner)))
			out = append(out, messageRows(st, c.Messages, max(1, room-len(out)-(2+max(1, flags))-2), inner)...)
		}
	}
	out = append(out, "", st.Table.Header.Render("FLAGS"))
	n := 0
	for _, f := range snap.Flags {
		if f.Socket != s.ID {
			continue
		}
		n++
		txt := string(f.Kind)
		if f.Topic != "" {
			txt += "  " + f.Topic
		}
		out = append(out, st.Warn.Render(truncText("  "+sanitize(txt+"  "+f.Text), inner)))
	}
	if n == 0 {
		out = append(out, st.Muted.Render("  none"))
	}
	return append(out, restRows(st, snap, inner)...)
}

// socketLine1 is a socket's identity: id, remote, client, vsn, token.
func socketLine1(s apps.Socket) string {
	parts := []string{fmt.Sprintf("#%d", s.ID), sanitize(s.RemoteAddr)}
	if s.ClientInfo != "" {
		parts = append(parts, sanitize(s.ClientInfo))
	}
	parts = append(parts, "vsn "+sanitize(s.Vsn))
	who := s.Token.Role
	if s.Token.Subject != "" {
		who += " " + s.Token.Subject
	}
	if who == "" {
		who = "no token"
	}
	return strings.Join(append(parts, sanitize(strings.TrimSpace(who))), " · ")
}

// socketLine2 is a socket's life: since, its attempt of the app
// connection, frames, and how it closed.
func socketLine2(s apps.Socket, m *Model) string {
	parts := []string{"since " + fmtAge(m.now.Sub(s.Opened))}
	conn := fmt.Sprintf("attempt %d of connection #%d", s.Attempt, s.Connection)
	if s.Attempt > 1 {
		conn += " after " + registry.FormatDuration(s.ReconnectDelay)
	}
	parts = append(parts, conn, fmt.Sprintf("frames in %s out %s", fmtCount(s.FramesToApp), fmtCount(s.FramesFromApp)))
	if s.Closed.IsZero() {
		parts = append(parts, "open")
	} else {
		c := fmt.Sprintf("closed %d", s.CloseCode)
		if s.ClosedBy != "" {
			c += " by " + s.ClosedBy
		}
		if s.CloseReason != "" {
			c += ": " + sanitize(s.CloseReason)
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, " · ")
}

// channelRows is the table of a socket's channels, chans[sel] marked
// selected (none when sel is -1).
func channelRows(st *theme.Styles, chans []apps.Channel, sel, inner int) []string {
	const pres, msgs = 5, 7
	rest := max(30, inner-pres-msgs-6)
	topicW, statusW := rest*3/10, rest*4/10
	attW := rest - topicW - statusW
	row := func(topic, status, att, p, n string) string {
		return fitText("  "+topic, topicW+2) + " " + fitText(status, statusW) + " " + fitText(att, attW) + " " +
			fitRight(p, pres) + " " + fitRight(n, msgs)
	}
	out := []string{st.Table.Header.Render(truncText(row("TOPIC", "STATUS", "ATTEMPTS (delays)", "PRES", "MSGS"), inner))}
	for i, c := range chans {
		status := string(c.Status)
		if c.Status == "" {
			status = restOnly
		}
		if c.Reason != "" {
			status += ": " + c.Reason
		}
		att := fmt.Sprint(uint64(len(c.Attempts)) + c.AttemptsDropped)
		var delays []string
		for _, a := range c.Attempts {
			if a.Delay > 0 {
				delays = append(delays, "+"+registry.FormatDuration(a.Delay))
			}
		}
		if len(delays) > 0 {
			att += " (" + strings.Join(delays, " ") + ")"
		}
		p := st.Text
		switch c.Status {
		case apps.StatusErrored:
			p = st.Error
		case apps.StatusJoining, apps.StatusClosed:
			p = st.Warn
		}
		text := row(sanitize(c.Topic), sanitize(status), att, fmt.Sprint(len(c.Presence)), fmtCount(c.MessagesFromApp+c.MessagesToApp))
		if i == sel {
			out = append(out, st.Table.Selected.Render(fitText("▸"+strings.TrimPrefix(text, " "), inner)))
			continue
		}
		out = append(out, p.Render(truncText(text, inner)))
	}
	return out
}
