package protocol

import (
	"fmt"
	"unicode/utf8"
)

// AppendClient appends the frame a client sends for m and reports whether
// it is a binary frame. Under V2 a message with Broadcast set becomes a
// kind-3 binary frame; everything else is a JSON array. Under V1 every
// frame is a JSON object with a join_ref key (omitted when empty, as for
// heartbeats).
func (v Version) AppendClient(dst []byte, m *Message) (out []byte, binary bool, err error) {
	switch v {
	case V2:
		if m.Binary {
			out, err = appendPhoenixPush(dst, m)
			return out, err == nil, err
		}
		if m.Broadcast != nil {
			out, err = appendBinaryPush(dst, m)
			return out, err == nil, err
		}
		return appendArray(dst, m, m.Payload), false, nil
	case V1:
		payload, err := v1Payload(m)
		if err != nil {
			return dst, false, err
		}
		return appendObject(dst, m, payload, true), false, nil
	default:
		return dst, false, fmt.Errorf("%w: version %d", ErrUnsupported, v)
	}
}

// AppendServer appends the frame a server sends for m and reports whether
// it is a binary frame. Under V2 a message with Broadcast set becomes a
// kind-4 binary frame (refs are not part of that frame); everything else
// is a JSON array; a message with Binary set becomes a Phoenix kind-2
// broadcast. Under V1 frames are JSON objects without join_ref, and a
// binary broadcast is converted to its JSON form; a raw binary payload or
// a Binary message yields ErrUnsupported (V1 subscribers do not receive
// it).
func (v Version) AppendServer(dst []byte, m *Message) (out []byte, binary bool, err error) {
	switch v {
	case V2:
		if m.Binary {
			out, err = appendPhoenixBroadcast(dst, m)
			return out, err == nil, err
		}
		if m.Broadcast != nil {
			out, err = appendBinaryBroadcast(dst, m.Topic, m.Broadcast)
			return out, err == nil, err
		}
		return appendArray(dst, m, m.Payload), false, nil
	case V1:
		payload, err := v1Payload(m)
		if err != nil {
			return dst, false, err
		}
		return appendObject(dst, m, payload, false), false, nil
	default:
		return dst, false, fmt.Errorf("%w: version %d", ErrUnsupported, v)
	}
}

// DecodeClient decodes a frame sent by a client. Under V2 binary frames
// must be kind 0 (a Phoenix push) or 3 (a user broadcast); under V1
// binary frames are refused.
func (v Version) DecodeClient(data []byte, binary bool) (Message, error) {
	if binary {
		if v != V2 {
			return Message{}, fmt.Errorf("%w: binary frame under serializer %s", ErrUnsupported, v)
		}
		if len(data) > 0 && data[0] == KindPush {
			return decodePhoenixPush(data)
		}
		return decodeBinaryPush(data)
	}
	return v.decodeText(data)
}

// DecodeServer decodes a frame sent by a server. Under V2 binary frames
// must be kind 2 (a Phoenix broadcast) or 4 (a user broadcast); under V1
// binary frames are refused.
func (v Version) DecodeServer(data []byte, binary bool) (Message, error) {
	if binary {
		if v != V2 {
			return Message{}, fmt.Errorf("%w: binary frame under serializer %s", ErrUnsupported, v)
		}
		if len(data) > 0 && data[0] == KindBroadcast {
			return decodePhoenixBroadcast(data)
		}
		return decodeBinaryBroadcast(data)
	}
	return v.decodeText(data)
}

func (v Version) decodeText(data []byte) (Message, error) {
	switch v {
	case V2:
		return decodeArray(data)
	case V1:
		return decodeObject(data)
	default:
		return Message{}, fmt.Errorf("%w: version %d", ErrUnsupported, v)
	}
}

// v1Payload returns the JSON payload for a V1 frame, converting a binary
// broadcast to its JSON form.
func v1Payload(m *Message) ([]byte, error) {
	if m.Binary {
		return nil, fmt.Errorf("%w: a binary payload has no 1.0.0 form", ErrUnsupported)
	}
	if m.Broadcast != nil {
		return m.Broadcast.AppendJSON(nil)
	}
	return payloadOrEmpty(m.Payload), nil
}

