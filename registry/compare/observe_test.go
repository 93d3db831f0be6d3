package compare_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
	"rtm/registry/clock"
	"rtm/registry/compare"
)

// frame encodes a server message as the manager's frame events carry it.
func frame(t *testing.T, vsn protocol.Version, at time.Time, m protocol.Message) registry.FrameEvent {
	t.Helper()
	b, binary, err := vsn.AppendServer(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	f := registry.FrameEvent{Time: at, Direction: registry.In, Topic: m.Topic, Event: m.Event, Size: len(b)}
	if binary {
		f.Data = b
	} else {
		f.Text = string(b)
	}
	return f
}

// TestObserve: frames of either serializer are normalized and matched
// (refs differ), replies are left out, a presence_state replaces the
// members, channel states and fault logs explain.
func TestObserve(t *testing.T) {
	c, fc := pair(t, compare.Options{}, "")
	const name = "presence:room:1"
	topic := "realtime:" + name
	n := registry.MustName(registry.KindPresence, "room", "1", "")
	state := func(who string, st registry.Status) registry.ChannelStateEvent {
		return registry.ChannelStateEvent{Time: fc.Now(), Channel: n, Status: st, Info: registry.ChannelInfo{Status: st}}
	}
	c.Observe("alice", state("alice", registry.StatusConnected))
	c.Observe("bob", state("bob", registry.StatusConnected))
	bc := func(ref, text string) protocol.Message {
		return protocol.Message{Ref: ref, Topic: topic, Event: protocol.EventBroadcast,
			Payload: json.RawMessage(`{"type":"broadcast","event":"shout","payload":{"text":"` + text + `"}}`)}
	}
	c.Observe("alice", frame(t, protocol.V1, fc.Now(), bc("1", "hi")))
	c.Observe("bob", frame(t, protocol.V2, fc.Now(), bc("7", "hi")))
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), protocol.Message{Ref: "2", Topic: topic, Event: protocol.EventReply, Payload: json.RawMessage(`{"status":"ok","response":{}}`)}))
	ps := func(keys ...string) protocol.Message {
		var parts []string
		for _, k := range keys {
			parts = append(parts, `"`+k+`":{"metas":[{"phx_ref":"x`+k+`","name":"`+k+`"}]}`)
		}
		return protocol.Message{Topic: topic, Event: protocol.EventPresenceState, Payload: json.RawMessage("{" + strings.Join(parts, ",") + "}")}
	}
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), ps("u1", "u2")))
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), ps("u2")))
	c.Observe("bob", frame(t, protocol.V2, fc.Now(), ps("u1", "u2")))
	c.Observe("bob", frame(t, protocol.V2, fc.Now(), ps("u2")))
	// A drop on bob's socket; the next message only alice gets.
	c.Observe("bob", registry.LogEvent{Record: registry.LogRecord{Time: fc.Now(), Message: "Fault: connection dropped"}})
	c.Observe("bob", state("bob", registry.StatusDisconnected))
	fc.Advance(50 * time.Millisecond)
	c.Observe("alice", frame(t, protocol.V1, fc.Now(), bc("3", "lost")))
	fc.Advance(compare.DefaultWindow)
	d := c.Tick(context.Background())
	if len(d) != 1 || d[0].MissingFrom != "bob" || d[0].Message.Event != "broadcast shout" || string(d[0].Message.Value) != `{"text":"lost"}` ||
		d[0].Reason != compare.ReasonFault || d[0].Detail != "fault: connection dropped on its socket 50ms before the message" {
		t.Fatalf("%+v", d)
	}
	cols := c.Columns(name)
	if len(cols) != 2 || strings.Join(cols[0].Members, ",") != "u2" || cols[0].Events["broadcast shout"] != 2 || cols[0].Kinds["presence_state"] != 3 ||
		cols[1].Events["broadcast shout"] != 1 || cols[0].Events["phx_reply ok"] != 0 {
		t.Errorf("columns %+v", cols)
	}
}

// presenceFrames returns a presence_state of keys and a presence_diff
// joining join, on topic.
func presenceFrames(topic string, keys []string, join string) (state, diff protocol.Message) {
	var parts []string
	for _, k := range keys {
		parts = append(parts, `"`+k+`":{"metas":[{"phx_ref":"r`+k+`","name":"`+k+`"}]}`)
	}
	state = protocol.Message{Topic: topic, Event: protocol.EventPresenceState, Payload: json.RawMessage("{" + strings.Join(parts, ",") + "}")}
	diff = protocol.Message{Topic: topic, Event: protocol.EventPresenceDiff,
		Payload: json.RawMessage(`{"joins":{"` + join + `":{"metas":[{"phx_ref":"j` + join + `","name":"` + join + `"}]}},"leaves":{}}`)}
	return state, diff
}

