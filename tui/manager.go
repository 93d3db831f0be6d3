package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"rtm/registry"
)

// Manager is what the UI needs from the channel manager: the actions of
// the keys and commands. Every method takes a context and may block; the
// UI calls them only from tea.Cmds, never from Update. [NewRegistryManager]
// adapts a *registry.Manager; tests use fakes.
type Manager interface {
	// Join creates or reuses the channel of req.Name (the registry shares
	// an existing channel) and, for presence channels with req.As set,
	// tracks that user.
	Join(ctx context.Context, req JoinRequest) error
	// Leave releases every reference to the channel; the last one leaves.
	Leave(ctx context.Context, name registry.Name) error
	// Track tracks user's presence on a presence channel.
	Track(ctx context.Context, name registry.Name, user registry.PresenceUser) error
	// Untrack stops tracking this client's presence on the channel.
	Untrack(ctx context.Context, name registry.Name) error
	// Broadcast sends event with a JSON object payload on the channel.
	Broadcast(ctx context.Context, name registry.Name, event string, payload json.RawMessage) error
	// RetryNow starts a fresh series of rejoin attempts at once.
	RetryNow(ctx context.Context, name registry.Name) error
	// SetPolicy installs the retry policy parsed from spec ("fixed:3s",
	// "exp", "breaker", ...).
	SetPolicy(ctx context.Context, spec string) error
	// Cleanup leaves every channel (logout).
	Cleanup(ctx context.Context) error
	// Fault injects a simulated failure.
	Fault(ctx context.Context, f Fault) error
	// Export writes the log and events as NDJSON to w.
	Export(ctx context.Context, w io.Writer) error
}

// Source is what the bridge reads: the manager's event stream and its
// snapshots.
type Source interface {
	// Events is the subscription's event channel; it is closed when the
	// subscription ends.
	Events() <-chan registry.Event
	// Dropped is the number of stream events dropped because the
	// subscriber fell behind.
	Dropped() uint64
}

// JoinRequest asks to join a channel.
type JoinRequest struct {
	// Name is the channel (its tenant included).
	Name registry.Name
	// As, for presence channels, is the user id to track once joined
	// ("" joins without tracking); UserName and Payload complete the
	// presence.
	As       string
	UserName string
	Payload  json.RawMessage
}

// FaultKind is a simulated failure.
type FaultKind uint8

// The faults. Client faults work against any server; server faults need
// the embedded server or `rtm serve` (State.Target.ServerFaults).
const (
	// FaultDrop closes the connection abruptly (client side).
	FaultDrop FaultKind = iota + 1
	// FaultFreeze holds the connection half-open for Duration:
	// heartbeats go unanswered.
	FaultFreeze
	// FaultLatency adds Duration of latency each way (0 removes it).
	FaultLatency
	// FaultFailConnects makes the next Count connection attempts fail.
	FaultFailConnects
	// FaultExpireToken expires the user token now.
	FaultExpireToken
	// FaultChannelError injects a channel error on Channel.
	FaultChannelError
	// FaultKick makes the server end Channel (phx_error or phx_close by
	// Mode). Server side.
	FaultKick
	// FaultRejectJoins makes the server refuse the next Count joins, or
	// all joins for Duration. Server side.
	FaultRejectJoins
	// FaultDropAll makes the server drop every socket. Server side.
	FaultDropAll
)

// String returns the fault's command name.
func (k FaultKind) String() string {
	switch k {
	case FaultDrop:
		return "drop"
	case FaultFreeze:
		return "freeze"
	case FaultLatency:
		return "latency"
	case FaultFailConnects:
		return "fail-connects"
	case FaultExpireToken:
		return "expire-token"
	case FaultChannelError:
		return "channel-error"
	case FaultKick:
		return "kick"
	case FaultRejectJoins:
		return "reject-joins"
	case FaultDropAll:
		return "drop-all"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// Server reports whether the fault needs server-side controls.
func (k FaultKind) Server() bool {
	return k == FaultKick || k == FaultRejectJoins || k == FaultDropAll
}

// Fault is one simulated failure and its parameters.
type Fault struct {
	Kind FaultKind
	// Channel is the channel of FaultChannelError and FaultKick.
	Channel registry.Name
	// Duration is the length of a freeze, the added latency, or how long
	// joins are rejected.
	Duration time.Duration
	// Count is the number of connects to fail or joins to reject.
	Count int
	// Mode is how FaultKick ends the channel.
	Mode registry.KickMode
}

// String describes the fault for the status line and the log.
func (f Fault) String() string {
	s := f.Kind.String()
	if !f.Channel.IsZero() {
		s += " " + f.Channel.String()
	}
	if f.Duration > 0 {
		s += " " + f.Duration.String()
	}
	if f.Count > 0 {
		s += fmt.Sprintf(" %d", f.Count)
	}
	return s
}
