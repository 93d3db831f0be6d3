package mask

import (
	"slices"
	"strings"
)

// b64 maps a base64 character (URL and standard alphabets) to its value,
// anything else to -1. It is read-only.
var b64 = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	t['-'], t['+'] = 62, 62
	t['_'], t['/'] = 63, 63
	return t
}()

func isB64(c byte) bool { return b64[c] >= 0 }

// span is a secret at s[a:b] and what replaces it.
type span struct {
	a, b int
	mask string
}

// find returns the secrets of s as it is, sorted and disjoint.
func find(s string) []span {
	if !mayHold(s) {
		return nil
	}
	var sp []span
	add := func(a, b int, m string) {
		if b > a && m != s[a:b] {
			sp = append(sp, span{a, b, m})
		}
	}
	findJWTs(s, add)
	findOpaqueKeys(s, add)
	findNamed(s, add)
	findBearer(s, add)
	if len(sp) < 2 {
		return sp
	}
	slices.SortFunc(sp, func(x, y span) int {
		if x.a != y.a {
			return x.a - y.a
		}
		return y.b - x.b
	})
	out := sp[:1]
	for _, x := range sp[1:] {
		last := &out[len(out)-1]
		switch {
		case x.a >= last.b:
			out = append(out, x)
		case x.b <= last.b:
			// Within the last find (a JWT in a token=… value): the
			// outer mask holds it.
		case x.a == last.a:
			*last = x
		default:
			// Overlapping finds: mask their union whole.
			last.b = x.b
			last.mask = Secret(s[last.a:last.b])
		}
	}
	return out
}

// findJWTs finds JWTs: base64 runs h.c.s (each optionally '='-padded, s
// possibly empty) where h and c decode to a JSON object's start. h starts
// at the leftmost place in its run where it decodes so: text glued
// before a token is masked with it.
func findJWTs(s string, add func(a, b int, m string)) {
	lo := 0 // a JWT cannot start before the end of the last one
	for i := 0; i < len(s); {
		d := strings.IndexByte(s[i:], '.')
		if d < 0 {
			return
		}
		p := i + d
		i = p + 1
		e1 := p
		for e1 > lo && s[e1-1] == '=' {
			e1--
		}
		s1 := e1
		for s1 > lo && isB64(s[s1-1]) {
			s1--
		}
		e2 := p + 1
		for e2 < len(s) && isB64(s[e2]) {
			e2++
		}
		q := e2
		for q < len(s) && s[q] == '=' {
			q++
		}
		if s1 == e1 || e2 == p+1 || q >= len(s) || s[q] != '.' || !objectAt(s[p+1:e2]) {
			continue
		}
		start := objectStart(s[s1:e1])
		if start < 0 {
			continue
		}
		e3 := q + 1
		for e3 < len(s) && isB64(s[e3]) {
			e3++
		}
		for e3 < len(s) && s[e3] == '=' {
			e3++
		}
		add(s1+start, e3, Secret(s[s1+start:e3]))
		i, lo = e3, e3
	}
}

// isJSONSpace reports whether c is JSON whitespace.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeGroup decodes the base64 group seg[g:g+4] (shorter at the end)
// into buf and returns the bytes.
func decodeGroup(seg string, g int, buf *[3]byte) []byte {
	n := min(4, len(seg)-g)
	var bits uint32
	for k := 0; k < n; k++ {
		bits = bits<<6 | uint32(b64[seg[g+k]])
	}
	bits <<= 6 * uint(4-n)
	buf[0], buf[1], buf[2] = byte(bits>>16), byte(bits>>8), byte(bits)
	return buf[:n*6/8]
}

// objectAt reports whether the base64 run seg decodes to JSON whitespace
// then '{'.
func objectAt(seg string) bool {
	var buf [3]byte
	for g := 0; g+1 < len(seg); g += 4 {
		for _, c := range decodeGroup(seg, g, &buf) {
			if !isJSONSpace(c) {
				return c == '{'
			}
		}
	}
	return false
}

// objectStart returns the smallest i such that seg[i:] (a base64 run)
// decodes to JSON whitespace then '{', or -1. Starts four characters
// apart decode the same groups, so each of the four alignments is decoded
// once: the whole search is linear.
func objectStart(seg string) int {
	best := -1
	var buf [3]byte
	for r := 0; r < 4 && r < len(seg) && (best < 0 || r < best); r++ {
		streak := -1 // the first group of the current run of whitespace groups
	groups:
		for g := r; g+1 < len(seg) && (best < 0 || g < best); g += 4 {
			if streak < 0 {
				streak = g
			}
			for _, c := range decodeGroup(seg, g, &buf) {
				switch {
				case isJSONSpace(c):
				case c == '{':
					if best < 0 || streak < best {
						best = streak
					}
					break groups
				default:
					streak = -1
					continue groups
				}
			}
		}
	}
	return best
}

