package proxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
)

// The app of these tests is the Phoenix framework's own JS client (npm
// phoenix 1.8.17, run by testdata/realtimejs/phoenix.mjs under Node 22),
// the client Supabase's is derived from, connected through the proxy to
// the embedded server with the apps model (registry/apps) as the proxy's
// Observer. It shows what phoenix.js does that realtime-js does not (its
// ArrayBuffer pushes, kind-0 binary frames, and the kind-2 broadcasts
// they become; its own retry ladders) relayed unchanged and modelled.

// The delays phoenix.js 1.8.17 waits (socket.js): reconnectAfterMs
// [10, 50, 100, 150, 200, 250, 500, 1000, 2000] then 5000, the try count
// reset when a socket opens; rejoinAfterMs [1000, 2000, 5000] then
// 10000, reset when a join succeeds.
var (
	phxReconnect = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	phxRejoin    = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}
)

// startPhoenix starts the phoenix.js driver of a test, which fails if
// phoenix.js threw anything nobody caught (a frame it could not decode).
func startPhoenix(t *testing.T) *jsharness.Phoenix {
	t.Helper()
	ph := jsharness.StartPhoenix(t)
	t.Cleanup(func() {
		for _, ev := range ph.Events(jsharness.Match{Kind: jsharness.KindUncaught}) {
			t.Errorf("uncaught exception in the phoenix driver: %s", ev.Raw)
		}
	})
	return ph
}

// phxEnv is a phoenix.js app through a proxy whose Observer is an apps
// model, with its socket connected and one channel joined.
type phxEnv struct {
	*modelEnv
	ph *jsharness.Phoenix
	s  *jsharness.PhoenixSocket
	ch *jsharness.PhoenixChannel
}

// phxTopic is the channel every phxEnv joins.
const phxTopic = "realtime:room1"

func newPhxEnv(t *testing.T, srv *servertest.Server, ph *jsharness.Phoenix, o jsharness.PhoenixOptions) *phxEnv {
	t.Helper()
	e := &phxEnv{modelEnv: newModelEnv(t, srv, ph.Driver, proxy.Config{}), ph: ph}
	o.APIKey = e.key
	name := "phx-" + strings.ReplaceAll(t.Name(), "/", "-")
	e.s = ph.NewSocket(t, name, jsharness.Endpoint(e.url), o)
	// Before the proxy goes: a socket left reconnecting to a closed port
	// would go on in the shared driver.
	t.Cleanup(func() { e.s.Disconnect(t) })
	if !strings.HasPrefix(e.s.EndPointURL, jsharness.Endpoint(e.url)+"/websocket?") {
		t.Fatalf("phoenix.js connects to %s, want the proxy %s", e.s.EndPointURL, e.url)
	}
	e.ch = e.join(t, "room", phxTopic)
	e.waitModel(t, "room1 joined on socket 1", func(s apps.Snapshot) bool {
		return len(s.Sockets) == 1 && channelStatus(s.Sockets[0], phxTopic) == apps.StatusJoined
	})
	return e
}

// phxConfig is the join config of the channels: broadcast self and ack,
// presence with key.
func phxConfig(key string) map[string]any {
	return map[string]any{"config": map[string]any{
		"broadcast": map[string]any{"self": true, "ack": true},
		"presence":  map[string]any{"key": key, "enabled": true},
		"private":   false,
	}}
}

// join makes channel name of topic (with presence, bound to broadcast)
// and waits for its join's ok.
func (e *phxEnv) join(t *testing.T, name, topic string) *jsharness.PhoenixChannel {
	t.Helper()
	ch := e.s.Channel(t, name, topic, phxConfig("k-"+name), true).On(t, "broadcast")
	mark := e.ph.Mark()
	ch.Join(t)
	ch.AwaitJoin(t, slow, mark, "ok")
	return ch
}

