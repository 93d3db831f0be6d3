package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// This file holds everything of the TUI that knows the faults: the fault
// menu (x), what the status line says of an injected fault, and the
// fault commands. Adding a fault: a menu row in newFaultMenu, a case in
// faultSummary and, for a command, one in faultCommand (and its
// commandSpec).

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

func (f *faultMenu) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	chosen, closeMenu, why := f.handle(k, m.keys)
	if why != "" {
		return m.setStatus(slog.LevelWarn, why), false
	}
	if chosen != nil {
		return m.fault(*chosen), closeMenu
	}
	return nil, closeMenu
}

func (f *faultMenu) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Down, "↑/↓", "select"), withHelp(k.Dialog.Submit, "enter", "inject"), withHelp(k.Dialog.Cancel, "esc", "close")}
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

func (f *faultMenu) view(m *Model, w, h int) ([]string, int, int) {
	st, dw := m.st, m.dialogWidth()
	inner := dw - 4
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
	return centred(dialogBox(st, "Faults", body, dw), w, h)
}

// faultSummary describes a fault for the status line.
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

func (m *Model) fault(f Fault) tea.Cmd {
	return m.action("fault", f.String(), faultSummary(f), func(ctx context.Context, mgr Manager) error {
		return mgr.Fault(ctx, f)
	})
}

// faultCommand runs the fault commands (:drop, :freeze, :latency,
// :fail-connects, :expire-token, :kick, :reject-joins); ok is false for
// other commands. name resolves argument i as a channel.
func (m *Model) faultCommand(c command, name func(i int) (registry.Name, error)) (cmd tea.Cmd, ok bool) {
	wantArgs := func(n int) error {
		if len(c.args) != n {
			return fmt.Errorf("%w: %s", errUsage, usage(c.name))
		}
		return nil
	}
	switch c.name {
	case "drop", "expire-token":
		if err := wantArgs(0); err != nil {
			return m.fail(c.name, "", err), true
		}
		if c.name == "drop" {
			return m.fault(Fault{Kind: FaultDrop}), true
		}
		return m.fault(Fault{Kind: FaultExpireToken}), true
	case "freeze", "latency":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err), true
		}
		d, err := parseDuration(c.args[0])
		if err != nil {
			return m.fail(c.name, c.args[0], err), true
		}
		if c.name == "freeze" {
			if d <= 0 {
				return m.fail("freeze", c.args[0], errors.New("freeze needs a positive duration")), true
			}
			return m.fault(Fault{Kind: FaultFreeze, Duration: d}), true
		}
		return m.fault(Fault{Kind: FaultLatency, Duration: d}), true
	case "fail-connects":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err), true
		}
		n, err := strconv.Atoi(c.args[0])
		if err != nil || n < 0 {
			return m.fail(c.name, c.args[0], fmt.Errorf("%q is not a count (0 or more)", c.args[0])), true
		}
		return m.fault(Fault{Kind: FaultFailConnects, Count: n}), true
	case "kick":
		if len(c.args) < 1 || len(c.args) > 2 {
			return m.fail("kick", "", fmt.Errorf("%w: %s", errUsage, usage("kick"))), true
		}
		n, err := name(0)
		if err != nil {
			return m.fail("kick", c.args[0], err), true
		}
		mode := registry.KickError
		if len(c.args) == 2 {
			if mode, err = registry.ParseKickMode(c.args[1]); err != nil {
				return m.fail("kick", c.args[1], err), true
			}
		}
		return m.fault(Fault{Kind: FaultKick, Channel: n, Mode: mode}), true
	case "reject-joins":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err), true
		}
		f := Fault{Kind: FaultRejectJoins}
		if n, err := strconv.Atoi(c.args[0]); err == nil && n >= 0 {
			f.Count = n
		} else if d, err := time.ParseDuration(c.args[0]); err == nil && d >= 0 {
			f.Duration = d
		} else {
			return m.fail(c.name, c.args[0], fmt.Errorf("%q is neither a count nor a duration (3, 10s)", c.args[0])), true
		}
		return m.fault(f), true
	}
	return nil, false
}
