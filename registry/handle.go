package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"rtm/realtime"
	"rtm/realtime/protocol"
)

// Handle is one reference to a channel of the registry, returned by the
// Join methods. Release it when done; the channel leaves when its last
// handle is released (unless kept alive). A Handle is safe for concurrent
// use; after Release its methods return ErrReleased.
type Handle struct {
	m    *Manager
	e    *entry
	name Name

	mu       sync.Mutex
	released bool
	ids      []uint64 // listeners owned by this handle
	debs     []*Debouncer
}

// Name returns the channel's name.
func (h *Handle) Name() Name { return h.name }

// Info returns the channel's info.
func (h *Handle) Info() (ChannelInfo, error) {
	if err := h.check(); err != nil {
		return ChannelInfo{}, err
	}
	return h.m.Info(h.name)
}

func (h *Handle) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return fmt.Errorf("%s: %w", h.name, ErrReleased)
	}
	return nil
}

// Release gives the reference back: the handle's listeners are removed
// and, if it was the last reference of a channel not kept alive, the
// presence is untracked and the channel left (phx_leave). Release is
// idempotent.
func (h *Handle) Release(ctx context.Context) error {
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return nil
	}
	h.released = true
	debs := h.debs
	h.mu.Unlock()
	for _, d := range debs {
		d.Stop()
	}
	m, e := h.m, h.e
	m.mu.Lock()
	if m.entries[e.name] != e || e.leaving != nil {
		m.mu.Unlock()
		return nil
	}
	// Listener slices are copy-on-write: the delivery goroutine reads
	// them without the lock.
	e.listeners.bcast = slices.DeleteFunc(slices.Clone(e.listeners.bcast), func(l *bcastListener) bool { return slices.Contains(h.ids, l.id) })
	e.listeners.pres = slices.DeleteFunc(slices.Clone(e.listeners.pres), func(l *presListener) bool { return slices.Contains(h.ids, l.id) })
	e.listeners.system = slices.DeleteFunc(slices.Clone(e.listeners.system), func(l *systemListener) bool { return slices.Contains(h.ids, l.id) })
	e.listeners.changes = slices.DeleteFunc(slices.Clone(e.listeners.changes), func(l *changeListener) bool { return slices.Contains(h.ids, l.id) })
	m.mu.Unlock()
	return m.release(ctx, e, false)
}

// Ready waits until the channel is connected (nil), has failed for good
// (an error wrapping ErrChannelFailed), has left (ErrReleased), or ctx is
// done.
func (h *Handle) Ready(ctx context.Context) error {
	if err := h.check(); err != nil {
		return err
	}
	m, e := h.m, h.e
	for {
		m.mu.Lock()
		switch {
		case m.entries[e.name] != e || e.leaving != nil:
			m.mu.Unlock()
			return fmt.Errorf("%s: %w", e.name, ErrReleased)
		case e.status == StatusConnected:
			m.mu.Unlock()
			return nil
		case e.status == StatusError:
			err := &ChannelError{Channel: e.name, Code: e.lastError.code, Reason: e.reason}
			m.mu.Unlock()
			return err
		}
		w := make(chan struct{})
		e.waiters = append(e.waiters, w)
		m.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", e.name, ctx.Err())
		}
	}
}

// Broadcast sends a broadcast with a JSON payload; see
// [Manager.Broadcast].
func (h *Handle) Broadcast(ctx context.Context, event string, payload json.RawMessage) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.m.broadcast(ctx, h.e, outMsg{event: event, payload: payload})
}

// BroadcastBinary sends a broadcast with a raw binary payload
// (serializer 2.0.0).
func (h *Handle) BroadcastBinary(ctx context.Context, event string, data []byte) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.m.broadcast(ctx, h.e, outMsg{event: event, payload: data, binary: true})
}

// Debounce returns a sender of event broadcasts that sends at most one
// per window, the latest payload winning (cursor positions). Sends run in
// the background; failures are logged and reported as ErrorEvents. The
// debouncer stops when the handle is released.
func (h *Handle) Debounce(event string, window time.Duration) (*Debouncer, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	m, e := h.m, h.e
	d := NewDebouncer(window, m.clk, func(v any) {
		p, _ := v.(json.RawMessage)
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		defer cancel()
		if err := m.broadcast(ctx, e, outMsg{event: event, payload: p}); err != nil {
			m.log.Warn("Debounced broadcast failed", KeyChannel, e.name.String(), KeyEvent, event, KeyErr, err)
		}
	})
	h.mu.Lock()
	h.debs = append(h.debs, d)
	h.mu.Unlock()
	m.mu.Lock()
	e.debounced = append(e.debounced, d)
	m.mu.Unlock()
	return d, nil
}

