package pgrealtime

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// refusalDelay is the tests' AuthorizationErrorDelay (Supabase: 5 s).
const refusalDelay = 300 * time.Millisecond

// Users: subs are uuids, as auth.uid() returns uuid.
const (
	alice = "00000000-0000-4000-8000-00000000000a"
	bob   = "00000000-0000-4000-8000-00000000000b"
	carol = "00000000-0000-4000-8000-00000000000c"
)

// env is a bootstrapped database with the test's policies and the
// embedded server authorising by them.
type env struct {
	*testDB
	srv  *servertest.Server
	logs *syncBuffer
}

func newEnv(t testing.TB, policies string, mod ...func(*server.Config)) *env {
	t.Helper()
	db := pg.DB(t)
	td := open(t, db)
	if policies != "" {
		db.Exec(t, policies)
	}
	logs := &syncBuffer{}
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.Authorizer = td.Authorizer()
		c.AuthorizationErrorDelay = refusalDelay
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		for _, m := range mod {
			m(c)
		}
	}))
	return &env{testDB: td, srv: srv, logs: logs}
}

// user dials as an authenticated user with extra claims.
func (e *env) user(t *testing.T, sub string, extra map[string]any) *wsClient {
	t.Helper()
	return dialWS(t, e.srv, e.srv.UserToken(t, sub, time.Hour, extra))
}

const unauthorized = `{"status":"error","response":{"reason":"Unauthorized: You do not have permissions to read from this Channel topic: %s"}}`

func wantPayload(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// The documented read policy decides private joins, after the refusal
// delay; anon is refused, service_role bypasses RLS, public joins never
// ask.
func TestPrivateJoinByPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy "authenticated can read all messages on topic" on "realtime"."messages"
		for select to authenticated using ( (select realtime.topic()) = 'room-1' )`)
	a := e.user(t, alice, nil)
	if _, r := a.join("realtime:room-1", `{"private":true}`); !strings.Contains(r, `"status":"ok"`) {
		t.Errorf("allowed join: %s", r)
	}
	start := time.Now()
	_, r := a.join("realtime:room-2", `{"private":true}`)
	wantPayload(t, "refused join", r, strings.ReplaceAll(unauthorized, "%s", "room-2"))
	if d := time.Since(start); d < refusalDelay {
		t.Errorf("refused after %v, before the delay %v", d, refusalDelay)
	}
	if _, r := a.join("realtime:room-2", `{"private":false}`); !strings.Contains(r, `"status":"ok"`) {
		t.Errorf("public join: %s", r)
	}
	anon := dialWS(t, e.srv, e.srv.AnonKey())
	_, r = anon.join("realtime:room-1", `{"private":true}`)
	wantPayload(t, "anon", r, strings.ReplaceAll(unauthorized, "%s", "room-1"))
	svc := dialWS(t, e.srv, e.srv.ServiceRoleKey())
	if _, r := svc.join("realtime:room-2", `{"private":true}`); !strings.Contains(r, `"status":"ok"`) {
		t.Errorf("service_role join: %s", r)
	}
	// The probe rows were rolled back.
	var n int
	e.db.QueryRow(t, `select count(*) from realtime.messages`, nil, &n)
	if n != 0 {
		t.Errorf("%d probe rows were kept", n)
	}
}

// A presence-only reader may join only when the join enables presence;
// the probe rows carry private = false and event NULL, and the session
// carries the JWT's claims and the upgrade's x-* headers.
func TestPresenceReaderAndSessionSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy presence_only on realtime.messages for select to authenticated
		using ( extension = 'presence' and private is false and event is null
			and auth.uid() = '`+alice+`' and auth.jwt() ->> 'team' = 'red'
			and current_setting('request.jwt.claim.role', true) = 'authenticated'
			and auth.role() = 'authenticated' )`)
	a := e.user(t, alice, map[string]any{"team": "red"})
	_, r := a.join("realtime:lobby", `{"private":true}`)
	wantPayload(t, "without presence", r, strings.ReplaceAll(unauthorized, "%s", "lobby"))
	if _, r := a.join("realtime:lobby", `{"private":true,"presence":{"enabled":true}}`); !strings.Contains(r, `"status":"ok"`) {
		t.Errorf("presence reader: %s", r)
	}
	b := e.user(t, alice, map[string]any{"team": "blue"})
	_, r = b.join("realtime:lobby", `{"private":true,"presence":{"enabled":true}}`)
	wantPayload(t, "other claims", r, strings.ReplaceAll(unauthorized, "%s", "lobby"))

	// request.headers holds the upgrade's x-* headers (and only those).
	e.db.Exec(t, `create policy by_header on realtime.messages for select to authenticated
		using ( realtime.topic() = 'tagged'
			and current_setting('request.headers', true)::jsonb ->> 'x-client-tag' = 'ok'
			and current_setting('request.headers', true)::jsonb ->> 'user-agent' is null )`)
	tok := e.srv.UserToken(t, carol, time.Hour, nil)
	tagged := dialWS(t, e.srv, tok, http.Header{"X-Client-Tag": {"ok"}, "User-Agent": {"test"}})
	if _, r := tagged.join("realtime:tagged", `{"private":true}`); !strings.Contains(r, `"status":"ok"`) {
		t.Errorf("with the header: %s", r)
	}
	untagged := dialWS(t, e.srv, tok, http.Header{"X-Client-Tag": {"no"}})
	_, r = untagged.join("realtime:tagged", `{"private":true}`)
	wantPayload(t, "without the header", r, strings.ReplaceAll(unauthorized, "%s", "tagged"))
}

