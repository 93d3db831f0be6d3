// Package target resolves which Realtime server rtm talks to, and as
// whom: the project URL, the API key and the user token, from command-line
// flags, the process environment and the working directory's .env files,
// in that order of precedence. With no project configured at all it says
// so ([Target.Embedded]) and the caller starts rtm's embedded server, then
// completes the target with [Target.Embed].
//
// It mints a user JWT for --as <user> when the JWT secret is known (the
// embedded server's, or --jwt-secret / SUPABASE_JWT_SECRET), reads the
// claims of a token given with --jwt, and masks every key and token it
// shows ([Target.Describe]). Errors name the flag, variable or file line
// at fault and say what to do.
//
// The package has no UI: the terminal UI and the headless commands share
// it. It reads files and the environment only in [Resolve], through the
// injectable [Input.ReadFile] and [Input.LookupEnv].
package target

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"rtm/realtime/token"
	"rtm/registry"
)

// ErrConfig is wrapped by every configuration error of this package.
var ErrConfig = errors.New("target: bad configuration")

// URLVars returns the environment variable names read for the project
// URL, in order of preference. The prefixed names are those front-end
// frameworks (Next.js, Vite, Expo) expose to the browser.
func URLVars() []string {
	return []string{"SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_URL", "VITE_SUPABASE_URL", "EXPO_PUBLIC_SUPABASE_URL"}
}

// KeyVars returns the environment variable names read for the API key, in
// order of preference: the anon key, then the publishable key.
func KeyVars() []string {
	return []string{
		"SUPABASE_ANON_KEY", "NEXT_PUBLIC_SUPABASE_ANON_KEY", "VITE_SUPABASE_ANON_KEY", "EXPO_PUBLIC_SUPABASE_ANON_KEY",
		"SUPABASE_PUBLISHABLE_KEY", "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY", "VITE_SUPABASE_PUBLISHABLE_KEY", "EXPO_PUBLIC_SUPABASE_PUBLISHABLE_KEY",
	}
}

// SecretVar is the environment variable read for the JWT secret.
const SecretVar = "SUPABASE_JWT_SECRET"

// DotenvFiles returns the files read from the directory, the first
// winning: .env.local overrides .env, as in Next.js and Vite.
func DotenvFiles() []string { return []string{".env.local", ".env"} }

// DefaultTokenTTL is the lifetime of a token minted for --as.
const DefaultTokenTTL = time.Hour

