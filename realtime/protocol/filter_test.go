package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []FilterCondition
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"id=eq.1", []FilterCondition{{Column: "id", Op: "eq", Values: []string{"1"}}}, ""},
		{" id =gt.0,id=lt.100", []FilterCondition{{Column: "id", Op: "gt", Values: []string{"0"}}, {Column: "id", Op: "lt", Values: []string{"100"}}}, ""},
		{`name=eq."a,b"`, []FilterCondition{{Column: "name", Op: "eq", Values: []string{"a,b"}}}, ""},
		{`name=eq."a\"b"`, []FilterCondition{{Column: "name", Op: "eq", Values: []string{`a"b`}}}, ""},
		{`status=not.in.(open,"in progress")`, []FilterCondition{{Column: "status", Op: "in", Not: true, Values: []string{"open", "in progress"}}}, ""},
		{"tag=ilike.He%", []FilterCondition{{Column: "tag", Op: "ilike", Values: []string{"He%"}}}, ""},
		{"id=eq.5.0", []FilterCondition{{Column: "id", Op: "eq", Values: []string{"5.0"}}}, ""},
		{"id=eq.", []FilterCondition{{Column: "id", Op: "eq", Values: []string{""}}}, ""},
		{"id", nil, "want column=op.value"},
		{"=eq.1", nil, "bad column name"},
		{"id=1", nil, "want op.value"},
		{"id=e-q.1", nil, `unknown operator "e-q"`},
		{"id=not.1", nil, "want op.value"},
		{"id=in.1,2", nil, "parenthesised list"},
		{"id=in.(1,2", nil, `unterminated "in" list`},
		{`name=eq."abc`, nil, "unterminated quoted value"},
		{`name=eq."abc\`, nil, "unterminated escape"},
		{"id=eq.(1)", nil, "unquoted value"},
		{`id=eq.1"`, nil, "unquoted value"},
		{"id=eq.1,", nil, "want column=op.value"},
		{`id=eq."1"x`, nil, "want ','"},
	} {
		got, err := ParseFilter(tt.in)
		if tt.err != "" {
			var fe *FilterError
			if err == nil || !errors.As(err, &fe) || fe.Filter != tt.in || !strings.Contains(fe.Reason, tt.err) {
				t.Errorf("%q: err %v, want a *FilterError with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// quoteFilterValue writes a filter value as a client would.
func quoteFilterValue(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"id=eq.1", `a=in.(1,"2,3")`, `x=gte.2026-01-01,y=neq."q\""`, "=", "a=.", "a=in.(", "s=not.in.(a,b)", "t=like.%a_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		conds, err := ParseFilter(s)
		if err != nil {
			return
		}
		if strings.TrimSpace(s) != "" && len(conds) == 0 {
			t.Fatalf("%q parsed to nothing", s)
		}
		// Re-writing the conditions with every value quoted parses to
		// the same conditions.
		var parts []string
		for _, c := range conds {
			op := c.Op
			if c.Not {
				op = "not." + op
			}
			if c.Op == "in" {
				q := make([]string, len(c.Values))
				for i, v := range c.Values {
					q[i] = quoteFilterValue(v)
				}
				parts = append(parts, c.Column+"="+op+".("+strings.Join(q, ",")+")")
			} else {
				parts = append(parts, c.Column+"="+op+"."+quoteFilterValue(c.Values[0]))
			}
		}
		again, err := ParseFilter(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, conds) {
			t.Fatalf("%q -> %+v; rewritten %q -> %+v, %v", s, conds, strings.Join(parts, ","), again, err)
		}
	})
}
