// Package faultnet is a fault-injecting transport for the client side of a
// WebSocket connection: a dialer (for realtime.Options.Dial) whose
// net.Conns can be dropped, frozen half-open for a while, slowed down by
// a latency, made to fail the next N connects, and fed extra
// server-to-client WebSocket messages (to inject a phx_error, say).
//
// It works against any server, hosted projects included, because it acts
// only on this client's TCP connections.
//
// Semantics:
//
//   - Drop closes every live connection abruptly (TCP reset where
//     possible, no WebSocket close frame): the client sees a read error.
//   - Freeze(d) makes every live connection half-open for d: nothing read
//     from the server is delivered and nothing written is sent (writes
//     are buffered and succeed, as the kernel would buffer them); after
//     d both directions resume in order. Connections opened during the
//     freeze are not frozen. Closing a frozen connection discards what
//     it buffered.
//   - SetLatency(d) delays every chunk of data, in each direction, by d
//     from when it was read from the server or written by the client
//     (new chunks only; order is kept).
//   - FailConnects(n) makes the next n dials fail at once with an error
//     wrapping ErrInjected.
//
// A dial honours its context: one whose context is already done fails at
// once with the context's error, without using up an injected failure,
// and the real dial gets the context. Every blocking read and write
// returns at its deadline or when the connection is closed, whatever
// fault is in force, so a connect abandoned midway (its connection given
// a past deadline, then closed) ends at once, even under a latency or a
// freeze.
//   - Inject(msg, binary) queues a WebSocket message for every live
//     connection, delivered to the client at the next message boundary
//     of the server's stream (never inside a frame or a fragmented
//     message, never before the handshake response).
//
// Read and write deadlines are honoured in real time. Freeze and latency
// use the transport's clock (Options.Now and AfterFunc: the registry
// gives its injectable clock). A Transport is safe for concurrent use;
// it holds no goroutines of its own, and each connection's two
// goroutines end when the connection is closed.
//
// The errors keep the word "faults" that users see in logs and retries.
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrInjected is wrapped by the errors of injected connect failures.
var ErrInjected = errors.New("faults: injected connect failure")

// ErrDropped is returned by reads and writes of a dropped connection.
var ErrDropped = errors.New("faults: connection dropped")

// Options configures a [Transport]. Zero fields get the defaults.
type Options struct {
	// Dial makes the real connections. Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now and AfterFunc are the clock of freezes and latency (default
	// the real clock). AfterFunc schedules f after d on the clock of Now
	// and returns a function that cancels it (reporting whether it
	// stopped the call), as server.Config's does.
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// MaxBuffer bounds the bytes buffered per direction and connection
	// (default 4 MiB). Beyond it the read side stops reading from the
	// server (TCP back-pressure) and writes block (until their deadline).
	MaxBuffer int
}

// State reports the faults in force.
type State struct {
	// Conns is the number of live connections.
	Conns int
	// FrozenUntil is the end of the freeze in force (zero when none).
	FrozenUntil time.Time
	// Latency is the added latency per direction.
	Latency time.Duration
	// FailConnects is the number of dials still to fail.
	FailConnects int
	// Dials, FailedDials and Drops count dials, injected dial failures
	// and connections dropped.
	Dials, FailedDials, Drops int
	// Injected counts messages injected (once per connection).
	Injected int
}

// Transport dials connections that faults can be applied to.
type Transport struct {
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	now       func() time.Time
	afterFunc func(d time.Duration, f func()) (stop func() bool)
	max       int

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	latency time.Duration
	fail    int
	st      State
}

// New returns a transport with no fault in force.
func New(opts Options) *Transport {
	if opts.Dial == nil {
		d := &net.Dialer{}
		opts.Dial = d.DialContext
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AfterFunc == nil {
		opts.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if opts.MaxBuffer <= 0 {
		opts.MaxBuffer = 4 << 20
	}
	return &Transport{dial: opts.Dial, now: opts.Now, afterFunc: opts.AfterFunc, max: opts.MaxBuffer, conns: map[*Conn]struct{}{}}
}

// DialContext dials addr through the transport; its signature is that of
// realtime.Options.Dial and net.Dialer.DialContext.
func (t *Transport) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	t.mu.Lock()
	t.st.Dials++
	if t.fail > 0 {
		t.fail--
		t.st.FailedDials++
		left := t.fail
		t.mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%w (%d more to fail)", ErrInjected, left)}
	}
	t.mu.Unlock()
	raw, err := t.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := newConn(t, raw)
	t.mu.Lock()
	t.conns[c] = struct{}{}
	c.latency = t.latency
	t.mu.Unlock()
	c.start()
	return c, nil
}

// Drop closes every live connection abruptly and returns how many it
// closed.
func (t *Transport) Drop() int {
	conns := t.live()
	for _, c := range conns {
		c.drop()
	}
	t.mu.Lock()
	t.st.Drops += len(conns)
	t.mu.Unlock()
	return len(conns)
}

// Freeze makes every live connection half-open for d (see the package
// doc); d <= 0 thaws them. It returns the number of connections frozen.
func (t *Transport) Freeze(d time.Duration) int {
	until := time.Time{}
	if d > 0 {
		until = t.now().Add(d)
	}
	conns := t.live()
	for _, c := range conns {
		c.freeze(until)
	}
	return len(conns)
}

// SetLatency sets the latency added to each direction (0 for none).
func (t *Transport) SetLatency(d time.Duration) {
	d = max(d, 0)
	t.mu.Lock()
	t.latency = d
	t.mu.Unlock()
	for _, c := range t.live() {
		c.setLatency(d)
	}
}

// FailConnects makes the next n dials fail (n <= 0 cancels).
func (t *Transport) FailConnects(n int) {
	t.mu.Lock()
	t.fail = max(n, 0)
	t.mu.Unlock()
}

// Inject queues a server-to-client WebSocket message (text, or binary)
// for every live connection and returns the number of connections.
func (t *Transport) Inject(msg []byte, binary bool) int {
	frame := serverFrame(msg, binary)
	conns := t.live()
	for _, c := range conns {
		c.inject(frame)
	}
	t.mu.Lock()
	t.st.Injected += len(conns)
	t.mu.Unlock()
	return len(conns)
}

// State returns the faults in force and the counters.
func (t *Transport) State() State {
	t.mu.Lock()
	st := t.st
	st.Conns = len(t.conns)
	st.Latency = t.latency
	st.FailConnects = t.fail
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	now := t.now()
	for _, c := range conns {
		if u := c.frozenUntil(); u.After(now) && u.After(st.FrozenUntil) {
			st.FrozenUntil = u
		}
	}
	return st
}

func (t *Transport) live() []*Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		out = append(out, c)
	}
	return out
}

func (t *Transport) forget(c *Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}
