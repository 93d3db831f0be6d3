package compare_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/registry"
	"rtm/registry/compare"
)

// TestBounds: an identity's unmatched messages over MaxPending (count)
// or MaxPendingBytes are decided at once, oldest first; a large value is
// matched whole but kept cut; topics, identities, events and presence
// members stop at their caps.
func TestBounds(t *testing.T) {
	ctx := context.Background()
	const topic = "broadcast:room:1"
	c, fc := pair(t, compare.Options{MaxPending: 3, MaxTopics: 2, MaxIdentities: 2, MaxEvents: 2, MaxMembers: 2, MaxDifferences: 2}, topic)
	for i := range 5 {
		c.Received("alice", msg(topic, "broadcast x", fmt.Sprint(i)), fc.Now())
	}
	if n := c.Pending(topic); n != 3 {
		t.Errorf("pending = %d, want 3", n)
	}
	d := c.Tick(ctx) // no time passed: only the two over the bound
	if len(d) != 2 || string(d[0].Message.Value) != "0" || string(d[1].Message.Value) != "1" {
		t.Fatalf("decided over the bound: %+v", d)
	}
	fc.Advance(compare.DefaultWindow)
	if d := c.Tick(ctx); len(d) != 3 {
		t.Fatalf("after the window: %+v", d)
	}
	if kept, total := c.Differences(topic); len(kept) != 2 || total != 5 || string(kept[1].Message.Value) != "4" {
		t.Errorf("kept %+v of %d", kept, total)
	}
	if c.AddIdentity(compare.Identity{Name: "carol"}) {
		t.Error("a third identity over MaxIdentities=2 was added")
	}
	c.Channel("alice", "broadcast:room:2", registry.StatusConnected, "", false, false, fc.Now())
	c.Channel("alice", "broadcast:room:3", registry.StatusConnected, "", false, false, fc.Now())
	if got := c.Topics(); len(got) != 2 || c.Dropped() != 2 {
		t.Errorf("topics %v, dropped %d", got, c.Dropped())
	}
	for _, ev := range []string{"broadcast a", "broadcast b", "broadcast c", "presence_join"} {
		c.Received("bob", msg(topic, ev, `{"key":"k"}`), fc.Now())
	}
	for _, k := range []string{"u1", "u2", "u3"} {
		c.Received("bob", msg(topic, "presence_join", fmt.Sprintf(`{"key":%q,"meta":{}}`, k)), fc.Now())
	}
	c.Received("bob", msg(topic, "presence_leave", `{"key":"u1","meta":{}}`), fc.Now())
	col := c.Columns(topic)[1]
	if col.Events["broadcast a"] != 1 || col.Events[compare.OtherEvent] != 6 || len(col.Events) != 3 {
		t.Errorf("events: %v", col.Events)
	}
	if strings.Join(col.Members, ",") != "k" {
		t.Errorf("members: %v (k and u1 kept of 4, then u1 left)", col.Members)
	}

	// Bytes: a 10 KiB value is matched whole and kept cut.
	c2, fc2 := pair(t, compare.Options{MaxPendingBytes: 12 << 10}, topic)
	big := `"` + strings.Repeat("x", 10<<10) + `"`
	big2 := `"` + strings.Repeat("x", 10<<10) + `y"`
	c2.Received("alice", msg(topic, "broadcast big", big), fc2.Now())
	c2.Received("bob", msg(topic, "broadcast big", big2), fc2.Now())
	c2.Received("bob", msg(topic, "broadcast big", big2), fc2.Now()) // bob over 12 KiB? no: kept cut at 4 KiB
	if n := c2.Pending(topic); n != 3 {
		t.Errorf("pending = %d, want 3 (cut values cost 4 KiB each)", n)
	}
	c2.Received("bob", msg(topic, "broadcast big", big2), fc2.Now())
	d = c2.Tick(ctx)
	if len(d) != 1 || d[0].A != "bob" || !d[0].Truncated || len(d[0].Message.Value) > compare.DefaultMaxValueBytes+16 {
		t.Fatalf("over the bytes bound: %d differences, %+v", len(d), d)
	}
	fc2.Advance(compare.DefaultWindow)
	d = c2.Tick(ctx)
	if len(d) != 3 || d[0].A != "alice" {
		t.Fatalf("after the window: %+v", d)
	}
}

// TestMasking: a token in a payload is masked in the difference.
func TestMasking(t *testing.T) {
	const topic = "broadcast:room:1"
	c, fc := pair(t, compare.Options{}, topic)
	const tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
	c.Received("alice", msg(topic, "broadcast x", `{"access_token":"`+tok+`"}`), fc.Now())
	fc.Advance(time.Minute)
	d := c.Tick(context.Background())
	if len(d) != 1 || strings.Contains(string(d[0].Message.Value), tok) {
		t.Fatalf("%+v", d)
	}
}
