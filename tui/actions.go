package tui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// errReadOnly is returned for every action under --readonly.
var errReadOnly = errors.New("read-only mode: actions are off (restart without --readonly)")

// actionDoneMsg is the result of an action Cmd.
type actionDoneMsg struct {
	op, subject, ok string
	err             error
	quit            bool
}

// handleKey routes a key: the open dialog first, then global keys, then
// the selected channel's actions, then the focused pane.
func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		m.quitting = true
		return tea.Quit
	}
	if m.overlay != overlayNone {
		return m.handleOverlayKey(msg)
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		m.quitting = true
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.overlay = overlayHelp
		return nil
	case key.Matches(msg, k.Command):
		return m.openCommand("")
	case key.Matches(msg, k.Filter):
		return m.openFilter()
	case key.Matches(msg, k.NextFocus):
		m.setFocus((m.focus + 1) % numFocus)
		return nil
	case key.Matches(msg, k.PrevFocus):
		m.setFocus((m.focus + numFocus - 1) % numFocus)
		return nil
	case key.Matches(msg, k.NextTab):
		m.setTab((m.tab + 1) % numTabs)
		return nil
	case key.Matches(msg, k.PrevTab):
		m.setTab((m.tab + numTabs - 1) % numTabs)
		return nil
	case key.Matches(msg, k.Zoom):
		m.zoom = !m.zoom
		m.relayout()
		return nil
	case key.Matches(msg, k.Back):
		return m.back()
	}
	if key.Matches(msg, k.Presence.Raw) && m.tab == tabPresence && m.focus != focusLog {
		m.presenceRaw = !m.presenceRaw
		m.mainScroll = 0
		return nil
	}
	for i, b := range k.Tabs {
		if key.Matches(msg, b) {
			m.setTab(tab(i))
			if m.focus == focusLog {
				m.setFocus(focusMain)
			}
			return nil
		}
	}
	if cmd, ok := m.replayKey(msg); ok {
		return cmd
	}
	if cmd, ok := m.channelKey(msg); ok {
		return cmd
	}
	switch m.focus {
	case focusChannels:
		return m.channelsKey(msg)
	case focusMain:
		return m.mainKey(msg)
	case focusLog:
		return m.logKey(msg)
	}
	return nil
}

func (m *Model) setFocus(f focus) {
	m.focus = f
	if m.zoom {
		m.relayout()
	}
}

// setTab shows tab t, chosen by the user: from now on the tab no longer
// follows the selected channel's kind.
func (m *Model) setTab(t tab) {
	m.tabAuto = false
	if t != m.tab {
		m.tab = t
		m.mainScroll = 0
	}
}

// autoTab shows the tab that suits the selected channel until the user
// picks one: the viewers of a presence channel, else the messages.
func (m *Model) autoTab() {
	if !m.tabAuto || m.sel.IsZero() {
		return
	}
	t := tabMessages
	if m.sel.Kind == registry.KindPresence {
		t = tabPresence
	}
	if t != m.tab {
		m.tab = t
		m.mainScroll = 0
	}
}

// back is esc: unzoom, clear the focused pane's filter, or focus the
// channels.
func (m *Model) back() tea.Cmd {
	switch {
	case m.zoom:
		m.zoom = false
		m.relayout()
	case m.focus == focusChannels && m.chanFilter.active():
		m.chanFilter = filter{}
		m.rebuildRows()
	case m.focus == focusLog && m.logFilter.active():
		m.logFilter = filter{}
		m.filterGen++
	case m.focus == focusMain && m.msgFilter.active():
		m.msgFilter = filter{}
	case m.focus != focusChannels:
		m.setFocus(focusChannels)
	}
	return nil
}