// TestPresenceNotCompared: alice joined first (her state has herself,
// then bob's join comes as a diff), bob later (his state has both):
// different presence frames, the same members, no difference; the
// columns count what each received. System messages are not compared
// either.
func TestPresenceNotCompared(t *testing.T) {
	c, fc := pair(t, compare.Options{}, "")
	const name = "presence:room:1"
	topic := "realtime:" + name
	n := registry.MustName(registry.KindPresence, "room", "1", "")
	state := func(st registry.Status) registry.ChannelStateEvent {
		return registry.ChannelStateEvent{Time: fc.Now(), Channel: n, Status: st, Info: registry.ChannelInfo{Status: st}}
	}
	c.Observe("alice", state(registry.StatusConnected))
	aliceState, _ := presenceFrames(topic, []string{"alice"}, "")
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), aliceState))
	sys := protocol.Message{Topic: topic, Event: protocol.EventSystem, Payload: json.RawMessage(`{"status":"ok","message":"Subscribed to PostgreSQL","extension":"postgres_changes","channel":"room"}`)}
	c.Observe("alice", frame(t, protocol.V1, fc.Now(), sys))
	fc.Advance(3 * time.Second)
	c.Observe("bob", state(registry.StatusConnected))
	bothState, bobJoin := presenceFrames(topic, []string{"alice", "bob"}, "bob")
	c.Observe("bob", frame(t, protocol.V2, fc.Now(), bothState))
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), bobJoin))
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), protocol.Message{Topic: topic, Event: protocol.EventHeartbeat, Payload: json.RawMessage(`{}`)}))
	fc.Advance(compare.DefaultWindow)
	if d := c.Tick(context.Background()); len(d) != 0 {
		t.Fatalf("differences %+v", d)
	}
	if d := c.Flush(context.Background()); len(d) != 0 {
		t.Fatalf("flushed differences %+v", d)
	}
	if p := c.Pending(name); p != 0 {
		t.Errorf("pending %d", p)
	}
	cols := c.Columns(name)
	if len(cols) != 2 || strings.Join(cols[0].Members, ",") != "alice,bob" || strings.Join(cols[1].Members, ",") != "alice,bob" {
		t.Fatalf("members %+v", cols)
	}
	a, b := cols[0], cols[1]
	if a.Kinds["presence_state"] != 1 || a.Kinds["presence_join"] != 1 || a.Kinds["system"] != 1 || a.Total != 3 || a.Missing != 0 ||
		b.Kinds["presence_state"] != 2 || b.Kinds["presence_join"] != 0 || b.Total != 2 || b.Missing != 0 {
		t.Errorf("columns %+v", cols)
	}
}

// TestOwnBroadcast: with self off the sender never gets its broadcast
// back: what it sent counts as its own (not missed by it), the others
// are expected to receive it (bob, down after a fault, misses it); with
// self on a missing echo is a difference.
func TestOwnBroadcast(t *testing.T) {
	const name = "broadcast:room:1"
	topic := "realtime:" + name
	n := registry.MustName(registry.KindBroadcast, "room", "1", "")
	bc := func(text string) protocol.Message {
		return protocol.Message{Topic: topic, Event: protocol.EventBroadcast,
			Payload: json.RawMessage(`{"type":"broadcast","event":"shout","payload":{"text":"` + text + `"}}`)}
	}
	sent := func(at time.Time, text string, queued bool) registry.MessageEvent {
		return registry.MessageEvent{Time: at, Channel: n, Direction: registry.Out, Kind: registry.MessageBroadcast, Event: "shout",
			Payload: json.RawMessage(`{ "text": "` + text + `" }`), Queued: queued}
	}
	setup := func(t *testing.T, self bool) (*compare.Comparer, *clock.Fake) {
		c, fc := pair(t, compare.Options{}, "")
		for _, who := range []string{"alice", "bob"} {
			c.Observe(who, registry.ChannelStateEvent{Time: fc.Now(), Channel: n, Status: registry.StatusConnected,
				Info: registry.ChannelInfo{Status: registry.StatusConnected, Config: registry.ChannelConfig{Self: self && who == "alice"}}})
		}
		return c, fc
	}
	t.Run("self off", func(t *testing.T) {
		c, fc := setup(t, false)
		// Bob's copy may come before alice's manager reports the send.
		c.Observe("bob", frame(t, protocol.V2, fc.Now(), bc("one")))
		c.Observe("alice", sent(fc.Now(), "one", false))
		c.Observe("alice", sent(fc.Now(), "two", true)) // queued: not sent yet
		c.Observe("alice", sent(fc.Now(), "two", false))
		c.Observe("bob", frame(t, protocol.V1, fc.Now(), bc("two")))
		// Bob's socket drops; alice's next broadcast he misses.
		c.Observe("bob", registry.LogEvent{Record: registry.LogRecord{Time: fc.Now(), Message: "Fault: connection dropped"}})
		c.Observe("bob", registry.ChannelStateEvent{Time: fc.Now(), Channel: n, Status: registry.StatusDisconnected, Info: registry.ChannelInfo{Status: registry.StatusDisconnected}})
		fc.Advance(10 * time.Millisecond)
		c.Observe("alice", registry.MessageBatchEvent{Channel: n, Messages: []registry.MessageEvent{sent(fc.Now(), "three", false)}})
		fc.Advance(compare.DefaultWindow)
		d := c.Tick(context.Background())
		if len(d) != 1 || d[0].A != "alice" || d[0].MissingFrom != "bob" || string(d[0].Message.Value) != `{"text":"three"}` || d[0].Reason != compare.ReasonFault {
			t.Fatalf("differences %+v", d)
		}
		cols := c.Columns(name)
		if len(cols) != 2 || cols[0].Sent != 3 || cols[0].Total != 0 || cols[0].Missing != 0 || cols[1].Total != 2 || cols[1].Missing != 1 {
			t.Errorf("columns %+v", cols)
		}
	})
	t.Run("self on", func(t *testing.T) {
		c, fc := setup(t, true)
		c.Observe("alice", sent(fc.Now(), "one", false))
		c.Observe("alice", frame(t, protocol.V2, fc.Now(), bc("one")))
		c.Observe("bob", frame(t, protocol.V2, fc.Now(), bc("one")))
		// The echo of "two" never comes back to alice.
		c.Observe("alice", sent(fc.Now(), "two", false))
		c.Observe("bob", frame(t, protocol.V2, fc.Now(), bc("two")))
		fc.Advance(compare.DefaultWindow)
		d := c.Tick(context.Background())
		if len(d) != 1 || d[0].A != "bob" || d[0].MissingFrom != "alice" || string(d[0].Message.Value) != `{"text":"two"}` || d[0].Reason != compare.ReasonUnknown {
			t.Fatalf("differences %+v", d)
		}
		if cols := c.Columns(name); cols[0].Sent != 2 || cols[0].Total != 1 || cols[0].Missing != 1 {
			t.Errorf("columns %+v", cols)
		}
	})
}

