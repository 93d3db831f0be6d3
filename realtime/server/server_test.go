package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/realtime/token"
)

func TestHeartbeatV2AndV1(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dialV2(t, s)
	c.writeRaw(false, []byte(`[null,"7","phoenix","heartbeat",{}]`))
	f := c.awaitEvent("phoenix", protocol.EventReply)
	if got, want := string(f.raw), `[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Errorf("V2 heartbeat reply %s, want %s", got, want)
	}
	c1 := dial(t, s, s.AnonKey(), "1.0.0")
	c1.writeRaw(false, []byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3"}`))
	f = c1.awaitEvent("phoenix", protocol.EventReply)
	if got, want := string(f.raw), `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3"}`; got != want {
		t.Errorf("V1 heartbeat reply %s, want %s", got, want)
	}
	// No vsn at all means 1.0.0, as Phoenix does.
	c0 := dial(t, s, s.AnonKey(), "")
	c0.writeRaw(false, []byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"4"}`))
	c0.awaitEvent("phoenix", protocol.EventReply)
}

// dialRefused dials and expects the upgrade to be refused with status and
// a JSON body {"error": msg}.
func dialRefused(t *testing.T, rawURL string, header http.Header, status int, msg string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(rawURL, header)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s: connected, want HTTP %d", rawURL, status)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, want HTTP %d", rawURL, err, status)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("dial %s: HTTP %d body: %v", rawURL, resp.StatusCode, err)
	}
	if resp.StatusCode != status || body.Error != msg {
		t.Errorf("dial refused with %d %q, want %d %q", resp.StatusCode, body.Error, status, msg)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	now := time.Now().Unix()
	other, _ := token.Sign([]byte("another secret"), map[string]any{"role": "anon", "exp": now + 60})
	none := "eyJhbGciOiJub25lIn0." + strings.Split(s.AnonKey(), ".")[1] + "."
	for _, tc := range []struct {
		name, key string
		msg       string
	}{
		{"missing", "", "API key is missing"},
		{"expired", s.Token(t, map[string]any{"role": "anon", "exp": now - 30}), "Token has expired"},
		{"no role", s.Token(t, map[string]any{"exp": now + 60}), "Fields `role` and `exp` are required in JWT"},
		{"no exp", s.Token(t, map[string]any{"role": "anon"}), "Fields `role` and `exp` are required in JWT"},
		{"not a JWT", "hello", "The token provided is not a valid JWT"},
		{"bad signature", other, "Failed to validate JWT signature"},
		{"alg none", none, "Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dialRefused(t, s.SocketURL(tc.key, "2.0.0"), nil, http.StatusUnauthorized, tc.msg)
		})
	}
	t.Run("bad vsn", func(t *testing.T) {
		dialRefused(t, s.SocketURL(s.AnonKey(), "3.0.0"), nil, http.StatusBadRequest, "Unsupported serializer version: 3.0.0")
	})
	t.Run("x-api-key wins", func(t *testing.T) {
		h := http.Header{"X-Api-Key": {"garbage"}}
		dialRefused(t, s.SocketURL(s.AnonKey(), "2.0.0"), h, http.StatusUnauthorized, "The token provided is not a valid JWT")
		h = http.Header{"X-Api-Key": {s.AnonKey()}}
		ws, _, err := websocket.DefaultDialer.Dial(s.WSURL+"?vsn=2.0.0", h)
		if err != nil {
			t.Fatalf("x-api-key only: %v", err)
		}
		ws.Close()
	})
	t.Run("socket path", func(t *testing.T) {
		u := strings.Replace(s.SocketURL(s.AnonKey(), "2.0.0"), "/realtime/v1/websocket", "/socket/websocket", 1)
		ws, _, err := websocket.DefaultDialer.Dial(u, nil)
		if err != nil {
			t.Fatalf("/socket/websocket: %v", err)
		}
		ws.Close()
	})
	if got := s.Stats().ConnectErrors; got < 9 {
		t.Errorf("ConnectErrors = %d, want >= 9", got)
	}
}

func TestPlainJoin(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dialV2(t, s)
	c.writeRaw(false, []byte(`["6","6","realtime:room1","phx_join",`+defaultJoin+`]`))
	f := c.awaitEvent("realtime:room1", protocol.EventReply)
	if got, want := string(f.raw), `["6","6","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`; got != want {
		t.Errorf("join reply %s, want %s", got, want)
	}
	// realtime-js's later form: string booleans, a version key, no postgres_changes.
	c.writeRaw(false, []byte(`["8","8","realtime:room2","phx_join",{"config":{"broadcast":{"ack":"false","self":"TRUE"},"presence":{"key":"","enabled":"False"},"private":"false"},"version":"realtime-js/2.119.0","unknown":[1]}]`))
	f = c.awaitEvent("realtime:room2", protocol.EventReply)
	if got, want := string(f.raw), `["8","8","realtime:room2","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`; got != want {
		t.Errorf("join reply %s, want %s", got, want)
	}
	// self:"TRUE" took effect: the channel gets its own broadcast.
	c.broadcastJSON("8", "realtime:room2", "e", `{"a":1}`)
	c.await("self broadcast", isBroadcast("realtime:room2", "e"))
	// An invalid shape falls back to defaults and still joins.
	c.join("realtime:room3", `{"config":{"broadcast":"yes","presence":[1],"private":7,"postgres_changes":{"a":1}}}`)
	c.join("realtime:room4", `{}`)
	c.join("realtime:room5", `{"config":null,"access_token":null}`)
	if n := len(s.Conns()[0].Channels); n != 5 {
		t.Errorf("channels = %d, want 5", n)
	}
}