// channelKey handles the actions on the selected channel.
func (m *Model) channelKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	k := m.keys.Channel
	if key.Matches(msg, k.Doctor) {
		c, ok := m.selected()
		if !ok {
			return m.setStatus(slog.LevelWarn, "no channel selected: D checks a subscription channel (:doctor <name>)"), true
		}
		return m.runDoctor(c), true
	}
	if !key.Matches(msg, k.Track, k.Untrack, k.Broadcast, k.Retry, k.Leave, k.Faults) {
		if m.opts.ReadOnly && isActionKey(msg, DefaultKeyMap()) {
			return m.setStatus(slog.LevelWarn, errReadOnly.Error()), true
		}
		return nil, false
	}
	if key.Matches(msg, k.Faults) {
		m.faults = newFaultMenu(m.state, m.sel)
		m.overlay = overlayFaults
		return nil, true
	}
	c, ok := m.selected()
	if !ok {
		return m.setStatus(slog.LevelWarn, "no channel selected: join one with :join presence contact:123"), true
	}
	switch {
	case key.Matches(msg, k.Track):
		return m.openTrackForm(c), true
	case key.Matches(msg, k.Untrack):
		if !c.Tracked {
			return m.setStatus(slog.LevelWarn, "not tracking a presence on "+c.Name.String()), true
		}
		return m.untrack(c.Name), true
	case key.Matches(msg, k.Broadcast):
		return m.openBroadcastForm(c), true
	case key.Matches(msg, k.Retry):
		if c.Status == registry.StatusConnected {
			return m.setStatus(slog.LevelInfo, c.Name.String()+" is connected: nothing to retry (x provokes a failure)"), true
		}
		return m.retry(c.Name), true
	case key.Matches(msg, k.Leave):
		refs := ""
		if c.RefCount > 1 {
			refs = fmt.Sprintf(" It holds %d references; all of them are released.", c.RefCount)
		}
		track := ""
		if c.Tracked {
			track = " Your presence (" + c.TrackedAs + ") is untracked."
		}
		m.confirm = &confirm{
			title: "Leave channel",
			text:  "Leave " + c.Name.String() + "?" + refs + track,
			yes:   m.leave(c.Name),
		}
		m.overlay = overlayConfirm
		return nil, true
	}
	return nil, false
}

// isActionKey reports whether msg is one of the channel action keys of
// the default map (used to explain read-only mode).
func isActionKey(msg tea.KeyPressMsg, k KeyMap) bool {
	c := k.Channel
	return key.Matches(msg, c.Track, c.Untrack, c.Broadcast, c.Retry, c.Leave, c.Faults)
}

func (m *Model) channelsKey(msg tea.KeyPressMsg) tea.Cmd {
	if mv, ok := navKey(msg, m.keys, max(1, m.channelRowsVisible()-1)); ok {
		switch {
		case mv.top:
			m.selectRow(0)
		case mv.bottom:
			m.selectRow(len(m.rows) - 1)
			m.moveSelection(0)
		default:
			m.moveSelection(mv.delta)
		}
		return nil
	}
	if key.Matches(msg, m.keys.Open) {
		if _, ok := m.selected(); ok {
			m.setFocus(focusMain)
		}
	}
	return nil
}

func (m *Model) mainKey(msg tea.KeyPressMsg) tea.Cmd {
	page := max(1, m.lay.main.h-4)
	if m.tab == tabMessages {
		page /= 2
	}
	if mv, ok := navKey(msg, m.keys, page); ok {
		if m.tab != tabMessages {
			m.mainScroll.apply(mv)
			return nil
		}
		switch {
		case mv.top:
			m.msgEdge(true)
		case mv.bottom:
			m.msgEdge(false)
		default:
			m.msgMove(mv.delta)
		}
		return nil
	}
	if key.Matches(msg, m.keys.Open) {
		m.zoom = !m.zoom
		m.relayout()
	}
	return nil
}

func (m *Model) logKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if mv, ok := navKey(msg, k, max(1, m.lay.log.h-3)); ok {
		switch {
		case mv.top:
			m.logTop()
		case mv.bottom:
			m.logCur.follow, m.logNew = true, 0
		default:
			m.logScroll(mv.delta)
		}
		m.cache.log.valid = false
		return nil
	}
	switch {
	case key.Matches(msg, k.Log.Follow):
		if m.logCur.follow {
			m.logCur.follow = false
			if e, ok := m.logs.Last(); ok {
				m.logCur.seq = e.seq
			}
			m.logNew = 0
		} else {
			m.logCur.follow, m.logNew = true, 0
		}
	case key.Matches(msg, k.Log.Wrap):
		m.logWrap = !m.logWrap
	case key.Matches(msg, k.Log.Clear):
		m.logs.Clear()
		m.logNew = 0
	case key.Matches(msg, k.Open):
		m.zoom = !m.zoom
		m.relayout()
	}
	m.cache.log.valid = false
	return nil
}

