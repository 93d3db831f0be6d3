package registry_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"rtm/registry"
)

func TestFaultKinds(t *testing.T) {
	names := registry.FaultKindNames()
	want := "drop freeze latency fail-connects expire-token channel-error heal kick reject-joins drop-all restart close drop-messages duplicate-messages"
	if strings.Join(names, " ") != want {
		t.Fatalf("names %v", names)
	}
	for _, k := range registry.FaultKinds() {
		got, err := registry.ParseFaultKind(k.String())
		if err != nil || got != k || !k.Valid() || k.Doc() == "" {
			t.Fatalf("%v: parse %v %v, doc %q", k, got, err, k.Doc())
		}
		server := k == registry.FaultKick || k == registry.FaultRejectJoins || k == registry.FaultDropAll || k == registry.FaultRestart
		if k.Server() != server {
			t.Errorf("%v.Server() = %v", k, k.Server())
		}
	}
	_, err := registry.ParseFaultKind("explode")
	if err == nil || err.Error() != `unknown fault "explode" (want `+strings.Join(names, ", ")+")" {
		t.Fatalf("err %v", err)
	}
	if k := registry.FaultKind(0); k.Valid() || k.String() != "FaultKind(0)" || k.Server() || k.Doc() != "" {
		t.Fatalf("the zero kind: %v", k)
	}
	if u := registry.FaultKick.Usage(); u != "kick <name> [error|close]" {
		t.Fatalf("usage %q", u)
	}
	if u := registry.FaultDrop.Usage(); u != "drop" {
		t.Fatalf("usage %q", u)
	}
}

// TestFaultCheckSettings: the table of settings gives the scenario
// parser's messages.
func TestFaultCheckSettings(t *testing.T) {
	for _, tc := range []struct {
		kind    registry.FaultKind
		given   string
		want    string
		setting registry.FaultSetting
		missing bool
	}{
		{registry.FaultDrop, "", "", "", false},
		{registry.FaultDrop, "for", "fault drop takes no for", registry.SettingFor, false},
		{registry.FaultFreeze, "", "fault freeze needs for", registry.SettingFor, true},
		{registry.FaultFreeze, "for count", "fault freeze takes no count (it takes for)", registry.SettingCount, false},
		{registry.FaultLatency, "delay", "", "", false},
		{registry.FaultKick, "mode", "fault kick needs channel", registry.SettingChannel, true},
		{registry.FaultKick, "channel reason", "fault kick takes no reason (it takes channel, mode)", registry.SettingReason, false},
		{registry.FaultRejectJoins, "reason", "fault reject-joins needs count (the next N joins), for (a duration) or both", "", true},
		{registry.FaultRejectJoins, "for reason", "", "", false},
		{registry.FaultRestart, "", "", "", false},
		{registry.FaultChannelError, "channel", "", "", false},
	} {
		given := strings.Fields(tc.given)
		err := tc.kind.CheckSettings(func(s registry.FaultSetting) bool {
			for _, g := range given {
				if g == string(s) {
					return true
				}
			}
			return false
		})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v %q: %v", tc.kind, tc.given, err)
			}
			continue
		}
		var se *registry.FaultSettingError
		if !errors.As(err, &se) || err.Error() != tc.want || se.Setting != tc.setting || se.Missing != tc.missing || se.Kind != tc.kind {
			t.Errorf("%v %q: %#v, want %q", tc.kind, tc.given, err, tc.want)
		}
	}
	if got := registry.FaultKick.Takes(); len(got) != 2 || got[0] != registry.SettingChannel || got[1] != registry.SettingMode {
		t.Fatalf("takes %v", got)
	}
	if got := registry.FaultLatency.Needs(); len(got) != 1 || got[0] != registry.SettingDelay {
		t.Fatalf("needs %v", got)
	}
}

