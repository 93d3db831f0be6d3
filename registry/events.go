package registry

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventType names an event type; it is the "type" member of the event's
// JSON form.
type EventType string

// The event types.
const (
	TypeChannelState EventType = "channel_state"
	TypeSocket       EventType = "socket"
	TypePresence     EventType = "presence"
	TypeMessage      EventType = "message"
	TypeRetry        EventType = "retry"
	TypeLog          EventType = "log"
	TypeStats        EventType = "stats"
	TypeToken        EventType = "token"
	TypeError        EventType = "error"
	TypeFrame        EventType = "frame"
	TypeDropped      EventType = "dropped"
	TypeMessageBatch EventType = "message_batch"
)

// Event is one thing that happened in the manager. The set of event types
// is closed: the *Event struct types of this package, always passed by
// value. Each has a stable JSON form, an object whose "type" member is
// its [EventType] (first), decoded back by [DecodeEvent]; durations are
// fractional milliseconds in members ending in "_ms".
//
// State events (ChannelStateEvent, SocketEvent, StatsEvent, TokenEvent
// and PresenceEvent with action "sync") describe the latest value of
// something: a subscriber that falls behind receives only the latest one
// per subject, and never loses it. The others are stream events, dropped
// (and counted) when a subscriber's buffer is full.
type Event interface {
	// EventType returns the event's type.
	EventType() EventType
	// EventTime returns when the event happened.
	EventTime() time.Time
	isEvent()
}

// ChannelStateEvent reports a change of a channel: created, status,
// reference count, attempts, or removal.
type ChannelStateEvent struct {
	Time    time.Time `json:"time"`
	Channel Name      `json:"channel"`
	// Status is the new status and Previous the one before (equal when
	// something else changed).
	Status   Status `json:"status"`
	Previous Status `json:"previous,omitempty"`
	// Reason says why.
	Reason string `json:"reason,omitempty"`
	// Removed is true when the channel left the registry.
	Removed bool `json:"removed,omitempty"`
	// Info is the channel's info after the change.
	Info ChannelInfo `json:"info"`
}