// TestLateJoiner: bob starts holding the topic within the window of a
// message alice already had: he is expected to have it (not joined
// yet), and his copy of the same value sent after his join matches that
// later message, not the one from before his join.
func TestLateJoiner(t *testing.T) {
	const topic = "broadcast:room:1"
	c, fc := pair(t, compare.Options{}, "")
	c.Channel("alice", topic, registry.StatusConnected, "", false, false, fc.Now())
	c.Received("alice", msg(topic, "broadcast ping", `{}`), fc.Now())
	fc.Advance(time.Second)
	c.Channel("bob", topic, registry.StatusConnecting, "", false, false, fc.Now())
	fc.Advance(100 * time.Millisecond)
	c.Channel("bob", topic, registry.StatusConnected, "", false, false, fc.Now())
	fc.Advance(time.Second)
	c.Received("alice", msg(topic, "broadcast ping", `{}`), fc.Now())
	c.Received("bob", msg(topic, "broadcast ping", `{}`), fc.Now())
	if p := c.Pending(topic); p != 1 {
		t.Errorf("pending %d, want 1 (the first ping, which bob lacks)", p)
	}
	fc.Advance(compare.DefaultWindow)
	d := c.Tick(context.Background())
	if len(d) != 1 || d[0].MissingFrom != "bob" || !d[0].Time.Equal(t0) || d[0].Reason != compare.ReasonNotJoined ||
		d[0].Detail != "bob joined 1.1s after the message" {
		t.Fatalf("differences %+v", d)
	}
	if p := c.Pending(topic); p != 0 {
		t.Errorf("pending after the window %d", p)
	}
}

// TestPresenceRetrack: a diff that leaves a key's old meta and joins its
// new one (a peer that tracked again or reconnected) keeps the key, as
// Phoenix's presence does; the key goes when its last meta leaves.
func TestPresenceRetrack(t *testing.T) {
	c, fc := pair(t, compare.Options{}, "")
	const name = "presence:room:1"
	topic := "realtime:" + name
	n := registry.MustName(registry.KindPresence, "room", "1", "")
	c.Observe("alice", registry.ChannelStateEvent{Time: fc.Now(), Channel: n, Status: registry.StatusConnected, Info: registry.ChannelInfo{Status: registry.StatusConnected}})
	state, _ := presenceFrames(topic, []string{"alice", "ana"}, "")
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), state))
	diff := func(payload string) protocol.Message {
		return protocol.Message{Topic: topic, Event: protocol.EventPresenceDiff, Payload: json.RawMessage(payload)}
	}
	members := func() string {
		cols := c.Columns(name)
		if len(cols) != 1 {
			t.Fatalf("columns %+v", cols)
		}
		return strings.Join(cols[0].Members, ",")
	}
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), diff(`{"joins":{"ana":{"metas":[{"phx_ref":"new","name":"Ana"}]}},"leaves":{"ana":{"metas":[{"phx_ref":"old","name":"Ana"}]}}}`)))
	if got := members(); got != "alice,ana" {
		t.Fatalf("after ana's re-track: members %q, want alice,ana", got)
	}
	c.Observe("alice", frame(t, protocol.V2, fc.Now(), diff(`{"joins":{},"leaves":{"ana":{"metas":[{"phx_ref":"new","name":"Ana"}]}}}`)))
	if got := members(); got != "alice" {
		t.Fatalf("after ana left: members %q, want alice", got)
	}
}
