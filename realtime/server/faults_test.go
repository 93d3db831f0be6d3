package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// adminCall sends an admin request with the service_role key and decodes
// the JSON answer into out (when not nil).
func adminCall(t *testing.T, s *servertest.Server, method, path, body string, out any) int {
	t.Helper()
	status, resp := httpDo(t, method, s.URL+path, s.ServiceRoleKey(), "application/json", body)
	if out != nil && status < 300 {
		if err := json.Unmarshal([]byte(resp), out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, status, resp, err)
		}
	}
	return status
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for _, tc := range []struct {
		token  string
		status int
	}{{"", 401}, {"garbage", 401}, {s.AnonKey(), 403}, {s.UserToken(t, "u", time.Hour, nil), 403}, {s.ServiceRoleKey(), 200}} {
		status, body := httpDo(t, "GET", s.URL+"/admin/stats", tc.token, "", "")
		if status != tc.status {
			t.Errorf("token %q: %d %s, want %d", server.MaskToken(tc.token), status, body, tc.status)
		}
	}
	// The apikey header and query parameter work too.
	if status, _ := httpDo(t, "GET", s.URL+"/admin/stats?apikey="+s.ServiceRoleKey(), "", "", ""); status != 200 {
		t.Errorf("apikey query: %d", status)
	}
	if status := adminCall(t, s, "GET", "/admin/nope", "", nil); status != 404 {
		t.Errorf("unknown admin path: %d", status)
	}
	if status := adminCall(t, s, "POST", "/admin/kick", `{"topic":"x","mode":"explode"}`, nil); status != 400 {
		t.Errorf("bad kick mode: %d", status)
	}
	if status := adminCall(t, s, "POST", "/admin/pause", `{"id":"conn-999","for":"1s"}`, nil); status != 404 {
		t.Errorf("pause unknown conn: %d", status)
	}
	if status := adminCall(t, s, "POST", "/admin/drop", `{"idz":[]}`, nil); status != 400 {
		t.Errorf("unknown field: %d", status)
	}
}

func TestListConnectionsAndChannels(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	user := s.UserToken(t, "alice", time.Hour, map[string]any{"tenant_id": "acme"})
	a := dial(t, s, user, "2.0.0")
	b := dial(t, s, s.AnonKey(), "1.0.0")
	ja, _ := a.join("realtime:room1", `{"config":{"presence":{"key":"alice","enabled":true},"private":true,"postgres_changes":[{"event":"*","schema":"public"}]}}`)
	ref := a.send(ja, "realtime:room1", protocol.EventPresence, `{"type":"presence","event":"track","payload":{"status":"online"}}`)
	a.awaitReply(ref)
	b.join("realtime:room1", defaultJoin)

	for _, conns := range [][]server.ConnInfo{s.Conns(), adminConns(t, s)} {
		if len(conns) != 2 {
			t.Fatalf("connections: %+v", conns)
		}
		ca, cb := conns[0], conns[1]
		if ca.Sub != "alice" || ca.Role != "authenticated" || ca.TenantID != "acme" || ca.Vsn != "2.0.0" || cb.Vsn != "1.0.0" || cb.Role != "anon" {
			t.Errorf("conn infos: %+v / %+v", ca, cb)
		}
		if len(ca.Channels) != 1 {
			t.Fatalf("alice's channels: %+v", ca.Channels)
		}
		ch := ca.Channels[0]
		if ch.Topic != "realtime:room1" || ch.JoinRef != ja || !ch.Private || ch.PresenceKey != "alice" || !ch.PresenceEnabled ||
			!strings.Contains(string(ch.Meta), `"status":"online"`) || len(ch.PostgresChanges) != 1 {
			t.Errorf("alice's channel: %+v", ch)
		}
	}
	var topics struct {
		Channels []server.TopicInfo `json:"channels"`
	}
	if status := adminCall(t, s, "GET", "/admin/channels", "", &topics); status != 200 || len(topics.Channels) != 2 {
		t.Fatalf("/admin/channels: %d %+v", status, topics)
	}
	priv := topics.Channels[1]
	if !priv.Private || priv.Subscribers != 1 || !strings.Contains(string(priv.Presence), `"alice":{"metas":[{"status":"online","phx_ref":`) {
		t.Errorf("private topic info: %+v (%s)", priv, priv.Presence)
	}
	var st server.Stats
	if status := adminCall(t, s, "GET", "/admin/stats", "", &st); status != 200 || st.Connections != 2 || st.Channels != 2 || st.Presences != 1 {
		t.Errorf("/admin/stats: %d %+v", status, st)
	}
}

