package protocol

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of JSON values the scanner accepts, so a
// hostile frame of a million '[' cannot exhaust the stack.
const maxDepth = 512

// scanner is a small validating JSON reader over a byte slice. It decodes
// exactly what the envelope needs (strings, null, the raw extent of any
// value) without reflection or allocation beyond the strings it returns.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: invalid JSON at offset %d: %s", ErrMalformed, s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) skipSpace() {
	data, i := s.data, s.pos
	for i < len(data) && data[i] <= ' ' && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	s.pos = i
}

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// expect consumes the byte c after optional space.
func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end, want %q", c)
		}
		return s.errorf("unexpected %q, want %q", s.data[s.pos], c)
	}
	s.pos++
	return nil
}

// literal consumes the literal word (null, true, false).
func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errorf("invalid literal")
	}
	s.pos += len(word)
	return nil
}

// stringOrNull reads a JSON string or null. null yields "" and isNull true.
func (s *scanner) stringOrNull() (str string, isNull bool, err error) {
	switch s.peek() {
	case 'n':
		return "", true, s.literal("null")
	case '"':
		str, err = s.str()
		return str, false, err
	case 0:
		return "", false, s.errorf("unexpected end, want string or null")
	default:
		return "", false, s.errorf("unexpected %q, want string or null", s.data[s.pos])
	}
}

// str reads a JSON string at the current position (after space).
func (s *scanner) str() (string, error) {
	raw, escaped, err := s.rawString()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(raw), nil
	}
	return unescape(raw)
}

// rawString consumes a JSON string and returns its content without quotes,
// validating escapes and control characters. escaped reports whether the
// content holds backslash escapes that need decoding.
func (s *scanner) rawString() (content []byte, escaped bool, err error) {
	if s.peek() != '"' {
		return nil, false, s.errorf("want string")
	}
	s.pos++
	start := s.pos
	for s.pos < len(s.data) {
		// Fast path: runs of plain ASCII need no decision. Locals keep
		// the loop in registers.
		data, i := s.data, s.pos
		for i < len(data) && plainASCII[data[i]] {
			i++
		}
		s.pos = i
		if i >= len(data) {
			break
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			content = s.data[start:s.pos]
			s.pos++
			return content, escaped, nil
		case c == '\\':
			escaped = true
			s.pos++
			if s.pos >= len(s.data) {
				return nil, false, s.errorf("unterminated escape")
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if len(s.data)-s.pos < 5 || !isHex4(s.data[s.pos+1:s.pos+5]) {
					return nil, false, s.errorf("invalid \\u escape")
				}
				s.pos += 5
			default:
				return nil, false, s.errorf("invalid escape %q", s.data[s.pos])
			}
		case c < 0x20:
			return nil, false, s.errorf("control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, s.errorf("invalid UTF-8 in string")
			}
			s.pos += size
		default:
			s.pos++
		}
	}
	return nil, false, s.errorf("unterminated string")
}

// plainASCII marks the bytes a JSON string may hold unescaped that need no
// further check: printable ASCII except '"' and '\\'. It is read-only.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	default:
		return rune(c - 'A' + 10)
	}
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// unescape decodes the content of a JSON string already validated by
// rawString. Lone surrogates become U+FFFD, as encoding/json does.
func unescape(raw []byte) (string, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		i++
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
			i++
		case 'b':
			out = append(out, '\b')
			i++
		case 'f':
			out = append(out, '\f')
			i++
		case 'n':
			out = append(out, '\n')
			i++
		case 'r':
			out = append(out, '\r')
			i++
		case 't':
			out = append(out, '\t')
			i++
		case 'u':
			r := hex4(raw[i+1 : i+5])
			i += 5
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2 : i+6])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", fmt.Errorf("%w: invalid escape", ErrMalformed)
		}
	}
	return string(out), nil
}

// value consumes any JSON value and returns its raw bytes (without
// surrounding space).
func (s *scanner) value() ([]byte, error) {
	s.skipSpace()
	start := s.pos
	if err := s.skipValue(0); err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

func (s *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return s.errorf("nesting deeper than %d", maxDepth)
	}
	switch c := s.peek(); c {
	case '{':
		s.pos++
		if s.peek() == '}' {
			s.pos++
			return nil
		}
		for {
			if _, _, err := s.rawString(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return nil
			default:
				return s.errorf("want ',' or '}' in object")
			}
		}
	case '[':
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.errorf("want ',' or ']' in array")
			}
		}
	case '"':
		_, _, err := s.rawString()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		return s.errorf("unexpected end of input")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return s.number()
		}
		return s.errorf("unexpected %q", c)
	}
}

// number consumes a JSON number, enforcing the grammar of RFC 8259.
func (s *scanner) number() error {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return s.errorf("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		n := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == n {
			s.pos = i
			return s.errorf("invalid number fraction")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		n := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == n {
			s.pos = i
			return s.errorf("invalid number exponent")
		}
	}
	s.pos = i
	return nil
}

// end checks that only space remains.
func (s *scanner) end() error {
	if s.skipSpace(); s.pos < len(s.data) {
		return s.errorf("trailing data")
	}
	return nil
}

// objectFields iterates over the members of the JSON object at the current
// position, calling fn with each key's raw (still escaped) bytes. fn must
// consume the value. Keys with escapes are decoded before fn sees them.
func (s *scanner) objectFields(fn func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		raw, escaped, err := s.rawString()
		if err != nil {
			return err
		}
		key := ""
		if escaped {
			if key, err = unescape(raw); err != nil {
				return err
			}
		} else {
			key = string(raw) // a short-lived key; the compiler avoids copying in switch
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' in object")
		}
	}
}

// Valid reports whether data is one well-formed JSON value (RFC 8259
// grammar, nesting bounded).
func Valid(data []byte) bool {
	s := scanner{data: data}
	if err := s.skipValue(0); err != nil {
		return false
	}
	return s.end() == nil
}

// IsObject reports whether data is one well-formed JSON object.
func IsObject(data []byte) bool {
	s := scanner{data: data}
	return s.peek() == '{' && Valid(data)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD and
// control characters are escaped, so the output is always valid JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				const hexDigits = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendStringOrNull appends s as a JSON string, or null when s is empty.
func appendStringOrNull(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendString(dst, s)
}

// AppendString appends s to dst as a JSON string literal.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }
