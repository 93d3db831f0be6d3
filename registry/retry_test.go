package registry_test

import (
	"errors"
	"testing"
	"time"

	"rtm/realtime/server"
	"rtm/registry"
	"rtm/registry/clock"
)

// retryEvents collects the channel retry events of a subscription.
func retryEvents(t *testing.T, sub *registry.Subscription) func() []registry.RetryEvent {
	var got []registry.RetryEvent
	return func() []registry.RetryEvent {
		for _, ev := range sub.Drain(nil) {
			if r, ok := ev.(registry.RetryEvent); ok && r.Scope == registry.ScopeChannel {
				got = append(got, r)
			}
		}
		return got
	}
}

// waitScheduled waits until the channel has spent spent attempts and
// scheduled the next.
func (e *env) waitScheduled(n registry.Name, spent int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		i := e.info(n)
		if i.Attempts == spent && !i.NextAttemptAt.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			for _, r := range e.m.Logs(0) {
				e.t.Log(r.Time.Format("15:04:05.000"), r.Message, r.Attrs)
			}
			e.t.Fatalf("%s: no attempt scheduled after %d: %+v", n, spent, i)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// advanceToNextAttempt waits until the channel has an attempt scheduled,
// checks its delay, and moves the fake clock to it.
func (e *env) advanceToNextAttempt(n registry.Name, attempt int, delay time.Duration) {
	e.t.Helper()
	var info registry.ChannelInfo
	eventually(e.t, "attempt to be scheduled", func() bool {
		i, err := e.m.Info(n)
		info = i
		return err == nil && !i.NextAttemptAt.IsZero() && i.Attempts == attempt-1
	})
	if delay >= 0 {
		if got := info.NextAttemptAt.Sub(e.clk.Now()); got != delay {
			e.t.Fatalf("attempt %d scheduled in %v, want %v", attempt, got, delay)
		}
	}
	e.clk.Set(info.NextAttemptAt)
}

func TestFixedPolicyLadderThenStop(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	e := newEnv(t, withFakeClock(clk))
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Types: []registry.EventType{registry.TypeRetry}})
	defer sub.Close()
	events := retryEvents(t, sub)

	e.srv.RejectJoins(server.Rejection{Count: 1000})
	name := registry.MustName(registry.KindBroadcast, "document", "789", "")
	h, err := e.m.Join(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 5; n++ {
		e.advanceToNextAttempt(name, n, 3*time.Second)
	}
	info := e.waitStatus(name, registry.StatusError)
	if info.Attempts != 5 || info.MaxAttempts != 5 || info.LastErrorCode != "RealtimeRestarting" || !info.NextAttemptAt.IsZero() {
		t.Fatalf("exhausted info %+v", info)
	}
	// One initial join and five attempts, all refused; nothing more.
	if got := e.srv.Stats().RejectedJoins; got != 6 {
		t.Fatalf("server refused %d joins, want 6", got)
	}
	clk.Advance(time.Hour)
	if p := clk.Pending(); p > 1 { // the stats ticker only
		t.Fatalf("%d timers pending after giving up", p)
	}
	if got := e.srv.Stats().RejectedJoins; got != 6 {
		t.Fatalf("joins after giving up: %d", got)
	}
	var outcomes []string
	eventually(t, "the exhausted event", func() bool {
		evs := events()
		return len(evs) > 0 && evs[len(evs)-1].Outcome == registry.RetryExhausted
	})
	for _, r := range events() {
		outcomes = append(outcomes, string(r.Outcome)+itoa(r.Attempt))
		if r.Max != 5 || r.Policy != "fixed:3s,max=5" {
			t.Fatalf("event %+v", r)
		}
		if r.Outcome == registry.RetryScheduled && (r.Delay != 3*time.Second || r.NextAt.IsZero()) {
			t.Fatalf("scheduled event %+v", r)
		}
	}
	want := "scheduled1 started1 failed1 scheduled2 started2 failed2 scheduled3 started3 failed3 scheduled4 started4 failed4 scheduled5 started5 failed5 exhausted5"
	if got := join(outcomes); got != want {
		t.Fatalf("retry events:\n got %s\nwant %s", got, want)
	}
	// The error is logged, and Ready reports it.
	found := false
	for _, r := range e.m.Logs(0) {
		if r.Message == "Channel failed, giving up" && r.Channel == name.String() {
			found = true
		}
	}
	if !found {
		t.Fatal("giving up was not logged")
	}
	if err := h.Ready(ctx(t)); !errors.Is(err, registry.ErrChannelFailed) {
		t.Fatalf("Ready = %v", err)
	}
	// A socket reconnect does not revive it: it stays in error.
	if _, err := e.m.Faults().Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a reconnect", func() bool {
		return e.m.Snapshot().Socket.Reconnects == 1 && e.m.Snapshot().Socket.Status == registry.SocketConnected
	})
	if i := e.info(name); i.Status != registry.StatusError {
		t.Fatalf("after a reconnect: %s", i.Status)
	}
	if got := e.srv.Stats().RejectedJoins; got != 6 {
		t.Fatalf("a reconnect rejoined a given-up channel (%d joins)", got)
	}

	// RetryNow starts a fresh series: the count is reset and the join
	// succeeds now that the server accepts joins.
	e.srv.RejectJoins(server.Rejection{})
	if err := e.m.RetryNow(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	info = e.waitStatus(name, registry.StatusConnected)
	if info.Attempts != 0 || info.LastErrorCode != "RealtimeRestarting" {
		t.Fatalf("after RetryNow %+v", info)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRetryNowStartsFreshSeries(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	e := newEnv(t, withFakeClock(clk))
	e.srv.RejectJoins(server.Rejection{Count: 1000})
	name := registry.MustName(registry.KindBroadcast, "document", "1", "")
	if _, err := e.m.Join(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	e.advanceToNextAttempt(name, 1, 3*time.Second)
	e.advanceToNextAttempt(name, 2, 3*time.Second)
	e.advanceToNextAttempt(name, 3, 3*time.Second) // attempt 3 fails; 3 spent
	eventually(t, "attempt 4 scheduled", func() bool { i := e.info(name); return i.Attempts == 3 && !i.NextAttemptAt.IsZero() })
	// A manual retry in the middle of a series starts a new one: the
	// join fails again and the new series counts from 1.
	if err := e.m.RetryNow(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new series", func() bool { i := e.info(name); return i.Attempts == 0 && !i.NextAttemptAt.IsZero() })
	for n := 1; n <= 5; n++ {
		e.advanceToNextAttempt(name, n, 3*time.Second)
	}
	e.waitStatus(name, registry.StatusError)
	// 1 initial + 3 + 1 manual + 5 = 10 refused joins.
	if got := e.srv.Stats().RejectedJoins; got != 10 {
		t.Fatalf("server refused %d joins, want 10", got)
	}
}

func TestExponentialPolicyLadder(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	p := registry.Exponential{Base: time.Second, Factor: 2, Cap: 5 * time.Second, Jitter: 0.5, Max: 4}
	half := func() float64 { return 0.5 } // jitter factor 1: the nominal delay
	e := newEnv(t, withFakeClock(clk), withOpts(func(o *registry.Options) { o.Policy = p; o.Rand = half }))
	e.srv.RejectJoins(server.Rejection{Count: 1000})
	name := registry.MustName(registry.KindBroadcast, "document", "2", "")
	if _, err := e.m.Join(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	for n, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second} {
		e.advanceToNextAttempt(name, n+1, d)
	}
	info := e.waitStatus(name, registry.StatusError)
	if info.Attempts != 4 || info.MaxAttempts != 4 {
		t.Fatalf("info %+v", info)
	}
	if got := e.srv.Stats().RejectedJoins; got != 5 {
		t.Fatalf("refused joins %d, want 5", got)
	}
}

func TestBreakerPolicyHoldsAndProbes(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	b := registry.NewBreaker(registry.BreakerConfig{Threshold: 3, Window: time.Minute, Cooldown: 10 * time.Second, Delay: time.Second, Max: registry.Unlimited})
	e := newEnv(t, withFakeClock(clk), withOpts(func(o *registry.Options) { o.Policy = b }))
	e.srv.RejectJoins(server.Rejection{Count: 1000})
	a := registry.MustName(registry.KindBroadcast, "doc", "a", "")
	c := registry.MustName(registry.KindBroadcast, "doc", "c", "")
	// a and c fail their joins, half a second apart, so that their first
	// attempts fall due one after the other (at the same instant, which
	// failure reached the breaker first would be a race).
	if _, err := e.m.Join(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	e.waitScheduled(a, 0)
	clk.Advance(500 * time.Millisecond)
	if _, err := e.m.Join(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	e.waitScheduled(c, 0)
	// a's attempt 1 fails: the third failure in the window opens the
	// breaker.
	clk.Advance(500 * time.Millisecond)
	e.waitScheduled(a, 1)
	st := e.m.Snapshot().Policy.Breaker
	if st == nil || st.State != "open" {
		t.Fatalf("breaker %+v, want open", st)
	}
	refused := e.srv.Stats().RejectedJoins
	if refused != 3 {
		t.Fatalf("refused %d joins, want 3", refused)
	}
	// While open, attempts are held until the cooldown: c's attempt 1,
	// due now, does not go, and nothing reaches the server.
	clk.Advance(time.Second)
	eventually(t, "attempts held until the cooldown", func() bool {
		ia, ic := e.info(a), e.info(c)
		return ia.NextAttemptAt.Equal(st.OpenUntil) && ic.NextAttemptAt.Equal(st.OpenUntil) && ia.Attempts == 1 && ic.Attempts == 0
	})
	if got := e.srv.Stats().RejectedJoins; got != refused {
		t.Fatalf("attempts reached the server while the breaker was open (%d -> %d)", refused, got)
	}
	// The server recovers; after the cooldown one probe goes, succeeds,
	// closes the breaker, and the other channel follows.
	e.srv.RejectJoins(server.Rejection{})
	clk.Set(st.OpenUntil)
	e.waitStatus(a, registry.StatusConnected)
	e.waitStatus(c, registry.StatusConnected)
	if st := e.m.Snapshot().Policy.Breaker; st.State != "closed" {
		t.Fatalf("breaker %+v", st)
	}
}

func itoa(n int) string {
	return string(rune('0' + n))
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
