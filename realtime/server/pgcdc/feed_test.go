package pgcdc

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var commitTS = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// INSERT, UPDATE and DELETE from real SQL, with every field of the data.
func TestInsertUpdateDelete(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table todos(id int8 primary key, title text, done bool, tags text[], meta jsonb,
			due timestamptz, score numeric, ratio float8);
		alter table todos replica identity full`)
	f := openFeed(t, db)
	db.Exec(t, `alter publication supabase_realtime add table todos`)
	k := newSink()
	subscribe(t, f, k, "anon", "", Binding{ID: 7, Event: "*", Schema: "public", Table: "todos"})

	db.Exec(t, `insert into todos values (1, 'write "tests"', false, '{a,"b c",NULL}', '{"x": [1, 2]}', '2026-01-02 03:04:05.678+00', 1.50, 0.25)`)
	db.Exec(t, `update todos set done = true, title = 'done' where id = 1`)
	db.Exec(t, `delete from todos where id = 1`)
	got := k.deliveries(t, 3)

	cols := `[{"name":"id","type":"int8"},{"name":"title","type":"text"},{"name":"done","type":"bool"},{"name":"tags","type":"_text"},
		{"name":"meta","type":"jsonb"},{"name":"due","type":"timestamptz"},{"name":"score","type":"numeric"},{"name":"ratio","type":"float8"}]`
	row1 := `{"id":1,"title":"write \"tests\"","done":false,"tags":["a","b c",null],"meta":{"x":[1,2]},"due":"2026-01-02T03:04:05.678+00:00","score":1.50,"ratio":0.25}`
	row2 := `{"id":1,"title":"done","done":true,"tags":["a","b c",null],"meta":{"x":[1,2]},"due":"2026-01-02T03:04:05.678+00:00","score":1.50,"ratio":0.25}`
	for i, want := range []struct{ typ, record, old string }{
		{"INSERT", row1, ""},
		{"UPDATE", row2, row1},
		{"DELETE", "", row2},
	} {
		d := got[i]
		if len(d.IDs) != 1 || d.IDs[0] != 7 || d.Type != want.typ || d.Schema != "public" || d.Table != "todos" {
			t.Errorf("delivery %d: ids %v type %s %s.%s", i, d.IDs, d.Type, d.Schema, d.Table)
		}
		m := dataOf(t, d)
		if ts, _ := m["commit_timestamp"].(string); !commitTS.MatchString(ts) {
			t.Errorf("%s: commit_timestamp %q", want.typ, m["commit_timestamp"])
		} else if at, _ := time.Parse("2006-01-02T15:04:05.000Z", ts); time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
			t.Errorf("%s: commit_timestamp %s is not now", want.typ, ts)
		}
		wantJSON(t, want.typ+" type", m["type"], `"`+want.typ+`"`)
		wantJSON(t, want.typ+" columns", m["columns"], cols)
		if want.record != "" {
			wantJSON(t, want.typ+" record", m["record"], want.record)
		} else if _, ok := m["record"]; ok {
			t.Errorf("%s has a record", want.typ)
		}
		if want.old != "" {
			wantJSON(t, want.typ+" old_record", m["old_record"], want.old)
		} else if _, ok := m["old_record"]; ok {
			t.Errorf("%s has an old_record", want.typ)
		}
		if v, ok := m["errors"]; !ok || v != nil {
			t.Errorf("%s: errors %v, want null", want.typ, v)
		}
	}
	st := f.Stats()
	if st.Changes < 3 || st.Deliveries < 3 || !st.Streaming || st.Subscriptions != 1 {
		t.Errorf("stats %+v", st)
	}
}

// With the default replica identity, old_record holds the primary key
// only.
func TestOldRecordDefaultIdentity(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table items(id int4 primary key, name text)`)
	f := openFeed(t, db)
	db.Exec(t, `alter publication supabase_realtime add table items`)
	k := newSink()
	subscribe(t, f, k, "anon", "", Binding{ID: 1, Event: "*", Table: "items"})
	db.Exec(t, `insert into items values (5, 'a'); update items set name = 'b' where id = 5; update items set id = 6 where id = 5; delete from items where id = 6`)
	got := k.deliveries(t, 4)
	wantJSON(t, "update old_record", dataOf(t, got[1])["old_record"], `{"id":5}`)
	wantJSON(t, "key update old_record", dataOf(t, got[2])["old_record"], `{"id":5}`)
	wantJSON(t, "key update record", dataOf(t, got[2])["record"], `{"id":6,"name":"b"}`)
	wantJSON(t, "delete old_record", dataOf(t, got[3])["old_record"], `{"id":6}`)
}

