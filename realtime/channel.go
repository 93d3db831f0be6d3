package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"rtm/realtime/protocol"
)

// ChannelConfig configures a channel: the join's "config" and how its
// events are delivered.
type ChannelConfig struct {
	Broadcast BroadcastConfig
	Presence  PresenceConfig
	// PostgresChanges are the postgres_changes bindings, sent in this
	// order; the join reply must echo them (see ErrBindingMismatch).
	PostgresChanges []PostgresBinding
	// Private makes the channel private (RLS-authorized).
	Private bool

	// OnEvent receives the channel's events in order, on a goroutine of
	// the channel's own (never on the read loop). nil discards them.
	OnEvent func(Event)
	// OnEvents, instead of OnEvent, receives the same events in batches:
	// each call gets the next events in order (at most 64), as they were
	// queued. It is the cheaper way to take a high rate (one call, and
	// one lock of the consumer's, per batch). The slice and its Event
	// values are reused once OnEvents returns: keep copies, not the
	// slice (payloads are not reused). Set one of OnEvent and OnEvents.
	OnEvents func([]Event)
	// EventBuffer bounds the events waiting for OnEvent or OnEvents
	// (default Options.EventBuffer), EventBufferBytes their bytes (default
	// Options.EventBufferBytes); see the package doc for what happens
	// beyond.
	EventBuffer      int
	EventBufferBytes int
	// PresenceLimits bound the channel's presence state (zero fields:
	// the defaults, 100,000 keys, 1024 metas per key, 64 MiB).
	PresenceLimits PresenceLimits
	// PushTimeout overrides Options.PushTimeout for this channel.
	PushTimeout time.Duration
}

// BroadcastConfig is the join's broadcast config.
type BroadcastConfig struct {
	// Ack asks the server to reply to each broadcast; Send then waits.
	Ack bool
	// Self asks the server to deliver our own broadcasts to us.
	Self bool
	// Replay asks a private channel for stored broadcasts after Since.
	Replay *Replay
	// ReplicationReady asks for a system message once the database
	// replication is up.
	ReplicationReady bool
}

// Replay is the broadcast replay request of a private channel.
type Replay struct {
	Since time.Time
	// Limit is the number of messages (server default 25, clamped 1..25);
	// 0 omits it.
	Limit int
}

// PresenceConfig is the join's presence config.
type PresenceConfig struct {
	// Key is our presence key; empty lets the server assign one per join.
	Key string
	// Enabled asks for presence_state and presence_diff (realtime-js
	// enables it when a presence listener exists).
	Enabled bool
}

// PostgresBinding is one postgres_changes subscription.
type PostgresBinding struct {
	// Event is "INSERT", "UPDATE", "DELETE" or "*".
	Event  string
	Schema string
	Table  string
	// Filter is "column=op.value", e.g. "id=eq.1".
	Filter string
	// Select restricts the columns delivered.
	Select []string
}

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

func samePostgresBinding(a, b PostgresBinding) bool {
	return a.Event == b.Event && a.Schema == b.Schema && a.Table == b.Table && a.Filter == b.Filter &&
		strings.Join(a.Select, ",") == strings.Join(b.Select, ",")
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

// Send broadcasts event with a JSON payload (nil means {}) to the
// channel's subscribers: a binary kind-3 frame under 2.0.0, a JSON frame
// under 1.0.0. With Broadcast.Ack it waits for the server's reply (nil,
// a *ReplyError, or an error wrapping ErrTimeout); otherwise it returns
// once the frame is queued. The channel must be joined (ErrNotJoined).
func (ch *Channel) Send(ctx context.Context, event string, payload json.RawMessage) error {
	if len(payload) > 0 && !protocol.Valid(payload) {
		return fmt.Errorf("%w: broadcast payload is not valid JSON", ErrInvalidConfig)
	}
	return ch.send(ctx, &protocol.Broadcast{Event: event, Payload: payload})
}

// SendBinary broadcasts event with a raw binary payload (encoding 0 of a
// kind-3 frame; serializer 2.0.0 only), otherwise like [Channel.Send].
func (ch *Channel) SendBinary(ctx context.Context, event string, data []byte) error {
	if ch.s.vsn != protocol.V2 {
		return fmt.Errorf("%w: binary broadcasts need serializer 2.0.0", ErrInvalidConfig)
	}
	return ch.send(ctx, &protocol.Broadcast{Event: event, Payload: data, Binary: true})
}

func (ch *Channel) send(ctx context.Context, b *protocol.Broadcast) error {
	s := ch.s
	s.mu.Lock()
	if ch.removed {
		s.mu.Unlock()
		return fmt.Errorf("send on %s: %w", ch.topic, ErrChannelClosed)
	}
	if ch.state != ChannelJoined || s.conn == nil {
		s.mu.Unlock()
		return fmt.Errorf("send on %s: %w", ch.topic, ErrNotJoined)
	}
	m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventBroadcast, Broadcast: b}
	p, err := s.pushLocked(ch, &m, true, ch.cfg.Broadcast.Ack, nil)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("send on %s: %w", ch.topic, err)
	}
	if p == nil {
		return nil
	}
	return p.wait(ctx)
}

