package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"rtm/realtime/protocol"
)

// Sentinel errors. Errors returned by this package wrap them (or are one
// of the typed errors below); test with errors.Is and errors.As.
var (
	// ErrClosed: the socket was closed with [Socket.Close].
	ErrClosed = errors.New("realtime: socket closed")
	// ErrChannelClosed: the channel is closed (left, or closed by the
	// server with phx_close) and can no longer be used.
	ErrChannelClosed = errors.New("realtime: channel closed")
	// ErrTimeout: a push got no reply within the push timeout.
	ErrTimeout = errors.New("realtime: push timed out")
	// ErrNotJoined: the channel is not joined (or the socket is not
	// connected), so it cannot push.
	ErrNotJoined = errors.New("realtime: channel not joined")
	// ErrDisconnected: the connection was lost (or never made) while the
	// operation was under way. Its message names the cause, e.g.
	// "socket closed: 1006".
	ErrDisconnected = errors.New("realtime: connection lost")
	// ErrHeartbeatTimeout: a heartbeat got no reply within one interval;
	// the connection was closed and is being re-established.
	ErrHeartbeatTimeout = errors.New("realtime: heartbeat timeout")
	// ErrBindingMismatch: the join reply's postgres_changes did not echo
	// the channel's bindings (same message as realtime-js). The channel
	// leaves.
	ErrBindingMismatch = errors.New("realtime: mismatch between server and client bindings for postgres changes")
	// ErrChannelError: the server reported a channel crash (phx_error).
	ErrChannelError = errors.New("realtime: channel error reported by the server (phx_error)")
	// ErrSendBufferFull: too many user pushes are waiting for the writer.
	ErrSendBufferFull = errors.New("realtime: send buffer full")
	// ErrInvalidConfig: bad options, URL or channel configuration.
	ErrInvalidConfig = errors.New("realtime: invalid configuration")
)

// JoinError is a join refused by the server (an error phx_reply to
// phx_join). Reason is the server's reason, e.g. "InvalidJWTToken: Token
// has expired 12 seconds ago", split into Code and Message.
type JoinError struct {
	Topic  string
	Reason string
	// Code is the part before ": " ("InvalidJWTToken"); empty when the
	// reason has none ("unmatched topic").
	Code    string
	Message string
	// Response is the raw response of the reply.
	Response json.RawMessage
}

func (e *JoinError) Error() string {
	return fmt.Sprintf("realtime: join %s refused: %s", e.Topic, e.Reason)
}

func newJoinError(topic string, resp json.RawMessage) *JoinError {
	reason := replyReason(resp)
	code, msg := protocol.SplitReason(reason)
	return &JoinError{Topic: topic, Reason: reason, Code: code, Message: msg, Response: resp}
}

// replyReason renders an error reply's response as realtime-js does: the
// values of the response object joined by ", " in their order (normally
// just the reason), the text of a string response, else the JSON; "error"
// when that is empty.
func replyReason(resp json.RawMessage) string {
	trimmed := bytes.TrimSpace(resp)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return "error"
	}
	switch trimmed[0] {
	case '{':
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		var parts []string
		if _, err := dec.Token(); err == nil {
			for dec.More() {
				if _, err := dec.Token(); err != nil {
					break
				}
				var v json.RawMessage
				if dec.Decode(&v) != nil {
					break
				}
				var s string
				if json.Unmarshal(v, &s) == nil {
					parts = append(parts, s)
				} else {
					parts = append(parts, string(v))
				}
			}
		}
		if r := strings.Join(parts, ", "); r != "" {
			return r
		}
		return "error"
	case '"':
		var s string
		if json.Unmarshal(trimmed, &s) == nil && s != "" {
			return s
		}
		return "error"
	}
	return string(trimmed)
}

// ReplyError is an error reply to a push other than a join (an acked
// broadcast, a track, a leave).
type ReplyError struct {
	Topic    string
	Event    string
	Status   string
	Response json.RawMessage
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("realtime: %s on %s: reply %s: %s", e.Event, e.Topic, e.Status, replyReason(e.Response))
}

// HandshakeError is a WebSocket upgrade refused by the server with an
// HTTP status, such as 401 {"error":"Token has expired"}.
type HandshakeError struct {
	StatusCode int
	// Message is the body's "error" (or "message") member, else the body.
	Message string
}

func (e *HandshakeError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("realtime: connection refused: HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("realtime: connection refused: HTTP %d: %s", e.StatusCode, e.Message)
}