// appendArray appends [join_ref,ref,topic,event,payload].
func appendArray(dst []byte, m *Message, payload []byte) []byte {
	dst = append(dst, '[')
	dst = appendStringOrNull(dst, m.JoinRef)
	dst = append(dst, ',')
	dst = appendStringOrNull(dst, m.Ref)
	dst = append(dst, ',')
	dst = appendString(dst, m.Topic)
	dst = append(dst, ',')
	dst = appendString(dst, m.Event)
	dst = append(dst, ',')
	dst = append(dst, payloadOrEmpty(payload)...)
	return append(dst, ']')
}

// appendObject appends {"topic":..,"event":..,"payload":..,"ref":..[,"join_ref":..]}.
func appendObject(dst []byte, m *Message, payload []byte, withJoinRef bool) []byte {
	dst = append(dst, `{"topic":`...)
	dst = appendString(dst, m.Topic)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, m.Event)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, payload...)
	dst = append(dst, `,"ref":`...)
	dst = appendStringOrNull(dst, m.Ref)
	if withJoinRef && m.JoinRef != "" {
		dst = append(dst, `,"join_ref":`...)
		dst = appendString(dst, m.JoinRef)
	}
	return append(dst, '}')
}

// decodeArray decodes a V2 text frame. Extra trailing elements are
// tolerated, as Realtime does.
func decodeArray(data []byte) (Message, error) {
	var m Message
	s := scanner{data: data}
	if err := s.expect('['); err != nil {
		return m, fmt.Errorf("%w: a 2.0.0 text frame must be a JSON array", ErrMalformed)
	}
	var err error
	if m.JoinRef, _, err = s.stringOrNull(); err != nil {
		return m, fmt.Errorf("join_ref: %w", err)
	}
	if err = s.expect(','); err != nil {
		return m, err
	}
	if m.Ref, _, err = s.stringOrNull(); err != nil {
		return m, fmt.Errorf("ref: %w", err)
	}
	if err = s.expect(','); err != nil {
		return m, err
	}
	if s.peek() != '"' {
		return m, fmt.Errorf("%w: topic must be a string", ErrMalformed)
	}
	if m.Topic, err = s.str(); err != nil {
		return m, fmt.Errorf("topic: %w", err)
	}
	if err = s.expect(','); err != nil {
		return m, err
	}
	if s.peek() != '"' {
		return m, fmt.Errorf("%w: event must be a string", ErrMalformed)
	}
	if m.Event, err = s.str(); err != nil {
		return m, fmt.Errorf("event: %w", err)
	}
	if err = s.expect(','); err != nil {
		return m, err
	}
	if m.Payload, err = s.value(); err != nil {
		return m, fmt.Errorf("payload: %w", err)
	}
	for s.peek() == ',' {
		s.pos++
		if _, err = s.value(); err != nil {
			return m, err
		}
	}
	if err = s.expect(']'); err != nil {
		return m, err
	}
	if err = s.end(); err != nil {
		return m, err
	}
	return m, nil
}

// decodeObject decodes a V1 text frame. topic, event and payload are
// required; ref and join_ref are optional; other keys are ignored.
func decodeObject(data []byte) (Message, error) {
	var m Message
	s := scanner{data: data}
	if s.peek() != '{' {
		return m, fmt.Errorf("%w: a 1.0.0 frame must be a JSON object", ErrMalformed)
	}
	var seen uint8
	const (
		seenTopic = 1 << iota
		seenEvent
		seenPayload
	)
	err := s.objectFields(func(key string) error {
		var err error
		switch key {
		case "topic":
			if s.peek() != '"' {
				return fmt.Errorf("%w: topic must be a string", ErrMalformed)
			}
			m.Topic, err = s.str()
			seen |= seenTopic
		case "event":
			if s.peek() != '"' {
				return fmt.Errorf("%w: event must be a string", ErrMalformed)
			}
			m.Event, err = s.str()
			seen |= seenEvent
		case "payload":
			m.Payload, err = s.value()
			seen |= seenPayload
		case "ref":
			m.Ref, _, err = s.stringOrNull()
		case "join_ref":
			m.JoinRef, _, err = s.stringOrNull()
		default:
			_, err = s.value()
		}
		return err
	})
	if err != nil {
		return Message{}, err
	}
	if err := s.end(); err != nil {
		return Message{}, err
	}
	if seen != seenTopic|seenEvent|seenPayload {
		return Message{}, fmt.Errorf("%w: a 1.0.0 frame needs topic, event and payload", ErrMalformed)
	}
	return m, nil
}

// checkField rejects header fields longer than a byte can count.
func checkField(name string, n int) error {
	if n > 255 {
		return fmt.Errorf("%w: binary frame %s is %d bytes (max 255)", ErrUnsupported, name, n)
	}
	return nil
}

