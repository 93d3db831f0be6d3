package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// This file holds the TUI's side of the faults. The vocabulary (kinds,
// settings, parsing, validation, the status-line summary, the dispatch)
// is registry's (registry.Fault, registry.ParseFault, Faults.Apply), the
// same the scenarios use. Here: the fault menu (x), whose rows pick
// ready-made faults, and the ":" fault commands, which registry parses.
// Adding a fault: registry's side, then one menu row in newFaultMenu;
// its command and help line come from registry.FaultKinds. The Apps
// view's fault menu (dialog_appfaults.go) needs nothing: its rows and
// forms come from registry's table of app faults.

// faultItem is one entry of the fault menu.
type faultItem struct {
	key     string
	label   string
	fault   registry.Fault
	enabled bool
	why     string // why it is disabled
	// form, when set, opens the fault's form (its settings) instead of
	// injecting fault.
	form func(m *Model) tea.Cmd
}

// faultMenu picks a fault to inject: rtm's own (newFaultMenu) or an
// app's (newAppFaultMenu).
type faultMenu struct {
	title, intro string
	items        []faultItem
	sel          int
	// maxW is the menu's widest (0: the dialogs' width).
	maxW int
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
	lat := registry.Fault{Kind: registry.FaultLatency, Delay: 500 * time.Millisecond}
	latLabel := "add 500ms latency each way"
	if st.Faults.Latency > 0 {
		lat.Delay = 0
		latLabel = "remove the added latency (" + registry.FormatDuration(st.Faults.Latency) + ")"
	}
	type row struct {
		key, label string
		fault      registry.Fault
	}
	rows := []row{
		{"d", "drop the connection (abrupt close)", registry.Fault{Kind: registry.FaultDrop}},
		{"f", "freeze the connection 10s (half-open)", registry.Fault{Kind: registry.FaultFreeze, Duration: 10 * time.Second}},
		{"l", latLabel, lat},
		{"c", "fail the next 3 connection attempts", registry.Fault{Kind: registry.FaultFailConnects, Count: 3}},
		{"t", "expire the token now", registry.Fault{Kind: registry.FaultExpireToken}},
		{"e", "channel error on " + chName, registry.Fault{Kind: registry.FaultChannelError, Channel: ch}},
		{"h", "heal: clear the client faults in force", registry.Fault{Kind: registry.FaultHeal}},
		{"s", "server: kick " + chName + " (phx_error)", registry.Fault{Kind: registry.FaultKick, Channel: ch, Mode: registry.KickError}},
		{"S", "server: close " + chName + " (phx_close)", registry.Fault{Kind: registry.FaultKick, Channel: ch, Mode: registry.KickClose}},
		{"r", "server: reject the next 3 joins", registry.Fault{Kind: registry.FaultRejectJoins, Count: 3}},
		{"R", "server: reject joins for 10s", registry.Fault{Kind: registry.FaultRejectJoins, Duration: 10 * time.Second}},
		{"a", "server: drop every socket", registry.Fault{Kind: registry.FaultDropAll}},
		{"b", "server: restart, down for 3s", registry.Fault{Kind: registry.FaultRestart, Duration: 3 * time.Second}},
	}
	items := make([]faultItem, len(rows))
	for i, r := range rows {
		it := faultItem{key: r.key, label: r.label, fault: r.fault, enabled: true}
		switch {
		case r.fault.Kind.Server() && !server:
			it.enabled, it.why = false, noServer
		case slices.Contains(r.fault.Kind.Needs(), registry.SettingChannel) && !haveCh:
			it.enabled, it.why = false, "select a channel first"
		}
		items[i] = it
	}
	return &faultMenu{title: "Faults", intro: "Simulate a failure and watch the retries recover.", items: items}
}

func (f *faultMenu) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	chosen, closeMenu, why := f.handle(k, m.keys)
	switch {
	case why != "":
		return m.setStatus(slog.LevelWarn, why), false
	case chosen != nil && chosen.form != nil:
		return chosen.form(m), true
	case chosen != nil:
		return m.fault(chosen.fault), true
	}
	return nil, closeMenu
}

func (f *faultMenu) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Down, "↑/↓", "select"), withHelp(k.Dialog.Submit, "enter", "inject"), withHelp(k.Dialog.Cancel, "esc", "close")}
}

// handle processes a key: it returns the chosen entry, whether to close
// the menu, and a reason when a disabled fault was chosen.
func (f *faultMenu) handle(msg tea.KeyPressMsg, km KeyMap) (chosen *faultItem, closeMenu bool, why string) {
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

func (f *faultMenu) pick(i int) (*faultItem, bool, string) {
	it := f.items[i]
	if !it.enabled {
		return nil, false, strings.Join(strings.Fields(it.label), " ") + ": " + it.why
	}
	return &it, true, ""
}

func (f *faultMenu) view(m *Model, w, h int) ([]string, int, int) {
	st, dw := m.st, m.dialogWidth()
	if f.maxW > 0 {
		dw = max(40, min(m.width-4, f.maxW))
	}
	inner := dw - 4
	var body []string
	for _, l := range wrapText(f.intro, inner) {
		body = append(body, st.Muted.Render(l))
	}
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
	return centred(dialogBox(st, f.title, body, dw), w, h)
}

func (m *Model) fault(f registry.Fault) tea.Cmd {
	return m.action("fault", f.String(), f.Summary(), func(ctx context.Context, mgr Manager) error {
		return mgr.Fault(ctx, f)
	})
}

// faultCommands returns the ":" commands of the faults, one per
// registry.FaultKinds, in its order.
func faultCommands() []commandSpec {
	var out []commandSpec
	for _, k := range registry.FaultKinds() {
		if !k.OnlyApp() {
			out = append(out, commandSpec{k.String(), k.Args(), k.Doc(), true})
		}
	}
	return append(out, commandSpec{"app", "[N|all] <fault> [args]", "inject a fault into the app's traffic through the proxy (" + strings.Join(appFaultNames(), ", ") + ")", true})
}

func appFaultNames() []string {
	var out []string
	for _, k := range registry.AppFaultKinds() {
		out = append(out, k.String())
	}
	return out
}

// faultCommand runs a fault command (any of registry.FaultKinds, read by
// registry.ParseFaultNames with channel names completed against the
// channels joined); ok is false for other commands.
func (m *Model) faultCommand(c command) (cmd tea.Cmd, ok bool) {
	if k, err := registry.ParseFaultKind(c.name); (err != nil || k.OnlyApp()) && c.name != "app" {
		return nil, false
	}
	f, err := registry.ParseFaultNames(append([]string{c.name}, c.args...), func(s string) (registry.Name, error) {
		return resolveName(s, m.state.Channels, m.state.Target.Tenant)
	})
	var pe *registry.FaultParseError
	switch {
	case errors.Is(err, registry.ErrFaultUsage):
		return m.fail(c.name, "", fmt.Errorf("%w: %s", errUsage, usage(c.name))), true
	case errors.As(err, &pe):
		return m.fail(c.name, pe.Arg, pe.Err), true
	case err != nil:
		return m.fail(c.name, "", err), true
	}
	return m.fault(f), true
}
