package realtime

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

// freezeConn blocks writes while frozen, until unfrozen or closed, as a
// half-open connection whose peer stopped reading.
type freezeConn struct {
	net.Conn
	mu     sync.Mutex
	frozen chan struct{} // non-nil while frozen; closed to release
	closed chan struct{}
	once   sync.Once
}

func (c *freezeConn) freeze() {
	c.mu.Lock()
	c.frozen = make(chan struct{})
	c.mu.Unlock()
}

func (c *freezeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	f := c.frozen
	c.mu.Unlock()
	if f != nil {
		select {
		case <-f:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return c.Conn.Write(p)
}

func (c *freezeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// A frozen transport: user pushes queue up to SendBuffer, then Send fails
// with ErrSendBufferFull at once; Close still returns.
func TestSendBufferFullOnFrozenTransport(t *testing.T) {
	srv := servertest.New(t)
	var fc atomic.Pointer[freezeConn]
	s, err := Dial(ctxT(t), srv.URL, &Options{
		APIKey:            srv.AnonKey(),
		HeartbeatInterval: -1,
		SendBuffer:        8,
		WriteTimeout:      time.Hour,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			f := &freezeConn{Conn: c, closed: make(chan struct{})}
			fc.Store(f)
			return f, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	fc.Load().freeze()
	// The first push blocks the writer inside Write; then 8 wait; then full.
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		if err := ch.Send(ctxT(t), "x", nil); errors.Is(err, ErrSendBufferFull) {
			full = err
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full == nil || s.Stats().SendRejects == 0 {
		t.Fatalf("no ErrSendBufferFull; stats %+v", s.Stats())
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close hangs on a frozen transport")
	}
}

// Leave without a reply closes the channel after the push timeout and
// says so.
func TestLeaveTimeout(t *testing.T) {
	rs := newRawServer(t)
	_, c, ch, r, _ := joinRaw(t, rs, ChannelConfig{PushTimeout: 50 * time.Millisecond})
	err := ch.Leave(ctxT(t))
	if !errors.Is(err, ErrTimeout) || ch.State() != ChannelClosed {
		t.Fatalf("Leave: %v, state %v", err, ch.State())
	}
	if f := c.next(t, protocol.EventLeave); f.msg.Topic != "realtime:room1" {
		t.Fatalf("leave frame %+v", f.msg)
	}
	r.wait(t, "CLOSED", func(e []Event) bool { return countStatus(e, Closed) == 1 })
}
