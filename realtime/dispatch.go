package realtime

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"rtm/realtime/protocol"
)

// handleFrame decodes and dispatches one frame read from c. It runs on the
// read loop, never blocks on a consumer, and never panics on bad input:
// malformed frames, unknown topics or events, stale join refs and replies
// to unknown refs are logged and dropped.
func (s *Socket) handleFrame(c *conn, data []byte, binary bool, at time.Time) {
	s.st.framesIn.Add(1)
	s.st.bytesIn.Add(uint64(len(data)))
	var f protocol.ServerFrame
	ps := &c.presence
	err := s.vsn.ScanServerPresence(data, binary, &f, ps)
	tap := s.tap.Load()
	if err != nil {
		if tap != nil {
			tap.push(Frame{Dir: In, Time: at, Conn: c.gen, Data: data, Binary: binary, Err: err}, frameCost+len(data), pushDrop)
		}
		n := s.st.decodeErrors.Add(1)
		if n <= 10 || n%1000 == 0 {
			s.log.Warn("Dropping malformed frame", logErr, err, "size", len(data), "binary", binary, logCount, n)
		}
		return
	}
	if f.Event == protocol.EventReply && isPhoenix(f.Topic) {
		if tap != nil {
			tap.push(tapFrame(c, data, binary, at, &f, protocol.PhoenixTopic, ""), frameCost+len(data), pushDrop)
		}
		s.heartbeatReply(c, &f, at)
		return
	}
	s.mu.Lock()
	if tap != nil {
		// Strings the channel already holds cost no allocation.
		topic, joinRef := "", ""
		if ch := s.channels[string(f.Topic)]; ch != nil {
			topic = ch.topic
			if string(f.JoinRef) == ch.joinRef {
				joinRef = ch.joinRef
			}
		}
		tap.push(tapFrame(c, data, binary, at, &f, topic, joinRef), frameCost+len(data), pushDrop)
	}
	s.dispatchLocked(&f, ps, len(data), at)
	s.mu.Unlock()
	releaseSpans(ps) // they alias data
}

// tapFrame builds the tap's view of a scanned frame without decoding it
// again; topic and joinRef, when not empty, are interned copies.
func tapFrame(c *conn, data []byte, binary bool, at time.Time, f *protocol.ServerFrame, topic, joinRef string) Frame {
	if topic == "" {
		topic = string(f.Topic)
	}
	if joinRef == "" && f.JoinRef != nil {
		joinRef = string(f.JoinRef)
	}
	m := protocol.Message{JoinRef: joinRef, Topic: topic, Event: f.Event, Payload: f.Payload}
	if f.Ref != nil {
		m.Ref = string(f.Ref)
	}
	if binary && f.HasBroadcast {
		b, _ := f.Broadcast()
		m.Broadcast = &b
	}
	return Frame{Dir: In, Time: at, Conn: c.gen, Data: data, Binary: binary, Message: m}
}

func (s *Socket) heartbeatReply(c *conn, f *protocol.ServerFrame, at time.Time) {
	if f.Ref == nil {
		return
	}
	r, err := protocol.ParseReply(f.Payload)
	select {
	case c.hbReply <- hbReply{ref: string(f.Ref), ok: err == nil && r.Status == protocol.StatusOK, at: at}:
	default:
	}
}

// dispatchLocked routes a scanned frame; ps holds its presence payload.
func (s *Socket) dispatchLocked(f *protocol.ServerFrame, ps *protocol.PresenceSpans, size int, at time.Time) {
	ch := s.channels[string(f.Topic)]
	if ch == nil {
		s.log.Debug("Dropping frame for a topic without channel", logTopic, string(f.Topic), logEvent, f.Event)
		return
	}
	if f.JoinRef != nil && string(f.JoinRef) != ch.joinRef {
		s.log.Debug("Dropping outdated message", logTopic, ch.topic, logEvent, f.Event, logJoinRef, string(f.JoinRef))
		return
	}
	ch.msgsIn++
	ch.bytesIn += uint64(size)
	ch.lastMsg = at
	switch f.Event {
	case protocol.EventBroadcast:
		if !f.HasBroadcast {
			s.log.Debug("Dropping broadcast without a user event", logTopic, ch.topic)
			return
		}
		ch.emit(Event{Type: EventBroadcast, Time: at, Channel: ch, Broadcast: Broadcast{
			Event:   ch.internName(f.BroadcastEvent),
			Payload: f.BroadcastPayload,
			Binary:  f.BroadcastBinary,
			Meta:    f.BroadcastMeta,
		}}, size)
	case protocol.EventReply:
		s.replyLocked(ch, f)
	case protocol.EventPresenceState:
		events, sync, err := ch.presence.applyStateSpans(ps, ch.joinRef)
		if err != nil {
			s.log.Warn("Bad presence_state", logTopic, ch.topic, logErr, err)
		}
		ch.emitPresence(events, sync, at)
	case protocol.EventPresenceDiff:
		events, held, err := ch.presence.applyDiffSpans(ps, f.Payload, ch.joinRef)
		if err != nil {
			s.log.Warn("Bad presence_diff", logTopic, ch.topic, logErr, err)
		}
		ch.emitPresence(events, !held && err == nil, at)
	case protocol.EventPostgresChanges:
		s.postgresChangeLocked(ch, f, size, at)
	case protocol.EventSystem:
		var sys protocol.System
		if !protocol.IsObject(f.Payload) {
			s.log.Warn("Bad system message: payload is not an object", logTopic, ch.topic)
			return
		}
		if err := json.Unmarshal(f.Payload, &sys); err != nil {
			s.log.Warn("Bad system message", logTopic, ch.topic, logErr, err)
			return
		}
		if sys.Status == protocol.StatusError {
			ch.systemErr = &SystemError{System: sys}
		}
		s.log.Info("System message", logTopic, ch.topic, "extension", sys.Extension, "status", sys.Status, "message", sys.Message)
		if ch.q != nil && !ch.q.push(Event{Type: EventSystem, Time: at, Channel: ch, System: &sys}, eventCost+size, pushSoft) {
			ch.countDrop()
		}
	case protocol.EventClose:
		if f.Ref != nil && string(f.Ref) != ch.joinRef {
			return
		}
		s.log.Info("Channel closed by the server", logTopic, ch.topic, logErr, ch.systemErr)
		s.closeChannelLocked(ch, ch.systemErr, nil)
	case protocol.EventError:
		if f.Ref != nil && string(f.Ref) != ch.joinRef {
			return
		}
		if ch.state != ChannelJoined && ch.state != ChannelJoining {
			return
		}
		s.log.Warn("Channel error from the server", logTopic, ch.topic, "payload", string(f.Payload))
		s.errorChannelLocked(ch, ErrChannelError)
		s.scheduleRejoinLocked(ch)
	default:
		s.log.Debug("Dropping unknown event", logTopic, ch.topic, logEvent, f.Event)
	}
}

