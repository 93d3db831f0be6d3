package registry

import (
	"slices"
	"time"
)

// statsLoop samples rates and publishes StatsEvents every interval.
func (m *Manager) statsLoop() {
	defer m.wg.Done()
	t := m.clk.NewTicker(m.opts.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C():
			m.sample()
		}
	}
}

func (m *Manager) sample() {
	in, out := m.msgsIn.Load(), m.msgsOut.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	secs := m.opts.StatsInterval.Seconds()
	if !m.lastTick.IsZero() {
		secs = now.Sub(m.lastTick).Seconds()
	}
	m.lastTick = now
	if secs <= 0 {
		secs = m.opts.StatsInterval.Seconds()
	}
	m.inHist = pushBounded(m.inHist, float64(in-m.lastIn)/secs, rateHistory)
	m.outHist = pushBounded(m.outHist, float64(out-m.lastOut)/secs, rateHistory)
	m.lastIn, m.lastOut = in, out
	m.errSamples = append(m.errSamples, m.errors-m.lastErrors)
	m.lastErrors = m.errors
	if n := int(time.Minute / m.opts.StatsInterval); len(m.errSamples) > n && n > 0 {
		m.errSamples = append(m.errSamples[:0], m.errSamples[len(m.errSamples)-n:]...)
	}
	m.broker.publish(StatsEvent{Time: now, Stats: m.statsLocked(), Metrics: m.metricsLocked(now)})
	m.reconcileDueLocked(now)
}

func pushBounded(h []float64, v float64, n int) []float64 {
	h = append(h, v)
	if len(h) > n {
		h = append(h[:0], h[len(h)-n:]...)
	}
	return h
}

// Stats returns the channel counts.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statsLocked()
}

func (m *Manager) statsLocked() Stats {
	s := Stats{Total: len(m.entries), Limit: m.opts.MaxChannels, ByKind: map[Kind]int{}, ByStatus: map[Status]int{}, ByEntityType: map[string]int{}}
	if s.Limit < 0 {
		s.Limit = 0
	}
	for n, e := range m.entries {
		s.ByKind[n.Kind]++
		s.ByStatus[e.status]++
		s.ByEntityType[n.EntityType]++
	}
	return s
}

// Metrics returns the running measurements.
func (m *Manager) Metrics() Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.metricsLocked(m.clk.Now())
}

func (m *Manager) metricsLocked(now time.Time) Metrics {
	mt := Metrics{
		StartedAt:       m.started,
		ConnectedTotal:  m.connTotal,
		Reconnects:      m.reconnects,
		SocketAttempts:  m.socketTries,
		ChannelAttempts: m.chanTries,
		Errors:          m.errors,
		MessagesIn:      m.msgsIn.Load(),
		MessagesOut:     m.msgsOut.Load(),
		InHistory:       slices.Clone(m.inHist),
		OutHistory:      slices.Clone(m.outHist),
		QueueDropped:    m.queueDrops,
		EventsDropped:   m.broker.dropped.Load(),
		ClientDropped:   m.sock.Stats().Drops,
	}
	if m.connected {
		mt.ConnectedFor = now.Sub(m.socket.ConnectedAt)
		mt.ConnectedTotal += mt.ConnectedFor
	}
	if n := len(m.inHist); n > 0 {
		mt.InRate, mt.OutRate = m.inHist[n-1], m.outHist[n-1]
	}
	var errs uint64
	for _, v := range m.errSamples {
		errs += v
	}
	if n := len(m.errSamples); n > 0 {
		window := time.Duration(n) * m.opts.StatsInterval
		mt.ErrorRate = float64(errs) / window.Minutes()
	}
	return mt
}
