package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// channel is one joined topic on one connection. Its mutable fields are
// guarded by c.mu; ack, self, private and the topic never change.
type channel struct {
	c       *conn
	t       *topic
	topic   string // wire topic
	sub     string
	tenant  tenant // the topic's, which its events are charged to
	joinRef string
	// noJoinRef: the join had no join_ref (1.0.0 clients may omit it), so
	// a leave with any join_ref is this channel's, as in Phoenix.
	noJoinRef bool
	private   bool
	ack       bool
	self      bool
	joined    time.Time
	bindings  []json.RawMessage
	pg        []binding
	// changeBindings are the bindings for Config.Changes.
	changeBindings []ChangeBinding

	// guarded by c.mu
	presenceKey     string
	presenceEnabled bool
	token           string
	claims          *Claims
	stopExpiry      func() bool
	presenceCalls   int
	presenceReset   time.Time
	changes         ChangeSubscription // Config.Changes subscription
	changeGen       int                // invalidates older attempts
	rls             rlsState           // Config.Authorizer's answers

	// replayed are the ids of the database broadcasts replayed at join
	// (at most 25; set before the channel subscribes, then read only).
	replayed map[string]bool
}

// handleJoin answers phx_join. A join of a topic already joined on this
// socket first closes the old channel (phx_close with the old join_ref).
func (c *conn) handleJoin(m *protocol.Message) {
	s := c.s
	sub := protocol.SubTopic(m.Topic)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return
	}
	if old := c.channels[m.Topic]; old != nil {
		c.log.Debug("Duplicate join closes the old channel", logKeyTopic, m.Topic, "old_join_ref", old.joinRef)
		c.closeChannelLocked(old, protocol.EventClose)
	}
	if sub == "" {
		c.joinError(m, "TopicNameRequired: You must provide a topic name")
		return
	}
	cfg, problems := parseJoin(m.Payload)
	if len(problems) > 0 {
		c.log.Warn("InvalidJoinPayload: using defaults for fields of the wrong shape", logKeyTopic, m.Topic,
			"problems", strings.Join(problems, "; "))
	}
	if n := len(cfg.presenceKey); n > MaxPresenceKeyBytes {
		c.joinError(m, presenceKeyTooLong(n))
		return
	}
	if reason := bindingsTooLarge(cfg.bindings); reason != "" {
		c.joinError(m, reason)
		return
	}
	now := s.now()
	lim := s.cfg.Limits
	if reason := s.rejections.take(now); reason != "" {
		s.stats.rejectedJoins.Add(1)
		c.joinError(m, reason)
		return
	}
	if lim.MaxConcurrentUsers > 0 && s.tenants.connCount(tokenTenant(c.claims)) > lim.MaxConcurrentUsers {
		c.joinError(m, "ConnectionRateLimitReached: Too many connected users")
		return
	}
	token := c.joinToken(cfg.token)
	if lim.MaxJoinsPerSecond > 0 && !s.tenants.allow(c.joinTenant(sub, token, now), rateJoins, now, lim.MaxJoinsPerSecond, 1) {
		s.stats.rateLimited.Add(1)
		c.joinError(m, "ClientJoinRateLimitReached: Too many joins per second")
		// Supabase disconnects the socket too (a "disconnect" broadcast).
		c.sendClose(websocket.CloseGoingAway, "Too many joins per second")
		return
	}
	if lim.MaxChannelsPerClient > 0 && len(c.channels) >= lim.MaxChannelsPerClient {
		s.stats.rateLimited.Add(1)
		c.joinError(m, "ChannelRateLimitReached: Too many channels")
		return
	}
	claims, aerr := verifyToken(token, s.cfg.JWTSecret, now)
	if aerr != nil {
		c.joinError(m, aerr.Reason())
		return
	}
	var read *Permissions
	if cfg.private {
		var ok bool
		if read, ok = c.authorizePrivateJoin(m, sub, cfg.presenceEnabled, claims); !ok {
			return
		}
	}
	if why := tenantRefusal(sub, claims); why != "" {
		c.joinError(m, unauthorizedReason(sub, why))
		return
	}
	replay, ok := c.replayLocked(m, sub, cfg.private, read)
	if !ok {
		return
	}

	ch := &channel{
		c: c, topic: m.Topic, sub: sub, tenant: topicTenant(sub), joinRef: m.JoinRef, private: cfg.private,
		ack: cfg.ack, self: cfg.self, joined: now, bindings: cfg.bindings,
		presenceKey: cfg.presenceKey, presenceEnabled: cfg.presenceEnabled,
		token: token, claims: claims, replayed: replayedIDs(replay),
	}
	if ch.joinRef == "" {
		ch.joinRef, ch.noJoinRef = m.Ref, true // 1.0.0 clients may omit join_ref
	}
	if ch.presenceKey == "" {
		ch.presenceKey = s.newUUID()
	}
	if read != nil {
		ch.rls.setReadLocked(*read, cfg.presenceEnabled)
	}
	response, ids := joinResponse(cfg.bindings)
	var pgErr error
	for i, raw := range cfg.bindings {
		b, err := parseBinding(raw, ids[i])
		if err != nil {
			pgErr = err
			continue
		}
		ch.pg = append(ch.pg, b)
	}
	if c.channels == nil {
		c.channels = make(map[string]*channel)
	}
	c.channels[m.Topic] = ch
	s.stats.joins.Add(1)

	t := s.acquireTopic(fanKey{private: cfg.private, sub: sub})
	ch.t = t
	// Subscribe before replying, as Supabase does: once the client sees the
	// reply, every later broadcast reaches it (one racing with the join may
	// arrive just before the reply).
	t.addLocked(ch)
	c.reply(m, protocol.StatusOK, response)
	c.sendReplayLocked(ch, replay)
	presenceLimited := false
	if ch.presenceEnabled && ch.receives(protocol.EventPresenceState) {
		if s.tenants.allow(ch.tenant, ratePresence, now, lim.MaxPresenceEventsPerSecond, 1) {
			c.sendPresenceStateLocked(ch, t)
		} else {
			presenceLimited = true
		}
	}
	t.mu.Unlock()
	s.stats.channels.Add(1)
	c.log.Debug("Joined", logKeyTopic, m.Topic, "private", cfg.private, "role", claims.Role,
		"presence_key", ch.presenceKey, "token", MaskToken(token))

	if presenceLimited {
		s.stats.rateLimited.Add(1)
		c.shutdownLocked(ch, "Too many presence messages per second")
		return
	}
	switch {
	case s.cfg.Changes != nil && len(cfg.bindings) > 0:
		// The database decides: "Subscribed to PostgreSQL" once changes
		// really flow, or the reasons it cannot.
		ch.changeBindings = changeBindings(cfg.bindings, ids)
		c.subscribeChangesLocked(ch)
	case pgErr != nil:
		c.sendSystem(ch, "postgres_changes", protocol.StatusError, filterErrPrefix+pgErr.Error())
	case len(cfg.bindings) > 0:
		c.sendSystem(ch, "postgres_changes", protocol.StatusOK, "Subscribed to PostgreSQL")
	}
	c.awaitReplicationLocked(ch, m.Payload)
	c.scheduleExpiryLocked(ch)
}

