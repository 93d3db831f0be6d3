package registry

import (
	"context"
	"fmt"
	"time"
)

// KickMode is how a server-side kick ends a channel.
type KickMode uint8

// The kick modes.
const (
	// KickError sends phx_error: the client sees CHANNEL_ERROR and the
	// manager rejoins under its policy.
	KickError KickMode = iota + 1
	// KickClose sends phx_close: the client sees CLOSED (a server close,
	// also retried by the manager under its policy).
	KickClose
)

// String returns "error" or "close".
func (k KickMode) String() string {
	switch k {
	case KickError:
		return "error"
	case KickClose:
		return "close"
	}
	return fmt.Sprintf("KickMode(%d)", uint8(k))
}

// ParseKickMode parses "error" (or "") and "close".
func ParseKickMode(s string) (KickMode, error) {
	switch s {
	case "error", "":
		return KickError, nil
	case "close":
		return KickClose, nil
	}
	return 0, fmt.Errorf("registry: kick mode %q (want error or close)", s)
}

// Rejection tells a server to refuse joins: the next Count joins, or all
// joins for For (both may be set), with Reason ("" for the server's
// default "RealtimeRestarting: ..."). The zero Rejection stops refusing.
type Rejection struct {
	Count  int
	For    time.Duration
	Reason string
}

// ServerControl is the server-side fault API of a target that has one:
// rtm's embedded server (Go API) or `rtm serve` (its /admin/ HTTP API
// with the service_role key). Package registry/serverctl implements the
// admin API; the rtm command implements the Go API (embedded.go), so
// that no package under registry imports the server.
type ServerControl interface {
	// Target describes the server, e.g. "embedded server" or
	// "rtm serve at http://127.0.0.1:4000".
	Target() string
	// Kick ends every channel on topic with phx_error or phx_close and
	// returns how many it ended.
	Kick(ctx context.Context, topic string, mode KickMode) (int, error)
	// RejectJoins makes the server refuse joins as r says.
	RejectJoins(ctx context.Context, r Rejection) error
	// DropAll closes every socket abruptly and returns how many.
	DropAll(ctx context.Context) (int, error)
	// Restart drops everything and takes the listener down for downtime.
	Restart(ctx context.Context, downtime time.Duration) error
}