// handleOverlayKey routes a key to the open dialog.
func (m *Model) handleOverlayKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	switch m.overlay {
	case overlayHelp:
		if key.Matches(msg, k.Help, k.Back, k.Quit) {
			m.overlay = overlayNone
		}
		return nil
	case overlayConfirm:
		switch {
		case key.Matches(msg, k.Dialog.Yes):
			cmd := m.confirm.yes
			m.confirm, m.overlay = nil, overlayNone
			return cmd
		case key.Matches(msg, k.Dialog.No):
			m.confirm, m.overlay = nil, overlayNone
		}
		return nil
	case overlayDoctor:
		return m.doctorKey(msg)
	case overlayFaults:
		f, closeMenu, why := m.faults.handle(msg, k)
		if why != "" {
			return m.setStatus(slog.LevelWarn, why)
		}
		if closeMenu {
			m.faults, m.overlay = nil, overlayNone
		}
		if f != nil {
			return m.fault(*f)
		}
		return nil
	case overlayForm:
		switch {
		case key.Matches(msg, k.Dialog.Cancel):
			m.form, m.overlay = nil, overlayNone
			return nil
		case key.Matches(msg, k.Dialog.Submit):
			cmd, err := m.form.submit(m.form.values())
			if err != nil {
				m.form.err = err.Error()
				return nil
			}
			m.form, m.overlay = nil, overlayNone
			return cmd
		case key.Matches(msg, k.Dialog.NextField):
			return m.form.focusField(m.form.focus + 1)
		case key.Matches(msg, k.Dialog.PrevField):
			return m.form.focusField(m.form.focus - 1)
		}
		m.form.err = ""
		return m.form.update(msg)
	case overlayFilter:
		switch {
		case key.Matches(msg, k.Dialog.Cancel):
			m.filterIn.Blur()
			m.overlay = overlayNone
			return nil
		case key.Matches(msg, k.Dialog.Submit):
			m.filterIn.Blur()
			m.overlay = overlayNone
			return m.applyFilter(m.filterIn.Value())
		}
		var cmd tea.Cmd
		m.filterIn, cmd = m.filterIn.Update(msg)
		return cmd
	case overlayCommand:
		switch {
		case key.Matches(msg, k.Dialog.Cancel):
			m.cmd.input.Blur()
			m.overlay = overlayNone
			return nil
		case key.Matches(msg, k.Dialog.Submit):
			line := m.cmd.input.Value()
			m.cmd.input.Blur()
			m.overlay = overlayNone
			if strings.TrimSpace(line) == "" {
				return nil
			}
			if n := len(m.cmd.history); n == 0 || m.cmd.history[n-1] != line {
				m.cmd.history = append(m.cmd.history, line)
				if len(m.cmd.history) > 100 {
					m.cmd.history = m.cmd.history[1:]
				}
			}
			return m.runCommand(line)
		case (msg.String() == "up" || msg.String() == "down") && len(m.cmd.input.MatchedSuggestions()) <= 1:
			// History when there is nothing to choose from.
			if len(m.cmd.history) == 0 {
				return nil
			}
			if msg.String() == "up" {
				m.cmd.histPos = max(0, m.cmd.histPos-1)
			} else {
				m.cmd.histPos = min(len(m.cmd.history), m.cmd.histPos+1)
			}
			v := ""
			if m.cmd.histPos < len(m.cmd.history) {
				v = m.cmd.history[m.cmd.histPos]
			}
			m.cmd.input.SetValue(v)
			m.cmd.input.CursorEnd()
			m.cmd.refresh()
			return nil
		}
		var cmd tea.Cmd
		m.cmd.input, cmd = m.cmd.input.Update(msg)
		m.cmd.refresh()
		return cmd
	}
	return nil
}

// updateOverlay passes non-key messages (cursor blinks) to the dialog.
func (m *Model) updateOverlay(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch m.overlay {
	case overlayCommand:
		m.cmd.input, cmd = m.cmd.input.Update(msg)
		m.cache.status.valid = false
	case overlayFilter:
		m.filterIn, cmd = m.filterIn.Update(msg)
		m.cache.status.valid = false
	case overlayForm:
		cmd = m.form.update(msg)
	}
	return cmd
}

