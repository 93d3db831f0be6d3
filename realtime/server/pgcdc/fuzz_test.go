package pgcdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
)

func sampleMessages() []walMessage {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678000, time.UTC)
	rel := &relation{id: 16384, namespace: "public", name: "todos", replicaIdentity: 'd',
		columns: []relColumn{{name: "id", typeOID: 20, typmod: -1, key: true}, {name: "title", typeOID: 25, typmod: -1}}}
	row := []value{{kind: valText, data: []byte("1")}, {kind: valText, data: []byte("hello")}}
	key := []value{{kind: valText, data: []byte("1")}, {kind: valNull}}
	return []walMessage{
		{typ: msgBegin, lsn: 0x16B3748, commitTime: ts, xid: 731},
		{typ: msgCommit, lsn: 0x16B3748, endLSN: 0x16B3778, commitTime: ts},
		{typ: msgRelation, rel: rel},
		{typ: msgInsert, relID: 16384, newRow: row},
		{typ: msgUpdate, relID: 16384, newRow: []value{{kind: valText, data: []byte("1")}, {kind: valUnchanged}}},
		{typ: msgUpdate, relID: 16384, oldKind: 'K', oldRow: key, newRow: row},
		{typ: msgDelete, relID: 16384, oldKind: 'O', oldRow: row},
		{typ: msgTruncate, relIDs: []uint32{16384, 16390}},
		{typ: msgMessage, lsn: 99, prefix: "rtm_fence_x", content: []byte("42")},
	}
}

