package realtime

import (
	"encoding/json"
	"fmt"
	"time"

	"rtm/realtime/protocol"
)

// Status is the state of a [Socket]'s connection.
type Status int32

// The socket statuses.
const (
	// StatusConnecting: a connection attempt is under way.
	StatusConnecting Status = iota
	// StatusOpen: connected; channels can join and push.
	StatusOpen
	// StatusReconnecting: the last attempt failed or the connection was
	// lost; the next attempt is scheduled (see [StatusChange].Delay).
	StatusReconnecting
	// StatusClosed: closed by [Socket.Close]; final.
	StatusClosed
)

func (s Status) String() string {
	switch s {
	case StatusConnecting:
		return "connecting"
	case StatusOpen:
		return "open"
	case StatusReconnecting:
		return "reconnecting"
	case StatusClosed:
		return "closed"
	default:
		return fmt.Sprintf("Status(%d)", int32(s))
	}
}

// StatusChange is a transition of the socket status, reported to
// [Options].OnStatus.
type StatusChange struct {
	Status Status
	Prev   Status
	At     time.Time
	// Err is why: the dial or handshake error, why the connection ended
	// (wrapping ErrDisconnected, ErrHeartbeatTimeout, ErrClosed), nil for
	// an open.
	Err error
	// Attempt numbers reconnects: n is the n-th reconnect attempt since
	// the last open (the tries of [Options].ReconnectAfter), the one
	// scheduled (StatusReconnecting) or under way (StatusConnecting); 0
	// is the first connection. The client's log ("Socket reconnecting",
	// "Socket connecting") and the registry's (RetryEvents, "Scheduling
	// reconnect") use this number.
	Attempt int
	// Delay is the wait before the next attempt (StatusReconnecting).
	Delay time.Duration
}

// HeartbeatStatus is the outcome of a heartbeat, as realtime-js names it.
type HeartbeatStatus uint8

// The heartbeat statuses.
const (
	// HeartbeatSent: a heartbeat was written.
	HeartbeatSent HeartbeatStatus = iota + 1
	// HeartbeatOK: its reply said ok.
	HeartbeatOK
	// HeartbeatError: its reply had another status (no disconnect).
	HeartbeatError
	// HeartbeatTimeout: no reply within one interval; the connection is
	// closed and re-established.
	HeartbeatTimeout
)

func (h HeartbeatStatus) String() string {
	switch h {
	case HeartbeatSent:
		return "sent"
	case HeartbeatOK:
		return "ok"
	case HeartbeatError:
		return "error"
	case HeartbeatTimeout:
		return "timeout"
	default:
		return fmt.Sprintf("HeartbeatStatus(%d)", uint8(h))
	}
}

// Heartbeat is a heartbeat event, reported to [Options].OnHeartbeat.
type Heartbeat struct {
	Status HeartbeatStatus
	Ref    string
	At     time.Time
	// RTT is the round-trip time (HeartbeatOK, HeartbeatError).
	RTT time.Duration
}

// Stats are a socket's counters, returned by value by [Socket.Stats].
type Stats struct {
	Status Status
	// ConnectedAt is when the current connection opened (zero when none).
	ConnectedAt time.Time
	// Connects counts opened connections; Reconnects those after the
	// first; ConnectFailures failed attempts; Disconnects lost connections.
	Connects, Reconnects, ConnectFailures, Disconnects uint64
	// Frames and bytes read and written (WebSocket messages).
	FramesIn, FramesOut, BytesIn, BytesOut uint64
	// DecodeErrors counts frames dropped as malformed.
	DecodeErrors uint64
	// HeartbeatsSent and HeartbeatTimeouts count heartbeats.
	HeartbeatsSent, HeartbeatTimeouts uint64
	// RTT is the last heartbeat round trip; RTTAvg a moving average
	// (weight 1/8 per sample, as TCP's SRTT).
	RTT, RTTAvg time.Duration
	// Drops counts channel events dropped because a consumer was slow.
	Drops uint64
	// TapDrops counts frames the tap dropped because its consumer was slow.
	TapDrops uint64
	// NoticeDrops counts status and heartbeat notices dropped because
	// OnStatus or OnHeartbeat did not return (over a thousand waiting).
	NoticeDrops uint64
	// SendRejects counts pushes refused with ErrSendBufferFull.
	SendRejects uint64
	// Channels is the number of channels on the socket.
	Channels int
}

// Direction tells whether a tapped frame was read or written.
type Direction uint8

// The directions of a frame.
const (
	// In is a frame read from the server.
	In Direction = iota + 1
	// Out is a frame written to the server.
	Out
)

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

// Frame is one frame seen by the tap ([Options].Tap).
type Frame struct {
	Dir  Direction
	Time time.Time
	// Conn numbers the connection the frame belongs to (1, 2, ...).
	Conn uint64
	// Data is the frame as on the wire; do not modify it.
	Data   []byte
	Binary bool
	// Message is the decoded envelope (zero when Err is set).
	Message protocol.Message
	// Err is the decoding error of a malformed inbound frame.
	Err error
}

// ChannelState is the state of a [Channel], as phoenix names them.
type ChannelState uint8

