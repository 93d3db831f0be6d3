package server_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	d := server.DefaultLimits()
	want := server.Limits{MaxChannelsPerClient: 100, MaxJoinsPerSecond: 100, MaxConcurrentUsers: 200, MaxEventsPerSecond: 100,
		MaxPresenceEventsPerSecond: 1000, ClientPresenceMaxCalls: 5, ClientPresenceWindow: 30 * time.Second, MaxPayloadSizeKB: 3000}
	if d != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", d, want)
	}
}

func TestLimitChannelsPerClientDefault(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock)) // default limits: 100 channels
	c := dialV2(t, s)
	for i := range 100 {
		if i > 0 && i%90 == 0 {
			clock.Advance(time.Second) // stay under 100 joins per second
		}
		c.join(fmt.Sprintf("realtime:c%d", i), defaultJoin)
	}
	clock.Advance(time.Second)
	if r := c.joinErr("realtime:c100", defaultJoin); r != "ChannelRateLimitReached: Too many channels" {
		t.Errorf("101st channel: %q", r)
	}
	// Rejoining a joined topic is not a new channel.
	c.join("realtime:c5", defaultJoin)
}

func TestLimitJoinsPerSecond(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxJoinsPerSecond: 3}))
	c := dialV2(t, s)
	for i := range 3 {
		c.join(fmt.Sprintf("realtime:j%d", i), defaultJoin)
	}
	// While the rate is exceeded, connecting is refused too.
	dialRefused(t, s.SocketURL(s.AnonKey(), "2.0.0"), nil, http.StatusTooManyRequests, "Too many joins per second")
	if r := c.joinErr("realtime:j3", defaultJoin); r != "ClientJoinRateLimitReached: Too many joins per second" {
		t.Errorf("4th join: %q", r)
	}
	// ... and the socket is closed (1001), as Supabase disconnects it.
	var ce *websocket.CloseError
	if err := c.awaitClosed(); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("socket after join rate limit: %v, want close 1001", err)
	}
	clock.Advance(time.Second)
	c2 := dialV2(t, s)
	c2.join("realtime:j3", defaultJoin)
}

func TestLimitConcurrentUsers(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxConcurrentUsers: 2}))
	a := dialV2(t, s)
	dialV2(t, s).sync()
	a.sync()
	dialRefused(t, s.SocketURL(s.AnonKey(), "2.0.0"), nil, http.StatusTooManyRequests, "Too many connected users")
	a.close()
	eventually(t, "a slot to free", func() bool { return s.Stats().Connections == 1 })
	dialV2(t, s).sync()
}

func TestLimitEventsPerSecond(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxEventsPerSecond: 5}))
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	ja, _ := a.join(topic, defaultJoin)
	b.join(topic, defaultJoin)
	for i := range 5 {
		a.broadcastJSON(ja, topic, fmt.Sprint("e", i), `{}`)
	}
	b.await("5th", isBroadcast(topic, "e4"))
	// REST shares the budget: 429 now.
	status, body := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
		`{"messages":[{"topic":"room1","event":"r","payload":{}}]}`)
	if status != 429 || !strings.Contains(body, "You have exceeded your rate limit") {
		t.Errorf("REST over the limit: %d %s", status, body)
	}
	a.broadcastJSON(ja, topic, "e5", `{}`)
	systemThenClose(t, a, topic, ja, "Too many messages per second")
	b.sync()
	if len(b.find(isBroadcast(topic, "e5"))) != 0 {
		t.Errorf("the broadcast over the limit was delivered")
	}
	// A second later the window has room again; a batch too big for it is refused with its own message.
	clock.Advance(1100 * time.Millisecond)
	status, body = httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
		`{"messages":[`+strings.Repeat(`{"topic":"room1","event":"r","payload":{}},`, 6)+`{"topic":"room1","event":"r","payload":{}}]}`)
	if status != 429 || !strings.Contains(body, "Too many messages to broadcast, please reduce the batch size") {
		t.Errorf("REST batch over the limit: %d %s", status, body)
	}
	status, _ = httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
		`{"messages":[{"topic":"room1","event":"ok","payload":{}}]}`)
	if status != 202 {
		t.Errorf("REST after the window: %d", status)
	}
	b.await("after window", isBroadcast(topic, "ok"))
}

