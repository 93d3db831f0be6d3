package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Timeouts of the suite. Waits are deadlines, never sleeps: a passing
// test returns as soon as the awaited event arrives.
const (
	// quick bounds what should happen at once (a reply, a fan-out).
	quick = 5 * time.Second
	// slow bounds what waits for realtime-js timers (rejoin, reconnect).
	slow = 20 * time.Second
	// heartbeatMs is the heartbeat interval of most clients: short enough
	// to use heartbeats as a clock, long enough not to time out under a
	// loaded -race run.
	heartbeatMs = 2000
)

// Event kinds and match fields, shortened.
type match = jsharness.Match

const (
	kFrame     = jsharness.KindFrame
	kSocket    = jsharness.KindSocket
	kStatus    = jsharness.KindStatus
	kHeartbeat = jsharness.KindHeartbeat
	kBroadcast = jsharness.KindBroadcast
	kPresence  = jsharness.KindPresence
	kSystem    = jsharness.KindSystem
	kHTTP      = jsharness.KindHTTP
)

// env is one scenario's world: an embedded server on loopback and a
// realtime-js driver.
type env struct {
	t        *testing.T
	srv      *servertest.Server
	d        *jsharness.Driver
	endpoint string
	fences   int
}

// newEnv starts a server (with opts) and a driver for t, which runs in
// parallel with other scenarios.
func newEnv(t *testing.T, opts ...servertest.Option) *env {
	t.Helper()
	t.Parallel()
	srv := servertest.New(t, opts...)
	d := jsharness.Start(t)
	t.Cleanup(func() {
		// Nothing a server sends may make realtime-js throw.
		for _, e := range d.Events(match{Kind: jsharness.KindUncaught}) {
			t.Errorf("uncaught exception in the driver: %s", e.Raw)
		}
	})
	return &env{t: t, srv: srv, d: d, endpoint: jsharness.Endpoint(srv.URL)}
}

// client creates a realtime-js client named name; APIKey defaults to the
// anon key and the heartbeat to heartbeatMs.
func (e *env) client(name string, o jsharness.ClientOptions) *jsharness.Client {
	e.t.Helper()
	if o.APIKey == "" {
		o.APIKey = e.srv.AnonKey()
	}
	if o.HeartbeatIntervalMs == 0 {
		o.HeartbeatIntervalMs = heartbeatMs
	}
	return e.d.NewClient(e.t, name, e.endpoint, o)
}

// keepSocket is a DisconnectOnEmptyChannelsAfterMs that keeps a client's
// socket open (and its heartbeats going) after its last channel closed.
func keepSocket() *int {
	ms := 600_000
	return &ms
}

// subscribe subscribes ch, waits for SUBSCRIBED and returns the join ref.
func (e *env) subscribe(ch *jsharness.Channel) string {
	e.t.Helper()
	mark := e.d.Mark()
	ch.Subscribe(e.t, 0)
	ch.AwaitStatus(e.t, slow, mark, "SUBSCRIBED")
	info := ch.Info(e.t)
	if info.State != "joined" || info.JoinRef == nil {
		e.t.Fatalf("channel %s after SUBSCRIBED: %+v", ch.Name, info)
	}
	return *info.JoinRef
}

// frame waits for a frame event that m matches and decodes it.
func (e *env) frame(timeout time.Duration, m match) (jsharness.Event, protocol.Message) {
	e.t.Helper()
	m.Kind = kFrame
	ev := e.d.Await(e.t, timeout, m)
	msg, err := ev.Message()
	if err != nil {
		e.t.Fatalf("frame #%d does not decode: %v\n%s", ev.Seq, err, ev)
	}
	return ev, msg
}

// fence makes the server broadcast a unique event on topic and waits until
// client has received it; frames on one connection arrive in order, so
// anything the server sent the client before the fence has arrived by
// then. It returns the fence frame's Seq.
func (e *env) fence(c *jsharness.Client, topic string) int {
	e.t.Helper()
	e.fences++
	name := fmt.Sprintf("fence-%d", e.fences)
	e.srv.Broadcast(topic, name, json.RawMessage(`{}`))
	ev, _ := e.frame(quick, match{Client: c.Name, Dir: "in", Topic: topic, Where: isBroadcast(name), Desc: "broadcast " + name})
	return ev.Seq
}

// heartbeats waits for n more heartbeat round trips of c after mark: the
// client's own clock, used to let time pass when asserting that something
// does not happen.
func (e *env) heartbeats(c *jsharness.Client, after, n int) int {
	e.t.Helper()
	evs := e.d.AwaitN(e.t, time.Duration(n+2)*slow, match{Kind: kHeartbeat, Client: c.Name, Status: "ok", After: after}, n)
	return evs[len(evs)-1].Seq
}

// noFrames fails if c sent (dir "out") or received ("in") a frame that m
// matches between after and upto.
func (e *env) noFrames(what string, after, upto int, m match) {
	e.t.Helper()
	m.Kind = kFrame
	m.After = after
	for _, ev := range e.d.Events(m) {
		if ev.Seq < upto {
			e.t.Errorf("%s: unexpected frame %s", what, ev)
		}
	}
}

// decodeJSON decodes data into a generic value with exact numbers.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

// jsonEqual reports whether a and b are the same JSON value (key order
// and whitespace aside; numbers compared as written).
func jsonEqual(a, b []byte) bool {
	va, err := decodeJSON(a)
	if err != nil {
		return false
	}
	vb, err := decodeJSON(b)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// wantJSON fails t unless got is the JSON value want.
func wantJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !jsonEqual(got, []byte(want)) {
		t.Errorf("%s:\n got  %s\n want %s", what, got, want)
	}
}

// wantText fails t unless the text frame ev is the JSON value want.
func wantText(t *testing.T, ev jsharness.Event, want string) {
	t.Helper()
	if ev.Binary {
		t.Errorf("frame #%d is binary %s, want text %s", ev.Seq, ev.Hex, want)
		return
	}
	wantJSON(t, fmt.Sprintf("frame #%d (%s, client %s)", ev.Seq, ev.Dir, ev.Client), []byte(ev.Text), want)
}

// q quotes s as a JSON string.
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// isMsg returns a Where condition for frames whose decoded message has
// event and, when not empty, ref.
func isMsg(event, ref string) func(jsharness.Event) bool {
	return func(ev jsharness.Event) bool {
		m, err := ev.Message()
		return err == nil && m.Event == event && (ref == "" || m.Ref == ref)
	}
}

// isBroadcast returns a Where condition for broadcast frames of the user
// event name.
func isBroadcast(name string) func(jsharness.Event) bool {
	return func(ev jsharness.Event) bool {
		m, err := ev.Message()
		if err != nil || m.Event != protocol.EventBroadcast {
			return false
		}
		u, err := m.UserBroadcast()
		return err == nil && u.Event == name
	}
}

// connID returns the server's id of the one connection whose token has
// subject sub.
func (e *env) connID(sub string) string {
	e.t.Helper()
	var ids []string
	for _, c := range e.srv.Conns() {
		if c.Sub == sub {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) != 1 {
		e.t.Fatalf("connections of %q: %v, want one", sub, ids)
	}
	return ids[0]
}

// userToken returns an "authenticated" JWT for sub valid for ttl.
func (e *env) userToken(sub string, ttl time.Duration, extra map[string]any) string {
	e.t.Helper()
	return e.srv.UserToken(e.t, sub, ttl, extra)
}
