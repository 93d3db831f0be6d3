package protocol

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// isSpace marks the four JSON whitespace bytes. It is read-only.
var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipWS(d []byte, i int) int {
	for i < len(d) && d[i] <= ' ' && isSpace[d[i]] {
		i++
	}
	return i
}

func syntaxError(i int, what string) error {
	return fmt.Errorf("%w: invalid JSON at offset %d: %s", ErrMalformed, i, what)
}

// fastString validates the JSON string starting at d[i] == '"' and returns
// the index after its closing quote, the content bounds, and whether the
// content holds escapes.
func fastString(d []byte, i int) (end, start, stop int, escaped bool, err error) {
	i++
	start = i
	n := len(d)
	for {
		// Eight bytes at a time: stop at the first byte that is '"', '\\',
		// a control character or non-ASCII (the lowest flagged byte of
		// each test is exact, borrows only flag bytes above it).
		for i+8 <= n {
			v := binary.LittleEndian.Uint64(d[i:])
			const ones, highs = 0x0101010101010101, 0x8080808080808080
			q := v ^ (ones * '"')
			b := v ^ (ones * '\\')
			mask := ((q - ones) & ^q) | ((b - ones) & ^b) | ((v - ones*0x20) & ^v) | v
			if mask &= highs; mask != 0 {
				// The flagged byte is never plain ASCII: no need to
				// look at it again below.
				i += bits.TrailingZeros64(mask) >> 3
				goto special
			}
			i += 8
		}
		for i < n && plainASCII[d[i]] {
			i++
		}
		if i >= n {
			return i, 0, 0, false, syntaxError(i, "unterminated string")
		}
	special:
		switch c := d[i]; {
		case c == '"':
			return i + 1, start, i, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= n {
				return i, 0, 0, false, syntaxError(i, "unterminated escape")
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if n-i < 5 || !isHex4(d[i+1:i+5]) {
					return i, 0, 0, false, syntaxError(i, "invalid \\u escape")
				}
				i += 5
			default:
				return i, 0, 0, false, syntaxError(i, "invalid escape")
			}
		case c < 0x20:
			return i, 0, 0, false, syntaxError(i, "control character in string")
		default: // c >= 0x80
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return i, 0, 0, false, syntaxError(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

// fastNumber validates the JSON number at d[i].
func fastNumber(d []byte, i int) (int, error) {
	n := len(d)
	if i < n && d[i] == '-' {
		i++
	}
	switch {
	case i < n && d[i] == '0':
		i++
	case i < n && '1' <= d[i] && d[i] <= '9':
		for i < n && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return i, syntaxError(i, "invalid number")
	}
	if i < n && d[i] == '.' {
		i++
		s := i
		for i < n && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == s {
			return i, syntaxError(i, "invalid number fraction")
		}
	}
	if i < n && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < n && (d[i] == '+' || d[i] == '-') {
			i++
		}
		s := i
		for i < n && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == s {
			return i, syntaxError(i, "invalid number exponent")
		}
	}
	return i, nil
}

func fastLiteral(d []byte, i int, word string) (int, error) {
	if len(d)-i < len(word) || string(d[i:i+len(word)]) != word {
		return i, syntaxError(i, "invalid literal")
	}
	return i + len(word), nil
}

// fastValue validates one JSON value starting at d[i] (after optional
// space) and returns the index after it. base is the nesting depth of the
// value in its frame: as for [Valid], a value nested deeper than maxDepth
// is refused. It is iterative.
func fastValue(d []byte, i int, base int) (int, error) {
	// objBits[k/64] bit k%64 is set when open container k is an object.
	var objBits [(maxDepth + 64) / 64]uint64
	depth := 0
	n := len(d)
	var err error
	var c byte
	var isObj bool

value:
	if base+depth > maxDepth {
		return i, syntaxError(i, fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	for i < n && isSpace[d[i]] {
		i++
	}
	if i >= n {
		return i, syntaxError(i, "unexpected end of input")
	}
	switch c = d[i]; c {
	case '{', '[':
		i++
		for i < n && isSpace[d[i]] {
			i++
		}
		if i < n && (d[i] == '}' && c == '{' || d[i] == ']' && c == '[') {
			i++
			goto next
		}
		if c == '{' {
			objBits[depth/64] |= 1 << (depth % 64)
			depth++
			goto key
		}
		objBits[depth/64] &^= 1 << (depth % 64)
		depth++
		goto value
	case '"':
		if i, _, _, _, err = fastString(d, i); err != nil {
			return i, err
		}
	case 't':
		if i, err = fastLiteral(d, i, "true"); err != nil {
			return i, err
		}
	case 'f':
		if i, err = fastLiteral(d, i, "false"); err != nil {
			return i, err
		}
	case 'n':
		if i, err = fastLiteral(d, i, "null"); err != nil {
			return i, err
		}
	default:
		if c != '-' && (c < '0' || c > '9') {
			return i, syntaxError(i, fmt.Sprintf("unexpected %q", c))
		}
		if i, err = fastNumber(d, i); err != nil {
			return i, err
		}
	}

next:
	if depth == 0 {
		return i, nil
	}
	for i < n && isSpace[d[i]] {
		i++
	}
	if i >= n {
		return i, syntaxError(i, "unexpected end of input")
	}
	isObj = objBits[(depth-1)/64]&(1<<((depth-1)%64)) != 0
	switch c = d[i]; {
	case c == ',':
		i++
		if isObj {
			goto key
		}
		goto value
	case c == '}' && isObj, c == ']' && !isObj:
		i++
		depth--
		goto next
	case isObj:
		return i, syntaxError(i, "want ',' or '}' in object")
	default:
		return i, syntaxError(i, "want ',' or ']' in array")
	}

key:
	for i < n && isSpace[d[i]] {
		i++
	}
	if i >= n || d[i] != '"' {
		return i, syntaxError(i, "want string")
	}
	if i, _, _, _, err = fastString(d, i); err != nil {
		return i, err
	}
	for i < n && isSpace[d[i]] {
		i++
	}
	if i >= n || d[i] != ':' {
		return i, syntaxError(i, "want ':'")
	}
	i++
	goto value
}

// strAt reads the JSON string at d[i] (after space) and returns its
// unescaped content (aliasing d when it holds no escapes).
func strAt(d []byte, i int, what string) ([]byte, int, error) {
	i = skipWS(d, i)
	if i >= len(d) || d[i] != '"' {
		return nil, i, fmt.Errorf("%w: %s must be a string", ErrMalformed, what)
	}
	end, start, stop, escaped, err := fastString(d, i)
	if err != nil {
		return nil, end, fmt.Errorf("%s: %w", what, err)
	}
	if !escaped {
		return d[start:stop:stop], end, nil
	}
	s, err := unescape(d[start:stop])
	if err != nil {
		return nil, end, err
	}
	return []byte(s), end, nil
}

// refAt reads a string or null; null gives nil.
func refAt(d []byte, i int, what string) ([]byte, int, error) {
	i = skipWS(d, i)
	if i < len(d) && d[i] == 'n' {
		end, err := fastLiteral(d, i, "null")
		if err != nil {
			return nil, end, fmt.Errorf("%s: %w", what, err)
		}
		return nil, end, nil
	}
	if i >= len(d) || d[i] != '"' {
		return nil, i, fmt.Errorf("%s: %w", what, syntaxError(i, "want string or null"))
	}
	b, end, err := strAt(d, i, what)
	if b == nil && err == nil {
		b = d[i+1 : i+1] // "" is not null
	}
	return b, end, err
}

func expectByte(d []byte, i int, c byte) (int, error) {
	i = skipWS(d, i)
	if i >= len(d) || d[i] != c {
		return i, syntaxError(i, fmt.Sprintf("want %q", c))
	}
	return i + 1, nil
}
