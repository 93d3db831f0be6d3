package pgcdc

import (
	"context"
	"strings"
	"testing"
	"time"
)

// rlsSchema is a table whose policy lets a user see their own rows, as
// Supabase projects write it (auth.uid() reads request.jwt.claims), and
// raises for the subject "boom".
const rlsSchema = `
create schema if not exists auth;
create or replace function auth.uid() returns text language sql stable as
	$$ select nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub' $$;
grant usage on schema auth to anon, authenticated;
create or replace function public.explode() returns bool language plpgsql stable as $$
begin
	if auth.uid() = 'boom' then
		raise exception 'policy failure for %', auth.uid();
	end if;
	return true;
end $$;
create table notes(id int8 primary key, owner text not null, body text);
alter table notes enable row level security;
create policy own on notes for select to authenticated using (public.explode() and (owner = auth.uid() or owner = 'everyone'));
grant select on notes to authenticated;
revoke select on notes from anon;
`

// Row-level security hides a row from one user and shows it to another;
// a policy that raises for one subscriber leaves the others served and is
// reported to that subscriber.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, rlsSchema)
	f := openFeed(t, db, func(c *Config) { c.ErrorInterval = time.Hour })
	db.Exec(t, `alter publication supabase_realtime add table notes`)
	alice, bob, boom, anon := newSink(), newSink(), newSink(), newSink()
	b := Binding{ID: 3, Event: "*", Table: "notes"}
	subscribe(t, f, alice, "authenticated", `{"sub":"alice","role":"authenticated"}`, b)
	subscribe(t, f, bob, "authenticated", `{"sub":"bob","role":"authenticated"}`, b)
	subscribe(t, f, boom, "authenticated", `{"sub":"boom","role":"authenticated"}`, b)
	subscribe(t, f, anon, "anon", "", b)

	db.Exec(t, `insert into notes values (1, 'alice', 'for alice')`)
	db.Exec(t, `insert into notes values (2, 'bob', 'for bob')`)
	db.Exec(t, `update notes set body = 'still alice' where id = 1`)
	db.Exec(t, `insert into notes values (3, 'everyone', 'for all')`)

	ag := alice.deliveries(t, 3)
	bg := bob.deliveries(t, 2)
	for i, want := range []string{`{"id":1,"owner":"alice","body":"for alice"}`, `{"id":1,"owner":"alice","body":"still alice"}`, `{"id":3,"owner":"everyone","body":"for all"}`} {
		wantJSON(t, "alice record", dataOf(t, ag[i])["record"], want)
	}
	for i, want := range []string{`{"id":2,"owner":"bob","body":"for bob"}`, `{"id":3,"owner":"everyone","body":"for all"}`} {
		wantJSON(t, "bob record", dataOf(t, bg[i])["record"], want)
	}
	// The raising policy: reported once (ErrorInterval), nothing delivered.
	errs := boom.status(t, StatusError, 1)
	if !strings.Contains(errs[0].Message, "policy failure for boom") || !strings.Contains(errs[0].Message, "others are unaffected") {
		t.Errorf("boom's report: %q", errs[0].Message)
	}
	// anon has no SELECT on notes: Error 401 with no record, as Supabase.
	an := anon.deliveries(t, 4)
	wantJSON(t, "anon data", dataOf(t, an[0]), `{"schema":"public","table":"notes","type":"INSERT","errors":["Error 401: Unauthorized"]}`)

	// A delete on an RLS table reaches every matching subscriber with the
	// primary key only (the row is gone and cannot be checked).
	db.Exec(t, `alter table notes replica identity full`)
	db.Exec(t, `delete from notes where id = 2`)
	ag = alice.deliveries(t, 4)
	wantJSON(t, "alice sees the delete key", dataOf(t, ag[3])["old_record"], `{"id":2}`)
	bg = bob.deliveries(t, 3)
	wantJSON(t, "bob sees the delete key", dataOf(t, bg[2])["old_record"], `{"id":2}`)

	// boom's copy of the delete may come after alice's and bob's: wait for
	// it; the changes before it, had any been delivered, came first.
	if got := boom.deliveries(t, 1); len(got) != 1 || got[0].Type != "DELETE" {
		t.Errorf("boom got %d deliveries, want only the delete: %s", len(got), boom.dump())
	}
	if st := f.Stats(); st.RLSErrors == 0 || st.RLSChecks == 0 {
		t.Errorf("stats %+v", st)
	}
	alice.mu.Lock()
	defer alice.mu.Unlock()
	for _, s := range alice.statuses {
		if s.Kind == StatusError {
			t.Errorf("alice got an error status: %s", s.Message)
		}
	}
}

