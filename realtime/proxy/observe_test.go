package proxy_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/proxy"
)

// With an observer queue, the Observer is told everything, in order:
// Open, each frame each way with its bytes, Closed; Close returns once
// it has been.
func TestObserverQueueKeepsOrder(t *testing.T) {
	up := newEchoUpstream(t, false)
	rec := newRecorder()
	p, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec, ObserverQueue: 1024})
	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
	const n = 200
	for i := range n {
		if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.ReadMessage(); err != nil || string(b) != fmt.Sprintf("m%d", i) {
			t.Fatalf("echo %d: %q %v", i, b, err)
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	rec.waitClosed(t, 1)
	hs.Close()
	_ = p.Close()
	if p.ObserverDropped() != 0 {
		t.Errorf("%d calls dropped", p.ObserverDropped())
	}
	for _, d := range []proxy.Direction{proxy.FromApp, proxy.ToApp} {
		fs := rec.framesOf(d)
		if len(fs) != n {
			t.Fatalf("%s: %d frames, want %d", d, len(fs), n)
		}
		for i, f := range fs {
			if want := fmt.Sprintf("m%d", i); string(f.Data) != want || f.Conn != 1 {
				t.Fatalf("%s frame %d: %q, want %q", d, i, f.Data, want)
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.opens) != 1 || len(rec.closed) != 1 {
		t.Errorf("%d opens, %d closes", len(rec.opens), len(rec.closed))
	}
}

// stuckObserver blocks in Frame until released.
type stuckObserver struct {
	*recorder
	release chan struct{}
}

func (s *stuckObserver) Frame(f proxy.Frame) {
	<-s.release
	s.recorder.Frame(f)
}

// An Observer that does not return does not hold the relay: messages
// still go both ways, the queue fills and drops (counted), and once the
// Observer moves again the queued calls are made, in order.
func TestObserverQueueDoesNotBlockRelay(t *testing.T) {
	up := newEchoUpstream(t, false)
	obs := &stuckObserver{recorder: newRecorder(), release: make(chan struct{})}
	p, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: obs, ObserverQueue: 8, ObserverQueueBytes: 1 << 20})
	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
	const n = 100
	for i := range n {
		msg := fmt.Appendf(nil, "%04d%s", i, bytes.Repeat([]byte("x"), 100))
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(quick))
		if _, b, err := c.ReadMessage(); err != nil || !bytes.Equal(b, msg) {
			t.Fatalf("echo %d with the Observer stuck: %v", i, err)
		}
	}
	if d := p.ObserverDropped(); d == 0 || d > 2*n {
		t.Errorf("%d calls dropped, want some (the queue holds 8)", d)
	}
	close(obs.release)
	_ = c.Close()
	obs.waitClosed(t, 1)
	hs.Close()
	_ = p.Close()
	got := len(obs.framesOf(proxy.FromApp)) + len(obs.framesOf(proxy.ToApp))
	if uint64(got)+p.ObserverDropped() != 2*n {
		t.Errorf("%d frames seen + %d dropped, want %d", got, p.ObserverDropped(), 2*n)
	}
	last := ""
	for _, f := range obs.framesOf(proxy.FromApp) {
		if i := string(f.Data[:4]); i <= last {
			t.Errorf("frames out of order: %s after %s", i, last)
		} else {
			last = i
		}
	}
}

// The frame bytes queued are bounded too.
func TestObserverQueueBytes(t *testing.T) {
	up := newEchoUpstream(t, false)
	obs := &stuckObserver{recorder: newRecorder(), release: make(chan struct{})}
	p, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: obs, ObserverQueue: 1 << 10, ObserverQueueBytes: 10 << 10})
	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
	msg := bytes.Repeat([]byte("x"), 4<<10)
	for i := range 10 {
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	// 20 frames of 4 KiB, at most 10 KiB queued (and one held by the
	// stuck call): at most 3 are not dropped.
	if d := p.ObserverDropped(); d < 17 {
		t.Errorf("%d dropped, want at least 17", d)
	}
	close(obs.release)
	hs.Close()
	_ = p.Close()
}