// Track tracks user on the channel (and again after every rejoin).
func (h *Handle) Track(ctx context.Context, user PresenceUser) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.m.track(ctx, h.e, user)
}

// Untrack stops tracking.
func (h *Handle) Untrack(ctx context.Context) error {
	if err := h.check(); err != nil {
		return err
	}
	return h.m.untrack(ctx, h.e)
}

// Presence returns the users present on the channel.
func (h *Handle) Presence() ([]PresenceUser, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.m.Presence(h.name)
}

// Broadcast sends event with a JSON payload (nil is {}) on the named
// channel. While the channel is not connected the broadcast goes into
// the channel's offline queue (bounded: ErrQueueFull beyond it, counted
// and reported) and is sent, in order, after the rejoin; nil is then
// returned at once. With Options.BroadcastRate it first waits for the
// rate limiter. With the channel's ack flag it waits for the server's
// acknowledgement.
func (m *Manager) Broadcast(ctx context.Context, name Name, event string, payload json.RawMessage) error {
	e, err := m.entry(name)
	if err != nil {
		return fmt.Errorf("broadcast on %s: %w", name, err)
	}
	return m.broadcast(ctx, e, outMsg{event: event, payload: payload})
}

// Track tracks user on the named channel; see [Handle.Track].
func (m *Manager) Track(ctx context.Context, name Name, user PresenceUser) error {
	e, err := m.entry(name)
	if err != nil {
		return fmt.Errorf("track on %s: %w", name, err)
	}
	return m.track(ctx, e, user)
}

// Untrack stops tracking on the named channel.
func (m *Manager) Untrack(ctx context.Context, name Name) error {
	e, err := m.entry(name)
	if err != nil {
		return fmt.Errorf("untrack on %s: %w", name, err)
	}
	return m.untrack(ctx, e)
}

func (m *Manager) entry(name Name) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	e := m.entries[name]
	if e == nil || e.leaving != nil {
		return nil, ErrNotFound
	}
	return e, nil
}

func (m *Manager) broadcast(ctx context.Context, e *entry, msg outMsg) error {
	if msg.event == "" {
		return &PayloadError{Reason: "a broadcast needs an event name"}
	}
	if len(msg.event) > 255 {
		return &PayloadError{Reason: "broadcast event name longer than 255 bytes", Payload: json.RawMessage(msg.event[:60])}
	}
	if !msg.binary {
		if len(msg.payload) == 0 {
			msg.payload = json.RawMessage("{}")
		}
		if !protocol.Valid(msg.payload) {
			return &PayloadError{Reason: "broadcast payload is not valid JSON", Payload: msg.payload}
		}
	} else if m.vsn != protocol.V2 {
		return &PayloadError{Reason: "binary broadcasts need serializer 2.0.0"}
	}
	if err := m.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("broadcast on %s: %w", e.name, err)
	}
	var ch *realtime.Channel
	for {
		m.mu.Lock()
		if m.entries[e.name] != e || e.leaving != nil {
			m.mu.Unlock()
			return fmt.Errorf("broadcast on %s: %w", e.name, ErrNotFound)
		}
		ch = e.ch
		if e.status != StatusConnected || ch == nil {
			err := m.enqueueLocked(e, msg)
			m.mu.Unlock()
			return err
		}
		if !e.outbox.flushing && len(e.outbox.queue) == 0 {
			m.mu.Unlock()
			break
		}
		// Connected with queued broadcasts: they go first; wait for them.
		if !e.outbox.flushing {
			e.outbox.flushing = true
			m.wg.Add(1)
			go m.flush(e, e.gen)
		}
		if e.outbox.flushDone == nil {
			e.outbox.flushDone = make(chan struct{})
		}
		w := e.outbox.flushDone
		m.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("broadcast on %s: %w", e.name, ctx.Err())
		}
	}
	err := m.send(ctx, ch, msg)
	if errors.Is(err, realtime.ErrNotJoined) || errors.Is(err, realtime.ErrChannelClosed) {
		// It went down in between: queue it.
		m.mu.Lock()
		err = m.enqueueLocked(e, msg)
		m.mu.Unlock()
		return err
	}
	if err != nil {
		m.publishError(e.name, "broadcast", "", err.Error())
		return fmt.Errorf("broadcast on %s: %w", e.name, err)
	}
	m.sentLocked(e, msg, true)
	return nil
}

