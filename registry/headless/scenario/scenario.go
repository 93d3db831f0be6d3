package scenario

import (
	"encoding/json"
	"errors"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/headless"
	"rtm/registry/limits"
	"time"
)

// MaxSize bounds a scenario file.
const MaxSize = 1 << 20

// Scenario is a parsed scenario file.
type Scenario struct {
	// File names the file ("" when parsed from a string).
	File string
	// Name and Description describe it (Name defaults to the file name).
	Name, Description string
	// Timeout bounds the whole run (default 2 minutes).
	Timeout time.Duration
	// Policy is the clients' default retry policy (nil: the registry's
	// default, fixed 3 s, 5 attempts); PolicySpec its text.
	Policy     registry.Policy
	PolicySpec string
	// ReconnectAfter is the socket reconnect delay of every client (0:
	// the client's ladder 1, 2, 5, 10 s); Heartbeat the heartbeat period
	// (0: 25 s); PushTimeout the join and push timeout (0: 10 s).
	ReconnectAfter, Heartbeat, PushTimeout time.Duration
	// ContinueOnFailure runs the remaining steps after a failure.
	ContinueOnFailure bool
	// Proxy, when set, starts rtm's proxy (realtime/proxy) in front of
	// the target for the run: the app under test (exec steps) reaches
	// the target through it, app faults act on it and app expectations
	// look at its model of the app (registry/apps).
	Proxy *ProxySetting
	// Limits are the limits the limits expectations compare with, before
	// the target server's own (the plan: setting, limits.Plan); Overrides
	// go over both (the limits: setting, NAME: N).
	Limits, Overrides limits.Limits
	// Steps are the steps in order.
	Steps []Step
}

// The step kinds.
const (
	StepConnect      = "connect"
	StepJoin         = "join"
	StepLeave        = "leave"
	StepTrack        = "track"
	StepUntrack      = "untrack"
	StepBroadcast    = "broadcast"
	StepFault        = "fault"
	StepWait         = "wait"
	StepRefreshToken = "refresh_token"
	StepExpect       = "expect"
	StepExec         = "exec"
)

// The expectation kinds.
const (
	ExpectStatus   = "status"
	ExpectAttempts = "attempts"
	ExpectPresence = "presence"
	ExpectMessages = "messages"
	ExpectError    = "error"
	ExpectNoError  = "no_error"
	// ExpectExit: a background exec exited with a code.
	ExpectExit = "exit"
	// The app expectations, on the model of the app's traffic through
	// the scenario's proxy.
	ExpectAppStatus       = "app_status"
	ExpectAppAttempts     = "app_attempts"
	ExpectAppDelays       = "app_delays"
	ExpectAppPresence     = "app_presence"
	ExpectAppMessages     = "app_messages"
	ExpectAppNoDuplicates = "app_no_duplicates"
	// ExpectLimits: a limit's gauge (package registry/limits) is under
	// or over a percentage of the limit.
	ExpectLimits = "limits"
)

// StepKinds lists the steps.
func StepKinds() []string {
	return []string{StepConnect, StepJoin, StepLeave, StepTrack, StepUntrack, StepBroadcast, StepFault, StepWait, StepRefreshToken, StepExec, StepExpect}
}

// ExpectKinds lists the expectations.
func ExpectKinds() []string {
	return []string{ExpectStatus, ExpectAttempts, ExpectPresence, ExpectMessages, ExpectError, ExpectNoError, ExpectExit, ExpectLimits, ExpectSameMessages,
		ExpectAppStatus, ExpectAppAttempts, ExpectAppDelays, ExpectAppPresence, ExpectAppMessages, ExpectAppNoDuplicates}
}

// isApp reports whether an expectation looks at the app's model.
func isApp(expect string) bool {
	switch expect {
	case ExpectAppStatus, ExpectAppAttempts, ExpectAppDelays, ExpectAppPresence, ExpectAppMessages, ExpectAppNoDuplicates:
		return true
	}
	return false
}