func TestParseFault(t *testing.T) {
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	for _, tc := range []struct {
		line    string
		want    registry.Fault
		summary string
	}{
		{"drop", registry.Fault{Kind: registry.FaultDrop}, "dropped the connection"},
		{"freeze 10s", registry.Fault{Kind: registry.FaultFreeze, Duration: 10 * time.Second}, "froze the connection for 10s"},
		{"freeze 2.5", registry.Fault{Kind: registry.FaultFreeze, Duration: 2500 * time.Millisecond}, "froze the connection for 2.5s"},
		{"latency 500ms", registry.Fault{Kind: registry.FaultLatency, Delay: 500 * time.Millisecond}, "added 500ms latency each way"},
		{"latency 0", registry.Fault{Kind: registry.FaultLatency}, "removed the added latency"},
		{"fail-connects 3", registry.Fault{Kind: registry.FaultFailConnects, Count: 3}, "the next 3 connection attempts will fail"},
		{"expire-token", registry.Fault{Kind: registry.FaultExpireToken}, "expired the token"},
		{"channel-error broadcast:room:1", registry.Fault{Kind: registry.FaultChannelError, Channel: room}, "injected a channel error on broadcast:room:1"},
		{"kick broadcast:room:1", registry.Fault{Kind: registry.FaultKick, Channel: room, Mode: registry.KickError}, "server kicked broadcast:room:1 (error)"},
		{"kick realtime:broadcast:room:1 close", registry.Fault{Kind: registry.FaultKick, Channel: room, Mode: registry.KickClose}, "server kicked broadcast:room:1 (close)"},
		{"reject-joins 3", registry.Fault{Kind: registry.FaultRejectJoins, Count: 3}, "server rejects the next 3 joins"},
		{"reject-joins 10s", registry.Fault{Kind: registry.FaultRejectJoins, Duration: 10 * time.Second}, "server rejects joins for 10s"},
		{"drop-all", registry.Fault{Kind: registry.FaultDropAll}, "server dropped every socket"},
		{"restart", registry.Fault{Kind: registry.FaultRestart}, "server restarted"},
		{"restart 2s", registry.Fault{Kind: registry.FaultRestart, Duration: 2 * time.Second}, "server restarted (down for 2s)"},
	} {
		f, err := registry.ParseFault(strings.Fields(tc.line))
		if err != nil || f != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.line, f, err, tc.want)
			continue
		}
		if s := f.Summary(); s != tc.summary {
			t.Errorf("%q: summary %q, want %q", tc.line, s, tc.summary)
		}
		if back, err := registry.ParseFault(strings.Fields(f.String())); err != nil || back != f {
			t.Errorf("%q: String %q parses to %+v %v", tc.line, f.String(), back, err)
		}
	}
}

// TestParseFaultErrors: the TUI's ":" command errors.
func TestParseFaultErrors(t *testing.T) {
	for _, tc := range []struct {
		line, want, arg string
		usage           bool
	}{
		{"", "no fault: want one of drop, freeze", "", false},
		{"jump", `unknown fault "jump"`, "", false},
		{"drop now", "drop: usage: drop", "", true},
		{"freeze", "freeze: usage: freeze <duration>", "", true},
		{"freeze soon", `freeze soon: "soon" is not a duration (10s, 500ms, 2m)`, "soon", false},
		{"freeze 0", "freeze 0: freeze needs a positive duration", "0", false},
		{"freeze -1", `freeze -1: duration "-1" is negative`, "-1", false},
		{"latency NaN", `latency NaN: "NaN" is not a duration`, "NaN", false},
		{"latency 1e300", `latency 1e300: "1e300" is not a duration`, "1e300", false},
		{"fail-connects -1", `fail-connects -1: "-1" is not a count (0 or more)`, "-1", false},
		{"reject-joins never", `reject-joins never: "never" is neither a count nor a duration (3, 10s)`, "never", false},
		{"kick", "kick: usage: kick <name> [error|close]", "", true},
		{"kick broadcast:room:1 explode", `kick explode: registry: kick mode "explode" (want error or close)`, "explode", false},
		{"kick room:1", `kick room:1: invalid channel name "room:1"`, "room:1", false},
		{"channel-error", "channel-error: usage: channel-error <name>", "", true},
		{"restart 1s 2s", "restart: usage: restart [duration]", "", true},
	} {
		_, err := registry.ParseFault(strings.Fields(tc.line))
		var pe *registry.FaultParseError
		if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), tc.want) || pe.Arg != tc.arg || errors.Is(err, registry.ErrFaultUsage) != tc.usage {
			t.Errorf("%q: %v (%#v), want %q", tc.line, err, pe, tc.want)
		}
	}
}

