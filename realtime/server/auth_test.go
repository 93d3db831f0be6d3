package server_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

func systemThenClose(t *testing.T, c *client, topic, joinRef, message string) {
	t.Helper()
	sys := c.awaitEvent(topic, protocol.EventSystem)
	want := fmt.Sprintf(`["%s",null,"%s","system",{"extension":"system","status":"error","message":%q,"channel":%q}]`,
		joinRef, topic, message, protocol.SubTopic(topic))
	if string(sys.raw) != want {
		t.Errorf("system %s, want %s", sys.raw, want)
	}
	cl := c.awaitEvent(topic, protocol.EventClose)
	if got, want := string(cl.raw), fmt.Sprintf(`["%s","%s","%s","phx_close",{}]`, joinRef, joinRef, topic); got != want {
		t.Errorf("close %s, want %s", got, want)
	}
	all := c.all()
	si, ci := -1, -1
	for i, f := range all {
		if f.msg.Topic == topic && f.msg.Event == protocol.EventSystem {
			si = i
		}
		if f.msg.Topic == topic && f.msg.Event == protocol.EventClose {
			ci = i
		}
	}
	if si > ci {
		t.Errorf("phx_close came before the system message")
	}
}

func TestAccessTokenPush(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock))
	const topic = "realtime:room1"
	tok1 := s.UserToken(t, "u1", time.Hour, nil)
	a := dial(t, s, s.AnonKey(), "2.0.0")
	ja, _ := a.join(topic, joinPayload(`{"self":true}`, `{}`, false, `"access_token":`+quote(tok1)))
	// A valid new token: no reply, the channel keeps delivering.
	tok2 := s.UserToken(t, "u1", 2*time.Hour, nil)
	ref := a.send(ja, topic, protocol.EventAccessToken, `{"access_token":`+quote(tok2)+`}`)
	// Ignored: the same token, an sb_ key, null, a non-string.
	a.send(ja, topic, protocol.EventAccessToken, `{"access_token":`+quote(tok2)+`}`)
	a.send(ja, topic, protocol.EventAccessToken, `{"access_token":"sb_publishable_x"}`)
	a.send(ja, topic, protocol.EventAccessToken, `{"access_token":null}`)
	a.send(ja, topic, protocol.EventAccessToken, `{"access_token":5}`)
	a.broadcastJSON(ja, topic, "still", `{}`)
	a.await("delivery after refresh", isBroadcast(topic, "still"))
	a.sync()
	if got := a.find(func(f inFrame) bool { return f.msg.Ref == ref }); len(got) != 0 {
		t.Errorf("access_token push got a reply: %s", got[0].raw)
	}
	if exp := s.Conns()[0].Channels[0].TokenExpires; exp.Unix() != clock.Now().Add(2*time.Hour).Unix() {
		t.Errorf("channel token expires %v, want the new token's exp", exp)
	}
	// The old token's expiry no longer matters: an hour on, still joined.
	clock.Advance(61 * time.Minute)
	a.sync()
	if len(a.find(isEvent(topic, protocol.EventSystem))) != 0 {
		t.Fatalf("channel shut down at the old token's exp")
	}
	// An expired token: system error, then phx_close.
	expired := s.Token(t, map[string]any{"role": "authenticated", "exp": clock.Now().Unix() - 5})
	a.send(ja, topic, protocol.EventAccessToken, `{"access_token":`+quote(expired)+`}`)
	systemThenClose(t, a, topic, ja, "Token has expired 5 seconds ago")
	if n := len(s.Conns()[0].Channels); n != 0 {
		t.Errorf("channels after expired token = %d, want 0", n)
	}
	// Other invalid tokens give their messages.
	for i, tc := range []struct{ token, msg string }{
		{"nonsense", "The token provided is not a valid JWT"},
		{s.Token(t, map[string]any{"exp": clock.Now().Unix() + 60}), "Fields `role` and `exp` are required in JWT"},
	} {
		tp := fmt.Sprintf("realtime:bad%d", i)
		j, _ := a.join(tp, defaultJoin)
		a.send(j, tp, protocol.EventAccessToken, `{"access_token":`+quote(tc.token)+`}`)
		systemThenClose(t, a, tp, j, tc.msg)
	}
}

