package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// broker fans the manager's events out to the subscriptions (each with
// its own bounded queue, see subscription.go) and keeps the history of
// Export. Publishing never blocks.
type broker struct {
	now     func() time.Time
	subs    atomic.Pointer[[]*Subscription]
	mu      sync.Mutex // serializes changes to subs
	dropped atomic.Uint64
	frames  atomic.Int32 // subscribers that want frames
	hist    eventRing
	// onFrames is called (without locks) when the first frame subscriber
	// arrives or the last one leaves.
	onFrames func()
}

func newBroker(now func() time.Time, history, historyBytes int) *broker {
	b := &broker{now: now}
	b.subs.Store(&[]*Subscription{})
	b.hist.ring = newBoundedRing[Event](history, historyBytes)
	return b
}

func (b *broker) subscribe(ctx context.Context, o SubscribeOptions) *Subscription {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	s := &Subscription{
		broker:  b,
		buffer:  o.Buffer,
		bufMax:  o.BufferBytes,
		frames:  o.Frames,
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: map[stateKey]int{},
		batches: o.MessageBatches,
		recycle: o.MessageBatches,
		open:    map[Name]*msgBatch{},
	}
	if len(o.Types) > 0 {
		s.types = map[EventType]bool{TypeDropped: true}
		for _, t := range o.Types {
			s.types[t] = true
		}
		if s.types[TypeFrame] {
			s.frames = true
		}
	}
	if len(o.Channels) > 0 {
		s.chans = map[Name]bool{}
		for _, n := range o.Channels {
			s.chans[n] = true
		}
	}
	b.mu.Lock()
	old := *b.subs.Load()
	subs := make([]*Subscription, len(old), len(old)+1)
	copy(subs, old)
	subs = append(subs, s)
	b.subs.Store(&subs)
	first := s.frames && b.frames.Add(1) == 1
	b.mu.Unlock()
	if first && b.onFrames != nil {
		b.onFrames()
	}
	s.stopCtx = context.AfterFunc(ctx, s.Close)
	return s
}

func (b *broker) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	subs := make([]*Subscription, 0, len(old))
	for _, x := range old {
		if x != s {
			subs = append(subs, x)
		}
	}
	b.subs.Store(&subs)
	last := s.frames && b.frames.Add(-1) == 0
	if last && b.onFrames != nil {
		defer b.onFrames()
	}
}

// wantFrames reports whether any subscriber asked for frames.
func (b *broker) wantFrames() bool { return b.frames.Load() > 0 }

// wantMessages reports whether a subscriber may want MessageEvents
// (which the history does not keep: the channels' rings do).
func (b *broker) wantMessages() bool { return len(*b.subs.Load()) > 0 }

// publishMessage hands a message to the subscribers that want it:
// copied into the batches of MessageBatches subscribers, boxed (once)
// for the others.
func (b *broker) publishMessage(me *MessageEvent) {
	b.publishMessages([]MessageEvent{*me})
}

// publishMessages is publishMessage for a run of messages of one channel,
// in order: one lock of each MessageBatches subscriber for the run.
func (b *broker) publishMessages(ms []MessageEvent) {
	if len(ms) == 0 {
		return
	}
	subs := *b.subs.Load()
	plain := false
	for _, s := range subs {
		if s.wantsMessage(&ms[0]) {
			if s.batches {
				s.pushMessages(ms)
			} else {
				plain = true
			}
		}
	}
	if !plain {
		return
	}
	group := newCopyGroup(ms) // the copies of the run's small payloads
	for i := range ms {
		var boxed Event // an owned copy, boxed once for every plain subscriber
		for _, s := range subs {
			if !s.batches && s.wantsMessage(&ms[i]) {
				s.pushMessage(&ms[i], &boxed, &group)
			}
		}
	}
}

// publishFrame hands the frame event that build returns to the
// subscribers that want frames, building it (masking and copying its
// size bytes) only if one of them has room for it.
func (b *broker) publishFrame(channel Name, size int, build func() FrameEvent) {
	probe := FrameEvent{Channel: channel}
	subs := *b.subs.Load()
	room := false
	for _, s := range subs {
		if s.wants(probe) && s.hasRoom(eventOverhead+size) {
			room = true
			break
		}
	}
	if !room {
		for _, s := range subs {
			if s.wants(probe) {
				s.drop(1)
			}
		}
		return
	}
	ev := build()
	for _, s := range subs {
		if s.wants(ev) {
			s.push(ev)
		}
	}
}

// publish hands ev to every subscriber that wants it, and to the history
// (all but messages and frames, which channels keep in their own rings).
func (b *broker) publish(ev Event) {
	if me, ok := ev.(MessageEvent); ok {
		b.publishMessage(&me)
		return
	}
	switch ev.(type) {
	case FrameEvent, MessageEvent:
	default:
		b.hist.add(ev)
	}
	for _, s := range *b.subs.Load() {
		if s.wants(ev) {
			s.push(ev)
		}
	}
}

// closeAll ends every subscription.
func (b *broker) closeAll() {
	for _, s := range *b.subs.Load() {
		s.Close()
	}
}

func channelOf(ev Event) (Name, bool) {
	switch e := ev.(type) {
	case ChannelStateEvent:
		return e.Channel, true
	case PresenceEvent:
		return e.Channel, true
	case MessageEvent:
		return e.Channel, true
	case MessageBatchEvent:
		return e.Channel, true
	case RetryEvent:
		return e.Channel, e.Scope == ScopeChannel
	case ErrorEvent:
		return e.Channel, !e.Channel.IsZero()
	case FrameEvent:
		return e.Channel, !e.Channel.IsZero()
	}
	return Name{}, false
}

// eventRing keeps the last events for Export, bounded by count and
// bytes.
type eventRing struct {
	mu   sync.Mutex
	ring boundedRing[Event] // grows to its size as events come
}

func (r *eventRing) add(ev Event) {
	if r.ring.maxN <= 0 {
		return
	}
	size := eventBytes(ev)
	r.mu.Lock()
	r.ring.add(ev, size)
	r.mu.Unlock()
}

func (r *eventRing) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ring.last(0)
}
