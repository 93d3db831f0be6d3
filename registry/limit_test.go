package registry

import (
	"context"
	"sync"
	"testing"
	"time"

	"rtm/registry/clock"
)

func TestLimiter(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	l := NewLimiter(10, 3, clk)
	for i := range 3 {
		if !l.Allow() {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if l.Allow() {
		t.Fatal("4th token allowed without time passing")
	}
	clk.Advance(100 * time.Millisecond)
	if !l.Allow() || l.Allow() {
		t.Fatal("one token per 100ms at 10/s")
	}
	// Wait blocks until the clock moves.
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background()) }()
	if err := clk.WaitPending(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("Wait returned before the token was due")
	default:
	}
	clk.Advance(100 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A cancelled Wait gives its token back.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.Wait(ctx) }()
	if err := clk.WaitPending(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled Wait succeeded")
	}
	clk.Advance(100 * time.Millisecond)
	if !l.Allow() {
		t.Fatal("token of the cancelled Wait not given back")
	}
	if !NewLimiter(0, 0, clk).Allow() {
		t.Fatal("unlimited limiter refused")
	}
}

func TestDebouncerLatestWins(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	var mu sync.Mutex
	var sent []any
	d := NewDebouncer(50*time.Millisecond, clk, func(v any) {
		mu.Lock()
		sent = append(sent, v)
		mu.Unlock()
	})
	got := func() []any {
		mu.Lock()
		defer mu.Unlock()
		return append([]any(nil), sent...)
	}
	d.Send(1) // quiet: goes at once
	d.Send(2)
	d.Send(3)
	d.Send(4)
	if g := got(); len(g) != 1 || g[0] != 1 {
		t.Fatalf("sent %v, want [1]", g)
	}
	clk.Advance(50 * time.Millisecond) // window ends: the latest goes
	if g := got(); len(g) != 2 || g[1] != 4 {
		t.Fatalf("sent %v, want [1 4]", g)
	}
	clk.Advance(50 * time.Millisecond) // nothing pending: the window closes
	d.Send(5)
	if g := got(); len(g) != 3 || g[2] != 5 {
		t.Fatalf("sent %v, want [1 4 5]", g)
	}
	d.Send(6)
	d.Flush()
	if g := got(); len(g) != 4 || g[3] != 6 {
		t.Fatalf("after Flush %v", g)
	}
	d.Send(7)
	d.Stop()
	clk.Advance(time.Second)
	if g := got(); len(g) != 4 {
		t.Fatalf("sent after Stop: %v", g)
	}
	if s, r := d.Counts(); s != 4 || r != 2 {
		t.Fatalf("counts sent %d replaced %d", s, r)
	}
}
