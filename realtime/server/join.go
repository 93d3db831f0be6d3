package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"

	"rtm/realtime/protocol"
)

// joinConfig is a parsed phx_join payload.
type joinConfig struct {
	ack, self       bool
	presenceKey     string
	presenceEnabled bool
	private         bool
	// bindings are the postgres_changes objects, verbatim, in order.
	bindings []json.RawMessage
	// token is access_token, else user_token; "" when absent.
	token string
}

// parseJoin reads a phx_join payload the way Supabase does: unknown keys
// are ignored, booleans may be strings ("true", "FALSE"), and a member of
// the wrong shape falls back to its default. problems lists what was
// ignored, for the InvalidJoinPayload log. payload must be a JSON object.
func parseJoin(payload []byte) (cfg joinConfig, problems []string) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return cfg, []string{"payload: " + err.Error()}
	}
	bad := func(field, want string) { problems = append(problems, field+": unable to parse, expected "+want) }

	for _, k := range []string{"user_token", "access_token"} { // access_token wins
		if v, ok := top[k]; ok && !isNull(v) {
			var s string
			if json.Unmarshal(v, &s) != nil {
				bad(k, "string")
				continue
			}
			if s != "" {
				cfg.token = s
			}
		}
	}
	raw, ok := top["config"]
	if !ok || isNull(raw) {
		return cfg, problems
	}
	var config map[string]json.RawMessage
	if json.Unmarshal(raw, &config) != nil || config == nil {
		bad("config", "a map")
		return cfg, problems
	}
	flex := func(field string, raw json.RawMessage, dst *bool) {
		if raw == nil {
			return
		}
		var b protocol.FlexBool
		if json.Unmarshal(raw, &b) != nil {
			bad(field, "boolean")
			return
		}
		*dst = bool(b)
	}
	flex("config.private", config["private"], &cfg.private)

	if raw, ok := config["broadcast"]; ok && !isNull(raw) {
		var b map[string]json.RawMessage
		if json.Unmarshal(raw, &b) != nil || b == nil {
			bad("config.broadcast", "a map")
		} else {
			flex("config.broadcast.ack", b["ack"], &cfg.ack)
			flex("config.broadcast.self", b["self"], &cfg.self)
		}
	}
	if raw, ok := config["presence"]; ok && !isNull(raw) {
		var p map[string]json.RawMessage
		if json.Unmarshal(raw, &p) != nil || p == nil {
			bad("config.presence", "a map")
		} else {
			flex("config.presence.enabled", p["enabled"], &cfg.presenceEnabled)
			if k, ok := p["key"]; ok {
				key, ok := presenceKeyOf(k)
				if !ok {
					bad("config.presence.key", "a string")
				}
				cfg.presenceKey = key
			}
		}
	}
	if raw, ok := config["postgres_changes"]; ok && !isNull(raw) {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			bad("config.postgres_changes", "an array of maps")
		} else {
			for i, b := range list {
				b = bytes.TrimSpace(b)
				switch {
				case isNull(b):
					// Supabase drops null entries.
				case !protocol.IsObject(b) || !bindingFieldsOK(b):
					bad(fmt.Sprintf("config.postgres_changes[%d]", i), "a map of strings")
				default:
					cfg.bindings = append(cfg.bindings, b)
				}
			}
		}
	}
	return cfg, problems
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// presenceKeyOf reads presence.key: Supabase takes any value; a string is
// used as is, a number or boolean by its JSON text, null as "no key".
func presenceKeyOf(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case isNull(raw):
		return "", true
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case len(raw) > 0 && (raw[0] == '{' || raw[0] == '['):
		return "", false
	default:
		return string(raw), true
	}
}

// bindingFieldsOK checks that event, schema, table and filter are strings
// (or null) when present.
func bindingFieldsOK(b []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	for _, k := range []string{"event", "schema", "table", "filter"} {
		if v, ok := m[k]; ok && !isNull(v) {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return false
			}
		}
	}
	return true
}

// bindingID is the integer id of a postgres_changes binding, stable for
// the same binding (Supabase uses :erlang.phash2, in [0, 2^27)).
func bindingID(b []byte) int64 {
	h := fnv.New32a()
	h.Write(b)
	id := int64(h.Sum32() & (1<<27 - 1))
	if id == 0 {
		id = 1
	}
	return id
}

// joinResponse builds the ok reply's response: the bindings echoed in
// order, each with its id.
func joinResponse(bindings []json.RawMessage) ([]byte, []int64) {
	out := []byte(`{"postgres_changes":[`)
	ids := make([]int64, 0, len(bindings))
	for i, b := range bindings {
		id := bindingID(b)
		ids = append(ids, id)
		echo, err := protocol.SetMember(b, "id", fmt.Appendf(nil, "%d", id))
		if err != nil { // bindings were validated as objects
			echo = b
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, echo...)
	}
	return append(out, "]}"...), ids
}

// tenantOf returns the tenant of a tenant-scoped sub-topic
// ("tenant:<ID>:..."), and whether it is one.
func tenantOf(sub string) (string, bool) {
	rest, ok := strings.CutPrefix(sub, "tenant:")
	if !ok {
		return "", false
	}
	id, _, _ := strings.Cut(rest, ":")
	return id, true
}

// tenantRefusal returns why claims may not use sub, or "" when they may:
// a tenant topic needs a matching tenant_id claim, or service_role.
func tenantRefusal(sub string, cl *Claims) string {
	id, ok := tenantOf(sub)
	if !ok || cl.Role == RoleServiceRole {
		return ""
	}
	switch {
	case id == "":
		return "the topic names an empty tenant"
	case cl.TenantID == "":
		return fmt.Sprintf("the token has no tenant_id claim; tenant topics need tenant_id %q or role service_role", id)
	case cl.TenantID != id:
		return fmt.Sprintf("the token's tenant_id %q does not match tenant %q", cl.TenantID, id)
	}
	return ""
}

// canUsePrivate reports whether role may read and write private channels:
// the stand-in for Supabase's RLS policies on realtime.messages.
func canUsePrivate(role string) bool {
	return role == RoleAuthenticated || role == RoleServiceRole
}

// unauthorizedReason is the join error for a topic the token may not read.
func unauthorizedReason(sub, why string) string {
	r := "Unauthorized: You do not have permissions to read from this Channel topic: " + sub
	if why != "" {
		r += " (" + why + ")"
	}
	return r
}
