package tui

import (
	"log/slog"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"rtm/theme"
)

// filterInput is the "/" filter of the focused pane, a dialog drawn in
// the status line. It lives on across openings.
type filterInput struct {
	input textinput.Model
}

func newFilterInput(st *theme.Styles) *filterInput {
	return &filterInput{input: newInput(st, "/", "regexp, ! inverts")}
}

// openFilter opens the filter input of the focused pane.
func (m *Model) openFilter() tea.Cmd {
	cur := m.filterPane().filterText()
	if m.focus == focusMain {
		m.setTab(tabMessages)
	}
	f := m.filter
	f.input.SetValue(cur)
	f.input.CursorEnd()
	m.openDialog(f)
	return f.input.Focus()
}

func (f *filterInput) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	if kp, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(kp, m.keys.Dialog.Cancel):
			f.input.Blur()
			return nil, true
		case key.Matches(kp, m.keys.Dialog.Submit):
			f.input.Blur()
			return m.applyFilter(f.input.Value()), true
		}
	}
	var cmd tea.Cmd
	f.input, cmd = f.input.Update(msg)
	return cmd, false
}

func (f *filterInput) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Dialog.Submit, "enter", "apply"), withHelp(k.Dialog.Cancel, "esc", "cancel")}
}

func (f *filterInput) statusLine(m *Model, w int) string {
	in := fitInput(f.input.View(), max(10, w-40))
	return m.padStatus(fitANSI(in+"  "+m.st.Muted.Render("in "+m.focusName()+" · enter apply · esc cancel"), w))
}

// view draws nothing over the body: the panes stay in sight.
func (f *filterInput) view(*Model, int, int) ([]string, int, int) { return nil, 0, 0 }

func (f *filterInput) setStyles(st *theme.Styles) { setInputStyles(&f.input, st) }

func (f *filterInput) setWidth(m *Model) { f.input.SetWidth(max(10, m.width-44)) }

// filterPane returns the focused pane.
func (m *Model) filterPane() filterable {
	switch m.focus {
	case focusLog:
		return m.log
	case focusMain:
		return m.main
	}
	return m.chans
}

// applyFilter sets the focused pane's filter.
func (m *Model) applyFilter(text string) tea.Cmd {
	f, err := newFilter(text)
	m.filterPane().setFilter(f)
	if m.focus == focusChannels {
		m.rebuildRows()
	}
	if err != nil {
		return m.setStatus(slog.LevelWarn, err.Error())
	}
	if f.active() {
		return m.setStatus(slog.LevelInfo, "filter "+f.text+" on "+m.focusName()+" (esc clears)")
	}
	return nil
}
