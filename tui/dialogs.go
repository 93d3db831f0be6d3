package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/theme"
)

// formField is one labelled input of a form.
type formField struct {
	label string
	input textinput.Model
}

// form is a dialog of labelled inputs; submit validates the values and
// returns the action to run, or an error shown in the form.
type form struct {
	title  string
	intro  string
	fields []formField
	focus  int
	err    string
	submit func(values []string) (tea.Cmd, error)
}

func newForm(st *theme.Styles, title, intro string, submit func([]string) (tea.Cmd, error), fields ...[3]string) *form {
	f := &form{title: title, intro: intro, submit: submit}
	for _, fl := range fields {
		in := newInput(st, "› ", fl[2])
		in.SetValue(fl[1])
		in.CursorEnd()
		f.fields = append(f.fields, formField{label: fl[0], input: in})
	}
	return f
}

func (f *form) setStyles(st *theme.Styles) {
	for i := range f.fields {
		setInputStyles(&f.fields[i].input, st)
	}
}

func (f *form) setWidth(w int) {
	for i := range f.fields {
		f.fields[i].input.SetWidth(max(10, w-8))
	}
}

// focusField focuses field i.
func (f *form) focusField(i int) tea.Cmd {
	f.focus = (i + len(f.fields)) % len(f.fields)
	var cmd tea.Cmd
	for j := range f.fields {
		if j == f.focus {
			cmd = f.fields[j].input.Focus()
		} else {
			f.fields[j].input.Blur()
		}
	}
	return cmd
}

func (f *form) values() []string {
	out := make([]string, len(f.fields))
	for i, fl := range f.fields {
		out[i] = fl.input.Value()
	}
	return out
}

// update passes a message to the focused input.
func (f *form) update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	f.fields[f.focus].input, cmd = f.fields[f.focus].input.Update(msg)
	return cmd
}

