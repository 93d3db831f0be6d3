package registry

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestFrameRingKeepsIntactFrames(t *testing.T) {
	for seed := range uint64(5) {
		testFrameRing(t, seed, 4096)
		testFrameRing(t, seed, 20000) // grows before it wraps
	}
}

func testFrameRing(t *testing.T, seed uint64, size int) {
	r := newArenaRing[rawFrame](50, size)
	rnd := rand.New(rand.NewPCG(seed, 2))
	var written [][]byte
	for i := range 5000 {
		n := rnd.IntN(600)
		if i%97 == 0 {
			n = size + 900 // larger than the arena: kept truncated
		}
		data := bytes.Repeat([]byte{byte(i)}, n)
		copy(data, fmt.Sprintf("#%d#", i))
		r.add(rawFrame{event: fmt.Sprint(i), wireSize: n}, "", data)
		written = append(written, data)
		if i%5 != 0 && i < 4900 {
			continue
		}
		got := frames(&r, 0)
		if r.bytes() > size {
			t.Fatalf("frame %d: %d bytes kept in a ring of %d", i, r.bytes(), size)
		}
		if len(got) == 0 {
			t.Fatalf("frame %d: nothing kept", i)
		}
		if got[len(got)-1].event != fmt.Sprint(i) {
			t.Fatalf("frame %d: newest kept is %s", i, got[len(got)-1].event)
		}
		prev := -1
		for _, f := range got {
			var k int
			fmt.Sscan(f.event, &k)
			if k <= prev {
				t.Fatalf("frames out of order: %d after %d", k, prev)
			}
			prev = k
			want := written[k]
			if len(want) > size {
				want = want[:size]
			}
			if !bytes.Equal(f.data, want) || f.wireSize != len(written[k]) {
				t.Fatalf("frame %d corrupted (len %d, want %d) at step %d: got %q want %q", k, len(f.data), len(want), i, f.data[:min(10, len(f.data))], want[:min(10, len(want))])
			}
		}
	}
	if got := frames(&r, 3); len(got) != 3 {
		t.Fatalf("last(3) gave %d", len(got))
	}
	var empty arenaRing[rawFrame]
	empty.add(rawFrame{}, "", []byte("x"))
	if len(frames(&empty, 0)) != 0 {
		t.Fatal("disabled ring kept a frame")
	}
}

func TestBoundedRing(t *testing.T) {
	r := newBoundedRing[int](200, 1<<20)
	for i := range 250 {
		r.add(i, 1)
	}
	got := r.last(0)
	if len(got) != 200 || got[0] != 50 || got[199] != 249 {
		t.Fatalf("ring %d..%d (%d)", got[0], got[len(got)-1], len(got))
	}
	for i, v := range got {
		if v != 50+i {
			t.Fatalf("order at %d: %d", i, v)
		}
	}
	if l := r.last(3); len(l) != 3 || l[0] != 247 {
		t.Fatalf("last(3) = %v", l)
	}
	var each []int
	r.each(func(v *int) { each = append(each, *v) })
	if !slices.Equal(each, got) {
		t.Fatalf("each %v, last %v", each, got)
	}
	if len(r.vals) != 200 {
		t.Fatalf("a ring of 200 has room for %d", len(r.vals))
	}
	// It grows as values come, not before.
	small := newBoundedRing[int](5000, 1<<20)
	for i := range 3 {
		small.add(i, 10)
	}
	if len(small.vals) > 8 || !slices.Equal(small.last(0), []int{0, 1, 2}) {
		t.Fatalf("3 values in a ring of 5000: room %d, %v", len(small.vals), small.last(0))
	}
	var off boundedRing[int]
	if off.add(1, 1) || len(off.last(0)) != 0 {
		t.Fatal("a ring of 0 kept a value")
	}
	// Bytes: the oldest go first to make room; what is larger than the
	// whole bound is not kept.
	b := newBoundedRing[int](100, 1000)
	for i := range 10 {
		b.add(i, 300)
	}
	if got := b.last(0); !slices.Equal(got, []int{7, 8, 9}) || b.bytes != 900 {
		t.Fatalf("by bytes: %v (%d bytes)", got, b.bytes)
	}
	if b.add(99, 1001) || !slices.Equal(b.last(0), []int{7, 8, 9}) {
		t.Fatalf("a value over the bound: %v", b.last(0))
	}
	b.add(100, 1000)
	if got := b.last(0); !slices.Equal(got, []int{100}) || b.bytes != 1000 {
		t.Fatalf("a value of the whole bound: %v (%d bytes)", got, b.bytes)
	}
}
