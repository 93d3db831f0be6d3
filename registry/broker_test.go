package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

func testBroker() *broker {
	t0 := time.Unix(0, 0)
	return newBroker(func() time.Time { return t0 }, 100, DefaultHistoryBytes)
}

func msg(i int) MessageEvent {
	return MessageEvent{Channel: MustName(KindBroadcast, "doc", "1", ""), Direction: In, Kind: MessageBroadcast, Size: i}
}

func TestBrokerOrderAndDrops(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 10})
	defer s.Close()
	for i := range 25 {
		b.publish(msg(i))
	}
	got := s.Drain(nil)
	if len(got) != 11 {
		t.Fatalf("drained %d events, want 10 + a DroppedEvent", len(got))
	}
	for i := range 10 {
		if m := got[i].(MessageEvent); m.Size != i {
			t.Fatalf("event %d is message %d", i, m.Size)
		}
	}
	d, ok := got[10].(DroppedEvent)
	if !ok || d.Count != 15 || d.Total != 15 {
		t.Fatalf("last event %#v, want DroppedEvent{15,15}", got[10])
	}
	if s.Dropped() != 15 || b.dropped.Load() != 15 {
		t.Fatalf("Dropped() = %d, broker %d", s.Dropped(), b.dropped.Load())
	}
	// After a drain there is room again; the next drops are reported
	// before the first event accepted after them.
	for i := range 12 {
		b.publish(msg(100 + i))
	}
	got = s.Drain(got[:0])
	if len(got) != 11 || got[10].(DroppedEvent).Count != 2 || got[10].(DroppedEvent).Total != 17 {
		t.Fatalf("second batch: %d events, last %#v", len(got), got[len(got)-1])
	}
}

func TestBrokerStateNeverDroppedAndCoalesced(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 2})
	defer s.Close()
	a := MustName(KindPresence, "contact", "1", "")
	c := MustName(KindPresence, "contact", "2", "")
	b.publish(ChannelStateEvent{Channel: a, Status: StatusConnecting})
	b.publish(msg(1))
	b.publish(ChannelStateEvent{Channel: c, Status: StatusConnecting})
	b.publish(msg(2))
	b.publish(msg(3)) // dropped: buffer full of stream events
	b.publish(ChannelStateEvent{Channel: a, Status: StatusConnected})
	b.publish(ChannelStateEvent{Channel: a, Status: StatusDisconnected})
	got := s.Drain(nil)
	// a's first state was replaced by the latest, moved after msg 2; the
	// drop is reported before the first event accepted after it.
	want := []string{"msg 1", "state c connecting", "msg 2", "dropped 1", "state a disconnected"}
	if len(got) != len(want) {
		t.Fatalf("got %d events %v, want %v", len(got), describe(got), want)
	}
	for i, w := range want {
		if describe(got[i : i+1])[0] != w {
			t.Fatalf("event %d = %q, want %q (all %v)", i, describe(got[i : i+1])[0], w, describe(got))
		}
	}
}

func describe(evs []Event) []string {
	var out []string
	letter := map[string]string{"1": "a", "2": "c"}
	for _, ev := range evs {
		switch e := ev.(type) {
		case MessageEvent:
			out = append(out, fmt.Sprintf("msg %d", e.Size))
		case ChannelStateEvent:
			out = append(out, fmt.Sprintf("state %s %s", letter[e.Channel.EntityID], e.Status))
		case DroppedEvent:
			out = append(out, fmt.Sprintf("dropped %d", e.Count))
		default:
			out = append(out, string(ev.EventType()))
		}
	}
	return out
}

func TestBrokerBoundedWithoutReader(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 100})
	defer s.Close()
	n := MustName(KindPresence, "contact", "1", "")
	for i := range 200_000 {
		b.publish(msg(i))
		b.publish(ChannelStateEvent{Channel: n, Status: Status(1 + i%4)})
	}
	if l := s.Len(); l > 102 {
		t.Fatalf("%d events waiting, want <= 100 stream + 1 state + 1 notice", l)
	}
	s.mu.Lock()
	qcap := cap(s.q)
	s.mu.Unlock()
	if qcap > 1024 {
		t.Fatalf("queue capacity grew to %d", qcap)
	}
	if s.Dropped() != 200_000-100 {
		t.Fatalf("dropped %d", s.Dropped())
	}
}

