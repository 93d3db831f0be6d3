package realtime

import (
	"encoding/json"
	"fmt"
	"strconv"
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
