package realtime

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// errNotJWT is wrapped by TokenExpiry for values that are not JWTs.
var errNotJWT = errors.New("not a JWT")

// TokenExpiry returns the exp claim of a JWT, read without verifying the
// signature (the server verifies it). It fails for opaque keys
// (sb_publishable_…) and tokens without a numeric exp.
func TokenExpiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, fmt.Errorf("realtime: token expiry: %w", errNotJWT)
	}
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, fmt.Errorf("realtime: token expiry: %w: %w", errNotJWT, err)
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(body, &claims); err != nil {
		return time.Time{}, fmt.Errorf("realtime: token expiry: %w: %w", errNotJWT, err)
	}
	if claims.Exp == nil {
		return time.Time{}, errors.New("realtime: token expiry: the token has no exp claim")
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e15 || f < -1e15 {
		return time.Time{}, fmt.Errorf("realtime: token expiry: exp %s is not a time", claims.Exp.String())
	}
	return time.Unix(int64(math.Round(f)), 0), nil
}