func TestChannelTokenExpiresAtExp(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now().Truncate(time.Second))
	s := servertest.New(t, servertest.WithClock(clock))
	const topic = "realtime:room1"
	tok := s.UserToken(t, "u1", 90*time.Second, nil)
	a := dialV2(t, s)
	ja, _ := a.join(topic, joinPayload(`{}`, `{}`, false, `"access_token":`+quote(tok)))
	// A channel on the connection's own apikey (the anon key, valid ten years) stays.
	jb, _ := a.join("realtime:other", defaultJoin)
	clock.Advance(89 * time.Second)
	a.sync()
	if len(a.find(isEvent(topic, protocol.EventSystem))) != 0 {
		t.Fatalf("shut down before exp")
	}
	clock.Advance(time.Second)
	systemThenClose(t, a, topic, ja, "Token has expired 0 seconds ago")
	a.broadcastJSON(jb, "realtime:other", "alive", `{}`)
	ref := a.send(jb, "realtime:other", protocol.EventLeave, `{}`)
	if _, r := a.awaitReply(ref); r.Status != "ok" {
		t.Errorf("other channel: %+v", r)
	}
}

func TestChannelTokenExpiresRealClock(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	// exp is whole seconds: the token lapses within 1-2 s.
	tok := s.Token(t, map[string]any{"role": "authenticated", "exp": time.Now().Unix() + 1})
	a := dialV2(t, s)
	ja, _ := a.join(topic, joinPayload(`{}`, `{}`, false, `"access_token":`+quote(tok)))
	sys := a.awaitEvent(topic, protocol.EventSystem)
	if !strings.Contains(string(sys.raw), `"message":"Token has expired 0 seconds ago"`) {
		t.Errorf("system %s", sys.raw)
	}
	cl := a.awaitEvent(topic, protocol.EventClose)
	if cl.msg.JoinRef != ja {
		t.Errorf("close %s", cl.raw)
	}
}

