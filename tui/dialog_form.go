package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"rtm/theme"
)

// formField is one labelled input of a form.
type formField struct {
	label string
	input textinput.Model
	// choices are values offered for the field (Dialog.Choice puts the
	// next one in it); hint says what they are.
	choices []string
	hint    string
}

// form is a dialog of labelled inputs; submit validates the values and
// returns the action to run, or an error shown in the form. The track
// and broadcast dialogs are forms (dialog_track.go, dialog_broadcast.go).
type form struct {
	title  string
	intro  string
	fields []formField
	focus  int
	err    string
	submit func(values []string) (tea.Cmd, error)
	// maxW is the form's widest (0: the dialogs' width).
	maxW int
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

// offer offers values for field i: the Choice key (ctrl+n) puts the
// next one in it; hint names them ("Supabase's reasons").
func (f *form) offer(i int, hint string, choices ...string) *form {
	f.fields[i].choices, f.fields[i].hint = choices, hint
	return f
}

// nextChoice puts the offered value after the field's value in it (the
// first when its value is none of them).
func (fl *formField) nextChoice() {
	next := 0
	for i, c := range fl.choices {
		if c == fl.input.Value() {
			next = (i + 1) % len(fl.choices)
		}
	}
	fl.input.SetValue(fl.choices[next])
	fl.input.CursorEnd()
}

// openForm sizes a form, opens it and focuses its first field.
func (m *Model) openForm(f *form) tea.Cmd {
	f.setWidth(m)
	m.openDialog(f)
	return f.focusField(0)
}

func (f *form) setStyles(st *theme.Styles) {
	for i := range f.fields {
		setInputStyles(&f.fields[i].input, st)
	}
}

// width is the form's width on m's screen.
func (f *form) width(m *Model) int {
	if f.maxW > 0 {
		return max(40, min(m.width-4, f.maxW))
	}
	return m.dialogWidth()
}

func (f *form) setWidth(m *Model) {
	w := f.width(m)
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

func (f *form) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	k := m.keys.Dialog
	if kp, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(kp, k.Cancel):
			return nil, true
		case key.Matches(kp, k.Submit):
			cmd, err := f.submit(f.values())
			if err != nil {
				f.err = err.Error()
				return nil, false
			}
			return cmd, true
		case key.Matches(kp, k.NextField):
			return f.focusField(f.focus + 1), false
		case key.Matches(kp, k.PrevField):
			return f.focusField(f.focus - 1), false
		case key.Matches(kp, k.Choice) && len(f.fields[f.focus].choices) > 0:
			f.fields[f.focus].nextChoice()
			f.err = ""
			return nil, false
		}
		f.err = ""
	}
	var cmd tea.Cmd
	f.fields[f.focus].input, cmd = f.fields[f.focus].input.Update(msg)
	return cmd, false
}

func (f *form) help(k KeyMap) []key.Binding {
	out := []key.Binding{k.Dialog.NextField, k.Dialog.PrevField}
	if len(f.fields[f.focus].choices) > 0 {
		out = append(out, k.Dialog.Choice)
	}
	return append(out, k.Dialog.Submit, k.Dialog.Cancel)
}

func (f *form) view(m *Model, w, h int) ([]string, int, int) {
	st, dw := m.st, f.width(m)
	inner := dw - 4
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
		if i == f.focus && len(fl.choices) > 0 {
			body = append(body, st.Muted.Render(truncText(fmt.Sprintf("%s: the next of %d %s", m.keys.Dialog.Choice.Help().Key, len(fl.choices), fl.hint), inner)))
		}
	}
	body = append(body, "")
	if f.err != "" {
		for _, l := range wrapText(f.err, inner) {
			body = append(body, st.Dialog.Error.Render(l))
		}
	} else {
		body = append(body, st.Muted.Render("tab next field · enter submit · esc cancel"))
	}
	return centred(dialogBox(st, f.title, body, dw), w, h)
}
