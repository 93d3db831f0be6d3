package apps

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
)

// channel is the state of one topic of a socket.
type channel struct {
	c Channel // Attempts, Presence, Messages and TokenPushes: see below

	attempts []Attempt
	joinRef  string // the ref of the join in flight or held
	joinJR   string // its join_ref ("" when the app sent none)
	// leaveRef is the ref of the app's last phx_leave, leaveOf the
	// joinRef of the join it left: an older one than joinRef when the
	// app joined again since (phoenix.js and realtime-js leave a topic
	// they hold before a second channel instance of it joins).
	leaveRef, leaveOf string
	failedAt          time.Time // when the last attempt failed, for the next delay

	members       map[string][]Meta
	presenceBytes int

	ring      ring // the last messages
	ringBytes int

	pushes     []TokenPush
	expFlagged bool
}

// channelFrame handles a frame on a channel topic.
// pre, when set, is the token of a join or push read before masking.
func (m *Model) channelFrame(s *socket, f proxy.Frame, msg *protocol.Message, size int, pre *TokenInfo) {
	ch := s.chans[msg.Topic]
	if ch == nil {
		if len(s.chans) >= m.opt.MaxChannels {
			s.s.ChannelFramesDropped++
			return
		}
		ch = &channel{c: Channel{Topic: clip(mask.Text(msg.Topic), 256)}, members: make(map[string][]Meta)}
		s.chans[msg.Topic] = ch
		s.corder = append(s.corder, ch)
	}
	if f.Dir == proxy.FromApp {
		switch msg.Event {
		case protocol.EventJoin:
			m.join(s, ch, f.Time, msg, pre)
			return
		case protocol.EventLeave:
			ch.leaveRef, ch.leaveOf = msg.Ref, ch.joinRef
			if a, ok := ch.lastAttempt(); ok && a.Outcome == "" {
				// A leave after an unanswered join: the app gave up on
				// it (realtime-js's join timeout); its rejoin delay
				// counts from here.
				ch.failedAt = f.Time
			}
			m.publish(Event{Type: TypeChannel, Time: f.Time, Socket: s.s.ID, Topic: ch.c.Topic, Action: "leave", Ref: clip(msg.Ref, 64)})
			return
		case protocol.EventAccessToken:
			m.tokenPush(s, ch, f.Time, msg, pre)
			return
		}
	} else {
		if ch.stale(msg) {
			// phx_error or phx_close of an earlier join than the app's
			// current one (the close of the join it left before joining
			// again): the app ignores it, so does the model.
			return
		}
		switch msg.Event {
		case protocol.EventReply:
			if m.reply(s, ch, f.Time, msg) {
				return
			}
		case protocol.EventError:
			ch.failedAt = f.Time
			m.setStatus(s, ch, f.Time, StatusErrored, "phx_error")
			return
		case protocol.EventClose:
			ch.failedAt = f.Time
			switch {
			case ch.leaveRef != "" && ch.leaveOf == ch.joinRef:
				m.setStatus(s, ch, f.Time, StatusLeft, "")
			case ch.c.Status == StatusJoined && ch.c.Reason != "":
				// The system error that came before it (a joined
				// channel has no other reason): the expired token.
				m.setStatus(s, ch, f.Time, StatusClosed, ch.c.Reason)
			default:
				m.setStatus(s, ch, f.Time, StatusClosed, "phx_close")
			}
			return
		case protocol.EventPresenceState, protocol.EventPresenceDiff:
			m.presence(s, ch, f.Time, msg)
		case protocol.EventSystem:
			var sys protocol.System
			if json.Unmarshal(msg.Payload, &sys) == nil && sys.Status == protocol.StatusError {
				ch.c.Reason = clip(mask.Text(sys.Message), 256)
			}
		}
	}
	m.message(s, ch, f, msg, size)
}

