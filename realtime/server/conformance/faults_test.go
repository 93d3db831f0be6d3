package conformance

import (
	"context"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

// A connection the server stops serving makes realtime-js's heartbeat
// time out: channels error with "heartbeat timeout", the client closes the
// socket with 1000 "heartbeat timeout", reconnects and rejoins.
func TestHeartbeatTimeoutAndRecovery(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{APIKey: e.userToken("alice", time.Hour, nil), HeartbeatIntervalMs: 1000})
	ch := c.Channel(t, "room", "room1", nil).On(t, "broadcast", map[string]any{"event": "*"})
	e.subscribe(ch)
	first := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "open"})

	mark := e.d.Mark()
	if err := e.srv.Pause(e.connID("alice"), 4*time.Second); err != nil {
		t.Fatal(err)
	}
	e.d.Await(t, quick, match{Kind: kHeartbeat, Client: "a", Status: "timeout", After: mark})
	st := ch.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if st.Error != "heartbeat timeout" {
		t.Errorf("CHANNEL_ERROR %q, want heartbeat timeout", st.Error)
	}
	closing := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "closing", After: mark})
	if closing.Code != 1000 || closing.Reason != "heartbeat timeout" || closing.Conn != first.Conn {
		t.Errorf("client close %s, want 1000 heartbeat timeout on the first connection", closing)
	}
	open := e.d.Await(t, slow, match{Kind: kSocket, Client: "a", State: "open", After: mark})
	if open.Conn == first.Conn {
		t.Errorf("no new connection")
	}
	ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
	e.heartbeats(c, open.Seq, 2)
	e.fence(c, ch.Topic)
}

// Restart on the same address: every socket drops, the listener comes
// back, and realtime-js reconnects and rejoins.
//
// The downtime is shorter than realtime-js's first reconnect delay (1 s):
// Node 22.23.3's WebSocket (undici 6.28.1) fires no close event when a
// connection attempt is refused, so a realtime-js reconnect that hits a
// closed port stays "connecting" forever. That is the runtime's
// behaviour, not the server's.
func TestRestartSameAddress(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "a"}}).
		On(t, "presence", map[string]any{"event": "*"})
	e.subscribe(ch)
	if res := ch.Track(t, map[string]any{"v": 1}); res != "ok" {
		t.Errorf("track: %s", res)
	}
	first := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "open"})
	addr := e.srv.Addr()

	mark := e.d.Mark()
	ctx, cancel := context.WithTimeout(context.Background(), slow)
	defer cancel()
	if err := e.srv.Restart(ctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if e.srv.Addr() != addr {
		t.Errorf("restarted on %s, want %s", e.srv.Addr(), addr)
	}
	e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "close", After: mark})
	st := ch.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	open := e.d.Await(t, slow, match{Kind: kSocket, Client: "a", State: "open", After: mark})
	if open.Conn == first.Conn {
		t.Errorf("no new connection")
	}
	ch.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
	nj := *ch.Info(t).JoinRef
	state, _ := e.frame(quick, match{Client: "a", Dir: "in", Topic: ch.Topic, Event: protocol.EventPresenceState, After: mark})
	wantText(t, state, `[`+q(nj)+`,null,"realtime:room1","presence_state",{}]`)
	e.fence(c, ch.Topic)
}