func TestJoinPostgresChangesEcho(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dialV2(t, s)
	b1 := `{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.1"}`
	b2 := `{"event":"*","schema":"public","table":"other","select":["a"]}`
	b3 := `{"schema":"public","event":"DELETE"}`
	ref, resp := c.join("realtime:room1", `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[`+b1+`,null,`+b2+`,`+b3+`],"private":false}}`)
	var r struct {
		PG []map[string]json.RawMessage `json:"postgres_changes"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatal(err)
	}
	want := []string{b1, b2, b3}
	if len(r.PG) != len(want) {
		t.Fatalf("echoed %d bindings, want %d: %s", len(r.PG), len(want), resp)
	}
	ids := map[string]bool{}
	for i, w := range want {
		var id int64
		if err := json.Unmarshal(r.PG[i]["id"], &id); err != nil || id <= 0 {
			t.Errorf("binding %d id %s is not a positive integer", i, r.PG[i]["id"])
		}
		ids[string(r.PG[i]["id"])] = true
		delete(r.PG[i], "id")
		var wm map[string]json.RawMessage
		_ = json.Unmarshal([]byte(w), &wm)
		got, _ := json.Marshal(r.PG[i])
		exp, _ := json.Marshal(wm)
		if !bytes.Equal(got, exp) {
			t.Errorf("binding %d echoed as %s, want %s", i, got, exp)
		}
	}
	if len(ids) != 3 {
		t.Errorf("ids not distinct: %v", ids)
	}
	// The echo keeps each object's own bytes, id appended last.
	if !strings.Contains(string(resp), `{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.1","id":`) {
		t.Errorf("echo is not verbatim: %s", resp)
	}
	f := c.awaitEvent("realtime:room1", protocol.EventSystem)
	if got, want := string(f.raw), `["`+ref+`",null,"realtime:room1","system",{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"room1"}]`; got != want {
		t.Errorf("system %s, want %s", got, want)
	}
	// Same bindings, same ids: a rejoin matches.
	_, resp2 := c.join("realtime:room1", `{"config":{"postgres_changes":[`+b1+`,`+b2+`,`+b3+`]}}`)
	if string(resp2) != string(resp) {
		t.Errorf("rejoin echo %s, want %s", resp2, resp)
	}
}

var expiredRe = regexp.MustCompile(`^InvalidJWTToken: Token has expired (\d+) seconds ago$`)

func TestJoinTokenReasons(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dialV2(t, s)
	now := time.Now().Unix()
	other, _ := token.Sign([]byte("x"), map[string]any{"role": "anon", "exp": now + 60})
	hs512 := signWith(t, s.Secret(), "HS512", map[string]any{"role": "authenticated", "exp": now + 60})
	hs384 := signWith(t, s.Secret(), "HS384", map[string]any{"role": "authenticated", "exp": now + 60})
	rs256 := signWith(t, s.Secret(), "RS256", map[string]any{"role": "authenticated", "exp": now + 60})
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"expired", s.Token(t, map[string]any{"role": "authenticated", "exp": now - 42}), "expired"},
		{"no role", s.Token(t, map[string]any{"exp": now + 60}), "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
		{"no exp", s.Token(t, map[string]any{"role": "x"}), "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
		{"exp string", s.Token(t, map[string]any{"role": "x", "exp": "tomorrow"}), "InvalidJWTToken: Token expiration time is invalid"},
		{"malformed", "a.b", "MalformedJWT: The token provided is not a valid JWT"},
		{"claims not an object", "eyJhbGciOiJIUzI1NiJ9.WzFd.c2ln", "MalformedJWT: The token provided is not a valid JWT"},
		{"signature", other, "JwtSignatureError: Failed to validate JWT signature"},
		{"signer", rs256, "JwtSignerError: Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
	} {
		reason := c.joinErr("realtime:"+tc.name, `{"config":{},"access_token":`+quote(tc.token)+`}`)
		if tc.reason == "expired" {
			m := expiredRe.FindStringSubmatch(reason)
			if m == nil || (m[1] != "42" && m[1] != "43") {
				t.Errorf("%s: reason %q, want Token has expired 42 seconds ago", tc.name, reason)
			}
			continue
		}
		if reason != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, reason, tc.reason)
		}
	}
	// The socket stays open after join errors; HS384 and HS512 verify;
	// an sb_ key or user_token fall back / count as the token.
	c.join("realtime:hs512", `{"config":{},"access_token":`+quote(hs512)+`}`)
	c.join("realtime:hs384", `{"config":{},"user_token":`+quote(hs384)+`}`)
	c.join("realtime:sb", `{"config":{},"access_token":"sb_publishable_abc"}`)
	c.join("realtime:spaces", `{"config":{},"access_token":`+quote(" "+hs512[:20]+"\n"+hs512[20:]+" ")+`}`)
	if got := s.Stats().JoinErrors; got != 8 {
		t.Errorf("JoinErrors = %d, want 8", got)
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// signWith signs claims with an HMAC alg (or pretends for others).
func signWith(t *testing.T, secret []byte, alg string, claims map[string]any) string {
	t.Helper()
	tok, err := token.Sign(secret, claims)
	if err != nil {
		t.Fatal(err)
	}
	if alg == "HS256" {
		return tok
	}
	return resign(t, secret, alg, tok)
}

func TestJoinErrors(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.JoinErrorDelay = 50 * time.Millisecond }))
	c := dialV2(t, s)
	start := time.Now()
	if r := c.joinErr("realtime:", defaultJoin); r != "TopicNameRequired: You must provide a topic name" {
		t.Errorf("realtime: alone: %q", r)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("join error came before JoinErrorDelay")
	}
	// A topic outside realtime:* is unmatched (Phoenix routes realtime:* only).
	ref := c.nextRef()
	c.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: "room1", Event: protocol.EventJoin, Payload: json.RawMessage(defaultJoin)})
	f, r := c.awaitReply(ref)
	if got, want := string(f.raw), `[null,"`+ref+`","room1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`; got != want {
		t.Errorf("non-realtime join %s, want %s", got, want)
	}
	_ = r
	// Not an object payload: an error reply, the socket lives on.
	for _, p := range []string{`null`, `[1]`, `"x"`, `3`} {
		ref := c.nextRef()
		c.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: "realtime:p", Event: protocol.EventJoin, Payload: json.RawMessage(p)})
		_, r := c.awaitReply(ref)
		if r.Status != "error" || !strings.Contains(r.Reason(), "JSON object") {
			t.Errorf("join payload %s: %+v", p, r)
		}
	}
	c.join("realtime:ok", defaultJoin)
}

