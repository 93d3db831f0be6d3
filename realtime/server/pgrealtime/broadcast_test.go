package pgrealtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"rtm/realtime/internal/pgtest"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// bfdEnv is a bootstrapped database on the real clock (realtime.send
// writes now()), its Broadcast from Database stream, and the embedded
// server authorising and delivering by them.
type bfdEnv struct {
	db  *DB
	bc  *Broadcasts
	srv *servertest.Server
	pg  *pgtest.DB
}

// newBFDEnv opens the environment; wrap, when set, stands between the
// stream and the server.
func newBFDEnv(t *testing.T, policies string, wrap func(server.DatabaseBroadcasts) server.DatabaseBroadcasts, opts ...servertest.Option) *bfdEnv {
	t.Helper()
	pdb := pg.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	logs := &syncBuffer{}
	d, err := Open(ctx, Config{URL: pdb.URL, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Ticker: func(time.Duration) (<-chan time.Time, func()) { return make(chan time.Time), func() {} }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if policies != "" {
		pdb.Exec(t, policies)
	}
	bc, err := d.OpenBroadcasts(ctx)
	if err != nil {
		t.Fatalf("OpenBroadcasts: %v", err)
	}
	t.Cleanup(func() { _ = bc.Close() })
	var src server.DatabaseBroadcasts = bc
	if wrap != nil {
		src = wrap(bc)
	}
	srv := servertest.New(t, append(opts, servertest.WithConfig(func(c *server.Config) {
		c.Authorizer = d.Authorizer()
		c.AuthorizationErrorDelay = refusalDelay
		c.Broadcasts = src
	}))...)
	return &bfdEnv{db: d, bc: bc, srv: srv, pg: pdb}
}

// readAll lets authenticated read every topic's broadcasts.
const readAll = `create policy "authenticated can receive broadcasts" on "realtime"."messages"
	for select to authenticated using ( true )`

// itemsTrigger is the documented Broadcast from Database trigger on a
// table public.items, broadcasting the operations ops ("insert or
// update") to the private topic "items" with broadcast_changes.
func itemsTrigger(ops string) string {
	return fmt.Sprintf(`
		create table public.items (id int primary key, details text);
		create or replace function public.items_changes() returns trigger
		security definer set search_path = '' as $$
		begin
			perform realtime.broadcast_changes('items', TG_OP, TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
			return null;
		end;
		$$ language plpgsql;
		create trigger items_broadcast after %s on public.items
		for each row execute function public.items_changes()`, ops)
}

// isBroadcast matches a broadcast of event on topic.
func isBroadcast(topic, event string) func(protocol.Message) bool {
	return func(m protocol.Message) bool {
		if m.Topic != topic || m.Event != protocol.EventBroadcast {
			return false
		}
		if m.Broadcast != nil {
			return m.Broadcast.Event == event
		}
		var p struct{ Event string }
		return json.Unmarshal(m.Payload, &p) == nil && p.Event == event
	}
}

// rowID returns the id of the only row of realtime.messages with event.
func (e *bfdEnv) rowID(t *testing.T, event string) string {
	t.Helper()
	return e.rowWhere(t, "event = $1", event)
}

// rowWhere returns the id of the only row of realtime.messages where
// cond holds.
func (e *bfdEnv) rowWhere(t *testing.T, cond string, args ...any) string {
	t.Helper()
	var id string
	e.pg.QueryRow(t, "select id::text from realtime.messages where "+cond, args, &id)
	return id
}

// A public realtime.send reaches the public channel of its topic and not
// the private one, and a private one the reverse, as Supabase delivers
// them: a 2.0.0 user broadcast frame with the payload's injected id and
// meta {"id"}.
func TestSendReachesOnlyItsKind(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, readAll, nil)
	const topic = "realtime:room-1"
	pub, priv := e.user(t, alice), e.user(t, bob)
	if _, r := pub.join(topic, `{}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("public join: %s", r)
	}
	if _, r := priv.join(topic, `{"private":true}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("private join: %s", r)
	}
	e.pg.Exec(t, `select realtime.send('{"n":1}'::jsonb, 'pub', 'room-1', false)`)
	got := pub.await("the public row", isBroadcast(topic, "pub"))
	id := e.rowID(t, "pub")
	if got.Broadcast == nil {
		t.Fatalf("public row not a user broadcast frame: %s", got.Payload)
	}
	wantPayload(t, "meta", string(got.Broadcast.Meta), `{"id":"`+id+`"}`)
	var p map[string]any
	if err := json.Unmarshal(got.Broadcast.Payload, &p); err != nil || p["n"] != 1.0 || p["id"] != id {
		t.Errorf("payload %s (%v), want n 1 and id %s", got.Broadcast.Payload, err, id)
	}
	e.pg.Exec(t, `select realtime.send('{"n":2}'::jsonb, 'priv', 'room-1', true)`)
	got = priv.await("the private row", isBroadcast(topic, "priv"))
	wantPayload(t, "private meta", string(got.Broadcast.Meta), `{"id":"`+e.rowID(t, "priv")+`"}`)
	pub.sync()
	priv.sync()
	if n := pub.count(topic, protocol.EventBroadcast); n != 1 {
		t.Errorf("the public channel received %d broadcasts, want the public one only\n%s", n, pub.dump())
	}
	if n := priv.count(topic, protocol.EventBroadcast); n != 1 {
		t.Errorf("the private channel received %d broadcasts, want the private one only\n%s", n, priv.dump())
	}
}

// user dials as an authenticated user.
func (e *bfdEnv) user(t *testing.T, sub string) *wsClient {
	t.Helper()
	return dialWS(t, e.srv, e.srv.UserToken(t, sub, time.Hour, nil))
}

// realtime.broadcast_changes in the documented trigger delivers INSERT,
// UPDATE and DELETE to the private channel with Supabase's payload.
func TestBroadcastChangesTrigger(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, readAll+";"+itemsTrigger("insert or update or delete"), nil)
	const topic = "realtime:items"
	c := e.user(t, alice)
	if _, r := c.join(topic, `{"private":true}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("join: %s", r)
	}
	e.pg.Exec(t, `insert into public.items values (1, 'x')`)
	e.pg.Exec(t, `update public.items set details = 'y' where id = 1`)
	e.pg.Exec(t, `delete from public.items where id = 1`)
	for _, tc := range []struct{ op, record, old string }{
		{"INSERT", `{"details":"x","id":1}`, `null`},
		{"UPDATE", `{"details":"y","id":1}`, `{"details":"x","id":1}`},
		{"DELETE", `null`, `{"details":"y","id":1}`},
	} {
		m := c.await(tc.op, isBroadcast(topic, tc.op))
		var p struct {
			Schema, Table, Operation, ID string
			Record                       json.RawMessage
			OldRecord                    json.RawMessage `json:"old_record"`
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(m.Broadcast.Payload, &raw); err != nil {
			t.Fatalf("%s payload %s: %v", tc.op, m.Broadcast.Payload, err)
		}
		_ = json.Unmarshal(m.Broadcast.Payload, &p)
		if len(raw) != 6 || p.Schema != "public" || p.Table != "items" || p.Operation != tc.op ||
			compact(p.Record) != tc.record || compact(p.OldRecord) != tc.old {
			t.Errorf("%s payload %s", tc.op, m.Broadcast.Payload)
		}
		if want := `{"id":"` + p.ID + `"}`; p.ID == "" || string(m.Broadcast.Meta) != want {
			t.Errorf("%s meta %s, payload id %q", tc.op, m.Broadcast.Meta, p.ID)
		}
	}
}

func compact(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// realtime.send_binary reaches a 2.0.0 socket as a binary user broadcast
// with the raw bytes; a 1.0.0 socket skips it (Supabase: "binary messages
// are skipped on V1 sockets") and gets realtime.send's rows as JSON.
func TestSendBinaryByVersion(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, "", nil)
	const topic = "realtime:bin"
	v2 := dialWS(t, e.srv, e.srv.AnonKey())
	v1 := dialWSVsn(t, e.srv, e.srv.AnonKey(), protocol.V1, nil)
	for _, c := range []*wsClient{v2, v1} {
		if _, r := c.join(topic, `{}`); !strings.Contains(r, `"ok"`) {
			t.Fatalf("join: %s", r)
		}
	}
	e.pg.Exec(t, `select realtime.send_binary('\x0102ff'::bytea, 'raw', 'bin', false)`)
	e.pg.Exec(t, `select realtime.send('{"k":"v"}'::jsonb, 'json', 'bin', false)`)
	m := v2.await("binary row", isBroadcast(topic, "raw"))
	if m.Broadcast == nil || !m.Broadcast.Binary || string(m.Broadcast.Payload) != "\x01\x02\xff" {
		t.Errorf("2.0.0 binary row: %+v", m.Broadcast)
	} else {
		wantPayload(t, "binary meta", string(m.Broadcast.Meta), `{"id":"`+e.rowID(t, "raw")+`"}`)
	}
	j := v1.await("JSON row on 1.0.0", isBroadcast(topic, "json"))
	var p struct {
		Type, Event string
		Payload     map[string]any
		Meta        map[string]any
	}
	id := e.rowID(t, "json")
	if err := json.Unmarshal(j.Payload, &p); err != nil || p.Type != "broadcast" || p.Payload["k"] != "v" ||
		p.Payload["id"] != id || len(p.Meta) != 1 || p.Meta["id"] != id || j.JoinRef != "" {
		t.Errorf("1.0.0 JSON row: %s (join_ref %q)", j.Payload, j.JoinRef)
	}
	v1.sync()
	if n := v1.count(topic, protocol.EventBroadcast); n != 1 {
		t.Errorf("1.0.0 socket received %d broadcasts, want only the JSON one\n%s", n, v1.dump())
	}
}

// presenceOnly lets alice read everything and bob read presence only:
// bob joins (with presence enabled) but may not read broadcasts.
const presenceOnly = `create policy "alice reads" on "realtime"."messages" for select to authenticated
	using ( auth.uid() = '` + alice + `'::uuid or
		(auth.uid() = '` + bob + `'::uuid and realtime.messages.extension = 'presence') )`

// Private rows reach only the subscribers with broadcast read.
func TestPrivateRowsGatedByPolicy(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, presenceOnly, nil)
	const topic = "realtime:gated"
	a, b := e.user(t, alice), e.user(t, bob)
	if _, r := a.join(topic, `{"private":true}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("alice's join: %s", r)
	}
	if _, r := b.join(topic, `{"private":true,"presence":{"enabled":true}}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("bob's presence-only join: %s", r)
	}
	e.pg.Exec(t, `select realtime.send('{}'::jsonb, 'secret', 'gated', true)`)
	a.await("alice's row", isBroadcast(topic, "secret"))
	b.sync()
	if n := b.count(topic, protocol.EventBroadcast); n != 0 {
		t.Errorf("bob without broadcast read received %d broadcasts\n%s", n, b.dump())
	}
}

// gate holds the stream's rows back until opened, so that a test can
// commit a row, replay it, then let its live copy through.
type gate struct {
	server.DatabaseBroadcasts
	mu     sync.Mutex
	closed bool
	seen   int
	held   []server.DatabaseBroadcast
	out    func(server.DatabaseBroadcast)
}

func (g *gate) Listen(deliver func(server.DatabaseBroadcast)) func() {
	g.mu.Lock()
	g.out = deliver
	g.mu.Unlock()
	return g.DatabaseBroadcasts.Listen(func(b server.DatabaseBroadcast) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.seen++
		if g.closed {
			g.held = append(g.held, b)
			return
		}
		g.out(b)
	})
}

func (g *gate) setClosed(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = closed
	if !closed {
		for _, b := range g.held {
			g.out(b)
		}
		g.held = nil
	}
}

// await waits until n rows have streamed and held are held back.
func (g *gate) await(t *testing.T, n, held int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		g.mu.Lock()
		ok := g.seen >= n && len(g.held) >= held
		g.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d rows streamed, %d held", n, held)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Replay: the newest stored private broadcasts since since, capped at
// 25, oldest first, with meta.replayed, right after the join reply and
// before presence_state; a replayed row arriving live afterwards is not
// delivered again; a later row arrives live.
func TestReplay(t *testing.T) {
	t.Parallel()
	var g *gate
	e := newBFDEnv(t, readAll, func(src server.DatabaseBroadcasts) server.DatabaseBroadcasts {
		g = &gate{DatabaseBroadcasts: src}
		return g
	})
	const topic = "realtime:replay-room"
	since := time.Now().Add(-time.Minute).UnixMilli()
	// 30 stored rows a second apart (older than since: one more), a
	// public one and one of another topic, none replayable.
	e.pg.Exec(t, `insert into realtime.messages (topic, extension, event, payload, private, inserted_at)
		select 'replay-room', 'broadcast', 'ev', jsonb_build_object('n', g), true, now() - (31 - g) * interval '1 second'
		from generate_series(1, 30) g;
		insert into realtime.messages (topic, extension, event, payload, private, inserted_at)
		values ('replay-room', 'broadcast', 'ev', '{"n":0}', true, now() - interval '2 minutes'),
			('replay-room', 'broadcast', 'ev', '{"public":true}', false, now()),
			('other', 'broadcast', 'ev', '{"other":true}', true, now())`)
	g.await(t, 33, 0) // before anyone joined: not delivered
	g.setClosed(true)
	e.pg.Exec(t, `select realtime.send('{"n":31}'::jsonb, 'ev', 'replay-room', true)`)
	g.await(t, 34, 1) // committed, streamed, held back
	c := e.user(t, alice)
	joinRef, r := c.join(topic, fmt.Sprintf(`{"private":true,"presence":{"enabled":true},"broadcast":{"replay":{"since":%d,"limit":50}}}`, since))
	if !strings.Contains(r, `"ok"`) {
		t.Fatalf("join: %s", r)
	}
	c.event(topic, protocol.EventPresenceState)
	g.setClosed(false)
	e.pg.Exec(t, `select realtime.send('{"n":32}'::jsonb, 'ev', 'replay-room', true)`)
	c.await("the live row", func(m protocol.Message) bool {
		return isBroadcast(topic, "ev")(m) && m.Broadcast != nil && strings.Contains(string(m.Broadcast.Payload), `"n": 32`)
	})
	c.mu.Lock()
	frames := append([]protocol.Message(nil), c.frames...)
	c.mu.Unlock()
	var got []string
	seenState := false
	for _, f := range frames {
		switch {
		case f.Event == protocol.EventPresenceState:
			seenState = true
		case f.Event == protocol.EventBroadcast && f.Broadcast == nil:
			var p struct {
				Payload struct{ N int }
				Event   string
				Type    string
				Meta    struct {
					Replayed bool
					ID       string
				}
			}
			if err := json.Unmarshal(f.Payload, &p); err != nil || !p.Meta.Replayed || p.Meta.ID == "" || p.Type != "broadcast" || p.Event != "ev" {
				t.Errorf("replayed frame %s (%v)", f.Payload, err)
			}
			if seenState || f.JoinRef != joinRef {
				t.Errorf("replayed frame after presence_state (%v) or with join_ref %q, want %q", seenState, f.JoinRef, joinRef)
			}
			got = append(got, fmt.Sprint(p.Payload.N))
		case f.Event == protocol.EventBroadcast:
			got = append(got, "live:"+string(f.Broadcast.Payload))
		}
	}
	var want []string
	for n := 7; n <= 31; n++ { // the newest 25 of 1..31
		want = append(want, fmt.Sprint(n))
	}
	want = append(want, `live:{"n": 32, "id": "`+e.rowWhere(t, "payload->>'n' = '32'")+`"}`)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("broadcasts received:\n got %v\nwant %v", got, want)
	}
}

// Replay refusals, as Supabase words them.
func TestReplayRefusals(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, presenceOnly, nil)
	a, b := e.user(t, alice), e.user(t, bob)
	for _, tc := range []struct {
		c      *wsClient
		config string
		reason string
	}{
		{a, `{"broadcast":{"replay":{"since":0}}}`, "UnableToReplayMessages: Replay is not allowed for public channels"},
		{a, `{"private":true,"broadcast":{"replay":{"since":"0"}}}`, "UnableToReplayMessages: Replay params are not valid"},
		{a, `{"private":true,"broadcast":{"replay":{"limit":5}}}`, "UnableToReplayMessages: Replay params are not valid"},
		{a, `{"private":true,"broadcast":{"replay":{"since":0,"limit":1.5}}}`, "UnableToReplayMessages: Replay params are not valid"},
		{b, `{"private":true,"presence":{"enabled":true},"broadcast":{"replay":{"since":0}}}`,
			"Unauthorized: You do not have permissions to read from this Channel topic: r"},
	} {
		_, r := tc.c.join("realtime:r", tc.config)
		wantPayload(t, tc.config, r, `{"status":"error","response":{"reason":"`+tc.reason+`"}}`)
	}
	// A limit of 0 is clamped to 1.
	e.pg.Exec(t, `select realtime.send('{"a":1}'::jsonb, 'ev', 'r', true); select realtime.send('{"a":2}'::jsonb, 'ev', 'r', true)`)
	if _, r := a.join("realtime:r", `{"private":true,"broadcast":{"replay":{"since":0,"limit":0}}}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("join: %s", r)
	}
	a.sync()
	if n := a.count("realtime:r", protocol.EventBroadcast); n != 1 {
		t.Errorf("limit 0 replayed %d rows, want 1\n%s", n, a.dump())
	}
}

