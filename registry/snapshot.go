package registry

import (
	"fmt"
	"slices"
	"time"

	"rtm/realtime/faultnet"
)

// Snapshot returns a consistent copy of everything the manager knows.
func (m *Manager) Snapshot() State {
	var fs faultnet.State
	if m.tr != nil {
		fs = m.tr.State()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	st := State{
		Time: now,
		Target: TargetInfo{
			URL: m.sock.Endpoint(), Embedded: m.opts.Embedded, ServerFaults: m.opts.Server != nil,
			Serializer: m.vsn.String(), Tenant: m.opts.Tenant,
		},
		Socket:   m.socket,
		Token:    m.tokenInfo,
		Channels: make([]ChannelInfo, 0, len(m.entries)),
		Presence: map[Name][]PresenceUser{},
		Stats:    m.statsLocked(),
		Metrics:  m.metricsLocked(now),
		Policy:   m.policyInfoLocked(now),
		Caps:     Caps{MaxChannels: max(m.opts.MaxChannels, 0), PerEntityType: copyMap(m.opts.EntityCaps)},
		Faults: FaultState{Client: m.tr != nil, Server: m.opts.Server != nil, FrozenUntil: fs.FrozenUntil,
			Latency: fs.Latency, FailConnects: fs.FailConnects, Drops: fs.Drops},
	}
	st.Socket.RTTHistory = slices.Clone(m.rtts)
	for n, e := range m.entries {
		st.Channels = append(st.Channels, m.infoLocked(e))
		if e.presence.len() > 0 || n.Kind == KindPresence {
			st.Presence[n] = e.presence.list(e.trackedKey())
		}
	}
	slices.SortFunc(st.Channels, func(a, b ChannelInfo) int { return a.Name.Compare(b.Name) })
	return st
}

func (m *Manager) policyInfoLocked(now time.Time) PolicyInfo {
	info := m.policy.Info()
	if g, ok := m.policy.(Gate); ok {
		b := g.State(now)
		info.Breaker = &b
	}
	return info
}

func copyMap[K comparable, V any](in map[K]V) map[K]V {
	if in == nil {
		return nil
	}
	out := make(map[K]V, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// Info returns the info of the named channel.
func (m *Manager) Info(name Name) (ChannelInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return ChannelInfo{}, fmt.Errorf("info %s: %w", name, ErrNotFound)
	}
	return m.infoLocked(e), nil
}

// Channels returns the infos of every channel, sorted by name.
func (m *Manager) Channels() []ChannelInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ChannelInfo, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, m.infoLocked(e))
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int { return a.Name.Compare(b.Name) })
	return out
}

// Presence returns the users present on the named channel, sorted by
// user id.
func (m *Manager) Presence(name Name) ([]PresenceUser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return nil, fmt.Errorf("presence %s: %w", name, ErrNotFound)
	}
	return e.presence.list(e.trackedKey()), nil
}

// Messages returns up to the last n messages of the named channel (all
// kept when n <= 0), oldest first.
func (m *Manager) Messages(name Name, n int) ([]MessageEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return nil, fmt.Errorf("messages %s: %w", name, ErrNotFound)
	}
	return e.msgs.messages(name, n), nil
}
