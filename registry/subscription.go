package registry

import (
	"sync"
)

// Defaults of [SubscribeOptions].
const (
	// DefaultBuffer is the number of stream events held for a
	// subscriber.
	DefaultBuffer = 4096
	// DefaultBufferBytes bounds the bytes of the stream events held for
	// a subscriber: room for a frame of the client's largest (32 MiB).
	DefaultBufferBytes = 32 << 20
)

// SubscribeOptions configures a [Subscription].
type SubscribeOptions struct {
	// Buffer is the number of stream events held for the subscriber
	// (default 4096), and BufferBytes their bytes (default 32 MiB: event
	// names, payloads, frames, log records and a small overhead per
	// event). State events do not count against either. A message that
	// does not fit in the bytes left is held truncated (its first
	// PreviewBytes, see [MessageEvent].Truncated) if that fits; other
	// stream events that do not fit are dropped and counted.
	Buffer      int
	BufferBytes int
	// Types, when not empty, restricts the subscription to these event
	// types. DroppedEvent is always delivered.
	Types []EventType
	// Channels, when not empty, restricts channel events to these
	// channels (socket, stats, token and log events still arrive unless
	// Types excludes them).
	Channels []Name
	// Frames asks for FrameEvents (raw frames in and out), which are
	// not sent otherwise.
	Frames bool
	// NoInitialState skips the state events that start a subscription
	// (the socket, the token, the stats, and every channel's state, as
	// of the moment of subscribing).
	NoInitialState bool
	// MessageBatches delivers messages as [MessageBatchEvent]s instead of
	// one MessageEvent each: the messages of a channel that arrive
	// between two drains form one batch, at the place of the first. It
	// is the cheap way to take a high message rate: no allocation per
	// message. With [Subscription.Drain], a batch's Messages slice, and
	// the bytes of the payloads up to 64 KiB, are reused after the next
	// Drain (copy what you keep); with Events they are yours.
	MessageBatches bool
}

// Subscription receives the manager's events. Events are delivered in
// the order the manager published them, with two exceptions that happen
// only when the subscriber falls behind: stream events that do not fit in
// the buffer are dropped (and counted, and a DroppedEvent says so), and a
// state event replaces the waiting state event of the same subject (it
// moves to the end of the queue, so it still comes after everything
// published before it). Publishing never blocks on the subscriber.
//
// Read with [Subscription.Events] (a channel, fed by a goroutine of the
// subscription) or with [Subscription.Ready] and [Subscription.Drain]
// (batches, no extra goroutine). Use one of the two styles, not both.
type Subscription struct {
	broker  *broker
	buffer  int
	bufMax  int // BufferBytes
	types   map[EventType]bool
	chans   map[Name]bool
	frames  bool
	ready   chan struct{} // capacity 1: "events are waiting"
	done    chan struct{}
	stopCtx func() bool

	mu        sync.Mutex
	q         []slot
	live      int // live slots in q
	stream    int // live stream events in q
	bytes     int // their bytes (see eventBytes)
	pending   map[stateKey]int
	dropped   uint64
	unnoticed uint64
	closed    bool
	signaled  bool // a Ready signal was sent since the last Drain

	batches bool
	recycle bool               // Drain is used: batch buffers come back
	open    map[Name]*msgBatch // batches still in the queue
	last    *msgBatch          // the open batch used last
	lent    []*msgBatch        // batches given out by the last Drain
	free    []*msgBatch        // batches to reuse
	arena   subArena           // copies of the batches' payloads

	pumpOnce sync.Once
	out      chan Event
	pumpDone chan struct{}
}

type slot struct {
	ev    Event
	batch *msgBatch // a message batch (ev is nil)
	state bool
	dead  bool
}

// msgBatch collects a channel's messages for a MessageBatches
// subscriber.
type msgBatch struct {
	channel Name
	msgs    []MessageEvent
}

func (s *Subscription) wants(ev Event) bool {
	t := ev.EventType()
	if t == TypeFrame && !s.frames {
		return false
	}
	if s.types != nil && !s.types[t] {
		return false
	}
	if s.chans != nil {
		if n, ok := channelOf(ev); ok && !s.chans[n] {
			return false
		}
	}
	return true
}

func (s *Subscription) wantsMessage(me *MessageEvent) bool {
	if s.types != nil && !s.types[TypeMessage] && !s.types[TypeMessageBatch] {
		return false
	}
	return s.chans == nil || s.chans[me.Channel]
}

