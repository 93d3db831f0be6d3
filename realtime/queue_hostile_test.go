package realtime

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/hostile"
)

// A server flooding a channel with system messages (which are never
// dropped while the queue has room for them) cannot grow the queue of a
// consumer that never returns beyond half its reserve; a status still
// fits after them.
func TestHostileSystemFlood(t *testing.T) {
	msg := fmt.Sprintf(`{"extension":"postgres_changes","status":"ok","message":%q,"channel":"room"}`, strings.Repeat("x", 1000))
	srv := hostile.New(t, func(string) hostile.Script {
		return func(ctx context.Context, ch *hostile.Channel) error {
			return hostile.Repeat(ctx, 0, func(int) error { return ch.Push("system", []byte(msg)) })
		}
	})
	base := liveHeap()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sock, err := Dial(ctx, srv.URL, &Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	var last Event
	ch, err := sock.Channel("room", ChannelConfig{OnEvent: func(e Event) {
		<-release
		mu.Lock()
		last = e
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	var peak uint64
	for next := int64(0); srv.BytesOut() < 40<<20 && ctx.Err() == nil; time.Sleep(time.Millisecond) {
		if srv.BytesOut() >= next {
			next += 8 << 20
			if h := liveHeap(); h > base && h-base > peak {
				peak = h - base
			}
		}
	}
	n, size := ch.q.len(), qSize(ch.q)
	t.Logf("server sent %d MB; queue %d events, %d KB; live heap +%d MB; dropped %d", srv.BytesOut()>>20, n, size>>10, peak>>20, ch.Stats().Dropped)
	reserve := reserveCount(DefaultEventBuffer)
	if n > DefaultEventBuffer+reserve/2 || ch.Stats().Dropped == 0 || peak > 80<<20 {
		t.Errorf("queue %d events (limit %d + %d), dropped %d, heap +%d MB", n, DefaultEventBuffer, reserve/2, ch.Stats().Dropped, peak>>20)
	}
	close(release)
	sock.Close()
	mu.Lock()
	defer mu.Unlock()
	if last.Type != EventStatus || last.Status != Closed {
		t.Errorf("the last event is %v %v, want the CLOSED status", last.Type, last.Status)
	}
}

// A server sending 1 MB broadcasts to a channel and a tap whose consumers
// never return: the channel's queue holds at most EventBufferBytes of
// them and the tap's TapBufferBytes (not their counts, 4096 and 8192
// frames: gigabytes), the rest are dropped and counted.
func TestHostileHugeBroadcastsBounded(t *testing.T) {
	const size = 1 << 20
	srv := hostile.New(t, func(string) hostile.Script { return hostile.HugeBroadcasts("blob", 0, size) })
	base := liveHeap()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	release := make(chan struct{})
	sock, err := Dial(ctx, srv.URL, &Options{APIKey: "k", Tap: func(Frame) { <-release }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(release)
		sock.Close()
	}()
	ch, err := sock.Channel("room", ChannelConfig{OnEvent: func(Event) { <-release }})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	var peak uint64
	for next := int64(0); srv.BytesOut() < hostileScale*100<<20 && ctx.Err() == nil; time.Sleep(time.Millisecond) {
		if srv.BytesOut() >= next {
			next += 16 << 20
			if h := liveHeap(); h > base && h-base > peak {
				peak = h - base
			}
		}
	}
	tap := sock.tap.Load()
	t.Logf("server sent %d MB; channel queue %d events, %d MB, dropped %d; tap %d frames, %d MB, dropped %d; live heap +%d MB",
		srv.BytesOut()>>20, ch.q.len(), qSize(ch.q)>>20, ch.Stats().Dropped, tap.len(), qSize(tap)>>20, sock.Stats().TapDrops, peak>>20)
	if qSize(ch.q) > DefaultEventBufferBytes+size || qSize(tap) > DefaultTapBufferBytes+size || ch.Stats().Dropped == 0 || sock.Stats().TapDrops == 0 {
		t.Errorf("queues over their bytes, or nothing dropped")
	}
	// The queues' 96 MiB, and the frames in flight.
	if peak > 260<<20 {
		t.Errorf("the live heap grew by %d MB", peak>>20)
	}
}

// OnStatus and OnHeartbeat not returning while notices keep coming
// (thousands of heartbeats and statuses: a socket flapping for hours):
// the notices wait within their bound (1024, then the reserve: half of
// it for heartbeats), the others are dropped and counted.
func TestNoticesBounded(t *testing.T) {
	release := make(chan struct{})
	block := func() { <-release }
	s, err := NewSocket("http://127.0.0.1:1", &Options{APIKey: "k",
		OnStatus: func(StatusChange) { block() }, OnHeartbeat: func(Heartbeat) { block() }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(release)
		s.Close()
	}()
	for i := range 5000 {
		s.notifyHeartbeat(Heartbeat{Status: HeartbeatSent, Ref: fmt.Sprint(i), At: time.Now()})
	}
	limit := noticeLimit()
	if n := s.notices.len(); n > limit || noticeDrops(s) == 0 {
		t.Errorf("%d heartbeat notices waiting (bound %d), %d dropped", n, limit, noticeDrops(s))
	}
	for range 5000 {
		s.notifyStatus(StatusChange{Status: StatusReconnecting, Prev: StatusConnecting, At: time.Now(), Err: ErrDisconnected})
	}
	if n, hard := s.notices.len(), noticeLimitHard(); n > hard || noticeDrops(s) < 5000 {
		t.Errorf("%d notices waiting (bound %d), %d dropped", n, hard, noticeDrops(s))
	}
}
