package realtime

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"rtm/realtime/protocol"
)

// ChannelConfig configures a channel: the join's "config" and how its
// events are delivered.
type ChannelConfig struct {
	Broadcast BroadcastConfig
	Presence  PresenceConfig
	// PostgresChanges are the postgres_changes bindings, sent in this
	// order; the join reply must echo them (see ErrBindingMismatch).
	PostgresChanges []PostgresBinding
	// Private makes the channel private (RLS-authorized).
	Private bool

	// OnEvent receives the channel's events in order, on a goroutine of
	// the channel's own (never on the read loop). nil discards them.
	OnEvent func(Event)
	// OnEvents, instead of OnEvent, receives the same events in batches:
	// each call gets the next events in order (at most 64), as they were
	// queued. It is the cheaper way to take a high rate (one call, and
	// one lock of the consumer's, per batch). The slice and its Event
	// values are reused once OnEvents returns: keep copies, not the
	// slice (payloads are not reused). Set one of OnEvent and OnEvents.
	OnEvents func([]Event)
	// EventBuffer bounds the events waiting for OnEvent or OnEvents
	// (default Options.EventBuffer), EventBufferBytes their bytes (default
	// Options.EventBufferBytes); see the package doc for what happens
	// beyond.
	EventBuffer      int
	EventBufferBytes int
	// PresenceLimits bound the channel's presence state (zero fields:
	// the defaults, 100,000 keys, 1024 metas per key, 64 MiB).
	PresenceLimits PresenceLimits
	// PushTimeout overrides Options.PushTimeout for this channel.
	PushTimeout time.Duration
}

// BroadcastConfig is the join's broadcast config.
type BroadcastConfig struct {
	// Ack asks the server to reply to each broadcast; Send then waits.
	Ack bool
	// Self asks the server to deliver our own broadcasts to us.
	Self bool
	// Replay asks a private channel for stored broadcasts after Since.
	Replay *Replay
	// ReplicationReady asks for a system message once the database
	// replication is up.
	ReplicationReady bool
}

// Replay is the broadcast replay request of a private channel.
type Replay struct {
	Since time.Time
	// Limit is the number of messages (server default 25, clamped 1..25);
	// 0 omits it.
	Limit int
}

// PresenceConfig is the join's presence config.
type PresenceConfig struct {
	// Key is our presence key; empty lets the server assign one per join.
	Key string
	// Enabled asks for presence_state and presence_diff (realtime-js
	// enables it when a presence listener exists).
	Enabled bool
}

// PostgresBinding is one postgres_changes subscription.
type PostgresBinding struct {
	// Event is "INSERT", "UPDATE", "DELETE" or "*".
	Event  string
	Schema string
	Table  string
	// Filter is "column=op.value", e.g. "id=eq.1".
	Filter string
	// Select restricts the columns delivered.
	Select []string
}

func samePostgresBinding(a, b PostgresBinding) bool {
	return a.Event == b.Event && a.Schema == b.Schema && a.Table == b.Table && a.Filter == b.Filter &&
		strings.Join(a.Select, ",") == strings.Join(b.Select, ",")
}

// joinPayloadLocked builds the phx_join payload with the current token.
func (ch *Channel) joinPayloadLocked(token string) []byte {
	c := &ch.cfg
	b := make([]byte, 0, 256)
	b = append(b, `{"config":{"broadcast":{"ack":`...)
	b = strconv.AppendBool(b, c.Broadcast.Ack)
	b = append(b, `,"self":`...)
	b = strconv.AppendBool(b, c.Broadcast.Self)
	if r := c.Broadcast.Replay; r != nil {
		b = append(b, `,"replay":{"since":`...)
		b = strconv.AppendInt(b, r.Since.UnixMilli(), 10)
		if r.Limit > 0 {
			b = append(b, `,"limit":`...)
			b = strconv.AppendInt(b, int64(r.Limit), 10)
		}
		b = append(b, '}')
	}
	if c.Broadcast.ReplicationReady {
		b = append(b, `,"replication_ready":true`...)
	}
	b = append(b, `},"presence":{"key":`...)
	b = protocol.AppendString(b, c.Presence.Key)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, c.Presence.Enabled)
	b = append(b, `},"postgres_changes":[`...)
	for i, pb := range c.PostgresChanges {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event":`...)
		b = protocol.AppendString(b, pb.Event)
		if pb.Schema != "" {
			b = append(b, `,"schema":`...)
			b = protocol.AppendString(b, pb.Schema)
		}
		if pb.Table != "" {
			b = append(b, `,"table":`...)
			b = protocol.AppendString(b, pb.Table)
		}
		if pb.Filter != "" {
			b = append(b, `,"filter":`...)
			b = protocol.AppendString(b, pb.Filter)
		}
		if len(pb.Select) > 0 {
			b = append(b, `,"select":[`...)
			for j, col := range pb.Select {
				if j > 0 {
					b = append(b, ',')
				}
				b = protocol.AppendString(b, col)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"private":`...)
	b = strconv.AppendBool(b, c.Private)
	b = append(b, '}')
	if token != "" {
		b = append(b, `,"access_token":`...)
		b = protocol.AppendString(b, token)
	}
	return append(b, '}')
}

// checkBindingsLocked compares the join reply's postgres_changes with the
// channel's bindings, as realtime-js does, and stores the server ids.
func (ch *Channel) checkBindingsLocked(response json.RawMessage) error {
	var r struct {
		PostgresChanges *[]struct {
			Event  *string          `json:"event"`
			Schema *string          `json:"schema"`
			Table  *string          `json:"table"`
			Filter *string          `json:"filter"`
			ID     *json.RawMessage `json:"id"`
		} `json:"postgres_changes"`
	}
	if err := json.Unmarshal(response, &r); err != nil {
		if len(ch.cfg.PostgresChanges) == 0 {
			return nil
		}
		return fmt.Errorf("%w: unreadable join reply: %v", ErrBindingMismatch, err)
	}
	if r.PostgresChanges == nil {
		// realtime-js reports SUBSCRIBED when the reply has no
		// postgres_changes at all; the bindings get no ids.
		ch.ids = nil
		return nil
	}
	server := *r.PostgresChanges
	ids := make([]int64, len(ch.cfg.PostgresChanges))
	eq := func(sv *string, cv string) bool {
		if sv == nil {
			return cv == ""
		}
		return *sv == cv
	}
	for i, b := range ch.cfg.PostgresChanges {
		if i >= len(server) {
			return fmt.Errorf("%w: the reply has %d bindings, the channel %d", ErrBindingMismatch, len(server), len(ch.cfg.PostgresChanges))
		}
		sv := server[i]
		if sv.Event == nil || *sv.Event != b.Event || !eq(sv.Schema, b.Schema) || !eq(sv.Table, b.Table) || !eq(sv.Filter, b.Filter) {
			return fmt.Errorf("%w: binding %d", ErrBindingMismatch, i)
		}
		if sv.ID != nil {
			id, err := strconv.ParseInt(string(*sv.ID), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: binding %d has id %s", ErrBindingMismatch, i, *sv.ID)
			}
			ids[i] = id
		}
	}
	ch.ids = ids
	return nil
}
