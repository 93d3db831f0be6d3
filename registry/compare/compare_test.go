package compare_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/registry"
	"rtm/registry/clock"
	"rtm/registry/compare"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func msg(topic, event, value string) compare.Message {
	return compare.Message{Channel: topic, Event: event, Value: json.RawMessage(value)}
}

// pair returns a comparer of alice and bob, both joined to topic at t0.
func pair(t *testing.T, o compare.Options, topic string) (*compare.Comparer, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(t0)
	o.Clock = fc
	c := compare.New(o)
	c.AddIdentity(compare.Identity{Name: "alice", User: "a", Role: "authenticated"})
	c.AddIdentity(compare.Identity{Name: "bob", User: "b", Role: "authenticated"})
	if topic != "" {
		c.Channel("alice", topic, registry.StatusConnected, "", false, false, t0)
		c.Channel("bob", topic, registry.StatusConnected, "", false, false, t0)
	}
	return c, fc
}

// TestMatchedAndMissing: what both received is matched (with
// multiplicity); what only alice received is a difference once the
// window passed, not before.
func TestMatchedAndMissing(t *testing.T) {
	const topic = "broadcast:room:1"
	c, fc := pair(t, compare.Options{}, topic)
	fc.Advance(time.Second)
	at := fc.Now()
	for _, who := range []string{"alice", "bob"} {
		c.Received(who, msg(topic, "broadcast shout", `{"n":1}`), at)
	}
	c.Received("alice", msg(topic, "broadcast shout", `{"n":2}`), at)
	c.Received("alice", msg(topic, "broadcast shout", `{"n":2}`), at)
	c.Received("bob", msg(topic, "broadcast shout", `{"n":2}`), at)
	if got := c.Pending(topic); got != 1 {
		t.Fatalf("pending = %d, want 1 (the second n=2)", got)
	}
	fc.Advance(compare.DefaultWindow - time.Millisecond)
	if d := c.Tick(context.Background()); len(d) != 0 {
		t.Fatalf("before the window: %+v", d)
	}
	fc.Advance(time.Millisecond)
	d := c.Tick(context.Background())
	if len(d) != 1 {
		t.Fatalf("differences = %+v, want 1", d)
	}
	if d[0].A != "alice" || d[0].B != "bob" || d[0].MissingFrom != "bob" || string(d[0].Message.Value) != `{"n":2}` || d[0].Reason != compare.ReasonUnknown {
		t.Errorf("difference = %+v", d[0])
	}
	cols := c.Columns(topic)
	if len(cols) != 2 || cols[0].Total != 3 || cols[1].Total != 2 || cols[0].Events["broadcast shout"] != 3 || cols[1].Kinds["broadcast"] != 2 || cols[1].Missing != 1 {
		t.Errorf("columns = %+v", cols)
	}
	if all, n := c.Differences(topic); n != 1 || len(all) != 1 {
		t.Errorf("differences kept %d of %d", len(all), n)
	}
	if c.Pending(topic) != 0 {
		t.Errorf("pending after the tick = %d", c.Pending(topic))
	}
}

// TestReasons: each reason rtm can tell from what it was fed.
func TestReasons(t *testing.T) {
	ctx := context.Background()
	t.Run("not joined yet", func(t *testing.T) {
		const topic = "broadcast:room:1"
		c, fc := pair(t, compare.Options{}, "")
		c.Channel("alice", topic, registry.StatusConnected, "", false, false, t0)
		c.Channel("bob", topic, registry.StatusConnecting, "", false, false, t0)
		fc.Advance(time.Second)
		c.Received("alice", msg(topic, "broadcast x", `1`), fc.Now())
		fc.Advance(300 * time.Millisecond)
		c.Channel("bob", topic, registry.StatusConnected, "", false, false, fc.Now())
		fc.Advance(compare.DefaultWindow)
		d := c.Tick(ctx)
		if len(d) != 1 || d[0].Reason != compare.ReasonNotJoined || d[0].Detail != "bob joined 300ms after the message" {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("private refusal", func(t *testing.T) {
		const topic = "broadcast:room:2"
		c, fc := pair(t, compare.Options{}, "")
		c.Channel("alice", topic, registry.StatusConnected, "", true, false, t0)
		const why = "Unauthorized: You do not have permissions to read from this Channel topic: broadcast:room:2"
		c.Channel("bob", topic, registry.StatusDisconnected, why, true, false, t0)
		c.Received("alice", msg(topic, "broadcast x", `1`), fc.Now())
		fc.Advance(compare.DefaultWindow)
		d := c.Tick(ctx)
		if len(d) != 1 || d[0].Reason != compare.ReasonPrivate || d[0].Detail != why {
			t.Fatalf("%+v", d)
		}
		cols := c.Columns(topic)
		if cols[1].JoinError != why || cols[1].Status != registry.StatusDisconnected {
			t.Errorf("bob's column: %+v", cols[1])
		}
	})
	t.Run("another tenant", func(t *testing.T) {
		const topic = "tenant:acme:broadcast:room:3"
		c, fc := pair(t, compare.Options{}, topic)
		c.AddIdentity(compare.Identity{Name: "bob", User: "b", Tenant: "other"})
		c.Received("alice", msg(topic, "broadcast x", `1`), fc.Now())
		fc.Advance(compare.DefaultWindow)
		d := c.Tick(ctx)
		if len(d) != 1 || d[0].Reason != compare.ReasonTenant || !strings.Contains(d[0].Detail, "tenant other") {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("fault", func(t *testing.T) {
		const topic = "broadcast:room:4"
		c, fc := pair(t, compare.Options{}, topic)
		fc.Advance(10 * time.Second)
		c.Fault("bob", "", "fault: connection dropped", fc.Now())
		c.Channel("bob", topic, registry.StatusDisconnected, "", false, false, fc.Now())
		fc.Advance(100 * time.Millisecond)
		c.Received("alice", msg(topic, "broadcast x", `1`), fc.Now())
		fc.Advance(compare.DefaultWindow)
		d := c.Tick(ctx)
		if len(d) != 1 || d[0].Reason != compare.ReasonFault || d[0].Detail != "fault: connection dropped on its socket 100ms before the message" {
			t.Fatalf("%+v", d)
		}
		// A fault long before does not explain a later message.
		c.Channel("bob", topic, registry.StatusConnected, "", false, false, fc.Now())
		fc.Advance(10 * time.Second)
		c.Received("alice", msg(topic, "broadcast x", `2`), fc.Now())
		fc.Advance(compare.DefaultWindow)
		d = c.Tick(ctx)
		if len(d) != 1 || d[0].Reason != compare.ReasonUnknown {
			t.Fatalf("%+v", d)
		}
	})
}
