package apps

import (
	"time"
)

// Status is a channel's state as the wire shows it.
type Status string

// The channel statuses.
const (
	// StatusJoining: the app sent phx_join, no reply yet.
	StatusJoining Status = "joining"
	// StatusJoined: the server answered the join with ok.
	StatusJoined Status = "joined"
	// StatusErrored: the join was refused, or the server sent phx_error.
	StatusErrored Status = "errored"
	// StatusClosed: the server closed the channel (phx_close), or its
	// socket ended while it was held.
	StatusClosed Status = "closed"
	// StatusLeft: the app left (phx_leave).
	StatusLeft Status = "left"
)

// FlagKind names a finding about the app.
type FlagKind string

// The flags.
const (
	// FlagDuplicateTopic: one socket joined a topic it already held.
	FlagDuplicateTopic FlagKind = "duplicate_topic"
	// FlagNeverLeft: a channel was still held when the app closed its
	// socket (not when the upstream, the proxy or a fault ended it).
	FlagNeverLeft FlagKind = "never_left"
	// FlagChannelLimit: a socket held more channels than the limit.
	FlagChannelLimit FlagKind = "channel_limit"
	// FlagTokenExpired: a channel's token expired with no refresh seen.
	FlagTokenExpired FlagKind = "token_expired"
	// FlagIdentityChanged: a rejoin's token carries another role or
	// subject than the join before it.
	FlagIdentityChanged FlagKind = "identity_changed"
)

// Flag is one finding.
type Flag struct {
	Kind   FlagKind  `json:"kind"`
	Time   time.Time `json:"time"`
	Socket uint64    `json:"socket"`
	Topic  string    `json:"topic,omitempty"`
	Text   string    `json:"text"`
}

// TokenInfo is what is known of a token, read without verifying it; the
// token itself only appears masked.
type TokenInfo struct {
	Masked  string    `json:"masked,omitempty"`
	Role    string    `json:"role,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Expiry  time.Time `json:"expiry,omitzero"`
}

// Socket is one app websocket in a [Snapshot].
type Socket struct {
	ID         uint64    `json:"id"`
	RemoteAddr string    `json:"remote_addr"`
	ClientInfo string    `json:"client_info,omitempty"`
	Vsn        string    `json:"vsn"`
	Upstream   string    `json:"upstream,omitempty"`
	Token      TokenInfo `json:"token"`
	Opened     time.Time `json:"opened"`
	// Closed is zero while the socket is open.
	Closed      time.Time `json:"closed,omitzero"`
	ClosedBy    string    `json:"closed_by,omitempty"`
	CloseCode   int       `json:"close_code,omitempty"`
	CloseReason string    `json:"close_reason,omitempty"`

	// Connection is the ID of the first socket of the app connection
	// this one belongs to; Attempt numbers it from 1; Previous is the
	// socket it replaced and ReconnectDelay the time from that one's
	// close to this one's open (zero for attempt 1). A socket opened
	// while the proxy held another frozen (the app gave up on it, its
	// close not relayed yet) replaces that one, ReconnectDelay counted
	// from the freeze's start.
	Connection     uint64        `json:"connection"`
	Attempt        int           `json:"attempt"`
	Previous       uint64        `json:"previous,omitempty"`
	ReconnectDelay time.Duration `json:"reconnect_delay_ns,omitempty"`

	// HeartbeatRTT is the last heartbeat's round trip, push to reply.
	HeartbeatRTT time.Duration `json:"heartbeat_rtt_ns,omitempty"`
	Heartbeats   uint64        `json:"heartbeats"`

	FramesFromApp uint64 `json:"frames_from_app"`
	BytesFromApp  uint64 `json:"bytes_from_app"`
	FramesToApp   uint64 `json:"frames_to_app"`
	BytesToApp    uint64 `json:"bytes_to_app"`
	// Undecodable counts the frames the protocol could not decode.
	Undecodable uint64 `json:"undecodable"`

	Channels []Channel `json:"channels"`
	// ChannelFramesDropped counts the frames of the topics not kept
	// (over MaxChannels).
	ChannelFramesDropped uint64 `json:"channel_frames_dropped,omitempty"`
}

// Binding is one postgres_changes binding of a join, with the ID the
// server answered (0 until it did).
type Binding struct {
	Event  string `json:"event"`
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	Filter string `json:"filter,omitempty"`
	ID     int64  `json:"id,omitempty"`
}

// JoinConfig is the config of a channel's last join.
type JoinConfig struct {
	BroadcastSelf   bool      `json:"broadcast_self"`
	BroadcastAck    bool      `json:"broadcast_ack"`
	PresenceKey     string    `json:"presence_key,omitempty"`
	PresenceEnabled bool      `json:"presence_enabled"`
	PostgresChanges []Binding `json:"postgres_changes,omitempty"`
}

// Attempt is one phx_join of a channel.
type Attempt struct {
	Time time.Time `json:"time"`
	Ref  string    `json:"ref"`
	// Delay is the time the app waited since the previous attempt
	// failed (its refusal, the phx_error or phx_close; for a join left
	// unanswered, the app's phx_leave that gave up on it, else that
	// join); zero for the first attempt.
	Delay time.Duration `json:"delay_ns,omitempty"`
	// Outcome is "" while unanswered, then "ok" or "error".
	Outcome string    `json:"outcome,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Replied time.Time `json:"replied,omitzero"`
	// Role and Subject are the claims of the token the join carried.
	Role    string `json:"role,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// Meta is one presence meta: its phx_ref and the meta object, masked
// and clipped to Options.MaxMetaBytes.
type Meta struct {
	Ref  string `json:"ref,omitempty"`
	JSON string `json:"json"`
}

// Member is one presence key as the app received it.
type Member struct {
	Key   string `json:"key"`
	Metas []Meta `json:"metas"`
}

// Message is one frame of a channel other than its joins, replies,
// leaves and token pushes.
type Message struct {
	Time time.Time `json:"time"`
	// Dir is "app->upstream" or "upstream->app".
	Dir   string `json:"dir"`
	Event string `json:"event"`
	// UserEvent is a broadcast's event name.
	UserEvent string `json:"user_event,omitempty"`
	Bytes     int    `json:"bytes"`
	// Payload is the payload (for a broadcast, the user's payload),
	// masked and clipped to Options.MaxPayloadBytes (Clipped is then
	// set). A binary payload (Binary: a binary user broadcast's raw
	// payload, or a Phoenix binary frame's, phoenix.js's push of an
	// ArrayBuffer and the server's broadcast of it) is its masked bytes
	// in hex, "00 01 fe".
	Payload string `json:"payload"`
	Binary  bool   `json:"binary,omitempty"`
	Clipped bool   `json:"clipped,omitempty"`
	// Via is "rest" for a message the app sent by the REST broadcast
	// API (its socket did not carry it), with the upstream's HTTPStatus.
	Via        string `json:"via,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
}

