package proxy_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/jsharness"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
)

// slow bounds a recovery that goes through realtime-js's rejoin or
// reconnect timers.
const slow = 15 * time.Second

// faultRecorder is a recorder that also keeps the FaultEvents.
type faultRecorder struct {
	*recorder
	fmu    sync.Mutex
	faults []proxy.FaultEvent
}

func (r *faultRecorder) Fault(ev proxy.FaultEvent) {
	r.fmu.Lock()
	r.faults = append(r.faults, ev)
	r.fmu.Unlock()
}

// applied counts the applied (not armed) faults of kind.
func (r *faultRecorder) applied(kind string) int {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	n := 0
	for _, ev := range r.faults {
		if ev.Kind == kind && !ev.Armed {
			n++
		}
	}
	return n
}

// faultEnv is realtime-js through a proxy to the embedded server, with
// one channel subscribed.
type faultEnv struct {
	p   *proxy.Proxy
	rec *faultRecorder
	d   *jsharness.Driver
	cl  *jsharness.Client
	ch  *jsharness.Channel
}

func newFaultEnv(t *testing.T, srv *servertest.Server, d *jsharness.Driver, vsn string, opts jsharness.ClientOptions, cfg proxy.Config) *faultEnv {
	t.Helper()
	rec := &faultRecorder{recorder: newRecorder()}
	cfg.Upstream, cfg.Observer = srv.URL, rec
	p, hs := startProxy(t, cfg)
	opts.APIKey, opts.Vsn = srv.AnonKey(), vsn
	if opts.ReconnectAfterMs == nil {
		opts.ReconnectAfterMs = []int{50}
	}
	name := strings.ReplaceAll(t.Name(), "/", "-")
	cl := d.NewClient(t, name, jsharness.Endpoint(hs.URL), opts)
	ch := cl.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"self": true}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	mark := d.Mark()
	ch.Subscribe(t, 0)
	ch.AwaitStatus(t, slow, mark, "SUBSCRIBED")
	return &faultEnv{p: p, rec: rec, d: d, cl: cl, ch: ch}
}

// socketClosed waits for the app's socket to close after mark.
func (e *faultEnv) socketClosed(t *testing.T, mark int) jsharness.Event {
	t.Helper()
	return e.d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "close", After: mark})
}

// Each fault, seen from realtime-js 2.119.0 through the proxy to the
// embedded server, in both serializers.
func TestFaultsRealtimeJS(t *testing.T) {
	srv := servertest.New(t)
	d := jsharness.Start(t)
	for _, vsn := range []string{"2.0.0", "1.0.0"} {
		t.Run(vsn, func(t *testing.T) { testFaults(t, srv, d, vsn) })
	}
}

