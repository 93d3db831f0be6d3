package registry

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultKind is a kind of simulated failure. Client faults act on the
// manager's own connection through the fault transport and work against
// any server; server faults (Server reports which) need Options.Server.
//
// Adding a fault: its transport or server control, a constant here with
// its row in FaultKind.spec (name, doc line, command-line arguments,
// settings taken and needed), its case in [Faults.Apply] and its text in
// [Fault.Summary] (and, if it takes arguments, how [ParseFault] reads
// them); the TUI's ":" commands and the scenario parser and runner pick
// it up from here.
type FaultKind uint8

// The faults, client faults first.
const (
	// FaultDrop closes the connection abruptly (no close frame).
	FaultDrop FaultKind = iota + 1
	// FaultFreeze holds the connection half-open for Duration:
	// heartbeats go unanswered.
	FaultFreeze
	// FaultLatency adds Delay of latency each way (0 removes it).
	FaultLatency
	// FaultFailConnects makes the next Count connection attempts fail
	// (0 cancels).
	FaultFailConnects
	// FaultExpireToken replaces the user token by an expired one.
	FaultExpireToken
	// FaultChannelError delivers a phx_error for Channel's join.
	FaultChannelError
	// FaultHeal clears the client faults in force: it thaws a frozen
	// connection, removes the added latency and cancels the connects
	// set to fail.
	FaultHeal
	// FaultKick makes the server end Channel with phx_error or
	// phx_close (Mode). Server side.
	FaultKick
	// FaultRejectJoins makes the server refuse the next Count joins,
	// all joins for Duration, or both, with Reason. Server side.
	FaultRejectJoins
	// FaultDropAll makes the server drop every socket. Server side.
	FaultDropAll
	// FaultRestart restarts the server, its listener down for Duration.
	// Server side.
	FaultRestart
)

// FaultSetting names a setting of a fault as a scenario writes it.
type FaultSetting string

// The settings, in the order parsers check them.
const (
	// SettingChannel is Fault.Channel.
	SettingChannel FaultSetting = "channel"
	// SettingFor is Fault.Duration.
	SettingFor FaultSetting = "for"
	// SettingDelay is Fault.Delay.
	SettingDelay FaultSetting = "delay"
	// SettingCount is Fault.Count.
	SettingCount FaultSetting = "count"
	// SettingMode is Fault.Mode.
	SettingMode FaultSetting = "mode"
	// SettingReason is Fault.Reason.
	SettingReason FaultSetting = "reason"
)

// FaultSettings lists every setting, in the order parsers check them.
func FaultSettings() []FaultSetting {
	return []FaultSetting{SettingChannel, SettingFor, SettingDelay, SettingCount, SettingMode, SettingReason}
}

// faultSpec is one row of the fault table.
type faultSpec struct {
	name   string
	server bool
	// doc is the one-line description; args the command-line arguments
	// (as the TUI's help shows them).
	doc, args string
	// takes are the settings the fault takes; needs those it needs.
	takes, needs []FaultSetting
	// needsAny, when set, are settings of which one at least must be
	// given; needsAnyText says so in the error.
	needsAny     []FaultSetting
	needsAnyText string
}

// spec returns the fault's row of the one table of faults.
func (k FaultKind) spec() (faultSpec, bool) {
	switch k {
	case FaultDrop:
		return faultSpec{name: "drop", doc: "drop the connection (client side)"}, true
	case FaultFreeze:
		return faultSpec{name: "freeze", doc: "freeze the connection half-open", args: "<duration>", takes: []FaultSetting{SettingFor}, needs: []FaultSetting{SettingFor}}, true
	case FaultLatency:
		return faultSpec{name: "latency", doc: "add latency each way (0 removes it)", args: "<duration>", takes: []FaultSetting{SettingDelay}, needs: []FaultSetting{SettingDelay}}, true
	case FaultFailConnects:
		return faultSpec{name: "fail-connects", doc: "fail the next n connection attempts", args: "<n>", takes: []FaultSetting{SettingCount}, needs: []FaultSetting{SettingCount}}, true
	case FaultExpireToken:
		return faultSpec{name: "expire-token", doc: "expire the user token now"}, true
	case FaultChannelError:
		return faultSpec{name: "channel-error", doc: "inject a channel error (phx_error) on a joined channel", args: "<name>", takes: []FaultSetting{SettingChannel}, needs: []FaultSetting{SettingChannel}}, true
	case FaultHeal:
		return faultSpec{name: "heal", doc: "clear the client faults in force (freeze, latency, failing connects)"}, true
	case FaultKick:
		return faultSpec{name: "kick", server: true, doc: "server ends the channel (embedded server / rtm serve)", args: "<name> [error|close]", takes: []FaultSetting{SettingChannel, SettingMode}, needs: []FaultSetting{SettingChannel}}, true
	case FaultRejectJoins:
		return faultSpec{name: "reject-joins", server: true, doc: "server refuses the next n joins or joins for a while", args: "<n|duration>",
			takes: []FaultSetting{SettingCount, SettingFor, SettingReason}, needsAny: []FaultSetting{SettingCount, SettingFor},
			needsAnyText: "count (the next N joins), for (a duration) or both"}, true
	case FaultDropAll:
		return faultSpec{name: "drop-all", server: true, doc: "server drops every socket"}, true
	case FaultRestart:
		return faultSpec{name: "restart", server: true, doc: "server restarts, its listener down for a while", args: "[duration]", takes: []FaultSetting{SettingFor}}, true
	}
	return faultSpec{}, false
}