func adminConns(t *testing.T, s *servertest.Server) []server.ConnInfo {
	t.Helper()
	var out struct {
		Connections []server.ConnInfo `json:"connections"`
	}
	if status := adminCall(t, s, "GET", "/admin/connections", "", &out); status != 200 {
		t.Fatalf("/admin/connections: %d", status)
	}
	return out.Connections
}

// abrupt reports whether err ends a connection without a close frame
// (gorilla reports that as 1006, abnormal closure).
func abrupt(err error) bool {
	var ce *websocket.CloseError
	return err != nil && (!errors.As(err, &ce) || ce.Code == websocket.CloseAbnormalClosure)
}

func TestDrop(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a, b, c := dialV2(t, s), dialV2(t, s), dialV2(t, s)
	a.join(topic, joinPayload(`{}`, `{"key":"a","enabled":true}`, false, ""))
	jb, _ := b.join(topic, joinPayload(`{}`, `{"key":"b","enabled":true}`, false, ""))
	c.join(topic, defaultJoin)
	ref := b.send(jb, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{}}`)
	b.awaitReply(ref)
	ids := s.Conns()
	// Go API: drop one.
	if n := s.Drop(ids[1].ID); n != 1 {
		t.Errorf("Drop(b) = %d", n)
	}
	if err := b.awaitClosed(); !abrupt(err) {
		t.Errorf("b closed with %v, want an abrupt close", err)
	}
	// Its presence left: a gets the leave diff.
	a.await("b's leave", func(f inFrame) bool {
		if !isEvent(topic, protocol.EventPresenceDiff)(f) {
			return false
		}
		_, l := diffOf(t, f)
		return len(l["b"]) == 1
	})
	// HTTP: drop by id, then all.
	var resp struct{ Dropped int }
	if status := adminCall(t, s, "POST", "/admin/drop", `{"ids":["`+ids[2].ID+`","conn-nope"]}`, &resp); status != 200 || resp.Dropped != 1 {
		t.Errorf("/admin/drop one: %d %+v", status, resp)
	}
	if err := c.awaitClosed(); !abrupt(err) {
		t.Errorf("c closed with %v", err)
	}
	d := dialV2(t, s)
	d.sync()
	if status := adminCall(t, s, "POST", "/admin/drop", `{}`, &resp); status != 200 || resp.Dropped != 2 {
		t.Errorf("/admin/drop all: %d %+v", status, resp)
	}
	for _, cl := range []*client{a, d} {
		if err := cl.awaitClosed(); !abrupt(err) {
			t.Errorf("closed with %v", err)
		}
	}
	eventually(t, "no connections", func() bool { st := s.Stats(); return st.Connections == 0 && st.Channels == 0 && st.Topics == 0 })
	if st := s.Stats(); st.Drops != 4 {
		t.Errorf("Drops = %d, want 4", st.Drops)
	}
}

func TestKick(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	ja, _ := a.join(topic, joinPayload(`{}`, `{"key":"a","enabled":true}`, false, ""))
	jb, _ := b.join(topic, joinPayload(`{}`, `{"key":"b","enabled":true}`, false, ""))
	ref := a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{}}`)
	a.awaitReply(ref)
	jo, _ := a.join("realtime:other", defaultJoin)

	// Go API, error mode: phx_error with join_ref = ref = the join ref, on both.
	if n := s.Kick(topic, server.KickError); n != 2 {
		t.Errorf("Kick = %d, want 2", n)
	}
	for _, tc := range []struct {
		c *client
		j string
	}{{a, ja}, {b, jb}} {
		f := tc.c.awaitEvent(topic, protocol.EventError)
		if got, want := string(f.raw), fmt.Sprintf(`["%s","%s","realtime:room1","phx_error",{"reason":"channel_crash"}]`, tc.j, tc.j); got != want {
			t.Errorf("kick error frame %s, want %s", got, want)
		}
	}
	// The client rejoins (as realtime-js does after 1 s) and is accepted.
	ja2, _ := a.join(topic, joinPayload(`{}`, `{"key":"a","enabled":true}`, false, ""))
	st := a.await("fresh state", func(f inFrame) bool {
		return isEvent(topic, protocol.EventPresenceState)(f) && f.msg.JoinRef == ja2
	})
	if string(st.msg.Payload) != "{}" {
		t.Errorf("presence after kick: %s (kicked presences must leave)", st.msg.Payload)
	}
	// HTTP, close mode, by sub-topic name.
	var resp struct{ Kicked int }
	if status := adminCall(t, s, "POST", "/admin/kick", `{"topic":"room1","mode":"close"}`, &resp); status != 200 || resp.Kicked != 1 {
		t.Errorf("/admin/kick: %d %+v", status, resp)
	}
	f := a.await("kick close", func(f inFrame) bool { return isEvent(topic, protocol.EventClose)(f) && f.msg.JoinRef == ja2 })
	if f.msg.Ref != ja2 {
		t.Errorf("phx_close %s", f.raw)
	}
	// The other channel is untouched.
	ref = a.send(jo, "realtime:other", protocol.EventLeave, "{}")
	if _, r := a.awaitReply(ref); r.Status != "ok" {
		t.Errorf("other channel: %+v", r)
	}
	if n := s.Kick("realtime:nobody", server.KickClose); n != 0 {
		t.Errorf("Kick of an empty topic = %d", n)
	}
}

