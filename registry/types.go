package registry

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Status is the state of a channel in the registry.
type Status uint8

// The channel statuses. The zero Status is invalid.
const (
	// StatusConnecting: a join is on the wire or waits for the socket.
	StatusConnecting Status = iota + 1
	// StatusConnected: the server accepted the join (SUBSCRIBED).
	StatusConnected
	// StatusDisconnected: the channel is down (socket down, channel error,
	// server close) and a rejoin is scheduled or waits for the socket.
	StatusDisconnected
	// StatusError: the retry policy gave up (or the failure cannot be
	// retried); the channel stays here until RetryNow or Leave.
	StatusError
)

// Statuses returns the valid statuses in display order.
func Statuses() []Status {
	return []Status{StatusConnecting, StatusConnected, StatusDisconnected, StatusError}
}

// String returns "connecting", "connected", "disconnected" or "error".
func (s Status) String() string {
	switch s {
	case StatusConnecting:
		return "connecting"
	case StatusConnected:
		return "connected"
	case StatusDisconnected:
		return "disconnected"
	case StatusError:
		return "error"
	default:
		return fmt.Sprintf("Status(%d)", uint8(s))
	}
}

// ParseStatus parses the String form of a status.
func ParseStatus(s string) (Status, error) {
	for _, v := range Statuses() {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("registry: unknown status %q", s)
}

// MarshalText implements encoding.TextMarshaler; the zero Status is "".
func (s Status) MarshalText() ([]byte, error) {
	if s == 0 {
		return []byte{}, nil
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; "" is the zero
// Status.
func (s *Status) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = 0
		return nil
	}
	v, err := ParseStatus(string(b))
	if err == nil {
		*s = v
	}
	return err
}

// SocketStatus is the state of the manager's WebSocket connection.
type SocketStatus uint8

// The socket statuses. The zero SocketStatus is invalid.
const (
	// SocketIdle: Connect has not been called yet.
	SocketIdle SocketStatus = iota + 1
	// SocketConnecting: a connection attempt is under way.
	SocketConnecting
	// SocketConnected: the socket is open.
	SocketConnected
	// SocketDisconnected: the socket is down; the client's reconnect
	// ladder will try again (see SocketInfo.NextAttemptAt).
	SocketDisconnected
	// SocketClosed: the manager was closed; no more attempts.
	SocketClosed
)

// String returns "idle", "connecting", "connected", "disconnected" or
// "closed".
func (s SocketStatus) String() string {
	switch s {
	case SocketIdle:
		return "idle"
	case SocketConnecting:
		return "connecting"
	case SocketConnected:
		return "connected"
	case SocketDisconnected:
		return "disconnected"
	case SocketClosed:
		return "closed"
	default:
		return fmt.Sprintf("SocketStatus(%d)", uint8(s))
	}
}

// MarshalText implements encoding.TextMarshaler; the zero value is "".
func (s SocketStatus) MarshalText() ([]byte, error) {
	if s == 0 {
		return []byte{}, nil
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; "" is the zero
// value.
func (s *SocketStatus) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = 0
		return nil
	}
	for v := SocketIdle; v <= SocketClosed; v++ {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("registry: unknown socket status %q", b)
}

// Direction is the direction of a message or frame.
type Direction uint8

// The directions.
const (
	// In is server to client.
	In Direction = iota + 1
	// Out is client to server.
	Out
)

// String returns "in" or "out".
func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	default:
		return fmt.Sprintf("Direction(%d)", uint8(d))
	}
}

