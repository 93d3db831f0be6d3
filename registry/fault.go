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
	// FaultClose closes an app's socket with Code and Reason. App only.
	FaultClose
	// FaultDropMessages drops the next Count messages to the app on
	// Topic. App only.
	FaultDropMessages
	// FaultDuplicateMessages sends the app the next Count messages on
	// Topic twice. App only.
	FaultDuplicateMessages
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
	// SettingJitter is Fault.Jitter (app latency).
	SettingJitter FaultSetting = "jitter"
	// SettingApp is Fault.App: the fault acts on the app's sockets behind
	// rtm's proxy.
	SettingApp FaultSetting = "app"
	// SettingSocket is Fault.Socket (an app socket; none: every one).
	SettingSocket FaultSetting = "socket"
	// SettingTopic is Fault.Topic (an app channel's topic).
	SettingTopic FaultSetting = "topic"
	// SettingCode is Fault.Code (the close code of an app close).
	SettingCode FaultSetting = "code"
)

// FaultSettings lists every setting, in the order parsers check them.
func FaultSettings() []FaultSetting {
	return []FaultSetting{SettingChannel, SettingFor, SettingDelay, SettingCount, SettingMode, SettingReason,
		SettingJitter, SettingApp, SettingSocket, SettingTopic, SettingCode}
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
	// appOnly faults act only on an app's sockets behind rtm's proxy
	// (Fault.App); FaultKind.appForm is how each fault does.
	appOnly bool
}

// appSpec is the app form of a fault: its doc line, command-line
// arguments (after "app [N|all]"), and settings taken and needed
// (SettingApp is implied).
type appSpec struct {
	doc, args    string
	takes, needs []FaultSetting
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
	case FaultClose:
		return faultSpec{name: "close", appOnly: true}, true
	case FaultDropMessages:
		return faultSpec{name: "drop-messages", appOnly: true}, true
	case FaultDuplicateMessages:
		return faultSpec{name: "duplicate-messages", appOnly: true}, true
	}
	return faultSpec{}, false
}

// appForm returns the app form of a fault, if it has one: the second
// table, of what each fault does to an app through rtm's proxy.
func (k FaultKind) appForm() (appSpec, bool) {
	sock := []FaultSetting{SettingSocket}
	switch k {
	case FaultDrop:
		return appSpec{doc: "drop the app's socket (no close frame)", takes: sock}, true
	case FaultClose:
		return appSpec{doc: "close the app's socket with a code and reason", args: "<code> [reason...]", takes: []FaultSetting{SettingSocket, SettingCode, SettingReason}, needs: []FaultSetting{SettingCode}}, true
	case FaultFreeze:
		return appSpec{doc: "freeze the app's socket half-open (its heartbeat times out)", args: "<duration>", takes: []FaultSetting{SettingSocket, SettingFor}, needs: []FaultSetting{SettingFor}}, true
	case FaultLatency:
		return appSpec{doc: "add latency each way to every app socket (0 removes it)", args: "<duration> [jitter]", takes: []FaultSetting{SettingDelay, SettingJitter}, needs: []FaultSetting{SettingDelay}}, true
	case FaultFailConnects:
		return appSpec{doc: "refuse the app's next n upgrades (503)", args: "<n>", takes: []FaultSetting{SettingCount}, needs: []FaultSetting{SettingCount}}, true
	case FaultExpireToken:
		return appSpec{doc: "expire the app's token (system message and phx_close per channel)", takes: sock}, true
	case FaultKick:
		return appSpec{doc: "end an app channel: phx_error (it rejoins) or phx_close", args: "<topic> [error|close]", takes: []FaultSetting{SettingSocket, SettingTopic, SettingMode}, needs: []FaultSetting{SettingTopic}}, true
	case FaultRejectJoins:
		return appSpec{doc: "answer the app's next n joins of a topic with an error reply", args: "<topic> <n> [reason...]", takes: []FaultSetting{SettingTopic, SettingCount, SettingReason}, needs: []FaultSetting{SettingTopic, SettingCount}}, true
	case FaultHeal:
		return appSpec{doc: "thaw the app's sockets, remove the latency, stop refusing upgrades"}, true
	case FaultDropMessages:
		return appSpec{doc: "drop the next n messages to the app on a topic", args: "<topic> <n>", takes: []FaultSetting{SettingTopic, SettingCount}, needs: []FaultSetting{SettingTopic, SettingCount}}, true
	case FaultDuplicateMessages:
		return appSpec{doc: "send the app the next n messages on a topic twice", args: "<topic> <n>", takes: []FaultSetting{SettingTopic, SettingCount}, needs: []FaultSetting{SettingTopic, SettingCount}}, true
	}
	return appSpec{}, false
}

