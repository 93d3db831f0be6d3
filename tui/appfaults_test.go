package tui

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"rtm/registry"
)

const restarting = "RealtimeRestarting: Realtime is restarting, please standby"

// appFaultModel is a model with the sample apps' Apps view open (socket
// #2, the newest, selected).
func appFaultModel(t *testing.T, opts ...func(*Options)) (*Model, *fakeManager) {
	t.Helper()
	m, fm := newTestModel(t, 120, 40, opts...)
	withApps(m, sampleApps())
	keys(m, "A")
	if !isTop[*appsView](m) {
		t.Fatal("A did not open the Apps view")
	}
	return m, fm
}

// inject presses ks, runs what they return, and checks that the manager
// was asked for exactly want, then that the status line says the
// fault's summary.
func inject(t *testing.T, m *Model, fm *fakeManager, want registry.Fault, ks ...string) {
	t.Helper()
	before := len(fm.Faults())
	for _, c := range keys(m, ks...) {
		feed(m, c)
	}
	got := fm.Faults()[before:]
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("keys %q: faults %+v, want %+v", ks, got, want)
	}
	if err := want.Validate(); err != nil {
		t.Fatalf("the fault asked for is not valid: %v", err)
	}
	mustContain(t, screen(m), want.Summary())
	if !isTop[*appsView](m) {
		t.Fatalf("keys %q: the Apps view is no longer on top", ks)
	}
}

// clearInput empties the focused input of the open form.
func clearInput(m *Model) { keys(m, "ctrl+u") }

// TestAppSocketFaults: x on an app socket offers its faults; each
// injects exactly the registry fault, on that socket, the way :app does.
func TestAppSocketFaults(t *testing.T) {
	m, fm := appFaultModel(t)
	keys(m, "x")
	s := screen(m)
	mustContain(t, s, "App faults — socket #2", "drop the app's socket (no close frame)", "close …",
		"A channel (tab in the Apps view) has its", "kick error, kick close, reject-joins, drop-messages, duplicate-messages.")
	mustNotContain(t, s, "kick error   ")
	keys(m, "esc")

	inject(t, m, fm, registry.Fault{Kind: registry.FaultDrop, App: true, Socket: 2}, "x", "d")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultExpireToken, App: true, Socket: 2}, "x", "e")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultHeal, App: true}, "x", "h")
	// A form, prefilled: enter takes its defaults.
	keys(m, "x", "c")
	mustContain(t, screen(m), "App fault — close", "Close code", "› 4000", "› "+restarting)
	inject(t, m, fm, registry.Fault{Kind: registry.FaultClose, App: true, Socket: 2, Code: 4000, Reason: restarting}, "enter")
	// ctrl+n offers the next close code, then the next reason.
	keys(m, "x", "c", "ctrl+n", "tab", "ctrl+n")
	mustContain(t, screen(m), "› 1000", "› Unauthorized: You do not have permissions to read from this Channel topic")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultClose, App: true, Socket: 2, Code: 1000,
		Reason: "Unauthorized: You do not have permissions to read from this Channel topic"}, "enter")
	// Edited values.
	keys(m, "x", "f")
	clearInput(m)
	typeText(m, "2.5s")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultFreeze, App: true, Socket: 2, Duration: 2500 * time.Millisecond}, "enter")
	// Latency and refused connects act on every app socket: no Socket.
	inject(t, m, fm, registry.Fault{Kind: registry.FaultLatency, App: true, Delay: 500 * time.Millisecond, Jitter: 100 * time.Millisecond},
		"x", "l", "enter")
	keys(m, "x", "F")
	clearInput(m)
	typeText(m, "7")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultFailConnects, App: true, Count: 7}, "enter")

	// A value registry refuses keeps the form open with its error and
	// injects nothing.
	n := len(fm.Faults())
	keys(m, "x", "c")
	clearInput(m)
	typeText(m, "1006")
	keys(m, "enter")
	if !isTop[*form](m) || len(fm.Faults()) != n {
		t.Fatalf("close 1006: form open %v, %d faults", isTop[*form](m), len(fm.Faults())-n)
	}
	mustContain(t, screen(m), "code 1006 is not one an app may be sent")
	clearInput(m)
	typeText(m, "soon")
	keys(m, "enter")
	mustContain(t, screen(m), `Close code (1000, 1001, 1011, 3000-4999): "soon" is not a close code`)
	keys(m, "esc")
	if !isTop[*appsView](m) || len(fm.Faults()) != n {
		t.Fatal("esc must close the form and inject nothing")
	}
}

