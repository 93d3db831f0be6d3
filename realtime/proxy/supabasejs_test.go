package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
)

// The app of these tests is @supabase/supabase-js (2.119.2, with the
// realtime-js it bundles) under Node 22, made as an app makes it
// (createClient(SUPABASE_URL, key, {realtime})), connected through the
// proxy to the embedded server, with the apps model (registry/apps) as
// the proxy's Observer. For each fault the test shows what the app
// reports (its subscribe statuses, its sockets) and what the model shows
// (sockets linked as attempts of one connection with the reconnect delay,
// join attempts with the delays of the app's rejoin ladder, statuses and
// reasons, the fault events).

// The delays realtime-js 2.119.2 waits, from its source
// (node_modules/@supabase/supabase-js/node_modules/@supabase/realtime-js
// and the @supabase/phoenix 0.4.5 it runs on): reconnectAfterMs defaults
// to RECONNECT_INTERVALS [1000, 2000, 5000, 10000] (RealtimeClient.ts,
// the try count is reset when a socket opens), and a channel's
// rejoinAfterMs, which realtime-js does not expose, to phoenix's
// [1000, 2000, 5000] then 10000 (socket.js; reset when the join
// succeeds).
var (
	sbReconnect = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}
	sbRejoin    = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}
)

// delayTolerance is how late a measured delay may be: the app's timers,
// teardown and connect on a loaded machine. It is below the gap between
// two steps of the ladders, so a wrong step fails.
const delayTolerance = 700 * time.Millisecond

// checkDelay fails t unless got is want, late by at most delayTolerance
// (and early by at most 10 ms: timers and the two processes' clocks).
func checkDelay(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got < want-10*time.Millisecond || got > want+delayTolerance {
		t.Errorf("%s: %v, want %v (+%v)", what, got, want, delayTolerance)
	}
}

// modelEnv is a proxy to the embedded server whose Observer is an apps
// model (and, through a tee, a recorder of every call), and the driver
// of the app behind it.
type modelEnv struct {
	p   *proxy.Proxy
	m   *apps.Model
	rec *recorder
	sub *apps.Subscription
	evs []apps.Event // the model's events drained so far
	d   *jsharness.Driver
	url string // the proxy's, the app's SUPABASE_URL
	key string
}

// teeObserver is the model as the proxy's Observer (its Fault and REST
// calls too), with each Open, Frame and Closed also kept by rec.
type teeObserver struct {
	*apps.Model
	rec *recorder
}

func (o teeObserver) Open(c proxy.ConnInfo) { o.rec.Open(c); o.Model.Open(c) }
func (o teeObserver) Frame(f proxy.Frame)   { o.rec.Frame(f); o.Model.Frame(f) }
func (o teeObserver) Closed(c proxy.Closed) { o.rec.Closed(c); o.Model.Closed(c) }

func newModelEnv(t *testing.T, srv *servertest.Server, d *jsharness.Driver, cfg proxy.Config) *modelEnv {
	t.Helper()
	m := apps.New(apps.Options{})
	sub := m.Subscribe(1 << 14)
	t.Cleanup(sub.Close)
	rec := newRecorder()
	cfg.Upstream, cfg.Observer = srv.URL, teeObserver{Model: m, rec: rec}
	p, hs := startProxy(t, cfg)
	return &modelEnv{p: p, m: m, rec: rec, sub: sub, d: d, url: hs.URL, key: srv.AnonKey()}
}

// sbEnv is a supabase-js app through a proxy whose Observer is an apps
// model, with one channel subscribed.
type sbEnv struct {
	*modelEnv
	cl *jsharness.Client
	ch *jsharness.Channel
}

func newSBEnv(t *testing.T, srv *servertest.Server, d *jsharness.Driver, opts jsharness.ClientOptions, cfg proxy.Config) *sbEnv {
	t.Helper()
	e := &sbEnv{modelEnv: newModelEnv(t, srv, d, cfg)}
	e.cl = e.client(t, "", opts)
	e.ch = e.subscribe(t, "room", "room1")
	e.waitModel(t, "room1 joined on socket 1", func(s apps.Snapshot) bool {
		return len(s.Sockets) == 1 && channelStatus(s.Sockets[0], "room1") == apps.StatusJoined
	})
	return e
}

