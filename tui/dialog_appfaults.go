package tui

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// This file holds the Apps view's fault menu (x in the Apps view): the
// faults of the app's traffic through rtm's proxy, on the selected app
// socket or app channel. Its rows and their forms come from registry's
// table of app faults (registry.AppFaultKinds, FaultKind.AppDoc,
// AppUsage, and the settings each takes and needs, read through
// FaultKind.CheckSettings); the TUI adds only how a setting is asked
// (settingField) and the keys. A chosen fault goes the way of ":app":
// Model.fault, the manager's Faults.Apply with Fault.App set.

// appTarget is what the app fault menu acts on: an app socket and, when
// a channel of it is selected, that channel's topic.
type appTarget struct {
	socket uint64
	closed bool   // the socket is closed
	topic  string // "" when no channel is selected
}

// appRow is one row of the app fault menu: an app fault, a kick mode
// for a fault that takes one (a row per mode), and the settings the
// fault takes and needs.
type appRow struct {
	kind         registry.FaultKind
	mode         registry.KickMode
	key, name    string
	takes, needs []registry.FaultSetting
}

// appFaultsWidth is the widest the app fault menu and forms are: their
// lines (a fault's doc, a Supabase reason) are longer than other
// dialogs'.
const appFaultsWidth = 110

// kickModes are the modes a fault with SettingMode offers, a row each.
var kickModes = [...]registry.KickMode{registry.KickError, registry.KickClose}

// appRows lists the app faults' rows in registry.AppFaultKinds order,
// with their keys (the same whatever the target, see appKeys; none of
// the menu's own keys in km).
func appRows(km KeyMap) []appRow {
	var rows []appRow
	for _, k := range registry.AppFaultKinds() {
		takes, needs := appSettings(k)
		r := appRow{kind: k, name: k.String(), takes: takes, needs: needs}
		if !slices.Contains(takes, registry.SettingMode) {
			rows = append(rows, r)
			continue
		}
		for _, md := range kickModes {
			r.mode, r.name = md, k.String()+" "+md.String()
			rows = append(rows, r)
		}
	}
	var reserved []string
	for _, b := range []key.Binding{km.Up, km.Down, km.Dialog.Submit, km.Dialog.Cancel} {
		reserved = append(reserved, b.Keys()...)
	}
	appKeys(rows, reserved)
	return rows
}

// appKeys gives each row a key, in passes so that most rows get their
// first letter: the first letter of its name, then that letter upper
// case, then the initials of its other words (lower, then upper case),
// then any of its letters; never a key of reserved (the menu's own).
func appKeys(rows []appRow, reserved []string) {
	used := map[string]bool{}
	for _, k := range reserved {
		used[k] = true
	}
	words := func(r appRow) []string {
		return strings.FieldsFunc(r.name, func(c rune) bool { return c == ' ' || c == '-' })
	}
	passes := []func(r appRow) []string{
		func(r appRow) []string { return []string{r.name[:1]} },
		func(r appRow) []string { return []string{strings.ToUpper(r.name[:1])} },
		func(r appRow) []string {
			var out []string
			for _, w := range words(r)[1:] {
				out = append(out, w[:1], strings.ToUpper(w[:1]))
			}
			return out
		},
		func(r appRow) []string {
			var out []string
			for _, c := range r.name {
				if unicode.IsLetter(c) {
					out = append(out, string(c), strings.ToUpper(string(c)))
				}
			}
			return out
		},
	}
	for _, pass := range passes {
		for i := range rows {
			if rows[i].key != "" {
				continue
			}
			for _, c := range pass(rows[i]) {
				if !used[c] {
					rows[i].key, used[c] = c, true
					break
				}
			}
		}
	}
}

// appSettings reads the settings the app form of k takes and needs
// (SettingApp aside) from registry's table, through CheckSettings: a
// setting is taken unless CheckSettings says the fault takes no such
// setting, and needed when leaving it out of all those taken is the
// error.
func appSettings(k registry.FaultKind) (takes, needs []registry.FaultSetting) {
	var se *registry.FaultSettingError
	for _, s := range registry.FaultSettings() {
		if s == registry.SettingApp {
			continue
		}
		err := k.CheckSettings(func(x registry.FaultSetting) bool { return x == registry.SettingApp || x == s })
		if errors.As(err, &se) && se.Setting == s && !se.Missing {
			continue
		}
		takes = append(takes, s)
	}
	for _, s := range takes {
		err := k.CheckSettings(func(x registry.FaultSetting) bool {
			return x == registry.SettingApp || (x != s && slices.Contains(takes, x))
		})
		if errors.As(err, &se) && se.Missing && se.Setting == s {
			needs = append(needs, s)
		}
	}
	return takes, needs
}

