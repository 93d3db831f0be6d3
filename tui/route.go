package tui

import (
	"fmt"
	"log/slog"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// This file routes keys: the top dialog first, then the global keys
// (focus, tabs, zoom, esc), the open tab's own keys, the replay keys,
// the actions on the selected channel, and the focused pane.

// handleKey routes a key: the open dialog first, then global keys, then
// the selected channel's actions, then the focused pane.
func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		m.quitting = true
		return tea.Quit
	}
	if m.dialogs.top() != nil {
		return m.updateDialog(msg)
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		m.quitting = true
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.openDialog(helpDialog{})
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
		m.setTab((m.main.tab + 1) % m.main.shown)
		return nil
	case key.Matches(msg, k.PrevTab):
		m.setTab((m.main.tab + m.main.shown - 1) % m.main.shown)
		return nil
	case key.Matches(msg, k.Zoom):
		m.zoom = !m.zoom
		m.relayout()
		return nil
	case key.Matches(msg, k.Apps):
		m.openApps()
		return nil
	case key.Matches(msg, k.Limits):
		m.openLimits()
		return nil
	case key.Matches(msg, k.Back):
		return m.back()
	}
	if m.focus != focusLog && m.main.current().update(msg, k) {
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
	m.main.auto = false
	m.main.show(t)
}

// autoTab shows the tab that suits the selected channel until the user
// picks one: the viewers of a presence channel, else the messages.
func (m *Model) autoTab() {
	if !m.main.auto || m.chans.sel.IsZero() {
		return
	}
	t := tabMessages
	if m.chans.sel.Kind == registry.KindPresence {
		t = tabPresence
	}
	m.main.show(t)
}

// back is esc: unzoom, clear the focused pane's filter, or focus the
// channels.
func (m *Model) back() tea.Cmd {
	switch {
	case m.zoom:
		m.zoom = false
		m.relayout()
	case m.filterPane().filterText() != "":
		m.filterPane().clearFilter()
		if m.focus == focusChannels {
			m.rebuildRows()
		}
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
	if !key.Matches(msg, k.Track, k.Untrack, k.Broadcast, k.Retry, k.Leave, k.Faults, k.JoinOthers) {
		if m.opts.ReadOnly && isActionKey(msg, DefaultKeyMap()) {
			return m.setStatus(slog.LevelWarn, errReadOnly.Error()), true
		}
		return nil, false
	}
	if key.Matches(msg, k.Faults) {
		menu := newFaultMenu(m.state, m.chans.sel)
		if m.multi() {
			menu.title = "Faults on " + sanitize(m.activeName()) + "'s socket"
		}
		m.openDialog(menu)
		return nil, true
	}
	c, ok := m.selected()
	if !ok {
		return m.setStatus(slog.LevelWarn, "no channel selected: join one with :join presence contact:123"), true
	}
	switch {
	case key.Matches(msg, k.JoinOthers):
		return m.joinOthers(), true
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
		m.openDialog(&confirmDialog{
			title: "Leave channel",
			text:  "Leave " + c.Name.String() + "?" + refs + track,
			yes:   m.leave(c.Name),
		})
		return nil, true
	}
	return nil, false
}

// isActionKey reports whether msg is one of the channel action keys of
// the default map (used to explain read-only mode).
func isActionKey(msg tea.KeyPressMsg, k KeyMap) bool {
	c := k.Channel
	return key.Matches(msg, c.Track, c.Untrack, c.Broadcast, c.Retry, c.Leave, c.Faults, c.JoinOthers)
}

func (m *Model) channelsKey(msg tea.KeyPressMsg) tea.Cmd {
	if mv, ok := navKey(msg, m.keys, m.chans.page()); ok {
		m.channelSelected(m.chans.navigate(mv))
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
	t := m.main.current()
	if mv, ok := navKey(msg, m.keys, m.main.page()); ok {
		t.navigate(m.mainView(), mv)
		return nil
	}
	if key.Matches(msg, m.keys.Open) {
		m.zoom = !m.zoom
		m.relayout()
	}
	return nil
}

func (m *Model) logKey(msg tea.KeyPressMsg) tea.Cmd {
	if !m.log.update(msg, m.keys) && key.Matches(msg, m.keys.Open) {
		m.zoom = !m.zoom
		m.relayout()
	}
	return nil
}

// handlePaste sends pasted text to the open dialog.
func (m *Model) handlePaste(msg tea.PasteMsg) tea.Cmd {
	cmd := m.updateDialog(msg)
	m.invalidate()
	return cmd
}
