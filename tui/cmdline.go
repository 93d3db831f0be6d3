package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"rtm/registry"
	"rtm/theme"
)

// cmdLine is the ":" command line, a dialog drawn in the status line
// with its completions above it. It owns its history (the last
// maxHistory lines run, ↑/↓ recall them) and lives on across openings.
type cmdLine struct {
	input   textinput.Model
	history []string
	histPos int
	names   []string // channel names for completion
	width   int
	// replay offers the replay commands in completions.
	replay bool
}

// maxHistory bounds the command line's history.
const maxHistory = 100

// openCommand opens the command line with text.
func (m *Model) openCommand(text string) tea.Cmd {
	names := make([]string, 0, len(m.state.Channels))
	for _, c := range m.state.Channels {
		names = append(names, c.Name.String())
	}
	c := m.cmd
	c.names = names
	c.histPos = len(c.history)
	c.input.SetValue(text)
	c.input.CursorEnd()
	c.refresh()
	m.openDialog(c)
	return c.input.Focus()
}

func (c *cmdLine) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		k := m.keys.Dialog
		switch {
		case key.Matches(msg, k.Cancel):
			c.input.Blur()
			return nil, true
		case key.Matches(msg, k.Submit):
			line := c.input.Value()
			c.input.Blur()
			if strings.TrimSpace(line) == "" {
				return nil, true
			}
			// A pasted token is never kept: the history has it masked.
			c.remember(maskLine(line))
			return m.runCommand(line), true
		case (msg.String() == "up" || msg.String() == "down") && len(c.input.MatchedSuggestions()) <= 1:
			// History when there is nothing to choose from.
			c.recall(msg.String() == "up")
			return nil, false
		}
		c.input, cmd = c.input.Update(msg)
		c.refresh()
	case tea.PasteMsg:
		c.input, cmd = c.input.Update(msg)
		c.refresh()
	default:
		// A cursor blink: the status line draws the input afresh.
		c.input, cmd = c.input.Update(msg)
	}
	return cmd, false
}

// remember appends a line run to the history (not twice in a row).
func (c *cmdLine) remember(line string) {
	if n := len(c.history); n > 0 && c.history[n-1] == line {
		return
	}
	c.history = append(c.history, line)
	if len(c.history) > maxHistory {
		c.history = c.history[1:]
	}
}

// recall shows the previous (up) or next history line; past the newest
// the line is empty.
func (c *cmdLine) recall(up bool) {
	if len(c.history) == 0 {
		return
	}
	if up {
		c.histPos = max(0, c.histPos-1)
	} else {
		c.histPos = min(len(c.history), c.histPos+1)
	}
	v := ""
	if c.histPos < len(c.history) {
		v = c.history[c.histPos]
	}
	c.input.SetValue(v)
	c.input.CursorEnd()
	c.refresh()
}

func (c *cmdLine) help(k KeyMap) []key.Binding {
	return []key.Binding{k.Dialog.Complete, withHelp(k.Dialog.NextField, "↑/↓", "history"), withHelp(k.Dialog.Submit, "enter", "run"), k.Dialog.Cancel}
}

func (c *cmdLine) statusLine(m *Model, w int) string {
	if v := c.input.Value(); maskLine(v) != v {
		// A token typed or pasted (":as --jwt ..."): echo it masked.
		return m.padStatus(fitInput(m.st.Prompt.Render(c.input.Prompt)+m.st.Input.Render(maskLine(v))+"▏", w))
	}
	return m.padStatus(fitInput(c.input.View(), w))
}

// maskLine masks the secrets of a command line: the token of ":as
// --jwt", and any key or token elsewhere.
func maskLine(line string) string {
	if name, rest, _ := strings.Cut(strings.TrimSpace(line), " "); strings.TrimPrefix(name, ":") == "as" && strings.Contains(rest, "--jwt") {
		return name + " " + maskSpec(rest)
	}
	return registry.MaskText(line)
}

// view puts the completions just above the command line, left aligned.
func (c *cmdLine) view(m *Model, w, h int) ([]string, int, int) {
	rows := c.suggestionsView(m.st, w)
	return rows, 0, h - len(rows)
}

func newInput(st *theme.Styles, prompt, placeholder string) textinput.Model {
	in := textinput.New()
	in.Prompt = prompt
	in.Placeholder = placeholder
	setInputStyles(&in, st)
	return in
}

func setInputStyles(in *textinput.Model, st *theme.Styles) {
	s := textinput.DefaultStyles(st.Dark)
	s.Focused.Prompt = st.Prompt
	s.Blurred.Prompt = st.Prompt
	s.Focused.Text = st.Input
	s.Focused.Placeholder = st.Placeholder
	s.Blurred.Placeholder = st.Placeholder
	s.Focused.Suggestion = st.Placeholder
	if st.NoColor {
		plain := lipgloss.NewStyle()
		s.Focused.Text, s.Focused.Suggestion, s.Focused.Placeholder = plain, plain.Faint(true), plain.Faint(true)
		s.Blurred.Text, s.Blurred.Placeholder = plain, plain.Faint(true)
	}
	in.SetStyles(s)
}

func newCmdLine(st *theme.Styles, replay bool) *cmdLine {
	in := newInput(st, ":", "command — tab completes, help lists them")
	in.ShowSuggestions = true
	return &cmdLine{input: in, replay: replay}
}

func (c *cmdLine) setStyles(st *theme.Styles) { setInputStyles(&c.input, st) }

func (c *cmdLine) setWidth(m *Model) {
	c.width = m.width
	c.input.SetWidth(max(10, m.width-4))
}

// refresh recomputes the completion candidates for the current value.
func (c *cmdLine) refresh() {
	c.input.SetSuggestions(completions(c.input.Value(), c.names, c.replay))
}

// suggestionsView lists the matching completions above the command line.
func (c *cmdLine) suggestionsView(st *theme.Styles, w int) []string {
	ms := c.input.MatchedSuggestions()
	if len(ms) <= 1 && (len(ms) == 0 || ms[0] == c.input.Value()) {
		return nil
	}
	cur := c.input.CurrentSuggestionIndex()
	const maxShown = 6
	start := 0
	if cur >= maxShown {
		start = cur - maxShown + 1
	}
	end := min(len(ms), start+maxShown)
	width := 0
	for _, s := range ms[start:end] {
		width = max(width, textWidth(s)+3)
	}
	width = min(width, w)
	var out []string
	for i := start; i < end; i++ {
		s := " :" + ms[i] + " "
		if i == cur {
			out = append(out, st.Table.Selected.Render(fitText(s, width)))
		} else {
			out = append(out, st.Muted.Render(fitText(s, width)))
		}
	}
	if len(ms) > end {
		out = append(out, st.Subtle.Render(fitText(fmt.Sprintf(" … %d more", len(ms)-end), width)))
	}
	return out
}
