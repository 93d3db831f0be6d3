package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"rtm/realtime"
	"rtm/realtime/protocol"
	"rtm/registry/clock"
)

// clientEventBuffer and clientEventBufferBytes bound the client-side
// event buffer of each channel: 65,536 events of 1 KiB.
const (
	clientEventBuffer      = 1 << 16
	clientEventBufferBytes = 64 << 20
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

// ChangeFilter selects the postgres changes of an entity. Zero fields get
// defaults from the entity's mapping (Options.Entities) and then from the
// entity itself: Event "*", Schema "public", Table the entity type, Key
// "id", Filter "<key>=eq.<entity id>".
type ChangeFilter struct {
	Event  string
	Schema string
	Table  string
	// Key is the entity's key column, used by the default filter.
	Key    string
	Filter string
	// NoFilter subscribes to every row of the table (no default filter).
	NoFilter bool
}

// EntityMapping maps an entity type to its table and key column, for
// SubscribeEntity's default filter. Zero fields get the defaults: schema
// "public", table the entity type, key "id".
type EntityMapping struct {
	Schema, Table, Key string
}

func (f ChangeFilter) binding(n Name, mapping EntityMapping) realtime.PostgresBinding {
	b := realtime.PostgresBinding{Event: f.Event, Schema: f.Schema, Table: f.Table, Filter: f.Filter}
	key := f.Key
	if b.Event == "" {
		b.Event = "*"
	}
	if b.Schema == "" {
		b.Schema = cmp.Or(mapping.Schema, "public")
	}
	if b.Table == "" {
		b.Table = cmp.Or(mapping.Table, n.EntityType)
	}
	if key == "" {
		key = cmp.Or(mapping.Key, "id")
	}
	if b.Filter == "" && !f.NoFilter {
		b.Filter = key + "=eq." + n.EntityID
	}
	return b
}

// JoinOption configures a join.
type JoinOption func(*joinOpts)

type joinOpts struct {
	tenant       *string
	keepAlive    bool
	private      *bool
	ack, self    *bool
	presenceKey  *string
	presence     bool
	policy       Policy
	bcast        []*bcastListener
	pres         []func(PresenceEvent)
	system       []func(MessageEvent)
	changeFilter []ChangeFilter
	changeFn     []func(Change)
	track        *PresenceUser
}

// WithTenant sets the tenant of the name built by JoinPresence,
// SubscribeEntity and JoinBroadcast (overriding Options.Tenant; "" for
// none).
func WithTenant(tenant string) JoinOption { return func(o *joinOpts) { o.tenant = &tenant } }

// KeepAlive keeps the channel joined when its last handle is released
// (until Leave or CleanupAll).
func KeepAlive() JoinOption { return func(o *joinOpts) { o.keepAlive = true } }

// Private joins a private (RLS-authorized) channel.
func Private() JoinOption { return func(o *joinOpts) { t := true; o.private = &t } }

// WithBroadcastConfig sets the broadcast ack and self flags.
func WithBroadcastConfig(ack, self bool) JoinOption {
	return func(o *joinOpts) { o.ack, o.self = &ack, &self }
}

// WithPresenceKey sets the presence key ("" lets the server choose).
func WithPresenceKey(key string) JoinOption {
	return func(o *joinOpts) { o.presenceKey = &key; o.presence = true }
}

// WithPolicy gives the channel its own retry policy.
func WithPolicy(p Policy) JoinOption { return func(o *joinOpts) { o.policy = p } }

// OnBroadcast registers fn for broadcasts of event ("*" for all, matched
// without regard to case, as realtime-js does). It runs on the channel's
// delivery goroutine, in order; a slow fn delays the channel's events.
func OnBroadcast(event string, fn func(Broadcast)) JoinOption {
	return func(o *joinOpts) { o.bcast = append(o.bcast, &bcastListener{event: event, fn: fn}) }
}

// OnPresence registers fn for the channel's presence events (and turns
// presence on).
func OnPresence(fn func(PresenceEvent)) JoinOption {
	return func(o *joinOpts) { o.pres = append(o.pres, fn); o.presence = true }
}

// OnSystem registers fn for the channel's system messages.
func OnSystem(fn func(MessageEvent)) JoinOption {
	return func(o *joinOpts) { o.system = append(o.system, fn) }
}

// OnChange registers fn for postgres changes matching filter (defaults
// from the channel's entity, see ChangeFilter).
func OnChange(filter ChangeFilter, fn func(Change)) JoinOption {
	return func(o *joinOpts) {
		o.changeFilter = append(o.changeFilter, filter)
		o.changeFn = append(o.changeFn, fn)
	}
}

// Join joins the named channel, or shares it if it is already in the
// registry (reference counted: no second join goes on the wire). It
// returns once the channel is registered; the join itself proceeds in
// the background (and is retried under the policy); use
// [Handle.Ready] to wait for it. The first join's configuration wins;
// later joins add their listeners (a new postgres_changes filter makes
// the channel rejoin with all its filters).
func (m *Manager) Join(ctx context.Context, name Name, opts ...JoinOption) (*Handle, error) {
	var o joinOpts
	for _, f := range opts {
		f(&o)
	}
	return m.join(ctx, name, &o)
}

// JoinPresence joins presence:ENTITY_TYPE:ENTITY_ID (in the default or
// given tenant) with user.UserID as the presence key, and tracks user
// (payload: user.Payload, a JSON object, plus user_id, name and
// online_at). The presence is tracked again after every rejoin.
func (m *Manager) JoinPresence(ctx context.Context, entityType, entityID string, user PresenceUser, opts ...JoinOption) (*Handle, error) {
	var o joinOpts
	for _, f := range opts {
		f(&o)
	}
	if user.UserID == "" {
		return nil, fmt.Errorf("registry: join presence: the user id is required")
	}
	if _, err := trackPayload(user, m.clk.Now()); err != nil {
		return nil, err
	}
	name, err := NewName(KindPresence, entityType, entityID, m.tenantOf(&o))
	if err != nil {
		return nil, err
	}
	key := user.UserID
	o.presenceKey = &key
	o.presence = true
	o.track = &user
	return m.join(ctx, name, &o)
}

// SubscribeEntity joins subscription:ENTITY_TYPE:ENTITY_ID with a
// postgres_changes binding (filter, defaults from the entity) and calls
// onChange for each change, in order.
func (m *Manager) SubscribeEntity(ctx context.Context, entityType, entityID string, filter ChangeFilter, onChange func(Change), opts ...JoinOption) (*Handle, error) {
	var o joinOpts
	for _, f := range opts {
		f(&o)
	}
	name, err := NewName(KindSubscription, entityType, entityID, m.tenantOf(&o))
	if err != nil {
		return nil, err
	}
	if onChange == nil {
		onChange = func(Change) {}
	}
	o.changeFilter = append(o.changeFilter, filter)
	o.changeFn = append(o.changeFn, onChange)
	return m.join(ctx, name, &o)
}

// JoinBroadcast joins broadcast:ENTITY_TYPE:ENTITY_ID.
func (m *Manager) JoinBroadcast(ctx context.Context, entityType, entityID string, opts ...JoinOption) (*Handle, error) {
	var o joinOpts
	for _, f := range opts {
		f(&o)
	}
	name, err := NewName(KindBroadcast, entityType, entityID, m.tenantOf(&o))
	if err != nil {
		return nil, err
	}
	return m.join(ctx, name, &o)
}

func (m *Manager) tenantOf(o *joinOpts) string {
	if o.tenant != nil {
		return *o.tenant
	}
	return m.opts.Tenant
}

func (m *Manager) join(ctx context.Context, name Name, o *joinOpts) (*Handle, error) {
	if err := name.Validate(); err != nil {
		return nil, err
	}
	if len(o.changeFilter) > 0 && name.Kind != KindSubscription {
		return nil, fmt.Errorf("registry: join %s: postgres changes need a subscription channel", name)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		e := m.entries[name]
		if e != nil && e.leaving != nil {
			wait := e.leaving
			m.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("join %s: %w", name, ctx.Err())
			}
		}
		if e != nil {
			h, recreate, err := m.shareLocked(e, o)
			m.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if recreate {
				m.recreate(e)
			}
			return h, nil
		}
		if err := m.checkCapsLocked(name); err != nil {
			m.mu.Unlock()
			m.publishError(name, "join", "CapReached", err.Error())
			return nil, err
		}
		e = m.newEntryLocked(name, o)
		h := m.newHandleLocked(e, o)
		gen := e.gen
		m.publishStateLocked(e, "created")
		m.mu.Unlock()
		attrs := []any{KeyChannel, name.String()}
		if o.track != nil {
			attrs = append(attrs, KeyUserID, o.track.UserID)
		}
		m.log.Info("Creating new "+name.Kind.String()+" channel", attrs...)
		m.wg.Add(1)
		go m.attach(e, gen)
		return h, nil
	}
}