func TestRejectJoins(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock))
	c := dialV2(t, s)
	// The next 2 joins, default reason.
	s.RejectJoins(server.Rejection{Count: 2})
	for i := range 2 {
		if r := c.joinErr(fmt.Sprint("realtime:r", i), defaultJoin); r != "RealtimeRestarting: Realtime is restarting, please standby" {
			t.Errorf("rejected join %d: %q", i, r)
		}
	}
	c.join("realtime:r2", defaultJoin)
	// For a duration with a chosen reason (HTTP).
	var resp map[string]any
	if status := adminCall(t, s, "POST", "/admin/reject-joins", `{"for":"30s","reason":"TenantNotFound: Tenant with the given ID does not exist"}`, &resp); status != 200 {
		t.Fatalf("/admin/reject-joins: %d", status)
	}
	for i := range 3 {
		if r := c.joinErr(fmt.Sprint("realtime:d", i), defaultJoin); r != "TenantNotFound: Tenant with the given ID does not exist" {
			t.Errorf("join during rejection: %q", r)
		}
	}
	clock.Advance(30 * time.Second)
	c.join("realtime:d0", defaultJoin)
	// Count and duration in milliseconds; the zero rejection clears.
	adminCall(t, s, "POST", "/admin/reject-joins", `{"count":5,"for":60000}`, nil)
	c.joinErr("realtime:x", defaultJoin)
	adminCall(t, s, "POST", "/admin/reject-joins", `{}`, nil)
	c.join("realtime:x", defaultJoin)
	if st := s.Stats(); st.RejectedJoins != 6 {
		t.Errorf("RejectedJoins = %d, want 6", st.RejectedJoins)
	}
}

