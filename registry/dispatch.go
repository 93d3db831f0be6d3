package registry

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"time"

	"rtm/realtime"
	"rtm/realtime/protocol"
)

// Broadcast is a broadcast received on a channel, as given to the
// callbacks of [OnBroadcast].
type Broadcast struct {
	Channel Name
	// Event is the user event; Payload the user payload (JSON), or raw
	// bytes when Binary. Meta is the optional metadata.
	Event   string
	Payload json.RawMessage
	Binary  bool
	Meta    json.RawMessage
	Time    time.Time
}

// Change is a postgres change received on a subscription channel.
type Change struct {
	Channel Name
	// Type is "INSERT", "UPDATE" or "DELETE".
	Type            string
	Schema, Table   string
	CommitTimestamp string
	Columns         []protocol.Column
	// Record is the row after the change, OldRecord before it, as sent
	// (strings for most types; see New and Old).
	Record, OldRecord json.RawMessage
	// Errors is what the server reported ("Error 401: Unauthorized").
	Errors []string
	// IDs are the server ids of the bindings matched.
	IDs  []int64
	Time time.Time
}

// New returns Record converted by column type, as realtime-js does.
func (c Change) New() (map[string]any, error) {
	if len(c.Record) == 0 {
		return map[string]any{}, nil
	}
	return realtime.ConvertRecord(c.Columns, c.Record)
}

// Old returns OldRecord converted by column type.
func (c Change) Old() (map[string]any, error) {
	if len(c.OldRecord) == 0 {
		return map[string]any{}, nil
	}
	return realtime.ConvertRecord(c.Columns, c.OldRecord)
}

// onChannelEvents handles a batch of events of e's client channel of
// generation gen. It runs on the channel's delivery goroutine. A run of
// broadcasts, the high-rate case, takes the manager's lock once and
// reaches each subscriber as one batch; other events go one by one.
func (m *Manager) onChannelEvents(e *entry, gen uint64, evs []realtime.Event) {
	for i := 0; i < len(evs); {
		if evs[i].Type != realtime.EventBroadcast {
			m.onChannelEvent(e, gen, &evs[i])
			i++
			continue
		}
		j := i + 1
		for j < len(evs) && evs[j].Type == realtime.EventBroadcast {
			j++
		}
		m.onBroadcasts(e, gen, evs[i:j])
		i = j
	}
}

// onBroadcasts handles a run of broadcasts of e's client channel: the
// counters, the channel's message ring, the subscribers, then (without
// the lock) the listeners.
func (m *Manager) onBroadcasts(e *entry, gen uint64, evs []realtime.Event) {
	m.mu.Lock()
	// An entry leaves the registry only after e.leaving is set.
	if e.gen != gen || e.leaving != nil || m.closed {
		m.mu.Unlock()
		return
	}
	m.msgsIn.Add(uint64(len(evs)))
	e.traffic.in += uint64(len(evs))
	e.traffic.last = evs[len(evs)-1].Time
	if e.msgs.on() {
		for i := range evs {
			keepBroadcast(&e.msgs, &evs[i])
		}
	}
	if m.broker.wantMessages() {
		// Built in a buffer that stays in cache, copied once per
		// subscriber (whose copies own their payloads); cleared after,
		// so that it keeps no frame alive.
		if len(m.runMsgs) < len(evs) {
			m.runMsgs = make([]MessageEvent, max(len(evs), 64))
		}
		msgs := m.runMsgs[:len(evs)]
		for i := range evs {
			fillMessage(&msgs[i], e, &evs[i])
		}
		m.broker.publishMessages(msgs)
		for i := range msgs {
			msgs[i].Payload, msgs[i].Binary = nil, nil
		}
	}
	ls := e.listeners.bcast
	m.mu.Unlock()
	if len(ls) > 0 {
		callBroadcastListeners(e.name, ls, evs)
	}
}

// callBroadcastListeners calls the listeners of a run of broadcasts. Not
// inlined: its Broadcast value stays out of onBroadcasts' frame, which is
// on the stack while subscribers are fed.
//
//go:noinline
func callBroadcastListeners(name Name, ls []*bcastListener, evs []realtime.Event) {
	for i := range evs {
		b := &evs[i].Broadcast
		msg := Broadcast{Channel: name, Event: b.Event, Payload: b.Payload, Binary: b.Binary, Meta: b.Meta, Time: evs[i].Time}
		for _, l := range ls {
			if l.event == "*" || l.event == b.Event || strings.EqualFold(l.event, b.Event) {
				l.fn(msg)
			}
		}
	}
}

// keepBroadcast puts a copy of a received broadcast in a channel's
// ring (which is on).
func keepBroadcast(r *msgRing, ev *realtime.Event) {
	b := &ev.Broadcast
	rec := r.reserve(b.Event, b.Payload, b.Binary)
	rec.time = ev.Time
	rec.kind = MessageBroadcast
	rec.size = len(b.Payload)
	rec.dir = In
	rec.binary = b.Binary
	rec.queued = false
}

