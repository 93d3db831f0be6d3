package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"rtm/realtime/hostile"
	"rtm/registry"
)

// hostileManager returns a manager connected to a hostile server.
func hostileManager(t *testing.T, srv *hostile.Server, mod func(*registry.Options)) *registry.Manager {
	t.Helper()
	var o registry.Options
	if mod != nil {
		mod(&o)
	}
	o.URL, o.APIKey = srv.URL, "anything"
	o.ReconnectAfter = func(int) time.Duration { return 20 * time.Millisecond }
	m, err := registry.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := m.Connect(ctx(t)); err != nil {
		t.Fatal(err)
	}
	return m
}

// heapInuse returns the heap in use after a full collection.
func heapInuse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// messageBytes sums what messages hold.
func messageBytes(ms []registry.MessageEvent) int {
	n := 0
	for i := range ms {
		n += ms[i].Bytes()
	}
	return n
}

// TestHugeBroadcastsBoundedHeap joins a channel on which a hostile
// server sends 30 MiB broadcasts without end (the client takes frames up
// to 32 MiB), with a subscriber that never reads and one that reads
// batches: while the server sends hundreds of megabytes, the heap stays
// under a bound; the channel's ring keeps at most its bytes, the big
// messages truncated with their real size; the stuck subscriber holds
// at most its bytes, and the reader got every message, whole or
// truncated when it fell behind.
func TestHugeBroadcastsBoundedHeap(t *testing.T) {
	const size = 30 << 20
	// What is live at once: the server's payload and the frame it is
	// writing, the frame the client is reading (and its copy into a
	// buffer of its size), the stuck subscriber's buffer (32 MiB), the
	// reader's batch, the rings' few MiB. Without the byte bounds the
	// ring alone kept 200 frames (6 GB).
	const limit = 320 << 20
	srv := hostile.New(t, func(string) hostile.Script { return hostile.HugeBroadcasts("big", 0, size) })
	m := hostileManager(t, srv, nil)
	c := ctx(t)
	stuck := m.Subscribe(c, registry.SubscribeOptions{NoInitialState: true, Types: []registry.EventType{registry.TypeMessage}})
	reader := m.Subscribe(c, registry.SubscribeOptions{NoInitialState: true, MessageBatches: true})
	got := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-reader.Done():
				got <- n
				return
			case <-reader.Ready():
			}
			for _, ev := range reader.Drain(nil) {
				if b, ok := ev.(registry.MessageBatchEvent); ok {
					for _, me := range b.Messages {
						if me.Size != size || (me.Truncated && len(me.Preview) != registry.PreviewBytes) || (!me.Truncated && len(me.Payload) != size) {
							t.Errorf("reader: message of %d bytes (truncated %v, %d kept)", me.Size, me.Truncated, me.Bytes())
						}
						n++
					}
				}
			}
		}
	}()
	base := heapInuse()
	h, err := m.JoinBroadcast(c, "room", "big")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(c); err != nil {
		t.Fatal(err)
	}
	var peak int64
	deadline := time.Now().Add(2 * time.Minute)
	flood := int64(800 << 20) // 26 frames: the rings and the buffers fill many times over
	if raceEnabled {
		flood = 300 << 20
	}
	for srv.BytesOut() < flood {
		heap := heapInuse() - base
		peak = max(peak, heap)
		if heap > limit {
			t.Fatalf("the heap grew by %d MiB (limit %d MiB) after the server sent %d MiB", heap>>20, limit>>20, srv.BytesOut()>>20)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server sent only %d MiB in 2 minutes", srv.BytesOut()>>20)
		}
	}
	t.Logf("the server sent %d MiB; the heap grew by %d MiB at most", srv.BytesOut()>>20, peak>>20)

	msgs, err := m.Messages(h.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 || messageBytes(msgs) > registry.DefaultMessageBytes {
		t.Errorf("the ring keeps %d messages, %d bytes (bound %d)", len(msgs), messageBytes(msgs), registry.DefaultMessageBytes)
	}
	for _, me := range msgs {
		if !me.Truncated || me.Size != size || len(me.Preview) != registry.PreviewBytes || me.Payload != nil {
			t.Fatalf("kept: size %d, truncated %v, preview %d bytes, payload %d bytes", me.Size, me.Truncated, len(me.Preview), len(me.Payload))
		}
	}
	held := stuck.Drain(nil)
	n, whole := 0, 0
	for _, ev := range held {
		if me, ok := ev.(registry.MessageEvent); ok {
			n += me.Bytes() + 128
			if !me.Truncated {
				whole++
			}
		}
	}
	if n > registry.DefaultBufferBytes || whole == 0 || whole == len(held) {
		t.Errorf("the stuck subscriber held %d events, %d bytes (bound %d), %d whole", len(held), n, registry.DefaultBufferBytes, whole)
	}
	reader.Close()
	if n := <-got; n == 0 {
		t.Error("the reader got no message")
	}
}

