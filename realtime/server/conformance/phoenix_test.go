package conformance

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// The Phoenix framework's own JS client (npm phoenix, run by
// testdata/realtimejs/phoenix.mjs) as a second judge: a client nobody here
// wrote, speaking the protocol as Phoenix defines it, against rtm's server
// where it must behave as against hosted Supabase.

// phxEnv is a server and a phoenix.js driver.
type phxEnv struct {
	t   *testing.T
	srv *servertest.Server
	p   *jsharness.Phoenix
}

func newPhxEnv(t *testing.T) *phxEnv {
	t.Helper()
	t.Parallel()
	srv := servertest.New(t)
	p := jsharness.StartPhoenix(t)
	t.Cleanup(func() {
		for _, e := range p.Events(match{Kind: jsharness.KindUncaught}) {
			t.Errorf("uncaught exception in the phoenix driver: %s", e.Raw)
		}
	})
	return &phxEnv{t: t, srv: srv, p: p}
}

// join creates and joins a channel with presence, ack and self off, and
// waits for the join's ok; it returns the channel and its join ref.
func (e *phxEnv) join(s *jsharness.PhoenixSocket, name, topic, key string) (*jsharness.PhoenixChannel, string) {
	e.t.Helper()
	params := map[string]any{"config": map[string]any{
		"broadcast": map[string]any{"ack": true, "self": false},
		"presence":  map[string]any{"key": key, "enabled": true},
		"private":   false,
	}}
	ch := s.Channel(e.t, name, topic, params, true).On(e.t, "broadcast")
	mark := e.p.Mark()
	ch.Join(e.t)
	st := ch.AwaitJoin(e.t, quick, mark, "ok")
	wantJSON(e.t, "join response", st.Payload, `{"postgres_changes":[]}`)
	info := ch.Info(e.t)
	if info.State != "joined" || info.JoinRef == nil {
		e.t.Fatalf("channel %s after join: %+v", name, info)
	}
	return ch, *info.JoinRef
}

func (e *phxEnv) socket(name string) *jsharness.PhoenixSocket {
	return e.p.NewSocket(e.t, name, jsharness.Endpoint(e.srv.URL), jsharness.PhoenixOptions{
		APIKey: e.srv.AnonKey(), RejoinAfterMs: []int{200}})
}

// phxGoJoin is a Go client's join of topic with presence key "go".
const phxGoJoin = `{"config":{"broadcast":{"self":false},"presence":{"key":"go","enabled":true}}}`

// TestPhoenixBroadcast: phoenix.js joins a public channel, receives a Go
// client's broadcast, sends a JSON broadcast and an ArrayBuffer push (a
// kind-0 frame) that subscribers receive as Phoenix's kind-2 binary
// broadcast, each acked.
func TestPhoenixBroadcast(t *testing.T) {
	e := newPhxEnv(t)
	const topic = "realtime:room1"
	ps, qs := e.socket("p"), e.socket("q")
	if want := jsharness.Endpoint(e.srv.URL) + "/websocket?apikey=" + e.srv.AnonKey() + "&vsn=2.0.0"; ps.EndPointURL != want {
		t.Errorf("phoenix.js URL %s, want %s", ps.EndPointURL, want)
	}
	pc, _ := e.join(ps, "room", topic, "phx")
	qc, _ := e.join(qs, "room", topic, "phq")
	g := dialRaw(t, e.srv.WSURL, e.srv.AnonKey(), protocol.V2)
	gj, _ := g.join(topic, phxGoJoin)

	// A Go client's broadcast (a 2.0.0 text push) reaches phoenix.js.
	mark := e.p.Mark()
	g.send(protocol.Message{JoinRef: gj, Ref: g.nextRef(), Topic: topic, Event: protocol.EventBroadcast,
		Payload: []byte(`{"type":"broadcast","event":"hello","payload":{"n":1}}`)})
	got := pc.AwaitMessage(t, quick, mark, "broadcast", nil)
	wantJSON(t, "broadcast from Go", got.Payload, `{"type":"broadcast","event":"hello","payload":{"n":1}}`)

	// A JSON broadcast from phoenix.js: ack ok, the others receive it.
	gm := g.mark()
	if r := pc.Push(t, "broadcast", map[string]any{"type": "broadcast", "event": "from-phx", "payload": map[string]any{"x": 1}}); r.Status != "ok" {
		t.Errorf("JSON broadcast ack %s %s", r.Status, r.Response)
	}
	f := g.await(quick, gm, "phoenix.js's JSON broadcast", func(m protocol.Message) bool { return m.Event == protocol.EventBroadcast })
	wantJSON(t, "JSON broadcast at Go", f.Msg.Payload, `{"type":"broadcast","event":"from-phx","payload":{"x":1}}`)

	// An ArrayBuffer push: phoenix's kind-0 frame, answered ok (ack) and
	// fanned out as Phoenix's kind-2 broadcast, which phoenix.js decodes.
	blob := []byte{0, 1, 2, 0xfe, 0xff}
	mark, gm = e.p.Mark(), g.mark()
	if r := pc.Push(t, "broadcast", jsharness.Base64(blob)); r.Status != "ok" {
		t.Errorf("binary push ack %s %s", r.Status, r.Response)
	}
	out := e.p.Await(t, quick, match{Kind: kFrame, Client: "p", Dir: "out", After: mark, Desc: "binary",
		Where: func(e jsharness.Event) bool { return e.Binary }})
	if b := out.Bytes(); len(b) == 0 || b[0] != protocol.KindPush {
		t.Errorf("phoenix.js sent % x, want a kind-0 push", b)
	}
	f = g.await(quick, gm, "the binary broadcast", func(m protocol.Message) bool { return m.Binary })
	want := append([]byte{protocol.KindBroadcast, byte(len(topic)), 9}, topic+"broadcast"...)
	if want = append(want, blob...); !bytes.Equal(f.Data, want) {
		t.Errorf("Go got % x, want % x", f.Data, want)
	}
	got = qc.AwaitMessage(t, quick, mark, "broadcast", func(e jsharness.Event) bool { return e.Binary })
	if b, err := jsharness.DecodeBase64(got.Payload); err != nil || !bytes.Equal(b, blob) {
		t.Errorf("phoenix.js peer got %s (%v), want % x", got.Payload, err, blob)
	}
	if r := pc.Leave(t); r.Status != "ok" {
		t.Errorf("leave %s %s", r.Status, r.Response)
	}
}