// sameFrames checks that every frame the app sent reached the proxy as
// a Frame from the app with the same type and bytes, in order, and that
// every Frame to the app is what the app received (on a socket no fault
// broke). It waits for the two sides to have as many.
func (e *phxEnv) sameFrames(t *testing.T) {
	t.Helper()
	for _, dir := range []proxy.Direction{proxy.FromApp, proxy.ToApp} {
		side := "out"
		if dir == proxy.ToApp {
			side = "in"
		}
		var app []jsharness.Event
		var got []proxy.Frame
		deadline := time.Now().Add(quick)
		for {
			app = e.ph.Events(jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: side})
			got = e.rec.framesOf(dir)
			if len(app) == len(got) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(app) != len(got) {
			t.Errorf("%s: the app has %d frames, the proxy relayed %d", dir, len(app), len(got))
		}
		for i := range min(len(app), len(got)) {
			if app[i].Binary != got[i].Binary || !bytes.Equal(app[i].Bytes(), got[i].Data) {
				t.Errorf("%s frame %d: the app's (binary %v) %q, relayed (binary %v) %q", dir, i, app[i].Binary, app[i].Bytes(), got[i].Binary, got[i].Data)
			}
		}
	}
}

// messages returns the model's messages on topic of s with event ev.
func messages(s apps.Socket, topic, ev string) []apps.Message {
	c, _ := channelOf(s, topic)
	var out []apps.Message
	for _, m := range c.Messages {
		if m.Event == ev {
			out = append(out, m)
		}
	}
	return out
}

