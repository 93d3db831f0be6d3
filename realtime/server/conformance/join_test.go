package conformance

import (
	"regexp"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

// Scenario 2: a plain join, and the same with a "version" key and string
// booleans.
func TestS02PlainJoin(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil).On(t, "broadcast", map[string]any{"event": "x"})
	j := e.subscribe(ch)

	join, _ := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventJoin})
	wantText(t, join, `[`+q(j)+`,`+q(j)+`,"realtime:room1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}]`)
	reply, _ := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, j)})
	wantText(t, reply, `[`+q(j)+`,`+q(j)+`,"realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`)
	if st := ch.State(t); st != "joined" {
		t.Errorf("state %s, want joined", st)
	}

	// String booleans, and a token set after the channel was created
	// (which adds access_token and version to the join payload).
	b := e.client("b", jsharness.ClientOptions{})
	ch2 := b.Channel(t, "room", "room2", map[string]any{
		"broadcast": map[string]any{"ack": "true", "self": "TRUE"},
		"private":   "false",
	}).On(t, "broadcast", map[string]any{"event": "echo"})
	token := e.userToken("bob", time.Hour, nil)
	b.SetAuth(t, token)
	j2 := e.subscribe(ch2)
	join2, _ := e.frame(quick, match{Client: "b", Dir: "out", Event: protocol.EventJoin})
	wantText(t, join2, `[`+q(j2)+`,`+q(j2)+`,"realtime:room2","phx_join",{"config":{"broadcast":{"ack":"true","self":"TRUE"},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":"false"},"access_token":`+q(token)+`,"version":"realtime-js/2.119.0"}]`)
	// The server read ack and self as true: the send is acknowledged and
	// echoed back.
	if res := ch2.Broadcast(t, "echo", map[string]any{"n": 1}); res != "ok" {
		t.Errorf("send with string-boolean ack: %s, want ok", res)
	}
	got := ch2.Await(t, quick, match{Kind: kBroadcast, Event: "echo"})
	wantJSON(t, "self echo", got.Payload, `{"type":"broadcast","event":"echo","payload":{"n":1}}`)
}

var expiredReason = regexp.MustCompile(`^InvalidJWTToken: Token has expired \d+ seconds ago$`)

// Scenario 3: a join with an expired access_token is refused with the
// exact reason; realtime-js keeps rejoining on its schedule and the
// server answers each attempt on the same socket.
func TestS03JoinRejected(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil)
	c.SetAuth(t, e.userToken("alice", -10*time.Second, nil))
	mark := e.d.Mark()
	ch.Subscribe(t, 0)
	st := ch.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if !expiredReason.MatchString(st.Error) {
		t.Errorf("CHANNEL_ERROR message %q, want %v", st.Error, expiredReason)
	}
	wantJSON(t, "error cause", st.Cause, `{"reason":`+q(st.Error)+`}`)

	// The first join and three rejoins (+1 s, +2 s, +5 s), each answered.
	joins := e.d.AwaitN(t, 15*time.Second, match{Kind: kFrame, Client: "a", Dir: "out", Event: protocol.EventJoin}, 4)
	refs := map[string]bool{}
	for i, jf := range joins {
		m, _ := jf.Message()
		if m.JoinRef != m.Ref || refs[m.Ref] {
			t.Errorf("join %d: join_ref %q ref %q (refs so far %v)", i, m.JoinRef, m.Ref, refs)
		}
		refs[m.Ref] = true
		reply, rm := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, m.Ref)})
		if rm.JoinRef != m.Ref || rm.Topic != "realtime:room1" {
			t.Errorf("reply to join %s: %s", m.Ref, reply)
		}
		r, err := protocol.ParseReply(rm.Payload)
		if err != nil || r.Status != "error" || !expiredReason.MatchString(r.Reason()) {
			t.Errorf("reply to join %s: %s", m.Ref, reply)
		}
		if i > 0 {
			gap := jf.Time.Sub(joins[i-1].Time)
			want := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}[i-1]
			if gap < want-200*time.Millisecond || gap > want+2*time.Second {
				t.Errorf("rejoin %d after %v, want ~%v", i, gap, want)
			}
		}
	}
	for _, st := range e.d.AwaitN(t, quick, match{Kind: kStatus, Client: "a", Channel: "room", After: mark}, 4) {
		if st.Status != "CHANNEL_ERROR" || !expiredReason.MatchString(st.Error) {
			t.Errorf("status %s %q among the rejected joins", st.Status, st.Error)
		}
	}
	if evs := e.d.Events(match{Kind: kSocket, State: "close"}); len(evs) > 0 {
		t.Errorf("socket closed: %v", evs)
	}
	if conns := e.d.Events(match{Kind: kSocket, State: "open"}); len(conns) != 1 {
		t.Errorf("%d socket opens, want 1", len(conns))
	}
}