func TestLeaveAndDuplicateJoin(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dialV2(t, s)
	j1, _ := c.join("realtime:room1", defaultJoin)
	// Second join of the same topic: phx_close for the old join_ref, then the new reply.
	j2 := c.nextRef()
	c.push(protocol.Message{JoinRef: j2, Ref: j2, Topic: "realtime:room1", Event: protocol.EventJoin, Payload: json.RawMessage(defaultJoin)})
	f := c.awaitEvent("realtime:room1", protocol.EventClose)
	if got, want := string(f.raw), fmt.Sprintf(`["%s","%s","realtime:room1","phx_close",{}]`, j1, j1); got != want {
		t.Errorf("duplicate join close %s, want %s", got, want)
	}
	if _, r := c.awaitReply(j2); r.Status != "ok" {
		t.Errorf("rejoin: %+v", r)
	}
	if n := len(s.Conns()[0].Channels); n != 1 {
		t.Errorf("channels after duplicate join = %d, want 1", n)
	}
	// A push with the old join_ref reaches the channel, as in Supabase's
	// Phoenix (which reverted dropping stale join refs).
	peer := dialV2(t, s)
	pj, _ := peer.join("realtime:room1", defaultJoin)
	c.broadcastJSON(j1, "realtime:room1", "stale", `{}`)
	peer.await("the stale join_ref broadcast", isBroadcast("realtime:room1", "stale"))
	// A stale leave (the old join_ref) gets no reply and closes nothing;
	// the reply to the ok leave of the peer comes after where it would be.
	lref := c.send(j1, "realtime:room1", protocol.EventLeave, "{}")
	fence := c.send(j2, "realtime:room1", protocol.EventPresence, `{}`)
	c.awaitReply(fence)
	if got := c.find(func(f inFrame) bool { return f.msg.Ref == lref }); len(got) != 0 {
		t.Errorf("stale leave answered: %s", got[0].raw)
	}
	if n := len(s.Conns()[0].Channels); n != 1 {
		t.Errorf("a stale leave closed the channel")
	}
	peer.send(pj, "realtime:room1", protocol.EventLeave, "{}")
	// Leave: ok reply (refs echoed), then phx_close with the join ref.
	lref = c.send(j2, "realtime:room1", protocol.EventLeave, "{}")
	f, r := c.awaitReply(lref)
	if got, want := string(f.raw), fmt.Sprintf(`["%s","%s","realtime:room1","phx_reply",{"status":"ok","response":{}}]`, j2, lref); got != want || r.Status != "ok" {
		t.Errorf("leave reply %s, want %s", got, want)
	}
	f = c.awaitEvent("realtime:room1", protocol.EventClose)
	if got, want := string(f.raw), fmt.Sprintf(`["%s","%s","realtime:room1","phx_close",{}]`, j2, j2); got != want {
		t.Errorf("leave close %s, want %s", got, want)
	}
	// Deliveries stop after the leave.
	other := dialV2(t, s)
	oj, _ := other.join("realtime:room1", defaultJoin)
	other.broadcastJSON(oj, "realtime:room1", "after-leave", `{}`)
	c.sync()
	if got := c.find(isBroadcast("realtime:room1", "after-leave")); len(got) != 0 {
		t.Errorf("left channel still received %d broadcasts", len(got))
	}
	// Leave of an unknown topic: ok.
	lref = c.send("99", "realtime:never", protocol.EventLeave, "{}")
	if _, r := c.awaitReply(lref); r.Status != "ok" {
		t.Errorf("leave unknown topic: %+v", r)
	}
	// Any other push to an unjoined topic: unmatched topic, join_ref null.
	ref := c.send("5", "realtime:never", protocol.EventPresence, `{"type":"presence","event":"track","payload":{}}`)
	f, _ = c.awaitReply(ref)
	if got, want := string(f.raw), `[null,"`+ref+`","realtime:never","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`; got != want {
		t.Errorf("unmatched %s, want %s", got, want)
	}
	// Unknown events on a joined channel are ignored (no reply), as Supabase does.
	j3, _ := c.join("realtime:room9", defaultJoin)
	c.send(j3, "realtime:room9", "no_such_event", `{}`)
	c.sync()
	if got := c.find(func(f inFrame) bool { return f.msg.Topic == "realtime:room9" && f.msg.Event == protocol.EventReply }); len(got) != 1 {
		t.Errorf("unknown event got replies: %v", len(got)-1)
	}
}