// SocketEvent reports a change of the socket's status or a new RTT
// measurement.
type SocketEvent struct {
	Time     time.Time    `json:"time"`
	Status   SocketStatus `json:"status"`
	Previous SocketStatus `json:"previous,omitempty"`
	Reason   string       `json:"reason,omitempty"`
	// RTT is the last heartbeat round trip (0 when unknown).
	RTT time.Duration `json:"-"`
	// Attempt and NextAttemptAt describe the reconnect ladder while down.
	Attempt       int       `json:"attempt,omitempty"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}

// PresenceAction is what a PresenceEvent reports.
type PresenceAction string

// The presence actions.
const (
	// PresenceJoin: a user appeared or got a new meta.
	PresenceJoin PresenceAction = "join"
	// PresenceLeave: a user's meta left; the user left when Metas is 0.
	PresenceLeave PresenceAction = "leave"
	// PresenceSync: the cache of the channel was brought up to date
	// (after a presence_state or a presence_diff).
	PresenceSync PresenceAction = "sync"
)

// PresenceEvent reports a change of a presence cache.
type PresenceEvent struct {
	Time    time.Time      `json:"time"`
	Channel Name           `json:"channel"`
	Action  PresenceAction `json:"action"`
	// User is the user that joined or left (zero for sync). After a
	// leave, User.Metas is the number of metas left.
	User PresenceUser `json:"user,omitzero"`
	// Count is the number of users in the cache after the change.
	Count int `json:"count"`
	// Truncated, when set, says the cache is incomplete (see
	// [PresenceTruncation]): users beyond the limits are not counted.
	Truncated *PresenceTruncation `json:"truncated,omitempty"`
}

// MessageKind classifies messages.
type MessageKind string

// The message kinds.
const (
	MessageBroadcast       MessageKind = "broadcast"
	MessagePostgresChanges MessageKind = "postgres_changes"
	MessageSystem          MessageKind = "system"
	MessagePresenceState   MessageKind = "presence_state"
	MessagePresenceDiff    MessageKind = "presence_diff"
	MessagePresence        MessageKind = "presence" // track/untrack sent
)

// MessageEvent is one message received on or sent to a channel.
type MessageEvent struct {
	Time      time.Time   `json:"time"`
	Channel   Name        `json:"channel"`
	Direction Direction   `json:"direction"`
	Kind      MessageKind `json:"kind"`
	// Event is the user event of a broadcast, the change type of a
	// postgres change, the message of a system message, "track" or
	// "untrack" for presence pushes.
	Event string `json:"event,omitempty"`
	// Payload is the message's JSON (a broadcast's user payload; the
	// whole payload otherwise). Binary broadcasts carry their bytes in
	// Binary instead.
	Payload json.RawMessage `json:"payload,omitempty"`
	Binary  []byte          `json:"binary,omitempty"`
	// Size is the payload's size in bytes.
	Size int `json:"size"`
	// Queued is true for an outgoing broadcast put in the offline queue
	// (a second event with Queued false follows when it is sent).
	Queued bool `json:"queued,omitempty"`
	// Truncated is true when the payload was too big for a byte bound it
	// went through (a channel's message ring, a subscriber's buffer, the
	// UI's rings): Size is still the whole payload's size, but only its
	// first bytes are here, at most PreviewBytes: a JSON payload's in
	// Preview (cut at a UTF-8 boundary, so not valid JSON; Payload is
	// empty), a binary payload's in Binary.
	Truncated bool   `json:"truncated,omitempty"`
	Preview   string `json:"preview,omitempty"`
}

// MessageBatchEvent is the messages of one channel delivered together,
// in order, to a subscriber that asked for batches
// (SubscribeOptions.MessageBatches). Time is the first message's.
type MessageBatchEvent struct {
	Time     time.Time      `json:"time"`
	Channel  Name           `json:"channel"`
	Messages []MessageEvent `json:"messages"`
}

// RetryScope tells whether a retry is about a channel or the socket.
type RetryScope string

// The retry scopes.
const (
	ScopeChannel RetryScope = "channel"
	ScopeSocket  RetryScope = "socket"
)

// RetryOutcome is the step of an attempt that a RetryEvent reports.
type RetryOutcome string

// The retry outcomes.
const (
	// RetryScheduled: attempt Attempt will start at NextAt (after Delay).
	RetryScheduled RetryOutcome = "scheduled"
	// RetryStarted: attempt Attempt is on the wire.
	RetryStarted RetryOutcome = "started"
	// RetrySucceeded: attempt Attempt joined (or connected).
	RetrySucceeded RetryOutcome = "succeeded"
	// RetryFailed: attempt Attempt failed with Err.
	RetryFailed RetryOutcome = "failed"
	// RetryExhausted: Max attempts failed; the channel stays in error.
	RetryExhausted RetryOutcome = "exhausted"
	// RetryHeld: the attempt waits, for the socket or for an open circuit
	// breaker (NextAt says until when, if known); nothing is spent.
	RetryHeld RetryOutcome = "held"
	// RetryCancelled: the series ended without an outcome (released,
	// RetryNow, cleanup).
	RetryCancelled RetryOutcome = "cancelled"
)

// RetryEvent reports one step of a retry series.
type RetryEvent struct {
	Time    time.Time  `json:"time"`
	Scope   RetryScope `json:"scope"`
	Channel Name       `json:"channel,omitzero"`
	// Attempt is the attempt's number in its series (from 1), Max the
	// policy's limit (0: unlimited).
	Attempt int `json:"attempt"`
	Max     int `json:"max"`
	// Delay is the wait before the attempt (scheduled).
	Delay time.Duration `json:"-"`
	// NextAt is when the attempt is due (scheduled, held).
	NextAt time.Time `json:"next_at,omitzero"`
	// Reason is what started the series ("CHANNEL_ERROR: ...",
	// "TIMED_OUT", "phx_close: ...").
	Reason  string       `json:"reason,omitempty"`
	Outcome RetryOutcome `json:"outcome"`
	// Err is the failure of a failed or exhausted attempt.
	Err string `json:"err,omitempty"`
	// Policy is the policy's spec.
	Policy string `json:"policy,omitempty"`
}

// LogEvent carries one log record.
type LogEvent struct {
	Record LogRecord `json:"record"`
}

// StatsEvent carries the stats and metrics, once a second while anything
// changes.
type StatsEvent struct {
	Time    time.Time `json:"time"`
	Stats   Stats     `json:"stats"`
	Metrics Metrics   `json:"metrics"`
}

// TokenEvent reports a change of the user token.
type TokenEvent struct {
	Time time.Time `json:"time"`
	// Action is "set", "expired" (by the expire-token fault or because
	// exp passed) or "cleared".
	Action string    `json:"action"`
	Token  TokenInfo `json:"token"`
}

// ErrorEvent reports a failed operation, for a status line.
type ErrorEvent struct {
	Time    time.Time `json:"time"`
	Channel Name      `json:"channel,omitzero"`
	// Op is the operation ("join", "broadcast", "track", "connect").
	Op string `json:"op"`
	// Code is the server's error code ("ChannelRateLimitReached"), a
	// client status ("TIMED_OUT") or one of the manager's
	// ("QueueFull", "CapReached").
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	// Hint suggests what to do, if the manager knows.
	Hint string `json:"hint,omitempty"`
}

// FrameEvent is one raw frame in or out, with secrets masked. Frame
// events are sent only to subscribers that ask for them.
type FrameEvent struct {
	Time      time.Time `json:"time"`
	Direction Direction `json:"direction"`
	// Channel is the channel of Topic when Topic is a channel name.
	Channel Name   `json:"channel,omitzero"`
	Topic   string `json:"topic,omitempty"`
	Event   string `json:"event,omitempty"`
	JoinRef string `json:"join_ref,omitempty"`
	Ref     string `json:"ref,omitempty"`
	// Text is a text frame; Data a binary frame's bytes.
	Text string `json:"text,omitempty"`
	Data []byte `json:"data,omitempty"`
	// Size is the frame's size in bytes on the wire.
	Size int `json:"size"`
}

// DroppedEvent tells a subscriber that events were dropped because it
// fell behind. It comes before the first event accepted after the drops.
type DroppedEvent struct {
	Time time.Time `json:"time"`
	// Count is the number dropped since the last DroppedEvent, Total the
	// number dropped for this subscriber.
	Count uint64 `json:"count"`
	Total uint64 `json:"total"`
}

// EventType implements Event.
func (ChannelStateEvent) EventType() EventType { return TypeChannelState }

// EventType implements Event.
func (SocketEvent) EventType() EventType { return TypeSocket }

// EventType implements Event.
func (PresenceEvent) EventType() EventType { return TypePresence }

// EventType implements Event.
func (MessageEvent) EventType() EventType { return TypeMessage }

// EventType implements Event.
func (RetryEvent) EventType() EventType { return TypeRetry }

// EventType implements Event.
func (LogEvent) EventType() EventType { return TypeLog }

// EventType implements Event.
func (StatsEvent) EventType() EventType { return TypeStats }

// EventType implements Event.
func (TokenEvent) EventType() EventType { return TypeToken }

// EventType implements Event.
func (ErrorEvent) EventType() EventType { return TypeError }

// EventType implements Event.
func (FrameEvent) EventType() EventType { return TypeFrame }

// EventType implements Event.
func (DroppedEvent) EventType() EventType { return TypeDropped }

// EventType implements Event.
func (MessageBatchEvent) EventType() EventType { return TypeMessageBatch }

// EventTime implements Event.
func (e MessageBatchEvent) EventTime() time.Time { return e.Time }

func (MessageBatchEvent) isEvent() {}

type messageBatchJSON MessageBatchEvent

// MarshalJSON implements json.Marshaler.
func (e MessageBatchEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeMessageBatch, messageBatchJSON(e))
}

// EventTime implements Event.
func (e ChannelStateEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e SocketEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e PresenceEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e MessageEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e RetryEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e LogEvent) EventTime() time.Time { return e.Record.Time }

// EventTime implements Event.
func (e StatsEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e TokenEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e ErrorEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e FrameEvent) EventTime() time.Time { return e.Time }

// EventTime implements Event.
func (e DroppedEvent) EventTime() time.Time { return e.Time }

func (ChannelStateEvent) isEvent() {}
func (SocketEvent) isEvent()       {}
func (PresenceEvent) isEvent()     {}
func (MessageEvent) isEvent()      {}
func (RetryEvent) isEvent()        {}
func (LogEvent) isEvent()          {}
func (StatsEvent) isEvent()        {}
func (TokenEvent) isEvent()        {}
func (ErrorEvent) isEvent()        {}
func (FrameEvent) isEvent()        {}
func (DroppedEvent) isEvent()      {}

// IsState reports whether e is a state event: coalesced to the latest
// value per subject for a slow subscriber, never dropped.
func IsState(e Event) bool {
	switch e := e.(type) {
	case ChannelStateEvent, SocketEvent, StatsEvent, TokenEvent:
		return true
	case PresenceEvent:
		return e.Action == PresenceSync
	}
	return false
}

// stateKey identifies the subject of a state event for coalescing.
type stateKey struct {
	t    EventType
	name Name
}

func keyOf(e Event) (stateKey, bool) {
	switch e := e.(type) {
	case ChannelStateEvent:
		return stateKey{TypeChannelState, e.Channel}, true
	case SocketEvent:
		return stateKey{t: TypeSocket}, true
	case StatsEvent:
		return stateKey{t: TypeStats}, true
	case TokenEvent:
		return stateKey{t: TypeToken}, true
	case PresenceEvent:
		if e.Action == PresenceSync {
			return stateKey{TypePresence, e.Channel}, true
		}
	}
	return stateKey{}, false
}

// ms converts a duration to fractional milliseconds for JSON.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fromMS converts fractional milliseconds back.
func fromMS(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func marshalEvent[T any](t EventType, v T, extra ...any) ([]byte, error) {
	// Encode the struct, then put "type" first and the extra key/value
	// pairs after it.
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)+32)
	out = append(out, `{"type":"`...)
	out = append(out, t...)
	out = append(out, '"')
	for i := 0; i+1 < len(extra); i += 2 {
		b, err := json.Marshal(extra[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, `,"`...)
		out = append(out, extra[i].(string)...)
		out = append(out, `":`...)
		out = append(out, b...)
	}
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

type (
	channelStateJSON ChannelStateEvent
	socketJSON       SocketEvent
	presenceJSON     PresenceEvent
	messageJSON      MessageEvent
	retryJSON        RetryEvent
	logJSON          LogEvent
	statsJSON        StatsEvent
	tokenJSON        TokenEvent
	errorJSON        ErrorEvent
	frameJSON        FrameEvent
	droppedJSON      DroppedEvent
)

// MarshalJSON implements json.Marshaler.
func (e ChannelStateEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeChannelState, channelStateJSON(e))
}

// MarshalJSON implements json.Marshaler; RTT is "rtt_ms".
func (e SocketEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeSocket, socketJSON(e), "rtt_ms", ms(e.RTT))
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *SocketEvent) UnmarshalJSON(b []byte) error {
	var v struct {
		socketJSON
		RTT float64 `json:"rtt_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = SocketEvent(v.socketJSON)
	e.RTT = fromMS(v.RTT)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (e PresenceEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypePresence, presenceJSON(e))
}

// MarshalJSON implements json.Marshaler.
func (e MessageEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeMessage, messageJSON(e))
}

// MarshalJSON implements json.Marshaler; Delay is "delay_ms".
func (e RetryEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeRetry, retryJSON(e), "delay_ms", ms(e.Delay))
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *RetryEvent) UnmarshalJSON(b []byte) error {
	var v struct {
		retryJSON
		Delay float64 `json:"delay_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = RetryEvent(v.retryJSON)
	e.Delay = fromMS(v.Delay)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (e LogEvent) MarshalJSON() ([]byte, error) { return marshalEvent(TypeLog, logJSON(e), nil) }

// MarshalJSON implements json.Marshaler.
func (e StatsEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeStats, statsJSON(e))
}

// MarshalJSON implements json.Marshaler.
func (e TokenEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeToken, tokenJSON(e))
}

// MarshalJSON implements json.Marshaler.
func (e ErrorEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeError, errorJSON(e))
}