// handlePaste sends pasted text to the open input.
func (m *Model) handlePaste(msg tea.PasteMsg) tea.Cmd {
	var cmd tea.Cmd
	switch m.overlay {
	case overlayCommand:
		m.cmd.input, cmd = m.cmd.input.Update(msg)
		m.cmd.refresh()
	case overlayFilter:
		m.filterIn, cmd = m.filterIn.Update(msg)
	case overlayForm:
		cmd = m.form.update(msg)
	}
	m.invalidate()
	return cmd
}

// openCommand opens the command line with text.
func (m *Model) openCommand(text string) tea.Cmd {
	m.overlay = overlayCommand
	names := make([]string, 0, len(m.state.Channels))
	for _, c := range m.state.Channels {
		names = append(names, c.Name.String())
	}
	m.cmd.names = names
	m.cmd.histPos = len(m.cmd.history)
	m.cmd.input.SetValue(text)
	m.cmd.input.CursorEnd()
	m.cmd.refresh()
	return m.cmd.input.Focus()
}

// openFilter opens the filter input of the focused pane.
func (m *Model) openFilter() tea.Cmd {
	m.overlay = overlayFilter
	cur := m.chanFilter.text
	switch m.focus {
	case focusLog:
		cur = m.logFilter.text
	case focusMain:
		cur = m.msgFilter.text
		m.setTab(tabMessages)
	}
	m.filterIn.SetValue(cur)
	m.filterIn.CursorEnd()
	return m.filterIn.Focus()
}

// applyFilter sets the focused pane's filter.
func (m *Model) applyFilter(text string) tea.Cmd {
	f, err := newFilter(text)
	switch m.focus {
	case focusChannels:
		m.chanFilter = f
		m.rebuildRows()
	case focusLog:
		m.logFilter = f
		m.filterGen++
		m.logNew = 0
	case focusMain:
		m.msgFilter = f
	}
	if err != nil {
		return m.setStatus(slog.LevelWarn, err.Error())
	}
	if f.active() {
		return m.setStatus(slog.LevelInfo, "filter "+f.text+" on "+m.focusName()+" (esc clears)")
	}
	return nil
}

// openTrackForm opens the track-presence form for a channel.
func (m *Model) openTrackForm(c registry.ChannelInfo) tea.Cmd {
	if c.Name.Kind != registry.KindPresence {
		return m.setStatus(slog.LevelWarn, "p tracks presence: "+c.Name.String()+" is a "+c.Name.Kind.String()+" channel")
	}
	user := m.state.Token.Subject
	if user == "" {
		user = m.opts.User
	}
	if user == "" {
		user = "me"
	}
	intro := "on " + c.Name.String() + " — you show under this user id (your presence key), marked (you)"
	if c.Config.PresenceKey != "" {
		user = c.Config.PresenceKey
	}
	if c.Config.PresenceKey == "" || c.Tracked {
		intro += "; the channel rejoins with it"
	}
	name := c.Name
	m.form = newForm(m.st, "Track presence", intro, func(v []string) (tea.Cmd, error) {
		id := strings.TrimSpace(v[0])
		if id == "" {
			return nil, errors.New("user id is empty")
		}
		payload := json.RawMessage("{}")
		if strings.TrimSpace(v[2]) != "" {
			p, err := parseObject("payload", v[2])
			if err != nil {
				return nil, err
			}
			payload = p
		}
		payload, err := mergeUser(payload, id, strings.TrimSpace(v[1]))
		if err != nil {
			return nil, err
		}
		u := registry.PresenceUser{UserID: id, Name: strings.TrimSpace(v[1]), Payload: payload}
		return m.track(name, u), nil
	},
		[3]string{"User id (presence key)", user, "alice"},
		[3]string{"Name", user, "Alice"},
		[3]string{"Payload (JSON object)", `{"status":"online"}`, `{"status":"online"}`},
	)
	m.form.setWidth(m.dialogWidth())
	m.overlay = overlayForm
	return m.form.focusField(0)
}

