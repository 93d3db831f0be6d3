package protocol

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// ServerFrame is a frame sent by a server, decoded by [Version.ScanServer]
// without allocation: every field aliases the scanned bytes (only a topic
// or event holding JSON escapes is copied, unescaped). It is the hot path
// of a client; [Version.DecodeServer] gives the same content as a
// [Message] of strings.
//
// The frame is validated in a single pass: the envelope, the whole payload
// (RFC 8259, nesting bounded), and for a "broadcast" the user broadcast
// inside it, which is located while validating instead of in a second scan.
type ServerFrame struct {
	// JoinRef and Ref are the refs; nil stands for JSON null.
	JoinRef, Ref []byte
	// Topic is the unescaped topic.
	Topic []byte
	// Event is the event; the events of the protocol are returned as
	// their constants, so only an unknown event allocates.
	Event string
	// Payload is the raw JSON payload of a text frame, nil for a binary
	// frame.
	Payload []byte

	// HasBroadcast reports a user broadcast: a binary kind-4 frame, or a
	// "broadcast" text frame whose payload is an object with a string
	// "event" member.
	HasBroadcast bool
	// BroadcastEvent is the user event name (unescaped).
	BroadcastEvent []byte
	// BroadcastPayload is the user payload: raw JSON, or raw bytes when
	// BroadcastBinary is set. nil when a text broadcast has no payload.
	BroadcastPayload []byte
	// BroadcastMeta is the optional metadata object (nil when absent or null).
	BroadcastMeta []byte
	// BroadcastBinary marks a raw binary user payload (encoding 0).
	BroadcastBinary bool

	// Binary marks a Phoenix binary broadcast (kind 2): Event is its
	// event, Raw its payload bytes, and it carries no user broadcast.
	Binary bool
	Raw    []byte
}

// Broadcast returns the user broadcast of f as a [Broadcast] (the event name
// is copied into a string; payload and meta still alias the frame). ok is
// false when f carries none.
func (f *ServerFrame) Broadcast() (b Broadcast, ok bool) {
	if !f.HasBroadcast {
		return Broadcast{}, false
	}
	return Broadcast{
		Event:   string(f.BroadcastEvent),
		Payload: f.BroadcastPayload,
		Binary:  f.BroadcastBinary,
		Meta:    f.BroadcastMeta,
	}, true
}

// ScanServer decodes a frame sent by a server into f without allocating
// (see [ServerFrame]). It accepts exactly the frames [Version.DecodeServer]
// accepts. Under V2 binary frames must be kind 2 or 4; under V1 they are
// refused.
func (v Version) ScanServer(data []byte, binary bool, f *ServerFrame) error {
	*f = ServerFrame{}
	if binary {
		if v != V2 {
			return fmt.Errorf("%w: binary frame under serializer %s", ErrUnsupported, v)
		}
		if len(data) > 0 && data[0] == KindBroadcast {
			return scanPhoenixBroadcast(data, f)
		}
		return scanBinaryBroadcast(data, f)
	}
	switch v {
	case V2:
		return scanArray(data, f, nil)
	case V1:
		return scanObjectFrame(data, f)
	default:
		return fmt.Errorf("%w: version %d", ErrUnsupported, v)
	}
}

