package mask

import (
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
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

// Byte classes of the pre-check. It is read-only.
const (
	clsB64     = iota // a base64 character that starts no trigger word
	clsOther          // anything else: ends a base64 run
	clsTrigger        // a base64 letter that may start a trigger word
	clsDot
	clsPad
	clsEscape // '\\' or '%'
)

var class = func() (t [256]byte) {
	for i := range t {
		switch {
		case isB64(byte(i)):
			t[i] = clsB64
		default:
			t[i] = clsOther
		}
	}
	for _, c := range "tspajbTSPAJB" {
		t[c] = clsTrigger
	}
	t['.'], t['='], t['\\'], t['%'] = clsDot, clsPad, clsEscape, clsEscape
	return t
}()

// mayHold is the pre-check: false only when no secret can be found in s,
// as it is or decoded. It reads s once and does not allocate. A backslash
// or a percent sign (an escape may spell anything), two dots around a
// base64 run (the middle of a JWT), "sb_", "bearer" or a word every
// secret name holds (token, secret, passw, apikey, api_key, jwt,
// authorization, anon_key, service_key, service_role_key, publishable,
// private_key; any case, '-' for '_') makes it true.
func mayHold[T string | []byte](s T) bool {
	dot, run := -1, false
	for i := 0; i < len(s); i++ {
		switch class[s[i]] {
		case clsB64, clsPad:
		case clsOther:
			run = false
		case clsDot:
			if run && dot >= 0 && i > dot+1 {
				return true
			}
			dot, run = i, true
		case clsEscape:
			return true
		case clsTrigger:
			if triggerAt(s, i) {
				return true
			}
		}
	}
	return false
}

// triggerAt reports whether a trigger word of mayHold starts at s[i].
func triggerAt[T string | []byte](s T, i int) bool {
	switch s[i] | 0x20 {
	case 't':
		return hasWordAt(s, i, "token")
	case 's':
		return hasWordAt(s, i, "secret") || hasWordAt(s, i, "sb_") || hasWordAt(s, i, "service_key") || hasWordAt(s, i, "service_role_key")
	case 'p':
		return hasWordAt(s, i, "passw") || hasWordAt(s, i, "publishable") || hasWordAt(s, i, "private_key")
	case 'a':
		return hasWordAt(s, i, "apikey") || hasWordAt(s, i, "api_key") || hasWordAt(s, i, "authorization") || hasWordAt(s, i, "anon_key")
	case 'j':
		return hasWordAt(s, i, "jwt")
	case 'b':
		return hasWordAt(s, i, "bearer")
	}
	return false
}

// hasWordAt reports whether s holds the lower-case word w at i, ignoring
// ASCII case, '-' matching '_'.
func hasWordAt[T string | []byte](s T, i int, w string) bool {
	if len(s)-i < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		c := s[i+j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '-' {
			c = '_'
		}
		if c != w[j] {
			return false
		}
	}
	return true
}

// indexFold returns the index of the lower-case word w in s at or after
// i, ignoring ASCII case, or -1.
func indexFold(s string, i int, w string) int {
	for ; i+len(w) <= len(s); i++ {
		if s[i]|0x20 == w[0] && hasWordAt(s, i, w) {
			return i
		}
	}
	return -1
}

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

// hex4 decodes s[i:i+4] as four hex digits, or -1.
func hex4(s string, i int) rune {
	if len(s)-i < 4 {
		return -1
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		if !isHex(c) {
			return -1
		}
		r = r<<4 | hexVal(c)
	}
	return r
}

// decodeOnce decodes one level of escapes in s: JSON and JavaScript
// backslash escapes (\uXXXX with surrogate pairs, \xHH, \" \\ \/ \' \b
// \f \n \r \t) and URL percent escapes (%HH). Other bytes, and escapes
// that are not well formed, are kept. changed is false when s has no
// escape.
func decodeOnce(s string) (string, bool) {
	i := strings.IndexAny(s, `\%`)
	if i < 0 {
		return s, false
	}
	out := make([]byte, 0, len(s))
	out = append(out, s[:i]...)
	changed := false
	for i < len(s) {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, byte(hexVal(s[i+1])<<4|hexVal(s[i+2])))
			i += 3
			changed = true
			continue
		case c == '\\' && i+1 < len(s):
			if n := unescapeAt(s, i, &out); n > 0 {
				i += n
				changed = true
				continue
			}
		}
		out = append(out, c)
		i++
	}
	return string(out), changed
}

// unescapeAt decodes the backslash escape at s[i] into out and returns
// its length, or 0 when it is not one.
func unescapeAt(s string, i int, out *[]byte) int {
	switch e := s[i+1]; e {
	case '"', '\\', '/', '\'':
		*out = append(*out, e)
		return 2
	case 'b':
		*out = append(*out, '\b')
		return 2
	case 'f':
		*out = append(*out, '\f')
		return 2
	case 'n':
		*out = append(*out, '\n')
		return 2
	case 'r':
		*out = append(*out, '\r')
		return 2
	case 't':
		*out = append(*out, '\t')
		return 2
	case 'x':
		if i+3 < len(s) && isHex(s[i+2]) && isHex(s[i+3]) {
			*out = append(*out, byte(hexVal(s[i+2])<<4|hexVal(s[i+3])))
			return 4
		}
	case 'u':
		r := hex4(s, i+2)
		if r < 0 {
			return 0
		}
		n := 6
		if utf16.IsSurrogate(r) {
			r2 := rune(-1)
			if i+7 < len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
				r2 = hex4(s, i+8)
			}
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				r, n = dec, 12
			} else {
				r = utf8.RuneError
			}
		}
		*out = utf8.AppendRune(*out, r)
		return n
	}
	return 0
}
