package pgrealtime

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/internal/pgtest"
)

var pg = pgtest.New()

func TestMain(m *testing.M) { pgtest.Main(m, pg) }

// wait bounds every wait of the tests (a deadline, not a sleep).
const wait = 20 * time.Second

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for the maintenance goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testDB is an opened DB with a fake clock and ticker.
type testDB struct {
	*DB
	db    *pgtest.DB
	clock *fakeClock
	tick  chan time.Time
	log   *syncBuffer
}

var day0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func open(t testing.TB, db *pgtest.DB) *testDB {
	t.Helper()
	td := &testDB{db: db, clock: &fakeClock{now: day0}, tick: make(chan time.Time), log: &syncBuffer{}}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d, err := Open(ctx, Config{URL: db.URL, Now: td.clock.Now,
		Logger: slog.New(slog.NewTextHandler(td.log, nil)),
		Ticker: func(time.Duration) (<-chan time.Time, func()) { return td.tick, func() {} }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	td.DB = d
	return td
}

// strings returns the one text column of query's rows.
func queryStrings(t *testing.T, db *pgtest.DB, query string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rows, err := db.Conn(t).Query(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

func partitions(t *testing.T, db *pgtest.DB) []string {
	t.Helper()
	return queryStrings(t, db, `select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
		where i.inhparent = 'realtime.messages'::regclass order by 1`)
}

func bootstrap(t *testing.T, db *pgtest.DB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	created, err := Bootstrap(ctx, db.Conn(t))
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return created
}

var allObjects = []string{
	"role anon", "role authenticated", "role service_role", "schema realtime", "table realtime.messages",
	"function realtime.topic()", "function realtime.send(jsonb,text,text,boolean)",
	"function realtime.send_binary(bytea,text,text,boolean)",
	"function realtime.broadcast_changes(text,text,text,text,text,record,record,text)",
	"schema auth", "function auth.uid()", "function auth.role()", "function auth.jwt()",
}

// withoutRoles drops the roles from a list of created objects: roles are
// cluster-wide, so whether this database's bootstrap made them depends
// on the tests before.
func withoutRoles(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return strings.HasPrefix(n, "role ") })
}

// A fresh database gets everything, with Supabase's shape and grants;
// the partitions span yesterday to three days ahead; a second run
// creates nothing; realtime.send works.
func TestBootstrapFreshDatabase(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	td := open(t, db)
	if got, want := withoutRoles(objectNames(td.log.String())), withoutRoles(allObjects); !slices.Equal(got, want) {
		t.Errorf("created %q, want %q\nlog:\n%s", got, want, td.log)
	}
	if got := bootstrap(t, db); len(got) != 0 {
		t.Errorf("a second bootstrap created %q", got)
	}
	want := []string{"messages_2026_12_06", "messages_2026_12_07", "messages_2026_12_08", "messages_2026_12_09", "messages_2026_12_10"}
	if got := partitions(t, db); !slices.Equal(got, want) {
		t.Errorf("partitions %q, want %q", got, want)
	}
	checks := map[string]string{
		"partitioned, RLS on":     `select relkind = 'p' and relrowsecurity from pg_class where oid = 'realtime.messages'::regclass`,
		"service_role bypassrls":  `select rolbypassrls and not rolcanlogin from pg_roles where rolname = 'service_role'`,
		"anon may insert":         `select has_table_privilege('anon', 'realtime.messages', 'INSERT,SELECT,UPDATE')`,
		"authenticated may use":   `select has_schema_privilege('authenticated', 'realtime', 'USAGE')`,
		"no delete grant":         `select not has_table_privilege('authenticated', 'realtime.messages', 'DELETE')`,
		"exclusivity check":       `select exists (select 1 from pg_constraint where conname = 'messages_payload_exclusive')`,
		"replay index":            `select to_regclass('realtime.messages_inserted_at_topic_index') is not null`,
		"topic reads the setting": `select set_config('realtime.topic', 'room-1', false) = 'room-1' and realtime.topic() = 'room-1'`,
	}
	for name, q := range checks {
		var ok bool
		db.QueryRow(t, q, nil, &ok)
		if !ok {
			t.Errorf("%s: %s is false", name, q)
		}
	}
	db.Exec(t, `select realtime.send('{"a":1}'::jsonb, 'ev', 'room-1', false)`)
	db.Exec(t, `select realtime.send_binary('\x0102'::bytea, 'bin', 'room-1')`)
	var n int
	var ok bool
	db.QueryRow(t, `select count(*), bool_and((payload->>'id')::uuid = id and not private) filter (where event = 'ev')
		from realtime.messages`, nil, &n, &ok)
	if n != 2 || !ok {
		t.Errorf("after send and send_binary: %d rows (want 2), send's payload id = row id and not private: %v", n, ok)
	}
}

// objectNames reads the created objects back from the log line.
func objectNames(log string) []string {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "Created Supabase's realtime schema objects") {
			continue
		}
		_, list, _ := strings.Cut(line, "created=")
		list = strings.Trim(list, `"[]`)
		// slog's text handler prints a []string as [a b c]; names hold
		// spaces, so split before each kind.
		var out []string
		for _, f := range strings.Fields(list) {
			switch f {
			case "role", "schema", "table", "function":
				out = append(out, f)
			default:
				out[len(out)-1] += " " + f
			}
		}
		return out
	}
	return nil
}