// scanArray scans a V2 text frame [join_ref,ref,topic,event,payload,...];
// with ps, a presence payload is read into it (see ScanServerPresence).
func scanArray(d []byte, f *ServerFrame, ps *PresenceSpans) error {
	i := skipWS(d, 0)
	if i >= len(d) || d[i] != '[' {
		return fmt.Errorf("%w: a 2.0.0 text frame must be a JSON array", ErrMalformed)
	}
	i++
	var err error
	if f.JoinRef, i, err = refAt(d, i, "join_ref"); err != nil {
		return err
	}
	if i, err = expectByte(d, i, ','); err != nil {
		return err
	}
	if f.Ref, i, err = refAt(d, i, "ref"); err != nil {
		return err
	}
	if i, err = expectByte(d, i, ','); err != nil {
		return err
	}
	if f.Topic, i, err = strAt(d, i, "topic"); err != nil {
		return err
	}
	if i, err = expectByte(d, i, ','); err != nil {
		return err
	}
	var event []byte
	if event, i, err = strAt(d, i, "event"); err != nil {
		return err
	}
	f.Event = internEvent(event)
	if i, err = expectByte(d, i, ','); err != nil {
		return err
	}
	i = skipWS(d, i)
	start := i
	if i < len(d) && d[i] == '{' && f.Event == EventBroadcast {
		i, err = scanBroadcastObject(d, i, f)
	} else {
		i, err = scanPresencePayload(d, i, f, ps)
	}
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	f.Payload = d[start:i:i]
	for {
		i = skipWS(d, i)
		if i >= len(d) || d[i] != ',' {
			break
		}
		if i, err = fastValue(d, i+1, 0); err != nil {
			return err
		}
	}
	if i, err = expectByte(d, i, ']'); err != nil {
		return err
	}
	if i = skipWS(d, i); i < len(d) {
		return syntaxError(i, "trailing data")
	}
	return nil
}

// keyIs compares a raw object key with name, unescaping when needed.
func keyIs(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	s, err := unescape(raw)
	return err == nil && s == name
}

// scanBroadcastObject validates the broadcast payload object at d[i] == '{'
// and records its user broadcast in f. The rules are those of
// [ParseBroadcast]: the last member of a name wins, a null meta is ignored,
// and a non-string event means no broadcast.
func scanBroadcastObject(d []byte, i int, f *ServerFrame) (int, error) {
	i++
	i = skipWS(d, i)
	sawEvent, badEvent := false, false
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		i = skipWS(d, i)
		if i >= len(d) || d[i] != '"' {
			return i, syntaxError(i, "want string")
		}
		end, ks, ke, kesc, err := fastString(d, i)
		if err != nil {
			return end, err
		}
		key := d[ks:ke]
		if i, err = expectByte(d, end, ':'); err != nil {
			return i, err
		}
		i = skipWS(d, i)
		vs := i
		switch {
		case keyIs(key, kesc, "event"):
			if i < len(d) && d[i] == '"' {
				if f.BroadcastEvent, i, err = strAt(d, i, "broadcast event"); err != nil {
					return i, err
				}
				if f.BroadcastEvent == nil {
					f.BroadcastEvent = d[vs+1 : vs+1]
				}
				sawEvent = true
			} else {
				badEvent = true
				i, err = fastValue(d, i, 1)
			}
		case keyIs(key, kesc, "payload"):
			if i, err = fastValue(d, i, 1); err == nil {
				f.BroadcastPayload = d[vs:i:i]
			}
		case keyIs(key, kesc, "meta"):
			if i, err = fastValue(d, i, 1); err == nil && string(d[vs:i]) != "null" {
				f.BroadcastMeta = d[vs:i:i]
			}
		default:
			i, err = fastValue(d, i, 1)
		}
		if err != nil {
			return i, err
		}
		i = skipWS(d, i)
		if i >= len(d) {
			return i, syntaxError(i, "want ',' or '}' in object")
		}
		if d[i] == ',' {
			i++
			continue
		}
		if d[i] != '}' {
			return i, syntaxError(i, "want ',' or '}' in object")
		}
		i++
		break
	}
	if sawEvent && !badEvent {
		f.HasBroadcast = true
	} else {
		f.BroadcastEvent, f.BroadcastPayload, f.BroadcastMeta = nil, nil, nil
	}
	return i, nil
}

// scanObjectFrame scans a V1 frame {"topic","event","payload","ref"[,"join_ref"]}.
func scanObjectFrame(d []byte, f *ServerFrame) error {
	m, err := decodeObject(d)
	if err != nil {
		return err
	}
	f.Topic, f.Event = []byte(m.Topic), m.Event
	if m.JoinRef != "" {
		f.JoinRef = []byte(m.JoinRef)
	}
	if m.Ref != "" {
		f.Ref = []byte(m.Ref)
	}
	f.Payload = m.Payload
	if m.Event == EventBroadcast && bytes.HasPrefix(bytes.TrimLeft(m.Payload, " \t\r\n"), []byte("{")) {
		if _, err := scanBroadcastObject(m.Payload, skipWS(m.Payload, 0), f); err != nil {
			return err
		}
	}
	return nil
}