func (f *form) view(st *theme.Styles, w int) []string {
	inner := w - 4
	var body []string
	for _, l := range wrapText(f.intro, inner) {
		if l != "" {
			body = append(body, st.Muted.Render(l))
		}
	}
	for i, fl := range f.fields {
		lp := st.Dialog.Label
		if i == f.focus {
			lp = st.Dialog.Input
		}
		body = append(body, "", lp.Render(fl.label))
		body = append(body, fitInput(fl.input.View(), inner))
	}
	body = append(body, "")
	if f.err != "" {
		for _, l := range wrapText(f.err, inner) {
			body = append(body, st.Dialog.Error.Render(l))
		}
	} else {
		body = append(body, st.Muted.Render("tab next field · enter submit · esc cancel"))
	}
	return dialogBox(st, f.title, body, w)
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

// confirm is a yes/no dialog.
type confirm struct {
	title string
	text  string
	yes   tea.Cmd
}

func (c *confirm) view(st *theme.Styles, w int) []string {
	var body []string
	for _, l := range wrapText(c.text, w-4) {
		body = append(body, st.Text.Render(l))
	}
	body = append(body, "", st.Dialog.Key.Render("y")+st.Muted.Render(" yes   ")+st.Dialog.Key.Render("n")+st.Muted.Render(" no"))
	return dialogBox(st, c.title, body, w)
}

// faultItem is one entry of the fault menu.
type faultItem struct {
	key     string
	label   string
	fault   Fault
	enabled bool
	why     string // why it is disabled
}

// faultMenu picks a fault to inject.
type faultMenu struct {
	items []faultItem
	sel   int
}

// newFaultMenu lists the faults for the selected channel and target.
func newFaultMenu(st registry.State, ch registry.Name) *faultMenu {
	server := st.Target.ServerFaults || st.Faults.Server
	noServer := "needs the embedded server or rtm serve"
	haveCh := !ch.IsZero()
	chName := "(no channel selected)"
	if haveCh {
		chName = ch.String()
	}
	lat := Fault{Kind: FaultLatency, Duration: 500 * time.Millisecond}
	latLabel := "add 500ms latency each way"
	if st.Faults.Latency > 0 {
		lat.Duration = 0
		latLabel = "remove the added latency (" + fmtDur(st.Faults.Latency) + ")"
	}
	items := []faultItem{
		{"d", "drop the connection (abrupt close)", Fault{Kind: FaultDrop}, true, ""},
		{"f", "freeze the connection 10s (half-open)", Fault{Kind: FaultFreeze, Duration: 10 * time.Second}, true, ""},
		{"l", latLabel, lat, true, ""},
		{"c", "fail the next 3 connection attempts", Fault{Kind: FaultFailConnects, Count: 3}, true, ""},
		{"t", "expire the token now", Fault{Kind: FaultExpireToken}, true, ""},
		{"e", "channel error on " + chName, Fault{Kind: FaultChannelError, Channel: ch}, haveCh, "select a channel first"},
		{"s", "server: kick " + chName + " (phx_error)", Fault{Kind: FaultKick, Channel: ch, Mode: registry.KickError}, server && haveCh, noServer},
		{"S", "server: close " + chName + " (phx_close)", Fault{Kind: FaultKick, Channel: ch, Mode: registry.KickClose}, server && haveCh, noServer},
		{"r", "server: reject the next 3 joins", Fault{Kind: FaultRejectJoins, Count: 3}, server, noServer},
		{"R", "server: reject joins for 10s", Fault{Kind: FaultRejectJoins, Duration: 10 * time.Second}, server, noServer},
		{"a", "server: drop every socket", Fault{Kind: FaultDropAll}, server, noServer},
	}
	return &faultMenu{items: items}
}

// handle processes a key: it returns the chosen fault, whether to close
// the menu, and a reason when a disabled fault was chosen.
func (f *faultMenu) handle(msg tea.KeyPressMsg, km KeyMap) (chosen *Fault, closeMenu bool, why string) {
	switch {
	case key.Matches(msg, km.Dialog.Cancel):
		return nil, true, ""
	case key.Matches(msg, km.Up):
		f.sel = (f.sel - 1 + len(f.items)) % len(f.items)
		return nil, false, ""
	case key.Matches(msg, km.Down):
		f.sel = (f.sel + 1) % len(f.items)
		return nil, false, ""
	case key.Matches(msg, km.Dialog.Submit):
		return f.pick(f.sel)
	}
	for i, it := range f.items {
		if msg.String() == it.key {
			f.sel = i
			return f.pick(i)
		}
	}
	return nil, false, ""
}

func (f *faultMenu) pick(i int) (*Fault, bool, string) {
	it := f.items[i]
	if !it.enabled {
		return nil, false, it.label + ": " + it.why
	}
	fl := it.fault
	return &fl, true, ""
}

func (f *faultMenu) view(st *theme.Styles, w int) []string {
	inner := w - 4
	var body []string
	body = append(body, st.Muted.Render("Simulate a failure and watch the retries recover."))
	for i, it := range f.items {
		kp, tp := st.Dialog.Key, st.Text
		if !it.enabled {
			kp, tp = st.Dialog.Disabled, st.Dialog.Disabled
		}
		label := it.label
		if !it.enabled {
			label += " — " + it.why
		}
		row := kp.Render(fitText(it.key, 2)) + tp.Render(truncText(label, inner-3))
		if i == f.sel {
			row = st.Table.Selected.Render(fitText(fitText(it.key, 2)+label, inner))
		}
		body = append(body, row)
	}
	body = append(body, "", st.Muted.Render("letter or enter injects · esc closes"))
	return dialogBox(st, "Faults", body, w)
}

// summary describes a fault for the status line.
func faultSummary(f Fault) string {
	switch f.Kind {
	case FaultDrop:
		return "dropped the connection"
	case FaultFreeze:
		return fmt.Sprintf("froze the connection for %s", f.Duration)
	case FaultLatency:
		if f.Duration == 0 {
			return "removed the added latency"
		}
		return fmt.Sprintf("added %s latency each way", fmtDur(f.Duration))
	case FaultFailConnects:
		return fmt.Sprintf("the next %d connection attempts will fail", f.Count)
	case FaultExpireToken:
		return "expired the token"
	case FaultChannelError:
		return "injected a channel error on " + f.Channel.String()
	case FaultKick:
		return fmt.Sprintf("server kicked %s (%s)", f.Channel, f.Mode)
	case FaultRejectJoins:
		if f.Duration > 0 {
			return fmt.Sprintf("server rejects joins for %s", f.Duration)
		}
		return fmt.Sprintf("server rejects the next %d joins", f.Count)
	case FaultDropAll:
		return "server dropped every socket"
	}
	return f.String()
}
