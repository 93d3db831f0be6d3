package realtime

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"rtm/realtime/protocol"
)

// PostgresChange is a postgres_changes event routed to a channel: the
// change and which of the channel's bindings it matched (by the server
// ids of the join reply and the binding's event, as realtime-js routes).
type PostgresChange struct {
	// Bindings are the indices in ChannelConfig.PostgresChanges of the
	// bindings the change matched.
	Bindings []int
	// IDs are the server ids the message named.
	IDs []int64
	// Data is the change: schema, table, type, columns, records, errors.
	protocol.ChangeData
}

// New returns the row after the change (INSERT, UPDATE) converted by
// column type as realtime-js does (see [ConvertRecord]); empty for DELETE.
func (c *PostgresChange) New() (map[string]any, error) {
	if c.Type != "INSERT" && c.Type != "UPDATE" {
		return map[string]any{}, nil
	}
	return ConvertRecord(c.Columns, c.Record)
}

// Old returns the row before the change (UPDATE, DELETE), converted;
// empty for INSERT.
func (c *PostgresChange) Old() (map[string]any, error) {
	if c.Type != "UPDATE" && c.Type != "DELETE" {
		return map[string]any{}, nil
	}
	return ConvertRecord(c.Columns, c.OldRecord)
}

// ConvertRecord decodes a record of a postgres change and converts its
// values by column type as realtime-js's convertChangeData does: bool
// "t"/"f" → true/false; int2, int4, int8, float4, float8, numeric, oid
// strings → float64; json, jsonb strings → decoded JSON; timestamp "a b" →
// "aTb"; array types ("_int4") from Postgres array literals "{1,2}" →
// []any of converted elements; everything else unchanged. A null or
// absent record gives an empty map.
func ConvertRecord(columns []protocol.Column, record json.RawMessage) (map[string]any, error) {
	out := map[string]any{}
	if len(record) == 0 || string(record) == "null" {
		return out, nil
	}
	var raw map[string]any
	dec := json.NewDecoder(strings.NewReader(string(record)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("realtime: postgres record: %w", err)
	}
	types := make(map[string]string, len(columns))
	for _, c := range columns {
		if _, ok := types[c.Name]; !ok {
			types[c.Name] = c.Type
		}
	}
	for k, v := range raw {
		if n, ok := v.(json.Number); ok {
			v = numberValue(n)
		}
		if t, ok := types[k]; ok {
			v = convertCell(t, v)
		}
		out[k] = v
	}
	return out, nil
}

func numberValue(n json.Number) any {
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}

func convertCell(typ string, v any) any {
	if strings.HasPrefix(typ, "_") {
		return toArray(v, typ[1:])
	}
	switch typ {
	case "bool":
		switch v {
		case "t":
			return true
		case "f":
			return false
		}
	case "int2", "int4", "int8", "float4", "float8", "numeric", "oid":
		if s, ok := v.(string); ok {
			if f, ok := parseFloatPrefix(s); ok {
				return f
			}
		}
	case "json", "jsonb":
		if s, ok := v.(string); ok {
			var out any
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if dec.Decode(&out) == nil && !dec.More() {
				return normalizeNumbers(out)
			}
		}
	case "timestamp":
		if s, ok := v.(string); ok {
			return strings.Replace(s, " ", "T", 1)
		}
	}
	return v
}

// parseFloatPrefix mimics JavaScript's parseFloat: the longest numeric
// prefix of s (after leading space), or false when there is none.
func parseFloatPrefix(s string) (float64, bool) {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if strings.HasPrefix(s[i:], "Infinity") {
		if s[0] == '-' {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	digit := func(j int) bool { return j < len(s) && '0' <= s[j] && s[j] <= '9' }
	n := 0
	for digit(i) {
		i++
		n++
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for digit(j) {
			j++
			n++
		}
		if n > 0 {
			i = j
		}
	}
	if n == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if digit(j) {
			for digit(j) {
				j++
			}
			i = j
		}
	}
	f, _ := strconv.ParseFloat(s[:i], 64) // a range error gives ±Inf or 0, as in JavaScript
	return f, true
}

func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		return numberValue(t)
	case []any:
		for i := range t {
			t[i] = normalizeNumbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = normalizeNumbers(t[k])
		}
	}
	return v
}

func toArray(v any, elemType string) any {
	s, ok := v.(string)
	if !ok || len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return v
	}
	inner := s[1 : len(s)-1]
	var arr []any
	dec := json.NewDecoder(strings.NewReader("[" + inner + "]"))
	dec.UseNumber()
	if err := dec.Decode(&arr); err != nil || dec.More() {
		arr = nil
		if inner != "" {
			for _, part := range strings.Split(inner, ",") {
				arr = append(arr, part)
			}
		}
	}
	out := make([]any, len(arr))
	for i, e := range arr {
		if n, ok := e.(json.Number); ok {
			e = numberValue(n)
		}
		out[i] = convertCell(elemType, e)
	}
	return out
}