func TestBroadcastMixedSerializers(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := dialV2(t, s)
	b := dialV2(t, s)
	c := dial(t, s, s.AnonKey(), "1.0.0")
	const topic = "realtime:room1"
	ja, _ := a.join(topic, defaultJoin)
	b.join(topic, defaultJoin)
	jc, _ := c.join(topic, defaultJoin)

	// A sends a kind-3 push; B gets the exact kind-4 frame, C the JSON form, A nothing.
	a.writeRaw(true, append([]byte{3, byte(len(ja)), 1, 14, 6, 0, 1}, []byte(ja+"7"+topic+`cursor{"x":1}`)...))
	f := b.await("kind 4", isBroadcast(topic, "cursor"))
	want := append([]byte{4, 14, 6, 0, 1}, []byte(topic+`cursor{"x":1}`)...)
	if !f.binary || !bytes.Equal(f.raw, want) {
		t.Errorf("B got % x, want % x", f.raw, want)
	}
	g := c.await("V1 broadcast", isBroadcast(topic, "cursor"))
	if got, want := string(g.raw), `{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"cursor","payload":{"x":1}},"ref":null}`; got != want {
		t.Errorf("C got %s, want %s", got, want)
	}
	// A raw binary payload: kind 4 with encoding 0 for B; V1 cannot carry it.
	a.broadcastBinary(ja, topic, "blob", []byte{0, 1, 2, 255}, true)
	f = b.await("binary blob", isBroadcast(topic, "blob"))
	if want := append([]byte{4, 14, 4, 0, 0}, append([]byte(topic+"blob"), 0, 1, 2, 255)...); !bytes.Equal(f.raw, want) {
		t.Errorf("B got % x, want % x", f.raw, want)
	}
	// C sends a V1 JSON push: both V2 clients get the text array, verbatim payload.
	c.writeRaw(false, []byte(`{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"hi","payload":{"s":"é"},"extra":1},"ref":"9","join_ref":"`+jc+`"}`))
	for _, cl := range []*client{a, b} {
		f := cl.await("text broadcast", isBroadcast(topic, "hi"))
		if got, want := string(f.raw), `[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"hi","payload":{"s":"é"},"extra":1}]`; got != want {
			t.Errorf("V2 got %s, want %s", got, want)
		}
	}
	// A (self false) never saw its own broadcasts; C did not get the blob.
	a.sync()
	c.sync()
	if got := a.find(isBroadcast(topic, "cursor")); len(got) != 0 {
		t.Errorf("sender received its own broadcast without self")
	}
	if got := c.find(isBroadcast(topic, "blob")); len(got) != 0 {
		t.Errorf("V1 client received a raw binary broadcast")
	}
	st := s.Stats()
	if st.Broadcasts != 3 || st.Deliveries != 5 {
		t.Errorf("stats broadcasts=%d deliveries=%d, want 3 and 5", st.Broadcasts, st.Deliveries)
	}
}

