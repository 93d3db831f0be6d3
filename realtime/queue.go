package realtime

import (
	"sync"
	"sync/atomic"
)

// queue delivers values to fn in order, off the producer's goroutine. It
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
	fn    func(T)
	limit int
	wg    *sync.WaitGroup

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

// run delivers batches until the queue is empty.
func (q *queue[T]) run() {
	defer q.wg.Done()
	var zero T
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
		for q.n > 0 && len(batch) < cap(batch) {
			batch = append(batch, q.ring[q.head])
			q.ring[q.head] = zero
			if q.head++; q.head == len(q.ring) {
				q.head = 0
			}
			q.n--
		}
		q.mu.Unlock()
		for i := range batch {
			q.fn(batch[i])
			batch[i] = zero
		}
		batch = batch[:0]
	}
}
