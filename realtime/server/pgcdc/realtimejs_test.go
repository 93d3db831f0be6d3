package pgcdc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// jsEnv is a database, a feed, the embedded server reading it and a
// realtime-js driver.
type jsEnv struct {
	t  *testing.T
	db interface {
		Exec(testing.TB, string, ...any)
	}
	f   *Feed
	srv *servertest.Server
	d   *jsharness.Driver
}

func newJSEnv(t *testing.T, schema string, tables string) *jsEnv {
	t.Helper()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, schema)
	f := openFeed(t, db)
	db.Exec(t, "alter publication supabase_realtime add table "+tables)
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.Changes = f.Source() }))
	d := jsharness.Start(t)
	t.Cleanup(func() {
		for _, e := range d.Events(jsharness.Match{Kind: jsharness.KindUncaught}) {
			t.Errorf("uncaught exception in the driver: %s", e.Raw)
		}
	})
	return &jsEnv{t: t, db: db, f: f, srv: srv, d: d}
}

// channel creates client name (with token, "" for the anon key) and a
// channel on topic with the given postgres_changes bindings and a system
// binding, subscribes, and waits for SUBSCRIBED and then the
// "Subscribed to PostgreSQL" system message.
func (e *jsEnv) channel(name, token, topic string, bindings ...map[string]any) *jsharness.Channel {
	e.t.Helper()
	opts := jsharness.ClientOptions{APIKey: e.srv.AnonKey(), HeartbeatIntervalMs: 2000}
	if token != "" {
		opts.APIKey = token // the join's token from the start
	}
	c := e.d.NewClient(e.t, name, jsharness.Endpoint(e.srv.URL), opts)
	ch := c.Channel(e.t, name, topic, nil)
	for _, b := range bindings {
		ch.On(e.t, "postgres_changes", b)
	}
	ch.On(e.t, "system", nil)
	mark := e.d.Mark()
	ch.Subscribe(e.t, 0)
	ch.AwaitStatus(e.t, wait, mark, "SUBSCRIBED")
	sys := ch.Await(e.t, wait, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
	wantJSON(e.t, "system message", json.RawMessage(sys.Payload),
		`{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"`+topic+`"}`)
	return ch
}

// changes waits for n postgres_changes callbacks of ch after mark.
func (e *jsEnv) changes(ch *jsharness.Channel, after, n int) []jsharness.Event {
	e.t.Helper()
	return e.d.AwaitN(e.t, wait, jsharness.Match{Kind: jsharness.KindPostgresChanges, Client: ch.Client.Name, Channel: ch.Name, After: after}, n)
}

// callback is the payload realtime-js gives a postgres_changes callback.
type callback struct {
	Schema          string          `json:"schema"`
	Table           string          `json:"table"`
	CommitTimestamp string          `json:"commit_timestamp"`
	EventType       string          `json:"eventType"`
	New             json.RawMessage `json:"new"`
	Old             json.RawMessage `json:"old"`
	Errors          json.RawMessage `json:"errors"`
}

func decodeCallback(t *testing.T, e jsharness.Event) callback {
	t.Helper()
	var cb callback
	if err := json.Unmarshal(e.Payload, &cb); err != nil {
		t.Fatalf("callback %s: %v", e.Payload, err)
	}
	return cb
}

// realtime-js receives an INSERT, an UPDATE with old values and a DELETE
// made with SQL, through the bindings whose filters match.
func TestRealtimeJSInsertUpdateDelete(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t, `create table todos(id int8 primary key, title text, done bool, tags text[], due timestamptz);
		alter table todos replica identity full`, "todos")
	one := map[string]any{"event": "*", "schema": "public", "table": "todos", "filter": "id=eq.1"}
	inserts := map[string]any{"event": "INSERT", "schema": "public", "table": "todos"}
	ch := e.channel("a", "", "room1", one, inserts)

	mark := e.d.Mark()
	e.db.Exec(t, `insert into todos values (2, 'other', false, '{x}', null)`) // the INSERT binding only
	e.db.Exec(t, `insert into todos values (1, 'write', false, '{a,b}', '2026-01-02 03:04:05+00')`)
	e.db.Exec(t, `update todos set done = true, title = 'written' where id = 1`)
	e.db.Exec(t, `update todos set done = true where id = 2`) // no binding
	e.db.Exec(t, `delete from todos where id = 1`)
	got := e.changes(ch, mark, 5)

	type want struct {
		filter    string
		eventType string
		new, old  string
	}
	wants := []want{
		{"", "INSERT", `{"id":2,"title":"other","done":false,"tags":["x"],"due":null}`, `{}`},
		{"id=eq.1", "INSERT", `{"id":1,"title":"write","done":false,"tags":["a","b"],"due":"2026-01-02T03:04:05+00:00"}`, `{}`},
		{"", "INSERT", `{"id":1,"title":"write","done":false,"tags":["a","b"],"due":"2026-01-02T03:04:05+00:00"}`, `{}`},
		{"id=eq.1", "UPDATE", `{"id":1,"title":"written","done":true,"tags":["a","b"],"due":"2026-01-02T03:04:05+00:00"}`,
			`{"id":1,"title":"write","done":false,"tags":["a","b"],"due":"2026-01-02T03:04:05+00:00"}`},
		{"id=eq.1", "DELETE", `{}`, `{"id":1,"title":"written","done":true,"tags":["a","b"],"due":"2026-01-02T03:04:05+00:00"}`},
	}
	// realtime-js calls the bindings of one change in registration order;
	// sort each change's callbacks by that order for comparison.
	for i, w := range wants {
		ev := got[i]
		var f map[string]any
		json.Unmarshal(ev.Filter, &f)
		filter, _ := f["filter"].(string)
		cb := decodeCallback(t, ev)
		if cb.EventType != w.eventType || cb.Schema != "public" || cb.Table != "todos" || !commitTS.MatchString(cb.CommitTimestamp) {
			t.Errorf("callback %d: %s", i, ev.Payload)
		}
		if (filter == "") != (w.filter == "") {
			t.Errorf("callback %d (%s) fired binding %q, want %q", i, cb.EventType, filter, w.filter)
		}
		wantJSON(t, "new of callback "+w.eventType, cb.New, w.new)
		wantJSON(t, "old of callback "+w.eventType, cb.Old, w.old)
		if string(cb.Errors) != "null" {
			t.Errorf("callback %d errors %s", i, cb.Errors)
		}
	}
	// Nothing else arrived: a later insert is the next callback.
	mark2 := e.d.Mark()
	e.db.Exec(t, `insert into todos values (3, 'end', false, '{}', null)`)
	last := e.changes(ch, mark2, 1)
	if n := len(e.d.Events(jsharness.Match{Kind: jsharness.KindPostgresChanges, After: mark})); n != 6 {
		t.Errorf("%d callbacks, want 6 (5 + the sentinel)\n%s", n, e.d.Dump(40))
	}
	wantJSON(t, "sentinel", decodeCallback(t, last[0]).New, `{"id":3,"title":"end","done":false,"tags":[],"due":null}`)
}