// decodeMessage inverts encodeMessage.
func TestDecodeMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		got, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatalf("%c: %v", m.typ, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%c:\n got  %+v\n want %+v", m.typ, got, m)
		}
	}
	// Every truncation is an error, never a panic.
	for _, m := range sampleMessages() {
		b := encodeMessage(m)
		for n := 0; n < len(b); n++ {
			if _, err := decodeMessage(b[:n]); err == nil && m.typ != msgTruncate {
				t.Errorf("%c truncated to %d bytes decoded without error", m.typ, n)
			}
		}
	}
	if _, err := decodeMessage([]byte{'Z', 1}); err == nil {
		t.Error("unknown type decoded")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(encodeMessage(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			return
		}
		// What decodes re-encodes to a message that decodes the same.
		if m.typ == msgOrigin || m.typ == msgType {
			return
		}
		again, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatalf("re-encoded %c does not decode: %v", m.typ, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(m)) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

// normalize makes empty and nil slices compare equal.
func normalize(m walMessage) walMessage {
	fix := func(v []value) []value {
		out := make([]value, len(v))
		for i, x := range v {
			out[i] = value{kind: x.kind, data: append([]byte{}, x.data...)}
		}
		return out
	}
	m.newRow, m.oldRow = fix(m.newRow), fix(m.oldRow)
	m.content = append([]byte{}, m.content...)
	if m.rel != nil && len(m.rel.columns) == 0 {
		r := *m.rel
		r.columns = nil
		m.rel = &r
	}
	if len(m.relIDs) == 0 {
		m.relIDs = nil
	}
	return m
}

func TestAppendValue(t *testing.T) {
	text := &pgType{name: "text", kind: kindString}
	int4 := &pgType{name: "int4", kind: kindNumber}
	for _, tt := range []struct {
		typ  *pgType
		in   string
		want string
	}{
		{int4, "42", `42`},
		{&pgType{name: "numeric", kind: kindNumber}, "NaN", `"NaN"`},
		{&pgType{name: "float8", kind: kindNumber}, "-Infinity", `"-Infinity"`},
		{&pgType{name: "float8", kind: kindNumber}, "1e+20", `1e+20`},
		{&pgType{name: "bool", kind: kindBool}, "t", `true`},
		{&pgType{name: "bool", kind: kindBool}, "f", `false`},
		{&pgType{name: "jsonb", kind: kindJSON}, `{"a": [1, null]}`, `{"a": [1, null]}`},
		{&pgType{name: "timestamptz", kind: kindTimestamptz}, "2026-01-02 03:04:05.678+00", `"2026-01-02T03:04:05.678+00:00"`},
		{&pgType{name: "timestamptz", kind: kindTimestamptz}, "2026-01-02 03:04:05+05:30", `"2026-01-02T03:04:05+05:30"`},
		{&pgType{name: "timestamptz", kind: kindTimestamptz}, "infinity", `"infinity"`},
		{&pgType{name: "timestamp", kind: kindTimestamp}, "2026-01-02 03:04:05", `"2026-01-02T03:04:05"`},
		{&pgType{name: "timetz", kind: kindTimetz}, "10:00:00-02", `"10:00:00-02:00"`},
		{text, "a\"b\\c\n\x01é", `"a\"b\\c\n\u0001é"`},
		{text, "\xff", `"\ufffd"`},
		{&pgType{name: "_int4", kind: kindArray, elem: int4}, "{1,2,NULL}", `[1,2,null]`},
		{&pgType{name: "_int4", kind: kindArray, elem: int4}, "{{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{&pgType{name: "_int4", kind: kindArray, elem: int4}, "[0:1]={7,8}", `[7,8]`},
		{&pgType{name: "_text", kind: kindArray, elem: text}, `{"a,b","c\"d",NULL,"NULL", e }`, `["a,b","c\"d",null,"NULL","e"]`},
		{&pgType{name: "_text", kind: kindArray, elem: text}, `{}`, `[]`},
		{&pgType{name: "_text", kind: kindArray, elem: text}, `{a`, `"{a"`}, // malformed: kept as text
		{&pgType{name: "_box", kind: kindArray, elem: text, delim: ';'}, `{(1,1),(0,0);(2,2),(1,1)}`, `["(1,1),(0,0)","(2,2),(1,1)"]`},
	} {
		got := string(appendValue(nil, tt.typ, []byte(tt.in)))
		if got != tt.want {
			t.Errorf("%s %q: got %s, want %s", tt.typ.name, tt.in, got, tt.want)
		}
	}
}

func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{"{1,2}", `{"a\"",NULL,{x}}`, "[1:2]={a,b}", "2026-01-01 00:00:00+00", "1.5e3", "t", `{"k":1}`} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(7))
	}
	text := &pgType{name: "text", kind: kindString}
	kinds := []*pgType{
		text,
		{name: "int8", kind: kindNumber},
		{name: "bool", kind: kindBool},
		{name: "jsonb", kind: kindJSON},
		{name: "timestamp", kind: kindTimestamp},
		{name: "timestamptz", kind: kindTimestamptz},
		{name: "timetz", kind: kindTimetz},
		{name: "_text", kind: kindArray, elem: text},
		{name: "_int8", kind: kindArray, elem: &pgType{name: "int8", kind: kindNumber}},
	}
	f.Fuzz(func(t *testing.T, s string, k uint8) {
		typ := kinds[int(k)%len(kinds)]
		out := appendValue([]byte(`{"v":`), typ, []byte(s))
		out = append(out, '}')
		if !json.Valid(out) {
			t.Fatalf("%s %q gave invalid JSON %s", typ.name, s, out)
		}
	})
}