// Broadcast without an INSERT policy is dropped with no reply even with
// ack; the write answer is cached until the token changes.
func TestBroadcastWriteGating(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy read_all on realtime.messages for select to authenticated using (true);
		create policy bob_writes on realtime.messages for insert to authenticated
		with check ( auth.uid() = '`+bob+`' and extension = 'broadcast' and realtime.topic() = 'chat' )`)
	const topic = "realtime:chat"
	cfg := `{"private":true,"broadcast":{"ack":true,"self":false}}`
	a, b, c := e.user(t, alice, nil), e.user(t, bob, nil), e.user(t, carol, nil)
	aj, _ := a.join(topic, cfg)
	bj, _ := b.join(topic, cfg)
	c.join(topic, cfg)

	a.push(aj, topic, "broadcast", `{"type":"broadcast","event":"m","payload":{"from":"alice"}}`)
	a.sync()
	ref := b.push(bj, topic, "broadcast", `{"type":"broadcast","event":"m","payload":{"from":"bob"}}`)
	wantPayload(t, "bob's ack", b.reply(ref), `{"status":"ok","response":{}}`)
	got := c.event(topic, "broadcast")
	c.sync()
	if !strings.Contains(string(got.Payload), "bob") || c.count(topic, "broadcast") != 1 {
		t.Errorf("carol got %d broadcasts, first %s; want only bob's\n%s", c.count(topic, "broadcast"), got.Payload, c.dump())
	}
	if n := a.count(topic, protocol.EventReply); n != 1 { // the join's only
		t.Errorf("alice got %d replies on the topic, want the join's only (no ack for a dropped broadcast)\n%s", n, a.dump())
	}

	// Cached: dropping the policy does not change bob's answer ...
	e.db.Exec(t, `drop policy bob_writes on realtime.messages`)
	ref = b.push(bj, topic, "broadcast", `{"type":"broadcast","event":"m","payload":{"from":"bob2"}}`)
	wantPayload(t, "bob's cached ack", b.reply(ref), `{"status":"ok","response":{}}`)
	// ... until his token changes.
	b.push(bj, topic, "access_token", `{"access_token":"`+e.srv.UserToken(t, bob, 2*time.Hour, nil)+`"}`)
	b.push(bj, topic, "broadcast", `{"type":"broadcast","event":"m","payload":{"from":"bob3"}}`)
	b.sync()
	c.sync()
	if n := c.count(topic, "broadcast"); n != 2 {
		t.Errorf("carol got %d broadcasts, want 2 (bob's third dropped after the refresh)\n%s", n, c.dump())
	}
}

// Presence: read gates presence_state and presence_diff, write gates
// track (error {}); broadcast read gates broadcasts at fan-out.
func TestPresenceAndBroadcastReadGating(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy alice_all on realtime.messages for select to authenticated using ( auth.uid() = '`+alice+`' );
		create policy alice_track on realtime.messages for insert to authenticated
			with check ( auth.uid() = '`+alice+`' and extension = 'presence' );
		create policy carol_broadcast on realtime.messages for select to authenticated
			using ( auth.uid() = '`+carol+`' and extension = 'broadcast' );
		create policy bob_presence on realtime.messages for select to authenticated
			using ( auth.uid() = '`+bob+`' and extension = 'presence' );
		create policy writers on realtime.messages for insert to authenticated
			with check ( auth.uid() in ('`+bob+`', '`+carol+`') and extension = 'broadcast' )`)
	const topic = "realtime:room"
	cfg := `{"private":true,"presence":{"enabled":true,"key":"%s"},"broadcast":{"self":true}}`
	a, b, c := e.user(t, alice, nil), e.user(t, bob, nil), e.user(t, carol, nil)
	aj, _ := a.join(topic, strings.ReplaceAll(cfg, "%s", "a"))
	a.event(topic, protocol.EventPresenceState)
	bj, _ := b.join(topic, strings.ReplaceAll(cfg, "%s", "b"))
	b.event(topic, protocol.EventPresenceState)
	cj, _ := c.join(topic, strings.ReplaceAll(cfg, "%s", "c"))

	wantPayload(t, "alice tracks", a.reply(a.push(aj, topic, "presence", `{"type":"presence","event":"track","payload":{"u":"a"}}`)),
		`{"status":"ok","response":{}}`)
	a.event(topic, protocol.EventPresenceDiff)
	b.event(topic, protocol.EventPresenceDiff)
	wantPayload(t, "carol tracks without presence write", c.reply(c.push(cj, topic, "presence", `{"type":"presence","event":"track","payload":{"u":"c"}}`)),
		`{"status":"error","response":{}}`)
	// bob may write but not read broadcast: with self, his broadcast
	// reaches alice and carol, not himself.
	b.push(bj, topic, "broadcast", `{"type":"broadcast","event":"m","payload":{}}`)
	b.sync()
	a.event(topic, "broadcast")
	c.event(topic, "broadcast")
	c.sync()
	if n := c.count(topic, protocol.EventPresenceState) + c.count(topic, protocol.EventPresenceDiff); n != 0 {
		t.Errorf("carol (no presence read) got %d presence messages\n%s", n, c.dump())
	}
	if n := b.count(topic, "broadcast"); n != 0 {
		t.Errorf("bob (no broadcast read) got %d broadcasts\n%s", n, b.dump())
	}
	if !strings.Contains(e.logs.String(), "UnableToHandlePresence: :unauthorized") {
		t.Errorf("the refused track was not logged:\n%s", e.logs)
	}

	// alice again, without presence at join: presence read is unknown,
	// so no presence_state and no diffs, until her first track probes it.
	late := e.user(t, alice, nil)
	lj, _ := late.join(topic, `{"private":true,"presence":{"key":"late"}}`)
	wantPayload(t, "alice re-tracks", a.reply(a.push(aj, topic, "presence", `{"type":"presence","event":"track","payload":{"u":"a2"}}`)),
		`{"status":"ok","response":{}}`)
	a.event(topic, protocol.EventPresenceDiff)
	late.sync()
	if n := late.count(topic, protocol.EventPresenceState) + late.count(topic, protocol.EventPresenceDiff); n != 0 {
		t.Errorf("a member whose presence read was never probed got %d presence messages\n%s", n, late.dump())
	}
	wantPayload(t, "the late member tracks", late.reply(late.push(lj, topic, "presence", `{"type":"presence","event":"track","payload":{"u":"late"}}`)),
		`{"status":"ok","response":{}}`)
	late.event(topic, protocol.EventPresenceDiff) // her own join, now readable
}