// joinError answers a join with an error reply, after JoinErrorDelay.
func (c *conn) joinError(m *protocol.Message, reason string) {
	c.joinErrorAfter(m, reason, c.s.cfg.JoinErrorDelay)
}

// joinErrorAfter answers a join with an error reply after d.
func (c *conn) joinErrorAfter(m *protocol.Message, reason string, d time.Duration) {
	c.s.stats.joinErrors.Add(1)
	c.log.Info("Join refused", logKeyTopic, m.Topic, logKeyReason, reason)
	if d <= 0 {
		c.replyError(m, reason)
		return
	}
	msg := *m
	msg.Payload = nil
	c.s.afterFunc(d, func() { c.replyError(&msg, reason) })
}

// handleLeave answers phx_leave: ok, then phx_close for the channel. A
// leave of a topic without a channel is answered ok too. A leave with
// another join_ref than the channel's is ignored, as Phoenix does (the
// client raced a server close): no reply, and the channel stays.
func (c *conn) handleLeave(m *protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.channels[m.Topic]
	if ch == nil {
		c.reply(m, protocol.StatusOK, nil)
		return
	}
	if !ch.noJoinRef && m.JoinRef != ch.joinRef {
		c.log.Debug("Ignoring a leave for another join", logKeyTopic, m.Topic, "join_ref", clipLog(m.JoinRef))
		return
	}
	reply := *m
	reply.JoinRef = ch.joinRef
	c.reply(&reply, protocol.StatusOK, nil)
	c.closeChannelLocked(ch, protocol.EventClose)
}