// TestPhoenixJSThroughProxy: phoenix.js joins, broadcasts JSON and an
// ArrayBuffer (a kind-0 frame, whose self broadcast comes back as a
// kind-2 frame), tracks presence, heartbeats and leaves through the
// proxy; every frame is relayed unchanged and the model shows each.
func TestPhoenixJSThroughProxy(t *testing.T) {
	srv := servertest.New(t)
	ph := startPhoenix(t)
	e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{HeartbeatIntervalMs: 300})

	snap := e.m.Snapshot()
	so := snap.Sockets[0]
	c, _ := channelOf(so, phxTopic)
	want := apps.JoinConfig{BroadcastSelf: true, BroadcastAck: true, PresenceKey: "k-room", PresenceEnabled: true}
	if so.Vsn != "2.0.0" || so.Token.Role != "anon" || c.Private || !equalConfig(c.Config, want) ||
		len(c.Attempts) != 1 || c.Attempts[0].Outcome != "ok" || c.Attempts[0].Ref != *e.ch.Info(t).JoinRef {
		t.Fatalf("model: socket vsn %s role %s, channel %+v; want the join config %+v and the app's join ref %s", so.Vsn, so.Token.Role, c, want, *e.ch.Info(t).JoinRef)
	}

	// A JSON broadcast: acked, and received back (self).
	mark := ph.Mark()
	if r := e.ch.Push(t, "broadcast", map[string]any{"type": "broadcast", "event": "from-phx", "payload": map[string]any{"x": 1}}); r.Status != "ok" {
		t.Errorf("JSON broadcast ack %s %s", r.Status, r.Response)
	}
	e.ch.AwaitMessage(t, quick, mark, "broadcast", func(ev jsharness.Event) bool { return bytes.Contains(ev.Payload, []byte("from-phx")) })

	// An ArrayBuffer: phoenix.js sends a kind-0 push, acked; the self
	// broadcast is Phoenix's kind-2 frame, which phoenix.js decodes.
	blob := []byte{0, 1, 2, 0xfe, 0xff}
	mark = ph.Mark()
	if r := e.ch.Push(t, "broadcast", jsharness.Base64(blob)); r.Status != "ok" {
		t.Errorf("binary push ack %s %s", r.Status, r.Response)
	}
	out := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", After: mark, Desc: "binary",
		Where: func(ev jsharness.Event) bool { return ev.Binary }})
	if b := out.Bytes(); len(b) == 0 || b[0] != protocol.KindPush {
		t.Errorf("phoenix.js sent % x, want a kind-0 push", b)
	}
	got := e.ch.AwaitMessage(t, quick, mark, "broadcast", func(ev jsharness.Event) bool { return ev.Binary })
	if b, err := jsharness.DecodeBase64(got.Payload); err != nil || !bytes.Equal(b, blob) {
		t.Errorf("phoenix.js got %s (%v), want % x", got.Payload, err, blob)
	}
	in := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "in", After: mark, Desc: "binary",
		Where: func(ev jsharness.Event) bool { return ev.Binary }})

	// Presence: phoenix's Presence sees its own join.
	mark = ph.Mark()
	if r := e.ch.Push(t, "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"name": "p"}}); r.Status != "ok" {
		t.Errorf("track %s %s", r.Status, r.Response)
	}
	ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindPresence, Client: e.s.Name, After: mark, Desc: "join of k-room",
		Where: func(ev jsharness.Event) bool {
			return ev.UserEvent() == "join" && bytes.Contains(ev.Payload, []byte(`"key":"k-room"`))
		}})

	snap = e.waitModel(t, "presence, both broadcasts back and a heartbeat", func(s apps.Snapshot) bool {
		c, _ := channelOf(s.Sockets[0], phxTopic)
		return len(c.Presence) == 1 && len(messages(s.Sockets[0], phxTopic, "broadcast")) == 4 && s.Sockets[0].Heartbeats > 0
	})
	so = snap.Sockets[0]
	c, _ = channelOf(so, phxTopic)
	if p := c.Presence[0]; p.Key != "k-room" || len(p.Metas) != 1 || !strings.Contains(p.Metas[0].JSON, `"name":"p"`) || p.Metas[0].Ref == "" || c.PresenceJoins != 1 {
		t.Errorf("model: presence %+v (%d joins), want k-room with the meta name p", c.Presence, c.PresenceJoins)
	}
	bc := messages(so, phxTopic, "broadcast")
	wantMsgs := []apps.Message{
		{Dir: "app->upstream", UserEvent: "from-phx", Payload: `{"x":1}`},
		{Dir: "upstream->app", UserEvent: "from-phx", Payload: `{"x":1}`},
		{Dir: "app->upstream", Payload: "00 01 02 fe ff", Binary: true, Bytes: len(out.Bytes())},
		{Dir: "upstream->app", Payload: "00 01 02 fe ff", Binary: true, Bytes: len(in.Bytes())},
	}
	for i, w := range wantMsgs {
		m := bc[i]
		if m.Dir != w.Dir || m.UserEvent != w.UserEvent || m.Payload != w.Payload || m.Binary != w.Binary || (w.Bytes != 0 && m.Bytes != w.Bytes) {
			t.Errorf("model: broadcast %d %+v, want %+v", i, m, w)
		}
	}
	if so.HeartbeatRTT <= 0 || so.Undecodable != 0 {
		t.Errorf("model: heartbeat round trip %v, %d undecodable frames", so.HeartbeatRTT, so.Undecodable)
	}
	// The app_message events say so too.
	var binEvents int
	for _, ev := range e.events(apps.TypeMessage) {
		if ev.Binary && ev.Payload == "00 01 02 fe ff" && ev.Event == protocol.EventBroadcast {
			binEvents++
		}
	}
	if binEvents != 2 {
		t.Errorf("model: %d binary app_message events, want 2", binEvents)
	}

	// phoenix.js leaves with its join ref: left.
	if r := e.ch.Leave(t); r.Status != "ok" {
		t.Errorf("leave %s %s", r.Status, r.Response)
	}
	e.waitModel(t, "room1 left", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], phxTopic) == apps.StatusLeft })
	e.sameFrames(t)
}

