package target_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"rtm/realtime/token"
	"rtm/registry/target"
)

func TestParseIdentities(t *testing.T) {
	tok, err := token.User([]byte("s"), "carol", time.Now(), time.Hour, map[string]any{"tenant_id": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	anon, _ := token.Sign([]byte("s"), map[string]any{"role": "anon"})
	got, err := target.ParseIdentities([]string{"alice", "ops=role:service_role", "user:role:x"}, []string{"anon"}, []string{tok, anon, anon})
	if err != nil {
		t.Fatal(err)
	}
	want := []target.IdentitySpec{
		{Name: "alice", User: "alice"},
		{Name: "ops", Role: "service_role"},
		{Name: "role:x", User: "role:x"},
		{Name: "anon", Role: "anon"},
		{Name: "carol", JWT: tok},
		{Name: "jwt", JWT: anon},
		{Name: "jwt2", JWT: anon},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := got[4].String(); strings.Contains(s, tok) || !strings.HasPrefix(s, "carol=jwt:") {
		t.Errorf("String() = %q: the token must be masked", s)
	}
	for _, c := range []struct {
		as, roles []string
		want      string
	}{
		{as: []string{"alice", "alice"}, want: `identity "alice" given twice`},
		{as: []string{"role:root"}, want: `unknown role "root"`},
		{roles: []string{"anon", "anon"}, want: `--role: identity "anon" given twice`},
		{as: []string{""}, want: "is empty"},
		{as: []string{"x="}, want: "is empty"},
		{as: []string{"jwt:nope"}, want: "is not a JWT"},
		{as: []string{"a,b"}, want: "must not contain ','"},
	} {
		_, err := target.ParseIdentities(c.as, c.roles, nil)
		if !errors.Is(err, target.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want %q", c.as, c.roles, err, c.want)
		}
	}
}

func TestIdentityToken(t *testing.T) {
	tg, err := target.Resolve(target.Input{URL: "http://127.0.0.1:1", Key: anonKey(t), JWTSecret: "sekrit", Tenant: "acme", NoDotenv: true,
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec              target.IdentitySpec
		sub, role, tenant string
		empty             bool
	}{
		{spec: target.IdentitySpec{Name: "alice", User: "alice"}, sub: "alice", role: "authenticated", tenant: "acme"},
		{spec: target.IdentitySpec{Name: "anon", Role: "anon"}, role: "anon", empty: true},
		{spec: target.IdentitySpec{Name: "service_role", Role: "service_role"}, sub: "rtm-service_role", role: "service_role", tenant: "acme"},
	} {
		tok, cl, err := tg.IdentityToken(c.spec)
		if err != nil {
			t.Fatalf("%v: %v", c.spec, err)
		}
		if (tok == "") != c.empty || cl.Subject != c.sub || cl.Role != c.role || cl.Tenant != c.tenant {
			t.Errorf("%v: token %v, claims %+v", c.spec, tok != "", cl)
		}
	}
	expired, _ := token.User([]byte("x"), "old", time.Now().Add(-2*time.Hour), time.Hour, nil)
	if _, _, err := tg.IdentityToken(target.IdentitySpec{Name: "old", JWT: expired}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired pasted token: err = %v", err)
	}
	noSecret, err := target.Resolve(target.Input{URL: "http://127.0.0.1:1", Key: anonKey(t), NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := noSecret.IdentityToken(target.IdentitySpec{Name: "bob", User: "bob"}); !errors.Is(err, target.ErrConfig) || !strings.Contains(err.Error(), "JWT secret") {
		t.Errorf("no secret: err = %v", err)
	}
}

func anonKey(t *testing.T) string {
	t.Helper()
	k, err := token.Sign([]byte("sekrit"), map[string]any{"role": "anon", "iss": "supabase"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzParseIdentity: any input parses or is refused with ErrConfig,
// never panics, and a parsed spec has exactly one form and a name.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"alice", "role:anon", "ops=role:service_role", "jwt:a.b.c", "user:x", "=", "a=", "eyJ.x.y", "jwt:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := target.ParseIdentity(s)
		if err != nil {
			if !errors.Is(err, target.ErrConfig) {
				t.Fatalf("%q: error not ErrConfig: %v", s, err)
			}
			return
		}
		n := 0
		for _, v := range []string{sp.User, sp.Role, sp.JWT} {
			if v != "" {
				n++
			}
		}
		if n != 1 || sp.Name == "" {
			t.Fatalf("%q: %+v", s, sp)
		}
		if sp.JWT != "" && strings.Contains(sp.String(), sp.JWT) {
			t.Fatalf("%q: String shows the token", s)
		}
	})
}