// channelLevel reports whether the row acts on an app channel.
func (r appRow) channelLevel() bool { return slices.Contains(r.takes, registry.SettingTopic) }

// fault is the row's fault on t, before its form's settings.
func (r appRow) fault(t appTarget) registry.Fault {
	f := registry.Fault{Kind: r.kind, App: true, Mode: r.mode}
	if slices.Contains(r.takes, registry.SettingSocket) {
		f.Socket = t.socket
	}
	if r.channelLevel() {
		f.Topic = t.topic
	}
	return f
}

// asked are the settings of the row that its form asks: those the
// target does not give, in registry's order but the reason (free text)
// last, as the command line has it.
func (r appRow) asked() []registry.FaultSetting {
	var out []registry.FaultSetting
	reason := false
	for _, s := range r.takes {
		switch s {
		case registry.SettingSocket, registry.SettingTopic, registry.SettingMode:
		case registry.SettingReason:
			reason = true
		default:
			out = append(out, s)
		}
	}
	if reason {
		out = append(out, registry.SettingReason)
	}
	return out
}

// newAppFaultMenu lists the app faults for t: on a channel, the channel
// faults then the socket's; on a socket, the socket's (the intro names
// the channel faults a selected channel offers). A row whose fault
// asks settings opens a form (its name ends in "…").
func newAppFaultMenu(m *Model, t appTarget) *faultMenu {
	all := appRows(m.keys)
	var rows []appRow
	var chanFaults []string
	for _, r := range all {
		if r.channelLevel() {
			chanFaults = append(chanFaults, r.name)
			if t.topic != "" {
				rows = append(rows, r)
			}
		}
	}
	for _, r := range all {
		if !r.channelLevel() {
			rows = append(rows, r)
		}
	}
	nameW := 0
	for _, r := range rows {
		nameW = max(nameW, len(r.name)+2)
	}
	items := make([]faultItem, 0, len(rows))
	for _, r := range rows {
		name := r.name
		asked := r.asked()
		if len(asked) > 0 {
			name += " …"
		}
		it := faultItem{key: r.key, label: fitText(name, nameW+2) + r.kind.AppDoc(), fault: r.fault(t), enabled: true}
		if t.closed && slices.Contains(r.takes, registry.SettingSocket) {
			it.label, it.enabled, it.why = name, false, fmt.Sprintf("socket #%d is closed", t.socket)
		}
		if len(asked) > 0 && it.enabled {
			topic := ""
			if r.channelLevel() {
				topic = t.topic
			}
			if fields, err := settingFields(asked, topic); err != nil {
				it.label, it.enabled, it.why = name, false, err.Error()+": use :"+r.kind.AppUsage()
			} else {
				it.form = appFaultForm(r, t, fields)
			}
		}
		items = append(items, it)
	}
	title := fmt.Sprintf("App faults — socket #%d", t.socket)
	intro := "Break the app's traffic through rtm's proxy and watch it recover."
	if t.topic != "" {
		title = fmt.Sprintf("App faults — %s on #%d", sanitize(t.topic), t.socket)
	} else if len(chanFaults) > 0 {
		intro += " A channel (" + m.keys.AppsView.Channels.Help().Key + " in the Apps view) has its own: " + strings.Join(chanFaults, ", ") + "."
	}
	return &faultMenu{title: title, intro: intro, items: items, maxW: appFaultsWidth}
}

