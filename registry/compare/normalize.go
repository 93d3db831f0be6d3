package compare

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"rtm/realtime/protocol"
)

// Message is one message a client received, normalized so that two
// clients (or two runs) of the same traffic compare equal: refs, join
// refs, presence refs (phx_ref, phx_ref_prev), online_at, commit
// timestamps and binding ids are left out, and JSON is canonical
// (members sorted). It is what `rtm diff` compares (package
// registry/headless calls it Received).
type Message struct {
	// Channel is the channel name (the topic without "realtime:").
	Channel string `json:"channel"`
	// Event is the kind of message: "broadcast <event>",
	// "postgres_changes <TYPE> <schema>.<table>", "presence_state",
	// "presence_join", "presence_leave" (one per presence key and meta),
	// "system", "phx_reply <status>", "phx_error", "phx_close", or the
	// frame's event.
	Event string `json:"event"`
	// Value is the normalized content (canonical JSON).
	Value json.RawMessage `json:"value"`
}

// Kind is the first word of the message's event: "broadcast",
// "postgres_changes", "presence_state", "presence_join", "system", ...
func (m Message) Kind() string {
	k, _, _ := strings.Cut(m.Event, " ")
	return k
}

// Normalize returns the normalized messages of one decoded frame on
// channel ch: one message, or one per presence key and meta of a
// presence_state or presence_diff.
func Normalize(ch string, m *protocol.Message) []Message {
	one := func(event string, v json.RawMessage) []Message {
		return []Message{{Channel: ch, Event: event, Value: v}}
	}
	switch m.Event {
	case protocol.EventBroadcast:
		b, err := m.UserBroadcast()
		if err != nil {
			return one("broadcast", Canonical(m.Payload))
		}
		if b.Binary {
			return one("broadcast "+b.Event, JSON(map[string]string{"binary": base64.StdEncoding.EncodeToString(b.Payload)}))
		}
		return one("broadcast "+b.Event, Canonical(b.Payload))
	case protocol.EventPostgresChanges:
		var p struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if json.Unmarshal(m.Payload, &p) != nil || p.Data == nil {
			return one(m.Event, Canonical(m.Payload))
		}
		var typ, schema, table string
		_ = json.Unmarshal(p.Data["type"], &typ)
		_ = json.Unmarshal(p.Data["schema"], &schema)
		_ = json.Unmarshal(p.Data["table"], &table)
		delete(p.Data, "commit_timestamp")
		b, _ := json.Marshal(p.Data)
		return one(fmt.Sprintf("postgres_changes %s %s.%s", typ, schema, table), Canonical(b))
	case protocol.EventPresenceState:
		return presenceItems(ch, "presence_state", m.Payload)
	case protocol.EventPresenceDiff:
		joins, leaves, err := protocol.SplitPresenceDiff(m.Payload)
		if err != nil {
			return one(m.Event, Canonical(m.Payload))
		}
		return append(presenceItems(ch, "presence_join", joins), presenceItems(ch, "presence_leave", leaves)...)
	case protocol.EventReply:
		r, err := protocol.ParseReply(m.Payload)
		if err != nil {
			return one(m.Event, Canonical(m.Payload))
		}
		return one("phx_reply "+r.Status, Canonical(r.Response))
	default:
		return one(m.Event, Canonical(m.Payload))
	}
}

func presenceItems(ch, event string, state []byte) []Message {
	if len(state) == 0 {
		return nil
	}
	var out []Message
	err := protocol.ScanPresenceState(state, func(key string, metas []protocol.PresenceMeta) error {
		for _, meta := range metas {
			var fields map[string]json.RawMessage
			_ = json.Unmarshal(meta.UserFields(), &fields)
			delete(fields, "online_at")
			out = append(out, Message{Channel: ch, Event: event, Value: Canonical(JSON(map[string]any{"key": key, "meta": fields}))})
		}
		return nil
	})
	if err != nil {
		return []Message{{Channel: ch, Event: event, Value: Canonical(state)}}
	}
	return out
}

// Canonical re-encodes JSON with object members sorted (numbers kept as
// written); invalid JSON is returned as a JSON string, empty input as
// null.
func Canonical(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return JSON(string(b))
	}
	out, err := json.Marshal(v)
	if err != nil {
		return JSON(string(b))
	}
	return out
}

// JSON encodes v, or returns null when it cannot be encoded.
func JSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}
