package jsharness

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"rtm/realtime/protocol"
)

// Event kinds reported by the driver.
const (
	// KindFrame is one WebSocket frame a client sent (Dir "out") or
	// received (Dir "in"), text verbatim or binary as bytes.
	KindFrame = "frame"
	// KindSocket is a WebSocket lifecycle event; State is "connecting",
	// "open", "closing" (the client called close), "close" or "error".
	KindSocket = "socket"
	// KindStatus is a subscribe callback: Status is SUBSCRIBED, TIMED_OUT,
	// CHANNEL_ERROR or CLOSED; Error holds err.message.
	KindStatus = "status"
	// KindHeartbeat is a heartbeat callback; Status is sent, ok, error,
	// timeout (or disconnected).
	KindHeartbeat = "heartbeat"
	// KindBroadcast, KindPresence, KindPostgresChanges and KindSystem are
	// channel.on callbacks; Payload is the callback's argument.
	KindBroadcast       = "broadcast"
	KindPresence        = "presence"
	KindPostgresChanges = "postgres_changes"
	KindSystem          = "system"
	// KindHTTP is a REST request made by realtime-js, with its response.
	KindHTTP = "http"
	// KindResult is the outcome of a command sent with Async.
	KindResult = "result"
	// KindLog is a realtime-js log line (clients created with Logger).
	KindLog = "log"
	// KindUncaught is an exception nobody caught inside the driver (for
	// example realtime-js failing to decode a frame).
	KindUncaught = "uncaught"
	// KindReady is the driver's first event.
	KindReady = "ready"
	// KindExit is added by the harness when the driver process ends.
	KindExit = "exit"
)

// Event is one line the driver reported. Which fields are set depends on
// Kind; Raw always holds the whole line.
type Event struct {
	// Seq is the 1-based position of the event in the driver's log.
	Seq int `json:"-"`
	// Time is when the driver saw it.
	Time time.Time `json:"-"`

	Kind    string `json:"ev"`
	Client  string `json:"client"`
	Channel string `json:"channel"`
	Topic   string `json:"topic"`
	// Conn numbers the WebSocket connections of the driver (1, 2, ...).
	Conn int `json:"conn"`

	// Frames.
	Dir    string `json:"dir"`
	Binary bool   `json:"binary"`
	Text   string `json:"text"`
	Hex    string `json:"hex"`
	Vsn    string `json:"vsn"`

	// Socket events: State is connecting, open, closing, close or error.
	// Status events carry the channel's state (joined, errored, ...).
	State    string `json:"state"`
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	WasClean bool   `json:"wasClean"`
	URL      string `json:"url"`

	// Status and heartbeat callbacks, failed results, uncaught errors.
	Status  string          `json:"status"`
	Error   string          `json:"error"`
	Cause   json.RawMessage `json:"cause"`
	Latency *float64        `json:"latency"`
	Source  string          `json:"source"`

	// Channel callbacks.
	Filter  json.RawMessage `json:"filter"`
	Payload json.RawMessage `json:"payload"`
	// PresenceState is channel.presenceState() right after a presence
	// callback.
	PresenceState json.RawMessage `json:"presence_state"`

	// HTTP requests.
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	// Body is a text request body; BodyBinary a binary one ({"$base64"}).
	Body       string          `json:"body"`
	BodyBinary json.RawMessage `json:"bodyBinary"`
	Response   string          `json:"response"`
	// HTTPStatus is the response status (0 when the request failed).
	HTTPStatus int `json:"httpStatus"`

	// Async results.
	Op     int             `json:"op"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`

	Raw json.RawMessage `json:"-"`
}

// parseEvent decodes one event line.
func parseEvent(line []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return Event{}, err
	}
	var t struct {
		T float64 `json:"t"`
	}
	if err := json.Unmarshal(line, &t); err != nil {
		return Event{}, err
	}
	sec, frac := math.Modf(t.T / 1000)
	e.Time = time.Unix(int64(sec), int64(frac*1e9))
	e.Raw = append(json.RawMessage(nil), line...)
	return e, nil
}

// Bytes returns a frame's bytes: the text of a text frame, the decoded
// bytes of a binary one.
func (e Event) Bytes() []byte {
	if !e.Binary {
		return []byte(e.Text)
	}
	b, err := hex.DecodeString(e.Hex)
	if err != nil {
		return nil
	}
	return b
}

// Version returns the serializer of a frame's client.
func (e Event) Version() protocol.Version {
	v, err := protocol.ParseVersion(e.Vsn)
	if err != nil || e.Vsn == "" {
		return protocol.V2
	}
	return v
}

// Message decodes a frame with the client's serializer: frames sent by the
// client as client frames, received frames as server frames.
func (e Event) Message() (protocol.Message, error) {
	if e.Kind != KindFrame {
		return protocol.Message{}, fmt.Errorf("jsharness: event %d is a %s, not a frame", e.Seq, e.Kind)
	}
	v := e.Version()
	if e.Dir == "out" {
		return v.DecodeClient(e.Bytes(), e.Binary)
	}
	return v.DecodeServer(e.Bytes(), e.Binary)
}

