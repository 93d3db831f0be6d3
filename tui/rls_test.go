package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc/pgcluster"
	"rtm/realtime/server/pgrealtime"
	"rtm/realtime/server/servertest"
	"rtm/registry"
)

// TestPrivateRefusalShown drives the UI with the events of a real
// manager on the embedded server authorising private channels by a real
// PostgreSQL policy (a user reads only their own room): the allowed
// channel is connected, the refused one shows in the channels table as
// failing and its Info tab gives Supabase's code and reason and the hint.
func TestPrivateRefusalShown(t *testing.T) {
	if err := pgcluster.Available(); err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Stop() }()
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
	h, err := mgr.Join(ctx, own, registry.Private())
	if err == nil {
		err = h.Ready(ctx)
	}
	if err != nil {
		t.Fatalf("own room: %v", err)
	}
	if _, err := mgr.Join(ctx, other, registry.Private()); err != nil {
		t.Fatal(err)
	}
	const reason = "You do not have permissions to read from this Channel topic: broadcast:room:bob"
	var evs []registry.Event
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case <-sub.Ready():
		case <-time.After(10 * time.Millisecond):
		}
		evs = sub.Drain(evs)
		if info, err := mgr.Info(other); err == nil && info.LastErrorCode == "Unauthorized" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refusal never came: %+v", mgr.Snapshot().Channels)
		}
	}
	st := mgr.Snapshot()
	m, _ := newTestModel(t, 160, 40, func(o *Options) { o.Now = time.Now })
	m.Update(EventsBatchMsg{Events: evs, State: &st})

	s := screen(m)
	mustContain(t, s, "room:alice         bcast connected", "room:bob           bcast refused")
	selectChannel(t, m, other, "4")
	// The Info tab wraps long values: compare its text unwrapped.
	mustContain(t, screen(m), "─ broadcast:room:bob · refused ─")
	info := unwrapInfo(screen(m))
	mustContain(t, info, "private yes",
		"Last err Unauthorized: "+reason,
		"Fix private channel refused: check the RLS policies on realtime.messages for this role")
	selectChannel(t, m, own, "4")
	mustNotContain(t, unwrapInfo(screen(m)), "Unauthorized", "refused", "Fix")

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
