package tui

import (
	"context"
	"encoding/json"
	"io"

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
	Fault(ctx context.Context, f registry.Fault) error
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
	// Private joins a private channel, which the server authorises (rtm
	// serve --db and Supabase: by the RLS policies on realtime.messages).
	Private bool
}
