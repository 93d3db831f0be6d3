package demo

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/internal/pgtest"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgcdc/demodb"
	"rtm/realtime/server/servertest"
	"rtm/realtime/token"
)

var pg = pgtest.New()

func TestMain(m *testing.M) { pgtest.Main(m, pg) }

// observer is a client watching the demo's channels like the UI would.
type observer struct {
	mu         sync.Mutex
	joined     map[string]bool // presence keys seen joining
	left       map[string]bool
	cursors    int
	changes    int
	payloadsOK bool
}

func (o *observer) on(ev realtime.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch ev.Type {
	case realtime.EventPresence:
		switch ev.Presence.Kind {
		case realtime.PresenceJoin:
			o.joined[ev.Presence.Key] = true
			for _, m := range ev.Presence.Changed {
				var raw map[string]any
				if json.Unmarshal(m.UserFields(), &raw) == nil && raw["user_id"] == ev.Presence.Key && raw["name"] != "" {
					o.payloadsOK = true
				}
			}
		case realtime.PresenceLeave:
			o.left[ev.Presence.Key] = true
		}
	case realtime.EventBroadcast:
		if ev.Broadcast.Event == "cursor" {
			o.cursors++
		}
	case realtime.EventPostgresChange:
		o.changes++
	}
}

func (o *observer) snapshot() (joined, left, cursors, changes int, payloadsOK bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.joined), len(o.left), o.cursors, o.changes, o.payloadsOK
}

func TestDemoPeersComeAndGo(t *testing.T) {
	srv := servertest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	obs := &observer{joined: map[string]bool{}, left: map[string]bool{}}
	sock, err := realtime.NewSocket(srv.URL, &realtime.Options{APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := sock.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		topic string
		cfg   realtime.ChannelConfig
	}{
		{DefaultPresenceTopic, realtime.ChannelConfig{Presence: realtime.PresenceConfig{Enabled: true}, OnEvent: obs.on}},
		{DefaultBroadcastTopic, realtime.ChannelConfig{OnEvent: obs.on}},
		{DefaultSubscriptionTopic, realtime.ChannelConfig{OnEvent: obs.on, PostgresChanges: []realtime.PostgresBinding{
			{Event: "*", Schema: "public", Table: "project", Filter: "id=eq.456"},
		}}},
	} {
		ch, err := sock.Channel(c.topic, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Subscribe(ctx); err != nil {
			t.Fatalf("subscribe %s: %v", c.topic, err)
		}
	}

	secret := srv.Secret()
	r := rand.New(rand.NewPCG(1, 2))
	d, err := Start(ctx, Options{
		URL: srv.URL, APIKey: srv.AnonKey(),
		Token: func(user string) (string, error) {
			return token.User(secret, user, time.Now(), time.Hour, nil)
		},
		EmitChange: srv.EmitChange,
		Pace:       15 * time.Millisecond,
		Rand:       r.Float64,
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, l, cur, ch, ok := obs.snapshot()
		if j >= 4 && l >= 2 && cur >= 20 && ch >= 2 && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not show enough life: %d users joined, %d left, %d cursors, %d changes, payloads ok %v; stats %+v",
				j, l, cur, ch, ok, d.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := d.Stats()
	if st.Joins == 0 || st.Broadcasts == 0 || st.Changes == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Once closed, every peer's connection is gone: only the observer's
	// remains.
	deadline = time.Now().Add(10 * time.Second)
	for len(srv.Conns()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after Close, want 1 (the observer)", len(srv.Conns()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartValidates(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("Start without URL and key must fail")
	}
}

// countHandler counts log records at warn level and above.
type countHandler struct {
	mu *sync.Mutex
	n  *int
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		*h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// The demo keeps trying when the server is unreachable, logs it, and
// stops cleanly.
func TestDemoUnreachableServer(t *testing.T) {
	var mu sync.Mutex
	warnings := 0
	d, err := Start(context.Background(), Options{URL: "http://127.0.0.1:1", APIKey: "k", Pace: 5 * time.Millisecond,
		EmitChange: func(string, protocol.ChangeData) int { return 0 },
		Logger:     slog.New(countHandler{&mu, &warnings})})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := warnings
		mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d connection failures logged", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Joins != 0 || st.Broadcasts != 0 {
		t.Fatalf("stats against a dead server: %+v", st)
	}
}

// With a database, the change peer writes real rows (demodb.Writer) and a
// client bound the way the channel manager binds subscription:project:456
// (table public.project, id=eq.456) receives them as real UPDATEs from the
// server's change feed.
func TestDemoWritesRealChanges(t *testing.T) {
	db := pg.DB(t)
	db.Exec(t, demodb.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed, err := pgcdc.Open(ctx, pgcdc.Config{URL: db.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	srv := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.Changes = feed.Source() }))

	var (
		mu      sync.Mutex
		updates []map[string]any
		ready   bool
	)
	sock, err := realtime.NewSocket(srv.URL, &realtime.Options{APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := sock.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err := sock.Channel(DefaultSubscriptionTopic, realtime.ChannelConfig{
		PostgresChanges: []realtime.PostgresBinding{{Event: "*", Schema: "public", Table: "project", Filter: "id=eq.456"}},
		OnEvent: func(ev realtime.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ev.Type == realtime.EventSystem && ev.System.Status == protocol.StatusOK:
				ready = true
			case ev.Type == realtime.EventPostgresChange && ev.Change.Type == "UPDATE":
				rec, err := ev.Change.New()
				if err == nil {
					updates = append(updates, rec)
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := demodb.NewWriter(ctx, db.URL, rand.New(rand.NewPCG(3, 4)).Float64)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	d, err := Start(ctx, Options{
		URL: srv.URL, APIKey: srv.AnonKey(), Pace: 10 * time.Millisecond,
		WriteChange: w.Step,
		// EmitChange is ignored when WriteChange is set: a simulated
		// change would carry this marker.
		EmitChange: func(string, protocol.ChangeData) int { t.Error("EmitChange called with a database"); return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, r := len(updates), ready
		var last map[string]any
		if n > 0 {
			last = updates[n-1]
		}
		mu.Unlock()
		if r && n >= 2 {
			if last["id"] != float64(456) || last["name"] != "Realtime debugger" {
				t.Fatalf("update of %v, want project 456", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready %v, %d updates of project 456; demo stats %+v", r, n, d.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.Stats().Changes == 0 {
		t.Fatalf("stats %+v", d.Stats())
	}
}