// mergeUser adds user_id and name to a presence payload object unless set.
func mergeUser(payload json.RawMessage, id, name string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	if _, ok := obj["user_id"]; !ok {
		b, _ := json.Marshal(id)
		obj["user_id"] = b
	}
	if _, ok := obj["name"]; !ok && name != "" {
		b, _ := json.Marshal(name)
		obj["name"] = b
	}
	return json.Marshal(obj)
}

// openBroadcastForm opens the broadcast form for a channel.
func (m *Model) openBroadcastForm(c registry.ChannelInfo) tea.Cmd {
	name := c.Name
	m.form = newForm(m.st, "Broadcast", "on "+name.String()+" — the payload is checked before sending", func(v []string) (tea.Cmd, error) {
		ev := strings.TrimSpace(v[0])
		if ev == "" {
			return nil, errors.New("event is empty")
		}
		p, err := parseObject("payload", v[1])
		if err != nil {
			return nil, err
		}
		return m.broadcast(name, ev, p), nil
	},
		[3]string{"Event", "message", "cursor"},
		[3]string{"Payload (JSON object)", `{"text":"hello"}`, `{"x":1,"y":2}`},
	)
	m.form.setWidth(m.dialogWidth())
	m.overlay = overlayForm
	return m.form.focusField(0)
}

// action returns a Cmd that runs f against the manager with a timeout and
// reports the outcome as an actionDoneMsg. It shows a pending status now.
func (m *Model) action(op, subject, ok string, f func(ctx context.Context, mgr Manager) error) tea.Cmd {
	if m.opts.ReadOnly {
		return m.fail(op, subject, errReadOnly)
	}
	mgr := m.opts.Manager
	if mgr == nil {
		return m.fail(op, subject, errors.New("no channel manager"))
	}
	parent, timeout := m.opts.Context, m.opts.ActionTimeout
	m.setStatus(slog.LevelInfo, strings.TrimSpace(op+" "+subject)+" …")
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		err := f(ctx, mgr)
		return actionDoneMsg{op: op, subject: subject, ok: ok, err: err}
	}
}

func (m *Model) join(req JoinRequest) tea.Cmd {
	ok := "joined " + req.Name.String()
	if req.As != "" {
		ok += " as " + req.As
	}
	return m.action("join", req.Name.String(), ok, func(ctx context.Context, mgr Manager) error {
		return mgr.Join(ctx, req)
	})
}

func (m *Model) leave(n registry.Name) tea.Cmd {
	return m.action("leave", n.String(), "left "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Leave(ctx, n)
	})
}

func (m *Model) track(n registry.Name, u registry.PresenceUser) tea.Cmd {
	return m.action("track", n.String(), "tracking "+u.UserID+" on "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Track(ctx, n, u)
	})
}

func (m *Model) untrack(n registry.Name) tea.Cmd {
	return m.action("untrack", n.String(), "untracked on "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Untrack(ctx, n)
	})
}

func (m *Model) broadcast(n registry.Name, event string, p json.RawMessage) tea.Cmd {
	return m.action("broadcast", n.String(), "sent "+event+" on "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Broadcast(ctx, n, event, p)
	})
}

func (m *Model) retry(n registry.Name) tea.Cmd {
	return m.action("retry", n.String(), "retrying "+n.String()+" now", func(ctx context.Context, mgr Manager) error {
		return mgr.RetryNow(ctx, n)
	})
}

func (m *Model) fault(f Fault) tea.Cmd {
	return m.action("fault", f.String(), faultSummary(f), func(ctx context.Context, mgr Manager) error {
		return mgr.Fault(ctx, f)
	})
}

