package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"rtm/realtime"
)

// clientEventBuffer and clientEventBufferBytes bound the client-side
// event buffer of each channel: 65,536 events of 1 KiB.
const (
	clientEventBuffer      = 1 << 16
	clientEventBufferBytes = 64 << 20
)

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
		join: joinState{tokenExpiry: m.tokenInfo.Expiry},
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
		e.listeners.nextID++
		l.id = e.listeners.nextID
		e.listeners.bcast = append(e.listeners.bcast, l)
		h.ids = append(h.ids, l.id)
	}
	for _, fn := range o.pres {
		e.listeners.nextID++
		e.listeners.pres = append(e.listeners.pres, &presListener{id: e.listeners.nextID, fn: fn})
		h.ids = append(h.ids, e.listeners.nextID)
	}
	for _, fn := range o.system {
		e.listeners.nextID++
		e.listeners.system = append(e.listeners.system, &systemListener{id: e.listeners.nextID, fn: fn})
		h.ids = append(h.ids, e.listeners.nextID)
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
		e.listeners.nextID++
		e.listeners.changes = append(e.listeners.changes, &changeListener{id: e.listeners.nextID, binding: idx, fn: o.changeFn[i]})
		h.ids = append(h.ids, e.listeners.nextID)
	}
	return h
}

// clientConfigLocked is the client channel configuration of e, with the
// event callback bound to gen.
func (m *Manager) clientConfigLocked(e *entry, gen uint64) realtime.ChannelConfig {
	return realtime.ChannelConfig{
		Broadcast:       realtime.BroadcastConfig{Ack: e.cfg.Ack, Self: e.cfg.Self},
		Presence:        realtime.PresenceConfig{Key: e.cfg.PresenceKey, Enabled: e.cfg.Presence || len(e.listeners.pres) > 0},
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
	e.join.synced = false
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
	e.traffic.out++
	me := MessageEvent{Time: m.clk.Now(), Channel: e.name, Direction: Out, Kind: MessagePresence, Event: "track", Payload: t.payload, Size: len(t.payload)}
	e.msgs.putEvent(&me)
	m.broker.publish(me)
	m.log.Info("Tracking presence", KeyChannel, e.name.String(), KeyUserID, t.user.UserID)
}
