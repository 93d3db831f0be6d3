package realtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/hostile/tarpit"
)

// Connect deadlines against servers that never answer. The bound is the
// deadline plus connectGrace; the handshake timeout is far longer, so
// that only the deadline can end the attempt.
const (
	connectDeadline  = 300 * time.Millisecond
	connectGrace     = time.Second
	tarpitHandshake  = 5 * time.Second
	tarpitUnexpected = "handshake timeout"
)

// tarpitSocket returns a socket to p whose statuses are recorded.
func tarpitSocket(t *testing.T, p *tarpit.Tarpit, mods ...func(*Options)) (*Socket, *rec[StatusChange]) {
	t.Helper()
	r := newRec[StatusChange]()
	o := &Options{APIKey: "anon", HandshakeTimeout: tarpitHandshake, OnStatus: r.add}
	for _, m := range mods {
		m(o)
	}
	s, err := NewSocket(p.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// firstFailure waits for the first failed attempt and returns when it
// was reported and its error.
func firstFailure(t *testing.T, r *rec[StatusChange]) (time.Time, error) {
	t.Helper()
	evs := r.wait(t, "a failed attempt", func(evs []StatusChange) bool {
		for _, e := range evs {
			if e.Status == StatusReconnecting {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Status == StatusReconnecting {
			return e.At, e.Err
		}
	}
	panic("unreachable")
}

// TestConnectTarpit: against a server that stalls connecting at any
// step (TCP handshake, TLS handshake, upgrade request unread or
// unanswered), the attempt under way ends at the caller's deadline, on
// its cancellation, and on Close, whatever the handshake timeout; Dial
// returns at its deadline. Nothing is left running.
func TestConnectTarpit(t *testing.T) {
	for _, k := range tarpit.Kinds {
		t.Run(k.String()+"/deadline", func(t *testing.T) {
			noLeaks(t)
			p := tarpit.New(t, k)
			s, r := tarpitSocket(t, p)
			ctx, cancel := context.WithTimeout(context.Background(), connectDeadline)
			defer cancel()
			start := time.Now()
			err := s.Connect(ctx)
			took := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), k.Stage()) {
				t.Errorf("Connect: %v; want context.DeadlineExceeded %s", err, k.Stage())
			}
			if took > connectDeadline+connectGrace {
				t.Errorf("Connect took %v (deadline %v)", took, connectDeadline)
			}
			// The attempt itself ended at the deadline, not at the
			// handshake timeout.
			at, aerr := firstFailure(t, r)
			if !errors.Is(aerr, context.DeadlineExceeded) || strings.Contains(aerr.Error(), tarpitUnexpected) || !strings.Contains(aerr.Error(), k.Stage()) {
				t.Errorf("first attempt failed with %v; want the deadline %s", aerr, k.Stage())
			}
			if d := at.Sub(start); d > connectDeadline+connectGrace {
				t.Errorf("first attempt ended after %v (deadline %v, handshake timeout %v)", d, connectDeadline, tarpitHandshake)
			}
			if k != tarpit.SYN && p.Reached() == 0 {
				t.Errorf("the client never got to the stalled step")
			}
			closeWithin(t, s)
		})
		t.Run(k.String()+"/cancel", func(t *testing.T) {
			noLeaks(t)
			p := tarpit.New(t, k)
			s, r := tarpitSocket(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			stall := time.AfterFunc(connectDeadline, cancel)
			defer stall.Stop()
			start := time.Now()
			err := s.Connect(ctx)
			if took := time.Since(start); took > connectDeadline+connectGrace {
				t.Errorf("Connect took %v (cancelled at %v)", took, connectDeadline)
			}
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), k.Stage()) {
				t.Errorf("Connect: %v; want context.Canceled %s", err, k.Stage())
			}
			at, aerr := firstFailure(t, r)
			if !errors.Is(aerr, context.Canceled) {
				t.Errorf("first attempt failed with %v; want the cancellation", aerr)
			}
			if d := at.Sub(start); d > connectDeadline+connectGrace {
				t.Errorf("first attempt ended after %v (cancelled at %v)", d, connectDeadline)
			}
			closeWithin(t, s)
		})
		t.Run(k.String()+"/close", func(t *testing.T) {
			noLeaks(t)
			p := tarpit.New(t, k)
			s, r := tarpitSocket(t, p)
			done := make(chan error, 1)
			go func() { done <- s.Connect(context.Background()) }()
			r.wait(t, "the first attempt", func(evs []StatusChange) bool { return len(evs) > 0 })
			if k != tarpit.SYN {
				eventually(t, "the client at the stalled step", func() bool { return p.Reached() > 0 })
			}
			closeWithin(t, s)
			if err := <-done; !errors.Is(err, ErrClosed) {
				t.Errorf("Connect after Close: %v; want ErrClosed", err)
			}
		})
		t.Run(k.String()+"/dial", func(t *testing.T) {
			noLeaks(t)
			p := tarpit.New(t, k)
			ctx, cancel := context.WithTimeout(context.Background(), connectDeadline)
			defer cancel()
			start := time.Now()
			s, err := Dial(ctx, p.URL, &Options{APIKey: "anon", HandshakeTimeout: tarpitHandshake})
			if took := time.Since(start); took > connectDeadline+connectGrace {
				t.Errorf("Dial took %v (deadline %v)", took, connectDeadline)
			}
			if s != nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Dial: %v, %v; want context.DeadlineExceeded", s, err)
			}
		})
	}
}

// closeWithin closes s and fails when that takes longer than the grace.
func closeWithin(t *testing.T, s *Socket) {
	t.Helper()
	start := time.Now()
	s.Close()
	if took := time.Since(start); took > connectGrace {
		t.Errorf("Close took %v", took)
	}
}

// TestHandshakeTimeoutAfterConnect: Connect's deadline bounds only the
// attempt under way; the loop's later attempts end at the handshake
// timeout, with an error naming it.
func TestHandshakeTimeoutAfterConnect(t *testing.T) {
	p := tarpit.New(t, tarpit.Silent)
	s, r := tarpitSocket(t, p, func(o *Options) {
		o.HandshakeTimeout = 2 * connectDeadline
		o.ReconnectAfter = func(int) time.Duration { return 10 * time.Millisecond }
	})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), connectDeadline)
	defer cancel()
	if err := s.Connect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect: %v", err)
	}
	evs := r.wait(t, "two failed attempts", func(evs []StatusChange) bool {
		n := 0
		for _, e := range evs {
			if e.Status == StatusReconnecting {
				n++
			}
		}
		return n >= 2
	})
	var errs []error
	for _, e := range evs {
		if e.Status == StatusReconnecting {
			errs = append(errs, e.Err)
		}
	}
	if strings.Contains(errs[0].Error(), tarpitUnexpected) {
		t.Errorf("attempt 1 (under way at Connect's deadline) failed with %v; want Connect's deadline", errs[0])
	}
	want := "handshake timeout 600ms: context deadline exceeded awaiting the WebSocket upgrade response"
	if !errors.Is(errs[1], context.DeadlineExceeded) || errs[1].Error() != want {
		t.Errorf("attempt 2 failed with %v; want %q", errs[1], want)
	}
}

// noLeaks fails t when goroutines it started are still running after
// its cleanups.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}
