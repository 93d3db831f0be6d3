package realtime

import (
	"sync"
	"testing"
)

// blockedQueue is a queue of ints whose consumer blocks until release;
// got receives what it delivered.
type blockedQueue struct {
	q       *queue[int]
	wg      sync.WaitGroup
	release chan struct{}
	mu      sync.Mutex
	got     []int
}

func newBlockedQueue(limits queueLimits) *blockedQueue {
	b := &blockedQueue{release: make(chan struct{})}
	b.q = newQueue(func(v int) {
		<-b.release
		b.mu.Lock()
		b.got = append(b.got, v)
		b.mu.Unlock()
	}, limits, &b.wg)
	return b
}

// drain releases the consumer and waits for the queue to be delivered.
func (b *blockedQueue) drain() []int {
	close(b.release)
	b.wg.Wait()
	return b.got
}

// A queue holds at most its count and its bytes of droppable values
// (one value larger than the bytes goes through when nothing waits);
// beyond them they are dropped and counted.
func TestQueueBounds(t *testing.T) {
	b := newBlockedQueue(queueLimits{count: 100, bytes: 1000})
	if !b.q.push(0, 5000, pushDrop) {
		t.Fatal("a large value refused by an empty queue")
	}
	// The worker holds value 0 (blocked in the consumer), or it waits.
	eventually(t, "the worker to take the first value", func() bool { return b.q.len() == 0 })
	accepted := 0
	for i := 1; i <= 50; i++ {
		if b.q.push(i, 100, pushDrop) {
			accepted++
		}
	}
	if accepted != 10 || b.q.size() != 1000 || b.q.dropped.Load() != 40 {
		t.Errorf("accepted %d (%d bytes), dropped %d; want 10 (1000), 40", accepted, b.q.size(), b.q.dropped.Load())
	}
	if got := b.drain(); len(got) != 11 || got[0] != 0 || got[10] != 10 {
		t.Errorf("delivered %d values: %v", len(got), got)
	}
	c := newBlockedQueue(queueLimits{count: 100, bytes: 1000})
	c.q.push(0, 1, pushDrop)
	eventually(t, "the worker to take the first value", func() bool { return c.q.len() == 0 })
	for i := 1; i <= 200; i++ {
		c.q.push(i, 1, pushDrop)
	}
	if n := c.q.len(); n != 100 || c.q.dropped.Load() != 100 {
		t.Errorf("%d values of 1 byte waiting, %d dropped; want the count, 100, and 100", n, c.q.dropped.Load())
	}
	if got := c.drain(); len(got) != 101 || got[100] != 100 {
		t.Errorf("delivered %d values", len(got))
	}
}

// Forced values go beyond the limits into the reserve (an eighth of
// them, at least 64 values and 64 KiB), soft ones into half of it; beyond
// that they are dropped and counted like the others.
func TestQueueForcedReserve(t *testing.T) {
	b := newBlockedQueue(queueLimits{count: 100, bytes: 1 << 20})
	b.q.push(-1, 1, pushDrop)
	eventually(t, "the worker to take the first value", func() bool { return b.q.len() == 0 })
	for i := range 100 {
		b.q.push(i, 1, pushDrop)
	}
	soft, hard := 0, 0
	for i := range 1000 {
		if b.q.push(1000+i, 1, pushSoft) {
			soft++
		}
	}
	for i := range 1000 {
		if b.q.push(2000+i, 1, pushHard) {
			hard++
		}
	}
	if soft != 32 || hard != 32 || b.q.len() != 164 || b.q.dropped.Load() != 2000-64 {
		t.Errorf("soft %d, hard %d accepted, %d waiting, dropped %d; want 32, 32, 164, %d", soft, hard, b.q.len(), b.q.dropped.Load(), 2000-64)
	}
	// Bytes too: a forced value does not fit beyond the bytes and their reserve.
	big := newBlockedQueue(queueLimits{count: 1000, bytes: 1 << 20})
	big.q.push(-1, 1, pushDrop)
	eventually(t, "the worker to take the first value", func() bool { return big.q.len() == 0 })
	n := 0
	for i := range 100 {
		if big.q.push(i, 100<<10, pushHard) {
			n++
		}
	}
	if n != 11 || big.q.size() > (1<<20)+(128<<10) {
		t.Errorf("%d forced values of 100 KiB accepted (%d bytes); want 11", n, big.q.size())
	}
	b.drain()
	big.drain()
}

// A coalesced value waits at most once: a new one takes the slot of the
// one waiting when nothing came after it, else the one waiting leaves its
// place (a hole, compacted away when they are many) and the new one goes last. Endless
// coalesced values between droppable ones keep the queue within its
// bounds, and the consumer sees each droppable value that was kept in
// order, with one coalesced value after the last of them.
func TestQueueCoalesced(t *testing.T) {
	b := newBlockedQueue(queueLimits{count: 100, bytes: 1 << 20})
	b.q.push(-1, 1, pushDrop)
	eventually(t, "the worker to take the first value", func() bool { return b.q.len() == 0 })
	const sync = -2
	for i := range 100_000 {
		b.q.lock()
		if slot := b.q.slotLocked(1, pushDrop); slot != nil {
			*slot = i
		}
		*b.q.lastLocked(1) = sync
		b.q.unlock()
		if b.q.n > 100+100/2+64+1 || b.q.len() > 101 {
			t.Fatalf("after %d pushes: %d slots, %d values", i+1, b.q.n, b.q.len())
		}
	}
	b.q.lock()
	for range 10 {
		*b.q.lastLocked(1) = sync // nothing in between: one slot
	}
	b.q.unlock()
	// 99 droppable values and the coalesced one make the count.
	got := b.drain()
	if len(got) != 101 || got[0] != -1 || got[100] != sync {
		t.Fatalf("delivered %d values, want 101 ending with the coalesced one: %v", len(got), got)
	}
	for i, v := range got[1:100] {
		if v != i {
			t.Fatalf("value %d is %d: %v", i+1, v, got)
		}
	}
}