// join handles the app's phx_join.
func (m *Model) join(s *socket, ch *channel, now time.Time, msg *protocol.Message, pre *TokenInfo) {
	var jp protocol.JoinPayload
	_ = json.Unmarshal(msg.Payload, &jp) // a bad payload joins with a zero config
	if ch.c.Status == StatusJoined && (ch.leaveRef == "" || ch.leaveOf != ch.joinRef) {
		m.flag(Flag{Kind: FlagDuplicateTopic, Time: now, Socket: s.s.ID, Topic: ch.c.Topic,
			Text: fmt.Sprintf("socket %d joined %s again while holding it", s.s.ID, ch.c.Topic)})
	}
	tok := s.s.Token
	if t := jp.Token(); pre != nil {
		tok = *pre
	} else if t != "" {
		tok = tokenInfo(t)
	}
	a := Attempt{Time: now, Ref: clip(msg.Ref, 64), Role: tok.Role, Subject: tok.Subject}
	prev, prevOK := ch.lastAttempt()
	if prevOK && prev.Outcome == "" {
		// The previous join had no answer: the app gave up on it (when
		// it left, if it did).
		ch.attempts[len(ch.attempts)-1].Outcome = "timeout"
		if ch.failedAt.IsZero() {
			ch.failedAt = prev.Time
		}
	}
	if prevOK && !ch.failedAt.IsZero() {
		a.Delay = now.Sub(ch.failedAt)
	}
	if !prevOK && s.prev != nil {
		// The first join on a socket that replaced another: compare
		// with that socket's last join of the topic.
		if pc := s.prev.chans[msg.Topic]; pc != nil {
			prev, prevOK = pc.lastAttempt()
		}
	}
	if prevOK && (prev.Role != a.Role || prev.Subject != a.Subject) {
		m.flag(Flag{Kind: FlagIdentityChanged, Time: now, Socket: s.s.ID, Topic: ch.c.Topic,
			Text: fmt.Sprintf("%s rejoined as role %q subject %q, the join before was role %q subject %q", ch.c.Topic, a.Role, a.Subject, prev.Role, prev.Subject)})
	}
	ch.failedAt = time.Time{}
	ch.joinRef, ch.joinJR = msg.Ref, msg.JoinRef
	if len(ch.attempts) >= m.opt.MaxAttempts {
		ch.attempts = slices.Delete(ch.attempts, 0, 1)
		ch.c.AttemptsDropped++
	}
	ch.attempts = append(ch.attempts, a)
	cfg := jp.Config
	ch.c.Private = bool(cfg.Private)
	ch.c.Config = JoinConfig{
		BroadcastSelf: bool(cfg.Broadcast.Self), BroadcastAck: bool(cfg.Broadcast.Ack),
		PresenceKey: clip(cfg.Presence.Key, 256), PresenceEnabled: bool(cfg.Presence.Enabled),
	}
	for i, b := range cfg.PostgresChanges {
		if i == 64 {
			break
		}
		ch.c.Config.PostgresChanges = append(ch.c.Config.PostgresChanges, Binding{Event: clip(b.Event, 16), Schema: clip(b.Schema, 128), Table: clip(b.Table, 128), Filter: clip(b.Filter, 512)})
	}
	ch.c.Token = tok
	ch.expFlagged = false
	s.noteExpiry(tok.Expiry)
	attempt := len(ch.attempts) + int(ch.c.AttemptsDropped)
	m.setStatus(s, ch, now, StatusJoining, "")
	m.publish(Event{Type: TypeChannel, Time: now, Socket: s.s.ID, Topic: ch.c.Topic, Action: "join", Status: StatusJoining,
		Ref: a.Ref, Attempt: attempt, DelayMS: ms(a.Delay), Role: a.Role, Subject: a.Subject, Private: ch.c.Private})
	held := 0
	for _, c := range s.corder {
		if c.c.Status == StatusJoined || c.c.Status == StatusJoining {
			held++
		}
	}
	if held > m.opt.ChannelLimit && !s.limitFlagged {
		s.limitFlagged = true
		m.flag(Flag{Kind: FlagChannelLimit, Time: now, Socket: s.s.ID, Topic: ch.c.Topic,
			Text: fmt.Sprintf("socket %d holds %d channels, over the limit of %d", s.s.ID, held, m.opt.ChannelLimit)})
	}
}