// MarshalJSON implements json.Marshaler.
func (e FrameEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeFrame, frameJSON(e))
}

// MarshalJSON implements json.Marshaler.
func (e DroppedEvent) MarshalJSON() ([]byte, error) {
	return marshalEvent(TypeDropped, droppedJSON(e))
}

// DecodeEvent decodes the JSON form of an event (one line of `rtm watch`
// or of Export).
func DecodeEvent(data []byte) (Event, error) {
	var head struct {
		Type EventType `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("registry: decode event: %w", err)
	}
	var (
		ev  Event
		err error
	)
	switch head.Type {
	case TypeChannelState:
		var v channelStateJSON
		err = json.Unmarshal(data, &v)
		ev = ChannelStateEvent(v)
	case TypeSocket:
		var v SocketEvent
		err = json.Unmarshal(data, &v)
		ev = v
	case TypePresence:
		var v presenceJSON
		err = json.Unmarshal(data, &v)
		ev = PresenceEvent(v)
	case TypeMessage:
		var v messageJSON
		err = json.Unmarshal(data, &v)
		ev = MessageEvent(v)
	case TypeRetry:
		var v RetryEvent
		err = json.Unmarshal(data, &v)
		ev = v
	case TypeLog:
		var v logJSON
		err = json.Unmarshal(data, &v)
		ev = LogEvent(v)
	case TypeStats:
		var v statsJSON
		err = json.Unmarshal(data, &v)
		ev = StatsEvent(v)
	case TypeToken:
		var v tokenJSON
		err = json.Unmarshal(data, &v)
		ev = TokenEvent(v)
	case TypeError:
		var v errorJSON
		err = json.Unmarshal(data, &v)
		ev = ErrorEvent(v)
	case TypeFrame:
		var v frameJSON
		err = json.Unmarshal(data, &v)
		ev = FrameEvent(v)
	case TypeDropped:
		var v droppedJSON
		err = json.Unmarshal(data, &v)
		ev = DroppedEvent(v)
	case TypeMessageBatch:
		var v messageBatchJSON
		err = json.Unmarshal(data, &v)
		ev = MessageBatchEvent(v)
	case "":
		return nil, fmt.Errorf("registry: decode event: no \"type\" member")
	default:
		return nil, fmt.Errorf("registry: decode event: unknown type %q", head.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: decode %s event: %w", head.Type, err)
	}
	return ev, nil
}