func (m *Manager) checkCapsLocked(name Name) error {
	live := 0
	ofType := 0
	for n, e := range m.entries {
		if e.leaving != nil {
			continue
		}
		live++
		if n.EntityType == name.EntityType {
			ofType++
		}
	}
	if max := m.opts.MaxChannels; max > 0 && live >= max {
		return &CapError{Scope: "connection", Limit: max, Current: live}
	}
	if max, ok := m.opts.EntityCaps[name.EntityType]; ok && ofType >= max {
		return &CapError{Scope: "entity type", EntityType: name.EntityType, Limit: max, Current: ofType}
	}
	return nil
}

func (m *Manager) newEntryLocked(name Name, o *joinOpts) *entry {
	now := m.clk.Now()
	e := &entry{
		name: name, topic: name.Topic(), status: StatusConnecting, reason: "joining",
		createdAt: now, presence: newPresenceCache(m.maxPresenceMembers()), policy: o.policy,
		tokenExpiry: m.tokenInfo.Expiry,
	}
	if o.policy != nil {
		e.policySpec = o.policy.Info().Spec
	}
	e.msgs = newMsgRing(m.opts.MessageRing, m.opts.MessageBytes)
	e.frames = newArenaRing[rawFrame](m.opts.FrameRing, m.opts.FrameBytes)
	if o.ack != nil {
		e.cfg.Ack = *o.ack
	}
	if o.self != nil {
		e.cfg.Self = *o.self
	}
	if o.private != nil {
		e.cfg.Private = *o.private
	}
	if o.presenceKey != nil {
		e.cfg.PresenceKey = *o.presenceKey
	}
	e.cfg.Presence = o.presence || name.Kind == KindPresence
	e.keepAlive = o.keepAlive
	if o.track != nil {
		p, _ := trackPayload(*o.track, now)
		e.tracked = &tracked{user: *o.track, payload: p}
	}
	m.entries[name] = e
	m.fmu.Lock()
	m.topics[e.topic] = e
	m.fmu.Unlock()
	return e
}

