// Package protocol is the wire format of Supabase Realtime shared by rtm's
// client (package realtime) and its embedded server (package
// realtime/server): the Phoenix envelope, serializers 1.0.0 and 2.0.0
// (JSON text frames and the binary user-broadcast frames of kinds 3 and 4),
// and the typed payloads of joins, replies, presence, system messages and
// postgres changes.
//
// The reference is what @supabase/realtime-js 2.119.0 sends and
// accepts. Frames are named after their sender:
// [Version.AppendClient] encodes what a client sends and
// [Version.DecodeClient] decodes it on the server; [Version.AppendServer]
// and [Version.DecodeServer] do the same for what a server sends.
//
// Decoding is hand-written for the hot path: the envelope is read without
// reflection and the payload is returned as raw JSON (a sub-slice of the
// frame, not a copy) until a handler asks for more. Every decoder
// validates what it returns, never panics on any input, and is fuzzed.
package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed is wrapped by every decoding error: the frame is not valid
// JSON, not of the envelope's shape, or a binary frame with wrong lengths.
var ErrMalformed = errors.New("protocol: malformed frame")

// ErrUnsupported is wrapped when a message cannot be represented in the
// chosen serializer (a raw binary broadcast under 1.0.0, an unknown
// version, a header field longer than 255 bytes).
var ErrUnsupported = errors.New("protocol: unsupported")

// Topics and events of the protocol.
const (
	// TopicPrefix starts every channel topic: "realtime:" + name.
	TopicPrefix = "realtime:"
	// PhoenixTopic is the topic of heartbeats.
	PhoenixTopic = "phoenix"

	EventJoin            = "phx_join"
	EventLeave           = "phx_leave"
	EventReply           = "phx_reply"
	EventClose           = "phx_close"
	EventError           = "phx_error"
	EventHeartbeat       = "heartbeat"
	EventBroadcast       = "broadcast"
	EventPresence        = "presence"
	EventPresenceState   = "presence_state"
	EventPresenceDiff    = "presence_diff"
	EventPostgresChanges = "postgres_changes"
	EventSystem          = "system"
	EventAccessToken     = "access_token"
)

// Binary frame kinds of serializer 2.0.0. Kinds 0 and 2 are Phoenix's
// own (phoenix.js sends a push with an ArrayBuffer payload as kind 0);
// kinds 3 and 4 are Realtime's user broadcasts.
const (
	// KindPush is a Phoenix push with a binary payload, sent by a client
	// (kind 0): join_ref, ref, topic, event, then the payload bytes.
	KindPush byte = 0
	// KindBroadcast is a Phoenix broadcast with a binary payload, sent by
	// a server (kind 2): topic, event, then the payload bytes.
	// realtime-js cannot decode it; phoenix.js can.
	KindBroadcast byte = 2
	// KindUserBroadcastPush is a user broadcast sent by a client (kind 3).
	KindUserBroadcastPush byte = 3
	// KindUserBroadcast is a user broadcast sent by a server (kind 4).
	KindUserBroadcast byte = 4
)

// Payload encodings of binary broadcast frames.
const (
	encodingBinary byte = 0
	encodingJSON   byte = 1
)

// Message is one frame of the protocol.
//
// Refs are opaque strings; the empty string stands for JSON null on the
// wire (realtime-js never sends an empty ref). Payload is the raw JSON of
// the payload, normally an object; it aliases the decoded frame.
//
// A binary user broadcast (kind 3 from a client, kind 4 from a server)
// has Event "broadcast", a nil Payload and Broadcast set. A broadcast that
// arrived as JSON text has Payload set and Broadcast nil; use
// [Message.UserBroadcast] to read either form.
//
// A Phoenix binary frame (kind 0 from a client, kind 2 from a server) has
// Binary set, its payload bytes in Raw and a nil Payload; its Event is the
// push's own ("broadcast" for phoenix.js's channel.push("broadcast",
// buffer)), with no user event inside.
type Message struct {
	JoinRef   string
	Ref       string
	Topic     string
	Event     string
	Payload   json.RawMessage
	Broadcast *Broadcast
	// Binary marks a Phoenix binary frame; Raw is its payload.
	Binary bool
	Raw    []byte
}

