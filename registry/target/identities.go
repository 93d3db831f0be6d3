package target

import (
	"fmt"
	"strings"
	"time"

	"rtm/realtime/token"
	"rtm/registry"
)

// IdentitySpec is one identity to connect as, side by side with others
// (issue "identities side by side": `--as alice --as bob --role anon
// --jwt TOKEN`, the UI's `:as`). Exactly one of User, Role and JWT is
// set. Each identity gets its own manager (its own socket and token), so
// the manager's rules (duplicate prevention, caps, retries) hold per
// identity.
type IdentitySpec struct {
	// Name names the identity in every output: the user id, the role,
	// the pasted token's subject (or "jwt", "jwt2", ...), or the NAME of
	// "NAME=SPEC".
	Name string
	// User is a user id: a token is minted for it (role authenticated).
	User string
	// Role is anon (the API key alone), authenticated or service_role: a
	// token with that role is minted (anon needs none).
	Role string
	// JWT is a pasted user token, used as it is. Show it masked
	// (registry.MaskSecret); String does.
	JWT string
}

// String describes the spec with its token masked: "alice",
// "role:anon", "jwt:eyJh…(masked)".
func (s IdentitySpec) String() string {
	var v string
	switch {
	case s.User != "":
		v = s.User
	case s.Role != "":
		v = "role:" + s.Role
	default:
		v = "jwt:" + registry.MaskSecret(s.JWT)
	}
	if s.Name != "" && s.Name != s.User && s.Name != s.Role && !(s.JWT != "" && s.Name == "jwt") {
		v = s.Name + "=" + v
	}
	return v
}

// Roles returns the roles an identity may have.
func Roles() []string {
	return []string{token.RoleAnon, token.RoleAuthenticated, token.RoleServiceRole}
}

// ParseIdentity reads one identity spec:
//
//	alice              a user id (a token is minted for it)
//	user:alice         the same, for ids that look like the forms below
//	role:anon          a role: anon, authenticated, service_role
//	jwt:TOKEN          a pasted token
//	NAME=SPEC          any of those, named NAME in the output (NAME: 1 to
//	                   64 bytes without spaces, ',', ':' or '=')
//
// Errors wrap [ErrConfig] and say which form was expected.
func ParseIdentity(s string) (IdentitySpec, error) {
	raw := strings.TrimSpace(s)
	var name string
	if n, rest, ok := strings.Cut(raw, "="); ok && checkName(n) == nil {
		name, raw = n, strings.TrimSpace(rest)
	}
	var sp IdentitySpec
	switch {
	case raw == "":
		return IdentitySpec{}, fmt.Errorf("%w: identity %q is empty (want a user id, role:ROLE or jwt:TOKEN)", ErrConfig, clip(s))
	case strings.HasPrefix(raw, "role:"):
		r := strings.TrimPrefix(raw, "role:")
		if !validRole(r) {
			return IdentitySpec{}, fmt.Errorf("%w: identity %q: unknown role %q (want %s)", ErrConfig, clip(s), clip(r), strings.Join(Roles(), ", "))
		}
		sp = IdentitySpec{Name: r, Role: r}
	case strings.HasPrefix(raw, "jwt:") || (strings.HasPrefix(raw, "eyJ") && strings.Count(raw, ".") == 2):
		tok := strings.TrimSpace(strings.TrimPrefix(raw, "jwt:"))
		if _, ok := keyClaims(tok); !ok {
			return IdentitySpec{}, fmt.Errorf("%w: identity jwt:%s is not a JWT (three base64url parts: header.claims.signature)", ErrConfig, registry.MaskSecret(tok))
		}
		sp = IdentitySpec{Name: "jwt", JWT: tok}
		if c, _ := keyClaims(tok); c.Subject != "" && checkName(c.Subject) == nil {
			sp.Name = c.Subject
		}
	default:
		u := strings.TrimPrefix(raw, "user:")
		if err := checkUser("identity", u); err != nil {
			return IdentitySpec{}, err
		}
		if strings.Contains(u, ",") {
			return IdentitySpec{}, fmt.Errorf("%w: identity %q must not contain ',' (separate identities with another --as)", ErrConfig, clip(u))
		}
		sp = IdentitySpec{Name: u, User: u}
	}
	if name != "" {
		sp.Name = name
	}
	return sp, nil
}