// TestAppChannelFaults: tab moves the selection into the socket's
// channels, ↓ selects the next; x there offers the channel's faults
// first (then the socket's), on its topic.
func TestAppChannelFaults(t *testing.T) {
	m, fm := appFaultModel(t)
	keys(m, "tab")
	mustContain(t, screen(m), "▸ realtime:room:1", "x channel faults")
	keys(m, "x")
	mustContain(t, screen(m), "App faults — realtime:room:1 on #2", "kick error", "kick close", "reject-joins …", "freeze …")
	keys(m, "esc")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultKick, App: true, Socket: 2, Topic: "realtime:room:1", Mode: registry.KickError}, "x", "K")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultKick, App: true, Socket: 2, Topic: "realtime:room:1", Mode: registry.KickClose}, "x", "C")
	// The selection stays on the channel; the socket's faults are there
	// too.
	inject(t, m, fm, registry.Fault{Kind: registry.FaultDrop, App: true, Socket: 2}, "x", "d")

	keys(m, "down")
	mustContain(t, screen(m), "▸ realtime:private:secrets")
	keys(m, "x", "r")
	mustContain(t, screen(m), "App fault — reject-joins", "› 3",
		"› Unauthorized: You do not have permissions to read from this Channel topic: private:secrets")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultRejectJoins, App: true, Topic: "realtime:private:secrets", Count: 3,
		Reason: "Unauthorized: You do not have permissions to read from this Channel topic: private:secrets"}, "enter")
	keys(m, "x", "r", "tab", "ctrl+n", "ctrl+n")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultRejectJoins, App: true, Topic: "realtime:private:secrets", Count: 3,
		Reason: "ChannelRateLimitReached: Too many channels"}, "enter")
	keys(m, "x", "D")
	clearInput(m)
	typeText(m, "1")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultDropMessages, App: true, Topic: "realtime:private:secrets", Count: 1}, "enter")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultDuplicateMessages, App: true, Topic: "realtime:private:secrets", Count: 3},
		"x", "m", "enter")

	// esc goes back to the sockets, then closes the view.
	keys(m, "esc")
	s := screen(m)
	mustContain(t, s, "x socket faults")
	mustNotContain(t, s, "▸ realtime:")
	keys(m, "esc")
	if isTop[*appsView](m) {
		t.Fatal("second esc must close the Apps view")
	}
}

// TestAppFaultRefused: the manager's error shows in the status line and
// the log, as for any fault.
func TestAppFaultRefused(t *testing.T) {
	m, fm := appFaultModel(t)
	fm.errs["fault"] = fmt.Errorf("registry: app fault app 2 drop: %w", errors.New("proxy: no socket 2"))
	for _, c := range keys(m, "x", "d") {
		feed(m, c)
	}
	if len(fm.Faults()) != 1 {
		t.Fatalf("faults %v", fm.Faults())
	}
	if !strings.Contains(m.status.text, "fault app 2 drop") || !strings.Contains(m.status.text, "proxy: no socket 2") {
		t.Fatalf("status %q", m.status.text)
	}
	keys(m, "esc")
	mustContain(t, screen(m), "Action failed", "proxy: no socket 2")
}

// TestAppFaultsClosedSocket: on a closed socket, the faults that name a
// socket are disabled and say why; the others still work.
func TestAppFaultsClosedSocket(t *testing.T) {
	m, fm := appFaultModel(t)
	keys(m, "up", "x")
	mustContain(t, screen(m), "App faults — socket #1", "drop — socket #1 is closed")
	keys(m, "d")
	if !isTop[*faultMenu](m) || len(fm.Faults()) != 0 {
		t.Fatal("a disabled fault must not run")
	}
	if !strings.Contains(m.status.text, "drop: socket #1 is closed") {
		t.Fatalf("status %q", m.status.text)
	}
	keys(m, "esc")
	inject(t, m, fm, registry.Fault{Kind: registry.FaultLatency, App: true, Delay: 500 * time.Millisecond, Jitter: 100 * time.Millisecond},
		"x", "l", "enter")
	// Socket #1 has no channels: tab says so.
	keys(m, "tab")
	if !strings.Contains(m.status.text, "app socket #1 has no channels") {
		t.Fatalf("status %q", m.status.text)
	}
}