// TestPhoenixPresence: phoenix.js tracks presence; phoenix's Presence on
// every socket sees presence_state and presence_diff, a Go client the diff.
func TestPhoenixPresence(t *testing.T) {
	e := newPhxEnv(t)
	const topic = "realtime:room1"
	ps, qs := e.socket("p"), e.socket("q")
	pc, _ := e.join(ps, "room", topic, "phx")
	e.join(qs, "room", topic, "phq")
	g := dialRaw(t, e.srv.WSURL, e.srv.AnonKey(), protocol.V2)
	g.join(topic, phxGoJoin)

	mark, gm := e.p.Mark(), g.mark()
	if r := pc.Push(t, "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"name": "p"}}); r.Status != "ok" {
		t.Errorf("track %s %s", r.Status, r.Response)
	}
	for _, who := range []string{"p", "q"} {
		ev := e.p.Await(t, quick, match{Kind: kPresence, Client: who, After: mark, Desc: "join of phx",
			Where: func(e jsharness.Event) bool {
				return e.UserEvent() == "join" && bytes.Contains(e.Payload, []byte(`"key":"phx"`))
			}})
		var list []struct {
			Metas []map[string]any `json:"metas"`
		}
		if err := json.Unmarshal(jsharness.PresenceList(ev), &list); err != nil || len(list) != 1 || list[0].Metas[0]["name"] != "p" {
			t.Errorf("%s: presence list %s", who, jsharness.PresenceList(ev))
		}
	}
	f := g.await(quick, gm, "presence_diff", func(m protocol.Message) bool { return m.Event == protocol.EventPresenceDiff })
	if !bytes.Contains(f.Msg.Payload, []byte(`"phx":{"metas":[{"name":"p","phx_ref":`)) {
		t.Errorf("diff %s", f.Msg.Payload)
	}
	// A later joiner's presence_state has it.
	mark = e.p.Mark()
	e.join(e.socket("r"), "room", topic, "phr")
	ev := e.p.Await(t, quick, match{Kind: kPresence, Client: "r", After: mark, Desc: "sync",
		Where: func(e jsharness.Event) bool { return e.UserEvent() == "sync" }})
	if !bytes.Contains(jsharness.PresenceList(ev), []byte(`"name":"p"`)) {
		t.Errorf("presence_state list %s", jsharness.PresenceList(ev))
	}
	// The leave of the socket is a leave for the others.
	mark = e.p.Mark()
	ps.Disconnect(t)
	e.p.Await(t, quick, match{Kind: kPresence, Client: "q", After: mark, Desc: "leave of phx",
		Where: func(e jsharness.Event) bool {
			return e.UserEvent() == "leave" && bytes.Contains(e.Payload, []byte(`"key":"phx"`))
		}})
}

