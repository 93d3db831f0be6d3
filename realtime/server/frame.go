package server

import (
	"encoding/binary"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// Server-to-client WebSocket frames are written by the server itself, not
// by gorilla's writer: a server frame is unmasked, so its bytes (header and
// payload) are the same for every subscriber and can be built once per
// broadcast and serializer, then queued by reference on every connection
// and coalesced into a single write per wake-up of each connection's
// writer. gorilla/websocket still performs the upgrade and reads frames.

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPong   = 0xA
)

// maxHeader is the longest header of an unmasked frame.
const maxHeader = 10

// wsHeader writes the header of an unmasked final frame of opcode op and
// payload length n into the end of dst[:maxHeader] and returns where it
// starts.
func wsHeader(dst []byte, op byte, n int) int {
	switch {
	case n <= 125:
		dst[8] = 0x80 | op
		dst[9] = byte(n)
		return 8
	case n <= 0xFFFF:
		dst[6] = 0x80 | op
		dst[7] = 126
		binary.BigEndian.PutUint16(dst[8:10], uint16(n))
		return 6
	default:
		dst[0] = 0x80 | op
		dst[1] = 127
		binary.BigEndian.PutUint64(dst[2:10], uint64(n))
		return 0
	}
}

// encodeFrame encodes m for serializer v as one complete WebSocket frame
// (text, or binary for a V2 user broadcast). The result is immutable
// once returned and may be queued on many connections.
func encodeFrame(v protocol.Version, m *protocol.Message) ([]byte, error) {
	buf := make([]byte, maxHeader, maxHeader+96+len(m.Payload)+len(m.Topic))
	buf, binaryFrame, err := v.AppendServer(buf, m)
	if err != nil {
		return nil, err
	}
	op := byte(opText)
	if binaryFrame {
		op = opBinary
	}
	start := wsHeader(buf, op, len(buf)-maxHeader)
	return buf[start:], nil
}

// controlFrame builds a close or pong frame.
func controlFrame(op byte, payload []byte) []byte {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	buf := make([]byte, maxHeader, maxHeader+len(payload))
	buf = append(buf, payload...)
	start := wsHeader(buf, op, len(payload))
	return buf[start:]
}

// closeFrame builds a close frame with a status code and a reason cut to
// the 123 bytes a control frame allows (at a UTF-8 boundary).
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	return controlFrame(opClose, p)
}
