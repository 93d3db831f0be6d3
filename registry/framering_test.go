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
	r := newFrameRing(50, size)
	rnd := rand.New(rand.NewPCG(seed, 2))
	var written [][]byte
	for i := range 5000 {
		n := rnd.IntN(600)
		if i%97 == 0 {
			n = size + 900 // larger than the arena: kept truncated
		}
		data := bytes.Repeat([]byte{byte(i)}, n)
		copy(data, fmt.Sprintf("#%d#", i))
		r.add(rawFrame{event: fmt.Sprint(i), wireSize: n}, data)
		written = append(written, data)
		if i%5 != 0 && i < 4900 {
			continue
		}
		got := r.last(0)
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
	if got := r.last(3); len(got) != 3 {
		t.Fatalf("last(3) gave %d", len(got))
	}
	var empty frameRing
	empty.add(rawFrame{}, []byte("x"))
	if len(empty.last(0)) != 0 {
		t.Fatal("disabled ring kept a frame")
	}
}

func TestRing(t *testing.T) {
	r := ring[int]{max: 200}
	for i := range 250 {
		if i%2 == 0 {
			r.add(i)
		} else {
			*r.next() = i
		}
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
	if cap(r.buf) != 200 {
		t.Fatalf("a ring of 200 has capacity %d", cap(r.buf))
	}
	// It grows as values come, not before.
	small := ring[int]{max: 5000}
	for i := range 3 {
		small.add(i)
	}
	if cap(small.buf) > 8 || !slices.Equal(small.last(0), []int{0, 1, 2}) {
		t.Fatalf("3 values in a ring of 5000: cap %d, %v", cap(small.buf), small.last(0))
	}
	var off ring[int]
	if off.next() != nil {
		t.Fatal("a ring of 0 gave a slot")
	}
}
