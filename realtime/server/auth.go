package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"rtm/realtime/token"
)

// Roles that Supabase issues and this server gives meaning to.
const (
	RoleAnon          = "anon"
	RoleAuthenticated = "authenticated"
	RoleServiceRole   = "service_role"
)

// AuthError is why a token was refused. Its texts are Supabase's: Code
// and Message form a join error reason ("InvalidJWTToken: Token has
// expired 3 seconds ago"), Message alone is the text of a channel
// shutdown, and Connect is the HTTP error body of a refused upgrade.
type AuthError struct {
	Code    string
	Message string
	Connect string
}

// Error implements error.
func (e *AuthError) Error() string { return e.Reason() }

// Reason is the join error reason: "Code: Message".
func (e *AuthError) Reason() string { return e.Code + ": " + e.Message }

var (
	errMalformedJWT = &AuthError{"MalformedJWT", "The token provided is not a valid JWT", "The token provided is not a valid JWT"}
	errSignature    = &AuthError{"JwtSignatureError", "Failed to validate JWT signature", "Failed to validate JWT signature"}
	errSigner       = &AuthError{"JwtSignerError", "Failed to generate JWT signer, check your JWT secret or JWKS configuration",
		"Failed to generate JWT signer, check your JWT secret or JWKS configuration"}
	errMissingClaims = &AuthError{"InvalidJWTToken", "Fields `role` and `exp` are required in JWT", "Fields `role` and `exp` are required in JWT"}
	errInvalidExp    = &AuthError{"InvalidJWTToken", "Token expiration time is invalid", "Token expiration time is invalid"}
)

func errExpired(secondsAgo int64) *AuthError {
	return &AuthError{"InvalidJWTToken", fmt.Sprintf("Token has expired %d seconds ago", secondsAgo), "Token has expired"}
}

// Claims are the claims of a verified token that the server uses.
type Claims struct {
	Role string
	Sub  string
	// Exp is the expiry, in Unix seconds.
	Exp int64
	// TenantID is the tenant_id claim, top level or in app_metadata.
	TenantID string
	// All holds every claim.
	All map[string]any
}

// Expires returns Exp as a time.
func (c *Claims) Expires() time.Time { return time.Unix(c.Exp, 0) }

// verifyToken checks a token as Supabase Realtime does
// (RealtimeWeb.ChannelsAuthorization.authorize_conn): clean it, parse it,
// pick the HMAC signer from alg, check the signature, validate exp (and
// iat), then require role and exp.
func verifyToken(token string, secret []byte, now time.Time) (*Claims, *AuthError) {
	token = cleanToken(token)
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errMalformedJWT
	}
	headerJSON, err1 := decodeSegment(parts[0])
	claimsJSON, err2 := decodeSegment(parts[1])
	sig, err3 := decodeSegment(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, errMalformedJWT
	}
	var all map[string]any
	if err := decodeJSONObject(claimsJSON, &all); err != nil {
		return nil, errMalformedJWT
	}
	var header map[string]any
	if err := decodeJSONObject(headerJSON, &header); err != nil {
		return nil, errMalformedJWT
	}
	alg, _ := header["alg"].(string)
	newHash := hmacHash(alg)
	if newHash == nil {
		return nil, errSigner
	}
	mac := hmac.New(newHash, secret)
	mac.Write([]byte(parts[0]))
	mac.Write([]byte{'.'})
	mac.Write([]byte(parts[1]))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return nil, errSignature
	}

	nowSec := now.Unix()
	c := &Claims{All: all}
	if v, ok := all["exp"]; ok {
		exp, ok := numberClaim(v)
		if !ok {
			return nil, errInvalidExp
		}
		if exp <= nowSec {
			return nil, errExpired(nowSec - exp)
		}
		c.Exp = exp
	}
	if v, ok := all["iat"]; ok {
		if _, ok := numberClaim(v); !ok {
			return nil, errMalformedJWT
		}
	}
	role, hasRole := all["role"]
	if _, hasExp := all["exp"]; !hasRole || !hasExp {
		return nil, errMissingClaims
	}
	c.Role = claimString(role)
	c.Sub = claimString(all["sub"])
	c.TenantID = claimString(all["tenant_id"])
	if c.TenantID == "" {
		if md, ok := all["app_metadata"].(map[string]any); ok {
			c.TenantID = claimString(md["tenant_id"])
		}
	}
	return c, nil
}

// cleanToken URL-decodes a token and strips all whitespace, as Realtime's
// clean_token does.
func cleanToken(token string) string {
	if strings.Contains(token, "%") {
		if dec, err := url.PathUnescape(token); err == nil {
			token = dec
		}
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return -1
		}
		return r
	}, token)
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func decodeJSONObject(data []byte, v *map[string]any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if *v == nil {
		return errors.New("not an object")
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

func hmacHash(alg string) func() hash.Hash {
	switch alg {
	case "HS256":
		return sha256.New
	case "HS384":
		return sha512.New384
	case "HS512":
		return sha512.New
	}
	return nil
}

// numberClaim reads a numeric claim, rounding decimals as Realtime does.
func numberClaim(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<62 {
		return 0, false
	}
	return int64(math.Round(f)), true
}

// claimString renders a string or number claim; anything else is "".
func claimString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// Project keys carry fixed times, so that one secret always gives the
// same keys (an app's .env stays valid across restarts).
const (
	keyIssuedAt  = 1767225600 // 2026-01-01
	keyExpiresAt = 4102444800 // 2100-01-01
)

// roleKey signs the long-lived project key of role, like `supabase
// status` prints.
func roleKey(secret []byte, role string) (string, error) {
	return token.Sign(secret, map[string]any{
		"iss":  token.Issuer,
		"role": role,
		"iat":  keyIssuedAt,
		"exp":  keyExpiresAt,
	})
}

// opaqueKey derives an opaque API key ("sb_publishable_…") from the
// secret, stable for one secret.
func opaqueKey(secret []byte, prefix string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(prefix))
	return prefix + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// MaskToken shortens a token for logs and screens: its first and last
// four characters. Tokens are never logged in full.
func MaskToken(token string) string {
	if len(token) <= 12 {
		return strings.Repeat("*", len(token))
	}
	return token[:4] + "…" + token[len(token)-4:] + " (" + strconv.Itoa(len(token)) + " chars)"
}