func TestParseFilter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []Condition
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"id=eq.1", []Condition{{"id", "eq", []string{"1"}}}, ""},
		{"id=gt.0,id=lt.100", []Condition{{"id", "gt", []string{"0"}}, {"id", "lt", []string{"100"}}}, ""},
		{`name=eq."a,b"`, []Condition{{"name", "eq", []string{"a,b"}}}, ""},
		{`name=eq."a\"b"`, []Condition{{"name", "eq", []string{`a"b`}}}, ""},
		{"status=in.(open,\"in progress\")", []Condition{{"status", "in", []string{"open", "in progress"}}}, ""},
		{"id=eq.", []Condition{{"id", "eq", []string{""}}}, ""},
		{"id", nil, "want column=op.value"},
		{"id=1", nil, "want op.value"},
		{"id=like.a%", nil, `operator "like" is not supported`},
		{"id=not.eq.1", nil, "negation (not.) is not supported"},
		{"id=foo.1", nil, `unknown operator "foo"`},
		{"id=in.1,2", nil, "parenthesised list"},
		{"id=in.(1,2", nil, "unterminated"},
		{`name=eq."abc`, nil, "unterminated quoted value"},
		{"id=eq.1;id=eq.2", []Condition{{"id", "eq", []string{"1;id=eq.2"}}}, ""},
		{"id=eq.(1)", nil, "unquoted value"},
	} {
		got, err := ParseFilter(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// The feed's ParseFilter is protocol.ParseFilter (whose fuzz test checks
// the syntax round trip) kept to the operators the feed evaluates: what it
// accepts is exactly what protocol.ParseFilter gives, with supported
// operators and no negation, and it refuses nothing else.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"id=eq.1", "a=in.(1,\"2,3\")", "x=gte.2026-01-01,y=neq.\"q\\\"\"", "=", "a=.", "a=in.(", "s=not.in.(a,b)", "t=like.%a_", "u=foo.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		conds, err := ParseFilter(s)
		base, berr := protocol.ParseFilter(s)
		if berr != nil {
			if err == nil {
				t.Fatalf("%q: accepted, protocol.ParseFilter refused it: %v", s, berr)
			}
			return
		}
		supported := true
		for _, c := range base {
			supported = supported && !c.Not && isSupportedOp(c.Op)
		}
		if !supported {
			var fe *FilterError
			if !errors.As(err, &fe) || fe.Filter != s {
				t.Fatalf("%q: an unsupported operator gave %v, want a *FilterError", s, err)
			}
			return
		}
		if err != nil || len(conds) != len(base) {
			t.Fatalf("%q: %+v, %v; protocol.ParseFilter %+v", s, conds, err, base)
		}
		for i, c := range conds {
			if c.Column != base[i].Column || c.Op != base[i].Op || !reflect.DeepEqual(c.Values, base[i].Values) {
				t.Fatalf("%q: condition %d %+v, protocol.ParseFilter %+v", s, i, c, base[i])
			}
		}
	})
}

func TestCompareValues(t *testing.T) {
	for _, tt := range []struct {
		kind cmpKind
		a, b string
		want int
	}{
		{cmpInt, "10", "9", 1},
		{cmpInt, "-1", "-1", 0},
		{cmpNumeric, "9.50", "9.5", 0},
		{cmpNumeric, "10", "9.5", 1},
		{cmpNumeric, "NaN", "Infinity", 1},
		{cmpNumeric, "-Infinity", "-99999999999999999999", -1},
		{cmpFloat, "NaN", "1e308", 1},
		{cmpFloat, "0.5", "0.5", 0},
		{cmpBool, "t", "true", 0},
		{cmpBool, "f", "t", -1},
		{cmpTime, "2026-01-01 10:00:00+00", "2026-01-01 10:00:00.5+00", -1},
		{cmpTime, "2026-01-01", "2025-12-31", 1},
		{cmpTime, "infinity", "2026-01-01 00:00:00", 1},
		{cmpText, "b", "a", 1},
	} {
		got, ok := compareValues(tt.kind, []byte(tt.a), tt.b)
		if !ok || got != tt.want {
			t.Errorf("compare(%d, %q, %q) = %d, %v; want %d", tt.kind, tt.a, tt.b, got, ok, tt.want)
		}
	}
	if _, ok := compareValues(cmpInt, []byte("x"), "1"); ok {
		t.Error("a non-integer compared as an integer")
	}
	c := cond{op: "in", kind: cmpInt, values: []string{"1", "3"}}
	if !c.eval([]byte("3"), false) || c.eval([]byte("2"), false) || c.eval(nil, true) {
		t.Error("in")
	}
}

func TestQuote(t *testing.T) {
	if got := quoteIdent(`we"ird`); got != `"we""ird"` {
		t.Errorf("quoteIdent %s", got)
	}
	if got := quoteLiteral(`it's`); got != `'it''s'` {
		t.Errorf("quoteLiteral %s", got)
	}
	var b bytes.Buffer
	b.Write(appendJSONString(nil, "\u2028"))
	if b.String() != `"\u2028"` {
		t.Errorf("line separator %s", b.String())
	}
}
