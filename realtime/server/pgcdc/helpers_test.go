package pgcdc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/internal/pgtest"
	"rtm/realtime/server/servertest"
)

var pg = pgtest.New()

func TestMain(m *testing.M) { pgtest.Main(m, pg) }

// wait bounds every wait of the tests (a deadline, not a sleep).
const wait = 20 * time.Second

// setupRoles creates Supabase's roles (cluster-wide, idempotent) and
// grants them the public schema of db.
func setupRoles(t testing.TB, db *pgtest.DB) {
	t.Helper()
	for _, r := range []string{"anon", "authenticated", "service_role"} {
		err := db.TryExec(fmt.Sprintf(`do $$ begin create role %s nologin; exception when duplicate_object or unique_violation then null; end $$`, r))
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	db.Exec(t, `grant usage on schema public to anon, authenticated, service_role;
		alter default privileges in schema public grant select on tables to anon, authenticated, service_role`)
}

// openFeed opens a feed on db, closed when t ends.
func openFeed(t testing.TB, db *pgtest.DB, mod ...func(*Config)) *Feed {
	t.Helper()
	// The feed's warnings (changes not delivered, and why) go to t.Log:
	// shown when a test fails.
	tl := servertest.NewLogWriter(t) // stops after f.Close, registered below
	cfg := Config{URL: db.URL, Logger: slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	f, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v\nserver log:\n%s", err, db.Cluster.Log(20))
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// sink records what a subscription receives.
type sink struct {
	mu       sync.Mutex
	got      []Delivery
	statuses []Status
	changed  chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{})} }

func (k *sink) bump() {
	close(k.changed)
	k.changed = make(chan struct{})
}

func (k *sink) request(role, claims string, bindings ...Binding) Request {
	r := Request{Bindings: bindings, Role: role,
		Deliver: func(d Delivery) {
			k.mu.Lock()
			k.got = append(k.got, d)
			k.bump()
			k.mu.Unlock()
		},
		OnStatus: func(s Status) {
			k.mu.Lock()
			k.statuses = append(k.statuses, s)
			k.bump()
			k.mu.Unlock()
		}}
	if claims != "" {
		r.Claims = json.RawMessage(claims)
	}
	return r
}

// until waits until cond (called under the sink's lock) holds.
func (k *sink) until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		ok := cond()
		ch := k.changed
		k.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			k.mu.Lock()
			defer k.mu.Unlock()
			t.Fatalf("timed out waiting for %s; got %d deliveries %s, statuses %+v", what, len(k.got), k.dump(), k.statuses)
		}
	}
}

func (k *sink) dump() string {
	var b strings.Builder
	for _, d := range k.got {
		fmt.Fprintf(&b, "\n  ids %v %s", d.IDs, d.Data)
	}
	return b.String()
}

// deliveries waits for n deliveries and returns them.
func (k *sink) deliveries(t testing.TB, n int) []Delivery {
	t.Helper()
	k.until(t, fmt.Sprintf("%d deliveries", n), func() bool { return len(k.got) >= n })
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Delivery(nil), k.got...)
}

// ready waits for StatusReady.
func (k *sink) ready(t testing.TB) {
	t.Helper()
	k.until(t, "StatusReady", func() bool {
		for _, s := range k.statuses {
			if s.Kind == StatusReady {
				return true
			}
		}
		return false
	})
}

func (k *sink) status(t testing.TB, kind StatusKind, n int) []Status {
	t.Helper()
	var out []Status
	k.until(t, fmt.Sprintf("%d statuses of kind %d", n, kind), func() bool {
		out = out[:0]
		for _, s := range k.statuses {
			if s.Kind == kind {
				out = append(out, s)
			}
		}
		return len(out) >= n
	})
	return out
}

// subscribe subscribes and waits until ready.
func subscribe(t testing.TB, f *Feed, k *sink, role, claims string, bindings ...Binding) *Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := f.Subscribe(ctx, k.request(role, claims, bindings...))
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(s.Close)
	k.ready(t)
	return s
}

// dataOf decodes a delivery's data with exact numbers.
func dataOf(t testing.TB, d Delivery) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(d.Data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("data %s: %v", d.Data, err)
	}
	return m
}

// wantJSON fails unless got is the JSON value want.
func wantJSON(t testing.TB, what string, got any, want string) {
	t.Helper()
	g, _ := json.Marshal(got)
	var a, b any
	da := json.NewDecoder(bytes.NewReader(g))
	da.UseNumber()
	da.Decode(&a)
	db := json.NewDecoder(strings.NewReader(want))
	db.UseNumber()
	if err := db.Decode(&b); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s:\n got  %s\n want %s", what, g, want)
	}
}
