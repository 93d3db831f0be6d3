package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the manager. Errors returned by methods wrap one of
// these (or ErrInvalidName) where it applies; test with errors.Is.
var (
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("registry: manager closed")
	// ErrNotFound: no channel of that name in the registry.
	ErrNotFound = errors.New("registry: no such channel")
	// ErrCapReached: a channel cap refused a new channel (see CapError).
	ErrCapReached = errors.New("registry: channel cap reached")
	// ErrQueueFull: the offline queue of a channel is full; the broadcast
	// was not queued.
	ErrQueueFull = errors.New("registry: offline queue full")
	// ErrReleased: the handle was released.
	ErrReleased = errors.New("registry: handle released")
	// ErrUnsupported: the operation needs something the target does not
	// offer (server faults on a hosted project, expire-token without a
	// way to mint tokens).
	ErrUnsupported = errors.New("registry: not supported here")
	// ErrInvalidPayload: a payload is not what the operation needs (see
	// PayloadError).
	ErrInvalidPayload = errors.New("registry: invalid payload")
	// ErrChannelFailed: the channel is in StatusError (see ChannelError).
	ErrChannelFailed = errors.New("registry: channel failed")
)

// CapError is returned when a cap refuses a channel. It wraps
// ErrCapReached.
type CapError struct {
	// Scope is "connection" or "entity type".
	Scope string
	// EntityType is the capped entity type (Scope "entity type").
	EntityType string
	// Limit is the cap and Current the channels already held.
	Limit, Current int
}

// Error implements error.
func (e *CapError) Error() string {
	if e.Scope == "entity type" {
		return fmt.Sprintf("registry: channel cap reached: %d of %d channels of entity type %q already joined; leave one first", e.Current, e.Limit, e.EntityType)
	}
	return fmt.Sprintf("registry: channel cap reached: %d of %d channels already joined on this connection (the server refuses more with ChannelRateLimitReached); leave one first", e.Current, e.Limit)
}

// Unwrap returns ErrCapReached.
func (e *CapError) Unwrap() error { return ErrCapReached }

// PayloadError describes an unusable payload. It wraps ErrInvalidPayload.
type PayloadError struct {
	Reason  string
	Payload json.RawMessage
}

// Error implements error.
func (e *PayloadError) Error() string {
	p := string(e.Payload)
	if len(p) > 60 {
		p = p[:60] + "…"
	}
	return fmt.Sprintf("registry: %s (got %s)", e.Reason, p)
}

// Unwrap returns ErrInvalidPayload.
func (e *PayloadError) Unwrap() error { return ErrInvalidPayload }

// ChannelError is a channel's failure: a refused join, a join timeout, a
// server error or close. It wraps ErrChannelFailed and the client's error.
type ChannelError struct {
	Channel Name
	// Code is the server's code ("ChannelRateLimitReached") or the
	// client's status ("TIMED_OUT", "CHANNEL_ERROR", "CLOSED").
	Code string
	// Reason is the message.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error implements error.
func (e *ChannelError) Error() string {
	s := "channel " + e.Channel.String() + " failed"
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns ErrChannelFailed and the underlying error.
func (e *ChannelError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrChannelFailed, e.Err}
	}
	return []error{ErrChannelFailed}
}

// Hint returns advice for an error code or message, or "".
func Hint(code, message string) string {
	switch code {
	case "ChannelRateLimitReached":
		return "too many channels on this connection (the server allows 100): leave channels you no longer need"
	case "ClientJoinRateLimitReached":
		return "too many joins per second: spread joins out; the socket will reconnect"
	case "ConnectionRateLimitReached":
		return "too many connected users for this project"
	case "InvalidJWTToken", "MalformedJWT", "JwtSignatureError", "JwtSignerError":
		return "the channel token is expired or invalid: refresh it (set a new token), then retry"
	case "Unauthorized":
		return "private channel refused: check the RLS policies on realtime.messages for this role"
	case "PrivateOnly":
		return "this project allows only private channels: join with the private option"
	case "MissingPartition":
		return "today's realtime.messages partition is missing: rtm serve --db creates the daily partitions at start and every hour; restart it or create the partition"
	case "RealtimeRestarting", "InitializingProjectConnection":
		return "the server is restarting or warming up: retries will recover"
	case "TIMED_OUT":
		return "no reply to the join within the push timeout: check the connection (latency, freeze)"
	case "QueueFull":
		return "the offline queue is full: wait for the channel to rejoin"
	case "CapReached":
		return "leave a channel first, or raise the cap"
	}
	m := strings.ToLower(message)
	switch {
	case strings.Contains(m, "token has expired"):
		return "the token expired: set a new token, then retry"
	case strings.Contains(m, "too many messages per second"):
		return "the project's message rate limit was hit: send less often (debounce, rate-limit)"
	case strings.Contains(m, "presence rate limit"):
		return "too many track calls: at most 5 per 30 s per channel"
	}
	return ""
}
