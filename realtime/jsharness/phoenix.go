package jsharness

import (
	"encoding/json"
	"testing"
	"time"
)

// PhoenixVersion is the version of the Phoenix framework's JS client (npm
// phoenix) that testdata/realtimejs/phoenix.mjs runs.
const PhoenixVersion = "1.8.17"

// Event kinds reported by phoenix.mjs (besides KindFrame, KindSocket,
// KindResult, KindUncaught, KindReady and KindExit, as for driver.mjs).
// KindStatus is an outcome of a channel's join push: Status ok, error or
// timeout, Payload the response; it comes again on every rejoin.
// KindPresence is a phoenix Presence callback: Payload {"event": join,
// leave or sync, ...}, and the line's "list" is presence.list() after it.
const (
	// KindMessage is a message of a channel.on binding; [MessageEvent]
	// gives its event, Payload its payload ({"$base64"} and Binary set
	// for an ArrayBuffer).
	KindMessage = "message"
	// KindChannelError is channel.onError; Payload is the reason
	// phoenix.js passes (the phx_error payload, or a transport reason).
	KindChannelError = "channel_error"
	// KindChannelClose is channel.onClose.
	KindChannelClose = "channel_close"
)

// Phoenix is a running phoenix.mjs: a [Driver] whose commands create
// phoenix.js sockets and channels instead of realtime-js clients. The
// event log, waits and Do work as for realtime-js.
type Phoenix struct {
	*Driver
	// PhoenixVersion is the npm phoenix version the driver reported.
	PhoenixVersion string
}

// StartPhoenix installs the pinned packages if needed and starts
// testdata/realtimejs/phoenix.mjs, like [Start]. The process is stopped
// when tb ends.
func StartPhoenix(tb testing.TB) *Phoenix {
	tb.Helper()
	d, ready := startScript(tb, "phoenix.mjs")
	if d == nil {
		return nil
	}
	var info struct {
		Node    string `json:"node"`
		Phoenix string `json:"phoenix"`
	}
	json.Unmarshal(ready.Raw, &info)
	d.NodeVersion = info.Node
	if info.Phoenix != PhoenixVersion {
		tb.Fatalf("jsharness: phoenix.mjs runs phoenix %s, want %s", info.Phoenix, PhoenixVersion)
	}
	return &Phoenix{Driver: d, PhoenixVersion: info.Phoenix}
}

// MessageEvent returns the event of a KindMessage event ("broadcast").
func MessageEvent(e Event) string {
	var m struct {
		Event string `json:"event"`
	}
	json.Unmarshal(e.Raw, &m)
	return m.Event
}

// PresenceList returns the presence.list() a KindPresence event carries.
func PresenceList(e Event) json.RawMessage {
	var m struct {
		List json.RawMessage `json:"list"`
	}
	json.Unmarshal(e.Raw, &m)
	return m.List
}

// PhoenixOptions are the phoenix Socket options a test sets. Zero fields
// keep phoenix.js's defaults, except Vsn.
type PhoenixOptions struct {
	// APIKey is params.apikey, which Supabase requires.
	APIKey string
	// Vsn is the serializer; "2.0.0" (phoenix.js's default) when empty.
	// With "1.0.0" the driver gives the socket an encode and decode of
	// 1.0.0's JSON objects (phoenix.js's own serializer is 2.0.0's,
	// whatever the vsn), as an app on 1.0.0 does; no binary pushes then.
	Vsn string
	// HeartbeatIntervalMs defaults to 30000 in phoenix.js.
	HeartbeatIntervalMs int
	// TimeoutMs is the push/join timeout, 10000 by default.
	TimeoutMs int
	// ReconnectAfterMs and RejoinAfterMs replace phoenix.js's schedules
	// (reconnect 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms then 5 s;
	// rejoin 1, 2, 5 s then 10 s); the last value repeats.
	ReconnectAfterMs, RejoinAfterMs []int
}

func (o PhoenixOptions) toMap() map[string]any {
	m := map[string]any{"params": map[string]any{"apikey": o.APIKey}, "vsn": "2.0.0"}
	if o.Vsn != "" {
		m["vsn"] = o.Vsn
	}
	if o.HeartbeatIntervalMs > 0 {
		m["heartbeatIntervalMs"] = o.HeartbeatIntervalMs
	}
	if o.TimeoutMs > 0 {
		m["timeout"] = o.TimeoutMs
	}
	if len(o.ReconnectAfterMs) > 0 {
		m["reconnectAfterMs"] = o.ReconnectAfterMs
	}
	if len(o.RejoinAfterMs) > 0 {
		m["rejoinAfterMs"] = o.RejoinAfterMs
	}
	return m
}

// PhoenixSocket is a phoenix Socket in the driver.
type PhoenixSocket struct {
	p    *Phoenix
	Name string
	// EndPointURL is the URL phoenix.js connects to (endpoint +
	// "/websocket", params and vsn).
	EndPointURL string
}

