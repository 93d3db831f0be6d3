package tui

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// chanSource is a subscription like the registry's: a bounded channel, a
// non-blocking publish and a drop counter.
type chanSource struct {
	ch      chan registry.Event
	dropped atomic.Uint64
}

func newChanSource(buf int) *chanSource { return &chanSource{ch: make(chan registry.Event, buf)} }

func (s *chanSource) Events() <-chan registry.Event { return s.ch }
func (s *chanSource) Dropped() uint64               { return s.dropped.Load() }
func (s *chanSource) publish(e registry.Event) {
	select {
	case s.ch <- e:
	default:
		s.dropped.Add(1)
	}
}

// recorder collects what the bridge sends.
type recorder struct {
	mu      sync.Mutex
	batches []EventsBatchMsg
	done    []BridgeDoneMsg
	gate    chan struct{} // when set, send blocks until it is closed
	entered chan struct{} // closed at the first send
	once    sync.Once
}

func (r *recorder) send(msg tea.Msg) {
	if r.entered != nil {
		r.once.Do(func() { close(r.entered) })
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m := msg.(type) {
	case EventsBatchMsg:
		r.batches = append(r.batches, m)
	case BridgeDoneMsg:
		r.done = append(r.done, m)
	}
}

func (r *recorder) totals() (batches, events int, dropped uint64, done int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		events += len(b.Events)
		dropped = b.Dropped
	}
	return len(r.batches), events, dropped, len(r.done)
}