// A user's own realtime.messages, policy and functions are left as they
// are; only what is missing is created.
func TestBootstrapLeavesUserObjects(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	db.Exec(t, `create schema realtime;
		create table realtime.messages (topic text, extension text, inserted_at timestamp not null default now(), id uuid)
			partition by range (inserted_at);
		alter table realtime.messages enable row level security;
		create policy mine on realtime.messages for select using (true);
		create function realtime.topic() returns text language sql stable as $$ select 'mine'::text $$;
		create schema auth;
		create function auth.uid() returns text language sql stable as $$ select 'me'::text $$`)
	created := withoutRoles(bootstrap(t, db))
	want := []string{"function realtime.send(jsonb,text,text,boolean)", "function realtime.send_binary(bytea,text,text,boolean)",
		"function realtime.broadcast_changes(text,text,text,text,text,record,record,text)", "function auth.role()", "function auth.jwt()"}
	if !slices.Equal(created, want) {
		t.Errorf("created %q, want %q", created, want)
	}
	var topic, uid, policy string
	var cols int
	db.QueryRow(t, `select realtime.topic(), auth.uid()::text,
		(select string_agg(policyname, ',') from pg_policies where schemaname = 'realtime'),
		(select count(*) from information_schema.columns where table_schema = 'realtime' and table_name = 'messages')`,
		nil, &topic, &uid, &policy, &cols)
	if topic != "mine" || uid != "me" || policy != "mine" || cols != 4 {
		t.Errorf("the user's objects changed: topic() = %q, uid() = %q, policies %q, %d columns", topic, uid, policy, cols)
	}
}

// Concurrent starts on one fresh database create each object once.
func TestBootstrapConcurrent(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	var wg sync.WaitGroup
	results := make([][]string, 3)
	errs := make([]error, 3)
	for i := range results {
		conn := db.Conn(t)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			results[i], errs[i] = Bootstrap(ctx, conn)
		})
	}
	wg.Wait()
	var all []string
	for i, err := range errs {
		if err != nil {
			t.Fatalf("bootstrap %d: %v", i, err)
		}
		all = append(all, withoutRoles(results[i])...)
	}
	slices.Sort(all)
	want := withoutRoles(allObjects)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("created together %q, want each of %q once", all, want)
	}
}

// The partitions roll with the clock: a tick days later creates the new
// days and drops those older than 72 hours; a partition of another name
// stays.
func TestPartitionsRoll(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	td := open(t, db)
	db.Exec(t, `create table realtime.messages_archive partition of realtime.messages for values from ('2000-01-01') to ('2000-01-02')`)
	td.clock.Set(day0.AddDate(0, 0, 5)) // 2026-12-12 12:00: cutoff (now − 72 h)::date = 2026-12-09
	td.tick <- td.clock.Now()
	want := []string{"messages_2026_12_09", "messages_2026_12_10", "messages_2026_12_11", "messages_2026_12_12",
		"messages_2026_12_13", "messages_2026_12_14", "messages_2026_12_15", "messages_archive"}
	deadline := time.Now().Add(wait)
	for {
		got := partitions(t, db)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions %q, want %q\nlog:\n%s", got, want, td.log)
		}
		time.Sleep(20 * time.Millisecond) // polling the database
	}
	if l := td.log.String(); !strings.Contains(l, "Dropped realtime.messages partitions older than 72 hours") ||
		!strings.Contains(l, "realtime.messages_2026_12_06") {
		t.Errorf("the drop was not logged:\n%s", l)
	}
}