func testFaults(t *testing.T, srv *servertest.Server, d *jsharness.Driver, vsn string) {
	t.Run("drop", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.Drop(0); err != nil {
			t.Fatal(err)
		}
		if c := e.socketClosed(t, mark); c.Code != 1006 {
			t.Errorf("socket closed %d %q, want 1006", c.Code, c.Reason)
		}
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		e.rec.waitOpen(t, 2)
		if err := e.p.Drop(99); err == nil {
			t.Error("Drop of an unknown socket: no error")
		}
	})
	t.Run("close", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.CloseSocket(0, 4001, "fault test"); err != nil {
			t.Fatal(err)
		}
		if c := e.socketClosed(t, mark); c.Code != 4001 || c.Reason != "fault test" {
			t.Errorf("socket closed %d %q, want 4001 fault test", c.Code, c.Reason)
		}
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		if c := e.rec.waitClosed(t, 1); c[0].Code != 4001 || c[0].By != 0 {
			t.Errorf("Closed %+v", c[0])
		}
	})
	t.Run("freeze", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{HeartbeatIntervalMs: 200}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.Freeze(0, time.Second); err != nil {
			t.Fatal(err)
		}
		// The heartbeat goes unanswered: realtime-js closes and reconnects
		// on a new socket, which is not frozen.
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		if st.Error != "heartbeat timeout" {
			t.Errorf("CHANNEL_ERROR %q, want heartbeat timeout", st.Error)
		}
		if c := e.socketClosed(t, mark); c.Code != 1000 {
			t.Errorf("socket closed %d %q, want 1000", c.Code, c.Reason)
		}
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		e.rec.waitOpen(t, 2)
	})
	t.Run("fail-connects", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		e.p.FailConnects(1)
		mark := d.Mark()
		if err := e.p.Drop(0); err != nil {
			t.Fatal(err)
		}
		// The reconnect is refused (503). Node 22's WebSocket fires no
		// close event after a refused upgrade, so realtime-js stays
		// "connecting" (see the server's TestRestartSameAddress): the app
		// reconnects when it makes a new connection.
		e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "error", After: mark})
		if n := e.rec.applied(proxy.FaultFailConnect); n != 1 {
			t.Errorf("%d connects refused, want 1", n)
		}
		mark = d.Mark()
		e.cl.Disconnect(t, 1000, "")
		e.cl.Connect(t)
		d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "open", After: mark})
		e.rec.waitOpen(t, 2)
	})
	t.Run("reject-joins", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		const reason = "ChannelRateLimitReached: Too many channels"
		e.p.RejectJoins("room2", 1, reason)
		ch := e.cl.Channel(t, "other", "room2", nil)
		mark := d.Mark()
		ch.Subscribe(t, 0)
		st := ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		if st.Error != reason {
			t.Errorf("CHANNEL_ERROR %q, want %q", st.Error, reason)
		}
		ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		if n := e.rec.applied(proxy.FaultRejectJoin); n != 1 {
			t.Errorf("%d joins rejected, want 1", n)
		}
	})
	t.Run("kick", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		mark := d.Mark()
		if err := e.p.Kick(0, "room1", false); err != nil {
			t.Fatal(err)
		}
		st := e.ch.AwaitStatus(t, slow, mark, "CHANNEL_ERROR")
		e.ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
		// The rejoined channel works both ways.
		mark = d.Mark()
		if res := e.ch.Broadcast(t, "after", map[string]any{"x": 1}); res != "ok" {
			t.Errorf("broadcast: %s", res)
		}
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "after", After: mark})

		mark = d.Mark()
		if err := e.p.Kick(0, "room1", true); err != nil {
			t.Fatal(err)
		}
		e.ch.AwaitStatus(t, slow, mark, "CLOSED")
		if err := e.p.Kick(0, "room1", true); err == nil {
			t.Error("kick of a channel no longer joined: no error")
		}
	})
	t.Run("expire-token", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		e.ch.On(t, "system", map[string]any{})
		mark := d.Mark()
		if err := e.p.ExpireToken(0); err != nil {
			t.Fatal(err)
		}
		sys := e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
		if !strings.Contains(string(sys.Payload), "Token has expired 0 seconds ago") {
			t.Errorf("system %s", sys.Payload)
		}
		e.ch.AwaitStatus(t, quick, mark, "CLOSED")
	})
	t.Run("drop-duplicate-messages", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{})
		count := func(event string, after int) int {
			return len(d.Events(jsharness.Match{Kind: jsharness.KindBroadcast, Client: e.cl.Name, Event: event, After: after}))
		}
		e.p.DropMessages("room1", 1)
		mark := d.Mark()
		e.ch.Broadcast(t, "lost", map[string]any{"i": 1})
		e.ch.Broadcast(t, "kept", map[string]any{"i": 2})
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "kept", After: mark})
		if n := count("lost", mark); n != 0 {
			t.Errorf("dropped broadcast received %d times", n)
		}
		e.p.DuplicateMessages("room1", 1)
		mark = d.Mark()
		e.ch.Broadcast(t, "twice", map[string]any{"i": 3})
		e.ch.Broadcast(t, "once", map[string]any{"i": 4})
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "once", After: mark})
		if n := count("twice", mark); n != 2 {
			t.Errorf("duplicated broadcast received %d times, want 2", n)
		}
		if n := count("once", mark); n != 1 {
			t.Errorf("next broadcast received %d times, want 1", n)
		}

		// A dropped join reply: the join times out, and the rejoin works.
		e.p.DropMessages("room3", 1)
		ch := e.cl.Channel(t, "late", "room3", nil)
		mark = d.Mark()
		ch.Subscribe(t, 300)
		st := ch.AwaitStatus(t, quick, mark, "TIMED_OUT")
		ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
	})
	t.Run("latency", func(t *testing.T) {
		e := newFaultEnv(t, srv, d, vsn, jsharness.ClientOptions{}, proxy.Config{Rand: func() float64 { return 0.5 }})
		e.p.SetLatency(150*time.Millisecond, 100*time.Millisecond)
		mark := d.Mark()
		start := time.Now()
		e.ch.Broadcast(t, "slow", map[string]any{"i": 1})
		e.ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "slow", After: mark})
		// Each way 150 ms + half the jitter.
		if el := time.Since(start); el < 400*time.Millisecond {
			t.Errorf("round trip %v, want at least 400ms", el)
		}
		e.p.SetLatency(0, 0)
	})
}

