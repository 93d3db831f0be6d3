package registry

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime"
)

// BenchmarkManagerDispatch is the manager's own work per broadcast
// received: the client's event handed to onChannelEvent (counters, the
// channel's message ring, the event to one subscriber, a listener),
// without the network. The subscriber drains every 1024 events, as a UI
// would per frame, as batches or as one MessageEvent each.
func BenchmarkManagerDispatch(b *testing.B) {
	b.Run("batches", func(b *testing.B) { benchDispatch(b, true) })
	b.Run("events", func(b *testing.B) { benchDispatch(b, false) })
}

func benchDispatch(b *testing.B, batches bool) {
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
	ev := realtime.Event{Type: realtime.EventBroadcast, Time: time.Now(),
		Broadcast: realtime.Broadcast{Event: "cursor", Payload: json.RawMessage(`{"user_id":"user-42","x":1024,"y":768}`)}}
	var batch []Event
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.onChannelEvent(e, gen, &ev)
		if i++; i&1023 == 0 {
			batch = sub.Drain(batch[:0])
		}
	}
}
