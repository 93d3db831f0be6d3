package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Observer calls. By default the relay calls the Observer itself, on its
// goroutines, before each frame is written on (the relay waits for it).
// With Config.ObserverQueue set, the calls (Open, Frame, Closed, Fault)
// go through one bounded FIFO to one goroutine of the proxy instead, so
// that the Observer's work (decoding, masking, its lock, which a UI's
// snapshot may hold) is off the relay's path: a pump copies the frame
// (into a pooled buffer), queues it and writes it on at once. Order is
// kept (one queue, one goroutine); the goroutine, once woken, lets the
// calls gather for a millisecond (obsGather), so that a stream of frames
// costs the relay one wake-up per millisecond, not one per frame. A frame that finds the queue full
// (ObserverQueue calls, or ObserverQueueBytes of frame data) is not
// shown to the Observer and is counted ([Proxy.ObserverDropped]); Open,
// Closed and Fault calls have ObserverQueue/8 places more, beyond which
// they are dropped and counted too. Close waits until the queue is
// drained: every call queued has been made when it returns.

// Defaults of the observer queue.
const (
	// DefaultObserverQueue is a queue size for Config.ObserverQueue
	// (rtm proxy's): 65,536 calls.
	DefaultObserverQueue = 65536
	// DefaultObserverQueueBytes bounds the frame data queued (16 MiB).
	DefaultObserverQueueBytes = 16 << 20
)

// obsGather is how long the queue's goroutine lets calls gather after
// it is woken: the Observer sees a call at most this much later.
const obsGather = time.Millisecond

type obsKind uint8

const (
	obsFrame obsKind = iota + 1
	obsOpen
	obsClosed
	obsFault
)

// obsItem is one queued Observer call.
type obsItem struct {
	kind   obsKind
	f      Frame
	buf    *[]byte // a frame's copy, from the proxy's buffer pool
	open   *ConnInfo
	closed *Closed
	fault  *FaultEvent
}

// obsQueue is the FIFO of Observer calls and its goroutine.
type obsQueue struct {
	p        *Proxy
	max      int   // calls
	maxBytes int64 // frame bytes
	bytes    atomic.Int64
	dropped  atomic.Uint64

	mu      sync.Mutex
	items   []obsItem
	idle    bool // run waits for wake
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newObsQueue(p *Proxy, max, maxBytes int) *obsQueue {
	q := &obsQueue{p: p, max: max, maxBytes: int64(maxBytes), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

// put queues it, unless the queue is full (false). A stopped queue
// makes the call at once.
func (q *obsQueue) put(it obsItem) bool {
	limit := q.max + q.max/8
	if it.kind == obsFrame {
		limit = q.max
	}
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		q.deliver(&it)
		return true
	}
	if len(q.items) >= limit {
		q.mu.Unlock()
		q.dropped.Add(1)
		return false
	}
	q.items = append(q.items, it)
	wake := q.idle
	q.idle = false
	q.mu.Unlock()
	if wake {
		q.wake <- struct{}{}
	}
	return true
}

// frame queues a copy of f.
func (q *obsQueue) frame(f Frame) {
	if q.bytes.Add(int64(len(f.Data))) > q.maxBytes {
		q.bytes.Add(-int64(len(f.Data)))
		q.dropped.Add(1)
		return
	}
	bp := q.p.getBuf()
	*bp = append((*bp)[:0], f.Data...)
	f.Data = *bp
	if !q.put(obsItem{kind: obsFrame, f: f, buf: bp}) {
		q.bytes.Add(-int64(len(f.Data)))
		q.p.putBuf(bp, f.Data)
	}
}

// run makes the queued calls until the queue is stopped and empty.
func (q *obsQueue) run() {
	defer close(q.done)
	var batch []obsItem
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.stopped {
			q.idle = true
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		if !q.stopped && len(q.items) < q.max/2 {
			// Let the calls of a stream gather: one wake-up for many,
			// not one per frame on the relay's path.
			q.mu.Unlock()
			time.Sleep(obsGather)
			q.mu.Lock()
		}
		batch, q.items = q.items, batch[:0]
		q.mu.Unlock()
		for i := range batch {
			q.deliver(&batch[i])
			batch[i] = obsItem{}
		}
		if cap(batch) > 1024 && len(batch) < cap(batch)/4 {
			batch = nil // a burst is over: do not keep its room
		}
	}
}

// deliver makes one call and frees its frame copy.
func (q *obsQueue) deliver(it *obsItem) {
	obs := q.p.cfg.Observer
	switch it.kind {
	case obsFrame:
		obs.Frame(it.f)
		q.bytes.Add(-int64(len(it.f.Data)))
		q.p.putBuf(it.buf, it.f.Data)
	case obsOpen:
		obs.Open(*it.open)
	case obsClosed:
		obs.Closed(*it.closed)
	case obsFault:
		obs.(FaultObserver).Fault(*it.fault)
	}
}

// stop drains the queue and ends its goroutine; later calls are made at
// once.
func (q *obsQueue) stop() {
	q.once.Do(func() {
		q.mu.Lock()
		q.stopped = true
		wake := q.idle
		q.idle = false
		q.mu.Unlock()
		if wake {
			q.wake <- struct{}{}
		}
		<-q.done
	})
}

// observeOpen, observeFrame, observeClosed and observeFault call the
// Observer (when there is one) directly or through the queue.
func (p *Proxy) observeOpen(ci ConnInfo) {
	switch {
	case p.obsq != nil:
		p.obsq.put(obsItem{kind: obsOpen, open: &ci})
	case p.cfg.Observer != nil:
		p.cfg.Observer.Open(ci)
	}
}

func (p *Proxy) observeFrame(f Frame) {
	switch {
	case p.obsq != nil:
		p.obsq.frame(f)
	case p.cfg.Observer != nil:
		p.cfg.Observer.Frame(f)
	}
}

func (p *Proxy) observeClosed(c Closed) {
	switch {
	case p.obsq != nil:
		p.obsq.put(obsItem{kind: obsClosed, closed: &c})
	case p.cfg.Observer != nil:
		p.cfg.Observer.Closed(c)
	}
}

func (p *Proxy) observeFault(ev FaultEvent) {
	fo, ok := p.cfg.Observer.(FaultObserver)
	switch {
	case !ok:
	case p.obsq != nil:
		p.obsq.put(obsItem{kind: obsFault, fault: &ev})
	default:
		fo.Fault(ev)
	}
}

// ObserverDropped counts the Observer calls dropped because the
// observer queue was full (always 0 without Config.ObserverQueue).
func (p *Proxy) ObserverDropped() uint64 {
	if p.obsq == nil {
		return 0
	}
	return p.obsq.dropped.Load()
}