// The channel states.
const (
	// ChannelClosed: not joined (never subscribed, left, or closed by the
	// server).
	ChannelClosed ChannelState = iota
	// ChannelJoining: a join is under way (or waits for the socket).
	ChannelJoining
	// ChannelJoined: joined; the channel receives and can push.
	ChannelJoined
	// ChannelErrored: the join failed or the channel was lost; a rejoin
	// is scheduled or will happen on the next socket open.
	ChannelErrored
	// ChannelLeaving: a leave is under way.
	ChannelLeaving
)

func (s ChannelState) String() string {
	switch s {
	case ChannelClosed:
		return "closed"
	case ChannelJoining:
		return "joining"
	case ChannelJoined:
		return "joined"
	case ChannelErrored:
		return "errored"
	case ChannelLeaving:
		return "leaving"
	default:
		return fmt.Sprintf("ChannelState(%d)", uint8(s))
	}
}

// SubscribeStatus is a subscription status reported by a channel, as
// realtime-js's subscribe callback receives them.
type SubscribeStatus uint8

// The subscription statuses.
const (
	// Subscribed: a join succeeded (every join, including rejoins).
	Subscribed SubscribeStatus = iota + 1
	// TimedOut: a join got no reply within the push timeout.
	TimedOut
	// Closed: the channel closed (our leave, or the server's phx_close).
	Closed
	// ChannelError: a join was refused, the server sent phx_error, the
	// connection was lost, or the bindings mismatched.
	ChannelError
)

func (s SubscribeStatus) String() string {
	switch s {
	case Subscribed:
		return "SUBSCRIBED"
	case TimedOut:
		return "TIMED_OUT"
	case Closed:
		return "CLOSED"
	case ChannelError:
		return "CHANNEL_ERROR"
	default:
		return fmt.Sprintf("SubscribeStatus(%d)", uint8(s))
	}
}

// EventType tells which field of an [Event] is set.
type EventType uint8

// The event types.
const (
	// EventStatus: Status (and Err) are set.
	EventStatus EventType = iota + 1
	// EventBroadcast: Broadcast is set.
	EventBroadcast
	// EventPresence: Presence is set.
	EventPresence
	// EventPostgresChange: Change is set.
	EventPostgresChange
	// EventSystem: System is set.
	EventSystem
)

func (t EventType) String() string {
	switch t {
	case EventStatus:
		return "status"
	case EventBroadcast:
		return "broadcast"
	case EventPresence:
		return "presence"
	case EventPostgresChange:
		return "postgres_changes"
	case EventSystem:
		return "system"
	default:
		return fmt.Sprintf("EventType(%d)", uint8(t))
	}
}

// Event is what a channel delivers to its consumer ([ChannelConfig].OnEvent).
type Event struct {
	Type EventType
	// Time is when the frame was read (or the status changed).
	Time    time.Time
	Channel *Channel

	// Status and Err: EventStatus. Err is the reason of ChannelError,
	// TimedOut (ErrTimeout) and of a Closed caused by the server (the
	// system error that preceded phx_close, if any); a *JoinError for a
	// refused join.
	Status SubscribeStatus
	Err    error
	// JoinRef is the join the status belongs to.
	JoinRef string

	// Broadcast: EventBroadcast.
	Broadcast Broadcast
	// Presence: EventPresence. Read-only: events may share it (every
	// sync of a channel has the same one).
	Presence *PresenceEvent
	// Change: EventPostgresChange.
	Change *PostgresChange
	// System: EventSystem.
	System *protocol.System
}

// Broadcast is a user broadcast received or sent on a channel.
type Broadcast struct {
	// Event is the user event name.
	Event string
	// Payload is the user payload: JSON text, or raw bytes when Binary.
	// It is kept raw; decode it when needed. It must not be modified.
	Payload json.RawMessage
	// Binary marks a raw binary payload (binary frame encoding 0).
	Binary bool
	// Meta is the optional metadata object ({"id":...},
	// {"replayed":true,...}).
	Meta json.RawMessage
}

// PresenceEventKind is the kind of a presence event.
type PresenceEventKind uint8

// The presence event kinds, as realtime-js names them.
const (
	// PresenceJoin: metas joined for a key.
	PresenceJoin PresenceEventKind = iota + 1
	// PresenceLeave: metas left a key.
	PresenceLeave
	// PresenceSync: the state was updated (after a presence_state and
	// after every diff); read it with [Channel.Presence].
	PresenceSync
)

func (k PresenceEventKind) String() string {
	switch k {
	case PresenceJoin:
		return "join"
	case PresenceLeave:
		return "leave"
	case PresenceSync:
		return "sync"
	default:
		return fmt.Sprintf("PresenceEventKind(%d)", uint8(k))
	}
}

// PresenceMeta is one tracked presence: the server's phx_ref (Ref, the
// presence_ref of realtime-js) and the meta object; UserFields returns
// what the tracking client sent. Metas are immutable.
type PresenceMeta = protocol.PresenceMeta

// PresenceEvent is a presence join, leave or sync, as realtime-js's
// presence callbacks receive them.
type PresenceEvent struct {
	Kind PresenceEventKind
	// Key is the presence key (join, leave).
	Key string
	// Current is, for a join, the key's metas before the join; for a
	// leave, the metas that remain.
	Current []PresenceMeta
	// Changed is the joined (join) or left (leave) metas.
	Changed []PresenceMeta
	// Metas is the key's metas after the event, as the state holds them
	// (join, leave): Current then Changed for a join, unless Changed
	// replaced metas of Current (same ref); Current for a leave.
	Metas []PresenceMeta

	size int // what the event keeps alive, in bytes (see the channel's queue)
}
