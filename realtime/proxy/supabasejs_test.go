package proxy_test

import (
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

// sbEnv is a supabase-js app through a proxy whose Observer is an apps
// model, with one channel subscribed.
type sbEnv struct {
	p   *proxy.Proxy
	m   *apps.Model
	sub *apps.Subscription
	evs []apps.Event // the model's events drained so far
	d   *jsharness.Driver
	cl  *jsharness.Client
	ch  *jsharness.Channel
	url string // the proxy's, the app's SUPABASE_URL
	key string
}

func newSBEnv(t *testing.T, srv *servertest.Server, d *jsharness.Driver, opts jsharness.ClientOptions, cfg proxy.Config) *sbEnv {
	t.Helper()
	m := apps.New(apps.Options{})
	sub := m.Subscribe(1 << 14)
	t.Cleanup(sub.Close)
	cfg.Upstream, cfg.Observer = srv.URL, m
	p, hs := startProxy(t, cfg)
	e := &sbEnv{p: p, m: m, sub: sub, d: d, url: hs.URL, key: srv.AnonKey()}
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
func (e *sbEnv) waitModel(t *testing.T, what string, cond func(apps.Snapshot) bool) apps.Snapshot {
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
func (e *sbEnv) events(typ apps.EventType) []apps.Event {
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
func (e *sbEnv) applied(kind string) []apps.Event {
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
func (e *sbEnv) reconnected(t *testing.T, prev int) (old, cur apps.Socket) {
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
func (e *sbEnv) reconnectDelay(t *testing.T, mark int, cur apps.Socket, want time.Duration) {
	t.Helper()
	closed := e.d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "close", After: mark})
	next := e.d.Await(t, slow, jsharness.Match{Kind: jsharness.KindSocket, Client: e.cl.Name, State: "connecting", After: closed.Seq})
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
		e.reconnectDelay(t, mark, cur, sbReconnect[0])
		if f := e.applied(proxy.FaultDrop); len(f) != 1 || f[0].Socket != old.ID {
			t.Errorf("model: drop faults %+v, want one on socket %d", f, old.ID)
		}
	})
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
