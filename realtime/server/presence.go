package server

import (
	"fmt"

	"rtm/realtime/protocol"
)

// Presence budgets.
//
// Every tracked meta is charged to its connection and to the server: the
// bytes the server keeps for it (presenceCost). A track that would take
// either over its budget (Config.MaxPresenceBytesPerConn,
// Config.MaxPresenceBytes) is refused with an error reply and changes
// nothing; untrack, leave, channel shutdown, socket close and Restart
// (which closes every socket) give the bytes back.
//
// What else grows with presence stays bounded by these budgets and by the
// outbound queue: a presence_state holds the metas of one topic (at most
// the server's budget) and is encoded once per join, and not at all when
// it could not fit the joiner's outbound queue (sendPresenceStateLocked);
// a presence_diff holds one or two metas (each at most
// Limits.MaxPayloadSizeKB) encoded once per serializer and shared by every
// subscriber's queue, which is bounded by Config.OutboundQueueBytes.

// presenceEntryOverhead is what one presence entry costs beside its meta,
// refs and key: the entry itself, its slot in the key's slice and its
// share of the presence map.
const presenceEntryOverhead = 192

// presenceCost is the bytes the server keeps for meta tracked under key.
func presenceCost(key string, meta protocol.PresenceMeta) int {
	return cap(meta.Raw) + len(meta.Ref) + len(meta.PrevRef) + len(key) + presenceEntryOverhead
}

// presenceBudgetError refuses a track that would exceed a presence budget.
// Its text is the reason of the error reply.
type presenceBudgetError struct {
	server      bool  // the server-wide budget, else the connection's
	need, limit int64 // bytes the presence would take; the budget
}

func (e *presenceBudgetError) Error() string {
	if e.server {
		return fmt.Sprintf("PresenceBudgetExceeded: Presence on this server would take %d bytes, over its budget of %d", e.need, e.limit)
	}
	return fmt.Sprintf("PresenceBudgetExceeded: This connection's presence would take %d bytes, over its budget of %d", e.need, e.limit)
}

// chargePresence adds delta bytes to the presence of c and of the server
// (c.mu held). A growth that would take either over its budget is refused
// with a *presenceBudgetError and changes nothing; a shrink always
// succeeds.
func (s *Server) chargePresence(c *conn, delta int) error {
	if delta <= 0 {
		s.releasePresence(c, -delta)
		return nil
	}
	if max := s.cfg.MaxPresenceBytesPerConn; max > 0 && c.presenceBytes+delta > max {
		return &presenceBudgetError{need: int64(c.presenceBytes + delta), limit: int64(max)}
	}
	total := &s.stats.presenceBytes
	for {
		cur := total.Load()
		if max := int64(s.cfg.MaxPresenceBytes); max > 0 && cur+int64(delta) > max {
			return &presenceBudgetError{server: true, need: cur + int64(delta), limit: max}
		}
		if total.CompareAndSwap(cur, cur+int64(delta)) {
			break
		}
	}
	c.presenceBytes += delta
	return nil
}

// releasePresence gives n bytes of c's presence back (c.mu held).
func (s *Server) releasePresence(c *conn, n int) {
	c.presenceBytes -= n
	s.stats.presenceBytes.Add(-int64(n))
}

// presenceSizeLocked returns the bytes of t's metas, a lower bound of
// the size of its presence_state (t.mu held).
func (t *topic) presenceSizeLocked() int {
	n := 0
	for _, entries := range t.presence {
		for _, e := range entries {
			n += len(e.meta.Raw)
		}
	}
	return n
}

// sendPresenceStateLocked queues t's presence_state on ch (t.mu and c.mu
// held). A state bigger than the whole outbound queue could never be
// queued: the connection is dropped as a slow consumer, as queueing it
// would do, but before the state is encoded.
func (c *conn) sendPresenceStateLocked(ch *channel, t *topic) {
	if n := t.presenceSizeLocked(); n > c.s.cfg.OutboundQueueBytes {
		c.dropSlow("presence_state larger than the outbound queue", n)
		return
	}
	c.sendMsg(&protocol.Message{JoinRef: ch.joinRef, Topic: ch.topic, Event: protocol.EventPresenceState,
		Payload: t.presenceStateLocked()})
}

// dropSlow drops c as a slow consumer, as send does when the queue is
// full, for a frame of n bytes that is not even encoded.
func (c *conn) dropSlow(reason string, n int) {
	c.qmu.Lock()
	if c.qclosed {
		c.qmu.Unlock()
		return
	}
	c.qclosed = true
	c.queue, c.qbytes = nil, 0
	c.qmu.Unlock()
	c.s.stats.slowDrops.Add(1)
	c.log.Warn("Dropping slow consumer", logKeyReason, reason, "bytes", n,
		"limit_frames", c.s.cfg.OutboundQueue, "limit_bytes", c.s.cfg.OutboundQueueBytes)
	c.kill()
}