// Track tracks our presence with payload, a JSON object (the meta), and
// waits for the reply.
func (ch *Channel) Track(ctx context.Context, payload json.RawMessage) error {
	if !protocol.IsObject(payload) {
		return fmt.Errorf("%w: presence payload must be a JSON object", ErrInvalidConfig)
	}
	body := append([]byte(`{"type":"presence","event":"track","payload":`), payload...)
	return ch.pushAndWait(ctx, protocol.EventPresence, append(body, '}'))
}

// Untrack removes our tracked presence and waits for the reply.
func (ch *Channel) Untrack(ctx context.Context) error {
	return ch.pushAndWait(ctx, protocol.EventPresence, []byte(`{"type":"presence","event":"untrack"}`))
}

func (ch *Channel) pushAndWait(ctx context.Context, event string, payload []byte) error {
	s := ch.s
	s.mu.Lock()
	if ch.removed {
		s.mu.Unlock()
		return fmt.Errorf("%s on %s: %w", event, ch.topic, ErrChannelClosed)
	}
	if ch.state != ChannelJoined || s.conn == nil {
		s.mu.Unlock()
		return fmt.Errorf("%s on %s: %w", event, ch.topic, ErrNotJoined)
	}
	m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: event, Payload: payload}
	p, err := s.pushLocked(ch, &m, true, true, nil)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s on %s: %w", event, ch.topic, err)
	}
	return p.wait(ctx)
}

