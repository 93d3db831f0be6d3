package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/jackc/pgx/v5"

	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgcdc/doctor"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/compare"
)

// fixedComparer is a comparer whose reading is given (golden screens).
type fixedComparer struct {
	cols  []compare.Column
	diffs []compare.Difference
}

func (f *fixedComparer) Tick(context.Context) []compare.Difference { return nil }
func (f *fixedComparer) Columns(string) []compare.Column           { return f.cols }
func (f *fixedComparer) Differences(string) ([]compare.Difference, int) {
	return f.diffs, len(f.diffs) + 40
}

// sampleCompare is a reading of alice and bob on presence:contact:123.
func sampleCompare() *fixedComparer {
	topic := presenceCh.String()
	diff := func(sec int, event, value string, r compare.Reason, detail string) compare.Difference {
		return compare.Difference{Time: t0.Add(time.Duration(sec) * time.Second), Topic: topic, A: "alice", B: "bob", MissingFrom: "bob",
			Message: compare.Message{Channel: topic, Event: event, Value: json.RawMessage(value)}, Reason: r, Detail: detail}
	}
	return &fixedComparer{
		cols: []compare.Column{
			{Identity: "alice", Status: registry.StatusConnected, Total: 46,
				Events:  map[string]int{"broadcast cursor": 30, "broadcast message": 4, "presence_state": 3, "presence_join": 6, "presence_leave": 3},
				Kinds:   map[string]int{"broadcast": 34, "presence_state": 3, "presence_join": 6, "presence_leave": 3},
				Members: []string{"alice", "bob", "carol"}},
			{Identity: "bob", Status: registry.StatusConnected, Total: 40,
				Events:  map[string]int{"broadcast cursor": 28, "presence_state": 3, "presence_join": 6, "presence_leave": 3},
				Kinds:   map[string]int{"broadcast": 28, "presence_state": 3, "presence_join": 6, "presence_leave": 3},
				Members: []string{"alice", "bob"}, Sent: 2, Missing: 6},
		},
		diffs: []compare.Difference{
			diff(-40, "broadcast cursor", `{"x":1,"y":2}`, compare.ReasonNotJoined, "bob joined 1.2s after the message"),
			diff(-30, "broadcast message", `{"text":"hello"}`, compare.ReasonFault, "fault: connection dropped on its socket 80ms before the message"),
			diff(-20, "broadcast cursor", `{"x":3,"y":4}`, compare.ReasonUnknown, ""),
			diff(-10, "broadcast message", `{"text":"secret plan","token":"eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"}`,
				compare.ReasonPrivate, "Unauthorized: You do not have permissions to read from this Channel topic: presence:contact:123"),
		},
	}
}

// withBob adds identity bob holding presence:contact:123, the comparer
// given, and opens the Compare tab on that channel.
func withBob(t *testing.T, m *Model, fm *fakeManager, c Comparer) {
	t.Helper()
	m.opts.Compare = c
	m.Update(identityAddedMsg{id: Identity{Name: "bob", Manager: fm}})
	st := sampleState(t0)
	st.Channels = st.Channels[:1]
	st.Token.Subject = "bob"
	m.Update(EventsBatchMsg{State: &st, Identity: "bob"})
	for _, c := range keys(m, "5") {
		feed(m, c)
	}
}

// TestGoldenCompare: the Compare tab at the three sizes: the columns of
// alice and bob, then the differences, newest first, with their
// reasons, the token in a payload masked.
func TestGoldenCompare(t *testing.T) {
	for _, sz := range goldenSizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			m, fm := newTestModel(t, sz[0], sz[1], func(o *Options) { o.Identity = "alice" })
			withBob(t, m, fm, sampleCompare())
			s := ansi.Strip(m.Render())
			mustContain(t, s, "5 C", "alice", "bob", "missed")
			if sz[1] >= 40 {
				mustContain(t, s, "5 Compare", "DIFFERENCES 44")
			}
			mustNotContain(t, s, "c2lnbmF0dXJlLXNpZ25hdHVyZQ")
			if sz[1] >= 40 {
				mustContain(t, s, "refused by a private-channel policy", "not joined yet")
			}
			golden.RequireEqual(t, s)
		})
	}
}

// TestCompareTabHidden: with one identity there is no Compare tab, and
// its key does nothing; a second identity shows it; dropping it hides
// the tab again and leaves it for Messages.
func TestCompareTabHidden(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	mustNotContain(t, screen(m), "Compare")
	keys(m, "5")
	if m.main.tab == tabCompare {
		t.Fatal("5 opened the Compare tab with one identity")
	}
	withBob(t, m, fm, sampleCompare())
	mustContain(t, screen(m), "5 Compare", "DIFFERENCES")
	m.Update(identityDroppedMsg{name: "bob"})
	mustNotContain(t, screen(m), "Compare")
	if m.main.tab == tabCompare {
		t.Error("the Compare tab stayed open")
	}
}

