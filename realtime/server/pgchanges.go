package server

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"rtm/realtime/protocol"
)

// binding is a parsed postgres_changes binding of a channel.
type binding struct {
	id     int64
	event  string // INSERT, UPDATE, DELETE or * (anything else counts as *)
	schema string
	table  string // "" or "*": every table
	filter []condition
}

// parseBinding reads a binding object (already validated as an object of
// strings) and its filter.
func parseBinding(raw []byte, id int64) (binding, error) {
	var f struct {
		Event  *string `json:"event"`
		Schema *string `json:"schema"`
		Table  *string `json:"table"`
		Filter *string `json:"filter"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return binding{}, err
	}
	b := binding{id: id, event: "*"}
	if f.Event != nil {
		switch e := strings.ToUpper(*f.Event); e {
		case "INSERT", "UPDATE", "DELETE":
			b.event = e
		}
	}
	if f.Schema != nil {
		b.schema = *f.Schema
	}
	if f.Table != nil {
		b.table = *f.Table
	}
	if b.schema == "" {
		b.schema = "public" // `table` alone means schema public
	}
	if f.Filter != nil {
		conds, err := parseFilter(*f.Filter)
		if err != nil {
			return b, err
		}
		b.filter = conds
	}
	return b, nil
}

// matches reports whether a change fits the binding.
func (b *binding) matches(d *protocol.ChangeData, row map[string]any) bool {
	if b.event != "*" && !strings.EqualFold(b.event, d.Type) {
		return false
	}
	if b.schema != "*" && b.schema != d.Schema {
		return false
	}
	if b.table != "" && b.table != "*" && b.table != d.Table {
		return false
	}
	for _, c := range b.filter {
		if !c.eval(row) {
			return false
		}
	}
	return true
}

// EmitChange delivers a database change as Supabase's change feed would:
// to every channel of topicName ("realtime:room1" or "room1", public and
// private; every topic when topic is "") that has postgres_changes
// bindings matching data's schema, table and type (and filter, evaluated
// against record, or old_record for DELETE), as a fan-out frame
// [null,null,topic,"postgres_changes",{"ids":[…],"data":data}] whose ids
// are that channel's matching binding ids. It returns the number of
// deliveries.
func (s *Server) EmitChange(topicName string, data protocol.ChangeData) int {
	var ts []*topic
	if topicName == "" {
		ts = s.allTopics()
	} else {
		sub := protocol.SubTopic(topicName)
		for _, private := range []bool{false, true} {
			if t := s.lookupTopic(fanKey{private: private, sub: sub}); t != nil {
				ts = append(ts, t)
			}
		}
	}
	rowJSON := data.Record
	if strings.EqualFold(data.Type, "DELETE") || len(rowJSON) == 0 {
		rowJSON = data.OldRecord
	}
	var row map[string]any
	if len(rowJSON) > 0 {
		d := json.NewDecoder(strings.NewReader(string(rowJSON)))
		d.UseNumber()
		_ = d.Decode(&row)
	}
	dataJSON, err := json.Marshal(data)
	if err != nil {
		s.log.Error("Cannot encode a change", logKeyErr, err)
		return 0
	}
	n := 0
	for _, t := range ts {
		for _, ch := range t.subscribers() {
			var ids []int64
			for i := range ch.pg {
				if ch.pg[i].matches(&data, row) {
					ids = append(ids, ch.pg[i].id)
				}
			}
			if len(ids) == 0 {
				continue
			}
			idsJSON, _ := json.Marshal(ids)
			payload := make([]byte, 0, len(dataJSON)+len(idsJSON)+20)
			payload = append(payload, `{"ids":`...)
			payload = append(payload, idsJSON...)
			payload = append(payload, `,"data":`...)
			payload = append(payload, dataJSON...)
			payload = append(payload, '}')
			ch.c.sendMsg(&protocol.Message{Topic: ch.topic, Event: protocol.EventPostgresChanges, Payload: payload})
			n++
		}
	}
	s.stats.deliveries.Add(uint64(n))
	return n
}

// A condition is one "column=op.value" term of a filter.
type condition struct {
	column string
	op     string // eq neq lt lte gt gte in like ilike is match imatch isdistinct
	not    bool
	values []string // one value; several for "in"
}

// filterOps are the operators of postgres_changes filters.
var filterOps = map[string]bool{
	"eq": true, "neq": true, "lt": true, "lte": true, "gt": true, "gte": true, "in": true,
	"like": true, "ilike": true, "is": true, "match": true, "imatch": true, "isdistinct": true,
}

// filterErrPrefix starts the system message of a filter that does not
// parse, as in Supabase.
const filterErrPrefix = "Error parsing `filter` params: "

// parseFilter parses a postgres_changes filter ([protocol.ParseFilter]
// syntax) for EmitChange, which evaluates every operator of the syntax:
// eq, neq, lt, lte, gt, gte, in, like, ilike, is, match, imatch,
// isdistinct, each optionally negated with "not.". A blank filter is no
// condition.
func parseFilter(filter string) ([]condition, error) {
	conds, err := protocol.ParseFilter(filter)
	if err != nil {
		return nil, err
	}
	var out []condition
	for _, c := range conds {
		if !filterOps[c.Op] {
			return nil, &protocol.FilterError{Filter: filter, Reason: fmt.Sprintf("unknown operator %q", c.Op)}
		}
		out = append(out, condition{column: c.Column, op: c.Op, not: c.Not, values: c.Values})
	}
	return out, nil
}

// eval evaluates the condition on a row (column -> JSON value).
func (c *condition) eval(row map[string]any) bool {
	v, present := row[c.column]
	var r bool
	switch c.op {
	case "is":
		r = isMatch(v, present, c.values[0])
	case "isdistinct":
		r = !present || v == nil || compare(v, c.values[0]) != 0
	case "in":
		for _, want := range c.values {
			if present && v != nil && compare(v, want) == 0 {
				r = true
				break
			}
		}
	default:
		if !present || v == nil {
			return false // NULL compares to nothing, negated or not
		}
		switch c.op {
		case "eq":
			r = compare(v, c.values[0]) == 0
		case "neq":
			r = compare(v, c.values[0]) != 0
		case "lt":
			r = compare(v, c.values[0]) < 0
		case "lte":
			r = compare(v, c.values[0]) <= 0
		case "gt":
			r = compare(v, c.values[0]) > 0
		case "gte":
			r = compare(v, c.values[0]) >= 0
		case "like", "ilike":
			r = likeMatch(text(v), c.values[0], c.op == "ilike")
		case "match", "imatch":
			pat := c.values[0]
			if c.op == "imatch" {
				pat = "(?i)" + pat
			}
			re, err := regexp.Compile(pat)
			r = err == nil && re.MatchString(text(v))
		}
	}
	return r != c.not
}

func isMatch(v any, present bool, want string) bool {
	switch strings.ToLower(want) {
	case "null":
		return !present || v == nil
	case "true":
		return v == true || v == "t" || v == "true"
	case "false":
		return v == false || v == "f" || v == "false"
	}
	return false
}

// text renders a JSON value as Postgres text would.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// compare compares a row value with a filter value: numerically when both
// are numbers, else as text.
func compare(v any, want string) int {
	s := text(v)
	a, err1 := strconv.ParseFloat(s, 64)
	b, err2 := strconv.ParseFloat(want, 64)
	if err1 == nil && err2 == nil {
		return cmp.Compare(a, b)
	}
	if bv, ok := v.(bool); ok {
		switch strings.ToLower(want) {
		case "t", "true":
			want = "true"
		case "f", "false":
			want = "false"
		}
		s = text(bv)
	}
	return strings.Compare(s, want)
}

// likeMatch implements SQL LIKE with % and _ (also * as %, as PostgREST).
func likeMatch(s, pattern string, fold bool) bool {
	var re strings.Builder
	re.WriteString("^")
	if fold {
		re.WriteString("(?i)")
	}
	for _, r := range pattern {
		switch r {
		case '%', '*':
			re.WriteString(".*")
		case '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	ok, err := regexp.MatchString(re.String(), s)
	return err == nil && ok
}