// closeChannelLocked sends phx_close or phx_error for ch (join_ref = ref =
// the channel's join_ref) and removes it (c.mu held). phx_error carries
// {"reason":"channel_crash"}, as the Phoenix that Supabase pins sends for a
// channel that crashed; phx_close carries {}.
func (c *conn) closeChannelLocked(ch *channel, event string) {
	m := &protocol.Message{JoinRef: ch.joinRef, Ref: ch.joinRef, Topic: ch.topic, Event: event}
	if event == protocol.EventError {
		m.Payload = []byte(channelCrash)
	}
	c.sendMsg(m)
	c.removeChannelLocked(ch)
}

// channelCrash is the payload of phx_error.
const channelCrash = `{"reason":"channel_crash"}`

// shutdownLocked ends ch for a reason, as Supabase does: a system error
// with the message, then phx_close (c.mu held).
func (c *conn) shutdownLocked(ch *channel, message string) {
	c.log.Info("Channel shutdown", logKeyTopic, ch.topic, logKeyReason, message)
	c.s.stats.shutdowns.Add(1)
	c.sendSystem(ch, "system", protocol.StatusError, message)
	c.closeChannelLocked(ch, protocol.EventClose)
}

// shutdownIfCurrent is shutdownLocked for a channel that may have gone.
func (c *conn) shutdownIfCurrent(ch *channel, message string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.topic] == ch {
		c.shutdownLocked(ch, message)
	}
}

// sendSystem pushes a system message on ch.
func (c *conn) sendSystem(ch *channel, extension, status, message string) {
	p, _ := json.Marshal(protocol.System{Extension: extension, Status: status, Message: message, Channel: ch.sub})
	c.sendMsg(&protocol.Message{JoinRef: ch.joinRef, Topic: ch.topic, Event: protocol.EventSystem, Payload: p})
}

// removeChannelLocked forgets ch: no more deliveries, its presence leaves
// (a diff to the others), its expiry timer stops (c.mu held).
func (c *conn) removeChannelLocked(ch *channel) {
	if c.channels[ch.topic] != ch {
		return
	}
	delete(c.channels, ch.topic)
	ch.closeChangesLocked()
	if ch.stopExpiry != nil {
		ch.stopExpiry()
		ch.stopExpiry = nil
	}
	t := ch.t
	t.mu.Lock()
	t.removeLocked(ch)
	c.s.untrackLocked(t, ch)
	t.mu.Unlock()
	c.s.releaseTopic(t)
	c.s.stats.channels.Add(^uint64(0))
}

// scheduleExpiryLocked arms the token check of ch: at the token's exp (or
// in 5 minutes, whichever is first, as Supabase re-checks), an expired
// token shuts the channel down (c.mu held).
func (c *conn) scheduleExpiryLocked(ch *channel) {
	if ch.stopExpiry != nil {
		ch.stopExpiry()
	}
	d := ch.claims.Expires().Sub(c.s.now())
	if d < 0 {
		d = 0
	}
	d = min(d, 5*time.Minute)
	ch.stopExpiry = c.s.afterFunc(d, func() { c.checkToken(ch) })
}

