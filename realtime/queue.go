package realtime

import (
	"sync"
	"sync/atomic"
)

// queueLimits bound a queue: count values and bytes bytes waiting (each
// value's size is given by its producer), plus the batch being delivered.
type queueLimits struct {
	count, bytes int
}

// reserve is the room forced values have beyond the limits: an eighth of
// them, at least 64 values and 64 KiB.
func (l queueLimits) reserve() queueLimits {
	return queueLimits{count: max(l.count/8, 64), bytes: max(l.bytes/8, 64<<10)}
}

// maxIdleRing is the largest ring a queue keeps while empty whatever its
// bursts (about 3 MB of events); a larger one (at most the count and its
// reserve) is kept while the bursts need an eighth of it, and freed after
// smallBursts bursts in a row that did not.
const (
	maxIdleRing = 16384
	smallBursts = 64
)

// pushClass says what a push does when the queue is full.
type pushClass uint8

const (
	// pushDrop values (stream events, tapped frames) are refused beyond
	// the limits and counted.
	pushDrop pushClass = iota
	// pushSoft values (system messages, heartbeats) are forced: they may
	// use half of the reserve beyond the limits, so that a flood of them
	// cannot take the room of pushHard values.
	pushSoft
	// pushHard values (channel and socket statuses) are forced into the
	// whole reserve.
	pushHard
)

// queue delivers values to fn (or in batches to fnBatch) in order, off
// the producer's goroutine. It holds at most limits.count values (holes
// left by coalesced values aside: at most half as many more) and
// limits.bytes bytes waiting, plus the batch being delivered (at most
// min(count, 64) values): push of a droppable value beyond that fails and
// is counted, so a producer (the read loop) never waits for a slow
// consumer. A value is accepted whatever its size when nothing waits, so
// one value larger than the byte limit still goes through. Forced values
// (statuses, system messages) go beyond the limits into a reserve (see
// queueLimits.reserve and pushClass) and are dropped and counted only
// when that is full too: nothing can grow the queue without bound. A
// coalesced value (pushLast: a presence sync, which carries nothing)
// waits at most once: a new one replaces the one waiting, which is
// dropped from its place, unless it is still the last value (then the
// new one takes its slot).
//
// No goroutine runs while the queue is empty: push starts one worker when
// needed, and the worker exits once it has drained the queue. wg counts
// workers so that Close can wait for them. (A worker lingering ~1 ms for
// the next burst was measured: no gain on the receive stream or the
// presence diff, so it is not done.)
type queue[T any] struct {
	fn      func(T)
	fnBatch func([]T)
	limits  queueLimits
	reserve queueLimits
	wg      *sync.WaitGroup

	mu      sync.Mutex
	ring    []T
	sizes   []int32 // the size of each slot's value; -1: a coalesced value taken out of its place
	head, n int
	bytes   int    // sum of the sizes waiting
	holes   int    // slots of sizes -1 waiting
	taken   uint64 // slots taken out of the ring so far
	last    uint64 // 1 + the slot number (taken + index) of the coalesced value waiting; 0: none
	peak    int    // the most values waiting since the worker started
	small   int    // bursts in a row that used less than an eighth of the ring
	running bool   // a worker exists
	batch   []T    // the worker's buffer, kept across bursts (one worker at a time)

	dropped atomic.Uint64
}

func newQueue[T any](fn func(T), limits queueLimits, wg *sync.WaitGroup) *queue[T] {
	return &queue[T]{fn: fn, limits: limits, reserve: limits.reserve(), wg: wg}
}

// newBatchQueue is a queue that hands fn each batch it takes (at most
// min(limits.count, 64) values, in order); fn must not keep the slice.
func newBatchQueue[T any](fn func([]T), limits queueLimits, wg *sync.WaitGroup) *queue[T] {
	return &queue[T]{fnBatch: fn, limits: limits, reserve: limits.reserve(), wg: wg}
}

// push queues v of size bytes and reports whether it did (false:
// dropped and counted, the queue is full for its class).
func (q *queue[T]) push(v T, size int, class pushClass) bool {
	q.mu.Lock()
	slot := q.slotLocked(size, class)
	if slot != nil {
		*slot = v
	}
	q.unlock()
	return slot != nil
}

// fitsLocked reports whether a value of size bytes and class fits.
func (q *queue[T]) fitsLocked(size int, class pushClass) bool {
	if q.n == 0 {
		return true
	}
	count, bytes := q.limits.count, q.limits.bytes
	switch class {
	case pushSoft:
		count += q.reserve.count / 2
		bytes += q.reserve.bytes / 2
	case pushHard:
		count += q.reserve.count
		bytes += q.reserve.bytes
	}
	return q.n-q.holes < count && q.bytes+size <= bytes
}

// slotLocked queues a value of size bytes under q.mu (see push) and
// returns its slot, to be filled before unlock, or nil when it is
// dropped (and counted).
func (q *queue[T]) slotLocked(size int, class pushClass) *T {
	if !q.fitsLocked(size, class) {
		q.dropped.Add(1)
		return nil
	}
	return q.appendLocked(size)
}

