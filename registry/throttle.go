package registry

// Throttle is what the manager's own brakes on outgoing broadcasts hold
// back now: the rate limit over all channels (Options.BroadcastRate and
// BroadcastBurst), the debouncers ([Handle.Debounce]) and the offline
// queues (broadcasts made while their channel is not connected). The
// limits meter (package registry/limits) shows it beside the
// messages-per-second gauge.
type Throttle struct {
	// Rate is broadcasts per second (0: no limit) and Burst the tokens
	// saved; Waiting counts the broadcasts waiting for a token now.
	Rate    float64 `json:"rate"`
	Burst   int     `json:"burst"`
	Waiting int     `json:"waiting"`
	// Debouncers counts the live debouncers; Pending the values waiting
	// for their window's end; Replaced the values replaced by a later
	// one, never sent.
	Debouncers int    `json:"debouncers"`
	Pending    int    `json:"pending"`
	Replaced   uint64 `json:"replaced"`
	// Queued counts the broadcasts in the offline queues; QueueDropped
	// those refused by full queues since the manager started.
	Queued       int    `json:"queued"`
	QueueDropped uint64 `json:"queue_dropped"`
}

// Throttle returns what the manager's brakes hold back now.
func (m *Manager) Throttle() Throttle {
	t := Throttle{Waiting: m.limiter.Waiting()}
	if m.limiter.rate > 0 {
		t.Rate, t.Burst = m.limiter.rate, int(m.limiter.burst)
	}
	var debs []*Debouncer
	m.mu.Lock()
	for _, e := range m.entries {
		t.Queued += len(e.outbox.queue)
		debs = append(debs, e.debounced...)
	}
	t.QueueDropped = m.queueDrops
	m.mu.Unlock()
	for _, d := range debs { // outside m.mu: a debouncer's lock is its own
		t.Debouncers++
		if d.Pending() {
			t.Pending++
		}
		_, r := d.Counts()
		t.Replaced += r
	}
	return t
}