// reply handles a phx_reply to a join or a leave; false for any other.
func (m *Model) reply(s *socket, ch *channel, now time.Time, msg *protocol.Message) bool {
	switch {
	case msg.Ref != "" && msg.Ref == ch.leaveRef:
		if ch.leaveOf == ch.joinRef {
			m.setStatus(s, ch, now, StatusLeft, "")
		}
		return true
	case msg.Ref == "" || msg.Ref != ch.joinRef || len(ch.attempts) == 0:
		return false
	}
	a := &ch.attempts[len(ch.attempts)-1]
	if a.Outcome != "" && a.Outcome != "timeout" {
		return false
	}
	r, err := protocol.ParseReply(msg.Payload)
	if err != nil {
		return false
	}
	a.Replied = now
	if r.Status == protocol.StatusOK {
		a.Outcome = "ok"
		var resp struct {
			PostgresChanges []protocol.PostgresChange `json:"postgres_changes"`
		}
		if json.Unmarshal(r.Response, &resp) == nil {
			for i := range ch.c.Config.PostgresChanges {
				if i < len(resp.PostgresChanges) {
					ch.c.Config.PostgresChanges[i].ID = resp.PostgresChanges[i].ID
				}
			}
		}
		m.setStatus(s, ch, now, StatusJoined, "")
		return true
	}
	a.Outcome, a.Reason = "error", clip(mask.Text(r.Reason()), 256)
	ch.failedAt = now
	m.setStatus(s, ch, now, StatusErrored, a.Reason)
	return true
}

// setStatus moves ch to st and publishes it.
func (m *Model) setStatus(s *socket, ch *channel, now time.Time, st Status, reason string) {
	ch.c.Status, ch.c.Reason = st, reason
	if st == StatusJoining {
		return // published by join with its attempt
	}
	m.publish(Event{Type: TypeChannel, Time: now, Socket: s.s.ID, Topic: ch.c.Topic, Action: string(st), Status: st, Reason: reason})
}

// tokenPush handles the app's access_token push.
func (m *Model) tokenPush(s *socket, ch *channel, now time.Time, msg *protocol.Message, pre *TokenInfo) {
	var p protocol.AccessTokenPayload
	_ = json.Unmarshal(msg.Payload, &p)
	tok := tokenInfo(p.AccessToken)
	if pre != nil {
		tok = *pre
	}
	if len(ch.pushes) >= m.opt.MaxTokenPushes {
		ch.pushes = slices.Delete(ch.pushes, 0, 1)
		ch.c.TokenPushesDropped++
	}
	ch.pushes = append(ch.pushes, TokenPush{Time: now, Token: tok})
	ch.c.Token = tok
	ch.expFlagged = false
	s.noteExpiry(tok.Expiry)
	m.publish(Event{Type: TypeChannel, Time: now, Socket: s.s.ID, Topic: ch.c.Topic, Action: "token",
		Token: tok.Masked, Role: tok.Role, Subject: tok.Subject, Expiry: expiryText(tok.Expiry)})
}

// presence applies a presence_state or presence_diff.
func (m *Model) presence(s *socket, ch *channel, now time.Time, msg *protocol.Message) {
	ev := Event{Type: TypePresence, Time: now, Socket: s.s.ID, Topic: ch.c.Topic}
	join := func(key string, metas []protocol.PresenceMeta) error {
		ch.c.PresenceJoins++
		m.addMetas(ch, key, metas)
		ev.Action, ev.Key, ev.Metas = "join", memberKey(key), len(metas)
		m.publish(ev)
		return nil
	}
	if msg.Event == protocol.EventPresenceState {
		clear(ch.members)
		m.bytes -= ch.presenceBytes
		ch.presenceBytes = 0
		n := 0
		err := protocol.ScanPresenceState(msg.Payload, func(key string, metas []protocol.PresenceMeta) error {
			n++
			m.addMetas(ch, key, metas)
			return nil
		})
		if err == nil {
			ev.Action, ev.Members = "state", n
			m.publish(ev)
		}
		return
	}
	var leaves []func()
	_ = protocol.ScanPresenceDiff(msg.Payload, join, func(key string, metas []protocol.PresenceMeta) error {
		// phoenix applies the joins first: buffer the leaves.
		leaves = append(leaves, func() {
			ch.c.PresenceLeaves++
			m.removeMetas(ch, key, metas)
			ev.Action, ev.Key, ev.Metas = "leave", memberKey(key), len(metas)
			m.publish(ev)
		})
		return nil
	})
	for _, f := range leaves {
		f()
	}
}