// rowChecker adapts the doctor's single-row verdict to compare's
// RowChecker, as package main does.
type rowChecker struct{ rows *doctor.Rows }

func (r rowChecker) RowVerdict(ctx context.Context, who compare.Identity, schema, table string, record json.RawMessage) (compare.Verdict, error) {
	claims := string(who.Claims)
	if claims == "" {
		b, _ := json.Marshal(map[string]string{"role": who.Role, "sub": who.User})
		claims = string(b)
	}
	v, err := r.rows.Verdict(ctx, who.Role, claims, schema, table, record)
	return compare.Verdict{Visible: v.Visible, Detail: v.Detail}, err
}

// TestCompareRLS: against the embedded server streaming a real
// PostgreSQL's changes under row-level security (a user sees their own
// notes and everyone's), alice and bob subscribe to the same note; both
// receive its insert while it is everyone's, and only alice the update
// that makes it hers. The Compare tab shows both columns (2 changes
// against 1) and the update bob did not receive, "filtered by RLS" with
// the doctor's verdict for bob and that row.
func TestCompareRLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := startPG(ctx, t)
	url := cl.URL("postgres")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, r := range []string{"anon", "authenticated", "service_role"} {
		if _, err := conn.Exec(ctx, `do $$ begin create role `+r+` nologin; exception when duplicate_object then null; end $$`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `
		create table public.notes(id int8 primary key, owner text not null, body text);
		alter table public.notes enable row level security;
		create policy "own or everyone's" on public.notes for select to authenticated
			using (owner = 'everyone' or owner = (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'));
		grant usage on schema public to anon, authenticated, service_role;
		grant select on public.notes to authenticated;
		create publication supabase_realtime for table public.notes`); err != nil {
		t.Fatal(err)
	}
	feedDB, err := pgcdc.Open(ctx, pgcdc.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer feedDB.Close()
	rows, err := doctor.OpenRows(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cmp := compare.New(compare.Options{Window: 300 * time.Millisecond, Rows: rowChecker{rows}})
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.Changes = feedDB.Source() }))
	e := newIDEnvOn(t, srv, func(o *Options) { o.Compare = cmp })
	e.observe = cmp.Observe
	cmp.AddIdentity(compare.Identity{Name: "alice", User: "alice", Role: "authenticated"})
	e.command("as bob")
	cmp.AddIdentity(compare.Identity{Name: "bob", User: "bob", Role: "authenticated"})
	note := registry.MustName(registry.KindSubscription, "notes", "1", "")
	e.command("join subscription notes:1 --for alice,bob")
	mustContain(t, e.m.status.text, "joined subscription:notes:1 as alice, bob")
	e.waitFor("both subscribed to PostgreSQL", func() bool {
		n := 0
		for _, id := range []string{"alice", "bob"} {
			if info, err := e.mgrs[id].Info(note); err == nil && info.Ready {
				n++
			}
		}
		return n == 2
	})
	if _, err := conn.Exec(ctx, `insert into public.notes values (1, 'everyone', 'hello')`); err != nil {
		t.Fatal(err)
	}
	// The update once both have the insert (the feed checks a row as it
	// is when it delivers the change).
	e.waitFor("the insert to both", func() bool {
		cols := cmp.Columns(note.String())
		return len(cols) == 2 && cols[0].Kinds["postgres_changes"] == 1 && cols[1].Kinds["postgres_changes"] == 1
	})
	if _, err := conn.Exec(ctx, `update public.notes set owner = 'alice', body = 'mine now' where id = 1`); err != nil {
		t.Fatal(err)
	}
	e.selectAs("bob", note)
	for _, c := range keys(e.m, "5") {
		feed(e.m, c)
	}
	e.waitFor("the difference", func() bool {
		e.tick()
		return len(e.m.cmp.diffs) > 0
	})
	d := e.m.cmp.diffs[0]
	if d.MissingFrom != "bob" || d.A != "alice" || d.Reason != compare.ReasonRLS || !strings.Contains(d.Message.Event, "UPDATE public.notes") {
		t.Fatalf("difference %+v", d)
	}
	if len(e.m.cmp.diffs) != 1 {
		t.Errorf("differences %+v, want the update only", e.m.cmp.diffs)
	}
	e.m.Update(teaSize(200, 50))
	s := screen(e.m)
	mustContain(t, s, "5 Compare", "postgres_changes", "bob missed postgres_changes UPDATE public.notes", "filtered by RLS")
	mustContain(t, unwrapInfo(s), d.Detail[:min(len(d.Detail), 30)])
	cols := e.m.cmp.cols
	if len(cols) != 2 || cols[0].Kinds["postgres_changes"] != 2 || cols[1].Kinds["postgres_changes"] != 1 || cols[1].Missing != 1 {
		t.Errorf("columns %+v", cols)
	}
	t.Logf("the Compare tab:\n%s", s)
}
