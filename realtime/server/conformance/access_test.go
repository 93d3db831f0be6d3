package conformance

import (
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
)

// Private channels: authenticated and service_role tokens may join, anon
// is refused with Supabase's reason; a private and a public channel of one
// name are separate.
func TestPrivateChannels(t *testing.T) {
	e := newEnv(t)
	priv := map[string]any{"private": true}

	cu := e.client("user", jsharness.ClientOptions{})
	cu.SetAuth(t, e.userToken("alice", time.Hour, nil))
	u := cu.Channel(t, "secret", "secret", priv).On(t, "broadcast", map[string]any{"event": "*"})
	e.subscribe(u)

	cs := e.client("svc", jsharness.ClientOptions{APIKey: e.srv.ServiceRoleKey()})
	s := cs.Channel(t, "secret", "secret", priv).On(t, "broadcast", map[string]any{"event": "*"})
	e.subscribe(s)

	ca := e.client("anon", jsharness.ClientOptions{})
	an := ca.Channel(t, "secret", "secret", priv)
	mark := e.d.Mark()
	an.Subscribe(t, 0)
	st := an.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if want := "Unauthorized: You do not have permissions to read from this Channel topic: secret"; st.Error != want {
		t.Errorf("anon join of a private channel: %q, want %q", st.Error, want)
	}

	cp := e.client("pub", jsharness.ClientOptions{})
	p := cp.Channel(t, "secret", "secret", map[string]any{"broadcast": map[string]any{"self": true}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	e.subscribe(p)

	// A private broadcast reaches the private subscriber only.
	mark = e.d.Mark()
	if res := u.Broadcast(t, "hello", map[string]any{"private": true}); res != "ok" {
		t.Errorf("private send: %s", res)
	}
	s.Await(t, quick, match{Kind: kBroadcast, Event: "hello", After: mark})
	// A public broadcast, echoed to its sender, reaches no private one.
	if res := p.Broadcast(t, "public", map[string]any{}); res != "ok" {
		t.Errorf("public send: %s", res)
	}
	echo := p.Await(t, quick, match{Kind: kBroadcast, Event: "public", After: mark})
	e.noFrames("the public subscriber and a private broadcast", mark, echo.Seq, match{Client: "pub", Dir: "in", Where: isBroadcast("hello")})
	if res := u.Broadcast(t, "hello2", map[string]any{}); res != "ok" {
		t.Errorf("private send: %s", res)
	}
	h2 := s.Await(t, quick, match{Kind: kBroadcast, Event: "hello2", After: mark})
	e.noFrames("the private subscriber and a public broadcast", mark, h2.Seq, match{Client: "svc", Dir: "in", Where: isBroadcast("public")})

	// REST on a private channel (httpSend adds private=true).
	mark = e.d.Mark()
	if _, err := u.HTTPSend(t.Context(), "rest", map[string]any{"n": 1}); err != nil {
		t.Fatalf("private httpSend: %v", err)
	}
	req := e.d.Await(t, quick, match{Kind: kHTTP, Client: "user", After: mark})
	if !strings.Contains(req.URL, "private=true") || req.HTTPStatus != 202 {
		t.Errorf("private httpSend request %s", req)
	}
	s.Await(t, quick, match{Kind: kBroadcast, Event: "rest", After: mark})
}

// Tenant isolation: a topic tenant:<ID>:... needs a token whose tenant_id
// claim (top level or in app_metadata) is ID, or service_role.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	const sub = "tenant:acme:room"
	join := func(name string, apikey, token string) (*jsharness.Channel, jsharness.Event) {
		t.Helper()
		c := e.client(name, jsharness.ClientOptions{APIKey: apikey})
		if token != "" {
			c.SetAuth(t, token)
		}
		ch := c.Channel(t, "room", sub, nil).On(t, "broadcast", map[string]any{"event": "*"})
		mark := e.d.Mark()
		ch.Subscribe(t, 0)
		return ch, e.d.Await(t, quick, match{Kind: kStatus, Client: name, After: mark})
	}
	allowed := []struct{ name, apikey, token string }{
		{"top-level", "", e.userToken("a", time.Hour, map[string]any{"tenant_id": "acme"})},
		{"app_metadata", "", e.userToken("b", time.Hour, map[string]any{"app_metadata": map[string]any{"tenant_id": "acme"}})},
		{"service_role", e.srv.ServiceRoleKey(), ""},
	}
	var members []*jsharness.Channel
	for _, a := range allowed {
		ch, st := join(a.name, a.apikey, a.token)
		if st.Status != "SUBSCRIBED" {
			t.Errorf("%s: %s %q, want SUBSCRIBED", a.name, st.Status, st.Error)
		}
		members = append(members, ch)
	}
	refused := []struct{ name, apikey, token string }{
		{"other tenant", "", e.userToken("c", time.Hour, map[string]any{"tenant_id": "globex"})},
		{"no claim", "", e.userToken("d", time.Hour, nil)},
		{"anon", "", ""},
	}
	for _, r := range refused {
		_, st := join(r.name, r.apikey, r.token)
		want := "Unauthorized: You do not have permissions to read from this Channel topic: " + sub
		if st.Status != "CHANNEL_ERROR" || !strings.HasPrefix(st.Error, want) {
			t.Errorf("%s: %s %q, want CHANNEL_ERROR %q", r.name, st.Status, st.Error, want)
		}
	}
	if t.Failed() {
		return
	}
	// The members talk to each other.
	mark := e.d.Mark()
	members[0].Broadcast(t, "hi", map[string]any{})
	for _, m := range members[1:] {
		m.Await(t, quick, match{Kind: kBroadcast, Event: "hi", After: mark})
	}
}
