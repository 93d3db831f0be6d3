package target

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"rtm/realtime/token"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// anonKey is a syntactically valid anon key (role anon).
func sign(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := token.Sign([]byte(secret), claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fakeFS map[string]string

func (f fakeFS) read(path string) ([]byte, error) {
	if v, ok := f[filepath.Base(path)]; ok {
		return []byte(v), nil
	}
	return nil, fs.ErrNotExist
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func resolve(t *testing.T, in Input, env map[string]string, files fakeFS) (*Target, error) {
	t.Helper()
	in.LookupEnv = envOf(env)
	in.ReadFile = files.read
	in.Now = func() time.Time { return t0 }
	return Resolve(in)
}

func TestResolvePrecedence(t *testing.T) {
	anon := sign(t, "s", jwt.MapClaims{"role": "anon"})
	anon2 := sign(t, "s2", jwt.MapClaims{"role": "anon", "ref": "x"})
	files := fakeFS{
		".env":       "SUPABASE_URL=https://dotenv.supabase.co\nSUPABASE_ANON_KEY=" + anon2 + "\n",
		".env.local": "VITE_SUPABASE_URL=https://local.supabase.co\n",
	}
	for _, tc := range []struct {
		name       string
		in         Input
		env        map[string]string
		wantURL    string
		wantOrigin string
		wantKey    string
	}{
		{"flags win", Input{URL: "https://flag.supabase.co", Key: anon}, map[string]string{"SUPABASE_URL": "https://env.supabase.co"}, "https://flag.supabase.co", "--url", anon},
		{"env over dotenv", Input{}, map[string]string{"SUPABASE_URL": "https://env.supabase.co", "SUPABASE_ANON_KEY": anon}, "https://env.supabase.co", "env SUPABASE_URL", anon},
		{"prefixed env", Input{}, map[string]string{"EXPO_PUBLIC_SUPABASE_URL": "https://expo.supabase.co", "NEXT_PUBLIC_SUPABASE_ANON_KEY": anon}, "https://expo.supabase.co", "env EXPO_PUBLIC_SUPABASE_URL", anon},
		{".env.local over .env", Input{}, nil, "https://local.supabase.co", ".env.local VITE_SUPABASE_URL", anon2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := resolve(t, tc.in, tc.env, files)
			if err != nil {
				t.Fatal(err)
			}
			if tg.Embedded {
				t.Fatal("Embedded with a project configured")
			}
			if tg.URL.Value != tc.wantURL || tg.URL.Origin() != tc.wantOrigin || tg.Key.Value != tc.wantKey {
				t.Fatalf("url %q (%s) key %q", tg.URL.Value, tg.URL.Origin(), tg.Key.Value)
			}
		})
	}
}

func TestResolveEmbeddedAndAs(t *testing.T) {
	tg, err := resolve(t, Input{As: "alice", Tenant: "acme"}, nil, fakeFS{})
	if err != nil {
		t.Fatal(err)
	}
	if !tg.Embedded || !tg.ServerFaults || tg.Token.Value != "" {
		t.Fatalf("want an embedded target without token yet: %+v", tg)
	}
	if err := tg.Embed("http://127.0.0.1:5555", "anon-key-from-server", []byte("embedded-secret")); err != nil {
		t.Fatal(err)
	}
	if tg.Claims.Subject != "alice" || tg.Claims.Role != "authenticated" || !tg.Claims.Expiry.Equal(t0.Add(DefaultTokenTTL)) {
		t.Fatalf("claims %+v", tg.Claims)
	}
	// The minted token verifies with the secret.
	var mc jwt.MapClaims
	if _, err := jwt.ParseWithClaims(tg.Token.Value, &mc, func(*jwt.Token) (any, error) { return []byte("embedded-secret"), nil },
		jwt.WithTimeFunc(func() time.Time { return t0 })); err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if mc["sub"] != "alice" || mc["aud"] != "authenticated" || mc["tenant_id"] != "acme" {
		t.Fatalf("claims %v", mc)
	}
	if tg.Identity() != "alice (authenticated)" {
		t.Fatalf("Identity %q", tg.Identity())
	}
	for _, l := range tg.Describe() {
		if strings.Contains(l, tg.Token.Value) || strings.Contains(l, "anon-key-from-server") {
			t.Fatalf("Describe leaks a secret: %q", l)
		}
	}
	if !strings.Contains(strings.Join(tg.Describe(), "\n"), "tenant: acme") {
		t.Fatalf("Describe %q lacks the tenant", tg.Describe())
	}
}

func TestResolveAsWithSecret(t *testing.T) {
	anon := sign(t, "sekrit", jwt.MapClaims{"role": "anon"})
	tg, err := resolve(t, Input{URL: "http://127.0.0.1:54321", Key: anon, As: "bob"}, nil,
		fakeFS{".env": "SUPABASE_JWT_SECRET=sekrit\n"})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Claims.Subject != "bob" || tg.Token.Source != SourceMinted {
		t.Fatalf("token %+v claims %+v", tg.Token, tg.Claims)
	}
	if _, err := jwt.Parse(tg.Token.Value, func(*jwt.Token) (any, error) { return []byte("sekrit"), nil },
		jwt.WithTimeFunc(func() time.Time { return t0 })); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
}

func TestResolveJWT(t *testing.T) {
	anon := sign(t, "s", jwt.MapClaims{"role": "anon"})
	user := sign(t, "s", jwt.MapClaims{"sub": "u1", "role": "authenticated", "exp": t0.Add(2 * time.Minute).Unix()})
	tg, err := resolve(t, Input{URL: "https://x.supabase.co", Key: anon, JWT: user}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Claims.Subject != "u1" || !tg.Claims.Expiry.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("claims %+v", tg.Claims)
	}
	if len(tg.Warnings) != 1 || !strings.Contains(tg.Warnings[0], "expires in 2m0s") {
		t.Fatalf("warnings %q", tg.Warnings)
	}
}

func TestResolveErrors(t *testing.T) {
	anon := sign(t, "s", jwt.MapClaims{"role": "anon"})
	expired := sign(t, "s", jwt.MapClaims{"sub": "u", "exp": t0.Add(-time.Hour).Unix()})
	for _, tc := range []struct {
		name  string
		in    Input
		env   map[string]string
		files fakeFS
		want  string
	}{
		{"url without key", Input{URL: "https://x.supabase.co"}, nil, nil, "no API key: pass --key or set SUPABASE_ANON_KEY"},
		{"key without url", Input{}, map[string]string{"SUPABASE_ANON_KEY": anon}, nil, "(env SUPABASE_ANON_KEY) but no project URL"},
		{"no scheme", Input{URL: "x.supabase.co", Key: anon}, nil, nil, "has no scheme"},
		{"bad scheme", Input{URL: "ftp://x", Key: anon}, nil, nil, `scheme "ftp"`},
		{"no host", Input{URL: "https://", Key: anon}, nil, nil, "has no host"},
		{"garbage key", Input{URL: "https://x.supabase.co", Key: "not-a-key"}, nil, nil, "neither a JWT"},
		{"secret key", Input{URL: "https://x.supabase.co", Key: "sb_secret_abcdefghijklmnopqrstuvwxyz"}, nil, nil, "secret key"},
		{"quoted key", Input{}, map[string]string{"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_ANON_KEY": "\"" + anon}, nil, "spaces or quotes"},
		{"expired jwt", Input{URL: "https://x.supabase.co", Key: anon, JWT: expired}, nil, nil, "expired at"},
		{"bad jwt", Input{URL: "https://x.supabase.co", Key: anon, JWT: "abc"}, nil, nil, "--jwt is not a JWT"},
		{"as and jwt", Input{As: "a", JWT: "x"}, nil, nil, "--as and --jwt both set"},
		{"as without secret", Input{URL: "https://x.supabase.co", Key: anon, As: "a"}, nil, nil, "needs the project's JWT secret"},
		{"jwt without project", Input{JWT: anon}, nil, nil, "no project"},
		{"tenant with colon", Input{Tenant: "a:b"}, nil, nil, "must not contain ':'"},
		{"dotenv syntax", Input{}, nil, fakeFS{".env": "SUPABASE_URL=https://x\nB=\"open\n"}, ".env:2: value of B has no closing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolve(t, tc.in, tc.env, tc.files)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), anon) {
				t.Errorf("error %q leaks the key", err)
			}
		})
	}
}