// TestPhoenixStaleJoinRef: a push whose join_ref is not the channel's
// reaches the channel, as in Supabase (its Phoenix reverted dropping
// them).
func TestPhoenixStaleJoinRef(t *testing.T) {
	e := newPhxEnv(t)
	const topic = "realtime:room1"
	ps := e.socket("p")
	_, pj := e.join(ps, "room", topic, "phx")
	g := dialRaw(t, e.srv.WSURL, e.srv.AnonKey(), protocol.V2)
	g.join(topic, phxGoJoin)
	gm := g.mark()
	ps.Push(t, topic, "broadcast", "stale-"+pj, map[string]any{"type": "broadcast", "event": "stale", "payload": map[string]any{}})
	g.await(quick, gm, "the stale join_ref broadcast", func(m protocol.Message) bool {
		b, err := m.UserBroadcast()
		return m.Event == protocol.EventBroadcast && err == nil && b.Event == "stale"
	})
}

// TestPhoenixKickError: a channel kicked in error mode gets phx_error
// {"reason":"channel_crash"}, which phoenix.js hands to onError, and
// rejoins with a new join ref.
func TestPhoenixKickError(t *testing.T) {
	e := newPhxEnv(t)
	const topic = "realtime:room1"
	pc, j1 := e.join(e.socket("p"), "room", topic, "phx")
	mark := e.p.Mark()
	if n := e.srv.Kick(topic, server.KickError); n != 1 {
		t.Errorf("Kick = %d, want 1", n)
	}
	errEv := e.p.Await(t, quick, match{Kind: jsharness.KindChannelError, Client: "p", After: mark})
	wantJSON(t, "onError reason", errEv.Payload, `{"reason":"channel_crash"}`)
	pc.AwaitJoin(t, slow, errEv.Seq, "ok")
	if j2 := *pc.Info(t).JoinRef; j2 == j1 {
		t.Errorf("rejoin kept join ref %s", j1)
	}
}

// TestPhoenixReconnect: after the server drops the socket, phoenix.js
// reconnects and rejoins with a new join ref and a fresh presence_state,
// and the channel delivers again.
func TestPhoenixReconnect(t *testing.T) {
	e := newPhxEnv(t)
	const topic = "realtime:room1"
	pc, j1 := e.join(e.socket("p"), "room", topic, "phx")
	mark := e.p.Mark()
	if n := e.srv.Drop(); n != 1 {
		t.Errorf("Drop = %d, want 1", n)
	}
	e.p.Await(t, quick, match{Kind: kSocket, Client: "p", State: "close", After: mark})
	opened := e.p.Await(t, slow, match{Kind: kSocket, Client: "p", State: "open", After: mark})
	pc.AwaitJoin(t, quick, opened.Seq, "ok")
	e.p.Await(t, quick, match{Kind: kPresence, Client: "p", After: opened.Seq, Desc: "sync",
		Where: func(e jsharness.Event) bool { return e.UserEvent() == "sync" }})
	if j2 := *pc.Info(t).JoinRef; j2 == j1 {
		t.Errorf("rejoin after reconnect kept join ref %s", j1)
	}
	g := dialRaw(t, e.srv.WSURL, e.srv.AnonKey(), protocol.V2)
	gj, _ := g.join(topic, `{"config":{}}`)
	mark = e.p.Mark()
	g.send(protocol.Message{JoinRef: gj, Ref: g.nextRef(), Topic: topic, Event: protocol.EventBroadcast,
		Payload: []byte(`{"type":"broadcast","event":"after","payload":{}}`)})
	pc.AwaitMessage(t, quick, mark, "broadcast", nil)
}

// TestPhoenixTokenRefreshRefused: an access_token push whose token can
// read neither broadcast nor presence of a private channel shuts it down
// with Supabase's words for that, a system error then phx_close.
func TestPhoenixTokenRefreshRefused(t *testing.T) {
	e := newPhxEnv(t)
	const topic = "realtime:room1"
	// A short push timeout: the access_token push gets no reply.
	ps := e.p.NewSocket(t, "p", jsharness.Endpoint(e.srv.URL), jsharness.PhoenixOptions{APIKey: e.srv.AnonKey(), TimeoutMs: 1000})
	ch := ps.Channel(t, "room", topic, map[string]any{
		"config":       map[string]any{"private": true},
		"access_token": e.srv.UserToken(t, "u1", time.Hour, nil),
	}, false).On(t, "system")
	mark := e.p.Mark()
	ch.Join(t)
	ch.AwaitJoin(t, quick, mark, "ok")
	mark = e.p.Mark()
	if r := ch.Push(t, "access_token", map[string]any{"access_token": e.srv.AnonKey()}); r.Status != "timeout" {
		t.Errorf("access_token push answered %s %s (Supabase sends no reply)", r.Status, r.Response)
	}
	sys := ch.AwaitMessage(t, quick, mark, "system", nil)
	wantJSON(t, "system", sys.Payload, `{"extension":"system","status":"error","message":"You do not have permissions to read from this Channel topic: room1","channel":"room1"}`)
	e.p.Await(t, quick, match{Kind: jsharness.KindChannelClose, Client: "p", After: sys.Seq})
}