func TestLimitPresence(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{
		ClientPresenceMaxCalls: 2, ClientPresenceWindow: time.Minute, MaxPresenceEventsPerSecond: 3, MaxPayloadSizeKB: 1}))
	const topic = "realtime:room1"
	a := dialV2(t, s)
	ja, _ := a.join(topic, defaultJoin)
	for i := range 2 {
		ref := a.send(ja, topic, protocol.EventPresence, fmt.Sprintf(`{"type":"presence","event":"track","payload":{"i":%d}}`, i))
		a.awaitReply(ref)
	}
	a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"i":9}}`)
	systemThenClose(t, a, topic, ja, "Client presence rate limit exceeded")

	// The window resets after ClientPresenceWindow.
	clock.Advance(2 * time.Second)
	jb, _ := a.join("realtime:size", defaultJoin)
	big := strings.Repeat("x", 1001)
	a.send(jb, "realtime:size", protocol.EventPresence, `{"type":"presence","event":"track","payload":{"s":"`+big+`"}}`)
	systemThenClose(t, a, "realtime:size", jb, "Track message size exceeded")

	// Server-wide presence events per second: joins with presence count as syncs.
	clock.Advance(2 * time.Second)
	var refs []string
	for i := range 3 {
		tp := fmt.Sprintf("realtime:p%d", i)
		j, _ := a.join(tp, joinPayload(`{}`, `{"enabled":true}`, false, ""))
		a.awaitEvent(tp, protocol.EventPresenceState)
		refs = append(refs, j)
	}
	// The 4th presence event (a track) is over the limit.
	a.send(refs[0], "realtime:p0", protocol.EventPresence, `{"type":"presence","event":"track","payload":{}}`)
	systemThenClose(t, a, "realtime:p0", refs[0], "Too many presence messages per second")
	// A join with presence over the limit: ok reply, then shutdown.
	j, _ := a.join("realtime:p9", joinPayload(`{}`, `{"enabled":true}`, false, ""))
	systemThenClose(t, a, "realtime:p9", j, "Too many presence messages per second")
}

func TestLimitPayloadSize(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxPayloadSizeKB: 1}))
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	ja, _ := a.join(topic, joinPayload(`{"ack":true}`, `{}`, false, ""))
	b.join(topic, defaultJoin)
	big := []byte(`{"s":"` + strings.Repeat("x", 1000) + `"}`)
	ref := a.broadcastBinary(ja, topic, "big", big, false)
	f, _ := a.awaitReply(ref)
	if got, want := string(f.raw), fmt.Sprintf(`["%s","%s","realtime:room1","phx_reply",{"status":"error","response":"payload_size_exceeded"}]`, ja, ref); got != want {
		t.Errorf("oversize ack %s, want %s", got, want)
	}
	ref = a.broadcastBinary(ja, topic, "small", []byte(`{}`), false)
	a.awaitReply(ref)
	b.await("small", isBroadcast(topic, "small"))
	if len(b.find(isBroadcast(topic, "big"))) != 0 {
		t.Errorf("an oversize broadcast was delivered")
	}
	status, body := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
		`{"messages":[{"topic":"room1","event":"big","payload":`+string(big)+`}]}`)
	if status != 422 || !strings.Contains(body, "Payload size exceeds tenant limit") {
		t.Errorf("REST oversize: %d %s", status, body)
	}
	status, body = httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast/room1/events/big", s.AnonKey(), "application/octet-stream", string(big))
	if status != 422 || !strings.Contains(body, "Payload size exceeds tenant limit") {
		t.Errorf("REST single oversize: %d %s", status, body)
	}
}

func TestLimitsOff(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithLimits(server.Limits{Off: true}))
	c := dialV2(t, s)
	for i := range 150 {
		c.join(fmt.Sprintf("realtime:c%d", i), defaultJoin)
	}
	j, _ := c.join("realtime:x", defaultJoin)
	for i := range 150 {
		c.broadcastJSON(j, "realtime:x", fmt.Sprint(i), `{}`)
	}
	c.sync()
	if st := s.Stats(); st.RateLimited != 0 || st.Channels != 151 {
		t.Errorf("with limits off: %+v", st)
	}
}

func TestSlowConsumerDropped(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithLimits(server.Limits{Off: true}),
		servertest.WithConfig(func(c *server.Config) { c.OutboundQueue = 64 }))
	const topic = "realtime:room1"
	pub := dialV2(t, s)
	jp, _ := pub.join(topic, defaultJoin)
	fast := dialV2(t, s)
	fast.join(topic, defaultJoin)
	// The slow consumer joins with a raw connection and then never reads.
	slow, _, err := websocket.DefaultDialer.Dial(s.SocketURL(s.AnonKey(), "2.0.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteMessage(websocket.TextMessage, []byte(`["1","1","realtime:room1","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the slow consumer to join", func() bool { return s.Stats().Channels == 3 })
	payload := `{"fill":"` + strings.Repeat("x", 16<<10) + `"}`
	n := 0
	for s.Stats().SlowConsumerDrops == 0 {
		pub.broadcastJSON(jp, topic, "flood", payload)
		n++
		if n > 5000 {
			t.Fatalf("no slow consumer drop after %d broadcasts", n)
		}
		if n%32 == 0 {
			// The fast consumer keeps up: it has read everything so far.
			want := n
			eventually(t, "the fast consumer to keep up", func() bool { return len(fast.find(isBroadcast(topic, "flood"))) >= want })
		}
	}
	pub.broadcastJSON(jp, topic, "after", `{}`)
	fast.await("delivery after the drop", isBroadcast(topic, "after"))
	if st := s.Stats(); st.SlowConsumerDrops != 1 || st.Connections != 2 {
		t.Errorf("after the drop: drops=%d connections=%d, want 1 and 2", st.SlowConsumerDrops, st.Connections)
	}
}
