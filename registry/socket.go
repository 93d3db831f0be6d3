package registry

import (
	"time"

	"rtm/realtime"
)

// onSocketStatus follows the client's socket status.
func (m *Manager) onSocketStatus(c realtime.StatusChange) {
	now := m.clk.Now()
	reason := ""
	if c.Err != nil {
		reason = m.mask.mask(c.Err.Error())
	}
	m.mu.Lock()
	if m.closed && c.Status != realtime.StatusClosed {
		m.mu.Unlock()
		return
	}
	var retry *RetryEvent
	switch c.Status {
	case realtime.StatusConnecting:
		m.socketTries++
		m.sockAttempt = c.Attempt
		m.socket.NextAttemptAt = time.Time{}
		m.setSocketLocked(SocketConnecting, "")
		if c.Attempt > 0 {
			// Attempt 0 is the first connection; c.Attempt numbers the
			// reconnects, as the client's log does.
			retry = &RetryEvent{Scope: ScopeSocket, Attempt: c.Attempt, Outcome: RetryStarted, Reason: m.socket.LastError}
		}
	case realtime.StatusOpen:
		if m.everConnected {
			m.reconnects++
		}
		if m.sockAttempt > 0 {
			retry = &RetryEvent{Scope: ScopeSocket, Attempt: m.sockAttempt, Outcome: RetrySucceeded}
		}
		m.everConnected = true
		m.sockAttempt = 0
		m.connected = true
		m.socket.ConnectedAt = now
		m.socket.Attempt = 0
		m.socket.NextAttemptAt = time.Time{}
		m.socket.LastError = ""
		m.socket.Reconnects = m.reconnects
		m.setSocketLocked(SocketConnected, "")
		m.onSocketOpenLocked()
	case realtime.StatusReconnecting:
		if m.connected {
			m.connTotal += now.Sub(m.socket.ConnectedAt)
			m.errors++
		}
		if m.socket.Status == SocketConnecting && m.sockAttempt > 0 {
			// Reconnect attempt sockAttempt failed.
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeSocket, Attempt: m.sockAttempt, Outcome: RetryFailed, Err: reason})
		}
		m.connected = false
		m.socket.ConnectedAt = time.Time{}
		m.socket.LastError = reason
		m.socket.Attempt = c.Attempt
		m.socket.NextAttemptAt = now.Add(c.Delay)
		m.setSocketLocked(SocketDisconnected, reason)
		m.onSocketDownLocked(reason)
		retry = &RetryEvent{Scope: ScopeSocket, Attempt: c.Attempt, Delay: c.Delay, NextAt: now.Add(c.Delay), Outcome: RetryScheduled, Reason: reason}
	case realtime.StatusClosed:
		if m.connected {
			m.connTotal += now.Sub(m.socket.ConnectedAt)
		}
		m.connected = false
		m.socket.ConnectedAt = time.Time{}
		m.setSocketLocked(SocketClosed, "closed")
	}
	if retry != nil {
		retry.Time = now
		m.broker.publish(*retry)
	}
	m.mu.Unlock()
	switch c.Status {
	case realtime.StatusReconnecting:
		m.log.Warn("Scheduling reconnect", "scope", "socket", KeyAttempt, c.Attempt, KeyDelay, c.Delay, KeyErr, reason)
	case realtime.StatusOpen:
		m.log.Info("Connected", "url", m.sock.Endpoint())
	}
}

// setSocketLocked changes the socket status and publishes it.
func (m *Manager) setSocketLocked(st SocketStatus, reason string) {
	prev := m.socket.Status
	m.socket.Status = st
	m.socket.Reason = reason
	m.broker.publish(SocketEvent{Time: m.clk.Now(), Status: st, Previous: prev, Reason: reason,
		RTT: m.socket.RTT, Attempt: m.socket.Attempt, NextAttemptAt: m.socket.NextAttemptAt})
}

// onHeartbeat records RTTs.
func (m *Manager) onHeartbeat(h realtime.Heartbeat) {
	switch h.Status {
	case realtime.HeartbeatOK, realtime.HeartbeatError:
		m.mu.Lock()
		m.socket.RTT = h.RTT
		m.rtts = append(m.rtts, h.RTT)
		if len(m.rtts) > DefaultRTTHistory {
			m.rtts = append(m.rtts[:0], m.rtts[len(m.rtts)-DefaultRTTHistory:]...)
		}
		m.broker.publish(SocketEvent{Time: m.clk.Now(), Status: m.socket.Status, Previous: m.socket.Status, RTT: h.RTT})
		m.mu.Unlock()
	case realtime.HeartbeatTimeout:
		m.log.Warn("Heartbeat timeout", KeyReason, "no reply within one interval; reconnecting")
	}
}
