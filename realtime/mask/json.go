package mask

import (
	"unicode/utf16"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// jsonMasker rewrites the strings of a JSON value that hold secrets. The
// input is valid JSON (protocol.Valid accepted it, nesting bounded), so
// the walk checks nothing; it never reads past the end either way. Bytes
// up to last are in out (or unchanged, while out is nil).
type jsonMasker struct {
	data  []byte
	out   []byte
	last  int
	depth int
}

// maskJSON masks the valid JSON value data; changed is false (and out
// nil) when no string needed masking.
func maskJSON(data []byte, depth int) (out []byte, changed bool) {
	w := &jsonMasker{data: data, depth: depth}
	w.value(0, false)
	if w.out == nil {
		return nil, false
	}
	return append(w.out, data[w.last:]...), true
}

func (w *jsonMasker) space(i int) int {
	for i < len(w.data) && isJSONSpace(w.data[i]) {
		i++
	}
	return i
}

// value walks the value at i and returns the index after it; secret is
// true for the value of a secret-named member.
func (w *jsonMasker) value(i int, secret bool) int {
	d := w.data
	i = w.space(i)
	if i >= len(d) {
		return i
	}
	switch d[i] {
	case '{':
		i = w.space(i + 1)
		for i < len(d) && d[i] == '"' {
			var named bool
			i, named = w.str(i, false, true)
			i = w.space(i)
			if i < len(d) && d[i] == ':' {
				i++
			}
			i = w.space(w.value(i, named))
			if i < len(d) && d[i] == ',' {
				i = w.space(i + 1)
			}
		}
		if i < len(d) && d[i] == '}' {
			i++
		}
		return i
	case '[':
		i = w.space(i + 1)
		for i < len(d) && d[i] != ']' {
			i = w.space(w.value(i, false))
			if i < len(d) && d[i] == ',' {
				i = w.space(i + 1)
			}
		}
		if i < len(d) {
			i++
		}
		return i
	case '"':
		i, _ = w.str(i, secret, false)
		return i
	}
	// A number or a literal.
	for i < len(d) && !isJSONSpace(d[i]) && d[i] != ',' && d[i] != '}' && d[i] != ']' {
		i++
	}
	return i
}

// str masks the string at i (a member name when key) and returns the
// index after it; for a key, named tells whether it names a secret.
func (w *jsonMasker) str(i int, secret, key bool) (end int, named bool) {
	d := w.data
	j, escaped := i+1, false
	for j < len(d) && d[j] != '"' {
		if d[j] == '\\' {
			escaped = true
			j++
		}
		j++
	}
	end = min(j+1, len(d))
	raw := d[i+1 : min(j, len(d))]
	if !escaped && !secret && !mayHold(raw) {
		return end, false // the common case: nothing to decode
	}
	s := string(raw)
	if escaped {
		s = unquote(raw)
	}
	var m string
	switch {
	case key:
		named = IsSecretName(s)
		m = text(s, w.depth+1)
	case secret:
		m = maskValue(s)
	default:
		m = text(s, w.depth+1)
	}
	if m != s {
		w.out = append(w.out, d[w.last:i]...)
		w.out = protocol.AppendString(w.out, m)
		w.last = end
	}
	return end, named
}

// unquote decodes the content of a valid JSON string. A lone surrogate
// becomes U+FFFD, as encoding/json decodes it.
func unquote(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			out = append(out, c)
			i++
			continue
		}
		switch e := raw[i+1]; e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			s := string(raw[i:min(i+12, len(raw))])
			r, n := hex4(s, 2), 6
			if r < 0 {
				out = append(out, c)
				i++
				continue
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
					r2 = hex4(s, 8)
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r, n = dec, 12
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		default: // '"', '\\', '/'
			out = append(out, e)
		}
		i += 2
	}
	return string(out)
}
