package registry

import (
	"regexp"
	"strings"
)

// MaskSecret masks a whole secret (an API key, a JWT) for display: the
// first and last four characters of a long value, nothing of a short one.
// The result never contains enough of the secret to use it.
func MaskSecret(s string) string {
	if s == "" {
		return ""
	}
	if len(s) < 24 {
		return "…"
	}
	return s[:4] + "…" + s[len(s)-4:]
}

// secretPattern finds secrets embedded in text: JWTs, Supabase opaque
// keys, and the values of apikey/token query parameters and JSON members.
type secretPattern struct {
	re *regexp.Regexp
}

func newSecretPattern() *secretPattern {
	return &secretPattern{re: regexp.MustCompile(
		`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*` + // a JWT
			`|sb_(?:publishable|secret)_[A-Za-z0-9_-]+` + // opaque Supabase keys
			`|(?i:apikey|api_key|access_token|token|jwt|secret|password)=[^&\s"']+` + // query parameters
			`|"(?i:apikey|api_key|access_token|user_token|token|jwt|secret|password|authorization)"\s*:\s*"[^"]*"`)} // JSON members
}

// mask replaces every secret found in s.
func (p *secretPattern) mask(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	return p.re.ReplaceAllStringFunc(s, func(m string) string {
		switch {
		case strings.HasPrefix(m, `"`):
			k, v, _ := strings.Cut(m, ":")
			v = strings.TrimSpace(v)
			return k + `:"` + MaskSecret(strings.Trim(v, `"`)) + `"`
		case strings.Contains(m, "="):
			k, v, _ := strings.Cut(m, "=")
			return k + "=" + MaskSecret(v)
		default:
			return MaskSecret(m)
		}
	})
}

// mayHoldSecret is a cheap pre-check that keeps the regexp off most
// text; it does not allocate.
func mayHoldSecret(s string) bool {
	if strings.Contains(s, "eyJ") || strings.Contains(s, "sb_") {
		return true
	}
	for _, w := range [...]string{"key", "token", "jwt", "secret", "password", "authorization"} {
		if containsFold(s, w) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word w,
// ignoring ASCII case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		c := s[i] | 0x20
		if c != w[0] {
			continue
		}
		j := 1
		for j < len(w) && s[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// sensitiveKey reports whether a log attribute key names a secret whose
// whole value must be masked.
func sensitiveKey(k string) bool {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		k = k[i+1:]
	}
	switch strings.ToLower(k) {
	case "apikey", "api_key", "key", "anon_key", "service_role_key", "token", "access_token",
		"user_token", "jwt", "secret", "jwt_secret", "password", "authorization":
		return true
	}
	return false
}

// MaskText returns s with every embedded secret masked: JWTs, Supabase
// opaque keys, apikey/token query parameters and JSON members.
func MaskText(s string) string { return newSecretPattern().mask(s) }