// fillMessage sets *me to the MessageEvent of e's received broadcast ev.
// (Field by field: a composite literal would put a temporary on the
// stack of the delivery goroutine, which starts small; see onBroadcasts.)
func fillMessage(me *MessageEvent, e *entry, ev *realtime.Event) {
	b := &ev.Broadcast
	me.Time = ev.Time
	me.Channel = e.name
	me.Direction = In
	me.Kind = MessageBroadcast
	me.Event = b.Event
	me.Size = len(b.Payload)
	me.Queued = false
	if b.Binary {
		me.Payload, me.Binary = nil, b.Payload
	} else {
		me.Payload, me.Binary = b.Payload, nil
	}
}

// onChannelEvent handles an event of e's client channel of generation
// gen other than a broadcast (onBroadcasts takes those).
func (m *Manager) onChannelEvent(e *entry, gen uint64, ev *realtime.Event) {
	var calls []func()
	m.mu.Lock()
	// An entry leaves the registry only after e.leaving is set.
	if e.gen != gen || e.leaving != nil || m.closed {
		m.mu.Unlock()
		return
	}
	switch ev.Type {
	case realtime.EventStatus:
		m.onStatusLocked(e, gen, *ev)
	case realtime.EventPresence:
		calls = m.onPresenceLocked(e, *ev)
	case realtime.EventPostgresChange:
		calls = m.onChangeLocked(e, *ev)
	case realtime.EventSystem:
		calls = m.onSystemLocked(e, *ev)
	}
	m.mu.Unlock()
	for _, c := range calls {
		c()
	}
}

// maxPresenceMembers is the users a presence cache holds at most: the
// client's MaxMembers.
func (m *Manager) maxPresenceMembers() int {
	if n := m.opts.PresenceLimits.MaxMembers; n > 0 {
		return n
	}
	return realtime.DefaultPresenceMaxMembers
}

// onPresenceLocked updates the presence cache.
func (m *Manager) onPresenceLocked(e *entry, ev realtime.Event) []func() {
	pe := ev.Presence
	if pe == nil {
		return nil
	}
	now := m.clk.Now()
	var out PresenceEvent
	switch pe.Kind {
	case realtime.PresenceJoin:
		if e.presence.resyncing && len(pe.Current) == 0 && e.presence.known(pe.Key, pe.Changed) {
			// A recreated channel's fresh state re-announces someone
			// who never left.
			return nil
		}
		u, ok := e.presence.join(pe.Key, pe.Metas, now)
		if !ok {
			return nil // beyond the cache's bound: counted, not told
		}
		u.Self = pe.Key == e.trackedKey()
		out = PresenceEvent{Time: ev.Time, Channel: e.name, Action: PresenceJoin, User: u, Count: e.presence.len(), Truncated: e.presence.truncation()}
		if len(pe.Current) == 0 {
			m.log.Info("User joined presence", KeyChannel, e.name.String(), KeyUserID, pe.Key, "name", u.Name, KeyCount, out.Count)
		} else {
			m.log.Debug("Presence updated", KeyChannel, e.name.String(), KeyUserID, pe.Key, "metas", u.Metas)
		}
	case realtime.PresenceLeave:
		u, gone := e.presence.leave(pe.Key, pe.Current)
		u.Self = pe.Key == e.trackedKey()
		out = PresenceEvent{Time: ev.Time, Channel: e.name, Action: PresenceLeave, User: u, Count: e.presence.len(), Truncated: e.presence.truncation()}
		if gone {
			m.log.Info("User left presence", KeyChannel, e.name.String(), KeyUserID, pe.Key, KeyCount, out.Count)
		} else {
			m.log.Debug("Presence meta left", KeyChannel, e.name.String(), KeyUserID, pe.Key, "metas", u.Metas)
		}
	case realtime.PresenceSync:
		var calls []func()
		if e.ch != nil {
			calls = m.syncPresenceLocked(e, ev.Time, now)
		}
		m.msgsIn.Add(1)
		e.traffic.in++
		e.traffic.last = ev.Time
		out = PresenceEvent{Time: ev.Time, Channel: e.name, Action: PresenceSync, Count: e.presence.len(), Truncated: e.presence.truncation()}
		level := slog.LevelDebug
		if !e.join.synced {
			level = slog.LevelInfo
		}
		e.join.synced = true
		m.log.Log(context.Background(), level, "Presence synced", KeyChannel, e.name.String(), KeyCount, out.Count)
		m.publishStateLocked(e, "presence synced")
		m.broker.publish(out)
		for _, l := range e.listeners.pres {
			fn := l.fn
			calls = append(calls, func() { fn(out) })
		}
		return calls
	default:
		return nil
	}
	m.broker.publish(out)
	calls := make([]func(), 0, len(e.listeners.pres))
	for _, l := range e.listeners.pres {
		fn := l.fn
		calls = append(calls, func() { fn(out) })
	}
	return calls
}