// Input is what the target is resolved from. Flag fields are the values
// of rtm's flags ("" when not given).
type Input struct {
	// URL is --url: a project URL (https://<ref>.supabase.co,
	// http://127.0.0.1:54321) or a ws/wss Realtime endpoint.
	URL string
	// Key is --key, the project's anon (or publishable) key.
	Key string
	// JWT is --jwt, a user access token.
	JWT string
	// Tenant is --tenant, the default tenant of channel names.
	Tenant string
	// As is --as, a user id to mint a token for.
	As string
	// JWTSecret is --jwt-secret, the project's JWT secret.
	JWTSecret string
	// TokenTTL is the lifetime of a minted token (default
	// DefaultTokenTTL).
	TokenTTL time.Duration

	// Dir is the directory whose .env.local and .env are read ("": the
	// working directory). NoDotenv skips them.
	Dir      string
	NoDotenv bool
	// LookupEnv reads the environment (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// ReadFile reads a file (nil: os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Source tells where a setting came from.
type Source string

// The sources.
const (
	SourceNone     Source = ""
	SourceFlag     Source = "flag"
	SourceEnv      Source = "env"
	SourceEmbedded Source = "embedded server"
	SourceMinted   Source = "minted"
)

// Setting is one resolved value and its origin.
type Setting struct {
	Value string
	// Source is where it came from; Name the flag or variable name
	// ("--url", "SUPABASE_URL"); File the .env file it was read from,
	// if any.
	Source Source
	Name   string
	File   string
}

// Origin describes where a setting came from, for display:
// "--url", "env SUPABASE_URL", ".env.local VITE_SUPABASE_URL".
func (s Setting) Origin() string {
	switch {
	case s.File != "":
		return filepath.Base(s.File) + " " + s.Name
	case s.Source == SourceEnv:
		return "env " + s.Name
	case s.Name != "":
		return s.Name
	default:
		return string(s.Source)
	}
}

// Claims are the claims of a user token that rtm shows.
type Claims struct {
	Subject, Role string
	// Expiry is the exp claim (zero when absent).
	Expiry time.Time
	// IssuedAt is the iat claim (zero when absent).
	IssuedAt time.Time
	// Tenant is the tenant_id claim ("" when absent).
	Tenant string
}

// Target is the resolved server and identity.
type Target struct {
	// Embedded is true when no project is configured: the caller starts
	// the embedded server and calls Embed. ServerFaults is true when
	// server-side fault controls are available (the embedded server).
	Embedded     bool
	ServerFaults bool
	// URL is the project URL (or ws endpoint) and Key the API key.
	URL, Key Setting
	// Token is the user token ("" to use the key), from --jwt or minted
	// for As; Claims are its claims.
	Token  Setting
	Claims Claims
	// Tenant is the default tenant ("" for none).
	Tenant string
	// As is the user id a token was (or will be) minted for.
	As string
	// JWTSecret signs minted tokens (nil when unknown).
	JWTSecret []byte
	// Warnings are things worth showing that are not errors (an expiring
	// token, a service-role key, ...).
	Warnings []string

	ttl time.Duration
	now func() time.Time
}

// Resolve resolves the target from in. It returns an error wrapping
// [ErrConfig] (or a *[DotenvError]) that names the flag, variable or file
// at fault.
func Resolve(in Input) (*Target, error) {
	lookup := in.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	read := in.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	now := in.Now
	if now == nil {
		now = time.Now
	}
	ttl := in.TokenTTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	t := &Target{Tenant: in.Tenant, As: in.As, ttl: ttl, now: now}

	if in.Tenant != "" {
		if err := checkPart("--tenant", in.Tenant); err != nil {
			return nil, err
		}
	}
	if in.As != "" {
		if err := checkUser("--as", in.As); err != nil {
			return nil, err
		}
	}
	if in.As != "" && in.JWT != "" {
		return nil, fmt.Errorf("%w: --as and --jwt both set: --as mints a token for a user, --jwt uses yours; pass one", ErrConfig)
	}

	// Sources in order: flags, environment, .env.local, .env.
	type source struct {
		src  Source
		file string
		get  func(string) (string, bool)
	}
	sources := []source{{src: SourceEnv, get: lookup}}
	if !in.NoDotenv && (in.URL == "" || in.Key == "" || (in.As != "" && in.JWTSecret == "")) {
		dir := in.Dir
		for _, name := range DotenvFiles() {
			path := filepath.Join(dir, name)
			data, err := read(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, fmt.Errorf("%w: read %s: %w", ErrConfig, path, err)
			}
			vars, err := Dotenv(path, string(data))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrConfig, err)
			}
			sources = append(sources, source{src: SourceEnv, file: path, get: func(k string) (string, bool) {
				v, ok := vars[k]
				return v, ok
			}})
		}
	}
	find := func(flagName, flagVal string, names []string) Setting {
		if flagVal != "" {
			return Setting{Value: flagVal, Source: SourceFlag, Name: flagName}
		}
		for _, s := range sources {
			for _, n := range names {
				if v, ok := s.get(n); ok && strings.TrimSpace(v) != "" {
					return Setting{Value: strings.TrimSpace(v), Source: s.src, Name: n, File: s.file}
				}
			}
		}
		return Setting{}
	}
	t.URL = find("--url", in.URL, URLVars())
	t.Key = find("--key", in.Key, KeyVars())
	secret := find("--jwt-secret", in.JWTSecret, []string{SecretVar})

	switch {
	case t.URL.Value == "" && t.Key.Value == "":
		t.Embedded = true
		t.ServerFaults = true
		if in.JWT != "" {
			return nil, fmt.Errorf("%w: --jwt given but no project: pass --url and --key too (without them rtm starts its embedded server, which mints its own tokens; use --as <user> there)", ErrConfig)
		}
		if secret.Value != "" && secret.Source == SourceFlag {
			return nil, fmt.Errorf("%w: --jwt-secret given but no project: pass --url and --key too", ErrConfig)
		}
		return t, nil
	case t.URL.Value == "":
		return nil, fmt.Errorf("%w: an API key was found (%s) but no project URL: pass --url or set %s", ErrConfig, t.Key.Origin(), strings.Join(URLVars()[:2], " or "))
	case t.Key.Value == "":
		return nil, fmt.Errorf("%w: a project URL was found (%s) but no API key: pass --key or set %s (the anon key from the project's API settings)", ErrConfig, t.URL.Origin(), strings.Join(KeyVars()[:2], " or "))
	}
	if err := checkURL(t.URL); err != nil {
		return nil, err
	}
	if err := checkKey(t.Key); err != nil {
		return nil, err
	}
	if c, ok := keyClaims(t.Key.Value); ok && c.Role == "service_role" {
		t.Warnings = append(t.Warnings, "the API key has the service_role role: it bypasses row-level security; use the anon key to see what users see")
	}
	if secret.Value != "" {
		t.JWTSecret = []byte(secret.Value)
	}
	if in.JWT != "" {
		c, err := parseToken("--jwt", in.JWT, now())
		if err != nil {
			return nil, err
		}
		t.Token = Setting{Value: in.JWT, Source: SourceFlag, Name: "--jwt"}
		t.Claims = c
		if !c.Expiry.IsZero() && c.Expiry.Sub(now()) < 5*time.Minute {
			t.Warnings = append(t.Warnings, fmt.Sprintf("the --jwt token expires in %s", c.Expiry.Sub(now()).Round(time.Second)))
		}
	}
	if in.As != "" {
		if t.JWTSecret == nil {
			return nil, fmt.Errorf("%w: --as %s needs the project's JWT secret to mint a token: pass --jwt-secret or set SUPABASE_JWT_SECRET (hosted projects: Settings > API > JWT secret), or pass a user token with --jwt", ErrConfig, in.As)
		}
		if err := t.mint(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Embed completes an embedded target once the embedded server runs: its
// project URL, anon key and JWT secret. It mints the --as token, if one
// was asked for.
func (t *Target) Embed(projectURL, anonKey string, secret []byte) error {
	if !t.Embedded {
		return fmt.Errorf("%w: Embed on a target that is not embedded", ErrConfig)
	}
	t.URL = Setting{Value: projectURL, Source: SourceEmbedded}
	t.Key = Setting{Value: anonKey, Source: SourceEmbedded}
	t.JWTSecret = append([]byte(nil), secret...)
	if t.As != "" {
		return t.mint()
	}
	return nil
}

// Mint signs a token for user with the target's JWT secret (HS256, role
// "authenticated", aud "authenticated", exp after ttl; 0 means the
// target's TTL), with a tenant_id claim when the target has a tenant. It is how --as and the UI's ":join ... --as USER" get
// tokens.
func (t *Target) Mint(user string, ttl time.Duration) (string, Claims, error) {
	if err := checkUser("user", user); err != nil {
		return "", Claims{}, err
	}
	if len(t.JWTSecret) == 0 {
		return "", Claims{}, fmt.Errorf("%w: minting a token for %s needs the JWT secret (--jwt-secret or SUPABASE_JWT_SECRET)", ErrConfig, user)
	}
	if ttl <= 0 {
		ttl = t.ttl
		if ttl <= 0 {
			ttl = DefaultTokenTTL
		}
	}
	nowf := t.now
	if nowf == nil {
		nowf = time.Now
	}
	now := nowf().Truncate(time.Second)
	exp := now.Add(ttl)
	var extra map[string]any
	if t.Tenant != "" {
		extra = map[string]any{"tenant_id": t.Tenant}
	}
	s, err := token.User(t.JWTSecret, user, now, ttl, extra)
	if err != nil {
		return "", Claims{}, fmt.Errorf("%w: sign token for %s: %w", ErrConfig, user, err)
	}
	return s, Claims{Subject: user, Role: "authenticated", Expiry: exp, IssuedAt: now, Tenant: t.Tenant}, nil
}

func (t *Target) mint() error {
	tok, c, err := t.Mint(t.As, 0)
	if err != nil {
		return err
	}
	t.Token = Setting{Value: tok, Source: SourceMinted, Name: "--as " + t.As}
	t.Claims = c
	return nil
}

// Identity says who the client is: the token's subject and role, or
// "anon" when only the key is used.
func (t *Target) Identity() string {
	if t.Token.Value == "" {
		return "anon (API key only)"
	}
	s := t.Claims.Subject
	if s == "" {
		s = "(no sub)"
	}
	if t.Claims.Role != "" {
		s += " (" + t.Claims.Role + ")"
	}
	return s
}

// Describe returns the target as lines for display and logs, with every
// key and token masked.
func (t *Target) Describe() []string {
	var out []string
	if t.Embedded {
		out = append(out, "server: embedded (in-process)")
	}
	if t.URL.Value != "" {
		out = append(out, fmt.Sprintf("url: %s (%s)", MaskURL(t.URL.Value), t.URL.Origin()))
	}
	if t.Key.Value != "" {
		out = append(out, fmt.Sprintf("key: %s (%s)", registry.MaskSecret(t.Key.Value), t.Key.Origin()))
	}
	if t.Token.Value != "" {
		exp := "no expiry"
		if !t.Claims.Expiry.IsZero() {
			exp = "expires " + t.Claims.Expiry.Format(time.RFC3339)
		}
		out = append(out, fmt.Sprintf("token: %s (%s) sub=%s role=%s, %s", registry.MaskSecret(t.Token.Value), t.Token.Origin(), t.Claims.Subject, t.Claims.Role, exp))
	}
	if t.Tenant != "" {
		out = append(out, "tenant: "+t.Tenant)
	}
	return out
}

// MaskURL masks a URL for display: the password of its user info, the
// values of apikey, token and every other secret-named query parameter,
// and any key in it (see registry.MaskURL).
func MaskURL(raw string) string { return registry.MaskURL(raw) }

// ProjectURL turns a configured target URL into the project URL a proxy
// forwards to: a ws(s) Realtime endpoint becomes the http(s) URL of its
// project (the Realtime path and the query dropped); a project URL is
// kept as it is.
func ProjectURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return raw
	}
	u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	for _, suffix := range []string{"/realtime/v1/websocket", "/socket/websocket", "/realtime/v1"} {
		u.Path = strings.TrimSuffix(u.Path, suffix)
	}
	u.RawQuery = ""
	return u.String()
}

