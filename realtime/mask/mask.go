// Package mask hides secrets (API keys, JWTs, passwords) in what rtm
// shows, logs and records, so that no screen, log line or file ever holds
// a usable credential.
//
// A secret is found on the decoded text, not on its spelling: a JSON
// document is decoded and every string in it (member names included) is
// masked and encoded again, so that the output is valid JSON whose decoded
// form holds no secret; text that is not JSON is masked as it is and again
// after decoding its escapes (JSON and JavaScript backslash escapes,
// URL percent escapes), however deeply they nest, so that
// "ey\u004ahbGci…" or "eyJ%68bGci…" is found as well as "eyJhbGci…".
//
// What counts as a secret:
//
//   - a JWT: three base64 segments (URL or standard alphabet, '='
//     padding or none) joined by dots, whose first two decode to a JSON
//     object (optional JSON whitespace, then '{'), whatever its alg;
//   - a Supabase opaque key: sb_publishable_… or sb_secret_…;
//   - the value of a member, query parameter or attribute whose name
//     names a secret ([IsSecretName]: apikey, token, access_token,
//     password, …), masked whole whatever its shape;
//   - the credential after "Bearer ".
//
// A secret is replaced by its masked form ([Secret]): its first and last
// four characters around an ellipsis ("eyJh…K08A"), or a lone "…" for a
// short one. A masked form is not a secret: masking is idempotent.
//
// Each function starts with a pre-check that reads the input once without
// allocating and returns it unchanged when no secret can be in it; any
// backslash or percent sign makes the full check run, since an escape can
// spell anything. A JWT broken by whitespace is found only as the value of
// a secret-named member or parameter, and a secret encoded otherwise
// (base64 of a JWT, say) is not found.
package mask

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// Secret masks a whole secret for display: the first and last four
// characters of a value of 24 bytes or more around "…", a lone "…" for a
// shorter one, "" for "". The result never holds enough of the secret to
// use it.
func Secret(s string) string {
	if s == "" {
		return ""
	}
	if len(s) < 24 {
		return "…"
	}
	head, tail := 0, len(s)
	for n := 0; n < 4; n++ {
		_, size := utf8.DecodeRuneInString(s[head:])
		head += size
		_, size = utf8.DecodeLastRuneInString(s[:tail])
		tail -= size
	}
	return s[:head] + "…" + s[tail:]
}

// IsMasked reports whether s is the masked form of a secret: at most four
// characters, "…", at most four characters, optionally followed by a
// length (" (211 chars)", as the server's logs write it).
func IsMasked(s string) bool {
	head, tail, ok := strings.Cut(s, "…")
	if !ok {
		return false
	}
	if t, ok := strings.CutSuffix(tail, " chars)"); ok {
		if i := strings.LastIndex(t, " ("); i >= 0 && i+2 < len(t) && strings.Trim(t[i+2:], "0123456789") == "" {
			tail = t[:i]
		}
	}
	return utf8.RuneCountInString(head) <= 4 && utf8.RuneCountInString(tail) <= 4 && !strings.Contains(tail, "…")
}

// IsSecretName reports whether a JSON member, query parameter or log
// attribute named name holds a secret, so that its whole value is masked.
// Case is ignored and '-' reads as '_'; a dotted name (a log group,
// "join.access_token") is judged by its last part. The names are apikey,
// api_key, authorization, token, jwt, secret, password, passwd, anon_key,
// service_role_key, service_key, secret_key, publishable_key, private_key
// and every name that ends in token, secret, password, apikey, api_key or
// _jwt (access_token, refresh_token, user_token, client_secret,
// x-api-key, …).
func IsSecretName(name string) bool {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	var buf [64]byte
	n, ok := normName(buf[:0], name)
	if !ok {
		return false
	}
	return exactSecretName(n) || secretSuffix(n)
}

// normName lowers name into buf with '-' as '_'; false when name is too
// long to be a name.
func normName(buf []byte, name string) (string, bool) {
	if len(name) < 3 || len(name) > cap(buf) {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '-':
			c = '_'
		}
		buf = append(buf, c)
	}
	return string(buf), true
}

