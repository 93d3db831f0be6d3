package realtime

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for an outcome in these tests.
const waitTimeout = 10 * time.Second

// fast are test options: short reconnect and rejoin ladders, quick
// heartbeats.
func fast(o *Options) {
	o.ReconnectAfter = func(int) time.Duration { return 20 * time.Millisecond }
	o.RejoinAfter = func(int) time.Duration { return 20 * time.Millisecond }
	o.HeartbeatInterval = 500 * time.Millisecond
	o.PushTimeout = 2 * time.Second
}

// dial opens a socket to srv with the anon key and the given option
// changes; it is closed when the test ends.
func dial(t testing.TB, srv *servertest.Server, mods ...func(*Options)) *Socket {
	t.Helper()
	return dialURL(t, srv.URL, srv.AnonKey(), mods...)
}

// dialURL opens a socket to url with key.
func dialURL(t testing.TB, url, key string, mods ...func(*Options)) *Socket {
	t.Helper()
	o := &Options{APIKey: key}
	for _, m := range mods {
		m(o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rec records the events of a channel (or the statuses of a socket).
type rec[T any] struct {
	mu     sync.Mutex
	events []T
	signal chan struct{}
}

func newRec[T any]() *rec[T] { return &rec[T]{signal: make(chan struct{})} }

func (r *rec[T]) add(e T) {
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.signal)
	r.signal = make(chan struct{})
	r.mu.Unlock()
}

func (r *rec[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.events...)
}

// wait waits until pred holds for the recorded events and returns them.
func (r *rec[T]) wait(t testing.TB, what string, pred func([]T) bool) []T {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		evs := append([]T(nil), r.events...)
		sig := r.signal
		r.mu.Unlock()
		if pred(evs) {
			return evs
		}
		select {
		case <-sig:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s; got %s", what, describe(evs))
		}
	}
}

func describe[T any](evs []T) string {
	var b strings.Builder
	for i, e := range evs {
		if i == 20 {
			fmt.Fprintf(&b, " ... (%d)", len(evs))
			break
		}
		switch v := any(e).(type) {
		case Event:
			fmt.Fprintf(&b, " [%v %v %v %s]", v.Type, v.Status, v.Err, v.Broadcast.Event)
		case StatusChange:
			fmt.Fprintf(&b, " [%v %v]", v.Status, v.Err)
		default:
			fmt.Fprintf(&b, " %+v", v)
		}
	}
	return b.String()
}

// statuses returns the subscription statuses among events.
func statuses(evs []Event) []SubscribeStatus {
	var out []SubscribeStatus
	for _, e := range evs {
		if e.Type == EventStatus {
			out = append(out, e.Status)
		}
	}
	return out
}

// countStatus counts events with status st.
func countStatus(evs []Event, st SubscribeStatus) int {
	n := 0
	for _, e := range evs {
		if e.Type == EventStatus && e.Status == st {
			n++
		}
	}
	return n
}

// broadcasts returns the broadcasts among events.
func broadcasts(evs []Event) []Broadcast {
	var out []Broadcast
	for _, e := range evs {
		if e.Type == EventBroadcast {
			out = append(out, e.Broadcast)
		}
	}
	return out
}

// channel makes a channel recording its events.
func channel(t testing.TB, s *Socket, name string, cfg ChannelConfig) (*Channel, *rec[Event]) {
	t.Helper()
	r := newRec[Event]()
	cfg.OnEvent = r.add
	ch, err := s.Channel(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ch, r
}
