package realtime

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"rtm/realtime/hostile"
)

// splitReader returns its data in reads of at most step bytes, then
// io.EOF, as a WebSocket message reader returns fragments.
type splitReader struct {
	data []byte
	step int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// checkFrames reads frames of the given sizes (in reads of step bytes)
// and checks each comes back whole, and that a frame that did not fit in
// the slab's free space has a buffer of exactly its size.
func checkFrames(t *testing.T, sizes []int, step int) {
	t.Helper()
	var fr frameReader
	for i, size := range sizes {
		want := make([]byte, size)
		for j := range want {
			want[j] = byte(i + j)
		}
		off := fr.off
		if len(fr.slab)-off < slabMinFree {
			off = 0 // a new slab
		}
		free := slabSize - off
		got, err := fr.read(&splitReader{data: want, step: max(step, 1)})
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d (%d bytes): got %d bytes, not the frame", i, size, len(got))
		}
		if cap(got) != len(got) {
			t.Fatalf("frame %d (%d bytes): cap %d: a kept part could grow over the next frame", i, size, cap(got))
		}
		switch {
		case size < free && fr.off != off+size:
			t.Fatalf("frame %d (%d bytes, %d free): not carved from the slab (offset %d -> %d)", i, size, free, off, fr.off)
		case size >= free && fr.off != off:
			t.Fatalf("frame %d (%d bytes, %d free): took the slab's space (offset %d -> %d)", i, size, free, off, fr.off)
		}
	}
}

func TestFrameReaderSizes(t *testing.T) {
	checkFrames(t, []int{10, 100, slabSize - 200, 3000, 5000, slabSize, slabSize + 1, 1, 3 * chunkMax, 70_000, 0, 2*chunkMax + 17}, 4096)
	checkFrames(t, []int{slabSize - slabMinFree, slabMinFree, slabMinFree + 1, 1}, 1<<20)
}

// FuzzFrameReader reads frames of fuzzed sizes in fuzzed fragments: each
// comes back whole, and a big one in a buffer of exactly its size.
func FuzzFrameReader(f *testing.F) {
	f.Add(uint32(100), uint32(slabSize+5), uint32(3), uint16(4096))
	f.Add(uint32(slabSize-slabMinFree), uint32(slabMinFree), uint32(0), uint16(1))
	f.Add(uint32(chunkMax+chunkMin), uint32(1), uint32(slabSize), uint16(65535))
	f.Fuzz(func(t *testing.T, a, b, c uint32, step uint16) {
		const limit = 4 << 20
		checkFrames(t, []int{int(a % limit), int(b % limit), int(c % limit)}, int(step))
	})
}

// heapInuse returns the heap in use after a full collection.
func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestBigFramesCostTheirSize reads frames of tens of MiB from a hostile
// server and keeps every payload: the heap grows by about what is kept,
// not by the buffers the frames were read into. (Frames of 17 MiB are
// the bad case of a buffer grown by doubling from the slab, which ends
// at 32 MiB; 30 MiB frames ended at 32 MiB too.)
func TestBigFramesCostTheirSize(t *testing.T) {
	for _, size := range []int{17 << 20, 30 << 20} {
		const n = 5
		srv := hostile.New(t, func(string) hostile.Script { return hostile.HugeBroadcasts("big", n, size) })
		var (
			mu   sync.Mutex
			kept [][]byte
			done = make(chan struct{})
		)
		base := heapInuse()
		sock := dialURL(t, srv.URL, "anything")
		ch, err := sock.Channel("big", ChannelConfig{OnEvent: func(e Event) {
			if e.Type != EventBroadcast {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			kept = append(kept, e.Broadcast.Payload)
			if len(kept) == n {
				close(done)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := ch.Subscribe(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("%d of %d broadcasts of %d MiB arrived", len(kept), n, size>>20)
		}
		cancel()
		// The server runs in this process: close it first, so the frame
		// it may still hold on its way out is not counted as the client's.
		srv.Close()
		grown := heapInuse() - base
		keptBytes := int64(0)
		mu.Lock()
		for _, p := range kept {
			keptBytes += int64(len(p))
		}
		mu.Unlock()
		t.Logf("%d MiB frames: kept %d MiB of payloads, heap grew by %d MiB", size>>20, keptBytes>>20, grown>>20)
		// The payloads, plus the client's own few MiB.
		if limit := keptBytes + keptBytes/10 + 8<<20; grown > limit {
			t.Errorf("%d MiB frames: the heap grew by %d MiB keeping %d MiB of payloads (limit %d MiB)",
				size>>20, grown>>20, keptBytes>>20, limit>>20)
		}
		runtime.KeepAlive(kept)
		sock.Close()
	}
}