func exactSecretName(n string) bool {
	switch n {
	case "apikey", "api_key", "authorization", "proxy_authorization", "token", "jwt", "secret", "password",
		"passwd", "anon_key", "service_role_key", "service_key", "secret_key", "publishable_key", "private_key":
		return true
	}
	return false
}

func secretSuffix(n string) bool {
	for _, suf := range [...]string{"token", "secret", "password", "apikey", "api_key", "_jwt"} {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}

// maskValue masks the whole value of a secret-named member or parameter,
// keeping an authorization scheme ("Bearer eyJh…K08A"); it returns v when
// v is already masked.
func maskValue(v string) string {
	if v == "" || IsMasked(v) {
		return v
	}
	if scheme, cred, ok := strings.Cut(v, " "); ok && isScheme(scheme) {
		cred = strings.TrimLeft(cred, " ")
		if cred == "" || IsMasked(cred) {
			return v
		}
		return scheme + " " + Secret(cred)
	}
	return Secret(v)
}

// isScheme reports whether w is an HTTP authorization scheme.
func isScheme(w string) bool {
	return strings.EqualFold(w, "bearer") || strings.EqualFold(w, "basic") || strings.EqualFold(w, "token") || strings.EqualFold(w, "digest")
}

// maxNest bounds the nesting of JSON held in strings (and of escape
// levels that hold JSON) that is decoded as JSON; deeper, a string with a
// secret is masked whole.
const maxNest = 16

// maxLevels bounds the escape levels decoded in a text; a text whose
// escapes nest deeper and that may hold a secret is masked whole.
const maxLevels = 8

// Text returns s with every secret in it masked. JSON text (an object, an
// array or a string) is masked as [JSON] does. Other text is masked as it
// is, unless it holds escapes (\uXXXX, \xHH, %HH, …) and a secret shows
// once they are decoded: then the decoded text is returned, masked.
func Text(s string) string { return text(s, 0) }

func text(s string, depth int) string {
	if !mayHold(s) {
		return s
	}
	if depth < maxNest && looksJSON(s) {
		if b := []byte(s); protocol.Valid(b) {
			if out, changed := maskJSON(b, depth); changed {
				return string(out)
			}
			return s
		}
	}
	if d, ok := deeper(s, depth); ok {
		return d
	}
	return flat(s)
}

// deeper looks for a secret that shows once the escapes of s are
// decoded, level by level; when one does, it returns the decoded text,
// masked. It reads the levels of s itself, not of s masked: masking the
// text as it is could cut the context (a name, a quote) by which a deeper
// secret is known.
func deeper(s string, depth int) (string, bool) {
	v := s
	for level := 0; ; level++ {
		if strings.IndexByte(v, '\\') < 0 && strings.IndexByte(v, '%') < 0 {
			return "", false
		}
		d, changed := decodeOnce(v)
		if !changed {
			return "", false
		}
		if !mayHold(d) {
			v = d
			continue
		}
		if level == maxLevels || depth >= maxNest {
			// Escapes nested deeper than is worth decoding.
			return Secret(s), true
		}
		if looksJSON(d) {
			if b := []byte(d); protocol.Valid(b) {
				if out, changed := maskJSON(b, depth+1); changed {
					return string(out), true
				}
			}
		}
		if len(find(d)) > 0 {
			return text(d, depth+1), true
		}
		v = d
	}
}

// looksJSON reports whether s starts (after JSON whitespace) like a JSON
// object, array or string.
func looksJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
		case '{', '[', '"':
			return true
		default:
			return false
		}
	}
	return false
}

// flat masks the secrets found in s as it is (no decoding), until none is
// found; s masked whole when that does not settle.
func flat(s string) string {
	out := s
	for pass := 0; pass < 3; pass++ {
		sp := find(out)
		if len(sp) == 0 {
			return out
		}
		out = replace(out, sp)
	}
	if len(find(out)) == 0 {
		return out
	}
	return Secret(s)
}

// replace replaces the spans of s (sorted, disjoint) by their masks.
func replace(s string, sp []span) string {
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, x := range sp {
		b.WriteString(s[last:x.a])
		b.WriteString(x.mask)
		last = x.b
	}
	b.WriteString(s[last:])
	return b.String()
}

