package limits

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"rtm/registry"
	"rtm/registry/clock"
)

// TypeLimits is the "type" of a [Report]'s JSON line.
const TypeLimits = "limits"

// maxReason bounds the reason a LimitError keeps.
const maxReason = 512

// Meter is the budget: one gauge per limit ([NumNames] of them, with
// bounded windows), fed with usage and server errors, read as a
// [Report]. It is safe for concurrent use; every call takes one lock and
// does bounded work.
type Meter struct {
	clk clock.Clock

	mu       sync.Mutex
	limits   Limits
	gauges   [NumNames]gauge
	throttle *registry.Throttle
}

// New returns a meter comparing usage with lim, on clk (nil: the real
// clock).
func New(lim Limits, clk clock.Clock) *Meter {
	if clk == nil {
		clk = clock.Real()
	}
	m := &Meter{clk: clk, limits: lim}
	for i := range m.gauges {
		m.gauges[i].kind, m.gauges[i].start = specs[i].kind, second(clk.Now())
	}
	return m
}

// SetLimits replaces the limits.
func (m *Meter) SetLimits(lim Limits) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limits = lim
}

// gauge returns n's gauge if it has kind k (m.mu held).
func (m *Meter) gauge(n Name, k Kind) *gauge {
	i, ok := index(string(n))
	if !ok || specs[i].kind != k {
		return nil
	}
	return &m.gauges[i]
}

// Add counts n events of a rate limit (joins, messages, presence events)
// now.
func (m *Meter) Add(name Name, n int) {
	if n <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.gauge(name, KindRate); g != nil {
		g.add(m.clk.Now(), float64(n))
	}
}

// Set makes v the usage of a count limit (sockets, channels) now.
func (m *Meter) Set(name Name, v int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.gauge(name, KindCount); g != nil {
		g.set(m.clk.Now(), float64(max(v, 0)))
	}
}

// Payload records one payload of size bytes for a size limit.
func (m *Meter) Payload(name Name, size int) {
	if size <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.gauge(name, KindSize); g != nil {
		g.size(m.clk.Now(), float64(size))
	}
}

// ServerError attaches a server error received at at (zero: now), its
// text as the client reported it, to the gauge of the limit it reports
// and returns that limit; an error that
// reports no limit (see [MatchReason]) is ignored (false). channel is
// the channel it came on ("" for none). An error older than the one
// attached is ignored too.
func (m *Meter) ServerError(at time.Time, text, channel string) (Name, bool) {
	n, reason, ok := MatchReason(text)
	if !ok {
		return "", false
	}
	i, _ := index(string(n))
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	if len(channel) > 256 {
		channel = channel[:256]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if at.IsZero() {
		at = m.clk.Now()
	}
	if old := m.gauges[i].err; old != nil && at.Before(old.Time) {
		return n, false
	}
	m.gauges[i].err = &LimitError{Time: at, Reason: reason, Code: codeOf(reason), Channel: channel}
	return n, true
}

// ServerUsage takes the server's own counters (see [ServerReport]): each
// counts as usage for a few seconds, when it is more than rtm saw.
func (m *Meter) ServerUsage(u ServerUsage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	for _, v := range []struct {
		n Name
		v int64
	}{
		{ConcurrentClients, u.Connections},
		{ChannelsPerConnection, u.MaxChannelsPerConnection},
		{JoinsPerSecond, u.JoinsPerSecond},
		{MessagesPerSecond, u.EventsPerSecond},
		{PresenceEventsPerSecond, u.PresenceEventsPerSecond},
	} {
		i, _ := index(string(v.n))
		g := &m.gauges[i]
		g.server, g.serverAt = float64(max(v.v, 0)), now
		g.peak = max(g.peak, g.usage(now))
	}
}

// SetThrottle sets what the manager's own brakes on broadcasts hold
// back (registry.Manager.Throttle), shown beside the gauges.
func (m *Meter) SetThrottle(t registry.Throttle) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.throttle = &t
}

// Report is every gauge at a moment: the `limits` line of `rtm watch`.
type Report struct {
	Time   time.Time `json:"time"`
	Gauges []Gauge   `json:"gauges"`
	// Throttle is what the manager's own rate limit, debouncers and
	// offline queues hold back (nil until set): the brakes rtm puts on
	// its messages per second before the server's limit does.
	Throttle *registry.Throttle `json:"throttle,omitempty"`
}

// Report returns every gauge now, in [Names] order.
func (m *Meter) Report() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	r := Report{Time: now, Gauges: make([]Gauge, NumNames)}
	if m.throttle != nil {
		t := *m.throttle
		r.Throttle = &t
	}
	for i := range m.gauges {
		r.Gauges[i] = m.gauges[i].state(i, now, m.limits)
	}
	return r
}

// Gauge returns one gauge now.
func (m *Meter) Gauge(n Name) (Gauge, bool) {
	i, ok := index(string(n))
	if !ok {
		return Gauge{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gauges[i].state(i, m.clk.Now(), m.limits), true
}

// Gauge returns one gauge of the report.
func (r Report) Gauge(n Name) (Gauge, bool) {
	for _, g := range r.Gauges {
		if g.Name == n {
			return g, true
		}
	}
	return Gauge{}, false
}

type gaugeJSON Gauge

// MarshalJSON implements json.Marshaler: HitIn is "hit_in_ms", absent
// when nil.
func (g Gauge) MarshalJSON() ([]byte, error) {
	v := struct {
		gaugeJSON
		HitIn *float64 `json:"hit_in_ms,omitempty"`
	}{gaugeJSON: gaugeJSON(g)}
	if g.HitIn != nil {
		ms := float64(*g.HitIn) / float64(time.Millisecond)
		v.HitIn = &ms
	}
	return json.Marshal(v)
}

// UnmarshalJSON implements json.Unmarshaler.
func (g *Gauge) UnmarshalJSON(b []byte) error {
	var v struct {
		gaugeJSON
		HitIn *float64 `json:"hit_in_ms"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*g = Gauge(v.gaugeJSON)
	if v.HitIn != nil {
		d := time.Duration(*v.HitIn * float64(time.Millisecond))
		g.HitIn = &d
	}
	return nil
}

type reportJSON Report

// MarshalJSON implements json.Marshaler: {"type":"limits",...}.
func (r Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type string `json:"type"`
		reportJSON
	}{TypeLimits, reportJSON(r)})
}

// DecodeReport reads a `limits` line back.
func DecodeReport(b []byte) (Report, error) {
	var v struct {
		Type string `json:"type"`
		reportJSON
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Report{}, fmt.Errorf("limits: decode report: %w", err)
	}
	if v.Type != TypeLimits {
		return Report{}, fmt.Errorf("limits: decode report: type %q, not %q", v.Type, TypeLimits)
	}
	return Report(v.reportJSON), nil
}