// Broadcast is a user broadcast: the user event name, its payload, and
// optional metadata.
type Broadcast struct {
	// Event is the user event name ("cursor").
	Event string
	// Payload is JSON text, or raw bytes when Binary is true.
	Payload []byte
	// Binary marks a raw binary payload (encoding 0); JSON otherwise.
	Binary bool
	// Meta is an optional JSON object ({"id":...} or {"replayed":true}).
	Meta json.RawMessage
}

// AppendJSON appends the broadcast as the JSON payload object of a
// "broadcast" event: {"type":"broadcast","event":E,"payload":P[,"meta":M]}.
// A raw binary payload has no JSON form and yields ErrUnsupported.
func (b *Broadcast) AppendJSON(dst []byte) ([]byte, error) {
	if b.Binary {
		return dst, fmt.Errorf("%w: a raw binary broadcast has no JSON form", ErrUnsupported)
	}
	dst = append(dst, `{"type":"broadcast","event":`...)
	dst = appendString(dst, b.Event)
	dst = append(dst, `,"payload":`...)
	if len(b.Payload) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, b.Payload...)
	}
	if len(b.Meta) > 0 {
		dst = append(dst, `,"meta":`...)
		dst = append(dst, b.Meta...)
	}
	return append(dst, '}'), nil
}

// UserBroadcast returns the user broadcast carried by a "broadcast"
// message, whether it arrived as a binary frame or as JSON text. For text
// it reads the payload object's "event", "payload" and "meta" members
// without decoding the user payload.
func (m *Message) UserBroadcast() (Broadcast, error) {
	if m.Broadcast != nil {
		return *m.Broadcast, nil
	}
	return ParseBroadcast(m.Payload)
}

// ParseBroadcast reads a broadcast payload object
// {"type":"broadcast","event":E,"payload":P,"meta":M}. The user payload
// and meta are returned raw, aliasing data.
func ParseBroadcast(data []byte) (Broadcast, error) {
	var b Broadcast
	s := scanner{data: data}
	sawEvent := false
	err := s.objectFields(func(key string) error {
		var err error
		switch key {
		case "event":
			if s.peek() != '"' {
				return fmt.Errorf("%w: broadcast event is not a string", ErrMalformed)
			}
			b.Event, err = s.str()
			sawEvent = true
		case "payload":
			b.Payload, err = s.value()
		case "meta":
			var v []byte
			if v, err = s.value(); err == nil && string(v) != "null" {
				b.Meta = v
			}
		default:
			_, err = s.value()
		}
		return err
	})
	if err != nil {
		return Broadcast{}, err
	}
	if err := s.end(); err != nil {
		return Broadcast{}, err
	}
	if !sawEvent {
		return Broadcast{}, fmt.Errorf("%w: broadcast payload has no event", ErrMalformed)
	}
	return b, nil
}

// Version is a serializer version, chosen by the vsn query parameter.
type Version uint8

// The serializer versions.
const (
	// V1 is "1.0.0": JSON object frames, text only.
	V1 Version = 1
	// V2 is "2.0.0": JSON array text frames plus binary broadcast frames.
	// It is realtime-js's default.
	V2 Version = 2
)

// String returns the vsn string of v.
func (v Version) String() string {
	switch v {
	case V1:
		return "1.0.0"
	case V2:
		return "2.0.0"
	default:
		return fmt.Sprintf("Version(%d)", uint8(v))
	}
}

// ParseVersion maps a vsn query value to a serializer, as the server does:
// an empty vsn is 1.0.0, "~> 1.0.0" and "~> 2.0.0" are accepted (any patch
// level), everything else is an error.
func ParseVersion(vsn string) (Version, error) {
	if vsn == "" {
		return V1, nil
	}
	major, rest, ok := strings.Cut(vsn, ".")
	minor, patch, ok2 := strings.Cut(rest, ".")
	if ok && ok2 && minor == "0" && isDigits(patch) {
		switch major {
		case "1":
			return V1, nil
		case "2":
			return V2, nil
		}
	}
	return 0, fmt.Errorf("%w: serializer version %q (want 1.0.0 or 2.0.0)", ErrUnsupported, vsn)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// payloadOrEmpty returns p, or {} when p is empty: payloads are never null
// on the wire.
func payloadOrEmpty(p json.RawMessage) []byte {
	if len(p) == 0 {
		return []byte("{}")
	}
	return p
}