// TestAppFaultMenuFromRegistry: the menus offer every app fault of
// registry's table, each once per kick mode it takes, and no other.
func TestAppFaultMenuFromRegistry(t *testing.T) {
	m, _ := appFaultModel(t)
	menu := newAppFaultMenu(m, appTarget{socket: 2, topic: "realtime:room:1"})
	var got []string
	keySeen := map[string]bool{}
	for _, it := range menu.items {
		if keySeen[it.key] || it.key == "" {
			t.Fatalf("key %q given twice or empty", it.key)
		}
		keySeen[it.key] = true
		if !it.enabled {
			t.Fatalf("%s disabled: %s", it.label, it.why)
		}
		name := it.fault.Kind.String()
		if it.fault.Mode != 0 {
			name += " " + it.fault.Mode.String()
		}
		got = append(got, name)
	}
	var want []string
	for _, k := range registry.AppFaultKinds() {
		if k == registry.FaultKick {
			want = append(want, "kick error", "kick close")
			continue
		}
		want = append(want, k.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("menu %v, registry %v", got, want)
	}
	// The settings asked are registry's: the form of reject-joins asks
	// count and reason, close asks code and reason.
	for k, asked := range map[registry.FaultKind][]registry.FaultSetting{
		registry.FaultRejectJoins: {registry.SettingCount, registry.SettingReason},
		registry.FaultClose:       {registry.SettingCode, registry.SettingReason},
		registry.FaultLatency:     {registry.SettingDelay, registry.SettingJitter},
		registry.FaultDrop:        nil,
	} {
		for _, r := range appRows(m.keys) {
			if r.kind == k && !slices.Equal(r.asked(), asked) {
				t.Errorf("%s asks %v, want %v", k, r.asked(), asked)
			}
		}
	}
}

// TestAppFaultsReadOnly: in read-only mode x says so and opens nothing.
func TestAppFaultsReadOnly(t *testing.T) {
	m, fm := appFaultModel(t, func(o *Options) { o.ReadOnly = true })
	keys(m, "x")
	if !isTop[*appsView](m) || len(fm.Faults()) != 0 || !strings.Contains(m.status.text, errReadOnly.Error()) {
		t.Fatalf("read-only x: top %T, status %q", m.dialogs.top(), m.status.text)
	}
	mustNotContain(t, screen(m), "x socket faults")
}

// TestAppsViewCacheKey: the selection in the channels is part of the
// Apps view's cache key, and a render with nothing changed keeps it.
func TestAppsViewCacheKey(t *testing.T) {
	m, _ := appFaultModel(t)
	v, _ := topDialog[*appsView](m)
	m.Render()
	rows := v.cache.rows
	m.Render()
	if &v.cache.rows[0] != &rows[0] {
		t.Fatal("rendered again with nothing changed")
	}
	keys(m, "tab")
	m.Render()
	if k := v.cache.key; !k.inChans || k.ch != 0 {
		t.Fatalf("after tab: %+v", k)
	}
	keys(m, "down")
	m.Render()
	if k := v.cache.key; !k.inChans || k.ch != 1 {
		t.Fatalf("after down: %+v", k)
	}
}

// TestAppFaultsMask: a key in an app channel's topic never shows in the
// channel's fault menu or its forms (the reason offered names the
// topic).
func TestAppFaultsMask(t *testing.T) {
	secret := "sb_secret_abcdefghijklmnopqrstuv0123456789"
	snap := sampleApps()
	snap.Sockets[1].Channels[0].Topic = "realtime:" + secret
	for _, sz := range goldenSizes {
		for _, ks := range [][]string{{"x"}, {"x", "r"}, {"x", "r", "tab"}, {"x", "K"}} {
			m, fm := newTestModel(t, sz[0], sz[1])
			withApps(m, snap)
			keys(m, "A", "tab")
			cmds := keys(m, ks...)
			if ks[len(ks)-1] == "K" {
				feed(m, cmds[len(cmds)-1]) // the kick (a form's cursor would blink for ever)
			}
			// Not even its first part (an input shows what fits).
			if out := screen(m); strings.Contains(out, secret[:16]) {
				t.Fatalf("%dx%d %q: unmasked:\n%s", sz[0], sz[1], ks, out)
			}
			if f := fm.Faults(); len(f) == 1 && f[0].Topic != "realtime:"+secret {
				t.Fatalf("the fault must name the topic as the app has it: %+v", f[0])
			}
		}
	}
}
