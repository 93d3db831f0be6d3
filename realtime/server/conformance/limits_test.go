package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

func TestLimitChannelsPerClient(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{MaxChannelsPerClient: 2}))
	c := e.client("a", jsharness.ClientOptions{})
	e.subscribe(c.Channel(t, "r1", "r1", nil))
	e.subscribe(c.Channel(t, "r2", "r2", nil))
	third := c.Channel(t, "r3", "r3", nil)
	mark := e.d.Mark()
	third.Subscribe(t, 0)
	st := third.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if st.Error != "ChannelRateLimitReached: Too many channels" {
		t.Errorf("third channel: %q", st.Error)
	}
}

func TestLimitJoinsPerSecond(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{MaxJoinsPerSecond: 3}))
	c := e.client("a", jsharness.ClientOptions{})
	var chans []*jsharness.Channel
	for i := range 6 {
		chans = append(chans, c.Channel(t, fmt.Sprint("r", i), fmt.Sprint("r", i), nil))
	}
	mark := e.d.Mark()
	for _, ch := range chans {
		ch.Subscribe(t, 0)
	}
	refused := e.d.Await(t, quick, match{Kind: kStatus, Client: "a", Status: "CHANNEL_ERROR", After: mark,
		Where: func(ev jsharness.Event) bool { return ev.Error != "" && !strings.HasPrefix(ev.Error, "socket closed") }})
	if refused.Error != "ClientJoinRateLimitReached: Too many joins per second" {
		t.Errorf("join over the rate: %q", refused.Error)
	}
	// The server also closes the socket.
	e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "close", After: mark})
	if evs := e.d.Events(match{Kind: kSocket, Client: "a", State: "closing", After: mark}); len(evs) > 0 {
		t.Errorf("the client closed the socket itself: %v", evs)
	}
}

func TestLimitConcurrentUsers(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{MaxConcurrentUsers: 1}))
	a := e.client("a", jsharness.ClientOptions{})
	a.Connect(t)
	e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "open"})
	resp, body := dialRefused(t, e.srv.WSURL, "apikey="+e.srv.AnonKey()+"&vsn=2.0.0")
	if resp.StatusCode != 429 {
		t.Errorf("second connection: HTTP %d %s, want 429", resp.StatusCode, body)
	}
	wantJSON(t, "429 body", []byte(body), `{"error":"Too many connected users"}`)
	b := e.client("b", jsharness.ClientOptions{})
	b.Connect(t)
	e.d.Await(t, quick, match{Kind: kSocket, Client: "b", State: "error"})
	if evs := e.d.Events(match{Kind: kSocket, Client: "b", State: "open"}); len(evs) > 0 {
		t.Errorf("second client connected: %v", evs)
	}
}

func TestLimitEventsPerSecond(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{MaxEventsPerSecond: 5}))
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil).On(t, "system", nil)
	j := e.subscribe(ch)
	mark := e.d.Mark()
	// Sends after the shutdown fall back to REST (and are refused there),
	// so their results are not asserted.
	for i := range 20 {
		ch.SendAsync(t, map[string]any{"type": "broadcast", "event": "burst", "payload": map[string]any{"i": i}}, nil)
	}
	if msg, _ := e.awaitShutdown(ch, j, mark); msg != "Too many messages per second" {
		t.Errorf("shutdown message %q", msg)
	}
}

func TestLimitClientPresenceRate(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{ClientPresenceMaxCalls: 2, ClientPresenceWindow: time.Minute}))
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "a"}}).On(t, "system", nil)
	j := e.subscribe(ch)
	mark := e.d.Mark()
	for i := range 3 {
		ch.SendAsync(t, map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"i": i}}, nil)
	}
	if msg, _ := e.awaitShutdown(ch, j, mark); msg != "Client presence rate limit exceeded" {
		t.Errorf("shutdown message %q", msg)
	}
}

func TestLimitPayloadSize(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{MaxPayloadSizeKB: 1}))
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"ack": true}, "presence": map[string]any{"key": "a"}}).
		On(t, "system", nil)
	j := e.subscribe(ch)
	small, big := strings.Repeat("s", 200), strings.Repeat("b", 5000)

	if res := ch.Broadcast(t, "small", map[string]any{"s": small}); res != "ok" {
		t.Errorf("small broadcast: %s", res)
	}
	mark := e.d.Mark()
	if res := ch.Broadcast(t, "big", map[string]any{"s": big}); res != "error" {
		t.Errorf("oversize broadcast: %s, want error", res)
	}
	_, pm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventBroadcast, After: mark})
	reply, _ := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, pm.Ref), After: mark})
	wantText(t, reply, `[`+q(j)+`,`+q(pm.Ref)+`,"realtime:room1","phx_reply",{"status":"error","response":"payload_size_exceeded"}]`)
	if st := ch.State(t); st != "joined" {
		t.Errorf("state after an oversize broadcast: %s", st)
	}

	// REST refuses it with 422.
	mark = e.d.Mark()
	if _, err := ch.HTTPSend(t.Context(), "big", map[string]any{"s": big}); err == nil {
		t.Error("oversize httpSend succeeded")
	}
	if req := e.d.Await(t, quick, match{Kind: kHTTP, Client: "a", After: mark}); req.HTTPStatus != 422 {
		t.Errorf("oversize httpSend: %s, want 422", req)
	}

	// An oversize presence meta shuts the channel down.
	mark = e.d.Mark()
	ch.SendAsync(t, map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"s": big}}, nil)
	if msg, _ := e.awaitShutdown(ch, j, mark); msg != "Track message size exceeded" {
		t.Errorf("shutdown message %q", msg)
	}
}

func TestLimitPresenceEventsPerSecond(t *testing.T) {
	e := newEnv(t, servertest.WithLimits(server.Limits{MaxPresenceEventsPerSecond: 3, ClientPresenceMaxCalls: 100}))
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "a"}}).On(t, "system", nil)
	j := e.subscribe(ch)
	mark := e.d.Mark()
	for i := range 6 {
		ch.SendAsync(t, map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"i": i}}, nil)
	}
	if msg, _ := e.awaitShutdown(ch, j, mark); msg != "Too many presence messages per second" {
		t.Errorf("shutdown message %q", msg)
	}
}
