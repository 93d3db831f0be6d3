package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgx/v5"

	"rtm/realtime/server"
	"rtm/realtime/server/pgrealtime"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/theme"
)

// TestPrivateRefusalShown drives the UI, on a real manager, against the
// embedded server authorising private channels by a real PostgreSQL
// policy (a user reads only their own room): ":join ... --private" joins
// the allowed channel; the refused one's join reports Supabase's code
// and reason with the hint in the status line, reads "refused" in the
// channels table, and its Info tab gives the reason and the fix.
func TestPrivateRefusalShown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := startPG(ctx, t)
	db, err := pgrealtime.Open(ctx, pgrealtime.Config{URL: cl.URL("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := pgx.Connect(ctx, cl.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `create policy "own room" on realtime.messages for select to authenticated
		using ( realtime.topic() = 'broadcast:room:' || (auth.jwt() ->> 'sub') )`); err != nil {
		t.Fatal(err)
	}
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.Authorizer = db.Authorizer()
		c.AuthorizationErrorDelay = 100 * time.Millisecond
	}))
	own := registry.MustName(registry.KindBroadcast, "room", "alice", "")
	other := registry.MustName(registry.KindBroadcast, "room", "bob", "")
	mgr, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey(), Token: srv.UserToken(t, "alice", time.Hour, nil),
		Policy: registry.Fixed{Interval: time.Hour, Max: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sub := mgr.Subscribe(ctx, registry.SubscribeOptions{Buffer: 1 << 12})
	defer sub.Close()
	if err := mgr.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	m := New(Options{Manager: NewRegistryManager(mgr), Context: ctx, Now: time.Now,
		Theme: func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
			return func() tea.Msg { return scheduledMsg{d: d, msg: f(time.Now())} }
		}})
	m.Update(teaSize(160, 40))
	// command types a command line and runs what it starts (the join
	// action waits for the server's answer), then hands the UI the
	// manager's events and state, as the bridge does.
	command := func(line string) {
		t.Helper()
		keys(m, ":")
		typeText(m, line)
		for _, c := range keys(m, "enter") {
			feed(m, c)
		}
		st := mgr.Snapshot()
		m.Update(EventsBatchMsg{Events: sub.Drain(nil), State: &st})
	}
	command("join broadcast room:alice --private")
	mustContain(t, m.status.text, "joined broadcast:room:alice")
	command("join broadcast room:bob --private")
	const reason = "You do not have permissions to read from this Channel topic: broadcast:room:bob"
	mustContain(t, m.status.text, "join broadcast:room:bob", "Unauthorized: "+reason,
		"private channel refused: check the RLS policies on realtime.messages for this role")
	for _, n := range []registry.Name{own, other} {
		if info, err := mgr.Info(n); err != nil || !info.Config.Private {
			t.Errorf("%s: %+v (%v), want private", n, info.Config, err)
		}
	}

	s := screen(m)
	mustContain(t, s, "room:alice         bcast connected", "room:bob           bcast refused")
	selectChannel(t, m, other, "4")
	// The Info tab wraps long values: compare its text unwrapped.
	mustContain(t, screen(m), "─ broadcast:room:bob · refused ─")
	info := unwrapInfo(screen(m))
	mustContain(t, info, "private yes", "Status disconnected (Unauthorized: "+reason,
		"Last err Unauthorized: "+reason,
		"Fix private channel refused: check the RLS policies on realtime.messages for this role")
	selectChannel(t, m, own, "4")
	// (Its doctor line names refusals: "D checks why the private
	// channel may be refused".)
	mustNotContain(t, unwrapInfo(screen(m)), "Unauthorized", "Last err", "Fix private channel refused")

	// Narrow: the glyph column marks it "!".
	m.Update(teaSize(80, 24))
	mustContain(t, screen(m), "room:bob")
	if !strings.Contains(screen(m), "bcast !") {
		t.Errorf("narrow table lacks the refused glyph:\n%s", screen(m))
	}
}

// unwrapInfo returns the text of the main pane (right of the channels
// table, above the log) with its borders and wraps removed: words joined
// by one space.
func unwrapInfo(s string) string {
	var words []string
	for _, line := range strings.Split(s, "\n") {
		i := strings.Index(line, "││")
		if i < 0 {
			continue
		}
		line = line[i+len("││"):]
		words = append(words, strings.Fields(strings.Trim(line, "│"))...)
	}
	return strings.Join(words, " ")
}

// ":join ... --private" is a switch (it takes no value, or =true/=false)
// that works beside --as and --tenant.
func TestJoinPrivateFlag(t *testing.T) {
	for _, tc := range []struct {
		line    string
		private bool
		as, err string
	}{
		{line: "join broadcast room:1"},
		{line: "join broadcast room:1 --private", private: true},
		{line: "join presence room:1 --private --as alice", private: true, as: "alice"},
		{line: "join presence room:1 --as alice --private", private: true, as: "alice"},
		{line: "join broadcast room:1 --private=false"},
		{line: "join broadcast:room:1 --private=true --tenant acme", private: true},
		{line: "join broadcast room:1 --private=maybe", err: `--private="maybe": want true or false`},
	} {
		c, err := parseCommand(tc.line)
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		req, err := parseJoin(c, "")
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %s", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || req.Private != tc.private || req.As != tc.as {
			t.Errorf("%s: %+v (%v)", tc.line, req, err)
		}
	}
}