// addMetas adds metas to key, within the bounds.
func (m *Model) addMetas(ch *channel, key string, metas []protocol.PresenceMeta) {
	key = memberKey(key)
	cur, ok := ch.members[key]
	if !ok && len(ch.members) >= m.opt.MaxMembers {
		ch.c.PresenceDropped += uint64(len(metas))
		return
	}
	for _, pm := range metas {
		mt := Meta{Ref: clip(pm.Ref, 64)}
		mt.JSON, _ = m.maskClip(pm.Raw, m.opt.MaxMetaBytes)
		size := len(mt.Ref) + len(mt.JSON) + len(key)
		if len(cur) >= m.opt.MaxMetas || ch.presenceBytes+size > m.opt.MaxPresenceBytes || m.bytes+size > m.opt.MaxBytes {
			ch.c.PresenceDropped++
			continue
		}
		ch.presenceBytes += size
		m.bytes += size
		cur = append(cur, mt)
	}
	if len(cur) > 0 || ok {
		ch.members[key] = cur
	}
}

// removeMetas removes the metas of key by their refs; a key left with
// none is gone.
func (m *Model) removeMetas(ch *channel, key string, metas []protocol.PresenceMeta) {
	key = memberKey(key)
	cur, ok := ch.members[key]
	if !ok {
		return
	}
	cur = slices.DeleteFunc(cur, func(mt Meta) bool {
		gone := slices.ContainsFunc(metas, func(pm protocol.PresenceMeta) bool { return pm.Ref == mt.Ref })
		if gone {
			size := len(mt.Ref) + len(mt.JSON) + len(key)
			ch.presenceBytes -= size
			m.bytes -= size
		}
		return gone
	})
	if len(cur) == 0 {
		delete(ch.members, key)
		return
	}
	ch.members[key] = cur
}

// message records a frame in the channel's ring.
func (m *Model) message(s *socket, ch *channel, f proxy.Frame, msg *protocol.Message, size int) {
	mm := Message{Time: f.Time, Dir: f.Dir.String(), Event: clip(msg.Event, 128), Bytes: size}
	payload := []byte(msg.Payload)
	switch {
	case msg.Binary:
		// A Phoenix binary frame (phoenix.js's push of an ArrayBuffer,
		// kind 0, or the server's kind-2 broadcast of it): no user event.
		payload, mm.Binary = msg.Raw, true
	case msg.Broadcast != nil:
		mm.UserEvent = clip(mask.Text(msg.Broadcast.Event), 128)
		payload, mm.Binary = msg.Broadcast.Payload, msg.Broadcast.Binary
	case msg.Event == protocol.EventBroadcast:
		if b, err := msg.UserBroadcast(); err == nil {
			mm.UserEvent = clip(mask.Text(b.Event), 128)
			payload = b.Payload
		}
	}
	mm.Payload, mm.Clipped = m.payloadText(payload, mm.Binary)
	if f.Dir == proxy.FromApp {
		ch.c.MessagesFromApp++
		ch.c.BytesFromApp += uint64(size)
	} else {
		ch.c.MessagesToApp++
		ch.c.BytesToApp += uint64(size)
	}
	m.push(ch, mm)
	m.publish(Event{Type: TypeMessage, Time: f.Time, Socket: s.s.ID, Topic: ch.c.Topic, Action: "message",
		Dir: mm.Dir, Event: mm.Event, UserEvent: mm.UserEvent, Bytes: size, Payload: mm.Payload, Binary: mm.Binary})
}

