package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// SetToken sets the user token: it is pushed to every joined channel
// (access_token) and used by every later join. Empty reverts to the API
// key.
func (m *Manager) SetToken(token string) {
	m.mu.Lock()
	m.token = token
	m.tokenInfo = tokenInfoOf(token)
	info := m.tokenInfo
	for _, e := range m.entries {
		e.join.tokenExpiry = info.Expiry
	}
	ev := TokenEvent{Time: m.clk.Now(), Action: "set", Token: info}
	if token == "" {
		ev.Action = "cleared"
	}
	m.broker.publish(ev)
	m.mu.Unlock()
	m.sock.SetAuth(token)
	m.log.Info("Token set", "token", token, "sub", info.Subject, "exp", info.Expiry)
}

// Token returns what is known of the token in use (never the token).
func (m *Manager) Token() TokenInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokenInfo
}

// tokenInfoOf reads the claims of a JWT without verifying it.
func tokenInfoOf(tok string) TokenInfo {
	if tok == "" {
		return TokenInfo{}
	}
	info := TokenInfo{Present: true, Masked: MaskSecret(tok)}
	claims, err := jwtClaims(tok)
	if err != nil {
		return info
	}
	if s, ok := claims["sub"].(string); ok {
		info.Subject = s
	}
	if s, ok := claims["role"].(string); ok {
		info.Role = s
	}
	if f, ok := claims["exp"].(float64); ok {
		info.Expiry = time.Unix(int64(f), 0)
	}
	return info
}

func jwtClaims(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}
