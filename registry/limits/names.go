package limits

import (
	"fmt"
	"strings"
)

// Name names one of the limits Supabase Realtime enforces. The names are
// stable: they are the "name" of a gauge in the NDJSON and what --limit
// NAME=N and a scenario's limits expectation take.
type Name string

// The limits, in the order a [Report] lists them.
const (
	// ConcurrentClients is the open sockets (max_concurrent_users).
	ConcurrentClients Name = "concurrent_clients"
	// ChannelsPerConnection is the channels one socket holds
	// (max_channels_per_client).
	ChannelsPerConnection Name = "channels_per_connection"
	// JoinsPerSecond is channel joins per second (max_joins_per_second).
	JoinsPerSecond Name = "joins_per_second"
	// MessagesPerSecond is messages sent per second
	// (max_events_per_second).
	MessagesPerSecond Name = "messages_per_second"
	// PresenceEventsPerSecond is presence events per second
	// (max_presence_events_per_second).
	PresenceEventsPerSecond Name = "presence_events_per_second"
	// PayloadSize is the size of one broadcast or presence payload
	// (max_payload_size_in_kb); limits are given in KB of 1000 bytes.
	PayloadSize Name = "payload_size"
	// PostgresChangePayload is the size of one postgres change; limits
	// are given in KB of 1000 bytes.
	PostgresChangePayload Name = "postgres_change_payload"
)

// Kind is how a gauge measures its usage.
type Kind string

// The kinds of gauges.
const (
	// KindCount gauges count something held now (sockets, channels).
	KindCount Kind = "count"
	// KindRate gauges count events over the last second.
	KindRate Kind = "rate"
	// KindSize gauges measure the largest payload of the last minute,
	// in bytes.
	KindSize Kind = "size"
)

// NumNames is the number of limits: a [Meter] holds that many gauges.
const NumNames = 7

// spec describes one limit.
type spec struct {
	name Name
	kind Kind
	// alias is Supabase's setting name, which --limit takes too.
	alias string
	// unit is the unit of an override value; scale turns it into the
	// gauge's unit (bytes for sizes).
	unit  string
	scale int64
}

// specs are the limits in [Report] order.
var specs = [NumNames]spec{
	{ConcurrentClients, KindCount, "max_concurrent_users", "clients", 1},
	{ChannelsPerConnection, KindCount, "max_channels_per_client", "channels", 1},
	{JoinsPerSecond, KindRate, "max_joins_per_second", "joins/s", 1},
	{MessagesPerSecond, KindRate, "max_events_per_second", "messages/s", 1},
	{PresenceEventsPerSecond, KindRate, "max_presence_events_per_second", "presence events/s", 1},
	{PayloadSize, KindSize, "max_payload_size_in_kb", "KB", 1000},
	{PostgresChangePayload, KindSize, "", "KB", 1000},
}

// Names returns the limits in [Report] order.
func Names() []Name {
	out := make([]Name, NumNames)
	for i, s := range specs {
		out[i] = s.name
	}
	return out
}

// index returns the position of a limit, by its name or its Supabase
// setting name, case-insensitively, "-" standing for "_".
func index(s string) (int, bool) {
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	for i, sp := range specs {
		if s == string(sp.name) || (sp.alias != "" && s == sp.alias) {
			return i, true
		}
	}
	return 0, false
}

// ParseName reads a limit's name (or its Supabase setting name, such as
// max_channels_per_client).
func ParseName(s string) (Name, error) {
	i, ok := index(s)
	if !ok {
		return "", fmt.Errorf("%w: unknown limit %q (want %s)", ErrInvalid, s, nameList())
	}
	return specs[i].name, nil
}

func nameList() string {
	var b strings.Builder
	for i, s := range specs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s.name))
	}
	return b.String()
}

// KindOf returns the kind of gauge a limit has.
func KindOf(n Name) Kind {
	if i, ok := index(string(n)); ok {
		return specs[i].kind
	}
	return ""
}
