// Package clock is the time source of the channel manager and of the
// fault-injecting transport: the real clock for production and a fake one
// that tests advance by hand, so that retry ladders of seconds or minutes
// run in microseconds and deterministically.
//
// Only what the manager needs is abstracted: the current time, one-shot
// timers (AfterFunc) and tickers. Heartbeats and push timeouts of the
// client keep running on real time.
package clock

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Clock tells the time and schedules work.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless the timer is
	// stopped first.
	AfterFunc(d time.Duration, f func()) Timer
	// NewTicker returns a ticker that sends the time on its channel every
	// d. d must be positive.
	NewTicker(d time.Duration) Ticker
}

// Timer is a one-shot timer made by [Clock.AfterFunc].
type Timer interface {
	// Stop prevents the timer from firing. It reports whether it did so
	// (false when the timer already fired or was stopped).
	Stop() bool
}

// Ticker delivers ticks on C until stopped.
type Ticker interface {
	// C returns the channel of ticks (capacity 1; ticks are dropped when
	// the reader is slow, as with time.Ticker).
	C() <-chan time.Time
	// Stop turns the ticker off. It does not close the channel.
	Stop()
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
func (realClock) NewTicker(d time.Duration) Ticker          { return realTicker{time.NewTicker(d)} }
func (r realTicker) C() <-chan time.Time                    { return r.t.C }
func (r realTicker) Stop()                                  { r.t.Stop() }

type realTicker struct{ t *time.Ticker }

// Fake is a clock that moves only when told to. Timers whose time has
// come fire, in time order, during [Fake.Advance] or [Fake.Set]: their
// functions run on the goroutine that advances the clock, one after the
// other, before Advance returns (code under test must not rely on that:
// the real clock runs them in their own goroutines). The zero value is not
// usable; use [NewFake].
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	timers  timerHeap
	changed chan struct{} // closed and replaced whenever the set of timers changes
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc schedules fn at Now()+d. A d <= 0 fires at the next Advance
// (even Advance(0)).
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, at: f.now.Add(d), fn: fn}
	f.push(t)
	return t
}

// NewTicker returns a ticker that ticks every d of fake time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, at: f.now.Add(d), period: d, ch: make(chan time.Time, 1)}
	f.push(t)
	return fakeTicker{t}
}

// Advance moves the clock forward by d, firing every timer that falls due,
// in order; a ticker fires once per period passed, a slow reader loses
// ticks.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.Set(target)
}

// Set moves the clock to t (never backwards), firing what falls due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.timers) > 0 && !f.timers[0].at.After(t) {
		tm := f.timers[0]
		if tm.at.After(f.now) {
			f.now = tm.at
		}
		if tm.period > 0 {
			select {
			case tm.ch <- f.now:
			default:
			}
			tm.at = tm.at.Add(tm.period)
			heap.Fix(&f.timers, 0)
			continue
		}
		heap.Pop(&f.timers)
		tm.index = -1
		f.notify()
		f.mu.Unlock()
		tm.fn()
		f.mu.Lock()
	}
	if t.After(f.now) {
		f.now = t
	}
	f.notify()
}

// Pending returns the number of timers and tickers waiting to fire.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next returns the time of the earliest pending timer and true, or false
// when none is pending.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return time.Time{}, false
	}
	return f.timers[0].at, true
}

// WaitPending blocks until at least n timers are pending or ctx is done.
// Tests use it to know that the code under test has scheduled its next
// step before they advance the clock.
func (f *Fake) WaitPending(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		ok := len(f.timers) >= n
		ch := f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitUntil blocks until cond, given the due times of the pending timers
// (earliest first not guaranteed), returns true, or ctx is done.
func (f *Fake) WaitUntil(ctx context.Context, cond func(pending []time.Time) bool) error {
	for {
		f.mu.Lock()
		at := make([]time.Time, len(f.timers))
		for i, t := range f.timers {
			at[i] = t.at
		}
		ch := f.changed
		f.mu.Unlock()
		if cond(at) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *Fake) push(t *fakeTimer) {
	f.seq++
	t.seq = f.seq
	heap.Push(&f.timers, t)
	f.notify()
}

func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	clock  *Fake
	at     time.Time
	seq    uint64
	index  int
	fn     func()
	period time.Duration
	ch     chan time.Time
}

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&f.timers, t.index)
	t.index = -1
	f.notify()
	return true
}

type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time { return k.t.ch }
func (k fakeTicker) Stop()               { k.t.Stop() }

type timerHeap []*fakeTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