// The faults' exact frames, on a raw socket through the proxy to an echo
// upstream (which returns what it gets: what reached it comes back).
func TestFaultFrames(t *testing.T) {
	up := newEchoUpstream(t, false)
	rec := &faultRecorder{recorder: newRecorder()}
	p, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket?apikey=secret-key&vsn=2.0.0"), nil)
	send := func(s string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(quick))
		_, b, err := c.ReadMessage()
		if err != nil || string(b) != want {
			t.Fatalf("read %s %v, want %s", b, err, want)
		}
	}
	const join = `["1","1","realtime:room1","phx_join",{}]`
	p.RejectJoins("room1", 1, "Unauthorized: You do not have permissions to read from this Channel topic: room1")
	send(join)
	expect(`["1","1","realtime:room1","phx_reply",{"status":"error","response":{"reason":"Unauthorized: You do not have permissions to read from this Channel topic: room1"}}]`)
	send(join) // this one is forwarded: the echo returns it
	expect(join)

	if err := p.Kick(0, "room1", false); err != nil {
		t.Fatal(err)
	}
	expect(`["1","1","realtime:room1","phx_error",{"reason":"channel_crash"}]`)
	// The leave sent upstream comes back from the echo and is not relayed.
	send(`["2","3","realtime:room2","broadcast",{}]`)
	expect(`["2","3","realtime:room2","broadcast",{}]`)

	p.DuplicateMessages("room2", 1)
	send(`["2","4","realtime:room2","broadcast",{}]`)
	expect(`["2","4","realtime:room2","broadcast",{}]`)
	expect(`["2","4","realtime:room2","broadcast",{}]`)
	p.DropMessages("room2", 1)
	send(`["2","5","realtime:room2","broadcast",{}]`)
	send(`["2","6","realtime:room2","broadcast",{}]`)
	expect(`["2","6","realtime:room2","broadcast",{}]`)

	const freeze = 300 * time.Millisecond
	if err := p.Freeze(0, freeze); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	send(`["2","7","realtime:room2","broadcast",{}]`)
	expect(`["2","7","realtime:room2","broadcast",{}]`)
	if el := time.Since(start); el < freeze-10*time.Millisecond {
		t.Errorf("relayed %v after a %v freeze", el, freeze)
	}

	// A long freeze is thawed by Freeze(id, 0).
	if err := p.Freeze(0, time.Hour); err != nil {
		t.Fatal(err)
	}
	send(`["2","8","realtime:room2","broadcast",{}]`)
	time.AfterFunc(100*time.Millisecond, func() { _ = p.Freeze(0, 0) })
	expect(`["2","8","realtime:room2","broadcast",{}]`)

	rec.fmu.Lock()
	for _, ev := range rec.faults {
		if strings.Contains(ev.Detail, "secret-key") {
			t.Errorf("fault %+v shows the key", ev)
		}
	}
	rec.fmu.Unlock()
	for _, k := range []string{proxy.FaultRejectJoin, proxy.FaultKick, proxy.FaultDuplicateMessage, proxy.FaultDropMessage} {
		if rec.applied(k) != 1 {
			t.Errorf("%s applied %d times, want 1", k, rec.applied(k))
		}
	}
	if err := p.CloseSocket(0, 4002, "bye"); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	if code, reason := closeCode(err); code != 4002 || reason != "bye" {
		t.Errorf("close %v, want 4002 bye", err)
	}
}
