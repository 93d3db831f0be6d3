// Package faults is a fault-injecting transport for the client side of a
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
// use the transport's clock. A Transport is safe for concurrent use; it
// holds no goroutines of its own, and each connection's two goroutines
// end when the connection is closed.
package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"rtm/registry/clock"
)

// ErrInjected is wrapped by the errors of injected connect failures.
var ErrInjected = errors.New("faults: injected connect failure")

// ErrDropped is returned by reads and writes of a dropped connection.
var ErrDropped = errors.New("faults: connection dropped")

// Options configures a [Transport]. Zero fields get the defaults.
type Options struct {
	// Dial makes the real connections. Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Clock times freezes and latency. Default: the real clock.
	Clock clock.Clock
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
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	clock clock.Clock
	max   int

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
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.MaxBuffer <= 0 {
		opts.MaxBuffer = 4 << 20
	}
	return &Transport{dial: opts.Dial, clock: opts.Clock, max: opts.MaxBuffer, conns: map[*Conn]struct{}{}}
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
		until = t.clock.Now().Add(d)
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
	now := t.clock.Now()
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

// serverFrame encodes msg as one unmasked final WebSocket frame.
func serverFrame(msg []byte, binary bool) []byte {
	op := byte(0x1)
	if binary {
		op = 0x2
	}
	f := []byte{0x80 | op}
	switch n := len(msg); {
	case n < 126:
		f = append(f, byte(n))
	case n <= 0xffff:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = append(f, 127)
		for i := 7; i >= 0; i-- {
			f = append(f, byte(uint64(n)>>(8*i)))
		}
	}
	return append(f, msg...)
}

// chunk is data waiting to be delivered, due at a time.
type chunk struct {
	data []byte
	due  time.Time
}

// Conn is a connection made by a [Transport]. It implements net.Conn.
type Conn struct {
	t   *Transport
	raw net.Conn

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when anything changes
	closed  bool
	dropped bool
	frozen  time.Time // frozen until
	latency time.Duration

	rq     []chunk // from the server, not yet delivered
	rbytes int
	rerr   error // the raw read error, after rq drains
	inj    [][]byte
	cur    []byte // injected frame being delivered
	ws     wsTracker

	wq     []chunk // from the client, not yet written
	wbytes int
	werr   error

	rdl, wdl time.Time

	// Until a fault is first applied, reads and writes go straight to
	// the raw connection (no goroutine, no copy). The first fault starts
	// the two pumps for the rest of the connection's life.
	pumping     bool // the pumps run
	wantPump    bool // start them as soon as no direct read is under way
	writing     bool // a direct raw.Write is under way
	wwait       int  // direct writers waiting for it
	interrupted bool // we broke a direct read with a past deadline

	// The direct read path takes no lock: slow is set (before reading is
	// checked) by anything that ends direct mode; a reader sets reading
	// before it checks slow. ws belongs to the reading goroutine.
	slow    atomic.Bool
	reading atomic.Bool

	wg sync.WaitGroup
}

func newConn(t *Transport, raw net.Conn) *Conn {
	return &Conn{t: t, raw: raw, changed: make(chan struct{})}
}

// start begins in direct mode, or with the pumps when latency is
// already set.
func (c *Conn) start() {
	c.mu.Lock()
	if c.latency > 0 {
		c.activateLocked()
	}
	c.mu.Unlock()
}

// activateLocked switches the connection to the pumps (once): at once,
// or when the direct read under way returns (it is interrupted so that
// the switch is prompt).
func (c *Conn) activateLocked() {
	if c.pumping || c.closed || c.dropped {
		return
	}
	c.wantPump = true
	c.slow.Store(true)
	if c.reading.Load() {
		// The reader switches when its read returns; make that now.
		c.interrupted = true
		_ = c.raw.SetReadDeadline(time.Unix(1, 0))
		return
	}
	c.startPumpsLocked()
}

func (c *Conn) startPumpsLocked() {
	if c.pumping {
		return
	}
	c.pumping, c.wantPump = true, false
	// The pumps own the raw connection now; deadlines are ours.
	_ = c.raw.SetReadDeadline(time.Time{})
	_ = c.raw.SetWriteDeadline(time.Time{})
	c.wg.Add(2)
	go c.readPump()
	go c.writePump()
}

// kick wakes every waiter; c.mu is held.
func (c *Conn) kick() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Conn) lockedKick() {
	c.mu.Lock()
	c.kick()
	c.mu.Unlock()
}

