package conformance

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

var expiredMessage = regexp.MustCompile(`^Token has expired \d+ seconds ago$`)

// awaitShutdown waits for the system error and phx_close that end ch on
// the server's initiative, checks both frames and the CLOSED status, and
// returns the system message and the Seq of the CLOSED status.
func (e *env) awaitShutdown(ch *jsharness.Channel, joinRef string, after int) (string, int) {
	e.t.Helper()
	t := e.t
	sys, sm := e.frame(slow, match{Client: ch.Client.Name, Dir: "in", Topic: ch.Topic, Event: protocol.EventSystem, After: after})
	var p struct {
		Extension, Status, Message, Channel string
	}
	if err := json.Unmarshal(sm.Payload, &p); err != nil {
		t.Fatalf("system payload %s: %v", sm.Payload, err)
	}
	wantText(t, sys, `[`+q(joinRef)+`,null,`+q(ch.Topic)+`,"system",{"extension":"system","status":"error","message":`+q(p.Message)+`,"channel":`+q(protocol.SubTopic(ch.Topic))+`}]`)
	closeFrame, _ := e.frame(quick, match{Client: ch.Client.Name, Dir: "in", Topic: ch.Topic, Event: protocol.EventClose, After: sys.Seq})
	wantText(t, closeFrame, `[`+q(joinRef)+`,`+q(joinRef)+`,`+q(ch.Topic)+`,"phx_close",{}]`)
	closed := ch.AwaitStatus(t, quick, sys.Seq, "CLOSED")
	if slices.Contains(ch.Client.State(t).Channels, ch.Topic) {
		t.Errorf("closed channel %s still on the client", ch.Topic)
	}
	return p.Message, closed.Seq
}

// noRejoin lets two heartbeat round trips pass (longer than the 1 s rejoin
// delay) and fails if the client sent a join for topic after mark. The
// client must keep its socket without channels (see keepSocket).
func (e *env) noRejoin(c *jsharness.Client, topic string, after int) {
	e.t.Helper()
	upto := e.heartbeats(c, e.d.Mark(), 2)
	e.noFrames("rejoin after phx_close", after, upto, match{Client: c.Name, Dir: "out", Topic: topic, Event: protocol.EventJoin})
}

// Scenario 8: a new valid token keeps the channel; an expired one closes
// it (system error, then phx_close, no rejoin).
func TestS08TokenRefreshAndExpiry(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{DisconnectOnEmptyChannelsAfterMs: keepSocket()})
	ch := c.Channel(t, "room", "room1", nil).On(t, "broadcast", map[string]any{"event": "*"}).On(t, "system", nil)
	j := e.subscribe(ch)

	mark := e.d.Mark()
	fresh := e.userToken("alice", time.Hour, nil)
	c.SetAuth(t, fresh)
	push, pm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventAccessToken, After: mark})
	wantText(t, push, `[`+q(j)+`,`+q(pm.Ref)+`,"realtime:room1","access_token",{"access_token":`+q(fresh)+`}]`)
	f := e.fence(c, ch.Topic)
	e.noFrames("a reply to access_token", mark, f, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, pm.Ref)})
	e.noFrames("a frame ending the channel", mark, f, match{Client: "a", Dir: "in", Where: func(ev jsharness.Event) bool {
		m, err := ev.Message()
		return err == nil && (m.Event == protocol.EventClose || m.Event == protocol.EventError || m.Event == protocol.EventSystem)
	}})
	ch.Await(t, quick, match{Kind: kBroadcast, After: mark})
	if st := ch.State(t); st != "joined" {
		t.Errorf("state %s after a valid token, want joined", st)
	}

	mark = e.d.Mark()
	c.SetAuth(t, e.userToken("alice", -5*time.Second, nil))
	e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventAccessToken, After: mark})
	msg, closed := e.awaitShutdown(ch, j, mark)
	if !expiredMessage.MatchString(msg) {
		t.Errorf("system message %q, want %v", msg, expiredMessage)
	}
	cb := ch.Await(t, quick, match{Kind: kSystem, After: mark})
	var sys struct{ Status, Message string }
	cb.Decode(&sys)
	if sys.Status != "error" || !expiredMessage.MatchString(sys.Message) {
		t.Errorf("system callback %s", cb.Payload)
	}
	e.noRejoin(c, ch.Topic, closed)
}

// Scenario 8: the channel's token reaches exp while joined.
func TestS08ChannelTokenExpires(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{DisconnectOnEmptyChannelsAfterMs: keepSocket()})
	ch := c.Channel(t, "room", "room1", nil)
	c.SetAuth(t, e.userToken("alice", 3*time.Second, nil))
	mark := e.d.Mark()
	j := e.subscribe(ch)
	msg, closed := e.awaitShutdown(ch, j, mark)
	if !expiredMessage.MatchString(msg) {
		t.Errorf("system message %q, want %v", msg, expiredMessage)
	}
	e.noRejoin(c, ch.Topic, closed)
}

// Token refresh through the accessToken callback: realtime-js asks it on
// every heartbeat and pushes a changed token; the channel stays joined.
func TestTokenRefreshOnHeartbeat(t *testing.T) {
	e := newEnv(t)
	first := e.userToken("alice", time.Hour, nil)
	c := e.client("a", jsharness.ClientOptions{AccessToken: first})
	ch := c.Channel(t, "room", "room1", nil).On(t, "broadcast", map[string]any{"event": "*"})
	j := e.subscribe(ch)
	mark := e.d.Mark()
	second := e.userToken("alice", 2*time.Hour, nil)
	c.SetAccessToken(t, second)
	push, pm := e.frame(slow, match{Client: "a", Dir: "out", Event: protocol.EventAccessToken, After: mark,
		Where: func(ev jsharness.Event) bool { return strings.Contains(ev.Text, second) }, Desc: "the second token"})
	wantText(t, push, `[`+q(j)+`,`+q(pm.Ref)+`,"realtime:room1","access_token",{"access_token":`+q(second)+`}]`)
	e.fence(c, ch.Topic)
	ch.Await(t, quick, match{Kind: kBroadcast, After: mark})
	if st := ch.State(t); st != "joined" {
		t.Errorf("state %s after refresh, want joined", st)
	}
}
