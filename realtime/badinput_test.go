package realtime

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// rawServer is a tiny WebSocket server whose frames the test writes by
// hand: it exercises the client's handling of invalid and unusual input
// that a correct server never sends (garbage, stale refs, null payloads,
// unknown events, missing replies). Protocol behaviour is tested against
// the real embedded server elsewhere.
type rawServer struct {
	URL   string
	srv   *httptest.Server
	conns chan *rawConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []*rawConn
}

type rawConn struct {
	ws *websocket.Conn
	in chan rawFrame
}

type rawFrame struct {
	msg       protocol.Message
	binary    bool
	data      []byte
	closeCode int
	closeText string
}

func newRawServer(t *testing.T) *rawServer {
	t.Helper()
	rs := &rawServer{conns: make(chan *rawConn, 16)}
	up := websocket.Upgrader{}
	rs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &rawConn{ws: ws, in: make(chan rawFrame, 4096)}
		rs.mu.Lock()
		rs.all = append(rs.all, c)
		rs.mu.Unlock()
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			defer close(c.in)
			for {
				typ, data, err := ws.ReadMessage()
				if err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						c.in <- rawFrame{closeCode: ce.Code, closeText: ce.Text}
					}
					return
				}
				m, err := protocol.V2.DecodeClient(data, typ == websocket.BinaryMessage)
				if err != nil {
					t.Errorf("the client sent a malformed frame %q: %v", data, err)
					continue
				}
				c.in <- rawFrame{msg: m, binary: typ == websocket.BinaryMessage, data: data}
			}
		}()
		rs.conns <- c
	}))
	rs.URL = rs.srv.URL
	t.Cleanup(func() {
		rs.mu.Lock()
		for _, c := range rs.all {
			c.ws.Close()
		}
		rs.mu.Unlock()
		rs.srv.Close()
		rs.wg.Wait()
	})
	return rs
}

func (rs *rawServer) accept(t *testing.T) *rawConn {
	t.Helper()
	select {
	case c := <-rs.conns:
		return c
	case <-time.After(waitTimeout):
		t.Fatal("no connection")
		return nil
	}
}

// next returns the next client frame of event (others are skipped).
func (c *rawConn) next(t *testing.T, event string) rawFrame {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-c.in:
			if !ok {
				t.Fatalf("connection ended waiting for %s", event)
			}
			if f.msg.Event == event || (event == "close" && f.closeCode != 0) {
				return f
			}
		case <-timer.C:
			t.Fatalf("no %s from the client", event)
		}
	}
}

func (c *rawConn) send(t *testing.T, frames ...string) {
	t.Helper()
	for _, f := range frames {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *rawConn) sendBinary(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if err := c.ws.WriteMessage(websocket.BinaryMessage, f); err != nil {
			t.Fatal(err)
		}
	}
}

func reply(m protocol.Message, status, response string) string {
	return fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":%q,"response":%s}]`, m.JoinRef, m.Ref, m.Topic, status, response)
}

// joinRaw dials the raw server and joins room1, answering the join.
func joinRaw(t *testing.T, rs *rawServer, cfg ChannelConfig, mods ...func(*Options)) (*Socket, *rawConn, *Channel, *rec[Event], protocol.Message) {
	t.Helper()
	s := dialURL(t, rs.URL, "anon-key", append([]func(*Options){fast, func(o *Options) { o.HeartbeatInterval = -1 }}, mods...)...)
	c := rs.accept(t)
	ch, r := channel(t, s, "room1", cfg)
	done := make(chan error, 1)
	go func() { done <- ch.Subscribe(ctxT(t)) }()
	join := c.next(t, protocol.EventJoin).msg
	c.send(t, reply(join, "ok", `{"postgres_changes":[]}`))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return s, c, ch, r, join
}