// pushMessages adds messages of one channel to its open batch, with
// their payloads copied into the subscription's arena (up to aliasMax);
// those beyond the buffer are dropped and counted, those beyond its
// bytes truncated, or dropped when even that does not fit.
func (s *Subscription) pushMessages(ms []MessageEvent) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	keep := min(len(ms), max(s.buffer-s.stream, 0))
	dropped := len(ms) - keep // the buffer is full: the newest are dropped
	if keep == 0 {
		s.dropLocked(dropped)
		s.mu.Unlock()
		return
	}
	b := s.batchLocked(ms[0].Channel)
	size := 0
	for i := range ms[:keep] {
		size += eventOverhead + ms[i].Bytes()
	}
	if s.bytes+size <= s.bufMax {
		// The usual case: all of them, as they are, then their payloads
		// copied.
		start := len(b.msgs)
		b.msgs = append(b.msgs, ms[:keep]...)
		for i := range b.msgs[start:] {
			s.own(&b.msgs[start+i])
		}
		s.stream += keep
		s.bytes += size
	} else {
		dropped += s.pushSome(b, ms[:keep])
	}
	if dropped > 0 {
		s.dropLocked(dropped)
	}
	s.unlockSignal()
}

// pushSome adds messages to b one by one within the bytes left: whole,
// truncated, or not at all; it returns the number not added.
func (s *Subscription) pushSome(b *msgBatch, ms []MessageEvent) (dropped int) {
	for i := range ms {
		me := &ms[i]
		if size := eventOverhead + me.Bytes(); s.bytes+size <= s.bufMax {
			b.msgs = append(b.msgs, *me)
			s.own(&b.msgs[len(b.msgs)-1])
			s.stream++
			s.bytes += size
			continue
		}
		t := me.Truncate(PreviewBytes)
		if size := eventOverhead + t.Bytes(); s.bytes+size <= s.bufMax {
			b.msgs = append(b.msgs, t)
			s.stream++
			s.bytes += size
			continue
		}
		dropped++
	}
	return dropped
}

// own makes a queued message's payload (up to aliasMax) a copy in the
// arena.
func (s *Subscription) own(me *MessageEvent) {
	if n := len(me.Payload); n > 0 && n <= aliasMax {
		me.Payload = s.arena.copy(me.Payload)
	}
	if n := len(me.Binary); n > 0 && n <= aliasMax {
		me.Binary = s.arena.copy(me.Binary)
	}
}

// pushMessage queues a message for a plain (not batched) subscriber:
// *boxed, the owned copy shared by the plain subscribers, made on first
// use (its payload copied into *group, see MessageEvent.own); or a
// truncated copy when that does not fit in the bytes left. It drops (and
// counts) what does not fit at all.
func (s *Subscription) pushMessage(me *MessageEvent, boxed *Event, group *copyGroup) {
	size := eventOverhead + me.Bytes()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var ev Event
	switch {
	case s.stream >= s.buffer:
	case s.bytes+size <= s.bufMax:
		if *boxed == nil {
			*boxed = me.own(group)
		}
		ev = *boxed
	default:
		t := me.Truncate(PreviewBytes)
		if tsize := eventOverhead + t.Bytes(); s.bytes+tsize <= s.bufMax {
			ev, size = t, tsize
		}
	}
	if ev == nil {
		s.dropLocked(1)
		s.mu.Unlock()
		return
	}
	s.noticeLocked()
	s.stream++
	s.bytes += size
	s.q = append(s.q, slot{ev: ev})
	s.live++
	s.unlockSignal()
}

// hasRoom reports whether a stream event of size bytes would be queued.
func (s *Subscription) hasRoom(size int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.stream < s.buffer && s.bytes+size <= s.bufMax
}

// drop counts n stream events dropped.
func (s *Subscription) drop(n int) {
	s.mu.Lock()
	if !s.closed {
		s.dropLocked(n)
	}
	s.mu.Unlock()
}

func (s *Subscription) dropLocked(n int) {
	s.dropped += uint64(n)
	s.unnoticed += uint64(n)
	s.broker.dropped.Add(uint64(n))
}