// config.broadcast.replication_ready: "Replication connection
// established" once the stream is ready for the channel; a row sent
// right after it arrives.
func TestReplicationReady(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, "", nil)
	const topic = "realtime:ready"
	c := dialWS(t, e.srv, e.srv.AnonKey())
	if _, r := c.join(topic, `{"broadcast":{"replication_ready":true}}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("join: %s", r)
	}
	m := c.event(topic, protocol.EventSystem)
	wantPayload(t, "system", string(m.Payload),
		`{"extension":"system","status":"ok","message":"Replication connection established","channel":"ready"}`)
	e.pg.Exec(t, `select realtime.send('{}'::jsonb, 'after', 'ready', false)`)
	c.await("the row after readiness", isBroadcast(topic, "after"))
}

// neverReady is a stream whose readiness never comes.
type neverReady struct{ server.DatabaseBroadcasts }

func (neverReady) Ready(func()) func() { return func() {} }

// Without readiness in 60 s the channel is shut down, as Supabase's.
func TestReplicationReadyTimeout(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	e := newBFDEnv(t, "", func(src server.DatabaseBroadcasts) server.DatabaseBroadcasts { return neverReady{src} },
		servertest.WithClock(clock))
	const topic = "realtime:late"
	c := dialWS(t, e.srv, e.srv.AnonKey())
	if _, r := c.join(topic, `{"broadcast":{"replication_ready":true}}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("join: %s", r)
	}
	c.sync() // the join has been handled whole: its timer is armed
	clock.Advance(59 * time.Second)
	c.sync()
	if n := c.count(topic, protocol.EventSystem); n != 0 {
		t.Fatalf("system message before 60 s\n%s", c.dump())
	}
	clock.Advance(time.Second)
	m := c.event(topic, protocol.EventSystem)
	wantPayload(t, "shutdown", string(m.Payload),
		`{"extension":"system","status":"error","message":"Replication connection was not established in time","channel":"late"}`)
	c.event(topic, protocol.EventClose)
}