// equalConfig compares join configs without bindings.
func equalConfig(a, b apps.JoinConfig) bool {
	return a.BroadcastSelf == b.BroadcastSelf && a.BroadcastAck == b.BroadcastAck &&
		a.PresenceKey == b.PresenceKey && a.PresenceEnabled == b.PresenceEnabled && len(a.PostgresChanges) == len(b.PostgresChanges)
}

// TestPhoenixJSV1: phoenix.js on vsn 1.0.0 (JSON objects) through the
// proxy: the model decodes its socket as 1.0.0.
func TestPhoenixJSV1(t *testing.T) {
	srv := servertest.New(t)
	ph := startPhoenix(t)
	e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{Vsn: "1.0.0"})
	if !strings.Contains(e.s.EndPointURL, "vsn=1.0.0") {
		t.Errorf("phoenix.js URL %s", e.s.EndPointURL)
	}
	join := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", Event: protocol.EventJoin})
	if !strings.HasPrefix(join.Text, "{") {
		t.Errorf("phoenix.js's 1.0.0 join %s, want a JSON object", join.Text)
	}
	mark := ph.Mark()
	if r := e.ch.Push(t, "broadcast", map[string]any{"type": "broadcast", "event": "v1", "payload": map[string]any{"n": 1}}); r.Status != "ok" {
		t.Errorf("broadcast ack %s %s", r.Status, r.Response)
	}
	e.ch.AwaitMessage(t, quick, mark, "broadcast", nil)
	snap := e.waitModel(t, "the v1 broadcast both ways", func(s apps.Snapshot) bool {
		return len(messages(s.Sockets[0], phxTopic, "broadcast")) == 2
	})
	so := snap.Sockets[0]
	c, _ := channelOf(so, phxTopic)
	if so.Vsn != "1.0.0" || so.Undecodable != 0 || c.Config.PresenceKey != "k-room" || !c.Config.BroadcastSelf {
		t.Errorf("model: socket vsn %s (%d undecodable), channel config %+v", so.Vsn, so.Undecodable, c.Config)
	}
	for _, m := range messages(so, phxTopic, "broadcast") {
		if m.UserEvent != "v1" || m.Payload != `{"n":1}` {
			t.Errorf("model: broadcast %+v", m)
		}
	}
	e.sameFrames(t)
}

