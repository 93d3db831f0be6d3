package mask

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
