package server

import (
	"cmp"
	"encoding/json"
	"errors"
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

// parseFilter parses a postgres_changes filter: comma-separated
// conditions "column=op.value" (ANDed), op one of eq, neq, lt, lte, gt,
// gte, in, like, ilike, is, match, imatch, isdistinct, optionally negated
// with "not."; "in" takes a parenthesised list; a value with , ( ) " \ or
// edge spaces is double-quoted with backslash escapes. A blank filter is
// no condition.
func parseFilter(filter string) ([]condition, error) {
	if strings.TrimSpace(filter) == "" {
		return nil, nil
	}
	p := &filterParser{s: filter}
	var out []condition
	for {
		c, err := p.condition()
		if err != nil {
			return nil, fmt.Errorf("%v in %q", err, filter)
		}
		out = append(out, c)
		if p.pos == len(p.s) {
			return out, nil
		}
		if p.s[p.pos] != ',' {
			return nil, fmt.Errorf("want ',' at offset %d in %q", p.pos, filter)
		}
		p.pos++
	}
}

type filterParser struct {
	s   string
	pos int
}

func (p *filterParser) condition() (condition, error) {
	var c condition
	eq := strings.IndexByte(p.s[p.pos:], '=')
	if eq <= 0 {
		return c, errors.New("want column=op.value")
	}
	c.column = strings.TrimSpace(p.s[p.pos : p.pos+eq])
	if c.column == "" || strings.ContainsAny(c.column, ",()\"") {
		return c, fmt.Errorf("bad column %q", c.column)
	}
	p.pos += eq + 1
	op, err := p.word()
	if err != nil {
		return c, err
	}
	if op == "not" {
		c.not = true
		if op, err = p.word(); err != nil {
			return c, err
		}
	}
	if !filterOps[op] {
		return c, fmt.Errorf("unknown operator %q", op)
	}
	c.op = op
	if op == "in" {
		if p.pos >= len(p.s) || p.s[p.pos] != '(' {
			return c, errors.New("in needs a parenthesised list")
		}
		p.pos++
		for {
			v, err := p.value(true)
			if err != nil {
				return c, err
			}
			c.values = append(c.values, v)
			if p.pos >= len(p.s) {
				return c, errors.New("unterminated list")
			}
			ch := p.s[p.pos]
			p.pos++
			if ch == ')' {
				return c, nil
			}
			if ch != ',' {
				return c, fmt.Errorf("unexpected %q in list", ch)
			}
		}
	}
	v, err := p.value(false)
	if err != nil {
		return c, err
	}
	c.values = []string{v}
	return c, nil
}

// word reads an operator and the '.' after it.
func (p *filterParser) word() (string, error) {
	dot := strings.IndexByte(p.s[p.pos:], '.')
	if dot <= 0 {
		return "", errors.New("want op.value")
	}
	w := p.s[p.pos : p.pos+dot]
	p.pos += dot + 1
	return w, nil
}

// value reads a plain or quoted value up to ',' (or ')' in a list).
func (p *filterParser) value(inList bool) (string, error) {
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		p.pos++
		var b strings.Builder
		for p.pos < len(p.s) {
			ch := p.s[p.pos]
			switch ch {
			case '\\':
				if p.pos+1 >= len(p.s) {
					return "", errors.New("unterminated escape")
				}
				b.WriteByte(p.s[p.pos+1])
				p.pos += 2
			case '"':
				p.pos++
				return b.String(), nil
			default:
				b.WriteByte(ch)
				p.pos++
			}
		}
		return "", errors.New("unterminated quoted value")
	}
	start := p.pos
	for p.pos < len(p.s) {
		ch := p.s[p.pos]
		if ch == ',' || (inList && ch == ')') {
			break
		}
		if ch == '(' || ch == ')' || ch == '"' || ch == '\\' {
			return "", fmt.Errorf("%q in an unquoted value", ch)
		}
		p.pos++
	}
	return p.s[start:p.pos], nil
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