func encodingOf(b *Broadcast) byte {
	if b.Binary {
		return encodingBinary
	}
	return encodingJSON
}

// appendBinaryPush appends a kind-3 frame: a client's user broadcast.
func appendBinaryPush(dst []byte, m *Message) ([]byte, error) {
	b := m.Broadcast
	for _, f := range []struct {
		name string
		n    int
	}{{"join_ref", len(m.JoinRef)}, {"ref", len(m.Ref)}, {"topic", len(m.Topic)}, {"event", len(b.Event)}, {"metadata", len(b.Meta)}} {
		if err := checkField(f.name, f.n); err != nil {
			return dst, err
		}
	}
	dst = append(dst, KindUserBroadcastPush, byte(len(m.JoinRef)), byte(len(m.Ref)), byte(len(m.Topic)),
		byte(len(b.Event)), byte(len(b.Meta)), encodingOf(b))
	dst = append(dst, m.JoinRef...)
	dst = append(dst, m.Ref...)
	dst = append(dst, m.Topic...)
	dst = append(dst, b.Event...)
	dst = append(dst, b.Meta...)
	if len(b.Payload) == 0 && !b.Binary {
		return append(dst, "{}"...), nil
	}
	return append(dst, b.Payload...), nil
}

// appendBinaryBroadcast appends a kind-4 frame: a server's user broadcast.
func appendBinaryBroadcast(dst []byte, topic string, b *Broadcast) ([]byte, error) {
	for _, f := range []struct {
		name string
		n    int
	}{{"topic", len(topic)}, {"event", len(b.Event)}, {"metadata", len(b.Meta)}} {
		if err := checkField(f.name, f.n); err != nil {
			return dst, err
		}
	}
	dst = append(dst, KindUserBroadcast, byte(len(topic)), byte(len(b.Event)), byte(len(b.Meta)), encodingOf(b))
	dst = append(dst, topic...)
	dst = append(dst, b.Event...)
	dst = append(dst, b.Meta...)
	if len(b.Payload) == 0 && !b.Binary {
		return append(dst, "{}"...), nil
	}
	return append(dst, b.Payload...), nil
}

// binaryFields splits the variable part of a binary frame by lengths.
func binaryFields(data []byte, header int, lens ...byte) ([][]byte, []byte, error) {
	if len(data) < header {
		return nil, nil, fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(data), header)
	}
	pos := header
	fields := make([][]byte, len(lens))
	for i, l := range lens {
		end := pos + int(l)
		if end > len(data) {
			return nil, nil, fmt.Errorf("%w: binary frame of %d bytes is shorter than its header lengths", ErrMalformed, len(data))
		}
		fields[i] = data[pos:end]
		if !utf8.Valid(fields[i]) {
			return nil, nil, fmt.Errorf("%w: binary frame header field %d is not valid UTF-8", ErrMalformed, i+1)
		}
		pos = end
	}
	return fields, data[pos:], nil
}

// checkBroadcastBody validates the encoding byte, metadata and payload of
// a binary broadcast.
func checkBroadcastBody(enc byte, meta, payload []byte) (*Broadcast, error) {
	b := &Broadcast{Payload: payload}
	switch enc {
	case encodingBinary:
		b.Binary = true
	case encodingJSON:
		if !Valid(payload) {
			return nil, fmt.Errorf("%w: binary broadcast with JSON encoding carries invalid JSON", ErrMalformed)
		}
	default:
		return nil, fmt.Errorf("%w: binary broadcast payload encoding %d (want 0 or 1)", ErrMalformed, enc)
	}
	if len(meta) > 0 {
		if !IsObject(meta) {
			return nil, fmt.Errorf("%w: binary broadcast metadata is not a JSON object", ErrMalformed)
		}
		b.Meta = meta
	}
	return b, nil
}

// decodeBinaryPush decodes a kind-3 frame.
func decodeBinaryPush(data []byte) (Message, error) {
	const header = 7
	if len(data) == 0 || data[0] != KindUserBroadcastPush {
		return Message{}, fmt.Errorf("%w: binary frame kind %s from a client (want 0 or 3)", ErrMalformed, kindString(data))
	}
	if len(data) < header {
		return Message{}, fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(data), header)
	}
	f, payload, err := binaryFields(data, header, data[1], data[2], data[3], data[4], data[5])
	if err != nil {
		return Message{}, err
	}
	if len(f[2]) == 0 {
		return Message{}, fmt.Errorf("%w: binary frame without topic", ErrMalformed)
	}
	b, err := checkBroadcastBody(data[6], f[4], payload)
	if err != nil {
		return Message{}, err
	}
	b.Event = string(f[3])
	return Message{
		JoinRef:   string(f[0]),
		Ref:       string(f[1]),
		Topic:     string(f[2]),
		Event:     EventBroadcast,
		Broadcast: b,
	}, nil
}

