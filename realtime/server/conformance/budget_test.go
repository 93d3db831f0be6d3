package conformance

import (
	"regexp"
	"strings"
	"testing"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// A track over the connection's presence budget: realtime-js's track()
// resolves "error", the channel stays joined with its previous meta, and
// an untrack makes room again.
func TestLimitPresenceBudget(t *testing.T) {
	e := newEnv(t, servertest.WithConfig(func(c *server.Config) { c.MaxPresenceBytesPerConn = 4000 }))
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "a"}}).
		On(t, "presence", map[string]any{"event": "*"})
	j := e.subscribe(ch)
	if res := ch.Track(t, map[string]any{"n": 1}); res != "ok" {
		t.Fatalf("track: %s", res)
	}
	ch.Await(t, quick, match{Kind: kPresence, Event: "sync"})

	mark := e.d.Mark()
	if res := ch.Track(t, map[string]any{"big": strings.Repeat("b", 5000)}); res != "error" {
		t.Errorf("track over the budget: %s, want error", res)
	}
	_, pm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventPresence, After: mark})
	reply, _ := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, pm.Ref), After: mark})
	want := regexp.MustCompile(`^\[` + regexp.QuoteMeta(q(j)+`,`+q(pm.Ref)) +
		`,"realtime:room1","phx_reply",\{"status":"error","response":\{"reason":"PresenceBudgetExceeded: This connection's presence would take \d+ bytes, over its budget of 4000"\}\}\]$`)
	if !want.MatchString(reply.Text) {
		t.Errorf("reply %s, want %s", reply.Text, want)
	}
	if st := ch.State(t); st != "joined" {
		t.Errorf("state after a refused track: %s", st)
	}
	if st := ch.PresenceState(t); len(st["a"]) != 1 || st["a"][0]["n"] != float64(1) {
		t.Errorf("presenceState() after a refused track: %v, want the previous meta", st)
	}

	if res := ch.Untrack(t); res != "ok" {
		t.Fatalf("untrack: %s", res)
	}
	if res := ch.Track(t, map[string]any{"big": strings.Repeat("b", 3000)}); res != "ok" {
		t.Errorf("track after an untrack: %s", res)
	}
}

// Topics of the 255-byte cap work in realtime-js (its binary broadcast
// pushes carry them); one byte more is a join error with TopicTooLong.
func TestLimitTopicLength(t *testing.T) {
	e := newEnv(t)
	name := strings.Repeat("n", server.MaxTopicBytes-len(protocol.TopicPrefix))
	a := e.client("a", jsharness.ClientOptions{})
	b := e.client("b", jsharness.ClientOptions{})
	ca := a.Channel(t, "at-cap", name, nil)
	cb := b.Channel(t, "at-cap", name, nil).On(t, "broadcast", map[string]any{"event": "hi"})
	e.subscribe(ca)
	e.subscribe(cb)
	mark := e.d.Mark()
	if res := ca.Broadcast(t, "hi", map[string]any{"n": 1}); res != "ok" {
		t.Errorf("broadcast at the cap: %s", res)
	}
	e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventBroadcast, Where: func(ev jsharness.Event) bool { return ev.Binary }, After: mark})
	cb.Await(t, quick, match{Kind: kBroadcast, Event: "hi", After: mark})

	over := a.Channel(t, "over", name+"n", nil)
	mark = e.d.Mark()
	over.Subscribe(t, 0)
	st := over.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if want := "TopicTooLong: Topics are limited to 255 bytes (\"realtime:\" and a name of up to 246); this one has 256"; st.Error != want {
		t.Errorf("join of a 256-byte topic: %q, want %q", st.Error, want)
	}
	if st := ca.State(t); st != "joined" {
		t.Errorf("the other channel after the refusal: %s", st)
	}
}