func TestAckAndSelf(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	a := dialV2(t, s)
	const topic = "realtime:room1"
	ja, _ := a.join(topic, joinPayload(`{"ack":true,"self":true}`, `{"key":""}`, false, ""))
	ref := a.broadcastBinary(ja, topic, "cursor", []byte(`{"x":1}`), false)
	f, r := a.awaitReply(ref)
	if got, want := string(f.raw), fmt.Sprintf(`["%s","%s","realtime:room1","phx_reply",{"status":"ok","response":{}}]`, ja, ref); got != want || r.Status != "ok" {
		t.Errorf("ack %s, want %s", got, want)
	}
	echo := a.await("self echo", isBroadcast(topic, "cursor"))
	if !echo.binary || echo.raw[0] != 4 {
		t.Errorf("self echo % x, want kind 4", echo.raw)
	}
	// JSON text push with ack.
	ref = a.broadcastJSON(ja, topic, "t", `{}`)
	if _, r := a.awaitReply(ref); r.Status != "ok" {
		t.Errorf("ack of text push: %+v", r)
	}
	a.await("self text echo", isBroadcast(topic, "t"))
	// Without ack: no reply at all.
	b := dialV2(t, s)
	jb, _ := b.join(topic, defaultJoin)
	ref = b.broadcastBinary(jb, topic, "noack", []byte(`{}`), false)
	b.sync()
	if got := b.find(func(f inFrame) bool { return f.msg.Ref == ref }); len(got) != 0 {
		t.Errorf("reply without ack: %s", got[0].raw)
	}
	a.await("from b", isBroadcast(topic, "noack"))
}

func TestRESTBroadcast(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	v2 := dialV2(t, s)
	v1 := dial(t, s, s.AnonKey(), "1.0.0")
	const topic = "realtime:room1"
	v2.join(topic, defaultJoin)
	v1.join(topic, defaultJoin)

	// Batch: 202, JSON text broadcasts (realtime-js's fallback body and query).
	status, body := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast?apikey="+s.AnonKey()+"&vsn=2.0.0", s.AnonKey(), "application/json",
		`{"messages":[{"topic":"room1","event":"x","payload":{"y":2},"private":false},{"topic":"room1","event":"z","payload":{},"id":"m1"}]}`)
	if status != http.StatusAccepted || body != "" {
		t.Fatalf("batch: %d %q, want 202 and no body", status, body)
	}
	f := v2.await("x", isBroadcast(topic, "x"))
	if got, want := string(f.raw), `[null,null,"realtime:room1","broadcast",{"payload":{"y":2},"event":"x","type":"broadcast"}]`; got != want {
		t.Errorf("batch delivery %s, want %s", got, want)
	}
	f = v2.await("z", isBroadcast(topic, "z"))
	if !strings.Contains(string(f.raw), `"meta":{"id":"m1"}`) {
		t.Errorf("batch message id not in meta: %s", f.raw)
	}
	v1.await("x on v1", isBroadcast(topic, "x"))

	// Single: 202; JSON becomes a kind-4 frame with encoding 1, octet-stream encoding 0.
	status, _ = httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast/room1/events/ev%20one?apikey=k&vsn=2.0.0", s.AnonKey(), "application/json", `{"y":3}`)
	if status != http.StatusAccepted {
		t.Fatalf("single JSON: %d, want 202", status)
	}
	f = v2.await("single", isBroadcast(topic, "ev one"))
	if want := append([]byte{4, 14, 6, 0, 1}, []byte(topic+`ev one{"y":3}`)...); !bytes.Equal(f.raw, want) {
		t.Errorf("single JSON delivery % x, want % x", f.raw, want)
	}
	v1.await("single on v1", isBroadcast(topic, "ev one"))
	status, _ = httpDo(t, "POST", s.URL+"/api/broadcast/room1/events/bin", s.AnonKey(), "application/octet-stream", "\x00\x01")
	if status != http.StatusAccepted {
		t.Fatalf("single binary: %d", status)
	}
	f = v2.await("bin", isBroadcast(topic, "bin"))
	if want := append([]byte{4, 14, 3, 0, 0}, []byte(topic+"bin\x00\x01")...); !bytes.Equal(f.raw, want) {
		t.Errorf("single binary delivery % x, want % x", f.raw, want)
	}

	for _, tc := range []struct {
		name, path, token, ct, body string
		status                      int
		want                        string
	}{
		{"no token", "/realtime/v1/api/broadcast", "", "application/json", `{"messages":[]}`, 401, `{"message":"Unauthorized"}`},
		{"bad token", "/realtime/v1/api/broadcast", "x.y.z", "application/json", `{}`, 401, `{"message":"Unauthorized"}`},
		{"no messages", "/realtime/v1/api/broadcast", s.AnonKey(), "application/json", `{}`, 422, `{"errors":{"messages":["can't be blank"]}}`},
		{"bad message", "/realtime/v1/api/broadcast", s.AnonKey(), "application/json", `{"messages":[{"topic":"a","event":"b","payload":{}},{"topic":1,"payload":[1]}]}`, 422,
			`{"errors":{"messages":[{},{"event":["can't be blank"],"payload":["is invalid"],"topic":["is invalid"]}]}}`},
		{"not json", "/realtime/v1/api/broadcast", s.AnonKey(), "application/json", `{`, 422, `{"errors":{"body":["must be a JSON object"]}}`},
		{"single bad type", "/realtime/v1/api/broadcast/room1/events/e", s.AnonKey(), "text/plain", `x`, 415, ""},
		{"single null", "/realtime/v1/api/broadcast/room1/events/e", s.AnonKey(), "application/json", `null`, 422, `{"errors":{"payload":["can't be blank"]}}`},
		{"single bad json", "/realtime/v1/api/broadcast/room1/events/e", s.AnonKey(), "application/json", `{x`, 400, ""},
		{"get", "/realtime/v1/api/broadcast", s.AnonKey(), "", ``, 405, ""},
	} {
		method := "POST"
		if tc.name == "get" {
			method = "GET"
		}
		status, body := httpDo(t, method, s.URL+tc.path, tc.token, tc.ct, tc.body)
		if status != tc.status || (tc.want != "" && strings.TrimSpace(body) != tc.want) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.want)
		}
	}
	// CORS preflight.
	status, _ = httpDo(t, "OPTIONS", s.URL+"/realtime/v1/api/broadcast", "", "", "")
	if status != http.StatusNoContent {
		t.Errorf("preflight: %d", status)
	}
}

