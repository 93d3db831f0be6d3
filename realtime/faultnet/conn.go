package faultnet

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

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
	var stop func() bool
	if !until.IsZero() {
		stop = c.t.afterFunc(until.Sub(c.t.now()), c.lockedKick)
	}
	var dlc <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			if stop != nil {
				stop()
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
	if stop != nil {
		stop()
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
			c.rq = append(c.rq, chunk{data: append([]byte(nil), buf[:n]...), due: c.t.now().Add(c.latency)})
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
			c.rq = append(c.rq, chunk{data: append([]byte(nil), p[:n]...), due: c.t.now().Add(c.latency)})
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
		now := c.t.now()
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
	c.wq = append(c.wq, chunk{data: append([]byte(nil), p...), due: c.t.now().Add(c.latency)})
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
		now := c.t.now()
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
	if c.pumping && !c.dropped && !c.frozen.After(c.t.now()) {
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