// shareLocked adds a reference (and the listeners of o) to an existing
// channel. It reports whether the channel must rejoin with a new
// configuration.
func (m *Manager) shareLocked(e *entry, o *joinOpts) (*Handle, bool, error) {
	if o.private != nil && *o.private != e.cfg.Private {
		return nil, false, fmt.Errorf("registry: join %s: already joined with private=%v", e.name, e.cfg.Private)
	}
	recreate := false
	if o.presenceKey != nil && *o.presenceKey != e.cfg.PresenceKey {
		if e.tracked != nil && (o.track == nil || o.track.UserID != e.tracked.user.UserID) {
			return nil, false, fmt.Errorf("registry: join %s: already joined with presence key %q (tracking %q)", e.name, e.cfg.PresenceKey, e.tracked.user.UserID)
		}
		e.cfg.PresenceKey = *o.presenceKey
		recreate = true
	}
	if o.presence && !e.cfg.Presence {
		e.cfg.Presence = true
		recreate = true
	}
	if o.track != nil {
		p, _ := trackPayload(*o.track, m.clk.Now())
		e.tracked = &tracked{user: *o.track, payload: p}
	}
	if o.keepAlive {
		e.keepAlive = true
	}
	before := len(e.pg)
	h := m.newHandleLocked(e, o)
	if len(e.pg) > before {
		recreate = true
	}
	m.publishStateLocked(e, "shared")
	m.log.Info("Reusing existing channel", KeyChannel, e.name.String(), KeyRefs, e.refs)
	if o.track != nil && e.status == StatusConnected && !recreate {
		m.wg.Add(1)
		go m.doTrack(e, e.gen)
	}
	return h, recreate, nil
}

// newHandleLocked makes a handle holding one reference and o's
// listeners.
func (m *Manager) newHandleLocked(e *entry, o *joinOpts) *Handle {
	e.refs++
	h := &Handle{m: m, e: e, name: e.name}
	for _, l := range o.bcast {
		e.nextID++
		l.id = e.nextID
		e.bcast = append(e.bcast, l)
		h.ids = append(h.ids, l.id)
	}
	for _, fn := range o.pres {
		e.nextID++
		e.pres = append(e.pres, &presListener{id: e.nextID, fn: fn})
		h.ids = append(h.ids, e.nextID)
	}
	for _, fn := range o.system {
		e.nextID++
		e.system = append(e.system, &systemListener{id: e.nextID, fn: fn})
		h.ids = append(h.ids, e.nextID)
	}
	for i, f := range o.changeFilter {
		b := f.binding(e.name, m.opts.Entities[e.name.EntityType])
		idx := slices.IndexFunc(e.pg, func(x realtime.PostgresBinding) bool {
			return x.Event == b.Event && x.Schema == b.Schema && x.Table == b.Table && x.Filter == b.Filter
		})
		if idx < 0 {
			e.pg = append(e.pg, b)
			idx = len(e.pg) - 1
		}
		e.nextID++
		e.changes = append(e.changes, &changeListener{id: e.nextID, binding: idx, fn: o.changeFn[i]})
		h.ids = append(h.ids, e.nextID)
	}
	return h
}