// joinPayloadLocked builds the phx_join payload with the current token.
func (ch *Channel) joinPayloadLocked(token string) []byte {
	c := &ch.cfg
	b := make([]byte, 0, 256)
	b = append(b, `{"config":{"broadcast":{"ack":`...)
	b = strconv.AppendBool(b, c.Broadcast.Ack)
	b = append(b, `,"self":`...)
	b = strconv.AppendBool(b, c.Broadcast.Self)
	if r := c.Broadcast.Replay; r != nil {
		b = append(b, `,"replay":{"since":`...)
		b = strconv.AppendInt(b, r.Since.UnixMilli(), 10)
		if r.Limit > 0 {
			b = append(b, `,"limit":`...)
			b = strconv.AppendInt(b, int64(r.Limit), 10)
		}
		b = append(b, '}')
	}
	if c.Broadcast.ReplicationReady {
		b = append(b, `,"replication_ready":true`...)
	}
	b = append(b, `},"presence":{"key":`...)
	b = protocol.AppendString(b, c.Presence.Key)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, c.Presence.Enabled)
	b = append(b, `},"postgres_changes":[`...)
	for i, pb := range c.PostgresChanges {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event":`...)
		b = protocol.AppendString(b, pb.Event)
		if pb.Schema != "" {
			b = append(b, `,"schema":`...)
			b = protocol.AppendString(b, pb.Schema)
		}
		if pb.Table != "" {
			b = append(b, `,"table":`...)
			b = protocol.AppendString(b, pb.Table)
		}
		if pb.Filter != "" {
			b = append(b, `,"filter":`...)
			b = protocol.AppendString(b, pb.Filter)
		}
		if len(pb.Select) > 0 {
			b = append(b, `,"select":[`...)
			for j, col := range pb.Select {
				if j > 0 {
					b = append(b, ',')
				}
				b = protocol.AppendString(b, col)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"private":`...)
	b = strconv.AppendBool(b, c.Private)
	b = append(b, '}')
	if token != "" {
		b = append(b, `,"access_token":`...)
		b = protocol.AppendString(b, token)
	}
	return append(b, '}')
}

// sendJoinLocked (re)joins ch with a fresh ref, or marks it joining until
// the socket opens.
func (s *Socket) sendJoinLocked(ch *Channel) {
	s.cancelJoinPushLocked(ch)
	ch.state = ChannelJoining
	if s.conn == nil {
		return
	}
	ref := s.makeRefLocked()
	ch.joinRef = ref
	ch.presence.newJoin()
	ch.joinToken = s.token
	m := protocol.Message{JoinRef: ref, Ref: ref, Topic: ch.topic, Event: protocol.EventJoin, Payload: ch.joinPayloadLocked(s.token)}
	p, err := s.pushLocked(ch, &m, false, true, s.onJoinReply)
	if err != nil {
		s.log.Error("Cannot send phx_join", logTopic, ch.topic, logErr, err)
		return
	}
	ch.joinPush = p
}

// cancelJoinPushLocked forgets the join under way (its reply, if any,
// will be ignored).
func (s *Socket) cancelJoinPushLocked(ch *Channel) {
	if p := ch.joinPush; p != nil {
		ch.joinPush = nil
		s.completeLocked(p, "", nil, ErrChannelClosed)
	}
}

// onJoinReply handles the outcome of a join push.
func (s *Socket) onJoinReply(p *push) {
	ch := p.ch
	if ch.joinPush != p || ch.state != ChannelJoining {
		return
	}
	ch.joinPush = nil
	switch p.status {
	case protocol.StatusOK:
		ch.state = ChannelJoined
		ch.rejoinTries = 0
		ch.stopRejoinTimerLocked()
		ch.systemErr = nil
		if err := ch.checkBindingsLocked(p.response); err != nil {
			s.log.Warn("Binding mismatch, leaving", logTopic, ch.topic, logErr, err)
			ch.lastErr = err
			ch.state = ChannelLeaving
			m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventLeave}
			if _, perr := s.pushLocked(ch, &m, false, true, func(lp *push) {
				if lp.status != "" {
					s.closeChannelLocked(ch, err, nil)
				}
			}); perr != nil {
				s.closeChannelLocked(ch, err, nil)
			}
			ch.emitStatusLocked(ChannelError, err)
			ch.notifyWaitersLocked(err)
			return
		}
		s.log.Debug("Channel joined", logTopic, ch.topic, logJoinRef, ch.joinRef)
		if ch.joinToken != s.token {
			s.pushTokenLocked(ch) // SetAuth ran while the join was under way
		}
		ch.emitStatusLocked(Subscribed, nil)
		ch.notifyWaitersLocked(nil)
	case protocol.StatusError:
		err := newJoinError(ch.topic, p.response)
		s.log.Warn("Join refused", logTopic, ch.topic, logErr, err)
		ch.state = ChannelErrored
		ch.lastErr = err
		ch.emitStatusLocked(ChannelError, err)
		ch.notifyWaitersLocked(err)
		s.scheduleRejoinLocked(ch)
	case "timeout":
		err := fmt.Errorf("join %s: %w", ch.topic, ErrTimeout)
		s.log.Warn("Join timed out", logTopic, ch.topic)
		// Like phoenix: leave with the old join ref, then retry.
		if s.conn != nil {
			m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventLeave}
			_, _ = s.pushLocked(ch, &m, false, false, nil)
		}
		ch.state = ChannelErrored
		ch.lastErr = err
		ch.emitStatusLocked(TimedOut, err)
		ch.notifyWaitersLocked(err)
		s.scheduleRejoinLocked(ch)
	}
}

// checkBindingsLocked compares the join reply's postgres_changes with the
// channel's bindings, as realtime-js does, and stores the server ids.
func (ch *Channel) checkBindingsLocked(response json.RawMessage) error {
	var r struct {
		PostgresChanges *[]struct {
			Event  *string          `json:"event"`
			Schema *string          `json:"schema"`
			Table  *string          `json:"table"`
			Filter *string          `json:"filter"`
			ID     *json.RawMessage `json:"id"`
		} `json:"postgres_changes"`
	}
	if err := json.Unmarshal(response, &r); err != nil {
		if len(ch.cfg.PostgresChanges) == 0 {
			return nil
		}
		return fmt.Errorf("%w: unreadable join reply: %v", ErrBindingMismatch, err)
	}
	if r.PostgresChanges == nil {
		// realtime-js reports SUBSCRIBED when the reply has no
		// postgres_changes at all; the bindings get no ids.
		ch.ids = nil
		return nil
	}
	server := *r.PostgresChanges
	ids := make([]int64, len(ch.cfg.PostgresChanges))
	eq := func(sv *string, cv string) bool {
		if sv == nil {
			return cv == ""
		}
		return *sv == cv
	}
	for i, b := range ch.cfg.PostgresChanges {
		if i >= len(server) {
			return fmt.Errorf("%w: the reply has %d bindings, the channel %d", ErrBindingMismatch, len(server), len(ch.cfg.PostgresChanges))
		}
		sv := server[i]
		if sv.Event == nil || *sv.Event != b.Event || !eq(sv.Schema, b.Schema) || !eq(sv.Table, b.Table) || !eq(sv.Filter, b.Filter) {
			return fmt.Errorf("%w: binding %d", ErrBindingMismatch, i)
		}
		if sv.ID != nil {
			id, err := strconv.ParseInt(string(*sv.ID), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: binding %d has id %s", ErrBindingMismatch, i, *sv.ID)
			}
			ids[i] = id
		}
	}
	ch.ids = ids
	return nil
}

// scheduleRejoinLocked starts the rejoin timer (phoenix rejoinTimer) when
// the socket is connected and RejoinAfter allows it.
func (s *Socket) scheduleRejoinLocked(ch *Channel) {
	if s.conn == nil || s.closed {
		return
	}
	delay := s.opts.RejoinAfter(ch.rejoinTries + 1)
	if delay < 0 {
		return
	}
	ch.stopRejoinTimerLocked()
	gen := ch.rejoinGen
	ch.rejoinTimer = time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ch.rejoinGen != gen || s.closed || ch.removed {
			return
		}
		ch.rejoinTimer = nil
		ch.rejoinTries++
		if s.conn != nil && ch.state == ChannelErrored {
			s.log.Info("Rejoining", logTopic, ch.topic, logAttempt, ch.rejoinTries)
			s.sendJoinLocked(ch)
		}
	})
}

func (ch *Channel) stopRejoinTimerLocked() {
	ch.rejoinGen++
	if ch.rejoinTimer != nil {
		ch.rejoinTimer.Stop()
		ch.rejoinTimer = nil
	}
}

// errorChannelLocked puts a joined or joining channel in the errored state
// (phx_error, connection lost).
func (s *Socket) errorChannelLocked(ch *Channel, err error) {
	s.cancelJoinPushLocked(ch)
	ch.state = ChannelErrored
	ch.lastErr = err
	ch.emitStatusLocked(ChannelError, err)
	ch.notifyWaitersLocked(err)
}

// closeChannelLocked closes ch for good and removes it from the socket.
// reason is the CLOSED event's error; leaveErr is what Leave returns.
func (s *Socket) closeChannelLocked(ch *Channel, reason, leaveErr error) {
	if ch.removed {
		return
	}
	ch.stopRejoinTimerLocked()
	s.cancelJoinPushLocked(ch)
	ch.state = ChannelClosed
	ch.removed = true
	if s.channels[ch.topic] == ch {
		delete(s.channels, ch.topic)
	}
	for _, p := range s.pending {
		if p.ch == ch {
			s.completeLocked(p, "", nil, fmt.Errorf("%s on %s: %w", p.event, ch.topic, ErrChannelClosed))
		}
	}
	if reason != nil {
		ch.lastErr = reason
	}
	if reason != nil {
		ch.notifyWaitersLocked(fmt.Errorf("subscribe %s: %w: %w", ch.topic, ErrChannelClosed, reason))
	} else {
		ch.notifyWaitersLocked(fmt.Errorf("subscribe %s: %w", ch.topic, ErrChannelClosed))
	}
	for _, w := range ch.closeWaiters {
		w <- leaveErr
	}
	ch.closeWaiters = nil
	ch.presence.reset()
	ch.emitStatusLocked(Closed, reason)
}

func (ch *Channel) notifyWaitersLocked(err error) {
	for _, w := range ch.waiters {
		w <- err
	}
	ch.waiters = nil
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