// runCommand parses and runs a ":" command line.
func (m *Model) runCommand(line string) tea.Cmd {
	c, err := parseCommand(line)
	if err != nil {
		return m.fail("command", line, err)
	}
	name := func(i int) (registry.Name, error) {
		if i >= len(c.args) {
			return registry.Name{}, fmt.Errorf("%w: %s", errUsage, usage(c.name))
		}
		return resolveName(c.args[i], m.state.Channels, m.state.Target.Tenant)
	}
	wantArgs := func(n int) error {
		if len(c.args) != n {
			return fmt.Errorf("%w: %s", errUsage, usage(c.name))
		}
		return nil
	}
	switch c.name {
	case "quit":
		m.quitting = true
		return tea.Quit
	case "help":
		m.overlay = overlayHelp
		return nil
	case "join":
		req, err := parseJoin(c, m.state.Target.Tenant)
		if err != nil {
			return m.fail("join", line, err)
		}
		return m.join(req)
	case "leave", "untrack", "retry":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		n, err := name(0)
		if err != nil {
			return m.fail(c.name, c.args[0], err)
		}
		switch c.name {
		case "leave":
			return m.leave(n)
		case "untrack":
			return m.untrack(n)
		}
		return m.retry(n)
	case "track":
		n, err := name(0)
		if err != nil {
			return m.fail("track", line, err)
		}
		p, err := parseObject("payload", c.rest)
		if err != nil {
			return m.fail("track", n.String(), err)
		}
		u, err := presenceUser(p, "")
		if err != nil {
			return m.fail("track", n.String(), err)
		}
		return m.track(n, u)
	case "broadcast":
		n, err := name(0)
		if err != nil {
			return m.fail("broadcast", line, err)
		}
		if len(c.args) < 2 {
			return m.fail("broadcast", n.String(), fmt.Errorf("%w: %s", errUsage, usage("broadcast")))
		}
		p, err := parseObject("payload", c.rest)
		if err != nil {
			return m.fail("broadcast", n.String(), err)
		}
		return m.broadcast(n, c.args[1], p)
	case "drop", "expire-token", "cleanup":
		if err := wantArgs(0); err != nil {
			return m.fail(c.name, "", err)
		}
		switch c.name {
		case "drop":
			return m.fault(Fault{Kind: FaultDrop})
		case "expire-token":
			return m.fault(Fault{Kind: FaultExpireToken})
		}
		return m.action("cleanup", "", "left every channel", func(ctx context.Context, mgr Manager) error {
			return mgr.Cleanup(ctx)
		})
	case "freeze", "latency":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		d, err := parseDuration(c.args[0])
		if err != nil {
			return m.fail(c.name, c.args[0], err)
		}
		if c.name == "freeze" {
			if d <= 0 {
				return m.fail("freeze", c.args[0], errors.New("freeze needs a positive duration"))
			}
			return m.fault(Fault{Kind: FaultFreeze, Duration: d})
		}
		return m.fault(Fault{Kind: FaultLatency, Duration: d})
	case "fail-connects":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		n, err := strconv.Atoi(c.args[0])
		if err != nil || n < 0 {
			return m.fail(c.name, c.args[0], fmt.Errorf("%q is not a count (0 or more)", c.args[0]))
		}
		return m.fault(Fault{Kind: FaultFailConnects, Count: n})
	case "kick":
		if len(c.args) < 1 || len(c.args) > 2 {
			return m.fail("kick", "", fmt.Errorf("%w: %s", errUsage, usage("kick")))
		}
		n, err := name(0)
		if err != nil {
			return m.fail("kick", c.args[0], err)
		}
		mode := registry.KickError
		if len(c.args) == 2 {
			if mode, err = registry.ParseKickMode(c.args[1]); err != nil {
				return m.fail("kick", c.args[1], err)
			}
		}
		return m.fault(Fault{Kind: FaultKick, Channel: n, Mode: mode})
	case "reject-joins":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		f := Fault{Kind: FaultRejectJoins}
		if n, err := strconv.Atoi(c.args[0]); err == nil && n >= 0 {
			f.Count = n
		} else if d, err := time.ParseDuration(c.args[0]); err == nil && d >= 0 {
			f.Duration = d
		} else {
			return m.fail(c.name, c.args[0], fmt.Errorf("%q is neither a count nor a duration (3, 10s)", c.args[0]))
		}
		return m.fault(f)
	case "doctor":
		if len(c.args) > 1 {
			return m.fail(c.name, "", fmt.Errorf("%w: %s", errUsage, usage(c.name)))
		}
		sel, ok := m.selected()
		if len(c.args) == 1 {
			n, err := name(0)
			if err != nil {
				return m.fail(c.name, c.args[0], err)
			}
			if sel, ok = m.state.Channel(n); !ok {
				return m.fail(c.name, n.String(), registry.ErrNotFound)
			}
		}
		if !ok {
			return m.fail(c.name, "", errors.New("no channel selected: give a subscription channel, e.g. :doctor subscription:project:456"))
		}
		return m.runDoctor(sel)
	case "seek", "speed":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		if c.name == "seek" {
			return m.seekCommand(c.args[0])
		}
		return m.speedCommand(c.args[0])
	case "policy":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		spec := c.args[0]
		return m.action("policy", spec, "retry policy set to "+spec, func(ctx context.Context, mgr Manager) error {
			return mgr.SetPolicy(ctx, spec)
		})
	case "export":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		path := c.args[0]
		return m.action("export", path, "exported the log and events to "+path, func(ctx context.Context, mgr Manager) error {
			return exportFile(ctx, mgr, path)
		})
	}
	return m.fail("command", line, fmt.Errorf("unknown command %q", c.name))
}

