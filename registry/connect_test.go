package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/hostile/tarpit"
	"rtm/realtime/server/servertest"
	"rtm/registry"
)

const (
	connectDeadline = 300 * time.Millisecond
	connectGrace    = time.Second
)

// connectWithin connects m with a deadline and closes it, failing when
// either takes longer than the deadline plus the grace; it returns the
// error of Connect.
func connectWithin(t *testing.T, m *registry.Manager) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectDeadline)
	defer cancel()
	start := time.Now()
	err := m.Connect(ctx)
	if took := time.Since(start); took > connectDeadline+connectGrace {
		t.Errorf("Connect took %v (deadline %v)", took, connectDeadline)
	}
	start = time.Now()
	if cerr := m.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	if took := time.Since(start); took > connectGrace {
		t.Errorf("Close after the failed Connect took %v", took)
	}
	return err
}

// TestManagerConnectTarpit: Connect ends at its deadline against a
// server that never finishes a connection (through the fault transport,
// as always), with an error naming the step it was stuck in, and Close
// then returns at once: nothing waits for the client's handshake timeout.
func TestManagerConnectTarpit(t *testing.T) {
	for _, k := range tarpit.Kinds {
		t.Run(k.String(), func(t *testing.T) {
			noLeaks(t)
			p := tarpit.New(t, k)
			m, err := registry.New(registry.Options{URL: p.URL, APIKey: "anon"})
			if err != nil {
				t.Fatal(err)
			}
			err = connectWithin(t, m)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), k.Stage()) {
				t.Errorf("Connect: %v; want context.DeadlineExceeded %s", err, k.Stage())
			}
		})
	}
}

// TestManagerConnectUnderLatency: with a latency fault longer than the
// deadline, the upgrade cannot complete in time; Connect ends at its
// deadline and Close at once, rather than when the slowed handshake
// completes.
func TestManagerConnectUnderLatency(t *testing.T) {
	noLeaks(t)
	srv := servertest.New(t)
	m, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Faults().Latency(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	err = connectWithin(t, m)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect: %v; want context.DeadlineExceeded", err)
	}
}

// noLeaks fails t when goroutines it started are still running after
// its cleanups.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}