// lastLocked queues a coalesced value of size bytes under q.mu and
// returns its slot (see the type's doc): never nil, and the queue holds
// at most one such value. It needs no room of its own: a second one is
// appended only after other values were, which the limits bound.
func (q *queue[T]) lastLocked(size int) *T {
	if q.last > q.taken {
		i := q.index(int(q.last - 1 - q.taken))
		if int(q.last-q.taken) == q.n { // still the last value: take its slot
			q.bytes += size - int(q.sizes[i])
			q.sizes[i] = int32(size)
			return &q.ring[i]
		}
		// The hole keeps its value until it is taken or compacted away
		// (both clear it): it is the same coalesced value.
		q.bytes -= int(q.sizes[i])
		q.sizes[i] = -1
		if q.holes++; q.holes > max(64, (q.n-q.holes)/2) {
			q.compactLocked()
		}
	}
	slot := q.appendLocked(size)
	q.last = q.taken + uint64(q.n)
	return slot
}

// compactLocked removes the holes, keeping the order: the holes are at
// most half the values (and 64), so a hole costs O(1) amortized.
func (q *queue[T]) compactLocked() {
	w := 0
	for r := 0; r < q.n; r++ {
		i := q.index(r)
		if q.sizes[i] < 0 {
			continue
		}
		if j := q.index(w); j != i {
			q.ring[j], q.sizes[j] = q.ring[i], q.sizes[i]
		}
		w++
	}
	var zero T
	for r := w; r < q.n; r++ {
		q.ring[q.index(r)] = zero
	}
	q.n, q.holes = w, 0
}

func (q *queue[T]) index(k int) int {
	i := q.head + k
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	return i
}

func (q *queue[T]) appendLocked(size int) *T {
	if q.n == len(q.ring) {
		q.grow()
	}
	i := q.index(q.n)
	q.n++
	q.peak = max(q.peak, q.n)
	q.bytes += size
	q.sizes[i] = int32(min(size, 1<<31-1))
	return &q.ring[i]
}

// lock takes q.mu for a series of slotLocked; unlock ends it.
func (q *queue[T]) lock() { q.mu.Lock() }

// unlock releases q.mu and makes sure a worker will deliver what is
// queued: it starts one when there is none.
func (q *queue[T]) unlock() {
	if q.n > 0 && !q.running {
		q.running = true
		q.wg.Add(1)
		q.mu.Unlock()
		go q.run()
		return
	}
	q.mu.Unlock()
}

func (q *queue[T]) grow() {
	size := 2 * len(q.ring)
	if size < 16 {
		size = 16
	}
	ring, sizes := make([]T, size), make([]int32, size)
	for i := 0; i < q.n; i++ {
		j := (q.head + i) % len(q.ring)
		ring[i], sizes[i] = q.ring[j], q.sizes[j]
	}
	q.ring, q.sizes, q.head = ring, sizes, 0
}

// len returns the number of queued values.
func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n - q.holes
}

// size returns the bytes of the queued values.
func (q *queue[T]) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// run delivers batches until the queue is empty. Its frame stays small
// (no value of T on it): a worker starts on the runtime's smallest stack,
// and a consumer's calls that overflow it pay a stack copy per burst.
func (q *queue[T]) run() {
	defer q.wg.Done()
	q.mu.Lock()
	batch := q.batch
	q.batch = nil
	q.mu.Unlock()
	if batch == nil {
		batch = make([]T, 0, min(max(q.limits.count, 1), 64))
	}
	for {
		q.mu.Lock()
		if q.n == 0 {
			q.running = false
			q.batch = batch
			switch {
			case cap(q.ring) <= maxIdleRing || q.peak >= cap(q.ring)/8:
				q.small = 0
			case q.small < smallBursts-1:
				q.small++
			default:
				q.ring, q.sizes, q.head, q.small = nil, nil, 0, 0 // free the ring of earlier bursts
			}
			q.peak = 0
			q.mu.Unlock()
			return
		}
		batch = q.takeLocked(batch)
		q.mu.Unlock()
		if len(batch) == 0 {
			continue // only holes
		}
		if q.fnBatch != nil {
			q.fnBatch(batch)
		} else {
			q.each(batch)
		}
		clear(batch)
		batch = batch[:0]
	}
}

// takeLocked moves the oldest queued values into batch, up to its
// capacity, skipping holes.
func (q *queue[T]) takeLocked(batch []T) []T {
	k := min(q.n, cap(batch)-len(batch))
	first := min(k, len(q.ring)-q.head) // up to the ring's end
	holes := q.holes > 0
	for _, part := range [2][2]int{{q.head, q.head + first}, {0, k - first}} {
		ring, sizes := q.ring[part[0]:part[1]], q.sizes[part[0]:part[1]]
		if !holes {
			batch = append(batch, ring...)
		}
		for i, s := range sizes {
			if s < 0 {
				q.holes--
				continue
			}
			q.bytes -= int(s)
			if holes {
				batch = append(batch, ring[i])
			}
		}
		clear(ring)
	}
	if q.head += k; q.head >= len(q.ring) {
		q.head -= len(q.ring)
	}
	q.n -= k
	q.taken += uint64(k)
	return batch
}

// each calls fn with each value of batch, in order. Not inlined: the
// copy of each value as fn's argument stays out of run's frame.
//
//go:noinline
func (q *queue[T]) each(batch []T) {
	for i := range batch {
		q.fn(batch[i])
	}
}
