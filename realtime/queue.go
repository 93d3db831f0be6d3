package realtime

import (
	"sync"
	"sync/atomic"
)

// queue delivers values to fn (or in batches to fnBatch) in order, off
// the producer's goroutine. It
// holds at most limit values waiting, plus the batch being delivered
// (at most min(limit, 64)): push of a droppable value beyond that fails
// and is counted, so a producer (the read loop) never waits for a slow
// consumer. Forced values (channel statuses) are always queued.
//
// No goroutine runs while the queue is empty: push starts one worker when
// needed, and the worker exits once it has drained the queue. wg counts
// workers so that Close can wait for them. (A worker lingering ~1 ms for
// the next burst was measured: no gain on the receive stream or the
// presence diff, so it is not done.)
type queue[T any] struct {
	fn      func(T)
	fnBatch func([]T)
	limit   int
	wg      *sync.WaitGroup

	mu      sync.Mutex
	ring    []T
	head, n int
	running bool // a worker exists
	batch   []T  // the worker's buffer, kept across bursts (one worker at a time)

	dropped atomic.Uint64
}

func newQueue[T any](fn func(T), limit int, wg *sync.WaitGroup) *queue[T] {
	return &queue[T]{fn: fn, limit: limit, wg: wg}
}

// newBatchQueue is a queue that hands fn each batch it takes (at most
// min(limit, 64) values, in order); fn must not keep the slice.
func newBatchQueue[T any](fn func([]T), limit int, wg *sync.WaitGroup) *queue[T] {
	return &queue[T]{fnBatch: fn, limit: limit, wg: wg}
}

// push queues v and reports whether it did (false: dropped, queue full).
func (q *queue[T]) push(v T, force bool) bool {
	q.mu.Lock()
	slot := q.slotLocked(force)
	if slot != nil {
		*slot = v
	}
	q.unlock()
	return slot != nil
}

// slotLocked queues a value under q.mu (see push) and returns its slot,
// to be filled before unlock, or nil when it is dropped.
func (q *queue[T]) slotLocked(force bool) *T {
	if q.n >= q.limit && !force {
		q.dropped.Add(1)
		return nil
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.n++
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
	ring := make([]T, size)
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// len returns the number of queued values.
func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
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
		batch = make([]T, 0, min(max(q.limit, 1), 64))
	}
	for {
		q.mu.Lock()
		if q.n == 0 {
			q.running = false
			q.batch = batch
			if cap(q.ring) > 4*q.limit && q.limit > 0 {
				q.ring, q.head = nil, 0 // shrink after a burst of forced values
			}
			q.mu.Unlock()
			return
		}
		batch = q.takeLocked(batch)
		q.mu.Unlock()
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
// capacity.
func (q *queue[T]) takeLocked(batch []T) []T {
	k := min(q.n, cap(batch)-len(batch))
	first := min(k, len(q.ring)-q.head) // up to the ring's end
	batch = append(batch, q.ring[q.head:q.head+first]...)
	clear(q.ring[q.head : q.head+first])
	batch = append(batch, q.ring[:k-first]...)
	clear(q.ring[:k-first])
	if q.head += k; q.head >= len(q.ring) {
		q.head -= len(q.ring)
	}
	q.n -= k
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