func TestParseFaultNames(t *testing.T) {
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	short := func(s string) (registry.Name, error) {
		if s == "r" {
			return room, nil
		}
		return registry.Name{}, errors.New("no such channel")
	}
	f, err := registry.ParseFaultNames([]string{"kick", "r", "close"}, short)
	if err != nil || f.Channel != room || f.Mode != registry.KickClose {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := registry.ParseFaultNames([]string{"channel-error", "x"}, short); err == nil || err.Error() != "channel-error x: no such channel" {
		t.Fatalf("err %v", err)
	}
}

func TestFaultValidate(t *testing.T) {
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	for _, tc := range []struct {
		f    registry.Fault
		want string
	}{
		{registry.Fault{}, "unknown fault FaultKind(0)"},
		{registry.Fault{Kind: 200}, "unknown fault FaultKind(200)"},
		{registry.Fault{Kind: registry.FaultDrop, Count: 2}, "fault drop takes no count"},
		{registry.Fault{Kind: registry.FaultLatency, Duration: time.Second}, "fault latency takes no for (it takes delay)"},
		{registry.Fault{Kind: registry.FaultKick}, "fault kick needs channel"},
		{registry.Fault{Kind: registry.FaultKick, Channel: room, Mode: 9}, "fault kick: unknown kick mode KickMode(9)"},
		{registry.Fault{Kind: registry.FaultFreeze}, "freeze needs a positive duration"},
		{registry.Fault{Kind: registry.FaultLatency, Delay: -time.Second}, "fault latency: delay -1s must not be negative"},
		{registry.Fault{Kind: registry.FaultFailConnects, Count: -1}, "fault fail-connects: count -1 must not be negative"},
		{registry.Fault{Kind: registry.FaultRestart, Duration: -time.Second}, "fault restart: for -1s must not be negative"},
	} {
		if err := tc.f.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.f, err, tc.want)
		}
	}
	for _, f := range []registry.Fault{
		{Kind: registry.FaultLatency},
		{Kind: registry.FaultFailConnects},
		{Kind: registry.FaultRejectJoins},
		{Kind: registry.FaultRejectJoins, Count: 3, Duration: time.Second, Reason: "busy"},
		{Kind: registry.FaultKick, Channel: room},
	} {
		if err := f.Validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	f := registry.Fault{Kind: registry.FaultRejectJoins, Count: 3, Duration: time.Second, Reason: "busy"}
	if s := f.String(); s != `reject-joins 3 1s reason="busy"` {
		t.Fatalf("string %q", s)
	}
	if s := (registry.Fault{Kind: registry.FaultKick, Channel: room}).Summary(); s != "server kicked broadcast:room:1 (error)" {
		t.Fatalf("summary %q", s)
	}
}

