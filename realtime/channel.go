package realtime

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"rtm/realtime/protocol"
)

// ChannelStats are a channel's counters.
type ChannelStats struct {
	// MessagesIn and BytesIn count frames delivered to the channel
	// (broadcasts, presence, changes, system, replies, ...).
	MessagesIn, BytesIn uint64
	// MessagesOut and BytesOut count frames queued by the channel.
	MessagesOut, BytesOut uint64
	// Dropped counts events dropped because the consumer was slow.
	Dropped uint64
	// PresenceTruncated counts what the presence state did not keep
	// because of its limits (see [Presence.Truncation]).
	PresenceTruncated PresenceTruncation
	// LastMessage is when the last frame arrived (zero when none).
	LastMessage time.Time
}

// SystemError is a system message with status "error", the reason of
// the channel's shutdown when the server then closes it.
type SystemError struct {
	protocol.System
}

func (e *SystemError) Error() string {
	return fmt.Sprintf("realtime: %s error on %s: %s", e.Extension, e.Channel, e.Message)
}

// Channel is a channel on a topic of a [Socket]. It is safe for
// concurrent use. Its state lives in the socket and is guarded by the
// socket's lock.
type Channel struct {
	s        *Socket
	topic    string
	cfg      ChannelConfig
	timeout  time.Duration
	q        *queue[Event]
	presence *Presence

	// Guarded by s.mu.
	state        ChannelState
	removed      bool
	joinRef      string
	joinToken    string // the token the server holds for this join
	joinPush     *push
	rejoinTimer  *time.Timer
	rejoinGen    uint64
	rejoinTries  int
	ids          []int64 // server ids of the bindings, from the last join reply
	waiters      []chan error
	closeWaiters []chan error
	systemErr    error
	lastErr      error
	names        map[string]string // interned broadcast event names

	// Counters, guarded by s.mu.
	msgsIn, bytesIn, msgsOut, bytesOut uint64
	lastMsg                            time.Time
}

// maxInternedNames bounds the broadcast event names a channel interns.
const maxInternedNames = 256