func checkURL(s Setting) error {
	v := s.Value
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("%w: the project URL from %s is not a URL: %w", ErrConfig, s.Origin(), err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
	case "":
		return fmt.Errorf("%w: the project URL %q from %s has no scheme: write https://<ref>.supabase.co or http://127.0.0.1:54321", ErrConfig, MaskURL(v), s.Origin())
	default:
		return fmt.Errorf("%w: the project URL %q from %s has scheme %q: want http, https, ws or wss", ErrConfig, MaskURL(v), s.Origin(), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: the project URL %q from %s has no host", ErrConfig, MaskURL(v), s.Origin())
	}
	return nil
}

func checkKey(s Setting) error {
	v := s.Value
	if strings.ContainsAny(v, " \t\r\n\"'") {
		return fmt.Errorf("%w: the API key from %s contains spaces or quotes; copy it again from the project's API settings", ErrConfig, s.Origin())
	}
	if strings.HasPrefix(v, "sb_secret_") {
		return fmt.Errorf("%w: the API key from %s is a secret key (sb_secret_…): use the publishable or anon key", ErrConfig, s.Origin())
	}
	if strings.HasPrefix(v, "sb_publishable_") {
		return nil
	}
	if _, ok := keyClaims(v); !ok {
		return fmt.Errorf("%w: the API key from %s (%s) is neither a JWT (anon key) nor an sb_publishable_ key", ErrConfig, s.Origin(), registry.MaskSecret(v))
	}
	return nil
}

// keyClaims reads the claims of a JWT without verifying it.
func keyClaims(tok string) (Claims, bool) {
	var mc jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &mc); err != nil {
		return Claims{}, false
	}
	var c Claims
	c.Subject, _ = mc["sub"].(string)
	c.Role, _ = mc["role"].(string)
	c.Tenant, _ = mc["tenant_id"].(string)
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil {
		c.Expiry = exp.Time
	}
	if iat, err := mc.GetIssuedAt(); err == nil && iat != nil {
		c.IssuedAt = iat.Time
	}
	return c, true
}

func parseToken(name, tok string, now time.Time) (Claims, error) {
	c, ok := keyClaims(strings.TrimSpace(tok))
	if !ok {
		return Claims{}, fmt.Errorf("%w: %s is not a JWT (three base64url parts: header.claims.signature)", ErrConfig, name)
	}
	if !c.Expiry.IsZero() && !c.Expiry.After(now) {
		return Claims{}, fmt.Errorf("%w: the %s token expired at %s (%s ago): sign in again or mint one with --as", ErrConfig, name, c.Expiry.Format(time.RFC3339), now.Sub(c.Expiry).Round(time.Second))
	}
	return c, nil
}

func checkPart(flag, v string) error {
	if strings.ContainsAny(v, ": \t\r\n") {
		return fmt.Errorf("%w: %s %q must not contain ':' or spaces (it becomes part of channel names)", ErrConfig, flag, v)
	}
	return nil
}

func checkUser(what, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: %s is empty", ErrConfig, what)
	}
	if strings.ContainsAny(v, "\r\n\t") || len(v) > 255 {
		return fmt.Errorf("%w: %s %q must be one line of at most 255 bytes", ErrConfig, what, clip(v))
	}
	return nil
}