// maskClip masks data and clips it to n bytes, and says whether it cut
// (masking alone, which shortens a key, is no cut: a recording's masked
// payload reads the same); data over maxMaskedPayload is only described.
func (m *Model) maskClip(data []byte, n int) (string, bool) {
	if len(data) > maxMaskedPayload {
		return fmt.Sprintf("(%d bytes, not kept)", len(data)), true
	}
	s := string(mask.JSON(data))
	return clip(s, n), len(s) > n
}

// payloadText is a message payload as kept: JSON masked and clipped to
// MaxPayloadBytes, a binary payload in hex (hexClip); and whether it cut.
func (m *Model) payloadText(payload []byte, binary bool) (string, bool) {
	if binary {
		return m.hexClip(payload, m.opt.MaxPayloadBytes)
	}
	return m.maskClip(payload, m.opt.MaxPayloadBytes)
}

// hexClip masks raw bytes as text (a token in them is masked as in any
// payload) and shows them in hex, "00 01 fe", clipped to n characters
// (whole bytes), and says whether it cut; data over maxMaskedPayload is
// only described.
func (m *Model) hexClip(data []byte, n int) (string, bool) {
	if len(data) > maxMaskedPayload {
		return fmt.Sprintf("(%d bytes, not kept)", len(data)), true
	}
	b := mask.Text(string(data))
	k := min(len(b), (n+1)/3)
	return fmt.Sprintf("% x", b[:k]), k < len(b)
}

// push adds mm to the ring of ch, dropping the oldest beyond the
// channel's bounds; a message the model's MaxBytes has no room for is
// dropped.
func (m *Model) push(ch *channel, mm Message) {
	for ch.ring.n > 0 && (ch.ring.n >= m.opt.MaxMessages || ch.ringBytes+len(mm.Payload) > m.opt.MaxMessageBytes) {
		size := len(ch.ring.oldest().Payload)
		ch.ringBytes -= size
		m.bytes -= size
		ch.ring.drop()
		ch.c.MessagesDropped++
	}
	if m.bytes+len(mm.Payload) > m.opt.MaxBytes {
		ch.c.MessagesDropped++
		return
	}
	ch.ringBytes += len(mm.Payload)
	m.bytes += len(mm.Payload)
	ch.ring.add(mm, m.opt.MaxMessages)
}

// memberKey is a presence key as kept: masked and clipped.
func memberKey(key string) string { return clip(mask.Text(key), 256) }

// stale reports whether msg, from the server, is a phx_error or
// phx_close of another join than the app's current one of ch (by
// join_ref, when both have one): phoenix.js and realtime-js drop those.
func (ch *channel) stale(msg *protocol.Message) bool {
	return (msg.Event == protocol.EventError || msg.Event == protocol.EventClose) &&
		msg.JoinRef != "" && ch.joinJR != "" && msg.JoinRef != ch.joinJR
}

// lastAttempt returns the channel's latest join attempt.
func (ch *channel) lastAttempt() (Attempt, bool) {
	if len(ch.attempts) == 0 {
		return Attempt{}, false
	}
	return ch.attempts[len(ch.attempts)-1], true
}

// snapshot returns a deep copy of ch.
func (ch *channel) snapshot() Channel {
	c := ch.c
	c.Config.PostgresChanges = slices.Clone(ch.c.Config.PostgresChanges)
	c.Attempts = slices.Clone(ch.attempts)
	c.TokenPushes = slices.Clone(ch.pushes)
	c.Messages = ch.ring.items()
	c.Presence = make([]Member, 0, len(ch.members))
	for k, v := range ch.members {
		c.Presence = append(c.Presence, Member{Key: k, Metas: slices.Clone(v)})
	}
	sort.Slice(c.Presence, func(i, j int) bool { return c.Presence[i].Key < c.Presence[j].Key })
	return c
}
