package tui

// Ring is a bounded FIFO of the newest values: pushing onto a full ring
// overwrites the oldest value and counts it in Overwritten. Index 0 is the
// oldest value kept. Seq numbers every value ever pushed, so a view can
// tell how many arrived since it last looked. Not safe for concurrent use:
// the root model owns its rings.
type Ring[T any] struct {
	buf         []T // grows up to capacity, then wraps
	capacity    int
	start, n    int
	seq         uint64
	overwritten uint64
}

// NewRing returns a ring that keeps the newest capacity values (at least
// 1). Its storage grows with use up to capacity.
func NewRing[T any](capacity int) *Ring[T] {
	if capacity < 1 {
		capacity = 1
	}
	return &Ring[T]{capacity: capacity}
}

// Push appends v, overwriting the oldest value when full.
func (r *Ring[T]) Push(v T) {
	if r.n < r.capacity && r.n == len(r.buf) && r.start == 0 {
		r.buf = append(r.buf, v) // still growing
		if c := cap(r.buf); c > r.capacity {
			r.buf = r.buf[:len(r.buf):r.capacity]
		}
		r.n++
	} else if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
	} else {
		r.buf[r.start] = v
		r.start = (r.start + 1) % len(r.buf)
		r.overwritten++
	}
	r.seq++
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
	r.start, r.n = 0, 0
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
