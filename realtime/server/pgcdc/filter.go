package pgcdc

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"rtm/realtime/protocol"
)

// Condition is one "column=op.value" term of a postgres_changes filter.
type Condition struct {
	Column string
	// Op is eq, neq, lt, lte, gt, gte or in.
	Op string
	// Values holds one value, or the list of "in".
	Values []string
}

// SupportedOps lists the operators a database subscription evaluates, as
// Supabase Realtime's change feed does (realtime.equality_op).
const SupportedOps = "eq, neq, lt, lte, gt, gte, in"

func isSupportedOp(op string) bool {
	switch op {
	case "eq", "neq", "lt", "lte", "gt", "gte", "in":
		return true
	}
	return false
}

// isKnownOp reports operators of newer servers and PostgREST that this
// feed does not evaluate: named in the error, so the user knows it is the
// operator, not a typo.
func isKnownOp(op string) bool {
	switch op {
	case "like", "ilike", "is", "match", "imatch", "isdistinct", "cs", "cd", "ov", "fts", "plfts", "phfts", "wfts":
		return true
	}
	return false
}

// FilterError is a filter that does not parse or that the feed cannot
// evaluate.
type FilterError = protocol.FilterError

// ParseFilter parses a postgres_changes filter (the syntax of
// [protocol.ParseFilter]) and keeps it to what the feed evaluates:
// operators eq, neq, lt, lte, gt, gte and in, without negation. Errors
// are *FilterError saying what is wrong and what is accepted.
func ParseFilter(filter string) ([]Condition, error) {
	conds, err := protocol.ParseFilter(filter)
	if err != nil {
		return nil, err
	}
	out := make([]Condition, 0, len(conds))
	for _, c := range conds {
		switch {
		case c.Not:
			return nil, &FilterError{Filter: filter, Reason: "negation (not.) is not supported; supported operators: " + SupportedOps}
		case isSupportedOp(c.Op):
		case isKnownOp(c.Op):
			return nil, &FilterError{Filter: filter, Reason: fmt.Sprintf("operator %q is not supported; supported operators: %s", c.Op, SupportedOps)}
		default:
			return nil, &FilterError{Filter: filter, Reason: fmt.Sprintf("unknown operator %q; supported operators: %s", c.Op, SupportedOps)}
		}
		out = append(out, Condition{Column: c.Column, Op: c.Op, Values: c.Values})
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// cmpKind is how values of a column type compare.
type cmpKind uint8

const (
	cmpText cmpKind = iota // byte order (exact for eq, neq, in)
	cmpInt
	cmpFloat
	cmpNumeric
	cmpBool
	cmpTime // timestamps and dates in ISO output
)

func cmpKindOf(typname string) cmpKind {
	switch typname {
	case "int2", "int4", "int8", "oid":
		return cmpInt
	case "float4", "float8":
		return cmpFloat
	case "numeric":
		return cmpNumeric
	case "bool":
		return cmpBool
	case "timestamp", "timestamptz", "date":
		return cmpTime
	}
	return cmpText
}

// cond is a condition bound to a column: its type, and its values in the
// type's canonical text (as PostgreSQL outputs them, like WAL values).
type cond struct {
	column string
	op     string
	kind   cmpKind
	values []string
}

// eval evaluates the condition against a column's text value; a NULL
// (or absent) value matches nothing, as in Supabase.
func (c *cond) eval(v []byte, null bool) bool {
	if null {
		return false
	}
	if c.op == "in" {
		for _, w := range c.values {
			if r, ok := compareValues(c.kind, v, w); ok && r == 0 {
				return true
			}
		}
		return false
	}
	r, ok := compareValues(c.kind, v, c.values[0])
	if !ok {
		return false
	}
	switch c.op {
	case "eq":
		return r == 0
	case "neq":
		return r != 0
	case "lt":
		return r < 0
	case "lte":
		return r <= 0
	case "gt":
		return r > 0
	case "gte":
		return r >= 0
	}
	return false
}

// compareValues compares a value's text with a canonical filter value by
// type. ok is false when either does not read as the type.
func compareValues(kind cmpKind, a []byte, b string) (int, bool) {
	switch kind {
	case cmpInt:
		x, err1 := strconv.ParseInt(string(a), 10, 64)
		y, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil {
			// oid is unsigned.
			ux, err1 := strconv.ParseUint(string(a), 10, 64)
			uy, err2 := strconv.ParseUint(b, 10, 64)
			if err1 != nil || err2 != nil {
				return 0, false
			}
			return cmp.Compare(ux, uy), true
		}
		return cmp.Compare(x, y), true
	case cmpFloat:
		x, err1 := strconv.ParseFloat(string(a), 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return compareFloat(x, y), true
	case cmpNumeric:
		return compareNumeric(string(a), b)
	case cmpBool:
		x, ok1 := parseBool(string(a))
		y, ok2 := parseBool(b)
		if !ok1 || !ok2 {
			return 0, false
		}
		return cmp.Compare(btoi(x), btoi(y)), true
	case cmpTime:
		x, ok1 := parseTime(string(a))
		y, ok2 := parseTime(b)
		if ok1 && ok2 {
			return x.Compare(y), true
		}
	}
	return strings.Compare(string(a), b), true
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compareFloat orders floats as PostgreSQL: NaN equals NaN and is greater
// than everything else.
func compareFloat(x, y float64) int {
	xn, yn := math.IsNaN(x), math.IsNaN(y)
	switch {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	}
	return cmp.Compare(x, y)
}

// compareNumeric compares numeric texts exactly: -Infinity < finite <
// Infinity < NaN.
func compareNumeric(a, b string) (int, bool) {
	rank := func(s string) (int, *big.Rat, bool) {
		switch s {
		case "NaN":
			return 3, nil, true
		case "Infinity":
			return 2, nil, true
		case "-Infinity":
			return 0, nil, true
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || len(s) > 1000 {
			return 0, nil, false
		}
		return 1, r, true
	}
	ra, xa, ok1 := rank(a)
	rb, xb, ok2 := rank(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	if ra != rb || ra != 1 {
		return cmp.Compare(ra, rb), true
	}
	return xa.Cmp(xb), true
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "y", "yes", "on", "1":
		return true, true
	case "f", "false", "n", "no", "off", "0":
		return false, true
	}
	return false, false
}

// parseTime reads an ISO date or timestamp; infinities sort first/last.
func parseTime(s string) (time.Time, bool) {
	switch s {
	case "infinity":
		return time.Unix(1<<62, 0), true
	case "-infinity":
		return time.Unix(-1<<62, 0), true
	}
	// PostgreSQL's ISO outputs of date, timestamp and timestamptz (with
	// TimeZone UTC the offset is "+00").
	layouts := [...]string{
		"2006-01-02 15:04:05.999999999Z07",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07:00:00",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
