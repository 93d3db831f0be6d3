package scenario

import (
	"encoding/json"
	"errors"
	"rtm/registry"
	"rtm/registry/headless"
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
)

// The expectation kinds.
const (
	ExpectStatus   = "status"
	ExpectAttempts = "attempts"
	ExpectPresence = "presence"
	ExpectMessages = "messages"
	ExpectError    = "error"
	ExpectNoError  = "no_error"
)

// StepKinds lists the steps.
func StepKinds() []string {
	return []string{StepConnect, StepJoin, StepLeave, StepTrack, StepUntrack, StepBroadcast, StepFault, StepWait, StepRefreshToken, StepExpect}
}

// ExpectKinds lists the expectations.
func ExpectKinds() []string {
	return []string{ExpectStatus, ExpectAttempts, ExpectPresence, ExpectMessages, ExpectError, ExpectNoError}
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
