package faultnet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/realtime/hostile/tarpit"
	"rtm/realtime/server/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wsServer is a real WebSocket server on loopback that records what it
// receives and sends what the test asks.
type wsServer struct {
	*httptest.Server
	mu    sync.Mutex
	got   []string
	errs  []error
	conns []*websocket.Conn
	seen  chan struct{}
}

func newWSServer(t *testing.T) *wsServer {
	s := &wsServer{seen: make(chan struct{}, 100)}
	up := websocket.Upgrader{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			s.got = append(s.got, string(data))
			s.mu.Unlock()
			s.seen <- struct{}{}
		}
	}))
	t.Cleanup(func() {
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.Close()
	})
	return s
}

// conn waits for the server side of the i-th connection (from 0).
func (s *wsServer) conn(i int) *websocket.Conn {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		if n > i {
			c := s.conns[i]
			s.mu.Unlock()
			return c
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			panic("no server connection")
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *wsServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func dialWS(t *testing.T, tr *Transport, s *wsServer) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: tr.DialContext, HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestPassThroughAndFailConnects(t *testing.T) {
	s := newWSServer(t)
	tr := New(Options{})
	tr.FailConnects(2)
	d := websocket.Dialer{NetDialContext: tr.DialContext}
	url := "ws" + strings.TrimPrefix(s.URL, "http")
	for i := range 2 {
		_, _, err := d.Dial(url, nil)
		if !errors.Is(err, ErrInjected) {
			t.Fatalf("dial %d: err %v, want ErrInjected", i, err)
		}
	}
	c := dialWS(t, tr, s)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to get hello", func() bool { return len(s.received()) == 1 })
	if err := s.conn(0).WriteMessage(websocket.TextMessage, []byte("back")); err != nil {
		t.Fatal(err)
	}
	_, m, err := c.ReadMessage()
	if err != nil || string(m) != "back" {
		t.Fatalf("read %q, %v", m, err)
	}
	st := tr.State()
	if st.Dials != 3 || st.FailedDials != 2 || st.Conns != 1 || st.FailConnects != 0 {
		t.Fatalf("state %+v", st)
	}
	c.Close()
	waitFor(t, "the conn to be forgotten", func() bool { return tr.State().Conns == 0 })
}

func TestDrop(t *testing.T) {
	s := newWSServer(t)
	tr := New(Options{})
	c := dialWS(t, tr, s)
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		errc <- err
	}()
	if n := tr.Drop(); n != 1 {
		t.Fatalf("Drop() = %d", n)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("read succeeded after drop")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read not interrupted by the drop")
	}
	// The server sees the connection end without a close frame: a reset,
	// or what gorilla reports as 1006 (abnormal closure).
	waitFor(t, "the server to see the end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.errs) == 1
	})
	s.mu.Lock()
	err := s.errs[0]
	s.mu.Unlock()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("server read after drop: %v (want an abrupt end, not a close frame)", err)
	}
	if tr.State().Drops != 1 {
		t.Fatalf("drops = %d", tr.State().Drops)
	}
}

