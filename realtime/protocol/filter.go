package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// FilterCondition is one "column=op.value" condition of a
// postgres_changes filter (PROTOCOL.md §8).
type FilterCondition struct {
	Column string
	// Op is the operator as written (eq, neq, lt, lte, gt, gte, in, like,
	// ilike, is, match, imatch, isdistinct, ...). ParseFilter checks the
	// syntax only: which operators a change feed evaluates is its
	// business.
	Op string
	// Not is set by "not." before the operator ("status=not.in.(a,b)").
	Not bool
	// Values holds one value, or the list of "in".
	Values []string
}

// FilterError is a filter that does not parse, or that a change feed
// cannot evaluate.
type FilterError struct {
	Filter string
	Reason string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("filter %q: %s", e.Filter, e.Reason)
}

// ParseFilter parses the syntax of a postgres_changes filter: conditions
// "column=op.value" joined by commas (ANDed); an operator may be negated
// with "not."; "in" takes a parenthesised list ("id=in.(1,2,3)"); a value
// holding , ( ) " \ or edge spaces is double-quoted with backslash escapes
// (name=eq."a,b"). A blank filter has no condition. Errors are
// *FilterError saying what is wrong.
func ParseFilter(filter string) ([]FilterCondition, error) {
	if strings.TrimSpace(filter) == "" {
		return nil, nil
	}
	p := &filterParser{s: filter}
	var out []FilterCondition
	for {
		c, err := p.condition()
		if err != nil {
			return nil, &FilterError{Filter: filter, Reason: err.Error()}
		}
		out = append(out, c)
		if p.pos == len(p.s) {
			return out, nil
		}
		if p.s[p.pos] != ',' {
			return nil, &FilterError{Filter: filter, Reason: fmt.Sprintf("want ',' between conditions at offset %d", p.pos)}
		}
		p.pos++
	}
}

type filterParser struct {
	s   string
	pos int
}

func (p *filterParser) condition() (FilterCondition, error) {
	var c FilterCondition
	rest := p.s[p.pos:]
	eq := strings.IndexByte(rest, '=')
	if eq < 0 {
		return c, errors.New(`want column=op.value, e.g. "id=eq.1"`)
	}
	c.Column = strings.TrimSpace(rest[:eq])
	if c.Column == "" || strings.ContainsAny(c.Column, ",()\"\\") {
		return c, fmt.Errorf("bad column name %q", c.Column)
	}
	p.pos += eq + 1
	op, err := p.word()
	if err != nil {
		return c, err
	}
	if op == "not" {
		c.Not = true
		if op, err = p.word(); err != nil {
			return c, err
		}
	}
	c.Op = op
	if op == "in" {
		if p.pos >= len(p.s) || p.s[p.pos] != '(' {
			return c, errors.New(`"in" needs a parenthesised list, e.g. "id=in.(1,2,3)"`)
		}
		p.pos++
		for {
			v, err := p.value(true)
			if err != nil {
				return c, err
			}
			c.Values = append(c.Values, v)
			if p.pos >= len(p.s) {
				return c, errors.New(`unterminated "in" list`)
			}
			ch := p.s[p.pos]
			p.pos++
			if ch == ')' {
				return c, nil
			}
			if ch != ',' {
				return c, fmt.Errorf("unexpected %q in an \"in\" list", ch)
			}
		}
	}
	v, err := p.value(false)
	if err != nil {
		return c, err
	}
	c.Values = []string{v}
	return c, nil
}

// word reads an operator (letters only) and the '.' after it.
func (p *filterParser) word() (string, error) {
	dot := strings.IndexByte(p.s[p.pos:], '.')
	if dot <= 0 {
		return "", errors.New(`want op.value after the column, e.g. "id=eq.1"`)
	}
	w := p.s[p.pos : p.pos+dot]
	for i := 0; i < len(w); i++ {
		if c := w[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return "", fmt.Errorf("unknown operator %q", w)
		}
	}
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
					return "", errors.New("unterminated escape in a quoted value")
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
			return "", fmt.Errorf("%q in an unquoted value (quote the value: \"...\")", ch)
		}
		p.pos++
	}
	return p.s[start:p.pos], nil
}