// exportFile writes the manager's NDJSON export to path (created, or
// truncated; a temporary file renamed in place so a failure loses
// nothing).
func exportFile(ctx context.Context, mgr Manager, path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".rtm-export-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	err = mgr.Export(ctx, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}

// actionDone reports an action's outcome.
func (m *Model) actionDone(msg actionDoneMsg) tea.Cmd {
	if msg.err != nil {
		return m.fail(msg.op, msg.subject, msg.err)
	}
	return m.setStatus(slog.LevelInfo, msg.ok)
}

// fail shows an action's error in the status line and the log, with a
// hint, and logs it to the log file (from a Cmd).
func (m *Model) fail(op, subject string, err error) tea.Cmd {
	hint := hintFor(err)
	text := op
	if subject != "" {
		text += " " + subject
	}
	text += ": " + trimPrefix(err.Error())
	if hint != "" {
		text += " — " + hint
	}
	attrs := []registry.LogAttr{{Key: "op", Value: op}}
	if subject != "" {
		attrs = append(attrs, registry.LogAttr{Key: "subject", Value: subject})
	}
	attrs = append(attrs, registry.LogAttr{Key: "err", Value: trimPrefix(err.Error())})
	if hint != "" {
		attrs = append(attrs, registry.LogAttr{Key: "hint", Value: hint})
	}
	m.addLog(m.localLog(slog.LevelError, "Action failed", attrs...), true)
	status := m.setStatus(slog.LevelError, text)
	logger := m.opts.Logger
	if logger == nil {
		return status
	}
	args := make([]any, 0, 2*len(attrs))
	for _, a := range attrs {
		args = append(args, a.Key, a.Value)
	}
	ctx := m.opts.Context
	return tea.Batch(status, func() tea.Msg {
		logger.ErrorContext(ctx, "Action failed", args...)
		return nil
	})
}

// trimPrefix drops "registry: " style package prefixes from messages.
func trimPrefix(s string) string {
	for _, p := range []string{"registry: ", "tui: ", "realtime: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// hintFor suggests what to do about an error.
func hintFor(err error) string {
	var ce *registry.ChannelError
	var capErr *registry.CapError
	switch {
	case errors.As(err, &ce):
		return registry.Hint(ce.Code, ce.Reason)
	case errors.As(err, &capErr):
		return registry.Hint("CapReached", "")
	case errors.Is(err, registry.ErrQueueFull):
		return registry.Hint("QueueFull", "")
	case errors.Is(err, registry.ErrUnsupported):
		return "server-side faults need the embedded server (rtm with no project) or rtm serve"
	case errors.Is(err, registry.ErrNotFound):
		return "the channel is not in the registry (it may have been left): :join it first"
	case errors.Is(err, registry.ErrInvalidName):
		return "names are [tenant:ID:]TYPE:ENTITY_TYPE:ENTITY_ID, e.g. presence:contact:123"
	case errors.Is(err, registry.ErrInvalidPayload):
		return "payloads are JSON objects"
	case errors.Is(err, registry.ErrClosed):
		return "the manager is closed: restart rtm"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time: the connection may be down or frozen — see the Retries tab"
	case errors.Is(err, errUsage):
		return "tab completes commands and names; :help lists the keys"
	case errors.Is(err, errReadOnly):
		return ""
	case errors.Is(err, ErrNoDatabase):
		return "start rtm with --db <postgres url> (or DATABASE_URL) of the database whose changes Realtime streams; the embedded server's --db auto needs PostgreSQL installed"
	}
	return registry.Hint("", err.Error())
}
