package headless_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/registry"
	"rtm/registry/compare"
	"rtm/registry/headless"
)

// TestCompareLivePresence: alice, bob and anon join one presence
// channel of the embedded server at different times (so alice gets
// presence joins where bob and anon get the same members in their
// presence_state) and alice broadcasts (self off: she never gets it
// back): no difference. Then bob's socket is dropped and alice
// broadcasts again: exactly that difference, bob missed it, "dropped by
// a fault".
func TestCompareLivePresence(t *testing.T) {
	env, _ := testEnvWith(t, 10*time.Second)
	ctx := testCtx(t)
	cmp := compare.New(compare.Options{Window: 300 * time.Millisecond})
	const topic = "presence:room:1"
	room := registry.MustName(registry.KindPresence, "room", "1", "")
	ids := []headless.Identity{{Name: "alice", User: "alice"}, {Name: "bob", User: "bob"}, {Name: "anon", Role: "anon"}}
	managers := map[string]*registry.Manager{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range ids {
		tok, err := env.Token(id)
		if err != nil {
			t.Fatal(err)
		}
		cmp.AddIdentity(headless.CompareIdentity(id, tok))
		m, err := env.NewManager(id, headless.ManagerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		sub := m.Subscribe(context.Background(), registry.SubscribeOptions{Frames: true})
		defer sub.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-sub.Done():
					return
				case <-sub.Ready():
				}
				for _, e := range sub.Drain(nil) {
					cmp.Observe(id.Name, e)
				}
			}
		}()
		managers[id.Name] = m
	}
	columns := func() map[string]compare.Column {
		out := map[string]compare.Column{}
		for _, c := range cmp.Columns(topic) {
			out[c.Identity] = c
		}
		return out
	}
	for i, id := range ids {
		if _, err := managers[id.Name].JoinPresence(ctx, "room", "1", registry.PresenceUser{UserID: id.Name}); err != nil {
			t.Fatal(err)
		}
		// Each sees the ones joined so far before the next joins.
		var want []string
		for _, x := range ids[:i+1] {
			want = append(want, x.Name)
		}
		slices.Sort(want)
		eventually(t, id.Name+" joined", func() bool {
			cols := columns()
			for _, x := range ids[:i+1] {
				if c := cols[x.Name]; c.Status != registry.StatusConnected || !slices.Equal(c.Members, want) {
					return false
				}
			}
			return true
		})
	}
	if err := managers["alice"].Broadcast(ctx, room, "note", json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob and anon received n=1", func() bool {
		cols := columns()
		return cols["alice"].Sent == 1 && cols["bob"].Events["broadcast note"] == 1 && cols["anon"].Events["broadcast note"] == 1
	})
	if d := cmp.Flush(ctx); len(d) != 0 {
		t.Fatalf("differences before the fault: %+v", d)
	}
	cols := columns()
	if a := cols["alice"]; a.Kinds["presence_join"] < 2 || a.Events["broadcast note"] != 0 || a.Missing != 0 {
		t.Errorf("alice's column %+v", a)
	}
	if b := cols["anon"]; b.Kinds["presence_state"] < 2 || b.Kinds["presence_join"] < 1 || b.Missing != 0 {
		t.Errorf("anon's column %+v", b)
	}

	if _, err := managers["bob"].Faults().Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's channel down", func() bool { return columns()["bob"].Status != registry.StatusConnected })
	if err := managers["alice"].Broadcast(ctx, room, "note", json.RawMessage(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "anon received n=2", func() bool {
		cols := columns()
		return cols["alice"].Sent == 2 && cols["anon"].Events["broadcast note"] == 2
	})
	d := cmp.Flush(ctx)
	if len(d) != 1 {
		t.Fatalf("differences after the fault: %+v", d)
	}
	if d[0].A != "alice" || d[0].MissingFrom != "bob" || d[0].Reason != compare.ReasonFault || string(d[0].Message.Value) != `{"n":2}` ||
		!strings.HasPrefix(d[0].Detail, "fault: connection dropped on its socket ") {
		t.Errorf("difference %+v", d[0])
	}
	if cols := columns(); cols["bob"].Missing != 1 || cols["anon"].Missing != 0 || cols["alice"].Missing != 0 {
		t.Errorf("columns %+v", cols)
	}
}
