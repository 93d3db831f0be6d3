// Package masktest helps tests prove that no secret reaches a screen, a
// log or a file: it spells keys the way hostile or merely unusual
// payloads do (JSON \u escapes, '=' padding) and finds a key however
// deeply it is encoded in what was written.
package masktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// PaddedJWT signs claims as an HS256 JWT whose three segments are all
// base64 with '=' padding, a spelling rtm serve accepts (it trims '='
// before decoding a segment and checks the signature over the segments
// as written). The header has a kid and the claims a filler member, so
// that each segment needs padding.
func PaddedJWT(secret []byte, claims map[string]any) string {
	header := base64.URLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"k"}`))
	var body []byte
	for pad := ""; ; pad += "x" {
		c := map[string]any{"pad": pad}
		for k, v := range claims {
			c[k] = v
		}
		body, _ = json.Marshal(c)
		if len(body)%3 != 0 {
			break
		}
	}
	signing := header + "." + base64.URLEncoding.EncodeToString(body)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.URLEncoding.EncodeToString(mac.Sum(nil))
}

// EscapeOne spells s as the content of a JSON string with the character
// at i written as a \u escape ("ey\u004ahbGci…"): the same string once
// decoded.
func EscapeOne(s string, i int) string {
	return s[:i] + fmt.Sprintf(`\u%04x`, s[i]) + s[i+1:]
}

// EscapeAll spells every character of s as a \u escape.
func EscapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, `\u%04X`, s[i])
	}
	return b.String()
}

// Payload is a broadcast payload (a JSON object) that holds each key in
// a spelling the old masking missed: a service_role JWT with one
// character \u-escaped, an sb_secret_ key with its '_' escaped, and a
// padded JWT plain, inside a longer string, nested in an array. Each key
// is also a member name once, fully escaped.
func Payload(serviceRoleJWT, secretKey, paddedJWT string) json.RawMessage {
	return json.RawMessage(`{"note":"rotate","svc":"` + EscapeOne(serviceRoleJWT, 2) + `",` +
		`"key":"` + EscapeOne(secretKey, 2) + `",` +
		`"nested":{"list":[1,"see ` + paddedJWT + ` here"]},` +
		`"` + EscapeAll(serviceRoleJWT) + `":true}`)
}

// Holds reports whether key is in b: as it is, in b with its escapes
// decoded (every level of \uXXXX, \xHH, %HH and backslash escapes), in
// any string of b read as JSON (member names included), in a string
// that is itself JSON or base64 (a recording's binary frames), or in the
// fields of a 2.0.0 binary frame such a string decodes to — recursively.
func Holds(b []byte, key string) bool { return holds(b, key, 0) }

func holds(b []byte, key string, depth int) bool {
	if key == "" || depth > 12 {
		return false
	}
	if bytes.Contains(b, []byte(key)) {
		return true
	}
	for d, changed := unescape(b); changed; d, changed = unescape(d) {
		if bytes.Contains(d, []byte(key)) {
			return true
		}
	}
	if holdsFrame(b, key, depth) {
		return true
	}
	// NDJSON and JSON: every string, member names included.
	found := false
	for _, line := range bytes.Split(b, []byte("\n")) {
		var v any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if d.Decode(&v) != nil {
			continue
		}
		walk(v, func(s string) {
			if found || s == string(b) {
				return
			}
			if holds([]byte(s), key, depth+1) {
				found = true
				return
			}
			if len(s) >= 8 {
				if raw, err := base64.StdEncoding.DecodeString(s); err == nil && holds(raw, key, depth+1) {
					found = true
				}
			}
		})
		if found {
			return true
		}
	}
	return false
}

// holdsFrame looks into b as a 2.0.0 binary user broadcast.
func holdsFrame(b []byte, key string, depth int) bool {
	if len(b) == 0 || (b[0] != protocol.KindUserBroadcast && b[0] != protocol.KindUserBroadcastPush) {
		return false
	}
	var m protocol.Message
	var err error
	if b[0] == protocol.KindUserBroadcast {
		m, err = protocol.V2.DecodeServer(b, true)
	} else {
		m, err = protocol.V2.DecodeClient(b, true)
	}
	if err != nil || m.Broadcast == nil {
		return false
	}
	for _, f := range [][]byte{m.Broadcast.Payload, m.Broadcast.Meta, []byte(m.Broadcast.Event), []byte(m.Topic)} {
		if holds(f, key, depth+1) {
			return true
		}
	}
	return false
}

func walk(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, x := range v {
			walk(x, f)
		}
	case map[string]any:
		for k, x := range v {
			f(k)
			walk(x, f)
		}
	}
}

// unescape decodes one level of escapes: \uXXXX (pairs combined),
// \xHH, %HH and the one-character backslash escapes.
func unescape(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '\\') < 0 && bytes.IndexByte(b, '%') < 0 {
		return b, false
	}
	out := make([]byte, 0, len(b))
	changed := false
	hex := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			switch {
			case '0' <= c && c <= '9':
				n = n<<4 | int(c-'0')
			case 'a' <= c && c <= 'f':
				n = n<<4 | int(c-'a'+10)
			case 'A' <= c && c <= 'F':
				n = n<<4 | int(c-'A'+10)
			default:
				return 0, false
			}
		}
		return n, true
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '%' && i+2 < len(b):
			if n, ok := hex(b[i+1 : i+3]); ok {
				out, i, changed = append(out, byte(n)), i+2, true
				continue
			}
		case c == '\\' && i+1 < len(b):
			switch e := b[i+1]; e {
			case 'u':
				if i+5 < len(b) {
					if n, ok := hex(b[i+2 : i+6]); ok {
						r := rune(n)
						if 0xD800 <= r && r < 0xDC00 && i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
							if n2, ok := hex(b[i+8 : i+12]); ok && 0xDC00 <= n2 && n2 < 0xE000 {
								r = 0x10000 + (r-0xD800)<<10 + rune(n2-0xDC00)
								i += 6
							}
						}
						out, i, changed = utf8.AppendRune(out, r), i+5, true
						continue
					}
				}
			case 'x':
				if i+3 < len(b) {
					if n, ok := hex(b[i+2 : i+4]); ok {
						out, i, changed = append(out, byte(n)), i+3, true
						continue
					}
				}
			case '"', '\\', '/', '\'':
				out, i, changed = append(out, e), i+1, true
				continue
			case 'n', 't', 'r', 'b', 'f':
				out, i, changed = append(out, map[byte]byte{'n': '\n', 't': '\t', 'r': '\r', 'b': '\b', 'f': '\f'}[e]), i+1, true
				continue
			}
		}
		out = append(out, c)
	}
	return out, changed
}