func (s *Socket) replyLocked(ch *Channel, f *protocol.ServerFrame) {
	p := s.pending[string(f.Ref)]
	if p == nil || p.ch != ch {
		s.log.Debug("Dropping reply for an unknown ref", logTopic, ch.topic, logRef, string(f.Ref))
		return
	}
	r, err := protocol.ParseReply(f.Payload)
	if err != nil {
		s.log.Warn("Dropping malformed reply", logTopic, ch.topic, logRef, p.ref, logErr, err)
		return
	}
	s.completeLocked(p, r.Status, r.Response, nil)
}

func (s *Socket) postgresChangeLocked(ch *Channel, f *protocol.ServerFrame, size int, at time.Time) {
	var pc protocol.PostgresChangesPayload
	if err := json.Unmarshal(f.Payload, &pc); err != nil {
		s.log.Warn("Bad postgres_changes message", logTopic, ch.topic, logErr, err)
		return
	}
	var matched []int
	for i, b := range ch.cfg.PostgresChanges {
		if i >= len(ch.ids) || ch.ids[i] == 0 || !slices.Contains(pc.IDs, ch.ids[i]) {
			continue
		}
		if b.Event != "*" && !strings.EqualFold(b.Event, pc.Data.Type) {
			continue
		}
		matched = append(matched, i)
	}
	if len(matched) == 0 {
		s.log.Debug("Dropping postgres change matching no binding", logTopic, ch.topic)
		return
	}
	ch.emit(Event{Type: EventPostgresChange, Time: at, Channel: ch, Change: &PostgresChange{Bindings: matched, IDs: pc.IDs, ChangeData: pc.Data}}, size)
}

// emitPresence delivers the presence events of one frame, then a sync
// when sync is set, in one hand-off to the channel's queue: joins and
// leaves may be dropped for a slow consumer like other stream events
// (each costs what it keeps alive), syncs never are but are coalesced: at
// most one waits, after the last join or leave queued (a sync carries
// nothing; the state itself is always complete in [Channel.Presence]).
// It also logs a change of the state's truncation (rate-limited: when it
// begins, each time it doubles, when it clears).
func (ch *Channel) emitPresence(events []PresenceEvent, sync bool, at time.Time) {
	ch.logTruncation()
	if ch.q == nil || (len(events) == 0 && !sync) {
		return
	}
	dropped := 0
	ch.q.lock()
	for i := range events {
		if slot := ch.q.slotLocked(eventCost+events[i].size, pushDrop); slot != nil {
			*slot = Event{Type: EventPresence, Time: at, Channel: ch, Presence: &events[i]}
		} else {
			dropped++
		}
	}
	if sync {
		*ch.q.lastLocked(eventCost) = Event{Type: EventPresence, Time: at, Channel: ch, Presence: &ch.presence.syncEvent}
	}
	ch.q.unlock()
	for range dropped {
		ch.countDrop()
	}
}

// logTruncation logs the news of the presence state's truncation that
// the frame just applied made (on the read loop, which applies them).
func (ch *Channel) logTruncation() {
	p := ch.presence
	n := p.takeNews()
	switch {
	case n.report:
		l, t := p.lim, n.t
		ch.s.log.Warn("Presence truncated: the state is over its limits, what does not fit is not kept", logTopic, ch.topic,
			"members_not_kept", t.Members, "metas_not_kept", t.Metas, "diffs_dropped", t.Diffs,
			"max_members", l.MaxMembers, "max_metas", l.MaxMetas, "max_bytes", l.MaxBytes)
	case n.complete:
		ch.s.log.Info("Presence complete again: a presence_state fit", logTopic, ch.topic)
	}
}
