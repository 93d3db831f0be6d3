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