func TestServiceRoleWarning(t *testing.T) {
	sr := sign(t, "s", jwt.MapClaims{"role": "service_role"})
	tg, err := resolve(t, Input{URL: "https://x.supabase.co", Key: sr}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tg.Warnings) != 1 || !strings.Contains(tg.Warnings[0], "service_role") {
		t.Fatalf("warnings %q", tg.Warnings)
	}
}

func TestMaskURL(t *testing.T) {
	got := MaskURL("wss://x.supabase.co/realtime/v1/websocket?apikey=eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.abcdefgh&vsn=2.0.0")
	if strings.Contains(got, "eyJyb2xl") || !strings.Contains(got, "vsn=2.0.0") || !strings.Contains(got, "apikey=") {
		t.Fatalf("MaskURL = %q", got)
	}
	if got := MaskURL("https://user:pass@x.co/"); strings.Contains(got, "pass") {
		t.Fatalf("MaskURL kept the password: %q", got)
	}
}

// TestMaskURLEveryShape: a key under any parameter name, padded or
// percent-escaped, and a password in the query are masked too.
func TestMaskURLEveryShape(t *testing.T) {
	padded := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ==.eyJyb2xlIjoic2VydmljZV9yb2xlIn0=.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU="
	got := MaskURL("https://x.supabase.co/?ref=" + padded + "&next=ey%4a" + padded[3:] + "&password=hunter2&client_secret=s3cr3t-v4lu3")
	for _, s := range []string{padded, padded[3:], "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU", "hunter2", "s3cr3t-v4lu3"} {
		if strings.Contains(got, s) {
			t.Fatalf("MaskURL kept %q: %s", s, got)
		}
	}
}

func TestMint(t *testing.T) {
	tg := &Target{JWTSecret: []byte("k"), now: func() time.Time { return t0 }}
	tok, c, err := tg.Mint("carol", 5*time.Minute)
	if err != nil || tok == "" || c.Subject != "carol" || !c.Expiry.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("Mint: %q %+v %v", tok, c, err)
	}
	if _, _, err := (&Target{}).Mint("carol", 0); !errors.Is(err, ErrConfig) {
		t.Fatalf("Mint without secret: %v", err)
	}
	if _, _, err := tg.Mint("", 0); !errors.Is(err, ErrConfig) {
		t.Fatalf("Mint of empty user: %v", err)
	}
}

func TestProjectURL(t *testing.T) {
	for in, want := range map[string]string{
		"wss://abc.supabase.co/realtime/v1/websocket?apikey=x": "https://abc.supabase.co",
		"ws://127.0.0.1:4000/socket/websocket":                 "http://127.0.0.1:4000",
		"ws://127.0.0.1:4000/realtime/v1":                      "http://127.0.0.1:4000",
		"https://abc.supabase.co":                              "https://abc.supabase.co",
		"http://127.0.0.1:54321":                               "http://127.0.0.1:54321",
	} {
		if got := ProjectURL(in); got != want {
			t.Errorf("ProjectURL(%q) = %q, want %q", in, got, want)
		}
	}
}