// clientConfigLocked is the client channel configuration of e, with the
// event callback bound to gen.
func (m *Manager) clientConfigLocked(e *entry, gen uint64) realtime.ChannelConfig {
	return realtime.ChannelConfig{
		Broadcast:       realtime.BroadcastConfig{Ack: e.cfg.Ack, Self: e.cfg.Self},
		Presence:        realtime.PresenceConfig{Key: e.cfg.PresenceKey, Enabled: e.cfg.Presence || len(e.pres) > 0},
		PostgresChanges: slices.Clone(e.pg),
		Private:         e.cfg.Private,
		OnEvents:        func(evs []realtime.Event) { m.onChannelEvents(e, gen, evs) },
		// A deep buffer: the manager is fast, but a GC pause or a busy
		// machine must not make the client drop broadcasts.
		EventBuffer:      clientEventBuffer,
		EventBufferBytes: clientEventBufferBytes,
		PresenceLimits:   m.opts.PresenceLimits,
	}
}

// attach creates the client channel of e if needed and joins it. The
// outcome arrives as channel events.
func (m *Manager) attach(e *entry, gen uint64) {
	defer m.wg.Done()
	m.mu.Lock()
	for e.detach != nil {
		d := e.detach
		m.mu.Unlock()
		select {
		case <-d:
		case <-m.ctx.Done():
			return
		}
		m.mu.Lock()
	}
	if e.gen != gen || m.closed || e.leaving != nil {
		m.mu.Unlock()
		return
	}
	ch := e.ch
	if ch == nil {
		var err error
		ch, err = m.sock.Channel(e.topic, m.clientConfigLocked(e, gen))
		if err != nil {
			m.failLocked(e, "CHANNEL_ERROR", err.Error(), false)
			m.mu.Unlock()
			return
		}
		e.ch = ch
	}
	m.mu.Unlock()
	if err := ch.Subscribe(m.ctx); err != nil && errors.Is(err, realtime.ErrChannelClosed) {
		// The channel was closed under us (left, or closed by the
		// server before the join); the events say what to do.
		m.log.Debug("Join ended", KeyChannel, e.name.String(), KeyErr, err)
	}
}

// recreate replaces e's client channel by a new one with the current
// configuration (new filters, presence key): leave, then join.
func (m *Manager) recreate(e *entry) {
	m.mu.Lock()
	if e.leaving != nil || m.closed {
		m.mu.Unlock()
		return
	}
	old := e.ch
	e.ch = nil
	e.gen++
	gen := e.gen
	// Keep the presence cache: the new channel's first sync is reconciled
	// against it, so people present before and after are not announced
	// again (no ghost join/leave pairs).
	e.presence.resyncing = true
	e.synced = false
	e.status = StatusConnecting
	e.reason = "rejoining with a new configuration"
	m.publishStateLocked(e, e.reason)
	m.detachLocked(e, old)
	bindings := len(e.pg)
	m.mu.Unlock()
	m.log.Info("Recreating channel with its listeners", KeyChannel, e.name.String(), "bindings", bindings)
	m.wg.Add(1)
	go m.attach(e, gen)
}

// detachLocked leaves the client channel ch in the background; attach
// waits for it (the client has one channel per topic).
func (m *Manager) detachLocked(e *entry, ch *realtime.Channel) {
	if ch == nil {
		return
	}
	done := make(chan struct{})
	e.detach = done
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, 15*time.Second)
		_ = ch.Leave(ctx)
		cancel()
		m.mu.Lock()
		if e.detach == done {
			e.detach = nil
		}
		close(done)
		m.mu.Unlock()
	}()
}

// onSocketDownLocked holds every scheduled attempt: attempts are spent
// only while the socket is up. The socket's reopening rejoins the
// channels (the client's own rejoin of errored channels, or
// onSocketOpenLocked), without spending an attempt.
func (m *Manager) onSocketDownLocked(reason string) {
	if m.sock.Status() == realtime.StatusOpen {
		return // a late notice: the socket is already back
	}
	now := m.clk.Now()
	for _, e := range m.entries {
		if e.leaving != nil || e.exhausted {
			continue
		}
		if e.timer != nil {
			p := m.policyOf(e)
			e.stopTimerLocked()
			e.heldBreaker = false
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.attempts + 1,
				Max: p.MaxAttempts(), Outcome: RetryHeld, Reason: "waiting for the socket", Policy: m.specOf(e)})
		}
		e.heldSocket = true
		if e.status != StatusDisconnected {
			e.status = StatusDisconnected
			e.reason = "socket down: " + reason
			m.publishStateLocked(e, e.reason)
		}
	}
}

