package compare_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
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
