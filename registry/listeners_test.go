package registry_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/registry"
)

// The listener configurations given at join (OnChange, OnSystem,
// OnPresence) belong to the registry entry: they hear the channel after
// the client's rejoin on a reconnect and after the manager re-creates a
// channel the server closed. A channel's own policy (WithPolicy) governs
// its retries.
func TestJoinListenersSurviveRejoins(t *testing.T) {
	e := newEnv(t)
	name := registry.MustName(registry.KindSubscription, "project", "456", "")
	own := registry.Fixed{Interval: 10 * time.Millisecond, Max: 7}
	var changes, systems, syncs atomic.Int32
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{NoInitialState: true, Types: []registry.EventType{registry.TypeRetry}})
	defer sub.Close()
	h, err := e.m.Join(ctx(t), name,
		registry.OnChange(registry.ChangeFilter{Event: "UPDATE"}, func(c registry.Change) {
			if c.Type == "UPDATE" && c.Channel == name {
				changes.Add(1)
			}
		}),
		registry.OnSystem(func(me registry.MessageEvent) {
			if me.Kind == registry.MessageSystem && me.Event == "Subscribed to PostgreSQL" {
				systems.Add(1)
			}
		}),
		registry.OnPresence(func(p registry.PresenceEvent) {
			if p.Action == registry.PresenceSync {
				syncs.Add(1)
			}
		}),
		registry.WithPolicy(own))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	info := e.info(name)
	if info.Policy != own.Info().Spec || info.MaxAttempts != 7 || !info.Config.Presence {
		t.Fatalf("policy %q max %d presence %v, want the channel's own policy and presence on", info.Policy, info.MaxAttempts, info.Config.Presence)
	}
	listeners := map[string]int{}
	for _, b := range info.Bindings {
		listeners[b.Type] += b.Listeners
	}
	if listeners["postgres_changes"] != 1 || listeners["system"] != 1 || listeners["presence"] != 1 {
		t.Fatalf("bindings %+v", info.Bindings)
	}
	cols := []protocol.Column{{Name: "id", Type: "int8"}}
	round := func(n int32, what string) {
		t.Helper()
		eventually(t, what+": the system message", func() bool { return systems.Load() >= n })
		eventually(t, what+": the presence sync", func() bool { return syncs.Load() >= n })
		e.srv.EmitChange("", protocol.ChangeData{Schema: "public", Table: "project", Type: "UPDATE", Columns: cols,
			CommitTimestamp: "2026-01-01T00:00:00.000Z", Record: json.RawMessage(`{"id":"456"}`)})
		eventually(t, what+": the change", func() bool { return changes.Load() >= n })
	}
	rejoined := func(joins int) func() bool {
		return func() bool { i := e.info(name); return i.Joins == joins && i.Status == registry.StatusConnected }
	}
	round(1, "the join")

	// The socket drops: the client rejoins; the listeners hear it.
	if n := e.srv.Drop(); n != 1 {
		t.Fatalf("Drop dropped %d sockets", n)
	}
	eventually(t, "the rejoin after the reconnect", rejoined(2))
	round(2, "the rejoin")

	// The server closes the channel: the manager re-creates it, under
	// the channel's own policy, with its listeners.
	if n := e.srv.Kick(name.Topic(), server.KickClose); n != 1 {
		t.Fatalf("Kick kicked %d channels", n)
	}
	eventually(t, "the re-created channel", rejoined(3))
	round(3, "the re-created channel")
	var scheduled *registry.RetryEvent
	for _, ev := range sub.Drain(nil) {
		if r, ok := ev.(registry.RetryEvent); ok && r.Scope == registry.ScopeChannel && r.Outcome == registry.RetryScheduled {
			scheduled = &r
		}
	}
	if scheduled == nil || scheduled.Policy != own.Info().Spec || scheduled.Max != 7 || scheduled.Delay != 10*time.Millisecond {
		t.Fatalf("the retry after the close: %+v, want the channel's own policy", scheduled)
	}
	if got := systems.Load(); got != 3 {
		t.Errorf("the system listener heard %d joins, want 3", got)
	}
}