// onSocketOpenLocked rejoins what the client will not: channels whose
// client channel is gone (closed by the server) and not given up. Those
// rejoins, and the client's own rejoins of errored channels, spend no
// attempt.
func (m *Manager) onSocketOpenLocked() {
	if m.sock.Status() != realtime.StatusOpen {
		return // a late notice: the socket is down again
	}
	for _, e := range m.entries {
		if !e.heldSocket || e.leaving != nil || e.exhausted || e.status == StatusConnected || e.timer != nil || e.inFlight {
			continue
		}
		e.heldSocket = false
		e.status = StatusConnecting
		e.reason = "socket open: rejoining"
		m.publishStateLocked(e, e.reason)
		if e.ch == nil {
			m.wg.Add(1)
			go m.attach(e, e.gen)
		}
	}
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
	e.msgsIn += uint64(len(evs))
	e.lastMsg = evs[len(evs)-1].Time
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
	ls := e.bcast
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

func (m *Manager) onStatusLocked(e *entry, gen uint64, ev realtime.Event) {
	now := m.clk.Now()
	switch ev.Status {
	case realtime.Subscribed:
		rejoin := e.joins > 0
		e.joins++
		e.joinedAt = now
		e.joinRef = ev.JoinRef
		e.ready = false
		e.synced = false
		e.tokenExpiry = m.tokenInfo.Expiry
		if e.ch != nil {
			e.ids = e.ch.ServerIDs()
		}
		if e.series {
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.attempts,
				Max: m.policyOf(e).MaxAttempts(), Outcome: RetrySucceeded, Reason: e.retryReason, Policy: m.specOf(e)})
			m.log.Info("Channel recovered", KeyChannel, e.name.String(), KeyAttempt, e.attempts)
		}
		if g, ok := m.policyOf(e).(Gate); ok {
			g.Record(now, true)
			m.releaseHeldLocked()
		}
		e.attempts, e.series, e.inFlight, e.exhausted, e.heldSocket = 0, false, false, false, false
		e.retryReason = ""
		e.stopTimerLocked()
		e.status = StatusConnected
		e.reason = "joined"
		if rejoin {
			e.reason = "rejoined"
		}
		m.publishStateLocked(e, e.reason)
		m.wakeWaitersLocked(e)
		if rejoin {
			m.log.Info("Channel rejoined", KeyChannel, e.name.String(), "join_ref", ev.JoinRef)
		} else {
			m.log.Info("Channel joined", KeyChannel, e.name.String(), "join_ref", ev.JoinRef)
		}
		if e.tracked != nil {
			m.wg.Add(1)
			go m.doTrack(e, gen)
		}
		if len(e.queue) > 0 && !e.flushing {
			e.flushing = true
			m.wg.Add(1)
			go m.flush(e, gen)
		}
	case realtime.ChannelError, realtime.TimedOut:
		code, msg := errorCode(ev.Status, ev.Err)
		if socketDown(ev.Err) {
			// Not the channel's fault: the socket is down. The client
			// rejoins when it reopens; no attempt is spent meanwhile.
			e.stopTimerLocked()
			e.inFlight = false
			e.heldSocket = true
			e.status = StatusDisconnected
			e.reason = "socket down: " + msg
			e.lastErr, e.lastCode, e.lastErrAt = msg, code, now
			if e.series {
				m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.attempts + 1,
					Max: m.policyOf(e).MaxAttempts(), Outcome: RetryHeld, Reason: "waiting for the socket", Policy: m.specOf(e)})
			}
			m.publishStateLocked(e, e.reason)
			m.log.Warn("Channel disconnected", KeyChannel, e.name.String(), KeyReason, msg)
			return
		}
		m.failLocked(e, code, msg, true)
	case realtime.Closed:
		// Our own leaves bump gen first, so this is the server's
		// phx_close (with the system error that preceded it, if any).
		e.ch = nil
		if errors.Is(ev.Err, realtime.ErrClosed) {
			return // the socket closed by Close
		}
		code, msg := errorCode(ev.Status, ev.Err)
		if ev.Err == nil {
			msg = "phx_close"
		}
		if e.exhausted || e.timer != nil {
			// A failure already handled (a binding mismatch errors, then
			// closes): the next attempt recreates the channel.
			return
		}
		if socketDown(ev.Err) {
			e.heldSocket = true
			e.status = StatusDisconnected
			e.reason = "socket down: " + msg
			m.publishStateLocked(e, e.reason)
			return
		}
		m.failLocked(e, code, "server closed the channel: "+msg, true)
	}
}

// socketDown reports whether a channel error is the socket's loss.
func socketDown(err error) bool {
	return errors.Is(err, realtime.ErrDisconnected) || errors.Is(err, realtime.ErrHeartbeatTimeout) || errors.Is(err, realtime.ErrClosed)
}

// errorCode extracts a code and a message from a channel status error.
// Both are cut to MaxTextBytes: they come from the server, and are kept
// and repeated (channel info, logs, events).
func errorCode(st realtime.SubscribeStatus, err error) (code, msg string) {
	code, msg = errorCodeOf(st, err)
	return clipText(code, MaxTextBytes), clipText(msg, MaxTextBytes)
}

