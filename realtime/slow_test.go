package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// A consumer that does not return holds the channel's delivery, never the
// read loop: the reader keeps reading (other channels and heartbeats keep
// working), the blocked channel keeps EventBuffer events and drops and
// counts the rest; once released, it receives the kept events in order.
func TestSlowConsumerDropsAndCounts(t *testing.T) {
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.OutboundQueue = 1 << 20 }), servertest.WithLimits(server.Limits{Off: true}))
	s := dial(t, srv, fast)
	release := make(chan struct{})
	got := newRec[Event]()
	slow, err := s.Channel("slow", ChannelConfig{EventBuffer: 100, OnEvent: func(e Event) {
		<-release
		got.add(e)
	}})
	if err != nil {
		t.Fatal(err)
	}
	fastCh, fastRec := channel(t, s, "fast", ChannelConfig{})
	for _, ch := range []*Channel{slow, fastCh} {
		if err := ch.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	const n = 5000
	for i := 0; i < n; i++ {
		srv.Broadcast("slow", "seq", json.RawMessage(`{"i":`+strconv.Itoa(i)+`}`))
	}
	srv.Broadcast("fast", "ping", json.RawMessage(`{}`))
	// The reader got everything while the slow consumer is stuck.
	fastRec.wait(t, "the other channel's broadcast", func(e []Event) bool { return len(broadcasts(e)) == 1 })
	eventually(t, "all frames read", func() bool { return slow.Stats().MessagesIn >= n })
	dropped := slow.Stats().Dropped
	if dropped == 0 || s.Stats().Drops != dropped {
		t.Fatalf("dropped %d, socket drops %d", dropped, s.Stats().Drops)
	}
	close(release)
	evs := got.wait(t, "the kept events", func(e []Event) bool { return uint64(len(e))+dropped >= n+1 }) // +1: SUBSCRIBED
	bs := broadcasts(evs)
	if uint64(len(bs))+dropped != n || len(bs) < 100 {
		t.Fatalf("delivered %d + dropped %d != %d", len(bs), dropped, n)
	}
	prev := -1
	for _, b := range bs {
		var v struct{ I int }
		if err := json.Unmarshal(b.Payload, &v); err != nil || v.I <= prev {
			t.Fatalf("out of order: %s after %d", b.Payload, prev)
		}
		prev = v.I
	}
	// Status events are never dropped, even behind a full buffer.
	if countStatus(evs, Subscribed) != 1 {
		t.Fatalf("statuses %v", statuses(evs))
	}
	_ = fmt.Sprint
}

// OnEvents receives the same events as OnEvent, in order, in batches of
// at most 64; a consumer that falls behind gets fuller batches, not
// fewer events. Setting both callbacks is refused.
func TestOnEventsBatches(t *testing.T) {
	srv := servertest.New(t, servertest.WithLimits(server.Limits{Off: true}))
	s := dial(t, srv, fast)
	if _, err := s.Channel("both", ChannelConfig{OnEvent: func(Event) {}, OnEvents: func([]Event) {}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("both callbacks: %v", err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	var got []Event
	ch, err := s.Channel("batched", ChannelConfig{OnEvents: func(evs []Event) {
		if len(evs) > 0 && evs[0].Type == EventBroadcast {
			<-release // hold the first broadcast batch: the rest queue up
		}
		mu.Lock()
		sizes = append(sizes, len(evs))
		got = append(got, evs...) // copies: the slice is reused
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		srv.Broadcast("batched", "seq", json.RawMessage(`{"i":`+strconv.Itoa(i)+`}`))
	}
	eventually(t, "all frames read", func() bool { return ch.Stats().MessagesIn >= n })
	close(release)
	eventually(t, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(broadcasts(got)) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if countStatus(got, Subscribed) != 1 || got[0].Type != EventStatus {
		t.Fatalf("statuses %v", statuses(got))
	}
	for i, b := range broadcasts(got) {
		if want := `{"i":` + strconv.Itoa(i) + `}`; string(b.Payload) != want {
			t.Fatalf("broadcast %d: %s, want %s", i, b.Payload, want)
		}
	}
	most := 0
	for _, k := range sizes {
		if k < 1 || k > 64 {
			t.Fatalf("batch of %d (sizes %v)", k, sizes)
		}
		most = max(most, k)
	}
	if most != 64 {
		t.Fatalf("a held-up consumer should get full batches: sizes %v", sizes)
	}
	if d := ch.Stats().Dropped; d != 0 {
		t.Fatalf("%d dropped", d)
	}
}