// TestSmallPayloadsPinNoSlab receives tiny broadcasts each of which the
// client reads into a different 64 KiB slab (a big frame on another
// topic fills the rest of each slab): the channel's ring and two
// subscribers that never read keep them without keeping the slabs (400
// slabs are 25 MiB).
func TestSmallPayloadsPinNoSlab(t *testing.T) {
	const n = 400
	// The filler's frame, with the tiny one's, leaves less than the
	// 2 KiB after which the client starts a new slab.
	const fill = 64<<10 - 1100
	name := registry.MustName(registry.KindBroadcast, "room", "tiny", "")
	srv := hostile.New(t, func(topic string) hostile.Script {
		if topic == name.Topic() {
			return hostile.SpreadOverSlabs("tiny", []byte("1"), n, "realtime:filler", fill)
		}
		return nil
	})
	m := hostileManager(t, srv, nil)
	c := ctx(t)
	plain := m.Subscribe(c, registry.SubscribeOptions{NoInitialState: true, Channels: []registry.Name{name}, Types: []registry.EventType{registry.TypeMessage}})
	batched := m.Subscribe(c, registry.SubscribeOptions{NoInitialState: true, Channels: []registry.Name{name}, MessageBatches: true,
		Types: []registry.EventType{registry.TypeMessageBatch}})
	base := heapInuse()
	h, err := m.Join(c, name)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tiny broadcasts", func() bool {
		info, _ := h.Info()
		return info.MessagesIn >= n
	})
	grown := heapInuse() - base
	t.Logf("%d tiny broadcasts kept by the ring and two subscribers: the heap grew by %d KiB (server sent %d KiB)", n, grown>>10, srv.BytesOut()>>10)
	if grown > 8<<20 {
		t.Errorf("the heap grew by %d MiB keeping %d one-byte messages", grown>>20, n)
	}
	msgs, _ := m.Messages(name, 0)
	if len(msgs) != registry.DefaultMessageRing || string(msgs[0].Payload) != "1" {
		t.Errorf("the ring keeps %d messages (%q first)", len(msgs), msgs[0].Payload)
	}
	if evs := plain.Drain(nil); len(evs) != n {
		t.Errorf("plain subscriber: %d events", len(evs))
	}
	k := 0
	for _, ev := range batched.Drain(nil) {
		if b, ok := ev.(registry.MessageBatchEvent); ok {
			k += len(b.Messages)
		}
	}
	if k != n {
		t.Errorf("batched subscriber: %d messages", k)
	}
	runtime.KeepAlive(m)
}

// The offline queue is bounded in bytes too: a broadcast that would take
// it beyond OfflineQueueBytes is refused with ErrQueueFull, counted.
func TestOfflineQueueBytes(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.OfflineQueueBytes = 10 << 10 }))
	h, err := e.m.JoinBroadcast(ctx(t), "document", "bytes")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.socketDownForGood()
	eventually(t, "the channel down", func() bool { return e.info(h.Name()).Status == registry.StatusDisconnected })
	payload := json.RawMessage(`{"v":"` + strings.Repeat("x", 4<<10) + `"}`)
	for i := range 2 {
		if err := h.Broadcast(ctx(t), "msg", payload); err != nil {
			t.Fatalf("queued broadcast %d: %v", i, err)
		}
	}
	if err := h.Broadcast(ctx(t), "msg", payload); !errors.Is(err, registry.ErrQueueFull) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("a broadcast beyond the bytes: %v", err)
	}
	if i := e.info(h.Name()); i.Queued != 2 || i.QueueDropped != 1 {
		t.Fatalf("queue info: %d queued, %d dropped", i.Queued, i.QueueDropped)
	}
	_ = e.m.Faults().FailConnects(0)
	e.waitStatus(h.Name(), registry.StatusConnected)
	eventually(t, "the queue flushed", func() bool { return e.info(h.Name()).Queued == 0 })
	// Room again.
	for range 2 {
		if err := h.Broadcast(ctx(t), "msg", payload); err != nil {
			t.Fatal(err)
		}
	}
}

// A server's text that the manager keeps and repeats (here a system
// error of 1 MiB) is cut to MaxTextBytes in the channel's info, the
// error event and the log.
func TestServerTextCut(t *testing.T) {
	msg := strings.Repeat("e", 1<<20)
	payload, _ := json.Marshal(map[string]string{"extension": "system", "status": "error", "message": msg})
	srv := hostile.New(t, func(string) hostile.Script {
		return func(ctx context.Context, ch *hostile.Channel) error {
			if err := ch.Push("system", payload); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}
	})
	m := hostileManager(t, srv, nil)
	sub := m.Subscribe(ctx(t), registry.SubscribeOptions{NoInitialState: true, Types: []registry.EventType{registry.TypeError}})
	h, err := m.JoinBroadcast(ctx(t), "room", "text")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the system error", func() bool { info, _ := h.Info(); return info.LastError != "" })
	info, _ := h.Info()
	if len(info.LastError) > registry.MaxTextBytes+32 || !strings.HasSuffix(info.LastError, "(1048576 bytes)") {
		t.Errorf("LastError of %d bytes", len(info.LastError))
	}
	eventually(t, "the error event", func() bool { return sub.Len() > 0 })
	if e := sub.Drain(nil)[0].(registry.ErrorEvent); len(e.Message) > registry.MaxTextBytes+32 {
		t.Errorf("error event message of %d bytes", len(e.Message))
	}
	for _, r := range m.Logs(0) {
		for _, a := range r.Attrs {
			if len(a.Value) > registry.MaxTextBytes+32 {
				t.Errorf("log %q: %s of %d bytes", r.Message, a.Key, len(a.Value))
			}
		}
	}
	msgs, _ := m.Messages(h.Name(), 0)
	if len(msgs) != 1 || len(msgs[0].Event) > registry.MaxTextBytes+32 || msgs[0].Size < 1<<20 {
		t.Errorf("the system message kept: %d, event of %d bytes", len(msgs), len(msgs[0].Event))
	}
}
