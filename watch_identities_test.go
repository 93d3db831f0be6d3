package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestWatchIdentitiesRLS: `rtm watch --as alice=… --as bob=…` against
// `rtm serve --db` with a table whose RLS policy lets a user read only
// their own rows (auth.uid()) and a private room only its owner may
// join: every line is tagged with its identity; the compare lines say
// exactly which rows each missed, "filtered by RLS" with the policy,
// and that bob missed alice's room's broadcast, "refused by a
// private-channel policy" with the server's reason.
func TestWatchIdentitiesRLS(t *testing.T) {
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := startPG(ctx, t)
	const (
		secret = "watch-identities-secret-0123456789abcdef012"
		alice  = "00000000-0000-4000-8000-00000000000a"
		bob    = "00000000-0000-4000-8000-00000000000b"
	)
	db := cl.URL("postgres")
	if err := cl.Exec(ctx, "postgres", `create table notes(id int8 primary key, owner uuid not null, body text);
		alter table notes replica identity full;
		create publication supabase_realtime for table notes;`); err != nil {
		t.Fatal(err)
	}
	apiURL, anon, stopServe := serveDB(ctx, t, db, "--jwt-secret", secret, "--authorization-error-delay", "100ms")
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `alter table notes enable row level security;
		create policy own on notes for select to authenticated using (owner = auth.uid());
		grant select on notes to authenticated;
		create policy "own room" on realtime.messages for select to authenticated
			using (realtime.topic() = 'broadcast:room:' || auth.uid()::text)`); err != nil {
		t.Fatal(err)
	}

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var out lockedBuf
	room := "broadcast:room:" + alice
	wait := background(wctx, &out, "watch", "--url", apiURL, "--key", anon, "--jwt-secret", secret,
		"--as", "alice="+alice, "--as", "bob="+bob, "--join", "subscription:notes:*", "--join-private", room,
		"--compare-window", "1s", "--compare-db", db, "--policy", "fixed:200ms,max=100")
	type line struct {
		Identity, Type, Channel, Status, Kind, Event string
		Topic, A, B, Reason, Detail                  string
		MissingFrom                                  string `json:"missing_from"`
		Message                                      struct {
			Event string
			Value json.RawMessage
		}
		Payload json.RawMessage
	}
	lines := func() []line {
		var ls []line
		for _, s := range strings.Split(out.String(), "\n") {
			var l line
			if json.Unmarshal([]byte(s), &l) == nil && l.Type != "" {
				ls = append(ls, l)
			}
		}
		return ls
	}
	has := func(f func(line) bool) func() bool {
		return func() bool { return slices.ContainsFunc(lines(), f) }
	}
	for _, who := range []string{"alice", "bob"} {
		waitFor(t, who+"'s postgres changes ready", has(func(l line) bool {
			return l.Identity == who && l.Type == "message" && l.Kind == "system" && l.Channel == "subscription:notes:*" &&
				strings.Contains(string(l.Payload), "Subscribed to PostgreSQL")
		}))
	}
	waitFor(t, "alice's private room joined", has(func(l line) bool {
		return l.Identity == "alice" && l.Type == "channel_state" && l.Channel == room && l.Status == "connected"
	}))
	waitFor(t, "bob refused the room", has(func(l line) bool {
		return l.Identity == "bob" && l.Type == "channel_state" && l.Channel == room && l.Status == "disconnected"
	}))
	if _, err := conn.Exec(ctx, fmt.Sprintf(`insert into notes values (1, '%s', 'a1'), (2, '%s', 'b2'), (3, '%s', 'a3');
		select realtime.send('{"hello":"room"}'::jsonb, 'note', 'broadcast:room:%s', true)`, alice, bob, alice, alice)); err != nil {
		t.Fatal(err)
	}
	rowsMissed := func(from string) []string {
		var ids []string
		for _, l := range lines() {
			if l.Type == "compare" && l.Topic == "subscription:notes:*" && l.MissingFrom == from {
				var v struct{ Record struct{ ID int } }
				_ = json.Unmarshal(l.Message.Value, &v)
				ids = append(ids, fmt.Sprintf("%d %s", v.Record.ID, l.Reason))
			}
		}
		sort.Strings(ids)
		return ids
	}
	waitFor(t, "the compare lines", func() bool {
		return len(rowsMissed("bob")) == 2 && len(rowsMissed("alice")) == 1 && has(func(l line) bool { return l.Type == "compare" && l.Topic == room })()
	})
	if got := rowsMissed("bob"); !slices.Equal(got, []string{"1 filtered by RLS", "3 filtered by RLS"}) {
		t.Errorf("bob missed %v", got)
	}
	if got := rowsMissed("alice"); !slices.Equal(got, []string{"2 filtered by RLS"}) {
		t.Errorf("alice missed %v", got)
	}
	for _, l := range lines() {
		switch {
		case l.Type == "compare" && l.Topic == "subscription:notes:*":
			if l.A == l.MissingFrom || l.B != l.MissingFrom || !strings.Contains(l.Detail, "row-level security hides row id=") || !strings.Contains(l.Detail, "own (SELECT") {
				t.Errorf("RLS compare line: %+v", l)
			}
		case l.Type == "compare" && l.Topic == room:
			if l.A != "alice" || l.MissingFrom != "bob" || l.Reason != "refused by a private-channel policy" ||
				l.Detail != "You do not have permissions to read from this Channel topic: "+room {
				t.Errorf("private compare line: %+v", l)
			}
		case l.Type == "compare":
			t.Errorf("unexpected compare line: %+v", l)
		case l.Identity != "alice" && l.Identity != "bob":
			t.Errorf("a line without its identity: %+v", l)
		}
	}
	if !has(func(l line) bool {
		return l.Type == "compare" && l.Topic == room && l.Message.Event == "broadcast note" && strings.HasPrefix(string(l.Message.Value), `{"hello":"room","id":`)
	})() {
		t.Errorf("no compare line for the room's broadcast (realtime.send adds its id):\n%s", out.String())
	}
	if strings.Contains(out.String(), secret) {
		t.Error("the JWT secret is in the output")
	}
	stopWatch()
	if code, errs := wait(); code != 0 {
		t.Errorf("watch exited %d: %s", code, errs)
	}
	stopServe()
}

// Bad identity flags exit 2 with the reason, before anything connects;
// only watch takes several identities.
func TestWatchIdentityFlags(t *testing.T) {
	noProjectEnv(t)
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--join", "broadcast:a:1", "--as", "alice", "--as", "alice"}, `identity "alice" given twice`},
		{[]string{"watch", "--join", "broadcast:a:1", "--as", "alice", "--role", "root"}, `unknown role "root"`},
		{[]string{"watch", "--join", "broadcast:a:1", "--join-private", "nope"}, "--join-private"},
		{[]string{"watch", "--join", "broadcast:a:1", "--as", "a", "--as", "b", "--limits"}, "the limits line is for one identity"},
		{[]string{"record", "--join", "broadcast:a:1", "-o", t.TempDir() + "/r.ndjson", "--as", "a", "--as", "b"}, "only rtm watch takes several identities"},
	} {
		var out, errb lockedBuf
		code := run(ctx, c.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}
