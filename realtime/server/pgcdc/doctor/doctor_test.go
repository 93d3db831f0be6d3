package doctor

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"rtm/realtime/internal/pgtest"
)

var pg = pgtest.New()

func TestMain(m *testing.M) { pgtest.Main(m, pg) }

// healthy is a table every check passes for: in the publication, replica
// identity full, RLS letting a user see their own rows.
const healthy = `
do $$ begin create role anon nologin; exception when duplicate_object or unique_violation then null; end $$;
do $$ begin create role authenticated nologin; exception when duplicate_object or unique_violation then null; end $$;
create table todos(id int8 primary key, owner text, title text);
alter table todos replica identity full;
alter table todos enable row level security;
create policy mine on todos for select to authenticated using (owner = current_setting('request.jwt.claims', true)::jsonb ->> 'sub');
grant select on todos to authenticated;
insert into todos values (1, 'u1', 'one'), (2, 'u2', 'two');
create publication supabase_realtime for table todos;
`

func doctor(t *testing.T, o Options) Report {
	t.Helper()
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantCheck asserts one check's colour and that its text mentions want.
func wantCheck(t *testing.T, r Report, name string, ok bool, want string) {
	t.Helper()
	c, found := r.Find(name)
	if !found {
		t.Errorf("no %q check in %s", name, dump(r))
		return
	}
	if c.OK != ok || !strings.Contains(c.Detail+" "+c.Fix, want) {
		t.Errorf("check %q: ok=%v %q fix %q; want ok=%v mentioning %q", name, c.OK, c.Detail, c.Fix, ok, want)
	}
}

func dump(r Report) string {
	var b bytes.Buffer
	r.Write(&b, false)
	return b.String()
}

func TestHealthyTable(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	db.Exec(t, healthy)
	r := doctor(t, Options{URL: db.URL, Table: "public.todos", As: "authenticated:u1", Filter: "id=eq.1"})
	if !r.OK() {
		t.Fatalf("a healthy table has red checks:\n%s", dump(r))
	}
	t.Logf("report:\n%s", dump(r))
	for _, name := range []string{"connection", "replication", "table", "publication", "replica identity", "filter", "role", "select right", "policies", "replication slots", "readiness"} {
		if _, ok := r.Find(name); !ok {
			t.Errorf("check %q missing", name)
		}
	}
	wantCheck(t, r, "select right", true, "sees sample row id=1")
	wantCheck(t, r, "readiness", true, "temporary slot")
	// One line per check, green marks, no escapes without colour.
	var plain, colored bytes.Buffer
	r.Write(&plain, false)
	r.Write(&colored, true)
	if n := strings.Count(plain.String(), "\n"); n != len(r.Checks) || strings.Contains(plain.String(), "\x1b") {
		t.Errorf("plain output:\n%s", plain.String())
	}
	if !strings.Contains(colored.String(), "\x1b[32m✓") {
		t.Errorf("coloured output has no green mark:\n%s", colored.String())
	}
}

// Each planted misconfiguration turns its check red, with the fix.
func TestPlantedMisconfigurations(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		plant string
		o     Options
		check string
		want  string
	}{
		{"table outside the publication", `alter publication supabase_realtime drop table todos`,
			Options{}, "publication", `ALTER PUBLICATION "supabase_realtime" ADD TABLE "public"."todos"`},
		{"no publication", `drop publication supabase_realtime`,
			Options{}, "publication", "CREATE PUBLICATION"},
		{"publication without deletes", `alter publication supabase_realtime set (publish = 'insert, update')`,
			Options{}, "publication", "does not publish delete"},
		{"replica identity nothing", `alter table todos replica identity nothing`,
			Options{}, "replica identity", "REPLICA IDENTITY FULL"},
		{"no primary key", `alter table todos replica identity default; alter table todos drop constraint todos_pkey`,
			Options{}, "replica identity", "without a primary key"},
		{"filter on a missing column", ``,
			Options{Filter: "nope=eq.1"}, "filter", `column "nope" does not exist`},
		{"unsupported operator", ``,
			Options{Filter: "title=ilike.*x*"}, "filter", `operator "ilike" is not supported`},
		{"filter value of the wrong type", ``,
			Options{Filter: "id=eq.one"}, "filter", "invalid input syntax for type bigint"},
		{"delete filter on a non-key column", `alter table todos replica identity default`,
			Options{Filter: "owner=eq.u1", Event: "DELETE"}, "filter", "never matches a DELETE"},
		{"role without select", `revoke select on todos from authenticated`,
			Options{}, "select right", "GRANT SELECT ON"},
		{"RLS hides the sample row", ``,
			Options{As: "authenticated:u3"}, "select right", "row-level security hides row id=1"},
		{"missing role", ``,
			Options{As: "editor"}, "role", `role "editor" does not exist`},
		{"raising policy", `create or replace function boom() returns bool language plpgsql as $$ begin raise exception 'kaboom'; end $$;
			create policy explode on todos for select to authenticated using (boom())`,
			Options{}, "policies", "kaboom"},
		{"lagging slot", `select pg_create_logical_replication_slot('abandoned_' || current_database(), 'pgoutput');
			insert into todos select g, 'x', repeat('y', 100) from generate_series(10, 3000) g`,
			Options{MaxSlotLag: 4096}, "replication slots", "abandoned_t_"},
		{"readiness not seen", ``,
			Options{ReadySeen: new(bool)}, "readiness", "has not received"},
		{"readiness without publication", `drop publication supabase_realtime`,
			Options{}, "readiness", `publication "supabase_realtime" does not exist`},
		{"missing table", ``,
			Options{Table: "ghost"}, "table", "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := pg.DB(t)
			db.Exec(t, healthy)
			if tt.plant != "" {
				db.Exec(t, tt.plant)
			}
			if strings.Contains(tt.plant, "replication_slot") {
				// Slots are the cluster's: drop it, or it holds WAL for
				// every later test.
				t.Cleanup(func() { db.TryExec(`select pg_drop_replication_slot('abandoned_' || current_database())`) })
			}
			o := tt.o
			o.URL = db.URL
			if o.Table == "" {
				o.Table = "todos"
			}
			if o.As == "" {
				o.As = "authenticated:u1"
			}
			r := doctor(t, o)
			t.Logf("report:\n%s", dump(r))
			wantCheck(t, r, tt.check, false, tt.want)
			if r.OK() {
				t.Errorf("report OK with %s", tt.name)
			}
		})
	}
}

func TestUnreachableAndOptions(t *testing.T) {
	r := doctor(t, Options{URL: "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2", Table: "t"})
	wantCheck(t, r, "connection", false, "cannot connect")
	if strings.Contains(dump(r), "hunter2") {
		t.Errorf("password shown: %s", dump(r))
	}
	if _, err := Run(context.Background(), Options{Table: "t"}); err == nil {
		t.Error("no URL: no error")
	}
	for as, want := range map[string]string{
		"":                  `anon {"role":"anon"}`,
		"authenticated:abc": `authenticated {"role":"authenticated","sub":"abc"}`,
		"eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwic3ViIjoieCJ9.sig": `service_role {"role":"service_role","sub":"x"}`,
	} {
		s, err := parseAs(as)
		if err != nil || fmt.Sprintf("%s %s", s.role, s.claims) != want {
			t.Errorf("parseAs(%q) = %+v, %v; want %s", as, s, err, want)
		}
	}
}