func TestGoBroadcastAPI(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	pub := dialV2(t, s)
	priv := dial(t, s, s.UserToken(t, "u1", time.Hour, nil), "2.0.0")
	pub.join("realtime:room1", defaultJoin)
	priv.join("realtime:room1", joinPayload(`{}`, `{}`, true, ""))
	if n := s.Broadcast("realtime:room1", "go", json.RawMessage(`{"k":1}`)); n != 1 {
		t.Errorf("Broadcast delivered %d, want 1 (public only)", n)
	}
	f := pub.await("go", isBroadcast("realtime:room1", "go"))
	if got, want := string(f.raw), `[null,null,"realtime:room1","broadcast",{"payload":{"k":1},"event":"go","type":"broadcast"}]`; got != want {
		t.Errorf("Broadcast frame %s, want %s", got, want)
	}
	if n := s.BroadcastPrivate("room1", "secret", json.RawMessage(`{}`)); n != 1 {
		t.Errorf("BroadcastPrivate delivered %d, want 1", n)
	}
	priv.await("private", isBroadcast("realtime:room1", "secret"))
	pub.sync()
	priv.sync()
	if len(pub.find(isBroadcast("realtime:room1", "secret"))) != 0 || len(priv.find(isBroadcast("realtime:room1", "go"))) != 0 {
		t.Errorf("public and private channels of one name are not separate")
	}
}