// client makes a supabase-js app of the proxy named after the test and
// suffix.
func (e *sbEnv) client(t *testing.T, suffix string, opts jsharness.ClientOptions) *jsharness.Client {
	t.Helper()
	opts.Lib, opts.APIKey = jsharness.LibSupabaseJS, e.key
	cl := e.d.NewClient(t, "sb-"+strings.ReplaceAll(t.Name(), "/", "-")+suffix, e.url, opts)
	// Before the proxy goes: an app left reconnecting to a closed port
	// would go on in the shared driver.
	t.Cleanup(func() { cl.Disconnect(t, 1000, "test done") })
	if !strings.HasPrefix(cl.EndpointURL, jsharness.Endpoint(e.url)+"/websocket?") {
		t.Fatalf("supabase-js connects to %s, want the proxy %s", cl.EndpointURL, e.url)
	}
	return cl
}

// subscribe makes a channel with broadcast self, listening to every
// broadcast, and waits for SUBSCRIBED.
func (e *sbEnv) subscribe(t *testing.T, name, topic string) *jsharness.Channel {
	t.Helper()
	ch := e.cl.Channel(t, name, topic, map[string]any{"broadcast": map[string]any{"self": true}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	mark := e.d.Mark()
	ch.Subscribe(t, 0)
	ch.AwaitStatus(t, slow, mark, "SUBSCRIBED")
	return ch
}

// waitModel polls the model's snapshot until cond holds.
func (e *modelEnv) waitModel(t *testing.T, what string, cond func(apps.Snapshot) bool) apps.Snapshot {
	t.Helper()
	deadline := time.Now().Add(slow)
	for {
		s := e.m.Snapshot()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("model: no %s within %v; snapshot:\n%s\napp events:\n%s", what, slow, describe(s), e.d.Dump(60))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// events drains the model's events and returns those of typ so far.
func (e *modelEnv) events(typ apps.EventType) []apps.Event {
	for {
		select {
		case ev := <-e.sub.Events():
			e.evs = append(e.evs, ev)
			continue
		default:
		}
		break
	}
	var out []apps.Event
	for _, ev := range e.evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// applied returns the app_fault events of kind that acted (not armed).
func (e *modelEnv) applied(kind string) []apps.Event {
	var out []apps.Event
	for _, ev := range e.events(apps.TypeFault) {
		if ev.Action == kind && ev.Text != "armed" {
			out = append(out, ev)
		}
	}
	return out
}

// channelOf returns the channel topic ("room1" or "realtime:room1") of s.
func channelOf(s apps.Socket, topic string) (apps.Channel, bool) {
	if !strings.HasPrefix(topic, "realtime:") {
		topic = "realtime:" + topic
	}
	for _, c := range s.Channels {
		if c.Topic == topic {
			return c, true
		}
	}
	return apps.Channel{}, false
}

func channelStatus(s apps.Socket, topic string) apps.Status {
	c, _ := channelOf(s, topic)
	return c.Status
}

// describe renders the sockets, channels and attempts of a snapshot.
func describe(s apps.Snapshot) string {
	var sb strings.Builder
	for _, so := range s.Sockets {
		fmt.Fprintf(&sb, "socket %d attempt %d prev %d delay %v closed %v by %q %d %q\n", so.ID, so.Attempt, so.Previous, so.ReconnectDelay, !so.Closed.IsZero(), so.ClosedBy, so.CloseCode, so.CloseReason)
		for _, c := range so.Channels {
			fmt.Fprintf(&sb, "  %s %s %q to-app %d\n", c.Topic, c.Status, c.Reason, c.MessagesToApp)
			for _, a := range c.Attempts {
				fmt.Fprintf(&sb, "    join %s delay %v %s %q\n", a.Ref, a.Delay, a.Outcome, a.Reason)
			}
		}
	}
	return sb.String()
}

// reconnected waits until the app's next socket (after socket prev) has
// rejoined room1 and returns the two sockets; the model must link them.
func (e *modelEnv) reconnected(t *testing.T, prev int) (old, cur apps.Socket) {
	t.Helper()
	s := e.waitModel(t, "a reconnected socket with room1 joined", func(s apps.Snapshot) bool {
		return len(s.Sockets) > prev && channelStatus(s.Sockets[prev], "room1") == apps.StatusJoined
	})
	old, cur = s.Sockets[prev-1], s.Sockets[prev]
	if old.Closed.IsZero() {
		t.Errorf("model: socket %d still open", old.ID)
	}
	if c, _ := channelOf(old, "room1"); c.Status != apps.StatusClosed || c.Reason != "socket closed" {
		t.Errorf("model: room1 on the old socket %s %q, want closed (socket closed)", c.Status, c.Reason)
	}
	if cur.Attempt != old.Attempt+1 || cur.Previous != old.ID || cur.Connection != old.Connection {
		t.Errorf("model: socket %d is attempt %d of connection %d after %d; want attempt %d of %d after %d",
			cur.ID, cur.Attempt, cur.Connection, cur.Previous, old.Attempt+1, old.Connection, old.ID)
	}
	return old, cur
}

// reconnectDelay checks the app's delay from its socket's close (after
// mark) to its next connect, and the model's (close to open), against
// want.
func (e *modelEnv) reconnectDelay(t *testing.T, client string, mark int, cur apps.Socket, want time.Duration) {
	t.Helper()
	closed := e.d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: client, State: "close", After: mark})
	next := e.d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: client, State: "connecting", After: closed.Seq})
	checkDelay(t, "the app's reconnect delay", next.Time.Sub(closed.Time), want)
	checkDelay(t, "the model's reconnect delay", cur.ReconnectDelay, want)
}

func TestSupabaseJSFaults(t *testing.T) {
	srv := servertest.New(t)
	d := jsharness.Start(t)

	t.Run("drop", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{}, proxy.Config{})
		if e.cl.SupabaseJSVersion != jsharness.SupabaseJSVersion || e.cl.RealtimeJSVersion != jsharness.SupabaseJSVersion {
			t.Errorf("supabase-js %s with realtime-js %s", e.cl.SupabaseJSVersion, e.cl.RealtimeJSVersion)
		}
		mark := d.Mark()
		if err := e.p.Drop(0); err != nil {
			t.Fatal(err)
		}
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		if st.Error != "socket closed: 1006" {
			t.Errorf("CHANNEL_ERROR %q, want socket closed: 1006", st.Error)
		}
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		old, cur := e.reconnected(t, 1)
		if old.ClosedBy != "proxy" || old.CloseCode != 1006 {
			t.Errorf("model: socket 1 closed by %s %d, want proxy 1006", old.ClosedBy, old.CloseCode)
		}
		// The first step of the reconnect ladder.
		e.reconnectDelay(t, e.cl.Name, mark, cur, sbReconnect[0])
		if f := e.applied(proxy.FaultDrop); len(f) != 1 || f[0].Socket != old.ID {
			t.Errorf("model: drop faults %+v, want one on socket %d", f, old.ID)
		}
	})

	t.Run("close", func(t *testing.T) {
		// The app's own reconnect schedule (a realtime option of
		// createClient): the model measures it.
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{ReconnectAfterMs: []int{300}}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.CloseSocket(0, 4001, "fault test"); err != nil {
			t.Fatal(err)
		}
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		if st.Error != "socket closed: 4001 (fault test)" {
			t.Errorf("CHANNEL_ERROR %q, want socket closed: 4001 (fault test)", st.Error)
		}
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		old, cur := e.reconnected(t, 1)
		if old.ClosedBy != "proxy" || old.CloseCode != 4001 || old.CloseReason != "fault test" {
			t.Errorf("model: socket 1 closed by %s %d %q, want proxy 4001 fault test", old.ClosedBy, old.CloseCode, old.CloseReason)
		}
		e.reconnectDelay(t, e.cl.Name, mark, cur, 300*time.Millisecond)
		if f := e.applied(proxy.FaultClose); len(f) != 1 || f[0].Reason != "4001 fault test" {
			t.Errorf("model: close faults %+v", f)
		}
	})

	t.Run("freeze", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{HeartbeatIntervalMs: 600}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.Freeze(0, 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// A join during the freeze gets no answer: TIMED_OUT (its
		// timeout is shorter than the heartbeat's).
		frozen := e.cl.Channel(t, "frozen", "room-frozen", nil)
		frozen.Subscribe(t, 150)
		frozen.AwaitStatus(t, slow, mark, "TIMED_OUT")
		// The heartbeat goes unanswered: at the next one realtime-js
		// reports CHANNEL_ERROR "heartbeat timeout", closes with 1000 and
		// reconnects on a new socket, which is not frozen.
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		if st.Error != "heartbeat timeout" {
			t.Errorf("CHANNEL_ERROR %q, want heartbeat timeout", st.Error)
		}
		d.Await(t, quick, jsharness.Match{Kind: jsharness.KindHeartbeat, Client: e.cl.Name, Status: "timeout", After: mark})
		closing := d.Await(t, quick, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "closing", After: mark})
		if closing.Code != 1000 || closing.Reason != "heartbeat timeout" {
			t.Errorf("the app closed %d %q, want 1000 heartbeat timeout", closing.Code, closing.Reason)
		}
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		d.Await(t, slow, jsharness.Match{Kind: jsharness.KindStatus, Client: e.cl.Name, Channel: "frozen", Status: "SUBSCRIBED", After: mark})
		old, cur := e.reconnected(t, 1)
		// The app's close reached the proxy when the freeze ended.
		if old.ClosedBy != "app" || old.CloseCode != 1000 || old.CloseReason != "heartbeat timeout" {
			t.Errorf("model: socket 1 closed by %s %d %q, want app 1000 heartbeat timeout", old.ClosedBy, old.CloseCode, old.CloseReason)
		}
		// realtime-js schedules the reconnect (1 s) when its teardown
		// sees the socket closed, which it polls (150, 300, 450, 600 ms):
		// up to 1.5 s later than the close.
		if cur.ReconnectDelay < sbReconnect[0]-10*time.Millisecond || cur.ReconnectDelay > sbReconnect[0]+1500*time.Millisecond+delayTolerance {
			t.Errorf("model: reconnect delay %v, want %v to %v (+%v)", cur.ReconnectDelay, sbReconnect[0], sbReconnect[0]+1500*time.Millisecond, delayTolerance)
		}
		if c, ok := channelOf(cur, "room-frozen"); !ok || c.Status != apps.StatusJoined {
			t.Errorf("model: room-frozen on the new socket %+v", c)
		}
		if f := e.applied(proxy.FaultFreeze); len(f) != 1 || f[0].Socket != old.ID {
			t.Errorf("model: freeze faults %+v", f)
		}
	})

	t.Run("fail-connects", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{ReconnectAfterMs: []int{100}}, proxy.Config{})
		e.p.FailConnects(1)
		mark := d.Mark()
		if err := e.p.Drop(0); err != nil {
			t.Fatal(err)
		}
		e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		refused := d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "error", After: mark})
		if !strings.Contains(refused.Error, "non-101") {
			t.Errorf("refused upgrade: error %q", refused.Error)
		}
		// What realtime-js does under Node 22 after a refused upgrade:
		// nothing more. Node's WebSocket (undici 6.28) fires "error" but
		// never "close" for a failed handshake, whatever the answer (503
		// or 403, with a body or none, the connection closed or kept, a
		// TCP reset: tried), and stays CONNECTING; phoenix schedules its
		// reconnect only on close (onConnClose; onConnError does not),
		// and RealtimeClient.connect() returns at once while the socket
		// is "connecting". So the app neither retries nor can be told to
		// connect: ten steps of its 100 ms schedule pass without an
		// attempt, and the proxy refused exactly one upgrade.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if ev, err := d.WaitEvent(ctx, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "connecting", After: refused.Seq}); err == nil {
			t.Errorf("realtime-js retried after a refused upgrade (%s): Node's WebSocket now closes failed handshakes; update this test and the jsharness doc", ev)
		}
		if n := len(e.applied(proxy.FaultFailConnect)); n != 1 {
			t.Errorf("model: %d connects refused, want 1", n)
		}
		if st := e.cl.State(t); st.ConnectionState != "connecting" || st.IsConnected {
			t.Errorf("the app's state after a refused upgrade: %+v, want connecting", st)
		}
		e.cl.Connect(t) // a no-op while "connecting"
		if n := len(d.Events(jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "connecting", After: refused.Seq})); n != 0 {
			t.Errorf("connect() while connecting made %d sockets", n)
		}
		// Only a disconnect first recovers it: the app rejoins.
		mark = d.Mark()
		e.cl.Disconnect(t, 1000, "")
		e.cl.Connect(t)
		e.ch.AwaitStatus(t, slow, mark, "SUBSCRIBED")
		s := e.waitModel(t, "socket 2 with room1 joined", func(s apps.Snapshot) bool {
			return len(s.Sockets) == 2 && channelStatus(s.Sockets[1], "room1") == apps.StatusJoined
		})
		// The refused upgrade never was a socket: the model links the
		// new one to the dropped one, across the refusal.
		if s.Sockets[1].Attempt != 2 || s.Sockets[1].Previous != s.Sockets[0].ID {
			t.Errorf("model: socket 2 attempt %d after %d", s.Sockets[1].Attempt, s.Sockets[1].Previous)
		}
	})

	t.Run("reject-joins", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{}, proxy.Config{})
		const reason = "ChannelRateLimitReached: Too many channels"
		e.p.RejectJoins("room2", 2, reason)
		ch := e.cl.Channel(t, "other", "room2", nil)
		mark := d.Mark()
		ch.Subscribe(t, 0)
		st := ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		st2 := ch.AwaitStatus(t, slow, st.Seq, "CHANNEL_ERROR")
		ch.AwaitStatus(t, slow, st2.Seq, "SUBSCRIBED")
		for _, s := range []jsharness.Event{st, st2} {
			if s.Error != reason {
				t.Errorf("CHANNEL_ERROR %q, want %q", s.Error, reason)
			}
		}
		// The app's rejoin ladder, from its frames: each phx_join after a
		// refusal.
		joins := d.Events(jsharness.Match{Kind: jsharness.KindFrame, Client: e.cl.Name, Dir: "out", Event: "phx_join", Topic: "realtime:room2", After: mark})
		if len(joins) != 3 {
			t.Fatalf("the app sent %d joins of room2, want 3", len(joins))
		}
		checkDelay(t, "the app's first rejoin", joins[1].Time.Sub(st.Time), sbRejoin[0])
		checkDelay(t, "the app's second rejoin", joins[2].Time.Sub(st2.Time), sbRejoin[1])

		snap := e.waitModel(t, "room2 joined", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], "room2") == apps.StatusJoined })
		c, _ := channelOf(snap.Sockets[0], "room2")
		if len(c.Attempts) != 3 {
			t.Fatalf("model: %d attempts, want 3\n%s", len(c.Attempts), describe(snap))
		}
		for i, a := range c.Attempts[:2] {
			if a.Outcome != "error" || a.Reason != reason {
				t.Errorf("model: attempt %d %s %q, want error %q", i+1, a.Outcome, a.Reason, reason)
			}
		}
		if a := c.Attempts[2]; a.Outcome != "ok" {
			t.Errorf("model: attempt 3 %s", a.Outcome)
		}
		checkDelay(t, "the model's attempt 2 delay", c.Attempts[1].Delay, sbRejoin[0])
		checkDelay(t, "the model's attempt 3 delay", c.Attempts[2].Delay, sbRejoin[1])
		var errored int
		for _, ev := range e.events(apps.TypeChannel) {
			if ev.Topic == "realtime:room2" && ev.Status == apps.StatusErrored && ev.Reason == reason {
				errored++
			}
		}
		if errored != 2 {
			t.Errorf("model: %d errored events of room2 with the reason, want 2", errored)
		}
		if f := e.applied(proxy.FaultRejectJoin); len(f) != 2 || f[0].Topic != "realtime:room2" || f[0].Reason != reason {
			t.Errorf("model: reject faults %+v", f)
		}
		if len(snap.Flags) != 0 {
			t.Errorf("model: flags %+v", snap.Flags)
		}
	})

	t.Run("kick", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.Kick(0, "room1", false); err != nil {
			t.Fatal(err)
		}
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		join := d.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.cl.Name, Dir: "out", Event: "phx_join", After: st.Seq})
		checkDelay(t, "the app's rejoin", join.Time.Sub(st.Time), sbRejoin[0])
		snap := e.waitModel(t, "room1 rejoined", func(s apps.Snapshot) bool {
			c, _ := channelOf(s.Sockets[0], "room1")
			return len(c.Attempts) == 2 && c.Status == apps.StatusJoined
		})
		c, _ := channelOf(snap.Sockets[0], "room1")
		checkDelay(t, "the model's rejoin delay", c.Attempts[1].Delay, sbRejoin[0])
		// The model saw the phx_error: the rejoin is no duplicate join.
		if len(snap.Flags) != 0 {
			t.Errorf("model: flags %+v", snap.Flags)
		}
		if !hasChannelEvent(e.events(apps.TypeChannel), "realtime:room1", apps.StatusErrored, "phx_error") {
			t.Error("model: no errored (phx_error) event of room1")
		}
		// The rejoined channel works both ways.
		mark = d.Mark()
		if res := e.ch.Broadcast(t, "after", map[string]any{"x": 1}); res != "ok" {
			t.Errorf("broadcast: %s", res)
		}
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "after", After: mark})

		// Close mode: phx_close, and realtime-js lets the channel go.
		mark = d.Mark()
		if err := e.p.Kick(0, "room1", true); err != nil {
			t.Fatal(err)
		}
		e.ch.AwaitStatus(t, quick, mark, "CLOSED")
		snap = e.waitModel(t, "room1 closed", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], "room1") == apps.StatusClosed })
		if c, _ := channelOf(snap.Sockets[0], "room1"); c.Reason != "phx_close" || len(c.Attempts) != 2 {
			t.Errorf("model: room1 closed %q with %d attempts, want phx_close and no rejoin", c.Reason, len(c.Attempts))
		}
		if st := e.cl.State(t); len(st.Channels) != 0 {
			t.Errorf("the app still holds %v", st.Channels)
		}
		if f := e.applied(proxy.FaultKick); len(f) != 2 || f[0].Reason != "phx_error" || f[1].Reason != "phx_close" {
			t.Errorf("model: kick faults %+v", f)
		}
	})

	t.Run("expire-token", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{}, proxy.Config{})
		e.ch.On(t, "system", map[string]any{})
		mark := d.Mark()
		if err := e.p.ExpireToken(0); err != nil {
			t.Fatal(err)
		}
		sys := e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
		if !strings.Contains(string(sys.Payload), "Token has expired 0 seconds ago") {
			t.Errorf("system %s", sys.Payload)
		}
		// realtime-js passes the system message on and closes the
		// channel; it does not rejoin nor refresh the token.
		e.ch.AwaitStatus(t, quick, mark, "CLOSED")
		if st := e.cl.State(t); len(st.Channels) != 0 || !st.IsConnected {
			t.Errorf("the app after expiry: %+v, want connected with no channel", st)
		}
		snap := e.waitModel(t, "room1 closed", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], "room1") == apps.StatusClosed })
		if c, _ := channelOf(snap.Sockets[0], "room1"); c.Reason != "Token has expired 0 seconds ago" {
			t.Errorf("model: room1 closed %q, want the system message's reason", c.Reason)
		}
		if !snap.Sockets[0].Closed.IsZero() {
			t.Error("model: the socket closed")
		}
		if f := e.applied(proxy.FaultExpireToken); len(f) != 1 {
			t.Errorf("model: expire faults %+v", f)
		}
	})

	t.Run("drop-duplicate-messages", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{}, proxy.Config{})
		got := func(event string, after int) int {
			return len(d.Events(jsharness.Match{Kind: jsharness.KindBroadcast, Client: e.cl.Name, Event: event, After: after}))
		}
		mark := d.Mark()
		e.p.DropMessages("room1", 2)
		for _, ev := range []string{"lost", "lost", "kept"} {
			e.ch.Broadcast(t, ev, map[string]any{"i": 1})
		}
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "kept", After: mark})
		e.p.DuplicateMessages("room1", 2)
		for _, ev := range []string{"twice", "twice", "once"} {
			e.ch.Broadcast(t, ev, map[string]any{"i": 2})
		}
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "once", After: mark})
		want := map[string]int{"lost": 0, "kept": 1, "twice": 4, "once": 1}
		snap := e.waitModel(t, "the broadcasts to the app", func(s apps.Snapshot) bool {
			return modelReceived(s.Sockets[0], "once") == 1
		})
		for ev, n := range want {
			if g := got(ev, mark); g != n {
				t.Errorf("the app received %q %d times, want %d", ev, g, n)
			}
			if g := modelReceived(snap.Sockets[0], ev); g != n {
				t.Errorf("model: %q to the app %d times, want %d (what the app got)", ev, g, n)
			}
		}
		if c, _ := channelOf(snap.Sockets[0], "room1"); c.MessagesToApp != 6 || c.MessagesFromApp != 6 {
			t.Errorf("model: room1 %d messages from the app, %d to it; want 6 and 6", c.MessagesFromApp, c.MessagesToApp)
		}
		if n, m := len(e.applied(proxy.FaultDropMessage)), len(e.applied(proxy.FaultDuplicateMessage)); n != 2 || m != 2 {
			t.Errorf("model: %d drop and %d duplicate faults, want 2 and 2", n, m)
		}

		// A dropped join reply: the join times out (TIMED_OUT), the app
		// leaves and rejoins after its first rejoin step; the model
		// counts that delay from the leave, not from the join (the
		// timeout, longer than the tolerance, tells them apart).
		e.p.DropMessages("room3", 1)
		ch := e.cl.Channel(t, "late", "room3", nil)
		mark = d.Mark()
		ch.Subscribe(t, 800)
		st := ch.AwaitStatus(t, quick, mark, "TIMED_OUT")
		ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		join := d.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.cl.Name, Dir: "out", Event: "phx_join", Topic: "realtime:room3", After: st.Seq})
		checkDelay(t, "the app's rejoin after the timeout", join.Time.Sub(st.Time), sbRejoin[0])
		snap = e.waitModel(t, "room3 joined", func(s apps.Snapshot) bool { return channelStatus(s.Sockets[0], "room3") == apps.StatusJoined })
		c, _ := channelOf(snap.Sockets[0], "room3")
		if len(c.Attempts) != 2 || c.Attempts[0].Outcome != "timeout" || c.Attempts[1].Outcome != "ok" {
			t.Fatalf("model: room3 attempts\n%s", describe(snap))
		}
		checkDelay(t, "the model's rejoin delay after the timeout", c.Attempts[1].Delay, sbRejoin[0])
	})

	t.Run("latency", func(t *testing.T) {
		e := newSBEnv(t, srv, d, jsharness.ClientOptions{HeartbeatIntervalMs: 1000}, proxy.Config{})
		const lat, jitter = 150 * time.Millisecond, 100 * time.Millisecond
		e.p.SetLatency(lat, jitter)
		mark := d.Mark()
		for i := range 3 {
			ev := fmt.Sprintf("slow%d", i)
			start := d.Mark()
			e.ch.Broadcast(t, ev, map[string]any{"i": i})
			sent := d.Await(t, quick, jsharness.Match{Kind: jsharness.KindFrame, Client: e.cl.Name, Dir: "out", After: start})
			got := e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: ev, After: start})
			// Each way the latency plus up to the jitter.
			if rt := got.Time.Sub(sent.Time); rt < 2*lat || rt > 2*(lat+jitter)+delayTolerance {
				t.Errorf("broadcast round trip %v, want %v to %v", rt, 2*lat, 2*(lat+jitter))
			}
		}
		// The app's heartbeat round trip (its callback's latency).
		hb := d.Await(t, slow, jsharness.Match{Kind: jsharness.KindHeartbeat, Client: e.cl.Name, Status: "ok", After: mark,
			Where: func(ev jsharness.Event) bool { return ev.Latency != nil }, Desc: "with a latency"})
		if l := time.Duration(*hb.Latency * float64(time.Millisecond)); l < 2*lat-10*time.Millisecond {
			t.Errorf("the app's heartbeat latency %v, want at least %v", l, 2*lat)
		}
		// The model times the heartbeat as the app sees it: the push when
		// the app sent it, the reply when the proxy wrote it to the app,
		// so both ways' latency.
		snap := e.waitModel(t, "a slow heartbeat", func(s apps.Snapshot) bool { return s.Sockets[0].HeartbeatRTT >= 2*lat })
		if rtt := snap.Sockets[0].HeartbeatRTT; rtt > 2*(lat+jitter)+delayTolerance {
			t.Errorf("model: heartbeat round trip %v", rtt)
		}
		if f := e.events(apps.TypeFault); len(f) == 0 || f[len(f)-1].Action != proxy.FaultLatency || f[len(f)-1].Text != "armed" {
			t.Errorf("model: fault events %+v, want the latency armed", f)
		}
		e.p.SetLatency(0, 0)
	})
}