func TestBadServerInput(t *testing.T) {
	rs := newRawServer(t)
	s, c, ch, r, join := joinRaw(t, rs, ChannelConfig{Presence: PresenceConfig{Enabled: true}})
	J := join.JoinRef
	malformed := []string{
		`garbage`, `[`, `{"topic":"realtime:room1"}`, `[null,null,"realtime:room1","broadcast",{"event":"x","payload":{]`,
		`[null,null,"realtime:room1"]`, `[1,2,3,4,5]`, `[null,null,"realtime:room1","broadcast",{}} `, "\xff\xfe",
		`[null,null,"realtime:room1","broadcast",` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `]`,
	}
	malformedBinary := [][]byte{
		{}, {1, 2, 3}, {2, 0, 0, 0}, {3, 0, 0, 1, 0, 0, 1, 'x'}, {4, 14, 1, 0},
		append([]byte{4, 14, 1, 0, 1}, "realtime:room1x{"...),
		append([]byte{4, 14, 1, 0, 7}, "realtime:room1x{}"...),
		append([]byte{4, 14, 1, 0, 1}, "realtime:room\xffx{}"...),
	}
	ignored := []string{
		`[null,null,"realtime:room1","broadcast",null]`,
		`[null,null,"realtime:room1","broadcast",{"payload":{}}]`,
		`[null,null,"realtime:room1","broadcast",{"event":7}]`,
		`[null,null,"realtime:room1","presence_diff",null]`,
		`[null,null,"realtime:room1","presence_diff",{"joins":{"k":{"metas":[{"phx_ref":1}]}},"leaves":{}}]`,
		`[null,null,"realtime:room1","postgres_changes",null]`,
		`[null,null,"realtime:room1","postgres_changes",{"ids":[1],"data":{"type":"INSERT"}}]`,
		`[null,null,"realtime:room1","postgres_changes",{"ids":"x"}]`,
		`[null,null,"realtime:room1","system",null]`,
		`[null,null,"realtime:room1","system",[1]]`,
		`["999","999","realtime:room1","broadcast",{"event":"stale","payload":{}}]`,
		`["999",null,"realtime:room1","presence_state",{"ghost":{"metas":[{"phx_ref":"g"}]}}]`,
		`["999","999","realtime:room1","phx_close",{}]`,
		`[null,"999","realtime:room1","phx_error",{}]`,
		`["999","999","realtime:room1","phx_error",{}]`,
		fmt.Sprintf(`[%q,"424242","realtime:room1","phx_reply",{"status":"ok","response":{}}]`, J),
		fmt.Sprintf(`[%q,%q,"realtime:room1","phx_reply",null]`, J, J),
		`[null,"5","phoenix","phx_reply",null]`,
		`[null,null,"phoenix","phx_reply",{"status":"ok"}]`,
		`[null,null,"realtime:room1","weird_event",{"a":1}]`,
		`[null,null,"realtime:other","broadcast",{"event":"x","payload":{}}]`,
		`[null,null,"","broadcast",{"event":"x","payload":{}}]`,
		`[null,null,"realtime:room1","presence_state",null]`,
	}
	c.send(t, malformed...)
	c.sendBinary(t, malformedBinary...)
	c.send(t, ignored...)
	c.sendBinary(t, append([]byte{4, 1, 1, 0, 1}, "tx{}"...)) // valid frame, unknown topic
	// A valid presence state and broadcast after all that still arrive.
	c.send(t, fmt.Sprintf(`[%q,null,"realtime:room1","presence_state",{"k":{"metas":[{"phx_ref":"r1"}]}}]`, J))
	c.send(t, `[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"sentinel","payload":{"ok":true}}]`)
	evs := r.wait(t, "the sentinel", func(e []Event) bool { return len(broadcasts(e)) >= 1 })
	bs := broadcasts(evs)
	if len(bs) != 1 || bs[0].Event != "sentinel" {
		t.Fatalf("broadcasts %+v", bs)
	}
	for _, e := range evs {
		if e.Type == EventStatus && e.Status != Subscribed || e.Type == EventPostgresChange || e.Type == EventSystem {
			t.Fatalf("unexpected event %s", describe([]Event{e}))
		}
	}
	if ch.State() != ChannelJoined || s.Status() != StatusOpen || s.Stats().Connects != 1 {
		t.Fatalf("state %v, socket %v, stats %+v", ch.State(), s.Status(), s.Stats())
	}
	if got, want := s.Stats().DecodeErrors, uint64(len(malformed)+len(malformedBinary)); got != want {
		t.Fatalf("DecodeErrors = %d, want %d", got, want)
	}
	if keysOf(ch.Presence()) != "k" {
		t.Fatalf("presence %s", keysOf(ch.Presence()))
	}
	// The channel still pushes and the server sees it.
	if err := ch.Send(ctxT(t), "still", nil); err != nil {
		t.Fatal(err)
	}
	if f := c.next(t, protocol.EventBroadcast); f.msg.Broadcast == nil || f.msg.Broadcast.Event != "still" {
		t.Fatalf("frame %+v", f)
	}
}

func TestBindingMismatchLeaves(t *testing.T) {
	rs := newRawServer(t)
	s := dialURL(t, rs.URL, "anon-key", fast, func(o *Options) { o.HeartbeatInterval = -1 })
	c := rs.accept(t)
	ch, r := channel(t, s, "room1", ChannelConfig{PostgresChanges: []PostgresBinding{{Event: "INSERT", Schema: "public", Table: "todos"}}})
	done := make(chan error, 1)
	go func() { done <- ch.Subscribe(ctxT(t)) }()
	join := c.next(t, protocol.EventJoin).msg
	c.send(t, reply(join, "ok", `{"postgres_changes":[{"event":"INSERT","schema":"public","table":"other","id":5}]}`))
	if err := <-done; !errors.Is(err, ErrBindingMismatch) {
		t.Fatalf("Subscribe: %v", err)
	}
	leave := c.next(t, protocol.EventLeave).msg
	if leave.JoinRef != join.JoinRef {
		t.Fatalf("leave join ref %q", leave.JoinRef)
	}
	c.send(t, reply(leave, "ok", `{}`))
	evs := r.wait(t, "CLOSED", func(e []Event) bool { return countStatus(e, Closed) == 1 })
	if got := statuses(evs); len(got) != 2 || got[0] != ChannelError || !errors.Is(evs[0].Err, ErrBindingMismatch) {
		t.Fatalf("events %s", describe(evs))
	}
	// realtime-js: a reply without postgres_changes is SUBSCRIBED anyway.
	ch2, _ := channel(t, s, "room2", ChannelConfig{PostgresChanges: []PostgresBinding{{Event: "*", Schema: "public"}}})
	go func() { done <- ch2.Subscribe(ctxT(t)) }()
	join = c.next(t, protocol.EventJoin).msg
	c.send(t, reply(join, "ok", `{}`))
	if err := <-done; err != nil || len(ch2.ServerIDs()) != 0 {
		t.Fatalf("Subscribe: %v, ids %v", err, ch2.ServerIDs())
	}
}

