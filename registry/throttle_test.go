package registry_test

import (
	"encoding/json"
	"testing"
	"time"

	"rtm/registry"
	"rtm/registry/clock"
)

// TestThrottle: what the rate limit, a debouncer and the offline queue
// hold back shows in Manager.Throttle.
func TestThrottle(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withFakeClock(clk), withOpts(func(o *registry.Options) { o.BroadcastRate = 1; o.BroadcastBurst = 2 }))
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if th := e.m.Throttle(); th != (registry.Throttle{Rate: 1, Burst: 2}) {
		t.Fatalf("idle: %+v", th)
	}
	// A channel whose joins the server refuses: its broadcast is queued
	// (the first token).
	if err := e.m.Faults().RejectJoins(ctx(t), registry.Rejection{Count: 100}); err != nil {
		t.Fatal(err)
	}
	refused, err := e.m.JoinBroadcast(ctx(t), "document", "2")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the join refused", func() bool {
		i, err := e.m.Info(refused.Name())
		return err == nil && i.Status == registry.StatusDisconnected
	})
	if err := refused.Broadcast(ctx(t), "q", nil); err != nil {
		t.Fatal(err)
	}
	// A debouncer: its first value goes (the second token), the next
	// wait for the window, the last replacing the one before.
	d, err := h.Debounce("cursor", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d.Send(json.RawMessage(`{"x":` + itoa(i) + `}`))
	}
	// No token left: two broadcasts wait for theirs.
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- h.Broadcast(ctx(t), "r", nil) }()
	}
	eventually(t, "two broadcasts held by the rate limit", func() bool { return e.m.Throttle().Waiting == 2 })
	want := registry.Throttle{Rate: 1, Burst: 2, Waiting: 2, Debouncers: 1, Pending: 1, Replaced: 1, Queued: 1}
	if th := e.m.Throttle(); th != want {
		t.Fatalf("held: %+v, want %+v", th, want)
	}
	clk.Advance(2 * time.Second)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if th := e.m.Throttle(); th.Waiting != 0 {
		t.Fatalf("after the wait: %+v", th)
	}
	if err := e.m.Faults().RejectJoins(ctx(t), registry.Rejection{}); err != nil {
		t.Fatal(err)
	}
}