// decodeBinaryBroadcast decodes a kind-4 frame.
func decodeBinaryBroadcast(data []byte) (Message, error) {
	const header = 5
	if len(data) == 0 || data[0] != KindUserBroadcast {
		return Message{}, fmt.Errorf("%w: binary frame kind %s from a server (want 2 or 4)", ErrMalformed, kindString(data))
	}
	if len(data) < header {
		return Message{}, fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(data), header)
	}
	f, payload, err := binaryFields(data, header, data[1], data[2], data[3])
	if err != nil {
		return Message{}, err
	}
	if len(f[0]) == 0 {
		return Message{}, fmt.Errorf("%w: binary frame without topic", ErrMalformed)
	}
	b, err := checkBroadcastBody(data[4], f[2], payload)
	if err != nil {
		return Message{}, err
	}
	b.Event = string(f[1])
	return Message{Topic: string(f[0]), Event: EventBroadcast, Broadcast: b}, nil
}

// appendPhoenixPush appends a kind-0 frame: a client's push with a binary
// payload, as phoenix.js encodes it.
func appendPhoenixPush(dst []byte, m *Message) ([]byte, error) {
	for _, f := range []struct {
		name string
		n    int
	}{{"join_ref", len(m.JoinRef)}, {"ref", len(m.Ref)}, {"topic", len(m.Topic)}, {"event", len(m.Event)}} {
		if err := checkField(f.name, f.n); err != nil {
			return dst, err
		}
	}
	dst = append(dst, KindPush, byte(len(m.JoinRef)), byte(len(m.Ref)), byte(len(m.Topic)), byte(len(m.Event)))
	dst = append(dst, m.JoinRef...)
	dst = append(dst, m.Ref...)
	dst = append(dst, m.Topic...)
	dst = append(dst, m.Event...)
	return append(dst, m.Raw...), nil
}

// appendPhoenixBroadcast appends a kind-2 frame: a server's broadcast with
// a binary payload, as Phoenix's 2.0.0 serializer encodes it.
func appendPhoenixBroadcast(dst []byte, m *Message) ([]byte, error) {
	if err := checkField("topic", len(m.Topic)); err != nil {
		return dst, err
	}
	if err := checkField("event", len(m.Event)); err != nil {
		return dst, err
	}
	dst = append(dst, KindBroadcast, byte(len(m.Topic)), byte(len(m.Event)))
	dst = append(dst, m.Topic...)
	dst = append(dst, m.Event...)
	return append(dst, m.Raw...), nil
}

// decodePhoenixPush decodes a kind-0 frame. Its payload is raw bytes of
// any content; the topic must not be empty.
func decodePhoenixPush(data []byte) (Message, error) {
	const header = 5
	if len(data) < header {
		return Message{}, fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(data), header)
	}
	f, payload, err := binaryFields(data, header, data[1], data[2], data[3], data[4])
	if err != nil {
		return Message{}, err
	}
	if len(f[2]) == 0 {
		return Message{}, fmt.Errorf("%w: binary frame without topic", ErrMalformed)
	}
	return Message{
		JoinRef: string(f[0]),
		Ref:     string(f[1]),
		Topic:   string(f[2]),
		Event:   string(f[3]),
		Binary:  true,
		Raw:     payload,
	}, nil
}

// decodePhoenixBroadcast decodes a kind-2 frame.
func decodePhoenixBroadcast(data []byte) (Message, error) {
	const header = 3
	if len(data) < header {
		return Message{}, fmt.Errorf("%w: binary frame of %d bytes is shorter than its %d-byte header", ErrMalformed, len(data), header)
	}
	f, payload, err := binaryFields(data, header, data[1], data[2])
	if err != nil {
		return Message{}, err
	}
	if len(f[0]) == 0 {
		return Message{}, fmt.Errorf("%w: binary frame without topic", ErrMalformed)
	}
	return Message{Topic: string(f[0]), Event: string(f[1]), Binary: true, Raw: payload}, nil
}

func kindString(data []byte) string {
	if len(data) == 0 {
		return "(empty)"
	}
	return fmt.Sprint(data[0])
}