// UserEvent returns the user event of a broadcast callback or the event
// ("join", "leave", "sync") of a presence callback.
func (e Event) UserEvent() string {
	var p struct {
		Event string `json:"event"`
	}
	json.Unmarshal(e.Payload, &p)
	return p.Event
}

// Decode unmarshals the payload of a callback event into v.
func (e Event) Decode(v any) error {
	return json.Unmarshal(e.Payload, v)
}

// DecodeBase64 decodes a {"$base64": "..."} value, the form binary values
// take in events.
func DecodeBase64(raw json.RawMessage) ([]byte, error) {
	var b struct {
		B64 *string `json:"$base64"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.B64 == nil {
		return nil, fmt.Errorf("jsharness: %s is not a binary value", raw)
	}
	return base64.StdEncoding.DecodeString(*b.B64)
}

// Base64 returns the {"$base64": "..."} form of b, which the driver turns
// into an ArrayBuffer wherever it appears in a command.
func Base64(b []byte) map[string]any {
	return map[string]any{"$base64": base64.StdEncoding.EncodeToString(b)}
}

// String renders the event compactly for logs.
func (e Event) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "#%d %s %s", e.Seq, e.Time.Format("15:04:05.000"), e.Kind)
	if e.Client != "" {
		fmt.Fprintf(&sb, " client=%s", e.Client)
	}
	if e.Channel != "" {
		fmt.Fprintf(&sb, " channel=%s", e.Channel)
	}
	switch e.Kind {
	case KindFrame:
		fmt.Fprintf(&sb, " conn=%d %s ", e.Conn, e.Dir)
		if e.Binary {
			fmt.Fprintf(&sb, "binary %s", e.Hex)
		} else {
			sb.WriteString(e.Text)
		}
	case KindSocket:
		fmt.Fprintf(&sb, " conn=%d %s", e.Conn, e.State)
		if e.State == "close" || e.State == "closing" {
			fmt.Fprintf(&sb, " code=%d reason=%q", e.Code, e.Reason)
		}
		if e.Error != "" {
			fmt.Fprintf(&sb, " error=%q", e.Error)
		}
	case KindStatus:
		fmt.Fprintf(&sb, " %s", e.Status)
		if e.Error != "" {
			fmt.Fprintf(&sb, " error=%q", e.Error)
		}
	case KindHeartbeat:
		fmt.Fprintf(&sb, " %s", e.Status)
	case KindHTTP:
		fmt.Fprintf(&sb, " %s %s -> %d %s", e.Method, e.URL, e.HTTPStatus, e.Response)
	default:
		if len(e.Raw) > 0 {
			raw := string(e.Raw)
			if len(raw) > 600 {
				raw = raw[:600] + "..."
			}
			sb.WriteString(" ")
			sb.WriteString(raw)
		}
	}
	return sb.String()
}

// Matcher selects events.
type Matcher interface {
	Matches(Event) bool
}

// Match selects events by their fields; zero fields match anything.
type Match struct {
	Kind    string
	Client  string
	Channel string
	// Status matches Status (subscribe and heartbeat callbacks).
	Status string
	// State matches a socket event's State.
	State string
	// Dir matches a frame's direction, "in" or "out".
	Dir string
	// Event matches a frame's decoded event ("phx_join"), a broadcast
	// callback's user event or a presence callback's event.
	Event string
	// Topic matches a frame's decoded topic or an event's Topic.
	Topic string
	// After matches only events with Seq > After (see Driver.Mark).
	After int
	// Where is an extra condition.
	Where func(Event) bool
	// Desc describes Where in failure messages.
	Desc string
}

// Matches implements Matcher.
func (m Match) Matches(e Event) bool {
	if e.Seq <= m.After ||
		(m.Kind != "" && e.Kind != m.Kind) ||
		(m.Client != "" && e.Client != m.Client) ||
		(m.Channel != "" && e.Channel != m.Channel) ||
		(m.Status != "" && e.Status != m.Status) ||
		(m.State != "" && e.State != m.State) ||
		(m.Dir != "" && e.Dir != m.Dir) {
		return false
	}
	if m.Event != "" || m.Topic != "" {
		if e.Kind == KindFrame {
			msg, err := e.Message()
			if err != nil || (m.Event != "" && msg.Event != m.Event) || (m.Topic != "" && msg.Topic != m.Topic) {
				return false
			}
		} else {
			if m.Event != "" && e.UserEvent() != m.Event {
				return false
			}
			if m.Topic != "" && e.Topic != m.Topic {
				return false
			}
		}
	}
	return m.Where == nil || m.Where(e)
}

// String describes the match.
func (m Match) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("kind", m.Kind)
	add("client", m.Client)
	add("channel", m.Channel)
	add("status", m.Status)
	add("state", m.State)
	add("dir", m.Dir)
	add("event", m.Event)
	add("topic", m.Topic)
	if m.After > 0 {
		parts = append(parts, fmt.Sprintf("after=#%d", m.After))
	}
	if m.Where != nil {
		d := m.Desc
		if d == "" {
			d = "<condition>"
		}
		parts = append(parts, "where "+d)
	}
	return "{" + strings.Join(parts, " ") + "}"
}
