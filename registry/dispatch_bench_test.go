package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"rtm/realtime"
)

// BenchmarkManagerDispatch is the manager's own work per broadcast
// received: the client's events handed to onChannelEvents (counters, the
// channel's message ring, the event to one subscriber, a listener),
// without the network, in runs of 64 (the client's batch under load) or
// one (a quiet channel). The subscriber drains every 1024 events, as a UI
// would per frame, as batches or as one MessageEvent each. ns/op is per
// event.
func BenchmarkManagerDispatch(b *testing.B) {
	for _, run := range []int{64, 1} {
		b.Run(fmt.Sprintf("batches/run%d", run), func(b *testing.B) { benchDispatch(b, true, run) })
		b.Run(fmt.Sprintf("events/run%d", run), func(b *testing.B) { benchDispatch(b, false, run) })
	}
}

func benchDispatch(b *testing.B, batches bool, run int) {
	m, err := New(Options{URL: "http://127.0.0.1:1", APIKey: "k", NoFrames: true})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	n := MustName(KindBroadcast, "document", "789", "")
	m.mu.Lock()
	e := m.newEntryLocked(n, &joinOpts{})
	h := m.newHandleLocked(e, &joinOpts{bcast: []*bcastListener{{event: "cursor", fn: func(Broadcast) {}}}})
	_ = h
	gen := e.gen
	m.mu.Unlock()
	sub := m.Subscribe(context.Background(), SubscribeOptions{Buffer: 1 << 16, MessageBatches: batches})
	defer sub.Close()
	evs := make([]realtime.Event, run)
	for i := range evs {
		evs[i] = realtime.Event{Type: realtime.EventBroadcast, Time: time.Now(),
			Broadcast: realtime.Broadcast{Event: "cursor", Payload: json.RawMessage(`{"user_id":"user-42","x":1024,"y":768}`)}}
	}
	var batch []Event
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%run == 0 {
			m.onChannelEvents(e, gen, evs)
		}
		if i++; i&1023 == 0 {
			batch = sub.Drain(batch[:0])
		}
	}
}