func (c *conn) checkToken(ch *channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.topic] != ch {
		return
	}
	now := c.s.now().Unix()
	if ch.claims.Exp <= now {
		c.shutdownLocked(ch, fmt.Sprintf("Token has expired %d seconds ago", now-ch.claims.Exp))
		return
	}
	c.scheduleExpiryLocked(ch)
}

// handleBroadcast fans a broadcast push out to the topic, honouring self
// and ack. A binary (kind 3) push goes out as a kind-4 frame to 2.0.0
// subscribers and as JSON to 1.0.0 ones; a JSON push goes out verbatim;
// a Phoenix binary push (kind 0) goes out as a Phoenix binary broadcast
// (kind 2, event "broadcast") to 2.0.0 subscribers only.
func (c *conn) handleBroadcast(ch *channel, m *protocol.Message) {
	s := c.s
	lim := s.cfg.Limits
	size := len(m.Payload)
	switch {
	case m.Broadcast != nil:
		size = len(m.Broadcast.Payload)
	case m.Binary:
		size = len(m.Raw)
	}
	if lim.MaxPayloadSizeKB > 0 && size > lim.MaxPayloadSizeKB*1000 {
		c.log.Info("Broadcast dropped: payload size exceeded", logKeyTopic, ch.topic, "bytes", size)
		s.stats.rateLimited.Add(1)
		if ch.ack {
			c.sendMsg(&protocol.Message{JoinRef: m.JoinRef, Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
				Payload: protocol.ReplyPayload(protocol.StatusError, []byte(`"payload_size_exceeded"`))})
		}
		return
	}
	if m.Broadcast == nil && !m.Binary { // a binary push's event fits its one-byte length
		if n := longBroadcastEvent(m.Payload); n > 0 {
			c.log.Info("Broadcast dropped: event name too long", logKeyTopic, ch.topic, "bytes", n)
			s.stats.badFrames.Add(1)
			if ch.ack {
				c.replyError(m, eventTooLong(n))
			}
			return
		}
	}
	if !s.tenants.allow(ch.tenant, rateEvents, s.now(), lim.MaxEventsPerSecond, 1) {
		s.stats.rateLimited.Add(1)
		c.shutdownIfCurrent(ch, "Too many messages per second")
		return
	}
	if !c.mayBroadcast(ch) {
		// Supabase drops it: no fan-out, no reply even with ack.
		return
	}
	out := &protocol.Message{Topic: ch.topic, Event: protocol.EventBroadcast}
	switch {
	case m.Broadcast != nil:
		b := *m.Broadcast
		b.Meta = nil // Supabase does not forward push metadata
		out.Broadcast = &b
	case m.Binary:
		out.Binary, out.Raw = true, m.Raw
	default:
		out.Payload = m.Payload
	}
	skip := ch
	if ch.self {
		skip = nil
	}
	s.stats.broadcasts.Add(1)
	s.fanout(ch.t, skip, out)
	if ch.ack {
		c.reply(m, protocol.StatusOK, nil)
	}
}