// FaultKinds lists every fault: client faults, server faults, then the
// faults that act only on apps.
func FaultKinds() []FaultKind {
	out := make([]FaultKind, 0, int(FaultDuplicateMessages))
	for k := FaultDrop; k <= FaultDuplicateMessages; k++ {
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

// Doc describes the fault in one line (its app form's, for a fault
// that acts only on apps).
func (k FaultKind) Doc() string {
	s, _ := k.spec()
	if s.appOnly {
		a, _ := k.appForm()
		return a.doc
	}
	return s.doc
}

// App reports whether the fault can act on an app's sockets behind
// rtm's proxy (Fault.App).
func (k FaultKind) App() bool {
	_, ok := k.appForm()
	return ok
}

// OnlyApp reports whether the fault acts only on apps.
func (k FaultKind) OnlyApp() bool {
	s, _ := k.spec()
	return s.appOnly
}

// AppDoc describes the fault's app form in one line ("" if it has none).
func (k FaultKind) AppDoc() string {
	a, _ := k.appForm()
	return a.doc
}

// AppArgs returns the command-line arguments of the fault's app form,
// after "app [N|all]" ("<topic> [error|close]").
func (k FaultKind) AppArgs() string {
	a, _ := k.appForm()
	return a.args
}

// AppUsage returns the fault's app command line ("app [N|all] kick
// <topic> [error|close]").
func (k FaultKind) AppUsage() string {
	return strings.TrimSpace("app [N|all] " + k.String() + " " + k.AppArgs())
}

// AppFaultKinds lists the faults that can act on apps.
func AppFaultKinds() []FaultKind {
	var out []FaultKind
	for _, k := range FaultKinds() {
		if k.App() {
			out = append(out, k)
		}
	}
	return out
}

func appFaultNames() []string {
	ks := AppFaultKinds()
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.String()
	}
	return out
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
	if given(SettingApp) {
		a, ok := k.appForm()
		if !ok {
			return &FaultSettingError{Kind: k, Setting: SettingApp, msg: fmt.Sprintf("fault %s does not act on an app (app faults: %s)", s.name, strings.Join(appFaultNames(), ", "))}
		}
		s.takes = append(slices.Clip(a.takes), SettingApp)
		s.needs, s.needsAny = a.needs, nil
	} else if s.appOnly {
		return &FaultSettingError{Kind: k, Setting: SettingApp, Missing: true, msg: fmt.Sprintf("fault %s acts only on an app's sockets behind rtm's proxy (app)", s.name)}
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
	// Reason is a reject-joins reason ("": the server's default), or
	// an app close's reason.
	Reason string

	// App makes the fault act on the app's traffic through rtm's proxy
	// ([AppControl]) instead of on the manager's own connection; the
	// kinds with an app form (FaultKind.App) take it.
	App bool
	// Socket is the proxy's ID of the app socket (0: every one).
	Socket uint64
	// Topic is an app channel's topic ("realtime:room1"; "room1" is
	// read as that).
	Topic string
	// Code is an app close's close code (1000, or 4000-4999).
	Code int
	// Jitter is a random part added to an app latency (uniform in
	// [0, Jitter)).
	Jitter time.Duration
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
	if f.App {
		return f.appString()
	}
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
		case SettingJitter:
			return f.Jitter != 0
		case SettingApp:
			return f.App
		case SettingSocket:
			return f.Socket != 0
		case SettingTopic:
			return f.Topic != ""
		case SettingCode:
			return f.Code != 0
		}
		return false
	}
	if err := f.Kind.CheckSettings(given); err != nil {
		var se *FaultSettingError
		// Zero values are valid values (a latency of 0, a count of 0):
		// only a missing channel, topic, code or app is an error.
		if !errors.As(err, &se) || !se.Missing || se.Setting == SettingChannel || se.Setting == SettingTopic || se.Setting == SettingCode || se.Setting == SettingApp {
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
	case f.Jitter < 0:
		return fmt.Errorf("fault %s: jitter %v must not be negative", s.name, f.Jitter)
	case f.Kind == FaultClose && !validCloseCode(f.Code):
		return fmt.Errorf("fault close: code %d is not one an app may be sent (1000, 1001, 1008, 1011-1014 or 3000-4999)", f.Code)
	case f.Kind == FaultClose && len(f.Reason) > 123:
		return fmt.Errorf("fault close: the reason is %d bytes; a close frame holds 123", len(f.Reason))
	}
	return nil
}

// Summary describes the fault once applied, for a status line
// ("dropped the connection", "server rejects the next 3 joins").
func (f Fault) Summary() string {
	if f.App {
		return f.appSummary()
	}
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