func TestPause(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock))
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	ja, _ := a.join(topic, defaultJoin)
	jb, _ := b.join(topic, defaultJoin)
	ida := s.Conns()[0].ID
	if err := s.Pause(ida, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !s.Conns()[0].Paused {
		t.Errorf("Conns does not show the pause")
	}
	// While paused: a's heartbeat goes unanswered, broadcasts to it wait,
	// and what it sends is not read.
	href := a.send("", "phoenix", protocol.EventHeartbeat, "{}")
	b.broadcastJSON(jb, topic, "to-a", `{}`)
	a.broadcastJSON(ja, topic, "from-a", `{}`)
	b.sync()
	if len(b.find(isBroadcast(topic, "from-a"))) != 0 {
		t.Errorf("a paused socket's frame was read")
	}
	if len(a.all()) != 1 { // only the join reply
		t.Errorf("a paused socket was written to:\n%s", a.dump())
	}
	// Resume: everything flows, in order.
	clock.Advance(10 * time.Second)
	a.awaitReply(href)
	a.await("to-a", isBroadcast(topic, "to-a"))
	b.await("from-a", isBroadcast(topic, "from-a"))

	// HTTP pause, real time: the heartbeat is answered only after the pause.
	s2 := servertest.New(t)
	c := dialV2(t, s2)
	c.sync()
	var resp map[string]string
	// The pause starts during the admin call: time from before it, so a
	// slow call (under -race) does not eat into the measured pause.
	start := time.Now()
	if status := adminCall(t, s2, "POST", "/admin/pause", `{"id":"`+s2.Conns()[0].ID+`","for":"300ms"}`, &resp); status != 200 {
		t.Fatalf("/admin/pause: %d", status)
	}
	c.sync()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("heartbeat answered after %v during a 300ms pause", d)
	}
	if err := s2.Pause("conn-nope", time.Second); err == nil {
		t.Errorf("Pause of an unknown connection succeeded")
	}
}

func TestRestartSameAddress(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a := dialV2(t, s)
	ja, _ := a.join(topic, joinPayload(`{}`, `{"key":"a","enabled":true}`, false, ""))
	ref := a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{}}`)
	a.awaitReply(ref)
	s.RejectJoins(server.Rejection{Count: 100})
	addr := s.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Restart(ctx, 300*time.Millisecond) }()
	if err := a.awaitClosed(); !abrupt(err) {
		t.Errorf("restart closed the socket with %v, want abrupt", err)
	}
	// During the downtime nothing listens.
	eventually(t, "the listener to go down", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := <-done; err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.Addr() != addr {
		t.Errorf("restarted on %s, want %s", s.Addr(), addr)
	}
	// State was cleared: fresh presence, no rejections.
	b := dialV2(t, s)
	b.join(topic, joinPayload(`{}`, `{"enabled":true}`, false, ""))
	st := b.awaitEvent(topic, protocol.EventPresenceState)
	if string(st.msg.Payload) != "{}" {
		t.Errorf("presence after restart: %s", st.msg.Payload)
	}
	// HTTP restart: 202 at once, the server comes back on the same address.
	var resp map[string]string
	if status := adminCall(t, s, "POST", "/admin/restart", `{"downtime":"100ms"}`, &resp); status != 202 {
		t.Fatalf("/admin/restart: %d", status)
	}
	if err := b.awaitClosed(); !abrupt(err) {
		t.Errorf("admin restart closed with %v", err)
	}
	eventually(t, "the server to come back", func() bool {
		ws, _, err := websocket.DefaultDialer.Dial(s.SocketURL(s.AnonKey(), "2.0.0"), nil)
		if err == nil {
			ws.Close()
		}
		return err == nil && s.Stats().Restarts == 2
	})
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Not parallel: it checks the whole process for goroutines.
	before := goleak.IgnoreCurrent()
	srv, err := server.New(server.Config{JWTSecret: []byte("secret"), Limits: server.Limits{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	url := "ws://" + srv.Addr() + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + srv.AnonKey()
	var conns []*websocket.Conn
	for i := range 20 {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ws)
		msg := fmt.Sprintf(`["%d","%d","realtime:room1","phx_join",{"config":{"presence":{"enabled":true}}}]`, i+1, i+1)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Pause(srv.Conns()[0].ID, time.Hour) // a paused socket must not hold Close up
	// One client stops reading; Close must not wait on it either.
	srv.RejectJoins(server.Rejection{For: time.Hour})
	srv.Broadcast("room1", "x", json.RawMessage(`{}`))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ws := range conns {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
		ws.Close()
	}
	if err := srv.Start("127.0.0.1:0"); !errors.Is(err, server.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if err := srv.Restart(context.Background(), 0); !errors.Is(err, server.ErrClosed) {
		t.Errorf("Restart after Close: %v", err)
	}
	goleak.VerifyNone(t, before)
}

func TestShutdownSendsCloseFrames(t *testing.T) {
	t.Parallel()
	srv, err := server.New(server.Config{JWTSecret: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr()+"/realtime/v1/websocket?vsn=2.0.0&apikey="+srv.AnonKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	errc := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				errc <- err
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	var ce *websocket.CloseError
	if err := <-errc; !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("client saw %v, want close 1001", err)
	}
}

func TestHandlerInAnotherServer(t *testing.T) {
	t.Parallel()
	srv, err := server.New(server.Config{JWTSecret: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http", "ws", 1)+"/realtime/v1/websocket?vsn=2.0.0&apikey="+srv.AnonKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`["1","1","realtime:a","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(context.Background(), 0); !errors.Is(err, server.ErrNotStarted) {
		t.Errorf("Restart without Start: %v", err)
	}
	if srv.URL() != "" {
		t.Errorf("URL() = %q without Start", srv.URL())
	}
	// Close ends the hijacked connections it serves even so.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break
		}
	}
}

