package tui

// Ring is a bounded FIFO of the newest values: pushing onto a full ring
// overwrites the oldest value and counts it in Overwritten. Index 0 is the
// oldest value kept. Seq numbers every value ever pushed, so a view can
// tell how many arrived since it last looked. A ring made by NewSizedRing
// is bounded in bytes too. Not safe for concurrent use: the root model
// owns its rings.
type Ring[T any] struct {
	buf         []T // grows up to capacity, then wraps
	capacity    int
	start, n    int
	seq         uint64
	overwritten uint64
	// Byte bound (NewSizedRing): size gives a value's bytes.
	size            func(*T) int
	bytes, maxBytes int
}

// NewRing returns a ring that keeps the newest capacity values (at least
// 1). Its storage grows with use up to capacity.
func NewRing[T any](capacity int) *Ring[T] {
	if capacity < 1 {
		capacity = 1
	}
	return &Ring[T]{capacity: capacity}
}

// NewSizedRing returns a ring that keeps the newest capacity values (at
// least 1) of at most maxBytes in all, size giving the bytes of a value
// (it must not change while the value is kept): pushing drops the oldest
// values until the new one fits, and a value larger than maxBytes is
// kept alone. Callers cut what they keep to a preview first.
func NewSizedRing[T any](capacity, maxBytes int, size func(*T) int) *Ring[T] {
	r := NewRing[T](capacity)
	r.size, r.maxBytes = size, maxBytes
	return r
}

// Bytes returns the bytes of the values kept (0 for a ring not made by
// NewSizedRing).
func (r *Ring[T]) Bytes() int { return r.bytes }

// Push appends v, overwriting the oldest value when full.
func (r *Ring[T]) Push(v T) {
	if r.size != nil {
		n := r.size(&v)
		for r.n > 0 && r.bytes+n > r.maxBytes {
			r.dropOldest()
		}
		r.bytes += n
	}
	switch {
	case r.n < len(r.buf): // room left by dropped values
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
	case r.n < r.capacity: // still growing
		if r.start != 0 {
			buf := make([]T, 0, min(r.capacity, max(2*len(r.buf), 8)))
			for i := range r.n {
				buf = append(buf, r.buf[(r.start+i)%len(r.buf)])
			}
			r.buf, r.start = buf, 0
		}
		r.buf = append(r.buf, v)
		if c := cap(r.buf); c > r.capacity {
			r.buf = r.buf[:len(r.buf):r.capacity]
		}
		r.n++
	default:
		if r.size != nil {
			r.bytes -= r.size(&r.buf[r.start])
		}
		r.buf[r.start] = v
		r.start = (r.start + 1) % len(r.buf)
		r.overwritten++
	}
	r.seq++
}

// dropOldest drops the oldest value (a sized ring making room).
func (r *Ring[T]) dropOldest() {
	var zero T
	r.bytes -= r.size(&r.buf[r.start])
	r.buf[r.start] = zero
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	r.overwritten++
}

// Len returns the number of values kept.
func (r *Ring[T]) Len() int { return r.n }

// Cap returns the capacity.
func (r *Ring[T]) Cap() int { return r.capacity }

// At returns the i-th value kept, 0 being the oldest. It panics when i is
// out of range, like a slice.
func (r *Ring[T]) At(i int) T {
	if i < 0 || i >= r.n {
		panic("tui: ring index out of range")
	}
	return r.buf[(r.start+i)%len(r.buf)]
}

// Ptr returns a pointer to the i-th value kept, for in-place caches.
func (r *Ring[T]) Ptr(i int) *T {
	if i < 0 || i >= r.n {
		panic("tui: ring index out of range")
	}
	return &r.buf[(r.start+i)%len(r.buf)]
}

// Last returns the newest value and true, or false when empty.
func (r *Ring[T]) Last() (T, bool) {
	if r.n == 0 {
		var zero T
		return zero, false
	}
	return r.At(r.n - 1), true
}

// Seq returns the number of values ever pushed.
func (r *Ring[T]) Seq() uint64 { return r.seq }

// Index returns the index of the value pushed as number seq (Seq counts
// pushes), clamped to the values held; -1 when the ring is empty.
func (r *Ring[T]) Index(seq uint64) int {
	if r.n == 0 {
		return -1
	}
	first := r.seq - uint64(r.n) + 1
	if seq < first {
		return 0
	}
	if i := seq - first; i < uint64(r.n) {
		return int(i)
	}
	return r.n - 1
}

// Overwritten returns the number of values pushed out by newer ones.
func (r *Ring[T]) Overwritten() uint64 { return r.overwritten }

// Clear empties the ring (Seq and Overwritten keep counting).
func (r *Ring[T]) Clear() {
	var zero T
	for i := range r.buf {
		r.buf[i] = zero
	}
	r.start, r.n, r.bytes = 0, 0, 0
}

// rowCache keeps the rendered rows of the last two renders of a pane,
// keyed by sequence number, so a row is rendered once while it stays on
// screen and memory follows the screen, not the history.
type rowCache struct {
	w         int
	owner     any
	cur, prev map[uint64]string
}

// get returns the cached row of seq for width w and owner (a channel),
// resetting the cache when either changed.
func (c *rowCache) get(seq uint64, w int, owner any) (string, bool) {
	if c.cur == nil || c.w != w || c.owner != owner {
		c.w, c.owner = w, owner
		c.cur, c.prev = map[uint64]string{}, map[uint64]string{}
		return "", false
	}
	if s, ok := c.cur[seq]; ok {
		return s, true
	}
	if s, ok := c.prev[seq]; ok {
		c.cur[seq] = s
		return s, true
	}
	return "", false
}

// put stores a row rendered in this render.
func (c *rowCache) put(seq uint64, s string) {
	if c.cur != nil {
		c.cur[seq] = s
	}
}

// flip ends a render: rows not used in it or the one before are dropped.
func (c *rowCache) flip() {
	if c.cur == nil {
		return
	}
	c.prev, c.cur = c.cur, c.prev
	clear(c.cur)
}

// reset drops every row (theme change).
func (c *rowCache) reset() { c.cur, c.prev = nil, nil }