// MarshalText implements encoding.TextMarshaler; the zero Direction is
// "".
func (d Direction) MarshalText() ([]byte, error) {
	if d == 0 {
		return []byte{}, nil
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; "" is the zero
// Direction.
func (d *Direction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "":
		*d = 0
	case "in":
		*d = In
	case "out":
		*d = Out
	default:
		return fmt.Errorf("registry: unknown direction %q", b)
	}
	return nil
}

// Binding is one listener configuration of a channel, as configured at
// join time and restored on every rejoin and recreation.
type Binding struct {
	// Type is "broadcast", "presence", "postgres_changes" or "system".
	Type string `json:"type"`
	// Event is the broadcast event ("*" for all) or the change event
	// ("INSERT", "UPDATE", "DELETE", "*").
	Event string `json:"event,omitempty"`
	// Schema, Table and Filter select postgres changes.
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	Filter string `json:"filter,omitempty"`
	// ID is the server's id of a postgres_changes binding, from the last
	// join reply (0 before).
	ID int64 `json:"id,omitempty"`
	// Listeners counts the callbacks registered for this binding.
	Listeners int `json:"listeners"`
}

// ChannelConfig is the join configuration of a channel.
type ChannelConfig struct {
	// Ack asks the server to acknowledge broadcasts.
	Ack bool `json:"ack"`
	// Self asks the server to echo this client's broadcasts back.
	Self bool `json:"self"`
	// PresenceKey is the presence key ("" lets the server choose).
	PresenceKey string `json:"presence_key,omitempty"`
	// Presence asks for presence_state and presence_diff.
	Presence bool `json:"presence"`
	// Private joins a private channel (RLS-checked).
	Private bool `json:"private"`
}

// ChannelInfo describes one channel of the registry. It is a copy: safe
// to keep and to read from any goroutine.
type ChannelInfo struct {
	// Name is the channel's name; Name.Kind is its type.
	Name Name `json:"name"`
	// Topic is the wire topic, "realtime:" + name.
	Topic string `json:"topic"`
	// Status is the channel's state and Reason why it is in it
	// ("joined", "CHANNEL_ERROR: heartbeat timeout", ...).
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// CreatedAt is when the registry created the channel; JoinedAt when
	// its last join succeeded (zero before); Joins counts successful
	// joins (1 + rejoins).
	CreatedAt time.Time `json:"created_at"`
	JoinedAt  time.Time `json:"joined_at,omitzero"`
	Joins     int       `json:"joins"`
	// JoinRef is the join ref of the current (or last) join.
	JoinRef string `json:"join_ref,omitempty"`
	// Config is the join configuration; Bindings the listener
	// configurations.
	Config   ChannelConfig `json:"config"`
	Bindings []Binding     `json:"bindings"`
	// Ready is true once the server said "Subscribed to PostgreSQL" since
	// the last join (subscription channels only).
	Ready bool `json:"ready,omitempty"`
	// RefCount is the number of handles that hold the channel; KeepAlive
	// keeps it joined when that drops to zero.
	RefCount  int  `json:"ref_count"`
	KeepAlive bool `json:"keep_alive"`
	// Attempts is the number of rejoin attempts spent in the current
	// series, MaxAttempts the policy's limit (0: unlimited), NextAttemptAt
	// when the next one is due (zero when none is scheduled), Policy the
	// policy in force, RetryReason what started the series.
	Attempts      int       `json:"attempts"`
	MaxAttempts   int       `json:"max_attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	Policy        string    `json:"policy"`
	RetryReason   string    `json:"retry_reason,omitempty"`
	// LastError is the last error's message, LastErrorCode its code (the
	// server's "Code" of "Code: message", or a client status such as
	// "TIMED_OUT"), LastErrorAt when it happened.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorCode string    `json:"last_error_code,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	// MessagesIn and MessagesOut count messages (broadcasts, changes,
	// presence and system messages) received and sent; LastMessageAt is
	// the time of the last one.
	MessagesIn    uint64    `json:"messages_in"`
	MessagesOut   uint64    `json:"messages_out"`
	LastMessageAt time.Time `json:"last_message_at,omitzero"`
	// TokenExpiry is the expiry of the token the channel joined with
	// (zero: none or no exp).
	TokenExpiry time.Time `json:"token_expiry,omitzero"`
	// PresenceCount is the number of users in the presence cache;
	// Tracked is true while this client tracks a presence, TrackedAs its
	// user id.
	PresenceCount int    `json:"presence_count"`
	Tracked       bool   `json:"tracked"`
	TrackedAs     string `json:"tracked_as,omitempty"`
	// PresenceTruncated, when set, says the presence cache is incomplete:
	// the client's presence state reached its limits (Options.
	// PresenceLimits) and did not keep what it counts here.
	PresenceTruncated *PresenceTruncation `json:"presence_truncated,omitempty"`
	// Queued is the number of broadcasts waiting in the offline queue,
	// QueueDropped the number refused because it was full.
	Queued       int    `json:"queued"`
	QueueDropped uint64 `json:"queue_dropped"`
	// ClientDropped counts events the client dropped because the
	// manager fell behind (its per-channel buffer holds 65,536 events
	// and 64 MiB).
	ClientDropped uint64 `json:"client_dropped"`
}

// PresenceTruncation counts what a channel's presence state did not keep
// because it reached its limits (realtime.PresenceLimits: by default
// 100,000 users, 1024 metas per user, 64 MiB), since the last
// presence_state that fit entirely (which clears it). While it is set,
// users may be missing (Members of them, the joins of new users refused)
// and users may lack metas (Metas counts the metas not kept, those of
// the missing users included); Diffs counts the diffs received before
// the presence_state that were dropped.
type PresenceTruncation struct {
	Members uint64 `json:"members"`
	Metas   uint64 `json:"metas"`
	Diffs   uint64 `json:"diffs,omitempty"`
}

// PresenceUser is one present user of a presence channel, derived from
// the metas of one presence key.
type PresenceUser struct {
	// UserID is the presence key.
	UserID string `json:"user_id"`
	// Name is the "name" member of the latest meta, if any.
	Name string `json:"name,omitempty"`
	// Payload is the latest meta as the tracking client sent it (without
	// phx_ref fields): a JSON object.
	Payload json.RawMessage `json:"payload,omitempty"`
	// OnlineSince is the "online_at" member of the first meta when it is
	// an RFC 3339 time, else when this client first saw the key.
	OnlineSince time.Time `json:"online_since,omitzero"`
	// Metas is the number of metas (connections) of the key.
	Metas int `json:"metas"`
	// Self is true when this client tracked the presence.
	Self bool `json:"self,omitempty"`
}

// TargetInfo describes the server the manager talks to.
type TargetInfo struct {
	// URL is the WebSocket URL with the API key masked.
	URL string `json:"url"`
	// Embedded is true for rtm's embedded server.
	Embedded bool `json:"embedded"`
	// ServerFaults is true when server-side fault controls are available
	// (embedded server or rtm serve with its service_role key).
	ServerFaults bool `json:"server_faults"`
	// Serializer is "1.0.0" or "2.0.0".
	Serializer string `json:"serializer"`
	// Tenant is the default tenant of names ("" for none).
	Tenant string `json:"tenant,omitempty"`
}

// SocketInfo describes the WebSocket connection.
type SocketInfo struct {
	Status SocketStatus `json:"status"`
	// Reason says why the socket is in Status ("dial: connection
	// refused", "heartbeat timeout").
	Reason string `json:"reason,omitempty"`
	// ConnectedAt is when the current connection opened (zero while
	// down).
	ConnectedAt time.Time `json:"connected_at,omitzero"`
	// RTT is the last heartbeat round trip; RTTHistory the last ones,
	// oldest first (bounded).
	RTT        time.Duration   `json:"-"`
	RTTHistory []time.Duration `json:"-"`
	// Reconnects counts the connections opened after the first.
	Reconnects int `json:"reconnects"`
	// Attempt is the number of the current reconnect attempt (0 when
	// connected) and NextAttemptAt when it is due.
	Attempt       int       `json:"attempt"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// LastError is the last connection error.
	LastError string `json:"last_error,omitempty"`
}

// TokenInfo describes the user token in use (never the token itself).
type TokenInfo struct {
	// Present is false when only the API key is used.
	Present bool `json:"present"`
	// Masked is the token masked for display.
	Masked string `json:"masked,omitempty"`
	// Subject and Role are the "sub" and "role" claims.
	Subject string `json:"subject,omitempty"`
	Role    string `json:"role,omitempty"`
	// Expiry is the "exp" claim (zero when absent or unreadable).
	Expiry time.Time `json:"expiry,omitzero"`
}

// Stats counts the channels of the registry.
type Stats struct {
	// Total is the number of channels; Limit the per-connection cap.
	Total int `json:"total"`
	Limit int `json:"limit"`
	// ByKind and ByStatus split Total.
	ByKind   map[Kind]int   `json:"by_kind"`
	ByStatus map[Status]int `json:"by_status"`
	// ByEntityType counts channels per entity type (for the caps).
	ByEntityType map[string]int `json:"by_entity_type"`
}

// Metrics are the manager's running measurements.
type Metrics struct {
	// StartedAt is when the manager was created.
	StartedAt time.Time `json:"started_at"`
	// ConnectedFor is the age of the current connection (0 while down);
	// ConnectedTotal the time connected since StartedAt.
	ConnectedFor   time.Duration `json:"-"`
	ConnectedTotal time.Duration `json:"-"`
	// Reconnects counts connections opened after the first.
	Reconnects int `json:"reconnects"`
	// SocketAttempts and ChannelAttempts count connection attempts and
	// channel rejoin attempts made under the policy.
	SocketAttempts  uint64 `json:"socket_attempts"`
	ChannelAttempts uint64 `json:"channel_attempts"`
	// Errors counts channel and socket errors; ErrorRate is errors per
	// minute over the last minute.
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// MessagesIn and MessagesOut count messages over all channels; InRate
	// and OutRate are messages per second over the last second, and
	// InHistory and OutHistory the per-second rates, oldest first
	// (bounded, for sparklines).
	MessagesIn  uint64    `json:"messages_in"`
	MessagesOut uint64    `json:"messages_out"`
	InRate      float64   `json:"in_rate"`
	OutRate     float64   `json:"out_rate"`
	InHistory   []float64 `json:"in_history"`
	OutHistory  []float64 `json:"out_history"`
	// QueueDropped counts broadcasts refused by full offline queues;
	// EventsDropped events dropped for slow subscribers (all of them).
	QueueDropped  uint64 `json:"queue_dropped"`
	EventsDropped uint64 `json:"events_dropped"`
	// ClientDropped counts channel events the client dropped because the
	// manager fell behind (all channels).
	ClientDropped uint64 `json:"client_dropped"`
}

// PolicyInfo describes a retry policy for display.
type PolicyInfo struct {
	// Name is "fixed", "exponential", "breaker" or a custom name.
	Name string `json:"name"`
	// Spec is the policy as ParsePolicy reads it ("fixed:3s,max=5").
	Spec string `json:"spec"`
	// Description is a human sentence.
	Description string `json:"description"`
	// MaxAttempts is the attempts per series (0: unlimited).
	MaxAttempts int `json:"max_attempts"`
	// Breaker is the circuit breaker's state, for breaker policies.
	Breaker *BreakerInfo `json:"breaker,omitempty"`
}

// BreakerInfo is the state of a circuit breaker.
type BreakerInfo struct {
	// State is "closed", "open" or "half-open".
	State string `json:"state"`
	// Failures counts failures within the window.
	Failures int `json:"failures"`
	// OpenUntil is when an open breaker lets a probe through.
	OpenUntil time.Time `json:"open_until,omitzero"`
}

// Caps are the channel limits the manager enforces before the server
// would.
type Caps struct {
	// MaxChannels is the per-connection limit.
	MaxChannels int `json:"max_channels"`
	// PerEntityType limits channels per entity type.
	PerEntityType map[string]int `json:"per_entity_type,omitempty"`
}

// FaultState reports the client-side faults in force and whether
// server-side faults can be used.
type FaultState struct {
	// Client is true when the fault-injecting transport is installed.
	Client bool `json:"client"`
	// Server is true when server-side controls are available.
	Server bool `json:"server"`
	// FrozenUntil is the end of a freeze in force.
	FrozenUntil time.Time `json:"frozen_until,omitzero"`
	// Latency is the added latency per direction.
	Latency time.Duration `json:"-"`
	// FailConnects is the number of connection attempts still to fail.
	FailConnects int `json:"fail_connects"`
	// Drops counts the connections dropped on request.
	Drops int `json:"drops"`
}

// State is a consistent copy of everything the manager knows, taken at
// Time. It shares nothing with the manager.
type State struct {
	Time     time.Time               `json:"time"`
	Target   TargetInfo              `json:"target"`
	Socket   SocketInfo              `json:"socket"`
	Token    TokenInfo               `json:"token"`
	Channels []ChannelInfo           `json:"channels"`
	Presence map[Name][]PresenceUser `json:"presence"`
	Stats    Stats                   `json:"stats"`
	Metrics  Metrics                 `json:"metrics"`
	Policy   PolicyInfo              `json:"policy"`
	Caps     Caps                    `json:"caps"`
	Faults   FaultState              `json:"faults"`
}

// Channel returns the info of the named channel and true, or false.
func (s *State) Channel(n Name) (ChannelInfo, bool) {
	for _, c := range s.Channels {
		if c.Name == n {
			return c, true
		}
	}
	return ChannelInfo{}, false
}

// LogAttr is one attribute of a log record, its value rendered as text.
type LogAttr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// LogRecord is one entry of the manager's log, with secrets masked.
type LogRecord struct {
	// Seq numbers records from 1 in the order they were logged.
	Seq     uint64     `json:"seq"`
	Time    time.Time  `json:"time"`
	Level   slog.Level `json:"level"`
	Message string     `json:"msg"`
	// Channel is the "channel" attribute, if any (also in Attrs).
	Channel string `json:"channel,omitempty"`
	// Attrs are the record's attributes in order, groups flattened with
	// dots ("err", "attempt", "user_id", ...).
	Attrs []LogAttr `json:"attrs,omitempty"`
}

// Attr returns the value of the attribute key and true, or false.
func (r LogRecord) Attr(key string) (string, bool) {
	for _, a := range r.Attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}