// hasChannelEvent reports whether evs has an app_channel event of topic
// with status and reason.
func hasChannelEvent(evs []apps.Event, topic string, st apps.Status, reason string) bool {
	for _, ev := range evs {
		if ev.Topic == topic && ev.Status == st && ev.Reason == reason {
			return true
		}
	}
	return false
}

// modelReceived counts the broadcasts of user event ev the model saw go
// to the app on room1.
func modelReceived(s apps.Socket, ev string) int {
	c, _ := channelOf(s, "room1")
	n := 0
	for _, m := range c.Messages {
		if m.Dir == proxy.ToApp.String() && m.UserEvent == ev {
			n++
		}
	}
	return n
}

// supabase-js's REST side through the proxy's passthrough: a broadcast
// sent on a channel not subscribed goes over REST (POST
// /realtime/v1/api/broadcast with supabase-js's headers) and reaches a
// subscriber.
func TestSupabaseJSRESTBroadcast(t *testing.T) {
	srv := servertest.New(t)
	d := jsharness.Start(t)
	e := newSBEnv(t, srv, d, jsharness.ClientOptions{}, proxy.Config{})
	pub := e.client(t, "-pub", jsharness.ClientOptions{})
	rest := pub.Channel(t, "rest", "room1", nil)
	mark := d.Mark()
	if res := rest.Broadcast(t, "via-rest", map[string]any{"n": 7}); res != "ok" {
		t.Fatalf("REST broadcast: %s\n%s", res, d.Dump(20))
	}
	req := d.Await(t, quick, jsharness.Match{Kind: jsharness.KindHTTP, Client: pub.Name, After: mark})
	if req.Method != "POST" || !strings.HasSuffix(strings.SplitN(req.URL, "?", 2)[0], "/realtime/v1/api/broadcast") || req.HTTPStatus != 202 {
		t.Errorf("REST request %s %s: %d %s", req.Method, req.URL, req.HTTPStatus, req.Response)
	}
	if !strings.HasPrefix(req.URL, e.url+"/") || !strings.HasPrefix(pub.HTTPEndpoint, e.url+"/") {
		t.Errorf("REST request to %s (endpoint %s), want the proxy %s", req.URL, pub.HTTPEndpoint, e.url)
	}
	if req.Headers["apikey"] != e.key || req.Headers["authorization"] != "Bearer "+e.key {
		t.Errorf("REST request headers %v: want the apikey and authorization of the key", maskedHeaders(req.Headers))
	}
	b := e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "via-rest", After: mark})
	if !strings.Contains(string(b.Payload), `"n":7`) {
		t.Errorf("broadcast %s", b.Payload)
	}
	// The websocket saw no send of it: it went over REST.
	for _, f := range d.Events(jsharness.Match{Kind: jsharness.KindFrame, Client: pub.Name, Dir: "out", After: mark}) {
		if strings.Contains(f.Text, "via-rest") || strings.Contains(f.Hex, fmt.Sprintf("%x", "via-rest")) {
			t.Errorf("the broadcast went over the socket: %s", f)
		}
	}
}

// maskedHeaders lists header names only (their values may be keys).
func maskedHeaders(h map[string]string) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	return names
}
