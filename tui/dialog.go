package tui

import (
	"reflect"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"rtm/theme"
)

// dialog is a window on top of the panes: the help, a form, the confirm
// dialog, the fault menu, the doctor report, and the command line and
// filter input (drawn in the status line). Open dialogs sit on the
// root model's [dialogStack]; the top one gets every key, paste and
// component message (cursor blinks), draws itself over the body, and
// names its keys in the footer. Adding a dialog is one file with a type
// implementing this interface and the place that opens it
// ([Model.openDialog]).
type dialog interface {
	// update handles a message; done closes the dialog. It may open
	// another dialog (which then stays open) or run an action (the
	// returned Cmd).
	update(m *Model, msg tea.Msg) (cmd tea.Cmd, done bool)
	// view returns the dialog's rows and where they go over a body of w
	// x h cells; no rows leave the body as it is.
	view(m *Model, w, h int) (rows []string, x, y int)
	// help returns the keys the footer shows while the dialog is open.
	help(k KeyMap) []key.Binding
}

// inputLine is a dialog drawn in the status line (the command line, the
// filter input).
type inputLine interface {
	statusLine(m *Model, w int) string
}

// restyler is a dialog whose inputs follow a theme change.
type restyler interface {
	setStyles(st *theme.Styles)
}

// resizer is a dialog whose inputs follow the terminal's width.
type resizer interface {
	setWidth(m *Model)
}

// dialogStack holds the open dialogs, the top last.
type dialogStack []dialog

// top returns the top dialog, or nil.
func (s dialogStack) top() dialog {
	if len(s) == 0 {
		return nil
	}
	return s[len(s)-1]
}

// topDialog returns the top dialog if it is a T.
func topDialog[T dialog](m *Model) (T, bool) {
	d, ok := m.dialogs.top().(T)
	return d, ok
}

// openDialog puts d on top; an open dialog of the same type is closed
// first (a second doctor run replaces the first report).
func (m *Model) openDialog(d dialog) {
	t := reflect.TypeOf(d)
	m.dialogs = slices.DeleteFunc(m.dialogs, func(o dialog) bool { return reflect.TypeOf(o) == t })
	m.dialogs = append(m.dialogs, d)
}

// closeDialog removes d from the stack.
func (m *Model) closeDialog(d dialog) {
	m.dialogs = slices.DeleteFunc(m.dialogs, func(o dialog) bool { return o == d })
}

// updateDialog passes msg to the top dialog and closes it when done.
func (m *Model) updateDialog(msg tea.Msg) tea.Cmd {
	d := m.dialogs.top()
	if d == nil {
		return nil
	}
	cmd, done := d.update(m, msg)
	if done {
		m.closeDialog(d)
	}
	return cmd
}

// drawDialog draws the top dialog's rows over the body lines, through
// the model's splice cache.
func (m *Model) drawDialog(body, rows []string, x, y, w int) []string {
	out := append([]string(nil), body...)
	c := &m.cache.splice
	c.next()
	for i, d := range rows {
		if y+i >= 0 && y+i < len(out) {
			out[y+i] = c.splice(out[y+i], d, x, w)
		}
	}
	return out
}

// spliceCache keeps, for the last two frames, what splice made of a
// body line under a dialog row, and the widths of the dialog rows.
// Measuring and cutting painted text is what a dialog costs (grapheme
// by grapheme), while frame to frame most lines only move (the log and
// the messages scroll by a row) and the dialog rows stay: with the
// cache a line is cut once for as long as it is on screen. Bounded: an
// entry not used in the last frame is dropped, so it holds at most two
// screens of lines.
type spliceCache struct {
	cur, prev       map[spliceKey]string
	widths, widthsP map[string]int
}

// spliceKey is a body line under a dialog row (itself, its column and
// the screen's width).
type spliceKey struct {
	line, over string
	x, w       int
}

// next starts a frame: what the last one did not use is forgotten.
func (c *spliceCache) next() {
	c.prev, c.cur = c.cur, make(map[spliceKey]string, len(c.cur))
	c.widthsP, c.widths = c.widths, make(map[string]int, len(c.widths))
}

// splice is splice(line, over, x, w), remembered.
func (c *spliceCache) splice(line, over string, x, w int) string {
	k := spliceKey{line, over, x, w}
	if s, ok := c.cur[k]; ok {
		return s
	}
	s, ok := c.prev[k]
	if !ok {
		ow, ok := c.widthsP[over]
		if !ok {
			ow = ansi.StringWidth(over)
		}
		c.widths[over] = ow
		s = spliceW(line, over, ow, x, w)
	}
	c.cur[k] = s
	return s
}

// centred places a dialog box of rows in the middle of a w x h body.
func centred(rows []string, w, h int) ([]string, int, int) {
	if len(rows) == 0 {
		return nil, 0, 0
	}
	return rows, max(0, (w-ansi.StringWidth(rows[0]))/2), max(0, (h-len(rows))/2)
}

// splice puts painted text over line at column x.
func splice(line, over string, x, w int) string {
	return spliceW(line, over, ansi.StringWidth(over), x, w)
}

// spliceW is splice with the width of over known.
func spliceW(line, over string, ow, x, w int) string {
	left := ansi.Truncate(line, x, "")
	if lw := ansi.StringWidth(left); lw < x {
		left += blank(x - lw)
	}
	right := ""
	if want := w - x - ow; want > 0 {
		right = ansi.TruncateLeft(line, x+ow, "")
		// A wide character across the dialog's right edge is kept whole
		// by TruncateLeft: drop it and pad instead.
		if rw := ansi.StringWidth(right); rw > want {
			right = ansi.TruncateLeft(line, x+ow+rw-want, "")
		}
		if rw := ansi.StringWidth(right); rw < want {
			right = blank(want-rw) + right
		}
	}
	return left + "\x1b[m" + over + "\x1b[m" + right
}

// dialogWidth is the width of dialogs.
func (m *Model) dialogWidth() int {
	return max(40, min(m.width-4, 76))
}

// dialogBox frames lines in a dialog of width w.
func dialogBox(st themeStyles, title string, body []string, w int) []string {
	inner := w - 4
	out := make([]string, 0, len(body)+2)
	top := "╭─ " + title + " " + strings.Repeat("─", max(0, w-5-textWidth(title))) + "╮"
	out = append(out, st.Dialog.Border.Render(top))
	side := st.Dialog.Border.Render("│")
	for _, l := range body {
		out = append(out, side+" "+fitANSI(l, inner)+" "+side)
	}
	out = append(out, st.Dialog.Border.Render("╰"+strings.Repeat("─", w-2)+"╯"))
	return out
}

// wrapText wraps plain text at spaces to width w.
func wrapText(s string, w int) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		cur := ""
		for _, word := range strings.Fields(para) {
			switch {
			case cur == "":
				cur = word
			case textWidth(cur)+1+textWidth(word) <= w:
				cur += " " + word
			default:
				out = append(out, truncText(cur, w))
				cur = word
			}
		}
		out = append(out, truncText(cur, w))
	}
	return out
}