// TestPhoenixJSFaults: what phoenix.js does when the proxy breaks
// things, and what the model shows of it.
func TestPhoenixJSFaults(t *testing.T) {
	srv := servertest.New(t)
	ph := startPhoenix(t)

	t.Run("drop", func(t *testing.T) {
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{})
		for n := 1; n <= 2; n++ {
			mark := ph.Mark()
			if err := e.p.Drop(0); err != nil {
				t.Fatal(err)
			}
			closed := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.s.Name, State: "close", After: mark})
			if closed.Code != 1006 {
				t.Errorf("the app's socket closed %d, want 1006", closed.Code)
			}
			ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindChannelError, Client: e.s.Name, After: mark})
			opened := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.s.Name, State: "open", After: closed.Seq})
			e.ch.AwaitJoin(t, quick, opened.Seq, "ok")
			old, cur := e.reconnected(t, n)
			if old.ClosedBy != "proxy" || old.CloseCode != 1006 || cur.Attempt != n+1 {
				t.Errorf("model: socket %d closed by %s %d, the next attempt %d; want proxy 1006 and attempt %d", old.ID, old.ClosedBy, old.CloseCode, cur.Attempt, n+1)
			}
			// The first step of phoenix.js's ladder each time: its try
			// count restarts when a socket opens. (The tolerance tells
			// it from realtime-js's 1 s, not from phoenix's next
			// steps, 50 and 100 ms.)
			e.reconnectDelay(t, e.s.Name, mark, cur, phxReconnect[0])
		}
		if f := e.applied(proxy.FaultDrop); len(f) != 2 {
			t.Errorf("model: drop faults %+v", f)
		}
	})

	t.Run("close", func(t *testing.T) {
		// phoenix.js reconnects after any close it did not make, 1000
		// included.
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{})
		mark := ph.Mark()
		if err := e.p.CloseSocket(0, 4001, "fault test"); err != nil {
			t.Fatal(err)
		}
		closed := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.s.Name, State: "close", After: mark})
		if closed.Code != 4001 || closed.Reason != "fault test" {
			t.Errorf("the app's socket closed %d %q, want 4001 fault test", closed.Code, closed.Reason)
		}
		e.ch.AwaitJoin(t, slow, closed.Seq, "ok")
		old, cur := e.reconnected(t, 1)
		if old.ClosedBy != "proxy" || old.CloseCode != 4001 || old.CloseReason != "fault test" {
			t.Errorf("model: socket 1 closed by %s %d %q, want proxy 4001 fault test", old.ClosedBy, old.CloseCode, old.CloseReason)
		}
		e.reconnectDelay(t, e.s.Name, mark, cur, phxReconnect[0])
	})

	t.Run("freeze", func(t *testing.T) {
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{HeartbeatIntervalMs: 600})
		mark := ph.Mark()
		if err := e.p.Freeze(0, 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// The heartbeat goes unanswered: at the next one phoenix.js
		// errors its channels, closes with 1000 and, once its teardown
		// gave the close up to 1.5 s, reconnects on a new socket.
		errEv := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindChannelError, Client: e.s.Name, After: mark})
		if string(errEv.Payload) != `{"source":"transport","reason":"heartbeat_timeout"}` {
			t.Errorf("onError %s, want the transport's heartbeat_timeout", errEv.Payload)
		}
		closing := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindSocket, Client: e.s.Name, State: "closing", After: mark})
		if closing.Code != 1000 || closing.Reason != "heartbeat timeout" {
			t.Errorf("the app closed %d %q, want 1000 heartbeat timeout", closing.Code, closing.Reason)
		}
		opened := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.s.Name, State: "open", After: closing.Seq})
		e.ch.AwaitJoin(t, quick, opened.Seq, "ok")
		old, cur := e.reconnected(t, 1)
		// The app's close reached the proxy when the freeze ended.
		if old.ClosedBy != "app" || old.CloseCode != 1000 || old.CloseReason != "heartbeat timeout" {
			t.Errorf("model: socket 1 closed by %s %d %q, want app 1000 heartbeat timeout", old.ClosedBy, old.CloseCode, old.CloseReason)
		}
		if cur.ReconnectDelay < 0 || cur.ReconnectDelay > 1500*time.Millisecond+delayTolerance {
			t.Errorf("model: reconnect delay %v", cur.ReconnectDelay)
		}
		if f := e.applied(proxy.FaultFreeze); len(f) != 1 || f[0].Socket != old.ID {
			t.Errorf("model: freeze faults %+v", f)
		}
	})

	t.Run("freeze-long", func(t *testing.T) {
		// A freeze longer than phoenix.js waits: it gives up on the
		// frozen socket and connects again while the proxy still holds
		// the old one (its close is relayed when the freeze ends). The
		// model links the new socket to the frozen one, its delay from
		// the freeze's start.
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{HeartbeatIntervalMs: 600})
		mark := ph.Mark()
		start := time.Now()
		if err := e.p.Freeze(0, 6*time.Second); err != nil {
			t.Fatal(err)
		}
		connecting := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.s.Name, State: "connecting", After: mark})
		e.ch.AwaitJoin(t, quick, connecting.Seq, "ok")
		snap := e.waitModel(t, "room1 joined on socket 2", func(s apps.Snapshot) bool {
			return len(s.Sockets) == 2 && channelStatus(s.Sockets[1], phxTopic) == apps.StatusJoined
		})
		old, cur := snap.Sockets[0], snap.Sockets[1]
		if !old.Closed.IsZero() || time.Since(start) >= 6*time.Second {
			t.Fatalf("socket 1 closed before the app rejoined on socket 2 (%v after the freeze): no test", time.Since(start))
		}
		if cur.Attempt != 2 || cur.Previous != old.ID || cur.Connection != old.Connection {
			t.Errorf("model: socket %d is attempt %d of connection %d after %d; want attempt 2 of %d after %d",
				cur.ID, cur.Attempt, cur.Connection, cur.Previous, old.Connection, old.ID)
		}
		checkDelay(t, "the model's reconnect delay from the freeze", cur.ReconnectDelay, connecting.Time.Sub(start))
		snap = e.waitModel(t, "socket 1 closed after the freeze", func(s apps.Snapshot) bool { return !s.Sockets[0].Closed.IsZero() })
		if old = snap.Sockets[0]; old.ClosedBy != "app" || old.CloseCode != 1000 || old.CloseReason != "heartbeat timeout" {
			t.Errorf("model: socket 1 closed by %s %d %q, want app 1000 heartbeat timeout", old.ClosedBy, old.CloseCode, old.CloseReason)
		}
		if s2 := snap.Sockets[1]; s2.Attempt != 2 || s2.Previous != old.ID {
			t.Errorf("model: socket 2 relinked after the close: %+v", s2)
		}
	})

	t.Run("join-timeout", func(t *testing.T) {
		// The join reply dropped: phoenix.js's join times out, it
		// leaves and rejoins after its first rejoin step; the model
		// counts that delay from the leave.
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{TimeoutMs: 800})
		e.p.DropMessages("room3", 1)
		ch := e.s.Channel(t, "room3", "realtime:room3", phxConfig("k-room3"), false)
		mark := ph.Mark()
		ch.Join(t)
		to := ch.AwaitJoin(t, quick, mark, "timeout")
		leave := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", Event: protocol.EventLeave, Topic: "realtime:room3", After: mark})
		rejoin := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", Event: protocol.EventJoin, Topic: "realtime:room3", After: to.Seq})
		checkDelay(t, "the app's rejoin after the timeout", rejoin.Time.Sub(leave.Time), phxRejoin[0])
		ch.AwaitJoin(t, quick, to.Seq, "ok")
		snap := e.waitModel(t, "room3 joined", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], "room3") == apps.StatusJoined })
		c, _ := channelOf(snap.Sockets[0], "room3")
		if len(c.Attempts) != 2 || c.Attempts[0].Outcome != "timeout" || c.Attempts[1].Outcome != "ok" {
			t.Fatalf("model: room3 attempts\n%s", describe(snap))
		}
		checkDelay(t, "the model's rejoin delay after the timeout", c.Attempts[1].Delay, phxRejoin[0])
	})

	t.Run("expire-token", func(t *testing.T) {
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{})
		e.ch.On(t, "system")
		mark := ph.Mark()
		if err := e.p.ExpireToken(0); err != nil {
			t.Fatal(err)
		}
		sys := e.ch.AwaitMessage(t, quick, mark, "system", nil)
		if !bytes.Contains(sys.Payload, []byte("Token has expired 0 seconds ago")) {
			t.Errorf("system %s", sys.Payload)
		}
		ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindChannelClose, Client: e.s.Name, After: sys.Seq})
		snap := e.waitModel(t, "room1 closed", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], phxTopic) == apps.StatusClosed })
		if c, _ := channelOf(snap.Sockets[0], phxTopic); c.Reason != "Token has expired 0 seconds ago" || !snap.Sockets[0].Closed.IsZero() {
			t.Errorf("model: room1 closed %q (socket closed %v), want the system message's reason on an open socket", c.Reason, snap.Sockets[0].Closed)
		}
	})

	t.Run("kick", func(t *testing.T) {
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{})
		j1 := *e.ch.Info(t).JoinRef
		mark := ph.Mark()
		if err := e.p.Kick(0, "room1", false); err != nil {
			t.Fatal(err)
		}
		errEv := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindChannelError, Client: e.s.Name, After: mark})
		if string(errEv.Payload) != `{"reason":"channel_crash"}` {
			t.Errorf("onError %s, want channel_crash", errEv.Payload)
		}
		rejoin := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", Event: protocol.EventJoin, After: errEv.Seq})
		checkDelay(t, "the app's rejoin after phx_error", rejoin.Time.Sub(errEv.Time), phxRejoin[0])
		e.ch.AwaitJoin(t, quick, errEv.Seq, "ok")
		j2 := *e.ch.Info(t).JoinRef
		if j2 == j1 {
			t.Errorf("the rejoin kept join ref %s", j1)
		}
		snap := e.waitModel(t, "room1 rejoined", func(s apps.Snapshot) bool {
			c, _ := channelOf(s.Sockets[0], phxTopic)
			return c.Status == apps.StatusJoined && len(c.Attempts) == 2
		})
		c, _ := channelOf(snap.Sockets[0], phxTopic)
		if a := c.Attempts[1]; a.Ref != j2 || a.Outcome != "ok" {
			t.Errorf("model: rejoin %+v, want ref %s ok", a, j2)
		}
		checkDelay(t, "the model's rejoin delay after phx_error", c.Attempts[1].Delay, phxRejoin[0])
		if !hasChannelEvent(e.events(apps.TypeChannel), phxTopic, apps.StatusErrored, "phx_error") {
			t.Error("model: no errored phx_error event")
		}

		// Kicked with phx_close: phoenix.js lets the channel go.
		mark = ph.Mark()
		if err := e.p.Kick(0, "room1", true); err != nil {
			t.Fatal(err)
		}
		ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindChannelClose, Client: e.s.Name, After: mark})
		snap = e.waitModel(t, "room1 closed", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], phxTopic) == apps.StatusClosed })
		if c, _ := channelOf(snap.Sockets[0], phxTopic); c.Reason != "phx_close" || len(c.Attempts) != 2 {
			t.Errorf("model: room1 closed %q with %d attempts, want phx_close and no rejoin", c.Reason, len(c.Attempts))
		}
		if st := e.ch.Info(t).State; st != "closed" {
			t.Errorf("phoenix.js channel %s after phx_close", st)
		}
		if f := e.applied(proxy.FaultKick); len(f) != 2 || f[0].Reason != "phx_error" || f[1].Reason != "phx_close" {
			t.Errorf("model: kick faults %+v", f)
		}
	})

	t.Run("reject-joins", func(t *testing.T) {
		e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{})
		const reason = "Unauthorized: You do not have permissions to read from this Channel topic: room2"
		e.p.RejectJoins("room2", 2, reason)
		ch := e.s.Channel(t, "room2", "realtime:room2", phxConfig("k-room2"), false)
		mark := ph.Mark()
		ch.Join(t)
		// Each refusal reaches the join's error callback with the
		// reason; phoenix.js rejoins along its ladder, 1 s then 2 s.
		prev := mark
		for i := range 2 {
			st := ch.AwaitJoin(t, quick+phxRejoin[i], prev, "error")
			var resp struct {
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal(st.Payload, &resp); err != nil || resp.Reason != reason {
				t.Errorf("join error %d: %s, want the reason %q", i+1, st.Payload, reason)
			}
			next := ph.Await(t, slow, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", Event: protocol.EventJoin, Topic: "realtime:room2", After: st.Seq})
			checkDelay(t, fmt.Sprintf("the app's rejoin %d", i+1), next.Time.Sub(st.Time), phxRejoin[i])
			prev = st.Seq
		}
		ch.AwaitJoin(t, slow, prev, "ok")
		snap := e.waitModel(t, "room2 joined", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], "room2") == apps.StatusJoined })
		c, _ := channelOf(snap.Sockets[0], "room2")
		if len(c.Attempts) != 3 {
			t.Fatalf("model: room2 attempts\n%s", describe(snap))
		}
		for i, a := range c.Attempts {
			wantOutcome, wantReason := "error", reason
			if i == 2 {
				wantOutcome, wantReason = "ok", ""
			}
			if a.Outcome != wantOutcome || a.Reason != wantReason {
				t.Errorf("model: attempt %d %s %q, want %s %q", i+1, a.Outcome, a.Reason, wantOutcome, wantReason)
			}
			if i > 0 {
				checkDelay(t, fmt.Sprintf("the model's rejoin delay %d", i), a.Delay, phxRejoin[i-1])
			}
		}
		n := 0
		for _, ev := range e.events(apps.TypeChannel) {
			if ev.Topic == "realtime:room2" && ev.Status == apps.StatusErrored && ev.Reason == reason {
				n++
			}
		}
		if n != 2 {
			t.Errorf("model: %d errored events with the reason, want 2", n)
		}
		if f := e.applied(proxy.FaultRejectJoin); len(f) != 2 {
			t.Errorf("model: reject faults %+v", f)
		}
	})
}

