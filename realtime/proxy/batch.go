package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
)

// Write coalescing. Each relayed message is one write on its way out;
// when a side sends faster than one message per wake-up, the messages
// already read from it are written to the other side in one system call.
// A batchConn holds the messages a pump writes to it until that pump is
// about to read again (its source's Read flushes it first), so nothing
// waits for more input: a message is held only while the messages read
// with it are relayed. Held bytes are bounded (maxBatch) and come from a
// pool, so an idle socket holds no buffer.

// maxBatch bounds the bytes a batchConn holds; a bigger write goes out at
// once.
const maxBatch = 32 << 10

// batchConn is a connection whose writes a pump can hold (see above).
type batchConn struct {
	net.Conn
	pool *sync.Pool
	// peer is flushed before each Read: the pump reading this
	// connection writes to peer.
	peer *batchConn

	mu       sync.Mutex
	batching bool    // the pump is writing a message
	buf      *[]byte // held bytes (nil when none)
	err      error   // a failed flush: later writes fail with it
}

// Read flushes what the pump wrote to peer, then reads.
func (b *batchConn) Read(p []byte) (int, error) {
	if b.peer != nil {
		b.peer.flush()
	}
	return b.Conn.Read(p)
}

// Write holds p while the pump is writing a message, else writes it
// (after what is held).
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.batching && len(p) <= maxBatch {
		if b.buf != nil && len(*b.buf)+len(p) > maxBatch {
			if err := b.flushLocked(); err != nil {
				return 0, err
			}
		}
		if b.buf == nil {
			bp, _ := b.pool.Get().(*[]byte)
			if bp == nil {
				s := make([]byte, 0, maxBatch)
				bp = &s
			}
			b.buf = bp
		}
		*b.buf = append(*b.buf, p...)
		return len(p), nil
	}
	if err := b.flushLocked(); err != nil {
		return 0, err
	}
	return b.Conn.Write(p)
}

// setBatching marks the start and end of the pump's message writes.
func (b *batchConn) setBatching(on bool) {
	b.mu.Lock()
	b.batching = on
	b.mu.Unlock()
}

// flush writes what is held; on failure the connection is closed, so
// that its pumps end.
func (b *batchConn) flush() {
	b.mu.Lock()
	err := b.flushLocked()
	b.mu.Unlock()
	if err != nil {
		_ = b.Conn.Close()
	}
}

func (b *batchConn) flushLocked() error {
	if b.buf == nil {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	b.pool.Put(b.buf)
	b.buf = nil
	if err != nil {
		b.err = err
	}
	return err
}

// batchSlot carries, in the dial's context, where the dialled upstream
// connection is to be put.
type batchSlot struct{ conn *batchConn }

type batchSlotKey struct{}

// dialBatch is the websocket dialler's NetDialContext: it wraps the
// connection and puts it in the context's slot.
func (p *Proxy) dialBatch(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.cfg.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	b := &batchConn{Conn: c, pool: &p.batchBufs}
	if slot, ok := ctx.Value(batchSlotKey{}).(*batchSlot); ok {
		slot.conn = b
	}
	return b, nil
}

// hijackWriter wraps the app's hijacked connection for the upgrader.
type hijackWriter struct {
	http.ResponseWriter
	pool *sync.Pool
	conn *batchConn
}

// Hijack implements http.Hijacker.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("proxy: the connection cannot be hijacked")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c, pool: h.pool}
	return h.conn, brw, nil
}