// JSON returns the JSON text data with every secret masked: every string
// (member values and names, at any depth) is decoded and masked as [Text]
// does, and the value of a secret-named member ([IsSecretName]) is masked
// whole; the strings are encoded again, every other byte is kept, so the
// output is valid JSON whose decoded form holds no secret. Invalid JSON is
// masked as text. It returns data itself when nothing is masked.
func JSON(data []byte) []byte {
	if !mayHold(data) {
		return data
	}
	if protocol.Valid(data) {
		if out, changed := maskJSON(data, 0); changed {
			return out
		}
		return data
	}
	return bytesText(data)
}

// bytesText masks raw bytes as text (they need not be UTF-8); it returns
// b itself when nothing is masked.
func bytesText(b []byte) []byte {
	if !mayHold(b) {
		return b
	}
	s := string(b)
	if m := Text(s); m != s {
		return []byte(m)
	}
	return b
}

// Binary masks a 2.0.0 binary frame: the topic, event and meta of a user
// broadcast (kind 3 from a client, kind 4 from the server) and its
// payload, as JSON or, for a raw binary payload, as text; the frame is
// encoded again, so it stays decodable. Any other frame (or one that
// does not decode) is masked as raw bytes. It returns data itself when
// nothing is masked.
func Binary(data []byte) []byte {
	if !mayHold(data) {
		return data
	}
	m, fromClient, err := decodeBinary(data)
	if err != nil || m.Broadcast == nil {
		return bytesText(data)
	}
	b := *m.Broadcast
	if b.Binary {
		b.Payload = bytesText(b.Payload)
	} else {
		b.Payload = JSON(b.Payload)
	}
	if len(b.Meta) > 0 {
		b.Meta = JSON(b.Meta)
	}
	b.Event = Text(b.Event)
	m.Broadcast = &b
	m.Topic, m.JoinRef, m.Ref = Text(m.Topic), Text(m.JoinRef), Text(m.Ref)
	var out []byte
	if fromClient {
		out, _, err = protocol.V2.AppendClient(nil, &m)
	} else {
		out, _, err = protocol.V2.AppendServer(nil, &m)
	}
	if err != nil {
		// A masked field no longer fits (a length byte): the bytes as
		// text.
		return bytesText(data)
	}
	return out
}

func decodeBinary(data []byte) (protocol.Message, bool, error) {
	if len(data) == 0 {
		return protocol.Message{}, false, errors.New("empty frame")
	}
	switch data[0] {
	case protocol.KindUserBroadcastPush:
		m, err := protocol.V2.DecodeClient(data, true)
		return m, true, err
	case protocol.KindUserBroadcast:
		m, err := protocol.V2.DecodeServer(data, true)
		return m, false, err
	}
	return protocol.Message{}, false, fmt.Errorf("binary frame kind %d", data[0])
}

// URL masks a URL for display: the password of its user info becomes
// "xxxxx" (as url.URL.Redacted writes it) and the rest is masked as
// [Text] does (apikey=…, token=… and other secret-named parameters, JWTs
// and opaque keys anywhere, percent escapes decoded). The result is for
// reading, not for use.
func URL(raw string) string {
	s := raw
	if u, err := url.Parse(raw); err == nil {
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				s = u.Redacted()
			}
		}
	} else if i := strings.Index(raw, "://"); i >= 0 {
		// Unparsable: cut the password by hand.
		rest := raw[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
				s = raw[:i+3] + rest[:c+1] + "xxxxx" + rest[at:]
			}
		}
	}
	return Text(s)
}

// ReplaceAttr masks a log attribute, for slog.HandlerOptions.ReplaceAttr:
// the whole value of a secret-named attribute ([IsSecretName]), the
// secrets in any other string (the message included), error or Stringer
// value. Values already masked are kept.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			s = v.Error()
		case fmt.Stringer:
			s = v.String()
		case []byte:
			s = string(v)
		default:
			s = fmt.Sprintf("%+v", v)
		}
	default:
		return a
	}
	m := Text(s)
	if IsSecretName(a.Key) {
		m = maskValue(s)
	}
	if m == s {
		return a
	}
	return slog.String(a.Key, m)
}
