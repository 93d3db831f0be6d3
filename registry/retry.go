package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"rtm/realtime"
)

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
		if e.leaving != nil || e.retry.exhausted {
			continue
		}
		if e.retry.timer != nil {
			p := m.policyOf(e)
			e.retry.stopTimer()
			e.retry.heldBreaker = false
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.retry.attempts + 1,
				Max: p.MaxAttempts(), Outcome: RetryHeld, Reason: "waiting for the socket", Policy: m.specOf(e)})
		}
		e.retry.heldSocket = true
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
		if !e.retry.heldSocket || e.leaving != nil || e.retry.exhausted || e.status == StatusConnected || e.retry.timer != nil || e.retry.inFlight {
			continue
		}
		e.retry.heldSocket = false
		e.status = StatusConnecting
		e.reason = "socket open: rejoining"
		m.publishStateLocked(e, e.reason)
		if e.ch == nil {
			m.wg.Add(1)
			go m.attach(e, e.gen)
		}
	}
}

func (m *Manager) onStatusLocked(e *entry, gen uint64, ev realtime.Event) {
	now := m.clk.Now()
	switch ev.Status {
	case realtime.Subscribed:
		rejoin := e.join.count > 0
		e.join.count++
		e.join.at = now
		e.joinRef = ev.JoinRef
		e.join.ready = false
		e.join.synced = false
		e.join.tokenExpiry = m.tokenInfo.Expiry
		if e.ch != nil {
			e.join.ids = e.ch.ServerIDs()
		}
		if e.retry.series {
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.retry.attempts,
				Max: m.policyOf(e).MaxAttempts(), Outcome: RetrySucceeded, Reason: e.retry.reason, Policy: m.specOf(e)})
			m.log.Info("Channel recovered", KeyChannel, e.name.String(), KeyAttempt, e.retry.attempts)
		}
		if g, ok := m.policyOf(e).(Gate); ok {
			g.Record(now, true)
			m.releaseHeldLocked()
		}
		e.retry.attempts, e.retry.series, e.retry.inFlight, e.retry.exhausted, e.retry.heldSocket = 0, false, false, false, false
		e.retry.reason = ""
		e.retry.stopTimer()
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
		if len(e.outbox.queue) > 0 && !e.outbox.flushing {
			e.outbox.flushing = true
			m.wg.Add(1)
			go m.flush(e, gen)
		}
	case realtime.ChannelError, realtime.TimedOut:
		code, msg := errorCode(ev.Status, ev.Err)
		if socketDown(ev.Err) {
			// Not the channel's fault: the socket is down. The client
			// rejoins when it reopens; no attempt is spent meanwhile.
			e.retry.stopTimer()
			e.retry.inFlight = false
			e.retry.heldSocket = true
			e.status = StatusDisconnected
			e.reason = "socket down: " + msg
			e.lastError = errorInfo{msg: msg, code: code, at: now}
			if e.retry.series {
				m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.retry.attempts + 1,
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
		if e.retry.exhausted || e.retry.timer != nil {
			// A failure already handled (a binding mismatch errors, then
			// closes): the next attempt recreates the channel.
			return
		}
		if socketDown(ev.Err) {
			e.retry.heldSocket = true
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
	e.lastError = errorInfo{msg: msg, code: code, at: now}
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
	if e.retry.inFlight {
		e.retry.inFlight = false
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.retry.attempts, Max: maxN,
			Outcome: RetryFailed, Reason: e.retry.reason, Err: reason, Policy: spec})
	}
	if !e.retry.series {
		e.retry.series = true
		e.retry.reason = reason
	}
	e.retry.stopTimer()
	m.log.Warn("Channel error", KeyChannel, e.name.String(), KeyCode, code, KeyErr, msg, KeyAttempt, e.retry.attempts, KeyMax, maxN)
	if maxN > 0 && e.retry.attempts >= maxN {
		e.retry.exhausted = true
		e.status = StatusError
		e.reason = fmt.Sprintf("gave up after %d attempts: %s", e.retry.attempts, reason)
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.retry.attempts, Max: maxN,
			Outcome: RetryExhausted, Reason: e.retry.reason, Err: reason, Policy: spec})
		m.publishErrorLocked(e.name, "join", code, e.reason)
		m.publishStateLocked(e, e.reason)
		m.log.Error("Channel failed, giving up", KeyChannel, e.name.String(), KeyAttempt, e.retry.attempts, KeyMax, maxN, KeyCode, code, KeyErr, msg)
		m.wakeWaitersLocked(e)
		// Stop the client from rejoining it when the socket reopens.
		old := e.ch
		e.ch = nil
		e.gen++
		m.detachLocked(e, old)
		return
	}
	n := e.retry.attempts + 1
	d := max(p.Delay(n, m.rnd), 0)
	e.status = StatusDisconnected
	e.reason = reason
	e.retry.nextAt = now.Add(d)
	gen := e.gen
	e.retry.timer = m.clk.AfterFunc(d, func() { m.attempt(e, gen) })
	m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: maxN, Delay: d,
		NextAt: e.retry.nextAt, Outcome: RetryScheduled, Reason: e.retry.reason, Policy: spec})
	m.publishStateLocked(e, reason)
	m.log.Info("Scheduling reconnect", KeyChannel, e.name.String(), KeyAttempt, n, KeyMax, maxN, KeyDelay, d, KeyReason, reason)
}