// appFaultForm opens the form of a row's settings; its submit reads
// them into the fault, validates it (registry's Fault.Validate) and
// injects it.
func appFaultForm(r appRow, t appTarget, fields []settingField) func(m *Model) tea.Cmd {
	return func(m *Model) tea.Cmd {
		on := fmt.Sprintf("socket #%d", t.socket)
		if r.channelLevel() {
			on = sanitize(t.topic)
		}
		if !slices.Contains(r.takes, registry.SettingSocket) && !r.channelLevel() {
			on = "every app socket"
		}
		intro := r.kind.AppDoc() + " — on " + on + " (:" + r.kind.AppUsage() + ")"
		specs := make([][3]string, len(fields))
		for i, fl := range fields {
			specs[i] = [3]string{fl.label, fl.value, fl.example}
		}
		f := newForm(m.st, "App fault — "+r.name, intro, func(v []string) (tea.Cmd, error) {
			fault := r.fault(t)
			for i, fl := range fields {
				if err := fl.set(&fault, strings.TrimSpace(v[i])); err != nil {
					return nil, fmt.Errorf("%s: %w", fl.label, err)
				}
			}
			if err := fault.Validate(); err != nil {
				return nil, err
			}
			return m.fault(fault), nil
		}, specs...)
		for i, fl := range fields {
			if len(fl.choices) > 0 {
				f.offer(i, fl.hint, fl.choices...)
			}
		}
		f.maxW = appFaultsWidth
		return m.openForm(f)
	}
}

// settingField is how a form asks a fault setting: its label, default
// and example, the values it offers, and how its value goes into the
// fault.
type settingField struct {
	label, value, example string
	choices               []string
	hint                  string
	set                   func(f *registry.Fault, v string) error
}

// supabaseReasons are reasons Supabase Realtime gives when it refuses a
// join of topic or ends a socket, the first the one a form fills in:
// Unauthorized for a channel's fault, RealtimeRestarting for a
// socket's.
func supabaseReasons(topic string) []string {
	unauth := "Unauthorized: You do not have permissions to read from this Channel topic"
	restarting := "RealtimeRestarting: Realtime is restarting, please standby"
	limit := "ChannelRateLimitReached: Too many channels"
	if topic == "" {
		return []string{restarting, unauth, limit}
	}
	// The topic came from the app: masked, as everything shown is.
	return []string{unauth + ": " + sanitize(strings.TrimPrefix(topic, "realtime:")), restarting, limit}
}

// settingFields returns the form fields of settings, in order, for a
// fault on topic ("" for a socket's); a setting the TUI has no field for
// is an error.
func settingFields(settings []registry.FaultSetting, topic string) ([]settingField, error) {
	duration := func(dst func(*registry.Fault) *time.Duration) func(*registry.Fault, string) error {
		return func(f *registry.Fault, v string) error {
			d, err := registry.ParseDuration(v)
			if err != nil {
				return err
			}
			*dst(f) = d
			return nil
		}
	}
	integer := func(dst func(*registry.Fault) *int, what string) func(*registry.Fault, string) error {
		return func(f *registry.Fault, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not %s", v, what)
			}
			*dst(f) = n
			return nil
		}
	}
	reasons := supabaseReasons(topic)
	var out []settingField
	for _, s := range settings {
		var fl settingField
		switch s {
		case registry.SettingFor:
			fl = settingField{label: "For (a duration: 10s, 500ms)", value: "10s", example: "10s",
				set: duration(func(f *registry.Fault) *time.Duration { return &f.Duration })}
		case registry.SettingDelay:
			fl = settingField{label: "Delay each way (0 removes the latency)", value: "500ms", example: "500ms",
				set: duration(func(f *registry.Fault) *time.Duration { return &f.Delay })}
		case registry.SettingJitter:
			fl = settingField{label: "Jitter (up to this much more, at random)", value: "100ms", example: "0",
				set: duration(func(f *registry.Fault) *time.Duration { return &f.Jitter })}
		case registry.SettingCount:
			fl = settingField{label: "Count (the next n; 0 disarms)", value: "3", example: "3",
				set: integer(func(f *registry.Fault) *int { return &f.Count }, "a count (0 or more)")}
		case registry.SettingCode:
			fl = settingField{label: "Close code (1000, 1001, 1011, 3000-4999)", value: "4000", example: "4000",
				choices: []string{"4000", "1000", "1001", "1011"}, hint: "close codes",
				set: integer(func(f *registry.Fault) *int { return &f.Code }, "a close code")}
		case registry.SettingReason:
			fl = settingField{label: "Reason", value: reasons[0], example: reasons[1],
				choices: reasons, hint: "Supabase reasons",
				set: func(f *registry.Fault, v string) error { f.Reason = v; return nil }}
		default:
			return nil, fmt.Errorf("no form for %s", s)
		}
		out = append(out, fl)
	}
	return out, nil
}