// Filters are evaluated by column type; only matching changes arrive,
// each with the ids of the bindings it matched.
func TestFilters(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table f(id int8 primary key, name text, price numeric, at timestamptz, ok bool, u uuid, r float4);
		alter table f replica identity full`)
	f := openFeed(t, db)
	db.Exec(t, `alter publication supabase_realtime add table f`)
	k := newSink()
	bs := []Binding{
		{ID: 1, Event: "INSERT", Table: "f", Filter: "id=eq.2"},
		{ID: 2, Event: "*", Table: "f", Filter: "price=gt.9.5"}, // numeric, not text: "10" > "9.5"
		{ID: 3, Event: "INSERT", Table: "f", Filter: "at=gte.2026-01-01T12:00:00+02:00"},
		{ID: 4, Event: "INSERT", Table: "f", Filter: "name=in.(b,\"c,d\")"},
		{ID: 5, Event: "INSERT", Table: "f", Filter: "u=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
		{ID: 6, Event: "INSERT", Table: "f", Filter: "ok=eq.true,id=lt.4"},
		{ID: 7, Event: "INSERT", Table: "f", Filter: "name=neq.a"},
		{ID: 8, Event: "INSERT", Table: "f", Filter: "r=lte.0.5"},
		{ID: 9, Event: "DELETE", Table: "f", Filter: "id=eq.3"},
		{ID: 10, Event: "UPDATE", Table: "f", Filter: "name=eq.z"},
	}
	subscribe(t, f, k, "anon", "", bs...)
	db.Exec(t, `insert into f values (1, 'a', 10, '2026-01-01 09:00:00+00', false, null, 0.5)`)
	db.Exec(t, `insert into f values (2, 'b', 9.5, '2026-01-01 10:00:00+00', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0.75)`)
	db.Exec(t, `insert into f values (3, 'c,d', null, null, true, null, null)`)
	db.Exec(t, `update f set name = 'z' where id = 1`)
	db.Exec(t, `update f set name = 'y' where id = 2`)
	db.Exec(t, `delete from f where id = 3`)
	db.Exec(t, `delete from f where id = 2`)
	db.Exec(t, `insert into f values (100, 'end', 100, null, false, null, null)`) // sentinel: 2, 7
	got := k.deliveries(t, 6)
	type row struct {
		typ string
		ids []int64
	}
	var rows []row
	for _, d := range got {
		rows = append(rows, row{d.Type, d.IDs})
	}
	wantRows := []row{
		{"INSERT", []int64{2, 8}},             // id 1: price 10 > 9.5 (numerically), r 0.5 <= 0.5
		{"INSERT", []int64{1, 3, 4, 5, 6, 7}}, // id 2: 10:00Z >= 12:00+02, uuid case-insensitive
		{"INSERT", []int64{4, 6, 7}},          // id 3: NULLs match nothing
		{"UPDATE", []int64{2, 10}},            // id 1 renamed z; id 2's update matches nothing
		{"DELETE", []int64{9}},                // id 3, on the old row; id 2's delete matches nothing
		{"INSERT", []int64{2, 7}},             // sentinel
	}
	if len(rows) != len(wantRows) {
		t.Fatalf("deliveries %+v\nwant %+v", rows, wantRows)
	}
	for i := range wantRows {
		if rows[i].typ != wantRows[i].typ || !slices.Equal(rows[i].ids, wantRows[i].ids) {
			t.Errorf("delivery %d: %s %v, want %s %v", i, rows[i].typ, rows[i].ids, wantRows[i].typ, wantRows[i].ids)
		}
	}
}

// Errors the user can act on come back as reasons with a fix.
func TestSubscribeErrors(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	setupRoles(t, db)
	db.Exec(t, `create table a(id int8 primary key, name text); create table outside(id int8 primary key)`)
	f := openFeed(t, db)
	db.Exec(t, `alter publication supabase_realtime add table a`)
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		role   string
		b      Binding
		reason string
		fix    string
	}{
		{"missing column", "anon", Binding{Table: "a", Filter: "nope=eq.1"}, `column "nope" does not exist in "public"."a"`, "id, name"},
		{"unsupported operator", "anon", Binding{Table: "a", Filter: "name=like.x%"}, `operator "like" is not supported`, "eq.1"},
		{"unknown operator", "anon", Binding{Table: "a", Filter: "id=equals.1"}, `unknown operator "equals"`, ""},
		{"bad value", "anon", Binding{Table: "a", Filter: "id=eq.abc"}, `invalid input syntax for type bigint: "abc"`, ""},
		{"outside the publication", "anon", Binding{Table: "outside"}, `table "public"."outside" is not in publication "supabase_realtime"`,
			`ALTER PUBLICATION "supabase_realtime" ADD TABLE "public"."outside"`},
		{"missing table", "anon", Binding{Table: "ghost"}, `table "public"."ghost" does not exist`, ""},
		{"missing role", "nobody_here", Binding{Table: "a"}, `role "nobody_here" (the token's role claim) does not exist`, "CREATE ROLE"},
		{"filter without table", "anon", Binding{Schema: "public", Filter: "id=eq.1"}, "a filter needs a table", ""},
	} {
		_, err := f.Subscribe(ctx, Request{Role: tt.role, Bindings: []Binding{tt.b}})
		var se *SubscribeError
		if !errors.As(err, &se) || len(se.Problems) != 1 {
			t.Errorf("%s: err %v, want one problem", tt.name, err)
			continue
		}
		if p := se.Problems[0]; !strings.Contains(p.Reason, tt.reason) || !strings.Contains(p.Fix, tt.fix) {
			t.Errorf("%s: reason %q fix %q; want %q and %q", tt.name, p.Reason, p.Fix, tt.reason, tt.fix)
		}
		if !strings.HasPrefix(err.Error(), "Unable to subscribe to changes with given parameters: ") {
			t.Errorf("%s: message %q", tt.name, err)
		}
	}
	if st := f.Stats(); st.Subscriptions != 0 {
		t.Errorf("refused subscriptions registered: %+v", st)
	}
}
