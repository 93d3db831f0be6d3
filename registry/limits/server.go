package limits

import (
	"context"
	"fmt"
)

// ServerReport is what a server says of its limits: the answer of GET
// /admin/limits of `rtm serve` (and of the embedded server's Go API).
type ServerReport struct {
	// Off is true when the server enforces no limit (rtm serve
	// --limits=off).
	Off        bool         `json:"off"`
	Configured ServerLimits `json:"limits"`
	Usage      ServerUsage  `json:"usage"`
}

// ServerLimits are a server's configured limits, as Supabase names its
// tenant settings; 0 means the server does not enforce it.
type ServerLimits struct {
	MaxConcurrentUsers         int64 `json:"max_concurrent_users"`
	MaxChannelsPerClient       int64 `json:"max_channels_per_client"`
	MaxJoinsPerSecond          int64 `json:"max_joins_per_second"`
	MaxEventsPerSecond         int64 `json:"max_events_per_second"`
	MaxPresenceEventsPerSecond int64 `json:"max_presence_events_per_second"`
	MaxPayloadSizeInKB         int64 `json:"max_payload_size_in_kb"`
	// MaxChangePayloadBytes is the largest postgres change delivered
	// whole (0: unknown or none).
	MaxChangePayloadBytes int64 `json:"max_change_payload_bytes,omitempty"`
}

// ServerUsage are a server's own counters for the default tenant (or
// the tenant asked for): every client's, not only rtm's.
type ServerUsage struct {
	// Connections are the tenant's open sockets.
	Connections int64 `json:"connections"`
	// MaxChannelsPerConnection is the most channels one socket holds.
	MaxChannelsPerConnection int64 `json:"max_channels_per_connection"`
	// The rates are the events the tenant was charged in the last
	// second.
	JoinsPerSecond          int64 `json:"joins_per_second"`
	EventsPerSecond         int64 `json:"events_per_second"`
	PresenceEventsPerSecond int64 `json:"presence_events_per_second"`
}

// Source reads a server's limits and counters: the embedded server's Go
// API (package main adapts it), or `rtm serve`'s admin API (package
// registry/serverctl).
type Source interface {
	ServerLimits(ctx context.Context) (ServerReport, error)
}

// Limits returns the configured limits of the report, with source
// "server"; a limit the server does not enforce is set off (all of them
// when Off), except the postgres change payload, which a server that
// does not say leaves unset.
func (r ServerReport) Limits() Limits {
	var l Limits
	const src = "server"
	if r.Off {
		for _, n := range Names() {
			l = l.Set(n, 0, src)
		}
		return l
	}
	l = l.Set(ConcurrentClients, r.Configured.MaxConcurrentUsers, src)
	l = l.Set(ChannelsPerConnection, r.Configured.MaxChannelsPerClient, src)
	l = l.Set(JoinsPerSecond, r.Configured.MaxJoinsPerSecond, src)
	l = l.Set(MessagesPerSecond, r.Configured.MaxEventsPerSecond, src)
	l = l.Set(PresenceEventsPerSecond, r.Configured.MaxPresenceEventsPerSecond, src)
	l = l.Set(PayloadSize, min(max(r.Configured.MaxPayloadSizeInKB, 0), maxOverride)*1000, src)
	if b := r.Configured.MaxChangePayloadBytes; b > 0 {
		l = l.Set(PostgresChangePayload, b, src)
	}
	return l
}

// Refresh reads the server's limits and counters from src and makes
// them the meter's: its limits become plan, the server's configured
// values over it, overrides over both (see the package doc), and the
// server's counters count as usage. On an error the meter keeps what it
// had.
func (m *Meter) Refresh(ctx context.Context, src Source, plan, overrides Limits) error {
	rep, err := src.ServerLimits(ctx)
	if err != nil {
		return fmt.Errorf("limits: read the server's limits: %w", err)
	}
	m.SetLimits(plan.Merge(rep.Limits()).Merge(overrides))
	m.ServerUsage(rep.Usage)
	return nil
}