func TestBadInputClosesOnlyThatSocket(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.MaxFrameSize = 1000 }))
	bystander := dialV2(t, s)
	bj, _ := bystander.join("realtime:room1", defaultJoin)
	for _, tc := range []struct {
		name   string
		vsn    string
		binary bool
		data   []byte
		code   int
	}{
		{"malformed JSON", "2.0.0", false, []byte(`[null,"1","phoenix",`), websocket.CloseInvalidFramePayloadData},
		{"object under 2.0.0", "2.0.0", false, []byte(`{"topic":"phoenix"}`), websocket.CloseInvalidFramePayloadData},
		{"array under 1.0.0", "1.0.0", false, []byte(`[null,"1","phoenix","heartbeat",{}]`), websocket.CloseInvalidFramePayloadData},
		{"topic not a string", "2.0.0", false, []byte(`[null,"1",5,"heartbeat",{}]`), websocket.CloseInvalidFramePayloadData},
		{"binary under 1.0.0", "1.0.0", true, []byte{3, 0, 0, 1, 1, 0, 1, 't', 'e', '{', '}'}, websocket.CloseUnsupportedData},
		{"binary kind 4 from client", "2.0.0", true, []byte{4, 1, 1, 0, 1, 't', 'e', '{', '}'}, websocket.CloseInvalidFramePayloadData},
		{"binary lengths too long", "2.0.0", true, []byte{3, 9, 9, 9, 9, 0, 1, 'x'}, websocket.CloseInvalidFramePayloadData},
		{"binary header short", "2.0.0", true, []byte{3, 0, 0}, websocket.CloseInvalidFramePayloadData},
		{"binary bad encoding", "2.0.0", true, []byte{3, 0, 0, 1, 1, 0, 7, 't', 'e', '{', '}'}, websocket.CloseInvalidFramePayloadData},
		{"binary invalid JSON", "2.0.0", true, []byte{3, 0, 0, 1, 1, 0, 1, 't', 'e', '{'}, websocket.CloseInvalidFramePayloadData},
		{"binary kind 0 short", "2.0.0", true, []byte{0, 1, 1, 1}, websocket.CloseInvalidFramePayloadData},
		{"binary kind 0 lengths too long", "2.0.0", true, []byte{0, 9, 9, 9, 9, 'x'}, websocket.CloseInvalidFramePayloadData},
		{"binary kind 1 from client", "2.0.0", true, []byte{1, 0, 0, 1, 1, 't', 'e'}, websocket.CloseInvalidFramePayloadData},
		{"oversized frame", "2.0.0", false, bytes.Repeat([]byte("x"), 1001), websocket.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s, s.AnonKey(), tc.vsn)
			c.writeRaw(tc.binary, tc.data)
			err := c.awaitClosed()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code || ce.Text == "" {
				t.Fatalf("closed with %v, want close code %d with a reason", err, tc.code)
			}
			// The reason says what went wrong once: no doubled prefix, no
			// package name.
			if tc.code != websocket.CloseMessageTooBig {
				if n := strings.Count(ce.Text, "frame: "); n != 1 || strings.Contains(ce.Text, "protocol: ") ||
					!(strings.HasPrefix(ce.Text, "malformed frame: ") || strings.HasPrefix(ce.Text, "unsupported frame: ")) {
					t.Errorf("close reason %q", ce.Text)
				}
			}
		})
	}
	// Payloads that are not objects get error replies; the socket lives on.
	c := dialV2(t, s)
	for _, p := range []string{"null", "[]", `"s"`, "1", "true"} {
		ref := c.nextRef()
		c.push(protocol.Message{Ref: ref, Topic: "phoenix", Event: "heartbeat", Payload: json.RawMessage(p)})
		if _, r := c.awaitReply(ref); r.Status != "error" {
			t.Errorf("heartbeat with payload %s: %+v", p, r)
		}
	}
	// Unknown event on phoenix: unmatched topic.
	ref := c.send("", "phoenix", "nope", "{}")
	if _, r := c.awaitReply(ref); r.Reason() != "unmatched topic" {
		t.Errorf("phoenix nope: %+v", r)
	}
	// The bystander was never harmed.
	other := dialV2(t, s)
	oj, _ := other.join("realtime:room1", defaultJoin)
	other.broadcastJSON(oj, "realtime:room1", "still", `{}`)
	bystander.await("still alive", isBroadcast("realtime:room1", "still"))
	bystander.broadcastJSON(bj, "realtime:room1", "me too", `{}`)
	other.await("bystander can send", isBroadcast("realtime:room1", "me too"))
	if s.Stats().BadFrames < 11 {
		t.Errorf("BadFrames = %d, want >= 11", s.Stats().BadFrames)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.IdleTimeout = 150 * time.Millisecond }))
	c := dialV2(t, s)
	err := c.awaitClosed()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "idle timeout" {
		t.Errorf("idle socket closed with %v, want 1000 idle timeout", err)
	}
	if s.Stats().IdleCloses != 1 {
		t.Errorf("IdleCloses = %d, want 1", s.Stats().IdleCloses)
	}
	// A socket that keeps sending heartbeats stays open past the timeout.
	// The margin is wide (a heartbeat every 50 ms against 1 s) so that a
	// loaded machine cannot starve the client for a whole timeout.
	s2 := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.IdleTimeout = time.Second }))
	live := dialV2(t, s2)
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		live.sync()
		time.Sleep(50 * time.Millisecond) // the client's heartbeat interval
	}
	live.sync()
	if n := s2.Stats().IdleCloses; n != 0 {
		t.Errorf("IdleCloses = %d for a live socket, want 0", n)
	}
}

func TestV1ClientJoinAndReplies(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dial(t, s, s.AnonKey(), "1.0.0")
	c.writeRaw(false, []byte(`{"topic":"realtime:room1","event":"phx_join","payload":`+joinPayload(`{"self":true,"ack":true}`, `{"enabled":true,"key":"k"}`, false, "")+`,"ref":"6","join_ref":"6"}`))
	f := c.awaitEvent("realtime:room1", protocol.EventReply)
	if got, want := string(f.raw), `{"topic":"realtime:room1","event":"phx_reply","payload":{"status":"ok","response":{"postgres_changes":[]}},"ref":"6"}`; got != want {
		t.Errorf("V1 join reply %s, want %s", got, want)
	}
	f = c.awaitEvent("realtime:room1", protocol.EventPresenceState)
	if got, want := string(f.raw), `{"topic":"realtime:room1","event":"presence_state","payload":{},"ref":null}`; got != want {
		t.Errorf("V1 presence_state %s, want %s", got, want)
	}
	c.writeRaw(false, []byte(`{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"e","payload":{}},"ref":"7","join_ref":"6"}`))
	c.await("ack", func(f inFrame) bool { return f.msg.Ref == "7" })
	c.await("self", isBroadcast("realtime:room1", "e"))
}

