package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// confirmDialog is a yes/no dialog: yes runs the action.
type confirmDialog struct {
	title string
	text  string
	yes   tea.Cmd
}

func (c *confirmDialog) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	k, ok := msg.(tea.KeyPressMsg)
	switch {
	case !ok:
		return nil, false
	case key.Matches(k, m.keys.Dialog.Yes):
		return c.yes, true
	case key.Matches(k, m.keys.Dialog.No):
		return nil, true
	}
	return nil, false
}

func (c *confirmDialog) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Dialog.Yes, k.Dialog.No}
}

func (c *confirmDialog) view(m *Model, w, h int) ([]string, int, int) {
	st, dw := m.st, m.dialogWidth()
	var body []string
	for _, l := range wrapText(c.text, dw-4) {
		body = append(body, st.Text.Render(l))
	}
	body = append(body, "", st.Dialog.Key.Render("y")+st.Muted.Render(" yes   ")+st.Dialog.Key.Render("n")+st.Muted.Render(" no"))
	return centred(dialogBox(st, c.title, body, dw), w, h)
}