func TestBrokerFilters(t *testing.T) {
	b := testBroker()
	a := MustName(KindPresence, "contact", "1", "")
	s := b.subscribe(context.Background(), SubscribeOptions{Channels: []Name{a}, Types: []EventType{TypeChannelState, TypeSocket}})
	defer s.Close()
	plain := b.subscribe(context.Background(), SubscribeOptions{})
	defer plain.Close()
	b.publish(ChannelStateEvent{Channel: a})
	b.publish(ChannelStateEvent{Channel: MustName(KindPresence, "contact", "2", "")})
	b.publish(SocketEvent{Status: SocketConnected})
	b.publish(msg(1))
	b.publish(FrameEvent{Text: "x"})
	if got := s.Drain(nil); len(got) != 2 {
		t.Fatalf("filtered subscriber got %v", describe(got))
	}
	if got := plain.Drain(nil); len(got) != 4 {
		t.Fatalf("plain subscriber got %d events (frames must be opt-in)", len(got))
	}
	if b.wantFrames() {
		t.Fatal("wantFrames without a frame subscriber")
	}
	f := b.subscribe(context.Background(), SubscribeOptions{Frames: true})
	if !b.wantFrames() {
		t.Fatal("wantFrames false with a frame subscriber")
	}
	f.Close()
	if b.wantFrames() {
		t.Fatal("wantFrames still true after Close")
	}
	if len(b.hist.all()) != 3 {
		t.Fatalf("history holds %d events, want 3 (no messages, no frames)", len(b.hist.all()))
	}
}

func TestSubscriptionEventsChannel(t *testing.T) {
	b := testBroker()
	ctx, cancel := context.WithCancel(context.Background())
	s := b.subscribe(ctx, SubscribeOptions{Buffer: 1000})
	ch := s.Events()
	for i := range 500 {
		b.publish(msg(i))
	}
	for i := range 500 {
		select {
		case ev := <-ch:
			if ev.(MessageEvent).Size != i {
				t.Fatalf("event %d out of order: %d", i, ev.(MessageEvent).Size)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
	b.publish(msg(1000)) // left waiting: nobody reads
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				s.Wait()
				if len(*b.subs.Load()) != 0 {
					t.Fatal("subscription not removed")
				}
				return
			}
		case <-deadline:
			t.Fatal("Events channel not closed after the context ended")
		}
	}
}

func TestPublishNeverBlocks(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 8})
	_ = s.Events() // a reader that never reads
	done := make(chan struct{})
	go func() {
		for i := range 100_000 {
			b.publish(msg(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("publish blocked on a subscriber that does not read")
	}
	s.Close()
	s.Wait()
	runtime.Gosched()
}

// TestBrokerStress publishes a random mix from several goroutines while a
// reader drains at random moments: every subject's last state arrives,
// stream events of one publisher stay in order, and counts add up.
func TestBrokerStress(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 64})
	defer s.Close()
	const pubs, per = 4, 20000
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := MustName(KindBroadcast, "doc", fmt.Sprint(p), "")
			for i := range per {
				if i%3 == 0 {
					b.publish(ChannelStateEvent{Channel: n, Reason: fmt.Sprint(i)})
				} else {
					b.publish(MessageEvent{Channel: n, Size: i})
				}
				if i%7 == 0 {
					b.publish(StatsEvent{Stats: Stats{Total: p*per + i}})
				}
			}
		}()
	}
	lastMsg := map[string]int{}
	lastState := map[string]string{}
	var received, dropped uint64
	stop := make(chan struct{})
	go func() { wg.Wait(); close(stop) }()
	check := func(evs []Event) {
		for _, ev := range evs {
			switch e := ev.(type) {
			case MessageEvent:
				received++
				if prev, ok := lastMsg[e.Channel.EntityID]; ok && e.Size <= prev {
					t.Fatalf("stream out of order on %s: %d after %d", e.Channel.EntityID, e.Size, prev)
				}
				lastMsg[e.Channel.EntityID] = e.Size
			case ChannelStateEvent:
				lastState[e.Channel.EntityID] = e.Reason
			case DroppedEvent:
				dropped += e.Count
			}
		}
	}
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		case <-s.Ready():
		}
		check(s.Drain(nil))
	}
	check(s.Drain(nil))
	wantLast := fmt.Sprint((per - 1) / 3 * 3)
	for p := range pubs {
		if got := lastState[fmt.Sprint(p)]; got != wantLast {
			t.Fatalf("publisher %d: last state %q, want %q", p, got, wantLast)
		}
	}
	streamTotal := uint64(pubs * (per - (per+2)/3))
	if received+dropped != streamTotal || dropped != s.Dropped() {
		t.Fatalf("received %d + dropped %d != %d (Dropped() %d)", received, dropped, streamTotal, s.Dropped())
	}
}