// FaultKinds lists every fault, client faults first.
func FaultKinds() []FaultKind {
	out := make([]FaultKind, 0, int(FaultRestart))
	for k := FaultDrop; k <= FaultRestart; k++ {
		out = append(out, k)
	}
	return out
}

// FaultKindNames lists the faults' names (see FaultKinds).
func FaultKindNames() []string {
	ks := FaultKinds()
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.String()
	}
	return out
}

// String returns the fault's name ("drop", "fail-connects", ...), as
// scenarios and the TUI's ":" commands write it.
func (k FaultKind) String() string {
	if s, ok := k.spec(); ok {
		return s.name
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// ParseFaultKind parses a fault's name.
func ParseFaultKind(s string) (FaultKind, error) {
	for _, k := range FaultKinds() {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown fault %q (want %s)", s, strings.Join(FaultKindNames(), ", "))
}

// Valid reports whether k is one of FaultKinds.
func (k FaultKind) Valid() bool {
	_, ok := k.spec()
	return ok
}

// Server reports whether the fault needs server access (Options.Server).
func (k FaultKind) Server() bool {
	s, _ := k.spec()
	return s.server
}

// Doc describes the fault in one line.
func (k FaultKind) Doc() string {
	s, _ := k.spec()
	return s.doc
}

// Args returns the fault's command-line arguments as a usage line shows
// them ("<name> [error|close]"; "" for none). See ParseFault.
func (k FaultKind) Args() string {
	s, _ := k.spec()
	return s.args
}

// Usage returns the fault's command line ("kick <name> [error|close]").
func (k FaultKind) Usage() string {
	return strings.TrimSpace(k.String() + " " + k.Args())
}

// Takes lists the settings the fault takes.
func (k FaultKind) Takes() []FaultSetting {
	s, _ := k.spec()
	return s.takes
}

// Needs lists the settings the fault cannot do without. Reject-joins
// needs count, for or both: CheckSettings says so.
func (k FaultKind) Needs() []FaultSetting {
	s, _ := k.spec()
	return s.needs
}

// FaultSettingError says that a fault was given a setting it does not
// take, or lacks one it needs.
type FaultSettingError struct {
	Kind FaultKind
	// Setting is the setting at fault ("" when one of several is
	// missing).
	Setting FaultSetting
	// Missing is true when the setting is missing, false when it was
	// given but is not taken.
	Missing bool
	msg     string
}

func (e *FaultSettingError) Error() string { return e.msg }

// CheckSettings checks the settings given (given reports whether a
// setting is there) against the fault's table: the first setting given
// that the fault does not take (in FaultSettings order), then the first
// it needs that is missing. The error is a *FaultSettingError.
func (k FaultKind) CheckSettings(given func(FaultSetting) bool) error {
	s, ok := k.spec()
	if !ok {
		return fmt.Errorf("unknown fault %v", k)
	}
	for _, set := range FaultSettings() {
		if !given(set) || slices.Contains(s.takes, set) {
			continue
		}
		e := &FaultSettingError{Kind: k, Setting: set}
		if len(s.takes) == 0 {
			e.msg = fmt.Sprintf("fault %s takes no %s", s.name, set)
		} else {
			e.msg = fmt.Sprintf("fault %s takes no %s (it takes %s)", s.name, set, joinSettings(s.takes))
		}
		return e
	}
	for _, set := range s.needs {
		if !given(set) {
			return &FaultSettingError{Kind: k, Setting: set, Missing: true, msg: fmt.Sprintf("fault %s needs %s", s.name, set)}
		}
	}
	if len(s.needsAny) > 0 {
		for _, set := range s.needsAny {
			if given(set) {
				return nil
			}
		}
		return &FaultSettingError{Kind: k, Missing: true, msg: fmt.Sprintf("fault %s needs %s", s.name, s.needsAnyText)}
	}
	return nil
}

func joinSettings(ss []FaultSetting) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// Fault is one simulated failure and its settings; Kind says which
// settings apply (FaultKind.Takes). The zero values mean: no channel,
// no duration, no delay (a latency of 0 removes it), a count of 0 (for
// fail-connects: cancel), the default kick mode (KickError), the
// server's default reason.
type Fault struct {
	Kind FaultKind
	// Channel is the channel of channel-error and kick.
	Channel Name
	// Duration ("for") is the length of a freeze, how long joins are
	// rejected, or a restart's downtime.
	Duration time.Duration
	// Delay is the latency a latency fault adds each way.
	Delay time.Duration
	// Count is the number of connects to fail or joins to reject.
	Count int
	// Mode is how kick ends the channel (0: KickError).
	Mode KickMode
	// Reason is a reject-joins reason ("": the server's default).
	Reason string
}

// mode returns the kick mode, KickError by default.
func (f Fault) mode() KickMode {
	if f.Mode == 0 {
		return KickError
	}
	return f.Mode
}

// String returns the fault as a command line that ParseFault reads
// back ("freeze 10s", "kick broadcast:room:1 close"). A reject-joins
// with both a count and a duration, or a reason, is written out in full
// but has no command-line form.
func (f Fault) String() string {
	s := f.Kind.String()
	switch f.Kind {
	case FaultFreeze:
		s += " " + f.Duration.String()
	case FaultLatency:
		s += " " + f.Delay.String()
	case FaultFailConnects:
		s += " " + strconv.Itoa(f.Count)
	case FaultChannelError:
		s += " " + f.Channel.String()
	case FaultKick:
		s += " " + f.Channel.String()
		if f.Mode == KickClose {
			s += " " + f.Mode.String()
		}
	case FaultRejectJoins:
		if f.Count > 0 || f.Duration == 0 {
			s += " " + strconv.Itoa(f.Count)
		}
		if f.Duration > 0 {
			s += " " + f.Duration.String()
		}
		if f.Reason != "" {
			s += " reason=" + strconv.Quote(f.Reason)
		}
	case FaultRestart:
		if f.Duration > 0 {
			s += " " + f.Duration.String()
		}
	}
	return s
}

// Validate checks the fault's values: a known kind, no setting it does
// not take, the channel it needs, no negative duration, delay or count,
// a positive freeze, a known kick mode.
func (f Fault) Validate() error {
	s, ok := f.Kind.spec()
	if !ok {
		return fmt.Errorf("unknown fault %v", f.Kind)
	}
	given := func(set FaultSetting) bool {
		switch set {
		case SettingChannel:
			return !f.Channel.IsZero()
		case SettingFor:
			return f.Duration != 0
		case SettingDelay:
			return f.Delay != 0
		case SettingCount:
			return f.Count != 0
		case SettingMode:
			return f.Mode != 0
		case SettingReason:
			return f.Reason != ""
		}
		return false
	}
	if err := f.Kind.CheckSettings(given); err != nil {
		var se *FaultSettingError
		// Zero values are valid values (a latency of 0, a count of 0):
		// only a missing channel is an error.
		if !errors.As(err, &se) || !se.Missing || se.Setting == SettingChannel {
			return err
		}
	}
	switch {
	case f.Duration < 0:
		return fmt.Errorf("fault %s: for %v must not be negative", s.name, f.Duration)
	case f.Delay < 0:
		return fmt.Errorf("fault %s: delay %v must not be negative", s.name, f.Delay)
	case f.Count < 0:
		return fmt.Errorf("fault %s: count %d must not be negative", s.name, f.Count)
	case f.Kind == FaultFreeze && f.Duration <= 0:
		return errors.New("freeze needs a positive duration")
	case f.Mode != 0 && f.Mode != KickError && f.Mode != KickClose:
		return fmt.Errorf("fault %s: unknown kick mode %v", s.name, f.Mode)
	}
	return nil
}

// Summary describes the fault once applied, for a status line
// ("dropped the connection", "server rejects the next 3 joins").
func (f Fault) Summary() string {
	switch f.Kind {
	case FaultDrop:
		return "dropped the connection"
	case FaultFreeze:
		return fmt.Sprintf("froze the connection for %s", f.Duration)
	case FaultLatency:
		if f.Delay == 0 {
			return "removed the added latency"
		}
		return fmt.Sprintf("added %s latency each way", FormatDuration(f.Delay))
	case FaultFailConnects:
		return fmt.Sprintf("the next %d connection attempts will fail", f.Count)
	case FaultExpireToken:
		return "expired the token"
	case FaultChannelError:
		return "injected a channel error on " + f.Channel.String()
	case FaultHeal:
		return "cleared the client faults"
	case FaultKick:
		return fmt.Sprintf("server kicked %s (%s)", f.Channel, f.mode())
	case FaultRejectJoins:
		if f.Duration > 0 {
			return fmt.Sprintf("server rejects joins for %s", f.Duration)
		}
		return fmt.Sprintf("server rejects the next %d joins", f.Count)
	case FaultDropAll:
		return "server dropped every socket"
	case FaultRestart:
		if f.Duration > 0 {
			return fmt.Sprintf("server restarted (down for %s)", f.Duration)
		}
		return "server restarted"
	}
	return f.String()
}

// FormatDuration writes d for a person, as the status line and the
// fault summaries show it: whole units where it has them (3s, 2m0s),
// milliseconds below a second (250ms), tenths of a second above (2.5s).
func FormatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d%time.Second == 0 && d < time.Hour:
		return d.String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}