// batchLocked returns the open batch of channel, queueing a new one (after
// the notice of drops not yet reported) when there is none.
func (s *Subscription) batchLocked(channel Name) *msgBatch {
	b := s.last
	if b == nil || b.channel != channel {
		b = s.open[channel]
	}
	if b == nil {
		if s.unnoticed > 0 { // (checked here: the call's frame is not small)
			s.noticeLocked()
		}
		if n := len(s.free); n > 0 {
			b, s.free = s.free[n-1], s.free[:n-1]
			b.channel, b.msgs = channel, b.msgs[:0]
		} else {
			b = &msgBatch{channel: channel}
		}
		s.open[channel] = b
		s.q = append(s.q, slot{batch: b})
		s.live++
	}
	s.last = b
	return b
}

// unlockSignal releases s.mu after queueing and sends the Ready signal
// if none was sent since the last Drain.
func (s *Subscription) unlockSignal() {
	signal := !s.signaled
	s.signaled = true
	s.mu.Unlock()
	if signal {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

// noticeLocked queues a DroppedEvent for drops not yet reported.
func (s *Subscription) noticeLocked() {
	if s.unnoticed == 0 {
		return
	}
	k := stateKey{t: TypeDropped}
	n := s.unnoticed
	if i, ok := s.pending[k]; ok {
		n += s.q[i].ev.(DroppedEvent).Count
		s.q[i].dead = true
		s.q[i].ev = nil
		s.live--
	}
	s.pending[k] = len(s.q)
	s.q = append(s.q, slot{ev: DroppedEvent{Time: s.broker.now(), Count: n, Total: s.dropped}, state: true})
	s.live++
	s.unnoticed = 0
}

func (s *Subscription) push(ev Event) {
	key, state := keyOf(ev)
	size := 0
	if !state {
		size = eventBytes(ev)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if state {
		if i, ok := s.pending[key]; ok {
			// Move the subject's waiting state to the end.
			s.q[i].dead = true
			s.q[i].ev = nil
			s.live--
		}
	} else if s.stream >= s.buffer || s.bytes+size > s.bufMax {
		s.dropLocked(1)
		s.mu.Unlock()
		return
	}
	// Report drops before this event; a notice still waiting absorbs the
	// new count (so notices never pile up).
	s.noticeLocked()
	if state {
		s.pending[key] = len(s.q)
	} else {
		s.stream++
		s.bytes += size
	}
	s.q = append(s.q, slot{ev: ev, state: state})
	s.live++
	if dead := len(s.q) - s.live; dead > 64 && dead > s.live {
		s.compact()
	}
	s.unlockSignal()
}

// compact removes dead slots; s.mu is held.
func (s *Subscription) compact() {
	j := 0
	for _, sl := range s.q {
		if sl.dead {
			continue
		}
		if sl.batch != nil {
			s.q[j] = sl
			j++
			continue
		}
		if sl.state {
			k, _ := keyOf(sl.ev)
			if _, isDrop := sl.ev.(DroppedEvent); isDrop {
				k = stateKey{t: TypeDropped}
			}
			s.pending[k] = j
		}
		s.q[j] = sl
		j++
	}
	clear(s.q[j:])
	s.q = s.q[:j]
}

// Ready returns a channel that receives a value when events are waiting
// (after a Drain that found nothing new, it blocks until the next
// publish). It is never closed; select on [Subscription.Done] too.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Done returns a channel closed when the subscription ends (Close, the
// context given to Subscribe, or the manager's Close).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Drain appends every waiting event to dst, in order, and returns it.
func (s *Subscription) Drain(dst []Event) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drainLocked(dst)
}

func (s *Subscription) drainLocked(dst []Event) []Event {
	if s.recycle {
		// The caller is done with the batches of the previous Drain.
		for _, b := range s.lent {
			if cap(b.msgs) <= 4*s.buffer {
				clear(b.msgs)
				s.free = append(s.free, b)
			}
		}
		clear(s.lent)
		s.lent = s.lent[:0]
	}
	s.arena.drained(s.recycle)
	for _, sl := range s.q {
		switch {
		case sl.dead:
		case sl.batch != nil:
			b := sl.batch
			dst = append(dst, MessageBatchEvent{Time: b.msgs[0].Time, Channel: b.channel, Messages: b.msgs})
			if s.recycle {
				s.lent = append(s.lent, b)
			}
		default:
			dst = append(dst, sl.ev)
		}
	}
	clear(s.open)
	s.last = nil
	if s.unnoticed > 0 {
		// The drops came after everything that was waiting.
		dst = append(dst, DroppedEvent{Time: s.broker.now(), Count: s.unnoticed, Total: s.dropped})
		s.unnoticed = 0
	}
	clear(s.q)
	if cap(s.q) > 4*s.buffer {
		s.q = nil
	} else {
		s.q = s.q[:0]
	}
	clear(s.pending)
	s.live, s.stream, s.bytes = 0, 0, 0
	s.signaled = false
	return dst
}

// arenaChunk is the size of the chunks of a subscription's arena.
const arenaChunk = 64 << 10

// subArena holds the copies of the payloads (up to aliasMax) queued for
// a MessageBatches subscriber, in chunks of arenaChunk bytes, so that
// what a subscriber holds is what it was sent, not the client's slabs.
// Bytes are appended, never overwritten while lent: with Drain
// (recycle), the chunks given out by a Drain come back at the next one;
// otherwise they are the consumer's.
type subArena struct {
	cur  []byte   // the chunk being filled
	full [][]byte // chunks filled since the last Drain
	lent [][]byte // chunks given out by the last Drain (recycle)
	free [][]byte // chunks to reuse (recycle)
}

// maxFreeChunks bounds the chunks an arena keeps for reuse.
const maxFreeChunks = 16

// copy returns a copy of p (at most arenaChunk bytes) in the arena.
func (a *subArena) copy(p []byte) []byte {
	if cap(a.cur)-len(a.cur) < len(p) {
		if a.cur != nil {
			a.full = append(a.full, a.cur)
		}
		if n := len(a.free); n > 0 {
			a.cur, a.free = a.free[n-1][:0], a.free[:n-1]
		} else {
			a.cur = make([]byte, 0, max(arenaChunk, len(p)))
		}
	}
	off := len(a.cur)
	a.cur = append(a.cur, p...)
	return a.cur[off:len(a.cur):len(a.cur)]
}

// drained is called by Drain: the bytes queued so far are given out.
func (a *subArena) drained(recycle bool) {
	if recycle {
		// The chunks of the last Drain come back; this one's are lent.
		for _, c := range a.lent {
			if len(a.free) < maxFreeChunks {
				a.free = append(a.free, c)
			}
		}
		clear(a.lent)
		a.lent = append(a.lent[:0], a.full...)
		if a.cur != nil {
			a.lent = append(a.lent, a.cur)
			a.cur = nil
		}
	}
	// Without recycle the consumer owns what it got, and cur goes on
	// filling after it.
	clear(a.full)
	a.full = a.full[:0]
}

// Len returns the number of events waiting.
func (s *Subscription) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// Dropped returns the number of events dropped for this subscriber.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close ends the subscription: Events' channel is closed after the
// events already waiting have been delivered or abandoned. Close is
// idempotent.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	if s.stopCtx != nil {
		s.stopCtx()
	}
	s.broker.remove(s)
	close(s.done)
}