func msgEvent(i int) registry.Event {
	return registry.MessageEvent{Time: t0.Add(time.Duration(i)), Channel: docCh, Kind: registry.MessageBroadcast, Event: "e", Size: i}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// 10k events arrive in far fewer batches, all of them, in order.
func TestBridgeBatches(t *testing.T) {
	src := newChanSource(20000)
	for i := 0; i < 10000; i++ {
		src.publish(msgEvent(i))
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { NewBridge(src, nil, BridgeOptions{}).Run(ctx, rec.send); close(done) }()
	waitFor(t, "10k events", func() bool { _, n, _, _ := rec.totals(); return n == 10000 })
	cancel()
	<-done
	batches, events, dropped, _ := rec.totals()
	if batches > 10 {
		t.Fatalf("10000 events came in %d batches, want at most 10 (DefaultMaxBatch %d)", batches, DefaultMaxBatch)
	}
	if events != 10000 || dropped != 0 {
		t.Fatalf("events %d dropped %d", events, dropped)
	}
	i := 0
	for _, b := range rec.batches {
		if b.State != nil {
			t.Fatal("no snapshot function, yet a state was sent")
		}
		for _, e := range b.Events {
			if e.(registry.MessageEvent).Size != i {
				t.Fatalf("event %d out of order", i)
			}
			i++
		}
	}
}

// While the UI is busy the subscription's buffer fills and the rest is
// dropped: the counts are exact, and the UI is told.
func TestBridgeExactDropCounts(t *testing.T) {
	const buf, total = 100, 10000
	src := newChanSource(buf)
	rec := &recorder{gate: make(chan struct{}), entered: make(chan struct{})}
	snaps := atomic.Int32{}
	snapshot := func() registry.State { snaps.Add(1); return registry.State{Time: t0} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { NewBridge(src, snapshot, BridgeOptions{}).Run(ctx, rec.send); close(done) }()
	<-rec.entered // the initial snapshot is being sent; the bridge is blocked
	for i := 0; i < total; i++ {
		src.publish(msgEvent(i))
	}
	if got := src.Dropped(); got != total-buf {
		t.Fatalf("source dropped %d, want %d", got, total-buf)
	}
	close(rec.gate)
	waitFor(t, "the buffered events", func() bool {
		_, n, d, _ := rec.totals()
		return n == buf && d == total-buf
	})
	cancel()
	<-done
	batches, events, dropped, _ := rec.totals()
	if events+int(dropped) != total {
		t.Fatalf("delivered %d + dropped %d != %d", events, dropped, total)
	}
	if rec.batches[0].State == nil || len(rec.batches[0].Events) != 0 {
		t.Fatalf("the first message must be the initial snapshot")
	}
	if batches > 3 {
		t.Fatalf("%d batches for %d events", batches, buf)
	}
	// The events kept are the first ones, in order.
	i := 0
	for _, b := range rec.batches {
		for _, e := range b.Events {
			if e.(registry.MessageEvent).Size != i {
				t.Fatalf("event %d out of order", i)
			}
			i++
		}
	}
}

// A full batch is sent early, but never sooner than MinInterval after the
// previous send: at 1/MinInterval messages per second at most.
func TestBridgeRespectsMinInterval(t *testing.T) {
	src := newChanSource(1000)
	for i := 0; i < 1000; i++ {
		src.publish(msgEvent(i))
	}
	now := t0
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		NewBridge(src, nil, BridgeOptions{FlushEvery: time.Hour, MaxBatch: 100, MinInterval: time.Hour,
			Now: func() time.Time { return now }}).Run(ctx, rec.send)
		close(done)
	}()
	waitFor(t, "the first batch", func() bool { b, _, _, _ := rec.totals(); return b == 1 })
	// The bridge has paused: the second full batch waits for the period.
	waitFor(t, "the bridge to pause", func() bool { return len(src.ch) == 1000-200 })
	cancel()
	<-done
	if b, n, _, _ := rec.totals(); b != 1 || n != 100 {
		t.Fatalf("%d batches, %d events; want 1 batch of 100", b, n)
	}
}

// State events bring a fresh snapshot; stream events alone do not until
// the refresh period.
func TestBridgeSnapshots(t *testing.T) {
	src := newChanSource(100)
	rec := &recorder{}
	var snaps atomic.Int32
	snapshot := func() registry.State { n := snaps.Add(1); return registry.State{Stats: registry.Stats{Total: int(n)}} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		NewBridge(src, snapshot, BridgeOptions{FlushEvery: 5 * time.Millisecond, SnapshotEvery: time.Millisecond, SnapshotRefresh: time.Hour}).Run(ctx, rec.send)
		close(done)
	}()
	waitFor(t, "the initial snapshot", func() bool { return snaps.Load() == 1 })
	src.publish(msgEvent(1))
	waitFor(t, "the stream event", func() bool { _, n, _, _ := rec.totals(); return n == 1 })
	if snaps.Load() != 1 {
		t.Fatalf("a stream event took a snapshot")
	}
	src.publish(registry.ChannelStateEvent{Time: t0, Channel: docCh, Status: registry.StatusConnected})
	waitFor(t, "the state snapshot", func() bool { return snaps.Load() == 2 })
	waitFor(t, "the batch with it", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		last := rec.batches[len(rec.batches)-1]
		return last.State != nil && last.State.Stats.Total == 2
	})
	cancel()
	<-done
}

func TestBridgeRecoversPanics(t *testing.T) {
	src := newChanSource(1)
	rec := &recorder{}
	NewBridge(src, func() registry.State { panic("snapshot exploded") }, BridgeOptions{}).Run(context.Background(), rec.send)
	if len(rec.done) != 1 || rec.done[0].Err == nil || !strings.Contains(rec.done[0].Err.Error(), "snapshot exploded") {
		t.Fatalf("done %+v", rec.done)
	}
}

func TestBridgeClosedSource(t *testing.T) {
	src := newChanSource(10)
	src.publish(msgEvent(0))
	close(src.ch)
	rec := &recorder{}
	NewBridge(src, nil, BridgeOptions{}).Run(context.Background(), rec.send)
	b, n, _, d := rec.totals()
	if b != 1 || n != 1 || d != 1 || rec.done[0].Err != nil {
		t.Fatalf("batches %d events %d done %d %+v", b, n, d, rec.done)
	}
}

// The model keeps memory bounded: 100k events leave every ring at its
// capacity and the per-channel buffers bounded.
func TestModelMemoryBounded(t *testing.T) {
	m, _ := newTestModel(t, 200, 50, func(o *Options) { o.LogRing, o.MessageRing, o.FrameRing, o.RetryRing = 1000, 100, 100, 100 })
	var batch []registry.Event
	for i := 0; i < 100000; i++ {
		n := registry.MustName(registry.KindBroadcast, "doc", itoa(i%1000), "")
		batch = append(batch,
			registry.MessageEvent{Time: t0, Channel: n, Kind: registry.MessageBroadcast, Event: "e"},
		)
		if i%4 == 0 {
			batch = append(batch, logRecord(i, "r"), registry.FrameEvent{Time: t0, Channel: n}, registry.RetryEvent{Time: t0, Channel: n})
		}
		if len(batch) >= 4096 {
			m.Update(EventsBatchMsg{Events: batch})
			batch = nil
			m.Render()
		}
	}
	if m.log.logs.Len() != 1000 || m.frames.Len() != 100 || m.retries.Len() != 100 {
		t.Fatalf("rings log %d frames %d retries %d", m.log.logs.Len(), m.frames.Len(), m.retries.Len())
	}
	if len(m.chData) > maxChannelData {
		t.Fatalf("%d channel buffers, want at most %d", len(m.chData), maxChannelData)
	}
	for n, d := range m.chData {
		if d.msgs.Len() > 100 {
			t.Fatalf("%v keeps %d messages", n, d.msgs.Len())
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

// A bridge of an identity tags its batches and its end with the
// identity's name, and gives every event to Observe first, in order.
func TestBridgeIdentityAndObserve(t *testing.T) {
	src := newChanSource(100)
	for i := 0; i < 50; i++ {
		src.publish(msgEvent(i))
	}
	close(src.ch)
	rec := &recorder{}
	var seen []int
	NewBridge(src, nil, BridgeOptions{Identity: "bob", Observe: func(e registry.Event) {
		seen = append(seen, e.(registry.MessageEvent).Size)
	}}).Run(context.Background(), rec.send)
	if len(seen) != 50 || seen[0] != 0 || seen[49] != 49 {
		t.Fatalf("observed %v", seen)
	}
	_, events, _, done := rec.totals()
	if events != 50 || done != 1 || rec.done[0].Identity != "bob" {
		t.Fatalf("events %d, done %+v", events, rec.done)
	}
	for _, b := range rec.batches {
		if b.Identity != "bob" {
			t.Fatalf("a batch of %q", b.Identity)
		}
	}
}
