package tui

import (
	"runtime"
	"strings"
	"testing"

	"rtm/registry"
)

// bigPayload returns a new JSON object of n bytes, {"data":"xx..."}, as
// the client reads each frame into a buffer of its own.
func bigPayload(n int) []byte {
	b := make([]byte, n)
	copy(b, `{"data":"`)
	for i := 9; i < n-2; i++ {
		b[i] = 'x'
	}
	copy(b[n-2:], `"}`)
	return b
}

func heapNow() (inuse, total uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.TotalAlloc
}

// TestHugeMessagesBoundedInTheUI feeds the model messages and frames of
// 30 MiB (the client takes frames up to 32 MiB): it keeps each cut to its
// preview, marked truncated with its size, so its heap grows by the
// previews, not the payloads, and a View of the messages tab allocates
// about what it does for small messages.
func TestHugeMessagesBoundedInTheUI(t *testing.T) {
	const size, n = 30 << 20, 5
	m, _ := newTestModel(t, 120, 40)
	keys(m, "j", "tab", "1") // the messages of docCh
	screen(m)
	base, _ := heapNow()
	var viewAlloc uint64
	for i := range n {
		p := bigPayload(size)
		m.Update(EventsBatchMsg{Events: []registry.Event{
			registry.MessageEvent{Time: t0, Channel: docCh, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "big", Payload: p, Size: size},
			registry.FrameEvent{Time: t0, Channel: docCh, Topic: docCh.Topic(), Direction: registry.In, Event: "broadcast", Text: string(p), Size: size + 40},
		}})
		p = nil
		_, before := heapNow()
		s := screen(m)
		_, after := heapNow()
		viewAlloc = max(viewAlloc, after-before)
		if i == n-1 {
			mustContain(t, s, "[30.0 MiB, truncated]", "30.0 MiB, truncated to 16.0 KiB", `{"data":"xxxx`)
		}
	}
	inuse, _ := heapNow()
	grown := int64(inuse) - int64(base)
	t.Logf("%d messages and frames of 30 MiB: the heap grew by %d KiB; a View allocated %d KiB at most", n, grown>>10, viewAlloc>>10)
	if grown > 8<<20 {
		t.Errorf("the heap grew by %d MiB keeping %d messages and frames of 30 MiB", grown>>20, n)
	}
	if viewAlloc > 4<<20 {
		t.Errorf("a View allocated %d MiB", viewAlloc>>20)
	}
	runtime.KeepAlive(m)
	d := m.chData[docCh]
	last := d.msgs.At(d.msgs.Len() - 1).ev
	if !last.Truncated || last.Size != size || len(last.Preview) != DefaultPreview || last.Payload != nil {
		t.Errorf("kept: truncated %v, size %d, preview %d bytes", last.Truncated, last.Size, len(last.Preview))
	}
	f, _ := m.frames.Last()
	if len(f.Text) != DefaultPreview || f.Size != size+40 || !frameCut(&f) {
		t.Errorf("kept frame: %d bytes of %d", len(f.Text), f.Size)
	}
	// The Info tab's frames say so too.
	keys(m, "4")
	mustContain(t, screen(m), "[30.0 MiB, truncated]")
}

// Each ring is bounded in bytes: many previews of 16 KiB fill a
// channel's messages to MessageBytes, not to MessageRing of them.
func TestMessageRingBytes(t *testing.T) {
	m, _ := newTestModel(t, 120, 40, func(o *Options) { o.MessageBytes = 256 << 10 })
	for range 100 {
		m.Update(EventsBatchMsg{Events: []registry.Event{registry.MessageEvent{Time: t0, Channel: docCh, Direction: registry.In,
			Kind: registry.MessageBroadcast, Event: "e", Payload: bigPayload(20 << 10), Size: 20 << 10}}})
	}
	d := m.chData[docCh]
	if d.msgs.Bytes() > 256<<10 || d.msgs.Len() > 20 || d.msgs.Len() < 10 {
		t.Fatalf("%d messages, %d bytes", d.msgs.Len(), d.msgs.Bytes())
	}
	if e := d.msgs.At(0).ev; !e.Truncated || !strings.HasPrefix(e.Preview, `{"data":"xx`) {
		t.Fatalf("kept %+v", e.Truncated)
	}
}