func errorCodeOf(st realtime.SubscribeStatus, err error) (code, msg string) {
	code = st.String()
	if err == nil {
		return code, code
	}
	msg = err.Error()
	var je *realtime.JoinError
	var se *realtime.SystemError
	switch {
	case errors.As(err, &je):
		msg = je.Reason
		if je.Code != "" {
			code, msg = je.Code, je.Message
		}
	case errors.As(err, &se):
		msg = se.Message
	case errors.Is(err, realtime.ErrTimeout):
		code = "TIMED_OUT"
	case errors.Is(err, realtime.ErrChannelError):
		msg = "channel error reported by the server (phx_error)"
	}
	return code, msg
}

func (m *Manager) policyOf(e *entry) Policy {
	if e.policy != nil {
		return e.policy
	}
	return m.policy
}

// specOf returns the spec of e's policy (cached: Info formats it).
func (m *Manager) specOf(e *entry) string {
	if e.policy != nil {
		return e.policySpec
	}
	return m.policySpec
}

// failLocked handles a failure of e while the socket is up: it schedules
// the next attempt of the series, or gives up.
func (m *Manager) failLocked(e *entry, code, msg string, countError bool) {
	now := m.clk.Now()
	p := m.policyOf(e)
	maxN := p.MaxAttempts()
	spec := m.specOf(e)
	e.lastErr, e.lastCode, e.lastErrAt = msg, code, now
	reason := code
	if msg != "" && msg != code {
		reason = code + ": " + msg
	}
	if countError {
		m.errors++
	}
	if g, ok := p.(Gate); ok {
		g.Record(now, false)
	}
	if e.inFlight {
		e.inFlight = false
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.attempts, Max: maxN,
			Outcome: RetryFailed, Reason: e.retryReason, Err: reason, Policy: spec})
	}
	if !e.series {
		e.series = true
		e.retryReason = reason
	}
	e.stopTimerLocked()
	m.log.Warn("Channel error", KeyChannel, e.name.String(), KeyCode, code, KeyErr, msg, KeyAttempt, e.attempts, KeyMax, maxN)
	if maxN > 0 && e.attempts >= maxN {
		e.exhausted = true
		e.status = StatusError
		e.reason = fmt.Sprintf("gave up after %d attempts: %s", e.attempts, reason)
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.attempts, Max: maxN,
			Outcome: RetryExhausted, Reason: e.retryReason, Err: reason, Policy: spec})
		m.publishErrorLocked(e.name, "join", code, e.reason)
		m.publishStateLocked(e, e.reason)
		m.log.Error("Channel failed, giving up", KeyChannel, e.name.String(), KeyAttempt, e.attempts, KeyMax, maxN, KeyCode, code, KeyErr, msg)
		m.wakeWaitersLocked(e)
		// Stop the client from rejoining it when the socket reopens.
		old := e.ch
		e.ch = nil
		e.gen++
		m.detachLocked(e, old)
		return
	}
	n := e.attempts + 1
	d := max(p.Delay(n, m.rnd), 0)
	e.status = StatusDisconnected
	e.reason = reason
	e.nextAt = now.Add(d)
	gen := e.gen
	e.timer = m.clk.AfterFunc(d, func() { m.attempt(e, gen) })
	m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: maxN, Delay: d,
		NextAt: e.nextAt, Outcome: RetryScheduled, Reason: e.retryReason, Policy: spec})
	m.publishStateLocked(e, reason)
	m.log.Info("Scheduling reconnect", KeyChannel, e.name.String(), KeyAttempt, n, KeyMax, maxN, KeyDelay, d, KeyReason, reason)
}

// attempt makes attempt e.attempts+1 of e's series, if it still applies.
func (m *Manager) attempt(e *entry, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.gen != gen || m.closed || e.leaving != nil || m.entries[e.name] != e || e.exhausted {
		return
	}
	e.timer = nil
	e.nextAt = time.Time{}
	now := m.clk.Now()
	p := m.policyOf(e)
	spec := m.specOf(e)
	n := e.attempts + 1
	if m.sock.Status() != realtime.StatusOpen {
		// Attempts are spent only while the socket is up; the socket's
		// reopening rejoins the channel.
		e.heldSocket = true
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: p.MaxAttempts(),
			Outcome: RetryHeld, Reason: "waiting for the socket", Policy: spec})
		return
	}
	if g, ok := p.(Gate); ok {
		if allowed, at := g.Allow(now); !allowed {
			e.heldBreaker = true
			e.nextAt = at
			e.timer = m.clk.AfterFunc(max(at.Sub(now), 0), func() { m.attempt(e, gen) })
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: p.MaxAttempts(),
				NextAt: at, Outcome: RetryHeld, Reason: "circuit breaker open", Policy: spec})
			m.publishStateLocked(e, "circuit breaker open")
			return
		}
	}
	e.heldBreaker = false
	e.attempts = n
	m.chanTries++
	e.inFlight = true
	e.status = StatusConnecting
	e.reason = fmt.Sprintf("attempt %d", n)
	m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: p.MaxAttempts(),
		Outcome: RetryStarted, Reason: e.retryReason, Policy: spec})
	m.publishStateLocked(e, e.reason)
	m.log.Info("Retrying channel", KeyChannel, e.name.String(), KeyAttempt, n, KeyMax, p.MaxAttempts())
	m.wg.Add(1)
	go m.attach(e, gen)
}

