package realtime

import (
	"fmt"
	"time"

	"rtm/realtime/protocol"
)

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