// access_token re-runs the read check: a token keeping one read but
// losing the other gets "You no longer have permission", one reading
// neither "You do not have permissions", one still reading both stays.
func TestTokenRefreshRecheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy gold on realtime.messages for select to authenticated using ( auth.jwt() ->> 'level' = 'gold' );
		create policy silver on realtime.messages for select to authenticated
			using ( auth.jwt() ->> 'level' = 'silver' and extension = 'presence' )`)
	const topic = "realtime:vip"
	cfg := `{"private":true,"presence":{"enabled":true}}`
	gold := map[string]any{"level": "gold"}
	cases := []struct {
		name  string
		level map[string]any
		want  string
	}{
		{"keeps both", map[string]any{"level": "gold", "v": 2}, ""},
		{"keeps presence only", map[string]any{"level": "silver"}, "You no longer have permission to read from this Channel topic: vip"},
		{"reads nothing", map[string]any{"level": "none"}, "You do not have permissions to read from this Channel topic: vip"},
	}
	for _, tc := range cases {
		c := e.user(t, alice, gold)
		j, _ := c.join(topic, cfg)
		c.push(j, topic, "access_token", `{"access_token":"`+e.srv.UserToken(t, alice, 2*time.Hour, tc.level)+`"}`)
		c.sync()
		if tc.want == "" {
			if n := c.count(topic, protocol.EventSystem) + c.count(topic, protocol.EventClose); n != 0 {
				t.Errorf("%s: the channel was shut\n%s", tc.name, c.dump())
			}
			continue
		}
		sys := c.event(topic, protocol.EventSystem)
		wantPayload(t, tc.name, string(sys.Payload), `{"extension":"system","status":"error","message":"`+tc.want+`","channel":"vip"}`)
		c.event(topic, protocol.EventClose)
	}
}

// REST: a private single broadcast without write is 403 Unauthorized; a
// batch drops its private messages without write and answers 202.
func TestRESTPrivateBroadcasts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy read_all on realtime.messages for select to authenticated using (true);
		create policy write_open on realtime.messages for insert to authenticated
			with check ( realtime.topic() = 'open' and current_setting('request.headers', true)::jsonb ->> 'x-app' = 'yes' )`)
	sub := e.user(t, carol, nil)
	sub.join("realtime:open", `{"private":true}`)
	sub.join("realtime:closed", `{"private":true}`)
	tok := e.srv.UserToken(t, bob, time.Hour, nil)
	post := func(path, body string, headers ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := post("/realtime/v1/api/broadcast/closed/events/e?private=true", `{"n":1}`, "x-app", "yes"); code != 403 || body != `{"message":"Unauthorized"}` {
		t.Errorf("single without write: %d %s", code, body)
	}
	if code, body := post("/realtime/v1/api/broadcast/open/events/e?private=true", `{"n":1}`); code != 403 {
		t.Errorf("single without the header the policy needs: %d %s", code, body)
	}
	if code, body := post("/realtime/v1/api/broadcast/open/events/e?private=true", `{"n":2}`, "x-app", "yes"); code != 202 {
		t.Errorf("single with write: %d %s", code, body)
	}
	batch := `{"messages":[{"topic":"closed","event":"e","payload":{"n":3},"private":true},
		{"topic":"open","event":"e","payload":{"n":4},"private":true}]}`
	if code, body := post("/realtime/v1/api/broadcast", batch, "x-app", "yes"); code != 202 {
		t.Errorf("batch: %d %s", code, body)
	}
	sub.event("realtime:open", "broadcast")
	sub.event("realtime:open", "broadcast")
	sub.sync()
	if n := sub.count("realtime:closed", "broadcast"); n != 0 {
		t.Errorf("%d broadcasts reached the closed topic\n%s", n, sub.dump())
	}
}

// A missing partition and a policy that raises are refused with
// Supabase's reasons; the policy's error is logged as RlsPolicyError.
func TestMissingPartitionAndPolicyError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create function public.boom() returns bool language plpgsql stable as $$
		begin raise exception 'policy exploded for %', realtime.topic(); end $$;
		create policy explode on realtime.messages for select to authenticated using ( realtime.topic() <> 'bad' or public.boom() )`)
	a := e.user(t, alice, nil)
	_, r := a.join("realtime:bad", `{"private":true}`)
	wantPayload(t, "raising policy", r, strings.ReplaceAll(unauthorized, "%s", "bad"))
	if l := e.logs.String(); !strings.Contains(l, "RlsPolicyError") || !strings.Contains(l, "policy exploded for bad") {
		t.Errorf("the policy's error was not logged:\n%s", l)
	}
	e.db.Exec(t, `drop table realtime.messages_2026_12_07`) // today on the fake clock
	_, r = a.join("realtime:good", `{"private":true}`)
	wantPayload(t, "missing partition", r, `{"status":"error","response":{"reason":"MissingPartition: Realtime was unable to find the expected messages partition"}}`)
}