func TestFreezeHoldsBothDirections(t *testing.T) {
	s := newWSServer(t)
	clk := servertest.NewClock(time.Unix(1000, 0))
	tr := New(Options{Now: clk.Now, AfterFunc: clk.AfterFunc})
	c := dialWS(t, tr, s)
	if n := tr.Freeze(30 * time.Second); n != 1 {
		t.Fatalf("Freeze() = %d", n)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("heartbeat")); err != nil {
		t.Fatalf("write while frozen: %v (writes are buffered)", err)
	}
	if err := s.conn(0).WriteMessage(websocket.TextMessage, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	// Nothing passes while frozen: the client's read hits its deadline.
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if _, _, err := c.ReadMessage(); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("read while frozen: %v, want a deadline error", err)
	}
	if got := s.received(); len(got) != 0 {
		t.Fatalf("server received %v while frozen", got)
	}
	if st := tr.State(); !st.FrozenUntil.Equal(time.Unix(1030, 0)) {
		t.Fatalf("FrozenUntil = %v", st.FrozenUntil)
	}
	// A deadline error breaks a gorilla conn for reading; use a fresh
	// conn to check the thaw on the read side, and this one's writes.
	clk.Advance(30 * time.Second)
	waitFor(t, "the frozen write to arrive after the thaw", func() bool { return len(s.received()) == 1 })
	if s.received()[0] != "heartbeat" {
		t.Fatalf("server got %v", s.received())
	}

	c2 := dialWS(t, tr, s)
	tr.Freeze(10 * time.Second)
	if err := s.conn(1).WriteMessage(websocket.TextMessage, []byte("late")); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		_, m, err := c2.ReadMessage()
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(m)
	}()
	select {
	case m := <-got:
		t.Fatalf("read %q while frozen", m)
	case <-time.After(100 * time.Millisecond):
	}
	clk.Advance(10 * time.Second)
	select {
	case m := <-got:
		if m != "late" {
			t.Fatalf("read %q after thaw", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing read after the thaw")
	}
}

func TestLatency(t *testing.T) {
	s := newWSServer(t)
	clk := servertest.NewClock(time.Unix(1000, 0))
	tr := New(Options{Now: clk.Now, AfterFunc: clk.AfterFunc})
	c := dialWS(t, tr, s)
	tr.SetLatency(200 * time.Millisecond)
	if err := c.WriteMessage(websocket.TextMessage, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("two")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.seen:
		t.Fatal("message arrived before the latency passed")
	case <-time.After(100 * time.Millisecond):
	}
	clk.Advance(200 * time.Millisecond)
	waitFor(t, "both messages after the latency", func() bool { return len(s.received()) == 2 })
	if got := s.received(); got[0] != "one" || got[1] != "two" {
		t.Fatalf("order: %v", got)
	}
	if tr.State().Latency != 200*time.Millisecond {
		t.Fatal("latency not reported")
	}
	tr.SetLatency(0)
}

func TestInjectAtMessageBoundaries(t *testing.T) {
	s := newWSServer(t)
	tr := New(Options{})
	c := dialWS(t, tr, s)
	srv := s.conn(0)
	// A big fragmented message: the injection must not land inside it.
	big := bytes.Repeat([]byte("x"), 200_000)
	w, err := srv.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(big); i += 10_000 {
		if _, err := w.Write(big[i : i+10_000]); err != nil {
			t.Fatal(err)
		}
		if i == 50_000 {
			// Part of the message is on the wire; inject now.
			if n := tr.Inject([]byte(`["1","1","realtime:x","phx_error",{}]`), false); n != 1 {
				t.Fatalf("Inject = %d", n)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.WriteMessage(websocket.BinaryMessage, []byte{4, 1, 2}); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for len(msgs) < 3 {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read %d: %v", len(msgs), err)
		}
		switch {
		case typ == websocket.TextMessage && len(m) == len(big) && bytes.Equal(m, big):
			msgs = append(msgs, "big")
		case typ == websocket.TextMessage && string(m) == `["1","1","realtime:x","phx_error",{}]`:
			msgs = append(msgs, "injected")
		case typ == websocket.BinaryMessage && bytes.Equal(m, []byte{4, 1, 2}):
			msgs = append(msgs, "binary")
		default:
			t.Fatalf("unexpected message type %d len %d", typ, len(m))
		}
	}
	if msgs[0] != "big" && msgs[0] != "injected" {
		t.Fatalf("order %v", msgs)
	}
	if msgs[2] != "binary" && msgs[1] != "binary" {
		t.Fatalf("order %v", msgs)
	}
	if tr.State().Injected != 1 {
		t.Fatal("injection not counted")
	}
}

func TestTrackerLongFrames(t *testing.T) {
	var w wsTracker
	w.feed([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"))
	if !w.atBoundary() {
		t.Fatal("not at a boundary after the handshake")
	}
	// 64-bit length frame of 70000 bytes, fed in pieces.
	f := serverFrame(bytes.Repeat([]byte("a"), 70000), false)
	for i := 0; i < len(f); i += 777 {
		end := min(i+777, len(f))
		w.feed(f[i:end])
		if end < len(f) && w.atBoundary() {
			t.Fatalf("boundary inside a frame at %d", end)
		}
	}
	if !w.atBoundary() {
		t.Fatal("not at a boundary after the frame")
	}
	// A fragmented message: text without FIN, then a ping (control), then
	// the final continuation.
	w.feed([]byte{0x01, 2, 'a', 'b'})
	if w.atBoundary() {
		t.Fatal("boundary inside a fragmented message")
	}
	w.feed([]byte{0x89, 0})
	if w.atBoundary() {
		t.Fatal("boundary after a control frame inside a fragmented message")
	}
	w.feed([]byte{0x80, 1, 'c'})
	if !w.atBoundary() {
		t.Fatal("no boundary after the final fragment")
	}
	if n := w.untilBoundary([]byte{0x81, 3, 'a', 'b', 'c', 0x81, 0}); n != 5 {
		t.Fatalf("untilBoundary = %d, want 5", n)
	}
}

func TestDialErrorPassesThrough(t *testing.T) {
	tr := New(Options{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("refused")
	}})
	if _, err := tr.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil || errors.Is(err, ErrInjected) {
		t.Fatalf("err = %v", err)
	}
}

// TestDialHonoursContext: a dial whose context is done fails with the
// context's error without dialing and leaves the injected failures to
// the next dials; the real dial gets the context.
func TestDialHonoursContext(t *testing.T) {
	type key struct{}
	var got context.Context
	tr := New(Options{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		got = ctx
		return nil, errors.New("refused")
	}})
	tr.FailConnects(1)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.DialContext(done, "tcp", "127.0.0.1:1"); !errors.Is(err, context.Canceled) || errors.Is(err, ErrInjected) {
		t.Fatalf("dial with a done context: %v; want context.Canceled", err)
	}
	if st := tr.State(); st.FailConnects != 1 || st.Dials != 0 || got != nil {
		t.Fatalf("after a dial with a done context: %+v, real dial ran: %v", st, got != nil)
	}
	if _, err := tr.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, ErrInjected) {
		t.Fatalf("next dial: %v; want ErrInjected", err)
	}
	live := context.WithValue(context.Background(), key{}, 1)
	if _, err := tr.DialContext(live, "tcp", "127.0.0.1:1"); err == nil || got == nil || got.Value(key{}) != 1 {
		t.Fatalf("the real dial did not get the context (err %v)", err)
	}
}

// TestAbandonUnderFaults: under a latency or a freeze, a connection
// stalled in a handshake (the server never answers) returns from a read
// at its deadline, and closes at once after a past deadline, as an
// abandoned connect does.
func TestAbandonUnderFaults(t *testing.T) {
	const grace = time.Second
	for _, fault := range []string{"latency", "freeze"} {
		t.Run(fault, func(t *testing.T) {
			p := tarpit.New(t, tarpit.Silent)
			tr := New(Options{})
			if fault == "latency" {
				tr.SetLatency(5 * time.Second)
			}
			c, err := tr.DialContext(context.Background(), "tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if fault == "freeze" {
				tr.Freeze(5 * time.Second)
			}
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_ = c.SetReadDeadline(start.Add(200 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("read: %v; want the deadline", err)
			}
			if took := time.Since(start); took > 200*time.Millisecond+grace {
				t.Errorf("read returned after %v", took)
			}
			start = time.Now()
			_ = c.SetDeadline(time.Unix(1, 0))
			_ = c.Close()
			if took := time.Since(start); took > grace {
				t.Errorf("close took %v", took)
			}
		})
	}
}

// FuzzTracker feeds a stream of frames, cut at arbitrary points, and
// checks that the tracker finds the boundaries a whole-stream parse finds.
func FuzzTracker(f *testing.F) {
	f.Add([]byte("ab"), []byte{3, 200, 0, 70000 % 256}, uint8(7))
	f.Add([]byte{}, []byte{0, 1, 2}, uint8(1))
	f.Fuzz(func(t *testing.T, payload []byte, sizes []byte, cut uint8) {
		stream := []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		var bounds []int
		for i, s := range sizes {
			n := int(s) * (1 + i%300)
			if n > 70000 {
				n = 70000
			}
			msg := bytes.Repeat(payload, 1)
			if len(msg) < n {
				msg = append(msg, make([]byte, n-len(msg))...)
			}
			stream = append(stream, serverFrame(msg[:n], i%2 == 0)...)
			bounds = append(bounds, len(stream))
		}
		var w wsTracker
		step := int(cut)%97 + 1
		got := map[int]bool{}
		for off := 0; off < len(stream); {
			end := min(off+step, len(stream))
			chunk := stream[off:end]
			// Feed byte-wise around boundaries to see every one.
			for i := range chunk {
				w.feed(chunk[i : i+1])
				if w.atBoundary() {
					got[off+i+1] = true
				}
			}
			off = end
		}
		for _, b := range bounds {
			if !got[b] {
				t.Fatalf("boundary at %d not seen (bounds %v)", b, bounds)
			}
		}
		// Bulk feeding agrees with byte-wise feeding, whole and in
		// chunks cut anywhere (inside headers too).
		var bulk wsTracker
		bulk.feed(stream)
		if bulk.atBoundary() != w.atBoundary() {
			t.Fatal("bulk and byte-wise feeding disagree")
		}
		var chunked, bytewise wsTracker
		for off := 0; off < len(stream); {
			end := min(off+step, len(stream))
			chunked.feed(stream[off:end])
			for i := off; i < end; i++ {
				bytewise.feed(stream[i : i+1])
			}
			if chunked.atBoundary() != bytewise.atBoundary() || chunked.left != bytewise.left ||
				chunked.inFrame != bytewise.inFrame || chunked.inMessage != bytewise.inMessage || chunked.hdrN != bytewise.hdrN {
				t.Fatalf("at %d: chunked %+v, byte-wise %+v", end, chunked, bytewise)
			}
			off = end
		}
	})
}