// wait releases c.mu, waits for a change, until (clock time, if not
// zero), or the real-time deadline dl, and locks c.mu again. It reports
// false when the deadline passed.
func (c *Conn) wait(until time.Time, dl time.Time) bool {
	ch := c.changed
	var tm clock.Timer
	if !until.IsZero() {
		tm = c.t.clock.AfterFunc(until.Sub(c.t.clock.Now()), c.lockedKick)
	}
	var dlc <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			if tm != nil {
				tm.Stop()
			}
			return false
		}
		rt := time.NewTimer(d)
		defer rt.Stop()
		dlc = rt.C
	}
	c.mu.Unlock()
	ok := true
	select {
	case <-ch:
	case <-dlc:
		ok = false
	}
	if tm != nil {
		tm.Stop()
	}
	c.mu.Lock()
	return ok
}

// readPump reads from the server into rq.
func (c *Conn) readPump() {
	defer c.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		c.mu.Lock()
		for !c.closed && c.rbytes >= c.t.max {
			c.wait(time.Time{}, time.Time{})
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		n, err := c.raw.Read(buf)
		c.mu.Lock()
		if n > 0 {
			c.rq = append(c.rq, chunk{data: append([]byte(nil), buf[:n]...), due: c.t.clock.Now().Add(c.latency)})
			c.rbytes += n
		}
		if err != nil {
			c.rerr = err
		}
		c.kick()
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.reading.Store(true)
	if !c.slow.Load() {
		// Direct mode: no lock, no copy.
		n, err := c.raw.Read(p)
		c.reading.Store(false)
		if !c.slow.Load() {
			c.ws.feed(p[:n])
			return n, err
		}
		// A fault arrived meanwhile: keep what was read for the pumps'
		// rules (freeze, latency), and switch.
		c.mu.Lock()
		defer c.mu.Unlock()
		intr := c.interrupted
		c.interrupted = false
		if n > 0 {
			c.rq = append(c.rq, chunk{data: append([]byte(nil), p[:n]...), due: c.t.clock.Now().Add(c.latency)})
			c.rbytes += n
		}
		if err != nil && !(intr && isTimeout(err)) && !c.dropped {
			c.rerr = err
		}
	} else {
		c.reading.Store(false)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.interrupted = false
	}
	if c.wantPump && !c.pumping && !c.closed && !c.dropped {
		c.startPumpsLocked()
	}
	for {
		if c.dropped {
			return 0, ErrDropped
		}
		if c.closed {
			return 0, net.ErrClosed
		}
		now := c.t.clock.Now()
		var until time.Time
		if c.frozen.After(now) {
			until = c.frozen
		} else {
			// An injected message goes first when the stream is at a
			// message boundary.
			if len(c.cur) == 0 && len(c.inj) > 0 && c.ws.atBoundary() {
				c.cur, c.inj = c.inj[0], c.inj[1:]
			}
			if len(c.cur) > 0 {
				n := copy(p, c.cur)
				c.cur = c.cur[n:]
				return n, nil
			}
			if len(c.rq) > 0 {
				h := &c.rq[0]
				if !h.due.After(now) {
					data := h.data
					if len(c.inj) > 0 {
						// Stop at the next boundary so the injection can
						// go in.
						data = data[:c.ws.untilBoundary(data)]
					}
					n := copy(p, data)
					c.ws.feed(h.data[:n])
					h.data = h.data[n:]
					c.rbytes -= n
					if len(h.data) == 0 {
						c.rq[0] = chunk{}
						c.rq = c.rq[1:]
					}
					c.kick()
					return n, nil
				}
				until = h.due
			} else if c.rerr != nil {
				return 0, c.rerr
			}
		}
		if !c.wait(until, c.rdl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write implements net.Conn: written directly, or queued for the write
// pump once a fault was applied.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.writing && !c.pumping && !c.wantPump && !c.dropped && !c.closed {
		// Another direct write is under way: writes are not interleaved.
		c.wwait++
		ok := c.wait(time.Time{}, c.wdl)
		c.wwait--
		if !ok {
			return 0, os.ErrDeadlineExceeded
		}
	}
	if !c.pumping && !c.wantPump && !c.dropped && !c.closed {
		c.writing = true
		c.mu.Unlock()
		n, err := c.raw.Write(p)
		c.mu.Lock()
		c.writing = false
		if c.wwait > 0 || c.pumping || c.wantPump {
			c.kick() // a writer or the write pump waits for this one
		}
		if err != nil && c.dropped {
			err = ErrDropped
		}
		return n, err
	}
	for {
		if c.dropped {
			return 0, ErrDropped
		}
		if c.closed {
			return 0, net.ErrClosed
		}
		if c.werr != nil {
			return 0, c.werr
		}
		if c.wbytes < c.t.max || c.wbytes == 0 {
			break
		}
		if !c.wait(time.Time{}, c.wdl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
	c.wq = append(c.wq, chunk{data: append([]byte(nil), p...), due: c.t.clock.Now().Add(c.latency)})
	c.wbytes += len(p)
	c.kick()
	return len(p), nil
}

func (c *Conn) writePump() {
	defer c.wg.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed || c.dropped {
			return
		}
		if c.writing {
			// A direct write from before the switch is finishing.
			c.wait(time.Time{}, time.Time{})
			continue
		}
		now := c.t.clock.Now()
		var until time.Time
		switch {
		case c.frozen.After(now):
			until = c.frozen
		case len(c.wq) > 0 && c.wq[0].due.After(now):
			until = c.wq[0].due
		case len(c.wq) > 0:
			h := c.wq[0]
			c.wq[0] = chunk{}
			c.wq = c.wq[1:]
			c.mu.Unlock()
			_, err := c.raw.Write(h.data)
			c.mu.Lock()
			c.wbytes -= len(h.data)
			if err != nil && c.werr == nil {
				c.werr = err
			}
			c.kick()
			continue
		}
		c.wait(until, time.Time{})
	}
}

// Close implements net.Conn. Unless frozen, data still queued for the
// server is written first (bounded by the write deadline or 1 s).
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	if c.pumping && !c.dropped && !c.frozen.After(c.t.clock.Now()) {
		dl := time.Now().Add(time.Second)
		if !c.wdl.IsZero() && c.wdl.Before(dl) {
			dl = c.wdl
		}
		// Let the pump write what is due; then write the rest at once.
		for i := range c.wq {
			c.wq[i].due = time.Time{}
		}
		c.kick()
		for len(c.wq) > 0 && c.werr == nil {
			if !c.wait(time.Time{}, dl) {
				break
			}
		}
	}
	c.closed = true
	c.slow.Store(true)
	dropped := c.dropped
	c.kick()
	c.mu.Unlock()
	err := c.raw.Close()
	c.wg.Wait()
	c.t.forget(c)
	if dropped {
		return nil
	}
	return err
}

func (c *Conn) drop() {
	c.mu.Lock()
	if c.closed || c.dropped {
		c.mu.Unlock()
		return
	}
	c.dropped = true
	c.slow.Store(true)
	c.kick()
	c.mu.Unlock()
	if tc, ok := c.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.raw.Close()
	c.t.forget(c)
}

func (c *Conn) freeze(until time.Time) {
	c.mu.Lock()
	c.frozen = until
	if !until.IsZero() {
		c.activateLocked()
	}
	c.kick()
	c.mu.Unlock()
}

func (c *Conn) frozenUntil() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frozen
}

func (c *Conn) setLatency(d time.Duration) {
	c.mu.Lock()
	c.latency = d
	if d > 0 {
		c.activateLocked()
	}
	c.mu.Unlock()
}

func (c *Conn) inject(frame []byte) {
	c.mu.Lock()
	c.inj = append(c.inj, frame)
	c.activateLocked()
	c.kick()
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl, c.wdl = t, t
	c.kick()
	if !c.pumping {
		if c.interrupted {
			return c.raw.SetWriteDeadline(t)
		}
		return c.raw.SetDeadline(t)
	}
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	c.kick()
	if !c.pumping && !c.interrupted {
		return c.raw.SetReadDeadline(t)
	}
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	c.kick()
	if !c.pumping {
		return c.raw.SetWriteDeadline(t)
	}
	return nil
}

// wsTracker follows the server-to-client byte stream to find WebSocket
// message boundaries: after the HTTP handshake response, between frames,
// and not inside a fragmented data message.
type wsTracker struct {
	handshake bool   // the "\r\n\r\n" ending the response was seen
	hsTail    uint32 // last 4 bytes of the handshake, for the end marker
	hdr       [14]byte
	hdrN      int    // header bytes collected
	need      int    // header length needed (0: unknown yet)
	left      uint64 // payload bytes left in the current frame
	inMessage bool   // inside a fragmented data message
	inFrame   bool   // header complete, payload pending
}

// atBoundary reports whether a whole message may be inserted now.
func (w *wsTracker) atBoundary() bool {
	return w.handshake && w.hdrN == 0 && !w.inFrame && !w.inMessage
}

// untilBoundary returns how many bytes of data to deliver to reach the
// next boundary (len(data) when there is none within data).
func (w *wsTracker) untilBoundary(data []byte) int {
	sim := *w
	for i := range data {
		if sim.atBoundary() && i > 0 {
			return i
		}
		sim.feed(data[i : i+1])
	}
	return len(data)
}

// feed advances the tracker over data.
func (w *wsTracker) feed(data []byte) {
	for len(data) > 0 {
		if !w.handshake {
			w.hsTail = w.hsTail<<8 | uint32(data[0])
			data = data[1:]
			if w.hsTail == 0x0d0a0d0a {
				w.handshake = true
			}
			continue
		}
		if w.inFrame {
			n := uint64(len(data))
			if n > w.left {
				n = w.left
			}
			w.left -= n
			data = data[n:]
			if w.left == 0 {
				w.inFrame = false
			}
			continue
		}
		if w.hdrN == 0 && len(data) >= 2 {
			// Fast path: whole headers in data, read in place; whole
			// frames are skipped with the state in locals.
			inMsg := w.inMessage
			for len(data) >= 2 {
				need := headerLen(data[1])
				if len(data) < need {
					break
				}
				n := frameLen(data)
				if data[0]&0x0f < 0x8 { // a data frame (control frames may interleave)
					inMsg = data[0]&0x80 == 0
				}
				data = data[need:]
				if n > uint64(len(data)) {
					w.left, w.inFrame = n-uint64(len(data)), true
					data = data[len(data):]
					break
				}
				data = data[n:]
			}
			w.inMessage = inMsg
			if len(data) == 0 {
				continue
			}
			// A partial header: collected byte by byte below.
		}
		w.hdr[w.hdrN] = data[0]
		w.hdrN++
		data = data[1:]
		if w.hdrN == 2 {
			w.need = headerLen(w.hdr[1])
		}
		if w.hdrN >= 2 && w.hdrN == w.need {
			w.endHeader(w.hdr[:w.hdrN])
		}
	}
}

// endHeader interprets a complete frame header collected in w.hdr.
func (w *wsTracker) endHeader(hdr []byte) {
	n := frameLen(hdr)
	if op := hdr[0] & 0x0f; op < 0x8 { // a data frame (control frames may interleave)
		w.inMessage = hdr[0]&0x80 == 0
	}
	w.hdrN, w.need = 0, 0
	w.left = n
	w.inFrame = n > 0
}

// headerLen returns the length of a frame header from its second byte
// (the length form and the mask bit).
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// frameLen returns the payload length of a complete frame header.
func frameLen(hdr []byte) uint64 {
	switch l := hdr[1] & 0x7f; l {
	case 126:
		return uint64(hdr[2])<<8 | uint64(hdr[3])
	case 127:
		var n uint64
		for i := 2; i < 10; i++ {
			n = n<<8 | uint64(hdr[i])
		}
		return n
	default:
		return uint64(l)
	}
}