func TestBrokerMessageBatches(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 5, MessageBatches: true})
	defer s.Close()
	a := MustName(KindBroadcast, "doc", "a", "")
	c := MustName(KindBroadcast, "doc", "c", "")
	msgOn := func(n Name, i int) MessageEvent {
		return MessageEvent{Channel: n, Direction: In, Kind: MessageBroadcast, Event: "e", Size: i}
	}
	for i := range 3 {
		b.publish(msgOn(a, i))
	}
	b.publish(ChannelStateEvent{Channel: c, Status: StatusConnected})
	b.publish(msgOn(c, 10))
	b.publish(msgOn(a, 3))
	b.publish(msgOn(a, 4)) // the 6th message: over the buffer of 5
	got := s.Drain(nil)
	// a's batch at the place of its first message, with all of a's
	// messages; then c's state, then c's batch, then the drop notice.
	if len(got) != 4 {
		t.Fatalf("got %d events: %#v", len(got), got)
	}
	ba, ok := got[0].(MessageBatchEvent)
	if !ok || ba.Channel != a || len(ba.Messages) != 4 || ba.Messages[3].Size != 3 {
		t.Fatalf("first %#v", got[0])
	}
	for i, m := range ba.Messages {
		if m.Size != i {
			t.Fatalf("batch order: %v", ba.Messages)
		}
	}
	if _, ok := got[1].(ChannelStateEvent); !ok {
		t.Fatalf("second %#v", got[1])
	}
	if bc, ok := got[2].(MessageBatchEvent); !ok || bc.Channel != c || len(bc.Messages) != 1 {
		t.Fatalf("third %#v", got[2])
	}
	if d, ok := got[3].(DroppedEvent); !ok || d.Count != 1 || s.Dropped() != 1 {
		t.Fatalf("fourth %#v", got[3])
	}
	// The next Drain reuses the buffers: no allocation per message in
	// the steady state.
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 4 {
			me := msgOn(a, i)
			b.publishMessage(&me)
		}
		got = s.Drain(got[:0])
	})
	if allocs > 1 { // the boxed MessageBatchEvent
		t.Fatalf("%v allocations per drain of 4 messages", allocs)
	}
	// A batch round-trips through JSON.
	js, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeEvent(js)
	if err != nil || len(back.(MessageBatchEvent).Messages) != 4 {
		t.Fatalf("decode %s: %v", js, err)
	}
	// Subscribers without batches get single MessageEvents.
	plain := b.subscribe(context.Background(), SubscribeOptions{})
	defer plain.Close()
	b.publish(msgOn(c, 1))
	if evs := plain.Drain(nil); len(evs) != 1 {
		t.Fatalf("plain got %#v", evs)
	} else if _, ok := evs[0].(MessageEvent); !ok {
		t.Fatalf("plain got %T", evs[0])
	}
}

// A run of messages (publishMessages, one lock per subscriber) is the
// same as publishing them one by one: in order into the channel's batch,
// the newest beyond the buffer dropped and counted, the drop noticed
// before the next batch; plain subscribers get each message.
func TestBrokerMessageRuns(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 10, MessageBatches: true})
	defer s.Close()
	plain := b.subscribe(context.Background(), SubscribeOptions{Buffer: 100})
	defer plain.Close()
	a := MustName(KindBroadcast, "doc", "a", "")
	run := func(from, n int) {
		msgs := make([]MessageEvent, n)
		for i := range msgs {
			msgs[i] = MessageEvent{Channel: a, Direction: In, Kind: MessageBroadcast, Event: "e", Size: from + i}
		}
		b.publishMessages(msgs)
	}
	run(0, 4)
	run(4, 21) // 6 more fit in the buffer of 10; 15 are dropped
	run(25, 0) // nothing
	got := s.Drain(nil)
	if len(got) != 2 {
		t.Fatalf("got %#v", got)
	}
	if d, ok := got[1].(DroppedEvent); !ok || d.Count != 15 {
		t.Fatalf("second %#v, want the drop notice", got[1])
	}
	ba := got[0].(MessageBatchEvent)
	if len(ba.Messages) != 10 {
		t.Fatalf("%d messages kept", len(ba.Messages))
	}
	for i, m := range ba.Messages {
		if m.Size != i {
			t.Fatalf("order: message %d is %d", i, m.Size)
		}
	}
	if s.Dropped() != 15 || b.dropped.Load() != 15 {
		t.Fatalf("dropped %d (broker %d), want 15", s.Dropped(), b.dropped.Load())
	}
	// Room again: the next run is kept whole.
	run(100, 2)
	got = s.Drain(got[:0])
	if len(got) != 1 {
		t.Fatalf("after the drops: %#v", got)
	}
	if bb := got[0].(MessageBatchEvent); len(bb.Messages) != 2 || bb.Messages[0].Size != 100 || bb.Messages[1].Size != 101 {
		t.Fatalf("after the drops: %#v", got[0])
	}
	evs := plain.Drain(nil)
	if len(evs) != 27 {
		t.Fatalf("plain got %d events", len(evs))
	}
	for i, ev := range evs {
		want := i
		if i >= 25 {
			want = 100 + i - 25
		}
		if me, ok := ev.(MessageEvent); !ok || me.Size != want {
			t.Fatalf("plain event %d: %#v", i, ev)
		}
	}
}