// TestListingsBounded: the listings (Conns, Topics, /admin/connections,
// /admin/channels) copy at most MaxListedPresenceBytes of presence, however
// much is tracked: the metas and states beyond are left out with their
// sizes, and the replies stay small.
func TestListingsBounded(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.MaxPresenceBytesPerConn = 64 << 20 }))
	c := dialV2(t, s)
	meta := `{"pad":"` + strings.Repeat("m", 1_000_000) + `"}`
	const n = 8 // 8 MB tracked, twice the listing's budget
	for i := range n {
		topic := fmt.Sprintf("realtime:big-%d", i)
		jr, _ := c.join(topic, joinPayload(`{}`, `{"enabled":true}`, false, ""))
		if _, r := c.awaitReply(c.send(jr, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":`+meta+`}`)); r.Status != protocol.StatusOK {
			t.Fatalf("track %d: %+v", i, r)
		}
	}
	listed, omitted := 0, 0
	for _, ch := range s.Conns()[0].Channels {
		if ch.MetaBytes < 1_000_000 {
			t.Errorf("%s: meta_bytes %d", ch.Topic, ch.MetaBytes)
		}
		switch {
		case ch.MetaOmitted && ch.Meta == nil:
			omitted++
		case !ch.MetaOmitted && len(ch.Meta) == ch.MetaBytes:
			listed++
		default:
			t.Errorf("%s: %d bytes of meta listed, omitted %v", ch.Topic, len(ch.Meta), ch.MetaOmitted)
		}
	}
	if listed == 0 || omitted == 0 || listed*1_000_000 > server.MaxListedPresenceBytes {
		t.Errorf("Conns: %d metas listed, %d omitted", listed, omitted)
	}
	listed, omitted = 0, 0
	for _, tp := range s.Topics() {
		if tp.PresenceKeys != 1 || tp.PresenceBytes < 1_000_000 {
			t.Errorf("%s: %d keys, %d bytes", tp.Topic, tp.PresenceKeys, tp.PresenceBytes)
		}
		if tp.PresenceOmitted {
			omitted++
		} else {
			listed++
		}
	}
	if listed == 0 || omitted == 0 {
		t.Errorf("Topics: %d states listed, %d omitted", listed, omitted)
	}
	for _, path := range []string{"/admin/connections", "/admin/channels"} {
		status, body := httpDo(t, "GET", s.URL+path, s.ServiceRoleKey(), "", "")
		var reply struct{ Total, Listed int }
		if err := json.Unmarshal([]byte(body), &reply); err != nil || status != 200 {
			t.Fatalf("%s: %d %v", path, status, err)
		}
		if len(body) > server.MaxListedPresenceBytes+64<<10 || reply.Total == 0 || reply.Listed != reply.Total {
			t.Errorf("%s: %d bytes, total %d, listed %d", path, len(body), reply.Total, reply.Listed)
		}
	}
}
