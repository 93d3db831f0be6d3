package tui

import "testing"

func TestScrollApply(t *testing.T) {
	var s scroll
	for _, c := range []struct {
		mv   navMove
		want scroll
	}{
		{navMove{delta: -1}, 0},
		{navMove{delta: 5}, 5},
		{navMove{delta: -2}, 3},
		{navMove{bottom: true}, maxScroll},
		{navMove{delta: 1}, maxScroll},
		{navMove{top: true}, 0},
	} {
		s.apply(c.mv)
		if s != c.want {
			t.Fatalf("after %+v: %d, want %d", c.mv, s, c.want)
		}
	}
}

func TestCursorStep(t *testing.T) {
	r := NewRing[int](10)
	for i := range 5 {
		r.Push(i)
	}
	seqAt := func(i int) uint64 { return r.Seq() - uint64(r.Len()) + 1 + uint64(i) }
	even := func(i int) bool { return r.At(i)%2 == 0 }
	c := cursor{follow: true}
	if i := c.index(r.Len(), r.Index); i != 4 {
		t.Fatalf("following: index %d", i)
	}
	c.step(r.Len(), r.Index, seqAt, -1, even)
	if c.follow || c.index(r.Len(), r.Index) != 2 {
		t.Fatalf("up: %+v at %d", c, c.index(r.Len(), r.Index))
	}
	r.Push(5) // a new entry does not move a paused cursor
	if c.index(r.Len(), r.Index) != 2 {
		t.Fatalf("paused cursor moved to %d", c.index(r.Len(), r.Index))
	}
	c.step(r.Len(), r.Index, seqAt, 1, even)
	if c.follow || c.index(r.Len(), r.Index) != 4 {
		t.Fatalf("down onto the last match but not the newest entry: %+v", c)
	}
	c.step(r.Len(), r.Index, seqAt, 10, func(int) bool { return true })
	if !c.follow {
		t.Fatal("down onto the newest entry must follow")
	}
}