// TestPhoenixJSDuplicateChannel: a second phoenix.js channel of a topic
// the socket holds makes phoenix.js leave the first (its own join ref)
// before it joins: the topic is never held twice, so no duplicate is
// flagged, and the old join's phx_close does not close the new one.
func TestPhoenixJSDuplicateChannel(t *testing.T) {
	srv := servertest.New(t)
	ph := startPhoenix(t)
	e := newPhxEnv(t, srv, ph, jsharness.PhoenixOptions{})
	j1 := *e.ch.Info(t).JoinRef
	mark := ph.Mark()
	second := e.join(t, "again", phxTopic)
	leave := ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "out", Event: protocol.EventLeave, After: mark})
	if m, err := leave.Message(); err != nil || m.JoinRef != j1 {
		t.Errorf("phoenix.js left with %+v (%v), want the first join's ref %s", m, err, j1)
	}
	ph.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.s.Name, Dir: "in", Event: protocol.EventClose, After: mark})
	if st := e.ch.Info(t).State; st != "closed" {
		t.Errorf("the first channel %s", st)
	}
	j2 := *second.Info(t).JoinRef
	snap := e.waitModel(t, "room1 joined again", func(s apps.Snapshot) bool {
		c, _ := channelOf(s.Sockets[0], phxTopic)
		return c.Status == apps.StatusJoined && len(c.Attempts) == 2
	})
	// The frames after the join reply (the old join's phx_close among
	// them) have been modelled once a broadcast sent after them has.
	if r := second.Push(t, "broadcast", map[string]any{"type": "broadcast", "event": "after", "payload": map[string]any{}}); r.Status != "ok" {
		t.Fatalf("broadcast %s", r.Status)
	}
	snap = e.waitModel(t, "the broadcast back", func(s apps.Snapshot) bool {
		for _, m := range messages(s.Sockets[0], phxTopic, "broadcast") {
			if m.UserEvent == "after" && m.Dir == "upstream->app" {
				return true
			}
		}
		return false
	})
	c, _ := channelOf(snap.Sockets[0], phxTopic)
	if c.Status != apps.StatusJoined || c.Attempts[1].Ref != j2 || c.Attempts[1].Outcome != "ok" {
		t.Errorf("model: room1 %s, attempts\n%s", c.Status, describe(snap))
	}
	for _, f := range snap.Flags {
		t.Errorf("model: flagged %s: %s", f.Kind, f.Text)
	}
	for _, ev := range e.events(apps.TypeChannel) {
		if ev.Status == apps.StatusClosed || ev.Status == apps.StatusErrored {
			t.Errorf("model: room1 %s %q on the way", ev.Status, ev.Reason)
		}
	}
}
