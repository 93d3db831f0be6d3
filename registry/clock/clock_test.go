package clock

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFakeOrderStopAndTickers(t *testing.T) {
	clk := NewFake(time.Unix(100, 0))
	var order []int
	clk.AfterFunc(2*time.Second, func() { order = append(order, 2) })
	t1 := clk.AfterFunc(time.Second, func() { order = append(order, 1) })
	clk.AfterFunc(3*time.Second, func() { order = append(order, 3) })
	stopped := clk.AfterFunc(time.Second, func() { order = append(order, 99) })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop results wrong")
	}
	tk := clk.NewTicker(time.Second)
	if next, ok := clk.Next(); !ok || !next.Equal(time.Unix(101, 0)) {
		t.Fatalf("Next = %v %v", next, ok)
	}
	clk.Advance(2 * time.Second)
	if len(order) != 2 || order[0] != 1 || order[1] != 2 || t1.Stop() {
		t.Fatalf("order %v", order)
	}
	select {
	case <-tk.C():
	default:
		t.Fatal("ticker did not tick")
	}
	tk.Stop()
	clk.Advance(time.Second)
	if len(order) != 3 || !clk.Now().Equal(time.Unix(103, 0)) || clk.Pending() != 0 {
		t.Fatalf("order %v now %v pending %d", order, clk.Now(), clk.Pending())
	}
	// A timer scheduled by a firing timer fires in the same Advance when
	// it falls due.
	var chain []int
	clk.AfterFunc(time.Second, func() {
		chain = append(chain, 1)
		clk.AfterFunc(time.Second, func() { chain = append(chain, 2) })
	})
	clk.Advance(5 * time.Second)
	if len(chain) != 2 {
		t.Fatalf("chain %v", chain)
	}
}

func TestFakeWaitPending(t *testing.T) {
	clk := NewFake(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- clk.WaitPending(ctx, 2)
	}()
	clk.AfterFunc(time.Second, func() {})
	clk.AfterFunc(time.Second, func() {})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := clk.WaitPending(ctx, 10); err == nil {
		t.Fatal("WaitPending ignored its context")
	}
	if err := clk.WaitUntil(context.Background(), func(at []time.Time) bool { return len(at) == 2 }); err != nil {
		t.Fatal(err)
	}
}

func TestReal(t *testing.T) {
	c := Real()
	fired := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(fired) })
	<-fired
	tk := c.NewTicker(time.Millisecond)
	<-tk.C()
	tk.Stop()
	if c.Now().IsZero() {
		t.Fatal("zero time")
	}
}