// TestFaultsApply applies every fault to a manager on the embedded
// server.
func TestFaultsApply(t *testing.T) {
	e := newEnv(t)
	fs := e.m.Faults()
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	if _, err := e.m.Join(ctx(t), room); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(room, registry.StatusConnected)
	apply := func(f registry.Fault) {
		t.Helper()
		if err := fs.Apply(ctx(t), f); err != nil {
			t.Fatalf("%v: %v", f, err)
		}
	}
	apply(registry.Fault{Kind: registry.FaultLatency, Delay: 5 * time.Millisecond})
	if l := fs.State().Latency; l != 5*time.Millisecond {
		t.Fatalf("latency %v", l)
	}
	apply(registry.Fault{Kind: registry.FaultLatency})
	apply(registry.Fault{Kind: registry.FaultFailConnects, Count: 2})
	if n := fs.State().FailConnects; n != 2 {
		t.Fatalf("fail connects %d", n)
	}
	apply(registry.Fault{Kind: registry.FaultFailConnects})
	// heal clears every client fault at once.
	apply(registry.Fault{Kind: registry.FaultLatency, Delay: 5 * time.Millisecond})
	apply(registry.Fault{Kind: registry.FaultFailConnects, Count: 2})
	apply(registry.Fault{Kind: registry.FaultFreeze, Duration: time.Hour})
	if s := fs.State(); s.Latency == 0 || s.FailConnects != 2 || s.FrozenUntil.IsZero() {
		t.Fatalf("faults before heal: %+v", s)
	}
	apply(registry.Fault{Kind: registry.FaultHeal})
	if s := fs.State(); s.Latency != 0 || s.FailConnects != 0 || !s.FrozenUntil.IsZero() {
		t.Fatalf("faults after heal: %+v", s)
	}
	apply(registry.Fault{Kind: registry.FaultChannelError, Channel: room})
	e.waitStatus(room, registry.StatusConnected)
	apply(registry.Fault{Kind: registry.FaultKick, Channel: room, Mode: registry.KickClose})
	e.waitStatus(room, registry.StatusConnected)
	apply(registry.Fault{Kind: registry.FaultRejectJoins, Count: 1})
	apply(registry.Fault{Kind: registry.FaultRejectJoins})
	apply(registry.Fault{Kind: registry.FaultExpireToken})
	apply(registry.Fault{Kind: registry.FaultFreeze, Duration: time.Millisecond})
	apply(registry.Fault{Kind: registry.FaultDropAll})
	apply(registry.Fault{Kind: registry.FaultRestart, Duration: time.Millisecond})
	// The socket status may still be that of the connection the restart
	// closed: drop once a connection is open again.
	eventually(t, "a drop after the restart", func() bool {
		return fs.Apply(ctx(t), registry.Fault{Kind: registry.FaultDrop}) == nil
	})

	// The admin API answers a restart before the listener goes down, so
	// the server may not be back yet: ask until it answers.
	other := registry.MustName(registry.KindBroadcast, "room", "2", "")
	var kickErr error
	eventually(t, "the kick of a channel the server lacks refused", func() bool {
		kickErr = fs.Apply(ctx(t), registry.Fault{Kind: registry.FaultKick, Channel: other})
		return kickErr != nil && !errors.Is(kickErr, syscall.ECONNREFUSED) && !errors.Is(kickErr, syscall.ECONNRESET)
	})
	if kickErr.Error() != "the server holds no channel broadcast:room:2 to kick" {
		t.Fatalf("kick of a channel the server lacks: %v", kickErr)
	}
	if err := fs.Apply(ctx(t), registry.Fault{Kind: registry.FaultFreeze}); err == nil {
		t.Fatal("an invalid fault was applied")
	}
	e.socketDownForGood()
	eventually(t, "the socket down", func() bool { return e.m.Snapshot().Socket.Status != registry.SocketConnected })
	if err := fs.Apply(ctx(t), registry.Fault{Kind: registry.FaultDrop}); err == nil || err.Error() != "no open connection to drop" {
		t.Fatalf("drop without a connection: %v", err)
	}
}

// FuzzParseFault: ParseFault never panics, and what it parses is valid
// and reads back from its String.
func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"drop", "freeze 10s", "latency 500ms", "latency 0", "fail-connects 3", "kick broadcast:room:1 close",
		"kick tenant:acme:presence:contact:1", "reject-joins 3", "reject-joins 10s", "channel-error subscription:project:4",
		"expire-token", "heal", "drop-all", "restart", "restart 1.5", "freeze NaN", "freeze 1e300", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		if len(args) > 0 {
			if k, err := registry.ParseFaultKind(args[0]); err == nil && k.String() != args[0] {
				t.Fatalf("kind %q parsed as %v", args[0], k)
			}
		}
		flt, err := registry.ParseFault(args)
		if err != nil {
			var pe *registry.FaultParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a FaultParseError", err)
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("%q parsed to an invalid %+v: %v", line, flt, err)
		}
		_ = flt.Summary()
		back, err := registry.ParseFault(strings.Fields(flt.String()))
		if err != nil || back != flt {
			t.Fatalf("%q: %+v writes %q, which parses to %+v %v", line, flt, flt.String(), back, err)
		}
	})
}

