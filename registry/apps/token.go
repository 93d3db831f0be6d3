package apps

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"rtm/realtime/mask"
)

// maxTokenBytes bounds the tokens read: a longer one is masked, not
// decoded.
const maxTokenBytes = 16 << 10

// tokenInfo reads a JWT's role, sub and exp without verifying it; the
// token is kept only masked.
func tokenInfo(tok string) TokenInfo {
	if tok == "" {
		return TokenInfo{}
	}
	info := TokenInfo{Masked: mask.Secret(tok)}
	parts := strings.Split(tok, ".")
	if len(tok) > maxTokenBytes || len(parts) != 3 {
		return info
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return info
	}
	var c struct {
		Role string  `json:"role"`
		Sub  string  `json:"sub"`
		Exp  float64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil {
		return info
	}
	info.Role, info.Subject = clip(c.Role, 128), clip(c.Sub, 256)
	if c.Exp > 0 && c.Exp < 1<<40 {
		info.Expiry = time.Unix(int64(c.Exp), 0).UTC()
	}
	return info
}

// socketToken is the token of the upgrade: the apikey query parameter,
// else the Authorization bearer, else the apikey header.
func socketToken(q url.Values, h http.Header) string {
	if k := q.Get("apikey"); k != "" {
		return k
	}
	if a := h.Get("Authorization"); a != "" {
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			return strings.TrimSpace(a[7:])
		}
		return a
	}
	return h.Get("apikey")
}

// restToken is the token of a REST request, as the server reads it: the
// Authorization bearer, else the apikey header, else the apikey query
// parameter.
func restToken(q url.Values, h http.Header) string {
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	if k := h.Get("apikey"); k != "" {
		return k
	}
	return q.Get("apikey")
}

// clip cuts s to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