// ParseIdentities reads the identities of `--as` (each a spec of
// [ParseIdentity]), `--role` (role names) and `--jwt` (pasted tokens),
// in that order. Names must be unique: a second pasted token with the
// same subject (or none) is named "jwt2", "jwt3"...; the same user or
// role twice is an error.
func ParseIdentities(as, roles, jwts []string) ([]IdentitySpec, error) {
	var out []IdentitySpec
	seen := map[string]bool{}
	add := func(sp IdentitySpec, flag string) error {
		if sp.JWT != "" && seen[sp.Name] {
			base := sp.Name
			for i := 2; seen[sp.Name]; i++ {
				sp.Name = fmt.Sprintf("%s%d", base, i)
			}
		}
		if seen[sp.Name] {
			return fmt.Errorf("%w: %s: identity %q given twice", ErrConfig, flag, sp.Name)
		}
		seen[sp.Name] = true
		out = append(out, sp)
		return nil
	}
	for _, s := range as {
		sp, err := ParseIdentity(s)
		if err != nil {
			return nil, fmt.Errorf("--as: %w", err)
		}
		if err := add(sp, "--as"); err != nil {
			return nil, err
		}
	}
	for _, r := range roles {
		sp, err := ParseIdentity("role:" + strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("--role: %w", err)
		}
		if err := add(sp, "--role"); err != nil {
			return nil, err
		}
	}
	for _, j := range jwts {
		sp, err := ParseIdentity("jwt:" + strings.TrimSpace(j))
		if err != nil {
			return nil, fmt.Errorf("--jwt: %w", err)
		}
		if err := add(sp, "--jwt"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// IdentityToken returns the token of an identity and its claims: minted
// for a user or the authenticated and service_role roles (needs the JWT
// secret), none for anon (the API key alone), the pasted token (checked:
// a JWT, not expired) for JWT.
func (t *Target) IdentityToken(s IdentitySpec) (string, Claims, error) {
	switch {
	case s.User != "":
		return t.Mint(s.User, 0)
	case s.Role == token.RoleAnon:
		return "", Claims{Role: token.RoleAnon}, nil
	case s.Role != "":
		return t.MintRole(s.Role, 0)
	case s.JWT != "":
		c, err := parseToken("identity "+s.Name, s.JWT, t.nowTime())
		if err != nil {
			return "", Claims{}, err
		}
		return s.JWT, c, nil
	default:
		return "", Claims{}, fmt.Errorf("%w: empty identity", ErrConfig)
	}
}

// MintRole signs a token with role authenticated or service_role (sub
// "rtm-<role>", aud authenticated for authenticated, a tenant_id claim
// when the target has a tenant), valid ttl (0: the target's TTL).
func (t *Target) MintRole(role string, ttl time.Duration) (string, Claims, error) {
	if role != token.RoleAuthenticated && role != token.RoleServiceRole {
		return "", Claims{}, fmt.Errorf("%w: cannot mint a token with role %q (want %s or %s)", ErrConfig, role, token.RoleAuthenticated, token.RoleServiceRole)
	}
	if len(t.JWTSecret) == 0 {
		return "", Claims{}, fmt.Errorf("%w: a token with role %s needs the project's JWT secret (--jwt-secret or SUPABASE_JWT_SECRET)", ErrConfig, role)
	}
	if ttl <= 0 {
		ttl = t.ttl
		if ttl <= 0 {
			ttl = DefaultTokenTTL
		}
	}
	now := t.nowTime().Truncate(time.Second)
	claims := map[string]any{"role": role, "sub": "rtm-" + role, "iss": token.Issuer,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if role == token.RoleAuthenticated {
		claims["aud"] = token.RoleAuthenticated
	}
	if t.Tenant != "" {
		claims["tenant_id"] = t.Tenant
	}
	s, err := token.Sign(t.JWTSecret, claims)
	if err != nil {
		return "", Claims{}, fmt.Errorf("%w: sign token for role %s: %w", ErrConfig, role, err)
	}
	return s, Claims{Subject: "rtm-" + role, Role: role, Expiry: now.Add(ttl), IssuedAt: now, Tenant: t.Tenant}, nil
}

func (t *Target) nowTime() time.Time {
	if t.now == nil {
		return time.Now()
	}
	return t.now()
}

func validRole(r string) bool {
	for _, x := range Roles() {
		if r == x {
			return true
		}
	}
	return false
}

// checkName checks an identity's name: a short word usable in NDJSON
// and UI columns.
func checkName(n string) error {
	if n == "" || len(n) > 64 || strings.ContainsAny(n, ",:= \t\r\n") {
		return fmt.Errorf("%w: identity name %q must be 1 to 64 bytes without spaces, ',', ':' or '='", ErrConfig, clip(n))
	}
	return nil
}
