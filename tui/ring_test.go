package tui

import "testing"

func TestRing(t *testing.T) {
	r := NewRing[int](3)
	if _, ok := r.Last(); ok || r.Len() != 0 || r.Cap() != 3 {
		t.Fatal("new ring must be empty")
	}
	for i := 1; i <= 7; i++ {
		r.Push(i)
		want := min(i, 3)
		if r.Len() != want {
			t.Fatalf("after %d pushes: len %d, want %d", i, r.Len(), want)
		}
		for j := 0; j < r.Len(); j++ {
			if got := r.At(j); got != i-r.Len()+1+j {
				t.Fatalf("after %d pushes: At(%d) = %d", i, j, got)
			}
		}
		if l, _ := r.Last(); l != i {
			t.Fatalf("Last = %d, want %d", l, i)
		}
	}
	if r.Seq() != 7 || r.Overwritten() != 4 {
		t.Fatalf("seq %d overwritten %d", r.Seq(), r.Overwritten())
	}
	// Pushes 5, 6, 7 are held: Index finds them, clamped outside.
	for seq, want := range map[uint64]int{1: 0, 5: 0, 6: 1, 7: 2, 9: 2} {
		if got := r.Index(seq); got != want {
			t.Fatalf("Index(%d) = %d, want %d", seq, got, want)
		}
	}
	if NewRing[int](2).Index(1) != -1 {
		t.Fatal("Index in an empty ring must be -1")
	}
	*r.Ptr(0) = 100
	if r.At(0) != 100 {
		t.Fatal("Ptr must point into the ring")
	}
	r.Clear()
	if r.Len() != 0 {
		t.Fatal("Clear")
	}
	r.Push(8)
	r.Push(9)
	if r.At(0) != 8 || r.At(1) != 9 || r.Seq() != 9 {
		t.Fatalf("after Clear: %d %d seq %d", r.At(0), r.At(1), r.Seq())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("At out of range must panic like a slice")
		}
	}()
	r.At(2)
}

// A sized ring keeps at most its bytes, the oldest dropped first (and
// counted), and still grows to its capacity.
func TestSizedRing(t *testing.T) {
	r := NewSizedRing[string](100, 1000, func(s *string) int { return len(*s) })
	for i := range 50 {
		r.Push(string(rune('a'+i%26)) + string(make([]byte, 99))) // 100 bytes
	}
	if r.Len() != 10 || r.Bytes() != 1000 || r.Overwritten() != 40 || r.Seq() != 50 {
		t.Fatalf("len %d, bytes %d, overwritten %d", r.Len(), r.Bytes(), r.Overwritten())
	}
	if got := r.At(9)[0]; got != byte('a'+49%26) {
		t.Fatalf("newest %c", got)
	}
	for range 60 {
		r.Push("x") // small ones: it grows past the 10 it held
	}
	if r.Len() != 69 || r.Bytes() != 9*100+60 { // the first made room
		t.Fatalf("after small ones: len %d, bytes %d", r.Len(), r.Bytes())
	}
	for range 100 {
		r.Push("y")
	}
	if r.Len() != 100 || r.Bytes() != 100 {
		t.Fatalf("full of small ones: len %d, bytes %d", r.Len(), r.Bytes())
	}
	r.Push(string(make([]byte, 5000))) // larger than the bound: alone
	if r.Len() != 1 || r.Bytes() != 5000 {
		t.Fatalf("a big value: len %d, bytes %d", r.Len(), r.Bytes())
	}
	r.Push("z")
	if r.Len() != 1 || r.At(0) != "z" || r.Bytes() != 1 {
		t.Fatalf("after the big value: len %d, bytes %d", r.Len(), r.Bytes())
	}
	if i := r.Index(r.Seq()); i != 0 {
		t.Fatalf("Index of the newest: %d", i)
	}
	r.Clear()
	if r.Bytes() != 0 {
		t.Fatal("Clear keeps bytes")
	}
}