// Channel returns the channel for name on this socket, creating it. name
// is the sub-topic ("room1" → topic "realtime:room1"); a name that starts
// with "realtime:" is taken as the topic. Like realtime-js there is one
// channel per topic: a second call returns the existing channel and
// ignores cfg. A new channel is closed until [Channel.Subscribe].
func (s *Socket) Channel(name string, cfg ChannelConfig) (*Channel, error) {
	topic := name
	if !strings.HasPrefix(topic, protocol.TopicPrefix) {
		topic = protocol.Topic(name)
	}
	if len(topic) > 255 {
		return nil, fmt.Errorf("%w: topic %q is longer than 255 bytes", ErrInvalidConfig, topic)
	}
	if cfg.OnEvent != nil && cfg.OnEvents != nil {
		return nil, fmt.Errorf("%w: channel %q sets both OnEvent and OnEvents", ErrInvalidConfig, topic)
	}
	if cfg.Broadcast.Replay != nil && !cfg.Private {
		return nil, fmt.Errorf("%w: replay on public channel %q: it must be private", ErrInvalidConfig, topic)
	}
	for i, b := range cfg.PostgresChanges {
		for _, o := range cfg.PostgresChanges[:i] {
			if samePostgresBinding(b, o) {
				return nil, fmt.Errorf("%w: duplicate postgres_changes binding %d on %q (the server would collapse it)", ErrInvalidConfig, i, topic)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if ch := s.channels[topic]; ch != nil {
		return ch, nil
	}
	cfg.PostgresChanges = append([]PostgresBinding(nil), cfg.PostgresChanges...)
	ch := &Channel{s: s, topic: topic, cfg: cfg, timeout: cfg.PushTimeout}
	if ch.timeout <= 0 {
		ch.timeout = s.opts.PushTimeout
	}
	limits := queueLimits{count: cfg.EventBuffer, bytes: cfg.EventBufferBytes}
	if limits.count <= 0 {
		limits.count = s.opts.EventBuffer
	}
	if limits.bytes <= 0 {
		limits.bytes = s.opts.EventBufferBytes
	}
	switch {
	case cfg.OnEvent != nil:
		ch.q = newQueue(cfg.OnEvent, limits, &s.dwg)
	case cfg.OnEvents != nil:
		ch.q = newBatchQueue(cfg.OnEvents, limits, &s.dwg)
	}
	ch.presence = newPresence(cfg.PresenceLimits)
	s.channels[topic] = ch
	return ch, nil
}

// Topic returns the wire topic ("realtime:room1").
func (ch *Channel) Topic() string { return ch.topic }

// Name returns the sub-topic ("room1").
func (ch *Channel) Name() string { return protocol.SubTopic(ch.topic) }

// Socket returns the channel's socket.
func (ch *Channel) Socket() *Socket { return ch.s }

// Config returns the channel's configuration.
func (ch *Channel) Config() ChannelConfig {
	c := ch.cfg
	c.PostgresChanges = append([]PostgresBinding(nil), c.PostgresChanges...)
	return c
}

// State returns the channel state.
func (ch *Channel) State() ChannelState {
	ch.s.mu.Lock()
	defer ch.s.mu.Unlock()
	return ch.state
}

// JoinRef returns the ref of the current (or last) join; empty before the
// first one.
func (ch *Channel) JoinRef() string {
	ch.s.mu.Lock()
	defer ch.s.mu.Unlock()
	return ch.joinRef
}

// LastError returns the reason of the last CHANNEL_ERROR, TIMED_OUT or
// server close (nil when none).
func (ch *Channel) LastError() error {
	ch.s.mu.Lock()
	defer ch.s.mu.Unlock()
	return ch.lastErr
}

// ServerIDs returns the server ids of the postgres_changes bindings from
// the last successful join (0 for a binding without one).
func (ch *Channel) ServerIDs() []int64 {
	ch.s.mu.Lock()
	defer ch.s.mu.Unlock()
	return append([]int64(nil), ch.ids...)
}

// Presence returns the channel's presence state.
func (ch *Channel) Presence() *Presence { return ch.presence }

// Stats returns the channel's counters.
func (ch *Channel) Stats() ChannelStats {
	ch.s.mu.Lock()
	st := ChannelStats{
		MessagesIn: ch.msgsIn, BytesIn: ch.bytesIn,
		MessagesOut: ch.msgsOut, BytesOut: ch.bytesOut,
		LastMessage: ch.lastMsg,
	}
	ch.s.mu.Unlock()
	if ch.q != nil {
		st.Dropped = ch.q.dropped.Load()
	}
	st.PresenceTruncated = ch.presence.Truncation()
	return st
}

// Subscribe joins the channel and waits for the outcome of that join: nil
// when SUBSCRIBED, a *JoinError when refused, an error wrapping
// ErrTimeout, ErrDisconnected, ErrBindingMismatch or ErrChannelClosed
// otherwise, or ctx's error. Like realtime-js, a failed join is retried
// on the RejoinAfter schedule while the socket is connected, and every
// channel rejoins when the socket reconnects; each outcome is also
// delivered as an [EventStatus] event.
//
// On a joined channel it returns nil at once; on a joining one it waits
// for the join under way; on an errored one it rejoins now (a manual
// retry). If the socket is not open, the join is sent when it opens.
func (ch *Channel) Subscribe(ctx context.Context) error {
	s := ch.s
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case ch.removed:
		s.mu.Unlock()
		return fmt.Errorf("subscribe %s: %w", ch.topic, ErrChannelClosed)
	case ch.state == ChannelJoined:
		s.mu.Unlock()
		return nil
	case ch.state == ChannelLeaving:
		s.mu.Unlock()
		return fmt.Errorf("subscribe %s: %w: leaving", ch.topic, ErrChannelClosed)
	case ch.state == ChannelClosed, ch.state == ChannelErrored:
		ch.stopRejoinTimerLocked()
		s.sendJoinLocked(ch)
	}
	w := make(chan error, 1)
	ch.waiters = append(ch.waiters, w)
	s.mu.Unlock()
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for i, o := range ch.waiters {
			if o == w {
				ch.waiters = append(ch.waiters[:i], ch.waiters[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("subscribe %s: %w", ch.topic, ctx.Err())
	}
}

// Leave leaves the channel (phx_leave) and waits until it is closed: on
// the server's ok, or when the leave times out (the error then wraps
// ErrTimeout; the channel is closed anyway). When the channel cannot push
// (not joined, or the socket is down) it closes at once. The channel is
// removed from the socket and delivers a final CLOSED event.
func (ch *Channel) Leave(ctx context.Context) error {
	s := ch.s
	s.mu.Lock()
	if ch.removed {
		s.mu.Unlock()
		return nil
	}
	wasJoined := ch.state == ChannelJoined
	ch.stopRejoinTimerLocked()
	s.cancelJoinPushLocked(ch)
	ch.state = ChannelLeaving
	ch.notifyWaitersLocked(fmt.Errorf("subscribe %s: %w: left", ch.topic, ErrChannelClosed))
	w := make(chan error, 1)
	ch.closeWaiters = append(ch.closeWaiters, w)
	if s.conn != nil {
		m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventLeave}
		_, err := s.pushLocked(ch, &m, false, true, func(p *push) {
			switch p.status {
			case protocol.StatusOK:
				s.closeChannelLocked(ch, nil, nil)
			case "timeout":
				s.closeChannelLocked(ch, nil, p.err)
			case protocol.StatusError:
				s.closeChannelLocked(ch, nil, p.err)
			}
		})
		if err != nil {
			s.closeChannelLocked(ch, nil, nil)
		}
	}
	if s.conn == nil || !wasJoined {
		s.closeChannelLocked(ch, nil, nil)
	}
	s.mu.Unlock()
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return fmt.Errorf("leave %s: %w", ch.topic, ctx.Err())
	}
}

// eventCost is what an event costs in a channel's queue besides what it
// points to; a status costs statusCost.
const (
	eventCost  = int(unsafe.Sizeof(Event{}))
	statusCost = eventCost + 128
)

// emitStatusLocked delivers a status event; statuses are forced (see
// queue): dropped only when the reserve beyond the limits is full too.
func (ch *Channel) emitStatusLocked(st SubscribeStatus, err error) {
	if ch.q == nil {
		return
	}
	if !ch.q.push(Event{Type: EventStatus, Time: ch.s.now(), Channel: ch, Status: st, Err: err, JoinRef: ch.joinRef}, statusCost, pushHard) {
		ch.countDrop()
	}
}

// emit delivers a stream event of size bytes (its frame's), dropping it
// when the consumer is behind.
func (ch *Channel) emit(ev Event, size int) {
	if ch.q == nil {
		return
	}
	if !ch.q.push(ev, eventCost+size, pushDrop) {
		ch.countDrop()
	}
}

// countDrop counts an event dropped for a slow consumer.
func (ch *Channel) countDrop() {
	n := ch.s.st.drops.Add(1)
	if n&(n-1) == 0 { // log at powers of two
		ch.s.log.Warn("Consumer too slow, dropping events", logTopic, ch.topic, logCount, n)
	}
}

// internName returns the broadcast event name as a string, reusing the
// channel's copy of known names.
func (ch *Channel) internName(b []byte) string {
	if s, ok := ch.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(ch.names) < maxInternedNames {
		if ch.names == nil {
			ch.names = make(map[string]string)
		}
		ch.names[s] = s
	}
	return s
}