// handlePresence answers a presence push: track or untrack.
func (c *conn) handlePresence(ch *channel, m *protocol.Message) {
	s := c.s
	var p struct {
		Event   *string         `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		c.replyError(m, "Presence push must be {\"event\":\"track\"|\"untrack\",\"payload\":{...}}")
		return
	}
	if p.Event == nil {
		c.reply(m, protocol.StatusOK, nil)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.topic] != ch {
		c.unmatched(m)
		return
	}
	now := s.now()
	lim := s.cfg.Limits
	if lim.ClientPresenceMaxCalls > 0 {
		switch {
		case ch.presenceReset.IsZero() || now.After(ch.presenceReset):
			ch.presenceCalls, ch.presenceReset = 1, now.Add(lim.ClientPresenceWindow)
		case ch.presenceCalls >= lim.ClientPresenceMaxCalls:
			s.stats.rateLimited.Add(1)
			c.shutdownLocked(ch, "Client presence rate limit exceeded")
			return
		default:
			ch.presenceCalls++
		}
	}
	switch strings.ToLower(*p.Event) {
	case "track":
		if !c.mayTrackLocked(ch) {
			c.reply(m, protocol.StatusError, nil)
			return
		}
		meta := []byte(p.Payload)
		if len(meta) == 0 || isNull(p.Payload) {
			meta = []byte("{}")
		}
		if !protocol.IsObject(meta) {
			c.replyError(m, "Presence track payload must be a map")
			return
		}
		if lim.MaxPayloadSizeKB > 0 && len(meta) > lim.MaxPayloadSizeKB*1000 {
			s.stats.rateLimited.Add(1)
			c.shutdownLocked(ch, "Track message size exceeded")
			return
		}
		sent := sumOf(meta)
		t := ch.t
		t.mu.Lock()
		if !sameMeta(t, ch, sent) { // a no-op re-track is not a presence event
			if !s.tenants.allow(ch.tenant, ratePresence, now, lim.MaxPresenceEventsPerSecond, 1) {
				t.mu.Unlock()
				s.stats.rateLimited.Add(1)
				c.shutdownLocked(ch, "Too many presence messages per second")
				return
			}
		}
		_, err := s.trackLocked(t, ch, meta, sent, func() { c.reply(m, protocol.StatusOK, nil) })
		t.mu.Unlock()
		var budget *presenceBudgetError
		switch {
		case errors.As(err, &budget):
			// The channel stays, with its previous meta if any.
			s.stats.presenceRefused.Add(1)
			c.log.Warn("Presence track refused", logKeyTopic, ch.topic, logKeyReason, budget.Error(), "meta_bytes", len(meta))
			c.replyError(m, budget.Error())
			return
		case err != nil:
			c.replyError(m, "Presence track payload must be a map")
			return
		}
		ch.presenceEnabled = true
	case "untrack":
		t := ch.t
		t.mu.Lock()
		c.reply(m, protocol.StatusOK, nil)
		s.untrackLocked(t, ch)
		t.mu.Unlock()
	default:
		c.log.Info("UnknownPresenceEvent", logKeyTopic, ch.topic, logKeyEvent, clipLog(*p.Event))
		c.reply(m, protocol.StatusError, nil)
	}
}

// sameMeta reports whether ch already tracks exactly the object sent
// identifies (t.mu held).
func sameMeta(t *topic, ch *channel, sent sentSum) bool {
	e := t.entryOfLocked(ch)
	return e != nil && e.sent == sent
}

// handleAccessToken applies an access_token push: a valid new token keeps
// the channel (no reply); an invalid one shuts it down.
func (c *conn) handleAccessToken(ch *channel, m *protocol.Message) {
	var p struct {
		AccessToken any `json:"access_token"`
	}
	if json.Unmarshal(m.Payload, &p) != nil {
		return
	}
	token, ok := p.AccessToken.(string)
	if !ok || strings.HasPrefix(token, "sb_") {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.topic] != ch || token == ch.token {
		return
	}
	claims, aerr := verifyToken(token, c.s.cfg.JWTSecret, c.s.now())
	if aerr != nil {
		c.shutdownLocked(ch, aerr.Message)
		return
	}
	if msg := c.recheckLocked(ch, claims); msg != "" {
		c.shutdownLocked(ch, msg)
		return
	}
	if (ch.private && c.s.cfg.Authorizer == nil && !canUsePrivate(claims.Role)) || tenantRefusal(ch.sub, claims) != "" {
		// The new token reads neither broadcast nor presence: Supabase's
		// words for that ("You no longer have permission ..." is for a
		// token that keeps one of the two reads, which the role rule
		// never gives).
		c.shutdownLocked(ch, "You do not have permissions to read from this Channel topic: "+ch.sub)
		return
	}
	old := ch.claims
	ch.token, ch.claims = token, claims
	c.log.Debug("Channel token refreshed", logKeyTopic, ch.topic, "token", MaskToken(token))
	if len(ch.changeBindings) > 0 && (old.Role != claims.Role || old.Sub != claims.Sub) {
		// As Supabase: the subscription is re-created with the new claims.
		c.subscribeChangesLocked(ch)
	}
	c.scheduleExpiryLocked(ch)
}