// releaseHeldLocked lets the channels held by a circuit breaker that has
// just closed try now.
func (m *Manager) releaseHeldLocked() {
	for _, e := range m.entries {
		if !e.heldBreaker || e.exhausted || e.leaving != nil {
			continue
		}
		e.heldBreaker = false
		e.stopTimerLocked()
		gen := e.gen
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.attempt(e, gen)
		}()
	}
}

// RetryNow starts a fresh series for the named channel: the count is
// reset and a join is made now (a failure then starts a new series of up
// to the policy's maximum). A connected channel is left alone.
func (m *Manager) RetryNow(ctx context.Context, name Name) error {
	m.mu.Lock()
	e := m.entries[name]
	if e == nil || e.leaving != nil {
		m.mu.Unlock()
		return fmt.Errorf("retry %s: %w", name, ErrNotFound)
	}
	if e.status == StatusConnected {
		m.mu.Unlock()
		return nil
	}
	now := m.clk.Now()
	p := m.policyOf(e)
	if e.series && !e.exhausted {
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.attempts, Max: p.MaxAttempts(),
			Outcome: RetryCancelled, Reason: "manual retry", Policy: m.specOf(e)})
	}
	e.stopTimerLocked()
	e.attempts, e.series, e.exhausted, e.inFlight, e.heldSocket = 0, false, false, false, false
	e.retryReason = ""
	e.status = StatusConnecting
	e.reason = "manual retry"
	gen := e.gen
	m.publishStateLocked(e, e.reason)
	m.mu.Unlock()
	m.log.Info("Manual retry", KeyChannel, name.String())
	m.wg.Add(1)
	go m.attach(e, gen)
	return nil
}

// Leave leaves the named channel whatever its references and keep-alive
// (handles still held become released). It untracks and unsubscribes.
func (m *Manager) Leave(ctx context.Context, name Name) error {
	m.mu.Lock()
	e := m.entries[name]
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("leave %s: %w", name, ErrNotFound)
	}
	return m.release(ctx, e, true)
}

