package pgcdc

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file turns the text form of column values (as pgoutput sends them,
// with DateStyle ISO and TimeZone UTC) into JSON the way Supabase Realtime
// does with to_jsonb: numbers as numbers, booleans as booleans, json and
// jsonb as JSON, timestamps in ISO 8601 with a "T", arrays as JSON arrays,
// everything else as a string.

// jsonKind says how a type's values become JSON.
type jsonKind uint8

const (
	kindString jsonKind = iota
	kindNumber
	kindBool
	kindJSON
	kindTimestamp   // "2024-01-01 10:00:00" -> "2024-01-01T10:00:00"
	kindTimestamptz // "2024-01-01 10:00:00+00" -> "2024-01-01T10:00:00+00:00"
	kindTimetz      // "10:00:00+02" -> "10:00:00+02:00"
	kindArray
)

// pgType is what the change feed knows of a column type.
type pgType struct {
	oid  uint32
	name string // pg_type.typname: "int8", "_text"
	kind jsonKind
	// elem is the element type of an array type.
	elem *pgType
	// delim separates array elements (',' except for box).
	delim byte
}

// kindOf maps a base type name to its JSON kind.
func kindOf(typname string) jsonKind {
	switch typname {
	case "int2", "int4", "int8", "float4", "float8", "numeric", "oid":
		return kindNumber
	case "bool":
		return kindBool
	case "json", "jsonb":
		return kindJSON
	case "timestamp":
		return kindTimestamp
	case "timestamptz":
		return kindTimestamptz
	case "timetz":
		return kindTimetz
	}
	return kindString
}

// appendValue appends the JSON form of a value's text.
func appendValue(dst []byte, t *pgType, text []byte) []byte {
	if t == nil {
		return appendJSONString(dst, text)
	}
	switch t.kind {
	case kindNumber:
		if isJSONNumber(text) {
			return append(dst, text...)
		}
		return appendJSONString(dst, text) // NaN, Infinity
	case kindBool:
		switch string(text) {
		case "t", "true":
			return append(dst, "true"...)
		case "f", "false":
			return append(dst, "false"...)
		}
	case kindJSON:
		if json.Valid(text) {
			return append(dst, text...)
		}
	case kindTimestamp, kindTimestamptz, kindTimetz:
		return appendJSONString(dst, isoTime(text, t.kind))
	case kindArray:
		if out, err := appendArray(dst, t, text); err == nil {
			return out
		}
	}
	return appendJSONString(dst, text)
}

// isoTime rewrites PostgreSQL's ISO output as to_jsonb does: a "T"
// between date and time, and a "+HH:MM" offset.
func isoTime(text []byte, kind jsonKind) []byte {
	out := make([]byte, 0, len(text)+4)
	i := 0
	if kind != kindTimetz {
		// The date ends at the first space (years may have more digits).
		for i < len(text) && text[i] != ' ' {
			i++
		}
		if i >= len(text) || !isDigits(text[:min(4, i)]) {
			return text // infinity, or not ISO
		}
		out = append(out, text[:i]...)
		out = append(out, 'T')
		i++
	}
	rest := text[i:]
	if kind == kindTimestamp {
		return append(out, rest...)
	}
	if len(rest) > 3 && rest[len(rest)-3] == ' ' { // " BC"
		return text
	}
	// The offset starts at the last '+' or '-'.
	j := len(rest) - 1
	for j > 0 && rest[j] != '+' && rest[j] != '-' {
		j--
	}
	if j <= 0 {
		return append(out, rest...)
	}
	out = append(out, rest...)
	if off := rest[j+1:]; len(off) == 2 && isDigits(off) {
		out = append(out, ":00"...)
	}
	return out
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether b is a JSON number.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

// errArray is an array literal that does not parse.
var errArray = errors.New("pgcdc: malformed array literal")

// maxArrayDepth bounds array nesting (PostgreSQL allows 6 dimensions).
const maxArrayDepth = 6

// appendArray appends the JSON form of an array literal
// ("{1,2,NULL}", "{{a,b},{c,d}}", "[0:1]={x,y}") with elements converted
// by the element type.
func appendArray(dst []byte, t *pgType, text []byte) ([]byte, error) {
	// Skip dimension decorations "[1:2][1:3]=".
	if len(text) > 0 && text[0] == '[' {
		eq := -1
		for i, c := range text {
			if c == '=' {
				eq = i
				break
			}
		}
		if eq < 0 {
			return dst, errArray
		}
		text = text[eq+1:]
	}
	delim := t.delim
	if delim == 0 {
		delim = ','
	}
	p := arrayParser{s: text, delim: delim, elem: t.elem}
	out, err := p.array(dst, 0)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return dst, errArray
	}
	return out, nil
}

type arrayParser struct {
	s     []byte
	i     int
	delim byte
	elem  *pgType
	buf   []byte
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// array parses "{...}" at p.i.
func (p *arrayParser) array(dst []byte, depth int) ([]byte, error) {
	if depth >= maxArrayDepth {
		return dst, errArray
	}
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return dst, errArray
	}
	p.i++
	dst = append(dst, '[')
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		var err error
		switch {
		case p.i >= len(p.s):
			return dst, errArray
		case p.s[p.i] == '{':
			dst, err = p.array(dst, depth+1)
		case p.s[p.i] == '"':
			dst, err = p.quoted(dst)
		default:
			dst, err = p.unquoted(dst)
		}
		if err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return dst, errArray
		}
		c := p.s[p.i]
		p.i++
		if c == '}' {
			return append(dst, ']'), nil
		}
		if c != p.delim {
			return dst, errArray
		}
	}
}

func (p *arrayParser) quoted(dst []byte) ([]byte, error) {
	p.i++ // opening quote
	p.buf = p.buf[:0]
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return dst, errArray
			}
			p.buf = append(p.buf, p.s[p.i+1])
			p.i += 2
		case '"':
			p.i++
			return p.element(dst, p.buf), nil
		default:
			p.buf = append(p.buf, c)
			p.i++
		}
	}
	return dst, errArray
}

func (p *arrayParser) unquoted(dst []byte) ([]byte, error) {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == p.delim || c == '}' {
			break
		}
		if c == '{' || c == '"' {
			return dst, errArray
		}
		p.i++
	}
	v := p.s[start:p.i]
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if len(v) == 0 {
		return dst, errArray
	}
	if len(v) == 4 && (v[0]|0x20) == 'n' && (v[1]|0x20) == 'u' && (v[2]|0x20) == 'l' && (v[3]|0x20) == 'l' {
		return append(dst, "null"...), nil
	}
	return p.element(dst, v), nil
}

func (p *arrayParser) element(dst, v []byte) []byte {
	if p.elem != nil && p.elem.kind == kindArray {
		return appendJSONString(dst, v) // not expected: arrays nest by braces
	}
	return appendValue(dst, p.elem, v)
}

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes
// U+FFFD).
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c >= 0x20:
				dst = append(dst, c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, `\u202`...)
			dst = append(dst, hex[r&0xf])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	out := make([]byte, 0, len(s)+2)
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		if s[i] == 0 {
			continue
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}