// Only the columns the role may select are sent; a table without primary
// key gives Error 400, as Supabase.
func TestColumnPrivilegesAndNoPrimaryKey(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table people(id int8 primary key, name text, secret text);
		revoke select on people from anon; grant select (id, name) on people to anon;
		create table nopk(a int, b text); alter table nopk replica identity full; grant select on nopk to anon`)
	f := openFeed(t, db)
	db.Exec(t, `alter publication supabase_realtime add table people, nopk`)
	k := newSink()
	subscribe(t, f, k, "anon", "", Binding{ID: 1, Event: "*", Table: "people"}, Binding{ID: 2, Event: "*", Table: "nopk"})
	db.Exec(t, `insert into people values (1, 'ann', 's3cret'); insert into nopk values (1, 'x')`)
	got := k.deliveries(t, 2)
	m := dataOf(t, got[0])
	wantJSON(t, "columns", m["columns"], `[{"name":"id","type":"int8"},{"name":"name","type":"text"}]`)
	wantJSON(t, "record", m["record"], `{"id":1,"name":"ann"}`)
	if strings.Contains(string(got[0].Data), "s3cret") {
		t.Errorf("a column the role may not select was sent: %s", got[0].Data)
	}
	wantJSON(t, "no primary key", dataOf(t, got[1]), `{"schema":"public","table":"nopk","type":"INSERT","errors":["Error 400: Bad Request, no primary key"]}`)
}

// A change above MaxRecordBytes keeps its short values and says 413.
func TestPayloadTooLarge(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table big(id int8 primary key, small text, large text)`)
	f := openFeed(t, db, func(c *Config) { c.MaxRecordBytes = 300 })
	db.Exec(t, `alter publication supabase_realtime add table big`)
	k := newSink()
	subscribe(t, f, k, "anon", "", Binding{ID: 1, Event: "INSERT", Table: "big"})
	db.Exec(t, `insert into big values (1, 'hi', repeat('x', 500))`)
	m := dataOf(t, k.deliveries(t, 1)[0])
	wantJSON(t, "record", m["record"], `{"id":1,"small":"hi"}`)
	wantJSON(t, "errors", m["errors"], `["Error 413: Payload Too Large"]`)
}

// Readiness is proven by the stream; after the walsender is killed the
// subscription is told, the feed reconnects, and it is ready again and
// receives new changes.
func TestReadinessAndReconnect(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table r(id int8 primary key)`)
	f := openFeed(t, db, func(c *Config) {
		c.ReconnectDelay = func(int) time.Duration { return 50 * time.Millisecond }
	})
	db.Exec(t, `alter publication supabase_realtime add table r`)
	k := newSink()
	s := subscribe(t, f, k, "anon", "", Binding{ID: 1, Event: "INSERT", Table: "r"})
	if !s.Ready() {
		t.Fatal("not Ready after StatusReady")
	}
	db.Exec(t, `insert into r values (1)`)
	k.deliveries(t, 1)

	db.Exec(t, `select pg_terminate_backend(pid) from pg_stat_replication where application_name = 'rtm'
		and pid in (select active_pid from pg_replication_slots where slot_name = $1)`, f.slotName())
	k.status(t, StatusDown, 1)
	k.until(t, "ready again", func() bool {
		n := 0
		for _, st := range k.statuses {
			if st.Kind == StatusReady {
				n++
			}
		}
		return n >= 2
	})
	db.Exec(t, `insert into r values (2)`)
	got := k.deliveries(t, 2)
	wantJSON(t, "after reconnect", dataOf(t, got[1])["record"], `{"id":2}`)
	if f.Stats().Reconnects < 1 {
		t.Errorf("stats %+v", f.Stats())
	}
	// A closed subscription receives nothing more.
	s.Close()
	db.Exec(t, `insert into r values (3)`)
	k2 := newSink()
	subscribe(t, f, k2, "anon", "", Binding{ID: 1, Event: "INSERT", Table: "r"})
	db.Exec(t, `insert into r values (4)`)
	k2.deliveries(t, 1)
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.got) != 2 {
		t.Errorf("closed subscription got %d deliveries: %s", len(k.got), k.dump())
	}
}

// A named slot survives the feed and the next feed resumes from it;
// DropSlot removes it.
func TestNamedSlotResumes(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table n(id int8 primary key)`)
	slot := "rtm_test_slot_" + db.Name
	ctx := context.Background()
	f1, err := Open(ctx, Config{URL: db.URL, Slot: slot, StatusInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `alter publication supabase_realtime add table n`)
	k := newSink()
	subscribe(t, f1, k, "anon", "", Binding{ID: 1, Event: "INSERT", Table: "n"})
	var before string
	db.QueryRow(t, `select pg_current_wal_lsn()::text`, nil, &before)
	db.Exec(t, `insert into n values (1)`)
	k.deliveries(t, 1)
	// Wait until the position is acknowledged, then stop.
	confirmed := false
	for deadline := time.Now().Add(wait); !confirmed; time.Sleep(20 * time.Millisecond) {
		db.QueryRow(t, `select coalesce(confirmed_flush_lsn > $2::pg_lsn, false) from pg_replication_slots where slot_name = $1`,
			[]any{slot, before}, &confirmed)
		if time.Now().After(deadline) {
			t.Fatal("the slot's position was never acknowledged")
		}
	}
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `insert into n values (2)`) // while no feed runs
	f2 := openFeed(t, db, func(c *Config) { c.Slot = slot; c.DropSlot = true })
	// The second feed decodes the change made while it was away, and
	// only it (the first insert was acknowledged).
	for deadline := time.Now().Add(wait); f2.Stats().Changes < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the change made meanwhile was not resumed: %+v", f2.Stats())
		}
	}
	if err := f2.Close(); err != nil {
		t.Fatal(err)
	}
	if n := f2.Stats().Changes; n != 1 {
		t.Errorf("resumed %d changes, want 1", n)
	}
	var n int
	db.QueryRow(t, `select count(*) from pg_replication_slots where slot_name = $1`, []any{slot}, &n)
	if n != 0 {
		t.Errorf("DropSlot left the slot")
	}
}