// syncPresenceLocked brings e's presence cache up to the client's state
// at a sync: the client's truncation, and a reconcile when needed (see
// presenceCache). A recreated channel's first sync also reports who left
// meanwhile; the listener calls are returned.
func (m *Manager) syncPresenceLocked(e *entry, at, now time.Time) []func() {
	p := e.ch.Presence()
	c := e.presence
	c.trunc = p.Truncation()
	dropped := e.ch.Stats().Dropped
	if !c.needsReconcile(dropped) {
		return nil
	}
	state := p.State()
	var calls []func()
	if c.resyncing {
		// Who left while the channel was recreated.
		for _, k := range c.missing(state) {
			u, _ := c.leave(k, nil)
			u.Self = k == e.trackedKey()
			left := PresenceEvent{Time: at, Channel: e.name, Action: PresenceLeave, User: u, Count: c.len(), Truncated: c.truncation()}
			m.log.Info("User left presence", KeyChannel, e.name.String(), KeyUserID, k, KeyCount, left.Count)
			m.broker.publish(left)
			for _, l := range e.listeners.pres {
				fn := l.fn
				calls = append(calls, func() { fn(left) })
			}
		}
		c.resyncing = false
	}
	c.reconcile(state, dropped, now)
	return calls
}

// reconcileDueLocked runs the reconciles put off by syncs (see
// presenceCache.needsReconcile), at a stats tick, and tells the new
// counts with a sync event.
func (m *Manager) reconcileDueLocked(now time.Time) {
	for _, e := range m.entries {
		c := e.presence
		if !c.due || e.ch == nil || e.leaving != nil {
			continue
		}
		c.reconcile(e.ch.Presence().State(), e.ch.Stats().Dropped, now)
		m.publishStateLocked(e, "presence synced")
		m.broker.publish(PresenceEvent{Time: now, Channel: e.name, Action: PresenceSync, Count: c.len(), Truncated: c.truncation()})
	}
}

func (m *Manager) onChangeLocked(e *entry, ev realtime.Event) []func() {
	c := ev.Change
	if c == nil {
		return nil
	}
	m.msgsIn.Add(1)
	e.traffic.in++
	e.traffic.last = ev.Time
	payload, _ := json.Marshal(c.ChangeData)
	me := MessageEvent{Time: ev.Time, Channel: e.name, Direction: In, Kind: MessagePostgresChanges, Event: c.Type, Payload: payload, Size: len(payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	change := Change{Channel: e.name, Type: c.Type, Schema: c.Schema, Table: c.Table, CommitTimestamp: c.CommitTimestamp,
		Columns: c.Columns, Record: c.Record, OldRecord: c.OldRecord, Errors: c.Errors, IDs: c.IDs, Time: ev.Time}
	var calls []func()
	for _, l := range e.listeners.changes {
		if slices.Contains(c.Bindings, l.binding) {
			fn := l.fn
			calls = append(calls, func() { fn(change) })
		}
	}
	return calls
}

func (m *Manager) onSystemLocked(e *entry, ev realtime.Event) []func() {
	s := ev.System
	if s == nil {
		return nil
	}
	m.msgsIn.Add(1)
	e.traffic.in++
	e.traffic.last = ev.Time
	payload, _ := json.Marshal(s)
	// The server's text, kept and repeated: cut (the payload has it
	// whole, within the byte bounds).
	text := clipText(s.Message, MaxTextBytes)
	me := MessageEvent{Time: ev.Time, Channel: e.name, Direction: In, Kind: MessageSystem, Event: text, Payload: payload, Size: len(payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	switch {
	case s.Status == protocol.StatusOK && s.Extension == "postgres_changes":
		e.join.ready = true
		m.publishStateLocked(e, "postgres changes ready")
		m.log.Info("Postgres changes ready", KeyChannel, e.name.String(), "message", s.Message)
	case s.Status == protocol.StatusError:
		e.lastError = errorInfo{msg: text, code: "system", at: m.clk.Now()}
		m.publishErrorLocked(e.name, "system", "", text)
		m.log.Warn("Channel system error", KeyChannel, e.name.String(), "extension", s.Extension, KeyErr, text)
	default:
		m.log.Debug("System message", KeyChannel, e.name.String(), "extension", s.Extension, "message", s.Message)
	}
	calls := make([]func(), 0, len(e.listeners.system))
	for _, l := range e.listeners.system {
		fn := l.fn
		calls = append(calls, func() { fn(me) })
	}
	return calls
}