// attempt makes attempt e.attempts+1 of e's series, if it still applies.
func (m *Manager) attempt(e *entry, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.gen != gen || m.closed || e.leaving != nil || m.entries[e.name] != e || e.retry.exhausted {
		return
	}
	e.retry.timer = nil
	e.retry.nextAt = time.Time{}
	now := m.clk.Now()
	p := m.policyOf(e)
	spec := m.specOf(e)
	n := e.retry.attempts + 1
	if m.sock.Status() != realtime.StatusOpen {
		// Attempts are spent only while the socket is up; the socket's
		// reopening rejoins the channel.
		e.retry.heldSocket = true
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: p.MaxAttempts(),
			Outcome: RetryHeld, Reason: "waiting for the socket", Policy: spec})
		return
	}
	if g, ok := p.(Gate); ok {
		if allowed, at := g.Allow(now); !allowed {
			e.retry.heldBreaker = true
			e.retry.nextAt = at
			e.retry.timer = m.clk.AfterFunc(max(at.Sub(now), 0), func() { m.attempt(e, gen) })
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: p.MaxAttempts(),
				NextAt: at, Outcome: RetryHeld, Reason: "circuit breaker open", Policy: spec})
			m.publishStateLocked(e, "circuit breaker open")
			return
		}
	}
	e.retry.heldBreaker = false
	e.retry.attempts = n
	m.chanTries++
	e.retry.inFlight = true
	e.status = StatusConnecting
	e.reason = fmt.Sprintf("attempt %d", n)
	m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: n, Max: p.MaxAttempts(),
		Outcome: RetryStarted, Reason: e.retry.reason, Policy: spec})
	m.publishStateLocked(e, e.reason)
	m.log.Info("Retrying channel", KeyChannel, e.name.String(), KeyAttempt, n, KeyMax, p.MaxAttempts())
	m.wg.Add(1)
	go m.attach(e, gen)
}

// releaseHeldLocked lets the channels held by a circuit breaker that has
// just closed try now.
func (m *Manager) releaseHeldLocked() {
	for _, e := range m.entries {
		if !e.retry.heldBreaker || e.retry.exhausted || e.leaving != nil {
			continue
		}
		e.retry.heldBreaker = false
		e.retry.stopTimer()
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
	if e.retry.series && !e.retry.exhausted {
		m.broker.publish(RetryEvent{Time: now, Scope: ScopeChannel, Channel: e.name, Attempt: e.retry.attempts, Max: p.MaxAttempts(),
			Outcome: RetryCancelled, Reason: "manual retry", Policy: m.specOf(e)})
	}
	e.retry.stopTimer()
	e.retry.attempts, e.retry.series, e.retry.exhausted, e.retry.inFlight, e.retry.heldSocket = 0, false, false, false, false
	e.retry.reason = ""
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
