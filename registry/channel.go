package registry

import (
	"encoding/json"
	"time"

	"rtm/realtime"
	"rtm/registry/clock"
)

// entry is one channel of the registry. All fields are guarded by the
// manager's mutex.
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

	status      Status
	reason      string
	createdAt   time.Time
	joinedAt    time.Time
	joins       int
	joinRef     string
	ready       bool
	synced      bool // a presence sync arrived since the last join
	ids         []int64
	tokenExpiry time.Time

	// Retry state.
	attempts    int
	series      bool
	retryReason string
	timer       clock.Timer
	nextAt      time.Time
	exhausted   bool
	inFlight    bool
	heldSocket  bool
	heldBreaker bool

	lastPublished Status

	lastErr, lastCode string
	lastErrAt         time.Time

	msgsIn, msgsOut uint64
	lastMsg         time.Time

	presence *presenceCache
	tracked  *tracked

	nextID    uint64
	bcast     []*bcastListener
	pres      []*presListener
	changes   []*changeListener
	system    []*systemListener
	waiters   []chan struct{}
	debounced []*Debouncer

	queue        []outMsg
	queueBytes   int // event names and payloads in queue
	queueDropped uint64
	flushing     bool
	flushDone    chan struct{} // closed when the flush under way ends

	msgs   msgRing
	frames arenaRing[rawFrame] // guarded by the manager's fmu

	leaving chan struct{} // closed when the leave is done
	detach  chan struct{} // closed when a detached client channel is gone
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

func (e *entry) stopTimerLocked() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.nextAt = time.Time{}
}

// infoLocked builds the ChannelInfo of e.
func (m *Manager) infoLocked(e *entry) ChannelInfo {
	p := m.policyOf(e)
	info := ChannelInfo{
		Name: e.name, Topic: e.topic, Status: e.status, Reason: e.reason,
		CreatedAt: e.createdAt, JoinedAt: e.joinedAt, Joins: e.joins, JoinRef: e.joinRef,
		Config: e.cfg, Ready: e.ready, RefCount: e.refs, KeepAlive: e.keepAlive,
		Attempts: e.attempts, MaxAttempts: p.MaxAttempts(), NextAttemptAt: e.nextAt, Policy: m.specOf(e),
		RetryReason: e.retryReason, LastError: e.lastErr, LastErrorCode: e.lastCode, LastErrorAt: e.lastErrAt,
		MessagesIn: e.msgsIn, MessagesOut: e.msgsOut, LastMessageAt: e.lastMsg, TokenExpiry: e.tokenExpiry,
		PresenceCount: e.presence.len(), Tracked: e.tracked != nil, TrackedAs: e.trackedKey(),
		Queued: len(e.queue), QueueDropped: e.queueDropped,
		PresenceTruncated: e.presence.truncation(),
	}
	if e.ch != nil {
		info.ClientDropped = e.ch.Stats().Dropped
	}
	info.Config.Presence = e.cfg.Presence || len(e.pres) > 0
	info.Bindings = e.bindingsLocked()
	return info
}

func (e *entry) bindingsLocked() []Binding {
	var out []Binding
	events := map[string]int{}
	var order []string
	for _, l := range e.bcast {
		if _, ok := events[l.event]; !ok {
			order = append(order, l.event)
		}
		events[l.event]++
	}
	for _, ev := range order {
		out = append(out, Binding{Type: "broadcast", Event: ev, Listeners: events[ev]})
	}
	if e.cfg.Presence || len(e.pres) > 0 {
		out = append(out, Binding{Type: "presence", Listeners: len(e.pres)})
	}
	for i, b := range e.pg {
		n := 0
		for _, l := range e.changes {
			if l.binding == i {
				n++
			}
		}
		bd := Binding{Type: "postgres_changes", Event: b.Event, Schema: b.Schema, Table: b.Table, Filter: b.Filter, Listeners: n}
		if i < len(e.ids) {
			bd.ID = e.ids[i]
		}
		out = append(out, bd)
	}
	if len(e.system) > 0 {
		out = append(out, Binding{Type: "system", Listeners: len(e.system)})
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
