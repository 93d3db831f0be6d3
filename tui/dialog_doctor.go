package tui

import (
	"fmt"
	"log/slog"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// doctorView is the doctor dialog.
type doctorView struct {
	name   registry.Name
	gen    int
	scroll scroll
}

func (v *doctorView) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	k := m.keys
	if mv, ok := navKey(kp, k, 10); ok {
		v.scroll.apply(mv)
		return nil, false
	}
	switch {
	case key.Matches(kp, k.Dialog.Cancel, k.Quit, k.Help):
		return nil, true
	case key.Matches(kp, k.Channel.Doctor):
		if c, ok := m.state.Channel(v.name); ok {
			return m.runDoctor(c), false
		}
		return m.setStatus(slog.LevelWarn, v.name.String()+" is no longer in the registry"), false
	}
	return nil, false
}

func (v *doctorView) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Down, "↑/↓", "scroll"), withHelp(k.Channel.Doctor, "D", "run again"), withHelp(k.Dialog.Cancel, "esc", "close")}
}

// view renders the doctor dialog, at most h rows high.
func (v *doctorView) view(m *Model, bw, h int) ([]string, int, int) {
	w := m.dialogWidth()
	st := m.st
	inner := w - 4
	var body []string
	var res *doctorResult
	if d, ok := m.chData[v.name]; ok {
		res = d.doctor
	}
	if m.opts.Database.Detail != "" {
		for _, l := range wrapText("database "+sanitize(m.opts.Database.Detail), inner) {
			body = append(body, st.Muted.Render(l))
		}
	}
	if res == nil {
		body = append(body, st.Muted.Render("no run"))
	} else {
		body = append(body, doctorLines(st, res, inner, m.subscriberAs())...)
	}
	foot := st.Muted.Render(truncText("↑/↓ scroll · D runs again · esc closes", inner))
	// Scroll the body so the dialog fits in h rows (borders, a blank
	// line and the footer take 4).
	room := max(1, h-4)
	if n := len(body); n > room {
		v.scroll = min(v.scroll, scroll(n-room))
		off := int(v.scroll)
		body = body[off : off+room]
		foot = st.Muted.Render(truncText(fmt.Sprintf("↑/↓ scroll (%d above, %d below) · D runs again · esc closes",
			off, n-room-off), inner))
	} else {
		v.scroll = 0
	}
	body = append(body, "", foot)
	return centred(dialogBox(st, "Doctor — "+v.name.String(), body, w), bw, h)
}
