package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// helpDialog shows every key ([Model.FullHelp]) and the commands.
type helpDialog struct{}

func (helpDialog) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	k, ok := msg.(tea.KeyPressMsg)
	return nil, ok && key.Matches(k, m.keys.Help, m.keys.Back, m.keys.Quit)
}

func (helpDialog) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Help, "?", "close help"), k.Dialog.Cancel}
}

func (helpDialog) view(m *Model, w, h int) ([]string, int, int) {
	return centred(m.viewHelpDialog(h), w, h)
}

// viewHelpDialog renders the full help.
func (m *Model) viewHelpDialog(maxH int) []string {
	w := min(m.width-2, 110)
	hm := m.help
	hm.ShowAll = true
	hm.SetWidth(w - 4)
	// The key groups side by side, or in as many bands as it takes for
	// none to be cut.
	groups := m.FullHelp()
	var body []string
	measure := hm
	measure.SetWidth(0) // unlimited: the width the columns need
	for len(groups) > 0 {
		n := len(groups)
		for n > 1 && ansi.StringWidth(firstLine(measure.FullHelpView(groups[:n]))) > w-4 {
			n--
		}
		if len(body) > 0 {
			body = append(body, "")
		}
		body = append(body, strings.Split(hm.FullHelpView(groups[:n]), "\n")...)
		groups = groups[n:]
	}
	var names []string
	for _, c := range commands() {
		if m.opts.Replay == nil && (c.name == "seek" || c.name == "speed") {
			continue
		}
		names = append(names, c.name)
	}
	cmds := wrapText("commands (:) — "+strings.Join(names, " "), w-4)
	if len(body)+1+len(cmds)+2 > maxH {
		cmds = []string{"commands: type : and tab lists them"}
	}
	body = append(body, "")
	for _, l := range cmds {
		body = append(body, m.st.Muted.Render(l))
	}
	if len(body)+2 > maxH && maxH > 3 {
		body = append(body[:maxH-3], m.st.Muted.Render("… (a taller terminal shows every key)"))
	}
	return dialogBox(m.st, "Keys", body, w)
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
