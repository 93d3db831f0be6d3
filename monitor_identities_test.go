package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/compare"
	"rtm/registry/target"
	"rtm/tui"
)

// The monitor's identity flags: one --as or one --jwt is the single
// identity of before (no specs); several, or a --role, make identities
// side by side, the first rtm's own.
func TestMonitorIdentitySpecs(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJldmUiLCJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	for _, tc := range []struct {
		c     monitorCmd
		names string
		err   string
	}{
		{c: monitorCmd{}},
		{c: monitorCmd{As: []string{"alice"}}},
		{c: monitorCmd{JWT: []string{tok}}},
		{c: monitorCmd{As: []string{"alice", "bob"}}, names: "alice,bob"},
		{c: monitorCmd{As: []string{"alice"}, Role: []string{"anon"}, JWT: []string{tok}}, names: "alice,anon,eve"},
		{c: monitorCmd{Role: []string{"anon"}}, names: "anon"},
		{c: monitorCmd{As: []string{"alice", "alice"}}, err: `identity "alice" given twice`},
		{c: monitorCmd{Role: []string{"root"}}, err: `unknown role "root"`},
	} {
		specs, err := tc.c.identitySpecs()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc.c, err, tc.err)
			}
			continue
		}
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		if err != nil || strings.Join(names, ",") != tc.names {
			t.Errorf("%+v: %v (%v), want %q", tc.c, names, err, tc.names)
		}
	}
	// The first identity is the target's: its user or pasted token.
	specs, _ := monitorCmd{As: []string{"alice", "bob"}}.identitySpecs()
	if in := firstInput(target.Input{}, specs, nil, nil); in.As != "alice" || in.JWT != "" {
		t.Errorf("first input %+v", in)
	}
	if in := firstInput(target.Input{}, nil, []string{"carol"}, nil); in.As != "carol" {
		t.Errorf("single --as: %+v", in)
	}
}

// ":as" specs: a user, --role ROLE, --jwt TOKEN (or with =), the forms
// of target.ParseIdentity; anything else says what is wanted, the token
// masked.
func TestParseAsSpec(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJldmUiLCJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	for _, tc := range []struct{ in, name, err string }{
		{in: "bob", name: "bob"},
		{in: " --role anon ", name: "anon"},
		{in: "--role=service_role", name: "service_role"},
		{in: "--jwt " + tok, name: "eve"},
		{in: "--jwt=" + tok, name: "eve"},
		{in: "ops=role:service_role", name: "ops"},
		{in: "", err: ":as USER"},
		{in: "--role", err: ":as USER"},
		{in: "--role nope", err: `unknown role "nope"`},
		{in: "--jwt not-a-token-at-all-but-long-enough", err: "is not a JWT"},
	} {
		sp, err := parseAsSpec(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "not-a-token-at-all") {
				t.Errorf("%q: error %v, want %q (masked)", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || sp.Name != tc.name {
			t.Errorf("%q: %+v (%v), want %s", tc.in, sp, err, tc.name)
		}
	}
}

// uiRecorder collects what the identities' bridges send.
type uiRecorder struct {
	mu   sync.Mutex
	last map[string]registry.State
}

func (r *uiRecorder) send(msg tea.Msg) {
	b, ok := msg.(tui.EventsBatchMsg)
	if !ok || b.State == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[b.Identity] = *b.State
}

func (r *uiRecorder) state(id string) (registry.State, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.last[id]
	return s, ok
}

// TestMonitorIdentities: against the embedded server, :as adds a user
// (minted token), a role (the API key alone) and a pasted token, each
// its own connected socket whose bridge tags its batches with its name,
// and each joins the --join channels (the comparer's column); a name
// given twice is refused; :drop-identity closes one, and its name is
// free again.
func TestMonitorIdentities(t *testing.T) {
	const secret = "monitor-identities-secret-0123456789abcdef"
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.JWTSecret = []byte(secret) }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tg, err := target.Resolve(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: secret, NoDotenv: true,
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	cmp := compare.New(compare.Options{})
	x := newMonitorIdentities(ctx, tg, registry.Options{URL: tg.URL.Value, APIKey: tg.Key.Value, Policy: registry.Fixed{Interval: 100 * time.Millisecond, Max: 5}},
		cmp, slog.New(slog.DiscardHandler))
	defer x.close()
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	if _, err := x.add(target.IdentitySpec{Name: "bob", User: "bob"}, []registry.Name{room}); err != nil {
		t.Fatal(err)
	}
	rec := &uiRecorder{last: map[string]registry.State{}}
	x.run(rec.send)
	pasted := srv.UserToken(t, "eve", time.Hour, nil)
	for _, spec := range []string{"--role anon", "--jwt " + pasted} {
		id, err := x.Add(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(id.Detail, pasted) {
			t.Errorf("the detail shows the token: %s", id.Detail)
		}
	}
	if _, err := x.Add(ctx, "bob"); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("bob twice: %v", err)
	}
	want := map[string]string{"bob": "bob", "anon": "", "eve": "eve"}
	deadline := time.Now().Add(15 * time.Second)
	for name, sub := range want {
		for {
			st, ok := rec.state(name)
			if ok && st.Socket.Status == registry.SocketConnected && st.Token.Subject == sub && (name != "bob" || len(st.Channels) == 1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %+v (%v)", name, st.Socket, ok)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	holds := func(name string) bool {
		for _, c := range cmp.Columns(room.String()) {
			if c.Identity == name {
				return true
			}
		}
		return false
	}
	if !holds("bob") {
		t.Fatalf("the comparer has no column of bob on %s: %+v", room, cmp.Columns(room.String()))
	}
	if err := x.Drop(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if holds("bob") {
		t.Errorf("bob's column stayed after his drop: %+v", cmp.Columns(room.String()))
	}
	if err := x.Drop(ctx, "bob"); err == nil {
		t.Error("bob dropped twice")
	}
	if _, err := x.Add(ctx, "bob"); err != nil {
		t.Errorf("bob again: %v", err)
	}
	if n := len(x.others()); n != 3 {
		t.Errorf("%d identities, want 3", n)
	}
}
