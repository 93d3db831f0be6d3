package mask

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

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