// A join without reply times out: TIMED_OUT, a leave with the old join
// ref, then a rejoin with a new ref.
func TestJoinTimeout(t *testing.T) {
	rs := newRawServer(t)
	s := dialURL(t, rs.URL, "anon-key", fast, func(o *Options) { o.HeartbeatInterval = -1; o.PushTimeout = 100 * time.Millisecond })
	c := rs.accept(t)
	ch, r := channel(t, s, "room1", ChannelConfig{})
	start := time.Now()
	err := ch.Subscribe(ctxT(t))
	if !errors.Is(err, ErrTimeout) || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("Subscribe: %v after %v", err, time.Since(start))
	}
	join := c.next(t, protocol.EventJoin).msg
	leave := c.next(t, protocol.EventLeave).msg
	rejoin := c.next(t, protocol.EventJoin).msg
	if leave.JoinRef != join.JoinRef || rejoin.JoinRef == join.JoinRef || rejoin.JoinRef != rejoin.Ref {
		t.Fatalf("join %s, leave %s, rejoin %s", join.JoinRef, leave.JoinRef, rejoin.JoinRef)
	}
	c.send(t, reply(rejoin, "ok", `{}`))
	evs := r.wait(t, "SUBSCRIBED", func(e []Event) bool { return countStatus(e, Subscribed) == 1 })
	if evs[0].Status != TimedOut || !errors.Is(evs[0].Err, ErrTimeout) {
		t.Fatalf("events %s", describe(evs))
	}
	// A late reply to the first join is ignored.
	c.send(t, reply(join, "error", `{"reason":"late"}`))
	if err := ch.Send(ctxT(t), "x", nil); err != nil || ch.State() != ChannelJoined {
		t.Fatalf("after a late reply: %v %v", err, ch.State())
	}
	// An acked broadcast without reply times out.
	ack, _ := channel(t, s, "acked", ChannelConfig{Broadcast: BroadcastConfig{Ack: true}})
	go func() { done := ack.Subscribe(ctxT(t)); _ = done }()
	j := c.next(t, protocol.EventJoin).msg
	c.send(t, reply(j, "ok", `{}`))
	eventually(t, "the acked channel to join", func() bool { return ack.State() == ChannelJoined })
	if err := ack.Send(ctxT(t), "x", nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("acked Send without reply: %v", err)
	}
	// An error reply to a track is a *ReplyError.
	go func() {
		f := c.next(t, protocol.EventPresence)
		c.send(t, reply(f.msg, "error", `{"reason":"Presence track payload must be a map"}`))
	}()
	var re *ReplyError
	if err := ack.Track(ctxT(t), []byte(`{}`)); !errors.As(err, &re) || re.Status != "error" || !strings.Contains(err.Error(), "must be a map") {
		t.Fatalf("Track: %v", err)
	}
}

// Heartbeats without replies: the client closes with 1000 "heartbeat
// timeout" and reconnects.
func TestHeartbeatTimeoutCloseFrame(t *testing.T) {
	rs := newRawServer(t)
	st := newRec[StatusChange]()
	dialURL(t, rs.URL, "anon-key", fast, func(o *Options) { o.HeartbeatInterval = 50 * time.Millisecond; o.OnStatus = st.add })
	c := rs.accept(t)
	hb := c.next(t, protocol.EventHeartbeat)
	if hb.msg.Topic != "phoenix" || hb.msg.JoinRef != "" || string(hb.data) != fmt.Sprintf(`[null,%q,"phoenix","heartbeat",{}]`, hb.msg.Ref) {
		t.Fatalf("heartbeat frame %s", hb.data)
	}
	cl := c.next(t, "close")
	if cl.closeCode != 1000 || cl.closeText != "heartbeat timeout" {
		t.Fatalf("close %d %q", cl.closeCode, cl.closeText)
	}
	c2 := rs.accept(t)
	// This one answers: no more timeouts.
	for i := 0; i < 3; i++ {
		h := c2.next(t, protocol.EventHeartbeat).msg
		c2.send(t, fmt.Sprintf(`[null,%q,"phoenix","phx_reply",{"status":"ok","response":{}}]`, h.Ref))
	}
	if n := len(st.all()); n > 5 {
		t.Fatalf("status changes %s", describe(st.all()))
	}
}