// NewSocket creates a phoenix Socket named name for endpoint (see
// [Endpoint]) and connects it.
func (p *Phoenix) NewSocket(tb testing.TB, name, endpoint string, o PhoenixOptions) *PhoenixSocket {
	tb.Helper()
	res := p.must(tb, "socket.new", map[string]any{"client": name, "url": endpoint, "options": o.toMap()})
	var r struct {
		EndPointURL string `json:"endPointURL"`
	}
	json.Unmarshal(res, &r)
	s := &PhoenixSocket{p: p, Name: name, EndPointURL: r.EndPointURL}
	p.must(tb, "socket.connect", map[string]any{"client": name})
	return s
}

// Disconnect closes the socket (phoenix.js does not reconnect it).
func (s *PhoenixSocket) Disconnect(tb testing.TB) {
	tb.Helper()
	s.p.must(tb, "socket.disconnect", map[string]any{"client": s.Name})
}

// Push sends a raw push on the socket with the given join_ref (empty for
// null), bypassing the channel's own; it returns the push's ref.
func (s *PhoenixSocket) Push(tb testing.TB, topic, event, joinRef string, payload any) string {
	tb.Helper()
	args := map[string]any{"client": s.Name, "topic": topic, "event": event, "payload": payload}
	if joinRef != "" {
		args["join_ref"] = joinRef
	}
	return mustString(tb, s.p.must(tb, "socket.push", args))
}

// PhoenixChannel is a phoenix Channel in the driver.
type PhoenixChannel struct {
	p      *Phoenix
	Socket *PhoenixSocket
	Name   string
	Topic  string
}

// Channel creates socket.channel(topic, params) named name; with presence
// a phoenix Presence reports KindPresence events.
func (s *PhoenixSocket) Channel(tb testing.TB, name, topic string, params any, presence bool) *PhoenixChannel {
	tb.Helper()
	s.p.must(tb, "channel.new", map[string]any{"client": s.Name, "channel": name, "topic": topic, "params": params, "presence": presence})
	return &PhoenixChannel{p: s.p, Socket: s, Name: name, Topic: topic}
}

// On binds event: every message becomes a KindMessage event.
func (c *PhoenixChannel) On(tb testing.TB, event string) *PhoenixChannel {
	tb.Helper()
	c.p.must(tb, "channel.on", map[string]any{"client": c.Socket.Name, "channel": c.Name, "event": event})
	return c
}

// Join calls channel.join(); the outcomes come as KindStatus events.
func (c *PhoenixChannel) Join(tb testing.TB) {
	tb.Helper()
	c.p.must(tb, "channel.join", map[string]any{"client": c.Socket.Name, "channel": c.Name})
}

// AwaitJoin waits for the join push's outcome status ("ok", "error",
// "timeout") after the event at mark, and returns it.
func (c *PhoenixChannel) AwaitJoin(tb testing.TB, timeout time.Duration, mark int, status string) Event {
	tb.Helper()
	return c.p.Await(tb, timeout, Match{Kind: KindStatus, Client: c.Socket.Name, Channel: c.Name, Status: status, After: mark})
}

// PhoenixReply is the outcome of a push: Status ok, error or timeout, and
// the reply's response.
type PhoenixReply struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

// Push sends channel.push(event, payload) and waits for its outcome (up
// to the push timeout). A [Base64] payload is sent as an ArrayBuffer, the
// binary push of phoenix's serializer.
func (c *PhoenixChannel) Push(tb testing.TB, event string, payload any) PhoenixReply {
	tb.Helper()
	var r PhoenixReply
	res := c.p.must(tb, "channel.push", map[string]any{"client": c.Socket.Name, "channel": c.Name, "event": event, "payload": payload})
	if err := json.Unmarshal(res, &r); err != nil {
		tb.Fatalf("jsharness: push outcome %s: %v", res, err)
	}
	return r
}

// Leave calls channel.leave() and waits for its outcome.
func (c *PhoenixChannel) Leave(tb testing.TB) PhoenixReply {
	tb.Helper()
	var r PhoenixReply
	res := c.p.must(tb, "channel.leave", map[string]any{"client": c.Socket.Name, "channel": c.Name})
	json.Unmarshal(res, &r)
	return r
}

// PhoenixChannelInfo is a channel's state in phoenix.js.
type PhoenixChannelInfo struct {
	Topic      string  `json:"topic"`
	State      string  `json:"state"`
	JoinedOnce bool    `json:"joinedOnce"`
	JoinRef    *string `json:"joinRef"`
}

// Info returns the channel's state and current join ref.
func (c *PhoenixChannel) Info(tb testing.TB) PhoenixChannelInfo {
	tb.Helper()
	var info PhoenixChannelInfo
	json.Unmarshal(c.p.must(tb, "channel.state", map[string]any{"client": c.Socket.Name, "channel": c.Name}), &info)
	return info
}

// AwaitMessage waits for a message of event on the channel after mark
// that where (when not nil) accepts.
func (c *PhoenixChannel) AwaitMessage(tb testing.TB, timeout time.Duration, mark int, event string, where func(Event) bool) Event {
	tb.Helper()
	return c.p.Await(tb, timeout, Match{Kind: KindMessage, Client: c.Socket.Name, Channel: c.Name, After: mark,
		Desc: "event " + event, Where: func(e Event) bool { return MessageEvent(e) == event && (where == nil || where(e)) }})
}
