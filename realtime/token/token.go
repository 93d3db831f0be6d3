// Package token mints the HS256 JWTs rtm signs: the embedded server's
// project keys, the user and role tokens of --as, the headless
// identities and the demo peers, and the tokens the channel manager
// mints for the expire-token fault. It is the one signer (on
// github.com/golang-jwt/jwt); everything that mints calls [Sign] or
// [User].
//
// It lives under realtime/ so that both sides can import it without
// breaking the layering: the server (realtime/server, for its project
// keys) may not import registry/..., and the client side (registry/target,
// registry/headless, main) may not import realtime/server. It only signs:
// the server verifies tokens with its own code (realtime/server/auth.go),
// which stays independent of this package so that its tests check one
// against the other.
package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles that Supabase issues (the server gives them meaning).
const (
	RoleAnon          = "anon"
	RoleAuthenticated = "authenticated"
	RoleServiceRole   = "service_role"
)

// Issuer is the iss claim of the tokens rtm mints for users and roles.
const Issuer = "rtm"

// Sign signs claims as an HS256 JWT with secret. The header is
// {"alg":"HS256","typ":"JWT"} and the claims are encoded as
// encoding/json encodes the map (keys sorted), so one secret and one set
// of claims always give the same token.
func Sign(secret []byte, claims map[string]any) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("token: sign: empty secret")
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// User signs a token for an authenticated user: role "authenticated",
// aud "authenticated", iss "rtm", sub, iat now and exp now+ttl (a
// negative ttl makes an expired token), plus extra claims (which may
// override those).
func User(secret []byte, sub string, now time.Time, ttl time.Duration, extra map[string]any) (string, error) {
	claims := map[string]any{
		"role": RoleAuthenticated,
		"sub":  sub,
		"iat":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
		"aud":  RoleAuthenticated,
		"iss":  Issuer,
	}
	for k, v := range extra {
		claims[k] = v
	}
	return Sign(secret, claims)
}

// Signer returns [Sign] bound to secret, the form registry.Options.MintToken
// takes; nil when secret is empty (nothing to mint with: the faults that
// need a fresh token say so).
func Signer(secret []byte) func(claims map[string]any) (string, error) {
	if len(secret) == 0 {
		return nil
	}
	secret = append([]byte(nil), secret...)
	return func(claims map[string]any) (string, error) { return Sign(secret, claims) }
}