func (m *Manager) send(ctx context.Context, ch *realtime.Channel, msg outMsg) error {
	if msg.binary {
		return ch.SendBinary(ctx, msg.event, msg.payload)
	}
	return ch.Send(ctx, msg.event, msg.payload)
}

// sentLocked counts a sent broadcast (lock taken when lock is true).
func (m *Manager) sentLocked(e *entry, msg outMsg, lock bool) {
	if lock {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
	m.msgsOut.Add(1)
	e.traffic.out++
	now := m.clk.Now()
	e.traffic.last = now
	me := MessageEvent{Time: now, Channel: e.name, Direction: Out, Kind: MessageBroadcast, Event: msg.event, Size: len(msg.payload)}
	if msg.binary {
		me.Binary = msg.payload
	} else {
		me.Payload = msg.payload
	}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
}

// enqueueLocked puts msg in e's offline queue.
func (m *Manager) enqueueLocked(e *entry, msg outMsg) error {
	if m.opts.OfflineQueue < 0 {
		return fmt.Errorf("broadcast on %s: %w (the offline queue is off)", e.name, realtime.ErrNotJoined)
	}
	size := len(msg.event) + len(msg.payload)
	if full := len(e.outbox.queue) >= m.opts.OfflineQueue; full || e.outbox.bytes+size > m.opts.OfflineQueueBytes {
		e.outbox.dropped++
		m.queueDrops++
		n := e.outbox.dropped
		why := fmt.Sprintf("%d broadcasts waiting", len(e.outbox.queue))
		if !full {
			why = fmt.Sprintf("%d of %d bytes used, this one is %d", e.outbox.bytes, m.opts.OfflineQueueBytes, size)
		}
		m.publishErrorLocked(e.name, "broadcast", "QueueFull", fmt.Sprintf("offline queue full (%s); broadcast %q refused", why, msg.event))
		m.publishStateLocked(e, "offline queue full")
		m.log.Warn("Offline queue full, broadcast refused", KeyChannel, e.name.String(), KeyEvent, msg.event, "queued", len(e.outbox.queue),
			"queued_bytes", e.outbox.bytes, "size", size, "refused", n)
		return fmt.Errorf("broadcast on %s: %w (%s)", e.name, ErrQueueFull, why)
	}
	msg.payload = append([]byte(nil), msg.payload...)
	e.outbox.queue = append(e.outbox.queue, msg)
	e.outbox.bytes += size
	me := MessageEvent{Time: m.clk.Now(), Channel: e.name, Direction: Out, Kind: MessageBroadcast, Event: msg.event, Size: len(msg.payload), Queued: true}
	if msg.binary {
		me.Binary = msg.payload
	} else {
		me.Payload = msg.payload
	}
	m.broker.publish(me)
	m.publishStateLocked(e, "broadcast queued")
	m.log.Debug("Broadcast queued while the channel is down", KeyChannel, e.name.String(), KeyEvent, msg.event, "queued", len(e.outbox.queue))
	return nil
}

// endFlushLocked ends a flush and wakes the broadcasts waiting for it.
func (e *entry) endFlushLocked() {
	e.outbox.flushing = false
	if e.outbox.flushDone != nil {
		close(e.outbox.flushDone)
		e.outbox.flushDone = nil
	}
}

// flush sends e's offline queue in order after a join.
func (m *Manager) flush(e *entry, gen uint64) {
	defer m.wg.Done()
	sent := 0
	for {
		m.mu.Lock()
		if e.gen != gen || e.leaving != nil || m.closed || e.status != StatusConnected || e.ch == nil || len(e.outbox.queue) == 0 {
			e.endFlushLocked()
			n := len(e.outbox.queue)
			m.mu.Unlock()
			if sent > 0 {
				m.log.Info("Offline queue flushed", KeyChannel, e.name.String(), "sent", sent, "left", n)
			}
			return
		}
		msg := e.outbox.queue[0]
		ch := e.ch
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(m.ctx, 15*time.Second)
		err := m.send(ctx, ch, msg)
		cancel()
		m.mu.Lock()
		if err != nil {
			e.endFlushLocked()
			m.mu.Unlock()
			if !errors.Is(err, realtime.ErrNotJoined) && !errors.Is(err, realtime.ErrChannelClosed) {
				m.log.Warn("Offline queue flush failed", KeyChannel, e.name.String(), KeyErr, err)
			}
			return
		}
		if len(e.outbox.queue) > 0 {
			e.outbox.bytes -= len(e.outbox.queue[0].event) + len(e.outbox.queue[0].payload)
			e.outbox.queue[0] = outMsg{}
			e.outbox.queue = e.outbox.queue[1:]
		}
		m.sentLocked(e, msg, false)
		sent++
		if len(e.outbox.queue) == 0 {
			m.publishStateLocked(e, "offline queue flushed")
		}
		m.mu.Unlock()
	}
}

func (m *Manager) track(ctx context.Context, e *entry, user PresenceUser) error {
	if user.UserID == "" {
		return &PayloadError{Reason: "track needs a user id"}
	}
	payload, err := trackPayload(user, m.clk.Now())
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.entries[e.name] != e || e.leaving != nil {
		m.mu.Unlock()
		return fmt.Errorf("track on %s: %w", e.name, ErrNotFound)
	}
	if e.cfg.PresenceKey != user.UserID {
		// The presence key is the user id: a channel joined with another
		// key (or none, when the server picks one) rejoins with the
		// user's, unless it already tracks someone else.
		if e.tracked != nil && e.tracked.user.UserID != user.UserID {
			other := e.tracked.user.UserID
			m.mu.Unlock()
			return fmt.Errorf("registry: track on %s: already tracking %q on this channel; untrack first", e.name, other)
		}
		old := e.cfg.PresenceKey
		e.cfg.PresenceKey = user.UserID
		e.cfg.Presence = true
		e.tracked = &tracked{user: user, payload: payload}
		m.publishStateLocked(e, "tracking "+user.UserID)
		m.mu.Unlock()
		m.log.Info("Rejoining with the user's presence key", KeyChannel, e.name.String(), KeyUserID, user.UserID, "previous_key", old)
		m.recreate(e) // the join then tracks the user
		return nil
	}
	e.tracked = &tracked{user: user, payload: payload}
	connected := e.status == StatusConnected && e.ch != nil
	ch := e.ch
	m.publishStateLocked(e, "tracking "+user.UserID)
	m.mu.Unlock()
	if !connected {
		m.log.Info("Presence will be tracked on join", KeyChannel, e.name.String(), KeyUserID, user.UserID)
		return nil
	}
	if err := ch.Track(ctx, payload); err != nil {
		m.publishError(e.name, "track", "", err.Error())
		return fmt.Errorf("track on %s: %w", e.name, err)
	}
	m.mu.Lock()
	m.msgsOut.Add(1)
	e.traffic.out++
	me := MessageEvent{Time: m.clk.Now(), Channel: e.name, Direction: Out, Kind: MessagePresence, Event: "track", Payload: payload, Size: len(payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	m.mu.Unlock()
	m.log.Info("Tracking presence", KeyChannel, e.name.String(), KeyUserID, user.UserID)
	return nil
}

func (m *Manager) untrack(ctx context.Context, e *entry) error {
	m.mu.Lock()
	if m.entries[e.name] != e || e.leaving != nil {
		m.mu.Unlock()
		return fmt.Errorf("untrack on %s: %w", e.name, ErrNotFound)
	}
	was := e.tracked
	e.tracked = nil
	connected := e.status == StatusConnected && e.ch != nil
	ch := e.ch
	m.publishStateLocked(e, "untracked")
	m.mu.Unlock()
	if was == nil || !connected {
		return nil
	}
	if err := ch.Untrack(ctx); err != nil {
		m.publishError(e.name, "untrack", "", err.Error())
		return fmt.Errorf("untrack on %s: %w", e.name, err)
	}
	m.mu.Lock()
	m.msgsOut.Add(1)
	e.traffic.out++
	m.mu.Unlock()
	m.log.Info("Untracked presence", KeyChannel, e.name.String(), KeyUserID, was.user.UserID)
	return nil
}