// TestParseAppFault: the app faults' command lines parse into Faults
// that write themselves back, and the wrong ones say why.
func TestParseAppFault(t *testing.T) {
	for _, tc := range []struct {
		line string
		want registry.Fault
	}{
		{"app drop", registry.Fault{App: true, Kind: registry.FaultDrop}},
		{"app all drop", registry.Fault{App: true, Kind: registry.FaultDrop}},
		{"app 3 close 4000 going away", registry.Fault{App: true, Kind: registry.FaultClose, Socket: 3, Code: 4000, Reason: "going away"}},
		{"app 2 freeze 10s", registry.Fault{App: true, Kind: registry.FaultFreeze, Socket: 2, Duration: 10 * time.Second}},
		{"app latency 50ms 20ms", registry.Fault{App: true, Kind: registry.FaultLatency, Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond}},
		{"app fail-connects 2", registry.Fault{App: true, Kind: registry.FaultFailConnects, Count: 2}},
		{"app expire-token", registry.Fault{App: true, Kind: registry.FaultExpireToken}},
		{"app kick room1 close", registry.Fault{App: true, Kind: registry.FaultKick, Topic: "realtime:room1", Mode: registry.KickClose}},
		{"app reject-joins realtime:room1 2 Unauthorized: nope", registry.Fault{App: true, Kind: registry.FaultRejectJoins, Topic: "realtime:room1", Count: 2, Reason: "Unauthorized: nope"}},
		{"app heal", registry.Fault{App: true, Kind: registry.FaultHeal}},
		{"app drop-messages room 3", registry.Fault{App: true, Kind: registry.FaultDropMessages, Topic: "realtime:room", Count: 3}},
		{"app duplicate-messages room 1", registry.Fault{App: true, Kind: registry.FaultDuplicateMessages, Topic: "realtime:room", Count: 1}},
	} {
		f, err := registry.ParseFault(strings.Fields(tc.line))
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if tc.want.Kind == registry.FaultKick && tc.want.Mode == 0 {
			tc.want.Mode = registry.KickError
		}
		if f != tc.want {
			t.Fatalf("%s: got %+v, want %+v", tc.line, f, tc.want)
		}
		back, err := registry.ParseFault(strings.Fields(f.String()))
		if err != nil || back != f {
			t.Fatalf("%s: String %q reads back as %+v, %v", tc.line, f.String(), back, err)
		}
		if f.Summary() == "" || f.Summary() == f.String() {
			t.Fatalf("%s: summary %q", tc.line, f.Summary())
		}
	}
	for _, tc := range []struct{ line, want string }{
		{"app", "usage: app [N|all] <fault>"},
		{"app restart", "does not act on an app"},
		{"app channel-error room", "does not act on an app"},
		{"app close", "usage: app [N|all] close <code> [reason...]"},
		{"app close 999", "not one an app may be sent"},
		{"app freeze", "usage"},
		{"app kick room sideways", "sideways"},
		{"app drop-messages room -1", "not a count"},
		{"app latency 10ms 5ms 1ms", "usage"},
		{"close 4000", "acts only on an app"},
		{"drop-messages room 2", "acts only on an app"},
	} {
		_, err := registry.ParseFault(strings.Fields(tc.line))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: error %v, want it to say %q", tc.line, err, tc.want)
		}
	}
	for _, k := range registry.AppFaultKinds() {
		if k.AppDoc() == "" || !strings.HasPrefix(k.AppUsage(), "app [N|all] "+k.String()) {
			t.Fatalf("%v: app doc %q usage %q", k, k.AppDoc(), k.AppUsage())
		}
	}
}
