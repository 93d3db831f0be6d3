package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"rtm/registry/clock"
)

// Limiter is a token bucket: PerSecond tokens a second, at most Burst
// saved. It runs on an injectable clock and is safe for concurrent use.
type Limiter struct {
	clk   clock.Clock
	rate  float64
	burst float64

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	waiting atomic.Int64 // Waits waiting for their token
}

// NewLimiter returns a full bucket. perSecond <= 0 means no limit; burst
// < 1 is 1.
func NewLimiter(perSecond float64, burst int, clk clock.Clock) *Limiter {
	if clk == nil {
		clk = clock.Real()
	}
	b := float64(max(burst, 1))
	return &Limiter{clk: clk, rate: perSecond, burst: b, tokens: b, last: clk.Now()}
}

// reserve takes a token, possibly in advance, and returns how long to
// wait until it is due.
func (l *Limiter) reserve() time.Duration {
	if l.rate <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clk.Now()
	if el := now.Sub(l.last); el > 0 {
		l.tokens = min(l.burst, l.tokens+el.Seconds()*l.rate)
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

func (l *Limiter) giveBack() {
	l.mu.Lock()
	l.tokens = min(l.burst, l.tokens+1)
	l.mu.Unlock()
}

// Allow takes a token if one is available now.
func (l *Limiter) Allow() bool {
	if l.rate <= 0 {
		return true
	}
	if l.reserve() == 0 {
		return true
	}
	l.giveBack()
	return false
}

// Wait blocks until a token is available or ctx is done; a token taken
// by a Wait that ends early is given back.
func (l *Limiter) Wait(ctx context.Context) error {
	d := l.reserve()
	if d <= 0 {
		return nil
	}
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	fired := make(chan struct{})
	t := l.clk.AfterFunc(d, func() { close(fired) })
	select {
	case <-fired:
		return nil
	case <-ctx.Done():
		if t.Stop() {
			l.giveBack()
		}
		return ctx.Err()
	}
}

// Waiting returns how many Waits are waiting for their token now.
func (l *Limiter) Waiting() int { return int(l.waiting.Load()) }

// Debouncer sends high-frequency values (cursor positions) at most once
// per window, the latest value winning: the first value after a quiet
// window goes out at once, later ones within the window replace each
// other and the last goes out when the window ends. Safe for concurrent
// use.
type Debouncer struct {
	clk    clock.Clock
	window time.Duration
	send   func(value any)

	mu       sync.Mutex
	pending  any
	has      bool
	timer    clock.Timer
	stopped  bool
	sent     uint64
	replaced uint64
}

// NewDebouncer returns a debouncer that calls send (on a timer goroutine
// or the caller's) with the values to send.
func NewDebouncer(window time.Duration, clk clock.Clock, send func(value any)) *Debouncer {
	if clk == nil {
		clk = clock.Real()
	}
	return &Debouncer{clk: clk, window: window, send: send}
}

// Send offers a value; it never blocks on the network.
func (d *Debouncer) Send(v any) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	if d.timer == nil {
		// Quiet: send now and open a window.
		d.timer = d.clk.AfterFunc(d.window, d.tick)
		d.sent++
		d.mu.Unlock()
		d.send(v)
		return
	}
	if d.has {
		d.replaced++
	}
	d.pending, d.has = v, true
	d.mu.Unlock()
}

func (d *Debouncer) tick() {
	d.mu.Lock()
	if d.stopped || !d.has {
		d.timer = nil
		d.mu.Unlock()
		return
	}
	v := d.pending
	d.pending, d.has = nil, false
	d.sent++
	d.timer = d.clk.AfterFunc(d.window, d.tick)
	d.mu.Unlock()
	d.send(v)
}

// Flush sends the pending value now, if any.
func (d *Debouncer) Flush() {
	d.mu.Lock()
	if !d.has || d.stopped {
		d.mu.Unlock()
		return
	}
	v := d.pending
	d.pending, d.has = nil, false
	d.sent++
	d.mu.Unlock()
	d.send(v)
}

// Stop drops the pending value and stops the timer.
func (d *Debouncer) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	d.pending, d.has = nil, false
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// Pending reports whether a value waits for the window's end.
func (d *Debouncer) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.has
}

// Counts returns the values sent and the values replaced by a later one
// before they went out.
func (d *Debouncer) Counts() (sent, replaced uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent, d.replaced
}