// CleanupAll leaves every channel (keep-alive ones too), as a logout: the
// server is left with no channel of this client. The socket stays open.
func (m *Manager) CleanupAll(ctx context.Context) error {
	m.mu.Lock()
	all := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		all = append(all, e)
	}
	m.mu.Unlock()
	m.log.Info("Cleaning up all channels", KeyCount, len(all))
	errs := make(chan error, len(all))
	for _, e := range all {
		go func() { errs <- m.release(ctx, e, true) }()
	}
	var out []error
	for range all {
		if err := <-errs; err != nil {
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// release drops a reference of e (all of them with force) and leaves the
// channel when none is left, unless it is kept alive.
func (m *Manager) release(ctx context.Context, e *entry, force bool) error {
	m.mu.Lock()
	if m.entries[e.name] != e {
		m.mu.Unlock()
		return nil
	}
	if e.leaving != nil {
		wait := e.leaving
		m.mu.Unlock()
		select {
		case <-wait:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("leave %s: %w", e.name, ctx.Err())
		}
	}
	if !force {
		e.refs--
		if e.refs > 0 || e.keepAlive {
			refs := e.refs
			m.publishStateLocked(e, "released")
			m.mu.Unlock()
			m.log.Debug("Released channel reference", KeyChannel, e.name.String(), KeyRefs, refs)
			return nil
		}
	}
	e.refs = 0
	e.leaving = make(chan struct{})
	e.gen++
	e.stopTimerLocked()
	for _, d := range e.debounced {
		d.Stop()
	}
	ch := e.ch
	untrack := e.tracked != nil && e.status == StatusConnected
	detach := e.detach
	m.wakeWaitersLocked(e)
	m.mu.Unlock()

	var err error
	if ch != nil {
		if untrack {
			if uerr := ch.Untrack(ctx); uerr != nil {
				m.log.Warn("Untrack failed", KeyChannel, e.name.String(), KeyErr, uerr)
			} else {
				m.log.Info("Untracked presence", KeyChannel, e.name.String())
			}
		}
		err = ch.Leave(ctx)
	}
	if detach != nil {
		select {
		case <-detach:
		case <-ctx.Done():
		}
	}
	m.mu.Lock()
	delete(m.entries, e.name)
	m.fmu.Lock()
	if m.topics[e.topic] == e {
		delete(m.topics, e.topic)
	}
	if m.lastFrame == e {
		m.lastFrame = nil
	}
	m.fmu.Unlock()
	e.presence.reset()
	e.queue, e.queueBytes = nil, 0
	m.broker.publish(ChannelStateEvent{Time: m.clk.Now(), Channel: e.name, Status: e.status, Previous: e.status,
		Reason: "left", Removed: true, Info: m.infoLocked(e)})
	close(e.leaving)
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("Leave did not complete cleanly", KeyChannel, e.name.String(), KeyErr, err)
		return fmt.Errorf("leave %s: %w", e.name, err)
	}
	m.log.Info("Channel left", KeyChannel, e.name.String())
	return nil
}

func (m *Manager) wakeWaitersLocked(e *entry) {
	for _, w := range e.waiters {
		close(w)
	}
	e.waiters = nil
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
		e.msgsIn++
		e.lastMsg = ev.Time
		out = PresenceEvent{Time: ev.Time, Channel: e.name, Action: PresenceSync, Count: e.presence.len(), Truncated: e.presence.truncation()}
		level := slog.LevelDebug
		if !e.synced {
			level = slog.LevelInfo
		}
		e.synced = true
		m.log.Log(context.Background(), level, "Presence synced", KeyChannel, e.name.String(), KeyCount, out.Count)
		m.publishStateLocked(e, "presence synced")
		m.broker.publish(out)
		for _, l := range e.pres {
			fn := l.fn
			calls = append(calls, func() { fn(out) })
		}
		return calls
	default:
		return nil
	}
	m.broker.publish(out)
	calls := make([]func(), 0, len(e.pres))
	for _, l := range e.pres {
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
			for _, l := range e.pres {
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
	e.msgsIn++
	e.lastMsg = ev.Time
	payload, _ := json.Marshal(c.ChangeData)
	me := MessageEvent{Time: ev.Time, Channel: e.name, Direction: In, Kind: MessagePostgresChanges, Event: c.Type, Payload: payload, Size: len(payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	change := Change{Channel: e.name, Type: c.Type, Schema: c.Schema, Table: c.Table, CommitTimestamp: c.CommitTimestamp,
		Columns: c.Columns, Record: c.Record, OldRecord: c.OldRecord, Errors: c.Errors, IDs: c.IDs, Time: ev.Time}
	var calls []func()
	for _, l := range e.changes {
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
	e.msgsIn++
	e.lastMsg = ev.Time
	payload, _ := json.Marshal(s)
	// The server's text, kept and repeated: cut (the payload has it
	// whole, within the byte bounds).
	text := clipText(s.Message, MaxTextBytes)
	me := MessageEvent{Time: ev.Time, Channel: e.name, Direction: In, Kind: MessageSystem, Event: text, Payload: payload, Size: len(payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	switch {
	case s.Status == protocol.StatusOK && s.Extension == "postgres_changes":
		e.ready = true
		m.publishStateLocked(e, "postgres changes ready")
		m.log.Info("Postgres changes ready", KeyChannel, e.name.String(), "message", s.Message)
	case s.Status == protocol.StatusError:
		e.lastErr, e.lastCode, e.lastErrAt = text, "system", m.clk.Now()
		m.publishErrorLocked(e.name, "system", "", text)
		m.log.Warn("Channel system error", KeyChannel, e.name.String(), "extension", s.Extension, KeyErr, text)
	default:
		m.log.Debug("System message", KeyChannel, e.name.String(), "extension", s.Extension, "message", s.Message)
	}
	calls := make([]func(), 0, len(e.system))
	for _, l := range e.system {
		fn := l.fn
		calls = append(calls, func() { fn(me) })
	}
	return calls
}

// doTrack tracks e's presence (after a join or rejoin).
func (m *Manager) doTrack(e *entry, gen uint64) {
	defer m.wg.Done()
	m.mu.Lock()
	if e.gen != gen || e.tracked == nil || e.ch == nil || e.leaving != nil {
		m.mu.Unlock()
		return
	}
	ch, t := e.ch, *e.tracked
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	err := ch.Track(ctx, t.payload)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if e.gen == gen && !errors.Is(err, realtime.ErrNotJoined) && m.ctx.Err() == nil {
			m.publishErrorLocked(e.name, "track", "", err.Error())
			m.log.Warn("Track failed", KeyChannel, e.name.String(), KeyUserID, t.user.UserID, KeyErr, err)
		}
		return
	}
	m.msgsOut.Add(1)
	e.msgsOut++
	me := MessageEvent{Time: m.clk.Now(), Channel: e.name, Direction: Out, Kind: MessagePresence, Event: "track", Payload: t.payload, Size: len(t.payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	m.log.Info("Tracking presence", KeyChannel, e.name.String(), KeyUserID, t.user.UserID)
}