// Row-level security hides a row from one user and shows it to another; a
// policy that raises for one subscriber leaves the others served and is
// reported to that subscriber as a system error.
func TestRealtimeJSRowLevelSecurity(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t, rlsSchema, "notes")
	b := map[string]any{"event": "INSERT", "schema": "public", "table": "notes"}
	alice := e.channel("alice", e.srv.UserToken(t, "alice", time.Hour, nil), "notes", b)
	bob := e.channel("bob", e.srv.UserToken(t, "bob", time.Hour, nil), "notes", b)
	boom := e.channel("boom", e.srv.UserToken(t, "boom", time.Hour, nil), "notes", b)

	mark := e.d.Mark()
	e.db.Exec(t, `insert into notes values (1, 'alice', 'for alice')`)
	e.db.Exec(t, `insert into notes values (2, 'bob', 'for bob')`)
	e.db.Exec(t, `insert into notes values (3, 'everyone', 'for all')`)
	ag := e.changes(alice, mark, 2)
	bg := e.changes(bob, mark, 2)
	wantJSON(t, "alice 1", decodeCallback(t, ag[0]).New, `{"id":1,"owner":"alice","body":"for alice"}`)
	wantJSON(t, "alice 2", decodeCallback(t, ag[1]).New, `{"id":3,"owner":"everyone","body":"for all"}`)
	wantJSON(t, "bob 1", decodeCallback(t, bg[0]).New, `{"id":2,"owner":"bob","body":"for bob"}`)
	wantJSON(t, "bob 2", decodeCallback(t, bg[1]).New, `{"id":3,"owner":"everyone","body":"for all"}`)

	sys := boom.Await(t, wait, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
	var p struct{ Extension, Status, Message, Channel string }
	json.Unmarshal(sys.Payload, &p)
	if p.Extension != "postgres_changes" || p.Status != "error" || !strings.Contains(p.Message, "policy failure for boom") {
		t.Errorf("boom's system message %s", sys.Payload)
	}
	if n := len(e.d.Events(jsharness.Match{Kind: jsharness.KindPostgresChanges, Client: "boom", After: mark})); n != 0 {
		t.Errorf("boom got %d changes", n)
	}
	// Alice and Bob got nothing more than their rows: a fence insert
	// visible to all arrives next.
	mark2 := e.d.Mark()
	e.db.Exec(t, `insert into notes values (4, 'everyone', 'fence')`)
	e.changes(alice, mark2, 1)
	e.changes(bob, mark2, 1)
	for _, who := range []string{"alice", "bob"} {
		if n := len(e.d.Events(jsharness.Match{Kind: jsharness.KindPostgresChanges, Client: who, After: mark})); n != 3 {
			t.Errorf("%s got %d changes, want 3", who, n)
		}
	}
}