func TestPrivateChannels(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room:1"
	anon := dialV2(t, s)
	if r := anon.joinErr(topic, joinPayload(`{}`, `{}`, true, "")); r != "Unauthorized: You do not have permissions to read from this Channel topic: room:1" {
		t.Errorf("anon private join: %q", r)
	}
	// authenticated (as access_token) and service_role (as apikey) may join.
	user := dialV2(t, s)
	ju, _ := user.join(topic, joinPayload(`{}`, `{}`, true, `"access_token":`+quote(s.UserToken(t, "u1", time.Hour, nil))))
	svc := dial(t, s, s.ServiceRoleKey(), "2.0.0")
	js, _ := svc.join(topic, joinPayload(`{}`, `{}`, true, ""))
	// anon on the public channel of the same name.
	ja, _ := anon.join(topic, defaultJoin)

	user.broadcastJSON(ju, topic, "private-msg", `{}`)
	svc.await("private to private", isBroadcast(topic, "private-msg"))
	anon.broadcastJSON(ja, topic, "public-msg", `{}`)
	svc.broadcastJSON(js, topic, "private-2", `{}`)
	user.await("private-2", isBroadcast(topic, "private-2"))
	anon.sync()
	user.sync()
	if len(anon.find(isBroadcast(topic, "private-msg"))) != 0 || len(anon.find(isBroadcast(topic, "private-2"))) != 0 {
		t.Errorf("public channel received private broadcasts")
	}
	if len(user.find(isBroadcast(topic, "public-msg"))) != 0 {
		t.Errorf("private channel received a public broadcast")
	}
	// A token push that turns the private channel anon shuts it down.
	anonTok := s.Token(t, map[string]any{"role": "anon", "exp": time.Now().Unix() + 60})
	user.send(ju, topic, protocol.EventAccessToken, `{"access_token":`+quote(anonTok)+`}`)
	systemThenClose(t, user, topic, ju, "You do not have permissions to read from this Channel topic: room:1")

	topics := s.Topics()
	if len(topics) != 2 || topics[0].Private || !topics[1].Private || topics[0].Topic != topic {
		t.Errorf("Topics() = %+v, want the public and the private group of %s", topics, topic)
	}
	// REST to a private channel: needs an authenticated or service_role token.
	status, _ := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
		`{"messages":[{"topic":"room:1","event":"rest-anon","payload":{},"private":true}]}`)
	if status != 202 {
		t.Errorf("anon private REST: %d", status)
	}
	status, _ = httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast/room:1/events/rest-svc?private=true", s.ServiceRoleKey(), "application/json", `{}`)
	if status != 202 {
		t.Errorf("service private REST: %d", status)
	}
	svc.await("rest to private", isBroadcast(topic, "rest-svc"))
	svc.sync()
	if len(svc.find(isBroadcast(topic, "rest-anon"))) != 0 {
		t.Errorf("an anon REST message reached a private channel")
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:tenant:acme:presence:contact:1"
	acme := s.UserToken(t, "u1", time.Hour, map[string]any{"tenant_id": "acme"})
	acmeMeta := s.UserToken(t, "u2", time.Hour, map[string]any{"app_metadata": map[string]any{"tenant_id": "acme", "provider": "email"}})
	globex := s.UserToken(t, "u3", time.Hour, map[string]any{"tenant_id": "globex"})
	none := s.UserToken(t, "u4", time.Hour, nil)

	c := dialV2(t, s)
	for _, tc := range []struct {
		name, token string
		private     bool
		reason      string
	}{
		{"top-level claim", acme, false, ""},
		{"app_metadata claim", acmeMeta, true, ""},
		{"service_role", s.ServiceRoleKey(), false, ""},
		{"other tenant", globex, false, `Unauthorized: You do not have permissions to read from this Channel topic: tenant:acme:presence:contact:1 (the token's tenant_id "globex" does not match tenant "acme")`},
		{"no claim", none, false, `Unauthorized: You do not have permissions to read from this Channel topic: tenant:acme:presence:contact:1 (the token has no tenant_id claim; tenant topics need tenant_id "acme" or role service_role)`},
		{"anon key", "", false, `Unauthorized: You do not have permissions to read from this Channel topic: tenant:acme:presence:contact:1 (the token has no tenant_id claim; tenant topics need tenant_id "acme" or role service_role)`},
	} {
		extra := ""
		if tc.token != "" {
			extra = `"access_token":` + quote(tc.token)
		}
		p := joinPayload(`{}`, `{}`, tc.private, extra)
		if tc.reason == "" {
			ref, _ := c.join(topic, p)
			c.send(ref, topic, protocol.EventLeave, "{}")
			c.awaitEvent(topic, protocol.EventClose)
			continue
		}
		if r := c.joinErr(topic, p); r != tc.reason {
			t.Errorf("%s: %q, want %q", tc.name, r, tc.reason)
		}
	}
	// Other topics are not tenant-scoped.
	c.join("realtime:presence:contact:1", defaultJoin)
	// A token switch to another tenant shuts the channel down.
	j, _ := c.join(topic, joinPayload(`{}`, `{}`, false, `"access_token":`+quote(acme)))
	c.send(j, topic, protocol.EventAccessToken, `{"access_token":`+quote(globex)+`}`)
	systemThenClose(t, c, topic, j, "You do not have permissions to read from this Channel topic: tenant:acme:presence:contact:1")
	// REST: a tenant topic needs the tenant's token.
	status, body := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", globex, "application/json",
		`{"messages":[{"topic":"tenant:acme:presence:contact:1","event":"e","payload":{}}]}`)
	if status != 403 || !strings.Contains(body, `does not match tenant \"acme\"`) {
		t.Errorf("REST other tenant: %d %s", status, body)
	}
	status, _ = httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast/tenant:acme:x/events/e", acme, "application/json", `{}`)
	if status != 202 {
		t.Errorf("REST own tenant: %d", status)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	for _, key := range []string{s.AnonKey(), s.ServiceRoleKey()} {
		dial(t, s, key, "2.0.0").sync()
	}
	roles := map[string]bool{}
	for _, ci := range s.Conns() {
		roles[ci.Role] = true
	}
	if !roles["anon"] || !roles["service_role"] {
		t.Errorf("roles of connections: %v", roles)
	}
	if _, err := server.New(server.Config{}); err == nil {
		t.Errorf("New without a secret succeeded")
	}
	if m := server.MaskToken(s.AnonKey()); strings.Contains(m, s.AnonKey()[10:30]) || len(m) > 40 {
		t.Errorf("MaskToken leaks: %q", m)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestLogsMaskTokens(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	const topic = "realtime:room1"
	tok1 := s.UserToken(t, "u1", time.Hour, nil)
	tok2 := s.UserToken(t, "u1", 2*time.Hour, nil)
	expired := s.Token(t, map[string]any{"role": "authenticated", "exp": time.Now().Unix() - 10})
	c := dial(t, s, tok1, "2.0.0")
	j, _ := c.join(topic, joinPayload(`{}`, `{}`, true, `"access_token":`+quote(tok1)))
	c.send(j, topic, protocol.EventAccessToken, `{"access_token":`+quote(tok2)+`}`)
	c.send(j, topic, protocol.EventAccessToken, `{"access_token":`+quote(expired)+`}`)
	c.awaitEvent(topic, protocol.EventClose)
	c.joinErr("realtime:x", `{"config":{},"access_token":`+quote(expired)+`}`)
	dialRefused(t, s.SocketURL(expired, "2.0.0"), nil, 401, "Token has expired")
	httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", expired, "application/json", `{}`)
	httpDo(t, "GET", s.URL+"/admin/stats", tok2, "", "")
	out := logs.String()
	if !strings.Contains(out, "Channel token refreshed") || !strings.Contains(out, "Connect refused") {
		t.Fatalf("the logs miss the events this test expects:\n%s", out)
	}
	for _, tok := range []string{tok1, tok2, expired, s.AnonKey(), s.ServiceRoleKey()} {
		parts := strings.Split(tok, ".")
		for _, p := range parts[1:] { // claims and signature; the header is the same for all
			if strings.Contains(out, p[:16]) {
				t.Errorf("the logs hold part of a token (%s…)", p[:16])
			}
		}
	}
}

func TestOpaqueKeys(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	if !strings.HasPrefix(s.PublishableKey(), "sb_publishable_") || !strings.HasPrefix(s.SecretKey(), "sb_secret_") {
		t.Fatalf("keys %q %q", s.PublishableKey(), s.SecretKey())
	}
	pub := dial(t, s, s.PublishableKey(), "2.0.0")
	pub.join("realtime:room1", defaultJoin)
	if r := pub.joinErr("realtime:priv", joinPayload(`{}`, `{}`, true, "")); !strings.HasPrefix(r, "Unauthorized:") {
		t.Errorf("publishable key joined a private channel: %q", r)
	}
	sec := dial(t, s, s.SecretKey(), "2.0.0")
	sec.join("realtime:priv", joinPayload(`{}`, `{}`, true, ""))
	if st, _ := httpDo(t, "GET", s.URL+"/admin/stats", s.SecretKey(), "", ""); st != 200 {
		t.Errorf("admin with the secret key: %d", st)
	}
	if st, _ := httpDo(t, "GET", s.URL+"/admin/stats", s.PublishableKey(), "", ""); st != 403 {
		t.Errorf("admin with the publishable key: %d", st)
	}
	dialRefused(t, s.SocketURL("sb_publishable_wrong", "2.0.0"), nil, 401, "The token provided is not a valid JWT")
	roles := map[string]bool{}
	for _, c := range s.Conns() {
		roles[c.Role] = true
	}
	if !roles["anon"] || !roles["service_role"] {
		t.Errorf("roles %v", roles)
	}
}

func TestKeysStableForOneSecret(t *testing.T) {
	t.Parallel()
	a, err := server.New(server.Config{JWTSecret: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := server.New(server.Config{JWTSecret: []byte("one"), Now: func() time.Time { return time.Unix(0, 0) }})
	defer b.Close()
	c, _ := server.New(server.Config{JWTSecret: []byte("two")})
	defer c.Close()
	if a.AnonKey() != b.AnonKey() || a.ServiceRoleKey() != b.ServiceRoleKey() || a.PublishableKey() != b.PublishableKey() || a.SecretKey() != b.SecretKey() {
		t.Errorf("keys differ for one secret")
	}
	if a.AnonKey() == c.AnonKey() || a.PublishableKey() == c.PublishableKey() || a.SecretKey() == c.SecretKey() {
		t.Errorf("keys equal for two secrets")
	}
}