// scanBinaryBroadcast scans a kind-4 frame.
func scanBinaryBroadcast(d []byte, f *ServerFrame) error {
	const header = 5
	if len(d) == 0 || d[0] != KindUserBroadcast {
		return fmt.Errorf("%w: binary frame kind %s from a server (want 2 or 4)", ErrMalformed, kindString(d))
	}
	if len(d) < header {
		return fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(d), header)
	}
	t, e, m := int(d[1]), int(d[2]), int(d[3])
	if header+t+e+m > len(d) {
		return fmt.Errorf("%w: binary frame of %d bytes is shorter than its header lengths", ErrMalformed, len(d))
	}
	topic := d[header : header+t : header+t]
	event := d[header+t : header+t+e : header+t+e]
	meta := d[header+t+e : header+t+e+m : header+t+e+m]
	payload := d[header+t+e+m:]
	for k, field := range [3][]byte{topic, event, meta} {
		if !utf8.Valid(field) {
			return fmt.Errorf("%w: binary frame header field %d is not valid UTF-8", ErrMalformed, k+1)
		}
	}
	if t == 0 {
		return fmt.Errorf("%w: binary frame without topic", ErrMalformed)
	}
	switch d[4] {
	case encodingBinary:
		f.BroadcastBinary = true
	case encodingJSON:
		end, err := fastValue(payload, 0, 0)
		if err == nil && skipWS(payload, end) != len(payload) {
			err = syntaxError(end, "trailing data")
		}
		if err != nil {
			return fmt.Errorf("%w: binary broadcast with JSON encoding carries invalid JSON", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: binary broadcast payload encoding %d (want 0 or 1)", ErrMalformed, d[4])
	}
	if m > 0 {
		i := skipWS(meta, 0)
		end, err := fastValue(meta, i, 0)
		if err != nil || i >= len(meta) || meta[i] != '{' || skipWS(meta, end) != len(meta) {
			return fmt.Errorf("%w: binary broadcast metadata is not a JSON object", ErrMalformed)
		}
		f.BroadcastMeta = meta
	}
	f.Topic = topic
	f.Event = EventBroadcast
	f.HasBroadcast = true
	f.BroadcastEvent = event
	f.BroadcastPayload = payload
	return nil
}

// scanPhoenixBroadcast scans a kind-2 frame.
func scanPhoenixBroadcast(d []byte, f *ServerFrame) error {
	const header = 3
	if len(d) < header {
		return fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(d), header)
	}
	t, e := int(d[1]), int(d[2])
	if header+t+e > len(d) {
		return fmt.Errorf("%w: binary frame of %d bytes is shorter than its header lengths", ErrMalformed, len(d))
	}
	topic := d[header : header+t : header+t]
	event := d[header+t : header+t+e : header+t+e]
	for k, field := range [2][]byte{topic, event} {
		if !utf8.Valid(field) {
			return fmt.Errorf("%w: binary frame header field %d is not valid UTF-8", ErrMalformed, k+1)
		}
	}
	if t == 0 {
		return fmt.Errorf("%w: binary frame without topic", ErrMalformed)
	}
	f.Topic = topic
	f.Event = internEvent(event)
	f.Binary = true
	f.Raw = d[header+t+e:]
	return nil
}

// internEvent returns the constant for an event of the protocol, so the
// common events cost no allocation.
func internEvent(b []byte) string {
	switch string(b) {
	case EventBroadcast:
		return EventBroadcast
	case EventReply:
		return EventReply
	case EventPresenceDiff:
		return EventPresenceDiff
	case EventPresenceState:
		return EventPresenceState
	case EventPostgresChanges:
		return EventPostgresChanges
	case EventSystem:
		return EventSystem
	case EventClose:
		return EventClose
	case EventError:
		return EventError
	case EventJoin:
		return EventJoin
	case EventLeave:
		return EventLeave
	case EventHeartbeat:
		return EventHeartbeat
	case EventPresence:
		return EventPresence
	case EventAccessToken:
		return EventAccessToken
	}
	return string(b)
}