// TokenPush is one access_token push of the app on a channel.
type TokenPush struct {
	Time  time.Time `json:"time"`
	Token TokenInfo `json:"token"`
}

// Channel is one topic of a socket in a [Snapshot].
type Channel struct {
	Topic   string     `json:"topic"`
	Private bool       `json:"private"`
	Config  JoinConfig `json:"config"`
	Status  Status     `json:"status"`
	// Reason is the server's, for errored and closed.
	Reason   string    `json:"reason,omitempty"`
	Attempts []Attempt `json:"attempts"`
	// AttemptsDropped counts the oldest attempts not kept.
	AttemptsDropped uint64    `json:"attempts_dropped,omitempty"`
	Token           TokenInfo `json:"token"`

	Presence        []Member `json:"presence"`
	PresenceJoins   uint64   `json:"presence_joins"`
	PresenceLeaves  uint64   `json:"presence_leaves"`
	PresenceDropped uint64   `json:"presence_dropped,omitempty"`

	Messages        []Message `json:"messages"`
	MessagesFromApp uint64    `json:"messages_from_app"`
	MessagesToApp   uint64    `json:"messages_to_app"`
	BytesFromApp    uint64    `json:"bytes_from_app"`
	BytesToApp      uint64    `json:"bytes_to_app"`
	MessagesDropped uint64    `json:"messages_dropped,omitempty"`

	TokenPushes        []TokenPush `json:"token_pushes,omitempty"`
	TokenPushesDropped uint64      `json:"token_pushes_dropped,omitempty"`
}

// Stats counts what the model saw and what its bounds dropped.
type Stats struct {
	Frames      uint64 `json:"frames"`
	Undecodable uint64 `json:"undecodable"`
	// UnknownSocket counts frames and closes of a socket never opened
	// (or not kept).
	UnknownSocket uint64 `json:"unknown_socket"`
	// SocketsDropped counts the sockets not kept: closed ones evicted
	// beyond MaxClosedSockets, open ones refused beyond MaxOpenSockets.
	SocketsDropped uint64 `json:"sockets_dropped"`
	FlagsDropped   uint64 `json:"flags_dropped"`
	// Bytes is what the messages and presence kept weigh (against
	// Options.MaxBytes).
	Bytes int `json:"bytes"`
	// EventsDropped counts the events subscribers could not take.
	EventsDropped uint64 `json:"events_dropped"`
	// RESTRequests and RESTMessages count the REST broadcasts and their
	// messages; RESTDropped the requests evicted beyond MaxRESTRequests.
	RESTRequests uint64 `json:"rest_requests"`
	RESTMessages uint64 `json:"rest_messages"`
	RESTDropped  uint64 `json:"rest_dropped,omitempty"`
}

// Snapshot is a deep copy of the model: sockets in the order they
// opened (open and kept closed ones), the flags in the order raised,
// the last REST broadcast requests in the order answered.
type Snapshot struct {
	Sockets []Socket      `json:"sockets"`
	Flags   []Flag        `json:"flags"`
	REST    []RESTRequest `json:"rest,omitempty"`
	Stats   Stats         `json:"stats"`
}