// Events returns a channel of events (buffered: up to 256 ready at
// once), fed by a goroutine of the subscription that ends (closing the
// channel) when the subscription ends. Events not yet on the channel are
// abandoned at that point.
func (s *Subscription) Events() <-chan Event {
	s.pumpOnce.Do(func() {
		s.mu.Lock()
		s.recycle = false // batches sent on the channel are the consumer's
		s.mu.Unlock()
		s.out = make(chan Event, min(s.buffer, 256))
		s.pumpDone = make(chan struct{})
		go s.pump()
	})
	return s.out
}

func (s *Subscription) pump() {
	defer close(s.pumpDone)
	defer close(s.out)
	var batch []Event
	for {
		select {
		case <-s.ready:
		case <-s.done:
			return
		}
		batch = s.Drain(batch[:0])
		for i, ev := range batch {
			select {
			case s.out <- ev:
			case <-s.done:
				clear(batch)
				return
			}
			batch[i] = nil
		}
	}
}

// Wait blocks until the Events goroutine (if started) has ended; call
// after Close. It lets tests and orderly shutdowns prove nothing is left
// running.
func (s *Subscription) Wait() {
	<-s.done
	s.pumpOnce.Do(func() {
		// Events was never called: nothing to wait for, and it must not
		// start now.
		s.out = make(chan Event, min(s.buffer, 256))
		close(s.out)
		s.pumpDone = make(chan struct{})
		close(s.pumpDone)
	})
	<-s.pumpDone
}