// Errors the user can act on reach realtime-js as system messages.
func TestRealtimeJSInvalidBindings(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t, `create table a(id int8 primary key); create table hidden(id int8 primary key)`, "a")
	for _, tt := range []struct {
		binding map[string]any
		want    string
	}{
		{map[string]any{"event": "*", "schema": "public", "table": "a", "filter": "nope=eq.1"}, `column \"nope\" does not exist`},
		{map[string]any{"event": "*", "schema": "public", "table": "a", "filter": "id=like.1"}, `operator \"like\" is not supported`},
		{map[string]any{"event": "*", "schema": "public", "table": "hidden"}, `ALTER PUBLICATION \"supabase_realtime\" ADD TABLE \"public\".\"hidden\"`},
	} {
		name := "c" + string(rune('0'+len(e.d.Events(jsharness.Match{Kind: jsharness.KindSystem}))))
		c := e.d.NewClient(t, name, jsharness.Endpoint(e.srv.URL), jsharness.ClientOptions{APIKey: e.srv.AnonKey(), HeartbeatIntervalMs: 2000})
		ch := c.Channel(t, "x", "bad", nil).On(t, "postgres_changes", tt.binding).On(t, "system", nil)
		mark := e.d.Mark()
		ch.Subscribe(t, 0)
		ch.AwaitStatus(t, wait, mark, "SUBSCRIBED")
		sys := ch.Await(t, wait, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
		if !strings.Contains(string(sys.Payload), `"status":"error"`) || !strings.Contains(string(sys.Payload), tt.want) ||
			!strings.Contains(string(sys.Payload), "Unable to subscribe to changes with given parameters") {
			t.Errorf("system message %s, want an error with %s", sys.Payload, tt.want)
		}
		c.Disconnect(t, 0, "")
	}
}

// A new token with another subject re-creates the subscription with the
// new claims: the channel then sees the new user's rows.
func TestRealtimeJSTokenChangeResubscribes(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t, rlsSchema, "notes")
	ch := e.channel("alice", e.srv.UserToken(t, "alice", time.Hour, nil), "notes",
		map[string]any{"event": "INSERT", "schema": "public", "table": "notes"})
	mark := e.d.Mark()
	ch.Client.SetAuth(t, e.srv.UserToken(t, "bob", time.Hour, nil))
	sys := ch.Await(t, wait, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
	wantJSON(t, "system message after the new token", json.RawMessage(sys.Payload),
		`{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"notes"}`)
	mark = e.d.Mark()
	e.db.Exec(t, `insert into notes values (1, 'alice', 'for alice')`)
	e.db.Exec(t, `insert into notes values (2, 'bob', 'for bob')`)
	got := e.changes(ch, mark, 1)
	wantJSON(t, "the channel now sees bob's row", decodeCallback(t, got[0]).New, `{"id":2,"owner":"bob","body":"for bob"}`)
	mark2 := e.d.Mark()
	e.db.Exec(t, `insert into notes values (3, 'everyone', 'fence')`)
	e.changes(ch, mark2, 1)
	if n := len(e.d.Events(jsharness.Match{Kind: jsharness.KindPostgresChanges, After: mark})); n != 2 {
		t.Errorf("%d changes, want bob's row and the fence", n)
	}
}

// Without a database (--db auto on a machine without PostgreSQL), the
// subscription channel says why.
func TestRealtimeJSNoDatabase(t *testing.T) {
	t.Parallel()
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.Changes = Unavailable("No database: rtm could not start its demo PostgreSQL (apt-get install postgresql)")
	}))
	d := jsharness.Start(t)
	c := d.NewClient(t, "a", jsharness.Endpoint(srv.URL), jsharness.ClientOptions{APIKey: srv.AnonKey(), HeartbeatIntervalMs: 2000})
	ch := c.Channel(t, "p", "subscription:project:456", nil).
		On(t, "postgres_changes", map[string]any{"event": "*", "schema": "public", "table": "project", "filter": "id=eq.456"}).
		On(t, "system", nil)
	mark := d.Mark()
	ch.Subscribe(t, 0)
	ch.AwaitStatus(t, wait, mark, "SUBSCRIBED")
	sys := ch.Await(t, wait, jsharness.Match{Kind: jsharness.KindSystem, After: mark})
	wantJSON(t, "system message", json.RawMessage(sys.Payload),
		`{"extension":"postgres_changes","status":"error","message":"No database: rtm could not start its demo PostgreSQL (apt-get install postgresql)","channel":"subscription:project:456"}`)
}