// isKeyChar reports whether c may be in an opaque key's body.
func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// findOpaqueKeys finds sb_publishable_… and sb_secret_… keys (any case).
func findOpaqueKeys(s string, add func(a, b int, m string)) {
	for i := 0; ; {
		a := indexFold(s, i, "sb_")
		if a < 0 {
			return
		}
		p := a + 3
		i = p
		switch {
		case hasWordAt(s, p, "publishable_"):
			p += len("publishable_")
		case hasWordAt(s, p, "secret_"):
			p += len("secret_")
		default:
			continue
		}
		e := p
		for e < len(s) && isKeyChar(s[e]) {
			e++
		}
		if e > p {
			add(a, e, Secret(s[a:e]))
			i = e
		}
	}
}

// maxName bounds the names read before '=' and ':'.
const maxName = 64

// isNameChar reports whether c may be in a parameter or member name.
func isNameChar(c byte) bool { return isKeyChar(c) || c == '.' }

// stopsValue reports whether c ends an unquoted value.
func stopsValue(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '&', '"', '\'', '<', '>', ',', ';', '#', '(', ')', '[', ']', '{', '}':
		return true
	}
	return c < 0x20
}

// valueAt returns the extent of the value at s[i:]: the content of a
// quoted value (in double or single quotes, backslash escapes skipped),
// else the run up to a character that ends a value. An unquoted
// authorization scheme ("Bearer xyz") is taken with its credential.
func valueAt(s string, i int) (a, b int) {
	if i >= len(s) {
		return i, i
	}
	if q := s[i]; q == '"' || q == '\'' {
		j := i + 1
		for j < len(s) && s[j] != q {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		return i + 1, min(j, len(s))
	}
	j := i
	for j < len(s) && !stopsValue(s[j]) {
		j++
	}
	if j < len(s) && s[j] == ' ' && isScheme(s[i:j]) {
		k := j
		for k < len(s) && s[k] == ' ' {
			k++
		}
		e := k
		for e < len(s) && !stopsValue(s[e]) {
			e++
		}
		if e > k {
			return i, e
		}
	}
	return i, j
}

// findNamed finds the values of secret-named parameters and members:
// name=value (a query, a form, slog's text), "name": "value" (JSON-like
// text, any quotes) and name: value (a header, YAML: a space after the
// colon) for the exact names.
func findNamed(s string, add func(a, b int, m string)) {
	// addValue masks a value and returns where the scan goes on: after
	// the value, so that "token=token=token=…" is read once.
	addValue := func(i, a, b int) int {
		if v := s[a:b]; v != "" {
			add(a, b, maskValue(v))
		}
		return max(i, b-1)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '=':
			a := i
			for a > 0 && i-a < maxName && isNameChar(s[a-1]) {
				a--
			}
			if a < i && IsSecretName(s[a:i]) {
				va, vb := valueAt(s, i+1)
				i = addValue(i, va, vb)
			}
		case ':':
			k := i
			for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t') {
				k--
			}
			var ok bool
			if k > 0 && (s[k-1] == '"' || s[k-1] == '\'') {
				// The name back to its opening quote, or as much of it as
				// there is (text cut from JSON may lack it).
				q, e := s[k-1], k-1
				if e > 0 && s[e-1] == '\\' {
					e-- // an escaped quote: \"name\":
				}
				a := e
				for a > 0 && e-a < maxName && s[a-1] != q && s[a-1] != '\n' {
					a--
				}
				ok = IsSecretName(strings.TrimSuffix(s[a:e], `\`))
			} else if i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
				// An unquoted name takes a space after the colon, as in a
				// header or YAML: a topic ("realtime:broadcast:token:1")
				// has none.
				a := k
				for a > 0 && k-a < maxName && isNameChar(s[a-1]) {
					a--
				}
				var buf [64]byte
				n, norm := normName(buf[:0], s[a:k])
				ok = norm && exactSecretName(n)
			}
			if ok {
				j := i + 1
				for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
					j++
				}
				va, vb := valueAt(s, j)
				i = addValue(i, va, vb)
			}
		}
	}
}

// isCredChar reports whether c may be in a bearer credential (RFC 6750's
// b64token, and '%').
func isCredChar(c byte) bool {
	return isKeyChar(c) || c == '.' || c == '~' || c == '+' || c == '/' || c == '=' || c == '%'
}

// findBearer finds the credential after "Bearer " (any case), 8
// characters or more.
func findBearer(s string, add func(a, b int, m string)) {
	for i := 0; ; {
		a := indexFold(s, i, "bearer")
		if a < 0 {
			return
		}
		k := a + len("bearer")
		i = k
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k == i {
			continue
		}
		e := k
		for e < len(s) {
			if isCredChar(s[e]) {
				e++
			} else if strings.HasPrefix(s[e:], "…") {
				e += len("…")
			} else {
				break
			}
		}
		if v := s[k:e]; len(v) >= 8 && !IsMasked(v) {
			add(k, e, Secret(v))
		}
		i = e
	}
}