func TestEmitChange(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	_, resp := a.join(topic, `{"config":{"postgres_changes":[{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.1"},{"event":"*","schema":"public","table":"other"}]}}`)
	var r struct {
		PG []struct {
			ID int64 `json:"id"`
		} `json:"postgres_changes"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || len(r.PG) != 2 {
		t.Fatalf("join response %s", resp)
	}
	idA, idB := r.PG[0].ID, r.PG[1].ID
	_, resp = b.join(topic, `{"config":{"postgres_changes":[{"event":"*","schema":"public"},{"event":"DELETE","table":"todos","filter":"done=is.true,id=in.(1,2,3)"}]}}`)
	if err := json.Unmarshal(resp, &r); err != nil {
		t.Fatal(err)
	}
	idAll, idDel := r.PG[0].ID, r.PG[1].ID
	insert := func(id int) protocol.ChangeData {
		return protocol.ChangeData{Schema: "public", Table: "todos", CommitTimestamp: "2026-01-01T00:00:00.000Z", Type: "INSERT",
			Columns: []protocol.Column{{Name: "id", Type: "int8"}, {Name: "done", Type: "bool"}},
			Record:  json.RawMessage(fmt.Sprintf(`{"id":%d,"done":"t"}`, id))}
	}
	if n := s.EmitChange(topic, insert(1)); n != 2 {
		t.Errorf("EmitChange(insert 1) = %d, want 2", n)
	}
	f := a.awaitEvent(topic, protocol.EventPostgresChanges)
	want := fmt.Sprintf(`[null,null,"realtime:room1","postgres_changes",{"ids":[%d],"data":{"schema":"public","table":"todos","commit_timestamp":"2026-01-01T00:00:00.000Z","type":"INSERT","columns":[{"name":"id","type":"int8"},{"name":"done","type":"bool"}],"record":{"id":1,"done":"t"},"errors":null}}]`, idA)
	if string(f.raw) != want {
		t.Errorf("change frame\n %s\nwant\n %s", f.raw, want)
	}
	f = b.awaitEvent(topic, protocol.EventPostgresChanges)
	if !strings.Contains(string(f.raw), fmt.Sprintf(`{"ids":[%d],`, idAll)) {
		t.Errorf("b's change %s, want ids [%d]", f.raw, idAll)
	}
	// id=2 does not pass a's filter.
	if n := s.EmitChange("room1", insert(2)); n != 1 {
		t.Errorf("EmitChange(insert 2) = %d, want 1", n)
	}
	upd := protocol.ChangeData{Schema: "public", Table: "other", Type: "UPDATE", Record: json.RawMessage(`{"x":1}`), OldRecord: json.RawMessage(`{"x":0}`)}
	if n := s.EmitChange("", upd); n != 2 {
		t.Errorf("EmitChange(update other) = %d, want 2", n)
	}
	a.await("update", func(f inFrame) bool {
		return f.msg.Event == protocol.EventPostgresChanges && strings.Contains(string(f.raw), fmt.Sprintf(`{"ids":[%d],`, idB))
	})
	del := protocol.ChangeData{Schema: "public", Table: "todos", Type: "DELETE", OldRecord: json.RawMessage(`{"id":2,"done":true}`)}
	if n := s.EmitChange(topic, del); n != 1 {
		t.Errorf("EmitChange(delete) = %d, want 1", n)
	}
	b.await("delete", func(f inFrame) bool {
		return f.msg.Event == protocol.EventPostgresChanges && strings.Contains(string(f.raw), fmt.Sprintf(`{"ids":[%d,%d],`, idAll, idDel))
	})
	if n := s.EmitChange("realtime:nobody", del); n != 0 {
		t.Errorf("EmitChange(no topic) = %d", n)
	}
	// A filter that does not parse: the join succeeds, the system message says why.
	c := dialV2(t, s)
	c.join(topic, `{"config":{"postgres_changes":[{"event":"*","schema":"public","table":"t","filter":"id=eq"}]}}`)
	sys := c.awaitEvent(topic, protocol.EventSystem)
	if !strings.Contains(string(sys.raw), `"extension":"postgres_changes","status":"error","message":"Error parsing `+"`filter`"+` params: `) {
		t.Errorf("bad filter system message %s", sys.raw)
	}
}