// A realtime.send the caller's INSERT policies refuse is a warning, as in
// Supabase: WarnSendingBroadcastMessage reaches the calling session, its
// transaction goes on, and the message is lost (nobody receives it).
func TestSendRefusedIsAWarning(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, readAll, nil)
	const topic = "realtime:warned"
	c := e.user(t, alice)
	if _, r := c.join(topic, `{"private":true}`); !strings.Contains(r, `"ok"`) {
		t.Fatalf("join: %s", r)
	}
	cfg, err := pgx.ParseConfig(e.pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Severity+" "+n.Message)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// authenticated has no INSERT policy on realtime.messages.
	if _, err := conn.Exec(ctx, `begin; set local role authenticated;
		select realtime.send('{}'::jsonb, 'lost', 'warned', true); commit`); err != nil {
		t.Fatalf("realtime.send failed instead of warning: %v", err)
	}
	e.pg.Exec(t, `select realtime.send('{}'::jsonb, 'kept', 'warned', true)`)
	c.await("the row sent by the owner", isBroadcast(topic, "kept"))
	mu.Lock()
	defer mu.Unlock()
	if len(notices) != 1 || !strings.HasPrefix(notices[0], "WARNING WarnSendingBroadcastMessage: new row violates row-level security policy") {
		t.Errorf("notices %q", notices)
	}
	if n := c.count(topic, protocol.EventBroadcast); n != 1 {
		t.Errorf("%d broadcasts, want only the kept one\n%s", n, c.dump())
	}
}
