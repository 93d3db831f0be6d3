package demodb

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/internal/pgtest"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgrealtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The demo database starts, the subscription channel's binding is valid,
// and the writer's changes reach it; Close removes everything.
func TestAutoDemo(t *testing.T) {
	if pgtest.Unavailable(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := startAuto(ctx, t)
	f, err := pgcdc.Open(ctx, pgcdc.Config{URL: a.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var types []string
	ready := make(chan struct{}, 1)
	got := make(chan struct{}, 16)
	sub, err := f.Subscribe(ctx, pgcdc.Request{Role: "anon",
		Bindings: []pgcdc.Binding{{ID: 1, Event: "*", Schema: "public", Table: "project", Filter: "id=eq.456"}},
		Deliver: func(d pgcdc.Delivery) {
			mu.Lock()
			types = append(types, d.Type+" "+d.Table)
			mu.Unlock()
			got <- struct{}{}
		},
		OnStatus: func(s pgcdc.Status) {
			if s.Kind == pgcdc.StatusReady {
				ready <- struct{}{}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("not ready")
	}
	seq := []float64{0.1, 0.3, 0.6, 0.2, 0.9, 0.2, 0.4}
	i := 0
	w, err := NewWriter(ctx, a.URL, func() float64 { v := seq[i%len(seq)]; i++; return v })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 3 {
		if _, err := w.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Steps: update project (0.1), insert task (0.6), done task (0.9):
	// the project binding sees the one update.
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("no change of project 456")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(types) != 1 || types[0] != "UPDATE project" {
		t.Errorf("changes %v", types)
	}
}

// startAuto starts the demo database, stopped when the test ends.
func startAuto(ctx context.Context, t *testing.T) *Auto {
	t.Helper()
	a, err := Start(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	return a
}

func TestUnavailableSource(t *testing.T) {
	src := pgcdc.Unavailable("PostgreSQL is not installed")
	if _, err := src.SubscribeChanges(context.Background(), server.ChangeRequest{}); err == nil || err.Error() != "PostgreSQL is not installed" {
		t.Errorf("err %v", err)
	}
}

// TestDemoPolicies: once Supabase's realtime schema exists, the demo's
// policies let a signed-in user read and write private topics and anon
// neither — checked by the authorizer rtm serve uses (pgrealtime's
// probes), not by reading the policies back.
func TestDemoPolicies(t *testing.T) {
	if pgtest.Unavailable(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := startAuto(ctx, t)
	if err := a.CreatePolicies(ctx); err == nil {
		t.Error("CreatePolicies before the realtime schema exists: no error")
	}
	db, err := pgrealtime.Open(ctx, pgrealtime.Config{URL: a.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 { // idempotent
		if err := a.CreatePolicies(ctx); err != nil {
			t.Fatal(err)
		}
	}
	auth := db.Authorizer()
	for _, c := range []struct {
		role, sub string
		want      bool
	}{{"authenticated", "3f1c1c1e-5b8e-4a59-9d2f-6a1f0d9f1a01", true}, {"anon", "", false}} {
		claims, _ := json.Marshal(map[string]string{"role": c.role, "sub": c.sub})
		req := server.AuthorizationRequest{Topic: "room:1", Role: c.role, Sub: c.sub, Claims: claims, Headers: json.RawMessage(`{}`), Presence: true}
		r, err := auth.AuthorizeRead(ctx, req)
		if err != nil {
			t.Fatalf("%s read: %v", c.role, err)
		}
		w, err := auth.AuthorizeWrite(ctx, req)
		if err != nil {
			t.Fatalf("%s write: %v", c.role, err)
		}
		want := server.Permissions{Broadcast: c.want, Presence: c.want}
		if r != want || w != want {
			t.Errorf("%s: read %+v, write %+v; want %+v", c.role, r, w, want)
		}
	}
}
