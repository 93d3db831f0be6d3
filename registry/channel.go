package registry

import (
	"encoding/json"
	"time"

	"rtm/realtime"
	"rtm/registry/clock"
)

// entry is one channel of the registry. All fields are guarded by the
// manager's mutex. The state of each concern is a sub-struct: the current
// join (join), the retry series (retry, see retry.go), the listener
// configurations that survive rejoins (listeners), the offline queue
// (outbox), the counters (traffic) and the last error.
type entry struct {
	name  Name
	topic string
	ch    *realtime.Channel // the client channel; nil until created, after a server close, or when given up
	gen   uint64            // bumped whenever ch is replaced or the entry leaves: events of older gens are ignored
	cfg   ChannelConfig
	pg    []realtime.PostgresBinding // postgres bindings in join order

	refs       int
	keepAlive  bool
	policy     Policy // per-channel override
	policySpec string // its Info().Spec
	waiters    []chan struct{}
	debounced  []*Debouncer

	status        Status
	reason        string
	lastPublished Status
	createdAt     time.Time
	joinRef       string
	join          joinState
	retry         retryState
	lastError     errorInfo
	traffic       traffic

	presence *presenceCache
	tracked  *tracked

	listeners listeners
	outbox    outbox

	msgs   msgRing
	frames arenaRing[rawFrame] // guarded by the manager's fmu

	leaving chan struct{} // closed when the leave is done
	detach  chan struct{} // closed when a detached client channel is gone
}

// joinState is what is known of the channel's joins.
type joinState struct {
	count       int       // successful joins
	at          time.Time // of the last one
	ready       bool      // postgres changes ready since the last join
	synced      bool      // a presence sync arrived since the last join
	ids         []int64   // the server ids of the postgres bindings
	tokenExpiry time.Time // of the token the channel joined with
}

// retryState is the channel's retry series (see failLocked and attempt).
type retryState struct {
	attempts    int         // spent in the series
	series      bool        // a series is under way
	reason      string      // what started it
	timer       clock.Timer // the next attempt's, or a breaker's hold
	nextAt      time.Time   // when the next attempt is due
	exhausted   bool        // the policy gave up
	inFlight    bool        // an attempt's join is on the wire
	heldSocket  bool        // waiting for the socket to reopen
	heldBreaker bool        // held by an open circuit breaker
}

// errorInfo is the channel's last error.
type errorInfo struct {
	msg, code string
	at        time.Time
}

// traffic counts the channel's messages.
type traffic struct {
	in, out uint64
	last    time.Time // the last message received
}

// listeners are the listener configurations of the channel: they belong
// to the entry, survive rejoins and are installed again on a re-created
// channel. Each has an id, which the handle that added it holds.
type listeners struct {
	nextID  uint64
	bcast   []*bcastListener
	pres    []*presListener
	changes []*changeListener
	system  []*systemListener
}

// outbox is the offline queue: the broadcasts made while the channel is
// not connected, flushed in order after the rejoin.
type outbox struct {
	queue     []outMsg
	bytes     int // event names and payloads in queue
	dropped   uint64
	flushing  bool
	flushDone chan struct{} // closed when the flush under way ends
}

type tracked struct {
	user    PresenceUser
	payload json.RawMessage
}

func (e *entry) trackedKey() string {
	if e.tracked == nil {
		return ""
	}
	return e.tracked.user.UserID
}

type outMsg struct {
	event   string
	payload []byte
	binary  bool
}

type bcastListener struct {
	id    uint64
	event string
	fn    func(Broadcast)
}

type presListener struct {
	id uint64
	fn func(PresenceEvent)
}

type changeListener struct {
	id      uint64
	binding int
	fn      func(Change)
}

type systemListener struct {
	id uint64
	fn func(MessageEvent)
}

func (e *entry) prevStatus() Status { return e.lastPublished }

// stopTimer cancels the next attempt, if one is scheduled.
func (r *retryState) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.nextAt = time.Time{}
}

// infoLocked builds the ChannelInfo of e.
func (m *Manager) infoLocked(e *entry) ChannelInfo {
	p := m.policyOf(e)
	info := ChannelInfo{
		Name: e.name, Topic: e.topic, Status: e.status, Reason: e.reason,
		CreatedAt: e.createdAt, JoinedAt: e.join.at, Joins: e.join.count, JoinRef: e.joinRef,
		Config: e.cfg, Ready: e.join.ready, RefCount: e.refs, KeepAlive: e.keepAlive,
		Attempts: e.retry.attempts, MaxAttempts: p.MaxAttempts(), NextAttemptAt: e.retry.nextAt, Policy: m.specOf(e),
		RetryReason: e.retry.reason, LastError: e.lastError.msg, LastErrorCode: e.lastError.code, LastErrorAt: e.lastError.at,
		MessagesIn: e.traffic.in, MessagesOut: e.traffic.out, LastMessageAt: e.traffic.last, TokenExpiry: e.join.tokenExpiry,
		PresenceCount: e.presence.len(), Tracked: e.tracked != nil, TrackedAs: e.trackedKey(),
		Queued: len(e.outbox.queue), QueueDropped: e.outbox.dropped,
		PresenceTruncated: e.presence.truncation(),
	}
	if e.ch != nil {
		info.ClientDropped = e.ch.Stats().Dropped
	}
	info.Config.Presence = e.cfg.Presence || len(e.listeners.pres) > 0
	info.Bindings = e.bindingsLocked()
	return info
}

func (e *entry) bindingsLocked() []Binding {
	var out []Binding
	events := map[string]int{}
	var order []string
	for _, l := range e.listeners.bcast {
		if _, ok := events[l.event]; !ok {
			order = append(order, l.event)
		}
		events[l.event]++
	}
	for _, ev := range order {
		out = append(out, Binding{Type: "broadcast", Event: ev, Listeners: events[ev]})
	}
	if e.cfg.Presence || len(e.listeners.pres) > 0 {
		out = append(out, Binding{Type: "presence", Listeners: len(e.listeners.pres)})
	}
	for i, b := range e.pg {
		n := 0
		for _, l := range e.listeners.changes {
			if l.binding == i {
				n++
			}
		}
		bd := Binding{Type: "postgres_changes", Event: b.Event, Schema: b.Schema, Table: b.Table, Filter: b.Filter, Listeners: n}
		if i < len(e.join.ids) {
			bd.ID = e.join.ids[i]
		}
		out = append(out, bd)
	}
	if len(e.listeners.system) > 0 {
		out = append(out, Binding{Type: "system", Listeners: len(e.listeners.system)})
	}
	return out
}

// publishStateLocked publishes e's state.
func (m *Manager) publishStateLocked(e *entry, reason string) {
	m.broker.publish(ChannelStateEvent{Time: m.clk.Now(), Channel: e.name, Status: e.status, Previous: e.prevStatus(),
		Reason: reason, Info: m.infoLocked(e)})
	e.lastPublished = e.status
}

func (m *Manager) publishErrorLocked(n Name, op, code, msg string) {
	m.broker.publish(ErrorEvent{Time: m.clk.Now(), Channel: n, Op: op, Code: code, Message: msg, Hint: Hint(code, msg)})
}

func (m *Manager) publishError(n Name, op, code, msg string) {
	m.mu.Lock()
	m.publishErrorLocked(n, op, code, msg)
	m.mu.Unlock()
}