// ProxySetting is the scenario's proxy setting.
type ProxySetting struct {
	// Line is the setting's line.
	Line int
	// Listen is the loopback address to listen on (default
	// 127.0.0.1:0, a free port).
	Listen string
}

// Exec is the command of an exec step.
type Exec struct {
	// Name names it in reports and expect exit (default exec-LINE).
	Name string
	// Args is the program and its arguments; a command written as one
	// text is run as sh -c TEXT.
	Args []string
	// Env is added to rtm's environment (after the SUPABASE_* names rtm
	// sets), as NAME=value, in the order written.
	Env []string
	// Dir is the working directory as written ("" : the scenario's
	// directory); relative paths are resolved against the scenario's
	// directory.
	Dir string
	// Timeout bounds the command (0: a foreground exec 1 minute, a
	// background one the rest of the run).
	Timeout time.Duration
	// Background starts it and goes on; the run stops it at its end.
	Background bool
}

// Step is one step. Kind says which fields apply (see the package
// documentation).
type Step struct {
	// Line is the step's line in the file; Text the step as written
	// (one line) for reports.
	Line int
	Text string
	// Kind is one of StepKinds; Expect one of ExpectKinds (Kind expect).
	Kind, Expect string
	// Fault is the fault of a fault step (its kind and settings).
	Fault registry.Fault
	// Client names the client the step acts on or looks at.
	Client string
	// Channel is the channel (join, leave, track, untrack, broadcast,
	// the faults kick and channel-error, expectations about a channel).
	Channel registry.Name
	// User and Role are the identity of connect; User also the user of
	// track and of presence expectations' Contains/Lacks.
	User, Role string
	// UserName and Payload complete a track; Payload is also a
	// broadcast's payload (a JSON object).
	UserName string
	Payload  json.RawMessage
	// Policy overrides the retry policy (connect).
	Policy registry.Policy
	// Join options.
	Track                *bool
	PresenceKey          string
	Private, Self, Ack   bool
	Event                string
	Count                int // broadcast count; presence or messages count (-1: unset)
	Interval             time.Duration
	For, Within, Timeout time.Duration
	// Reason is the reason an error expectation looks for.
	Reason string
	// Status is the status expected.
	Status registry.Status
	// AtMost, AtLeast and Exactly bound attempts or messages (-1:
	// unset).
	AtMost, AtLeast, Exactly int
	// Contains and Lacks name a user expected present or absent; Count
	// (>= 0) a number of users present.
	Contains, Lacks string
	// Payloads are the expected messages' payloads in order (each a
	// subset of the payload received); OrderBy a payload member whose
	// values must increase.
	Payloads [][]byte
	OrderBy  string
	// MessageKind filters messages (default broadcast).
	MessageKind registry.MessageKind
	// Since is "start" (default) or "last_step" for error expectations.
	Since string
	// ViaProxy connects the client through the scenario's proxy
	// (connect: proxy: true), as an app would.
	ViaProxy bool
	// Exec is the command of an exec step; ExecName the exec an exit
	// expectation waits for, Code the exit code it expects.
	Exec     *Exec
	ExecName string
	Code     int
	// Topic and Socket select an app channel (app faults and app
	// expectations; Socket 0: any socket, the latest holding the topic);
	// AppStatus is the status app_status expects.
	Topic     string
	Socket    uint64
	AppStatus apps.Status
	// Min and Max bound app_delays.
	Min, Max time.Duration
	// Limit is the gauge a limits expectation looks at; Under and Over
	// the percentages of its limit it must stay under or reach (-1:
	// unset).
	Limit       limits.Name
	Under, Over float64
	// Clients are the two clients same_messages compares; Except the
	// event prefixes it leaves out.
	Clients, Except []string
}

// Parse parses a scenario. Errors are *headless.LineError values naming
// the line and the reason (they wrap headless.ErrInvalid). It never
// panics.
func Parse(file string, data []byte) (*Scenario, error) {
	p := &parser{file: file}
	sc, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	return sc, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// IsInvalid reports whether err is about the scenario itself (exit 2).
func IsInvalid(err error) bool { return errors.Is(err, headless.ErrInvalid) }
