package headless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"rtm/registry"
	"rtm/registry/compare"
	"rtm/registry/limits"
)

// StreamOptions configures [Watch] and [Record].
type StreamOptions struct {
	// Joins are the channels to join. Presence channels are joined as
	// As (its id is the presence key, and it is tracked) when As is set.
	Joins []registry.Name
	// Private joins them as private channels, which the server
	// authorises (rtm serve --db: by the RLS policies on
	// realtime.messages); a refusal is a channel_state event with the
	// server's reason, not a fatal error.
	Private bool
	// As is the user presence channels are tracked as ("": the target's
	// --as, if any; presence channels are then joined without tracking).
	As string
	// Identity is who to connect as (zero: the target's own identity).
	Identity Identity
	// Duration ends the stream after this long (0: until ctx ends).
	Duration time.Duration
	// Frames adds every raw frame in and out (always on for Record).
	Frames bool
	// Types, when not empty, keeps only these event types (Watch).
	Types []registry.EventType
	// ConnectTimeout bounds the first connection (default 30 s): a
	// target that cannot be reached is a fatal error. The attempt under
	// way ends then, whatever step it is stuck in (DNS and TCP, TLS, the
	// upgrade), and the stream returns at once.
	ConnectTimeout time.Duration
	// Policy is the channel retry policy (nil: the default).
	Policy registry.Policy
	// Buffer is the subscription's buffer (default 65,536 events) and
	// BufferBytes its bytes (default registry.DefaultBufferBytes, 32 MiB):
	// the events waiting for the writer. When the output is slower than
	// the stream, what does not fit is dropped and counted (a "dropped"
	// line tells how many), and a message that does not fit whole is
	// written truncated (its first registry.PreviewBytes, "truncated":
	// true, its "size"); frames are never cut, only dropped. The stream
	// never waits for the output: what it holds is the buffer and the
	// batch being written, at most twice BufferBytes.
	Buffer      int
	BufferBytes int
	// Limits, when set, adds a `limits` line about once a second (Watch;
	// see [LimitsOptions]).
	Limits *LimitsOptions
	// Identities, when not empty, makes Watch connect once per identity
	// (each its own manager, socket and token: the manager's rules hold
	// per identity), join every channel of Joins as each, tag every line
	// with "identity":NAME, and, with two or more, write `compare` lines
	// ([CompareLine]) from package registry/compare. A subscription
	// channel gets a postgres_changes binding on its table: every row for
	// subscription:TABLE:* ([AllRows]), the row id=ID otherwise. Limits
	// are refused with it; Record ignores it.
	Identities []Identity
	// PrivateJoins are channels joined as private channels besides Joins
	// (by every identity when there are Identities).
	PrivateJoins []registry.Name
	// Compare configures the comparison of Identities (nil: the
	// defaults; Compare.Rows gives RLS verdicts).
	Compare *compare.Options
	// OnReady is called once the socket is open and the joins are made
	// (they may still be under way); tests use it to start traffic.
	OnReady func(m *registry.Manager)
}

// Summary is what a stream wrote.
type Summary struct {
	End
	// Channels are the final infos of the channels joined.
	Channels []registry.ChannelInfo
}

// Watch prints every event of a manager on the target as NDJSON to w,
// one event per line in the registry's stable JSON form (see
// registry.DecodeEvent), secrets masked, until ctx ends or o.Duration
// passes. It returns an error (a fatal one: the target cannot be reached,
// a join is refused by a cap, w fails) or nil.
func Watch(ctx context.Context, env *Env, w io.Writer, o StreamOptions) (Summary, error) {
	if len(o.Identities) > 0 {
		if o.ConnectTimeout <= 0 {
			o.ConnectTimeout = 30 * time.Second
		}
		if o.Buffer <= 0 {
			o.Buffer = 1 << 16
		}
		return watchIdentities(ctx, env, w, o)
	}
	return stream(ctx, env, w, o, false)
}

// Record writes a recording of a manager on the target to w: a header
// line, every frame in and out with its time and direction, every event
// of the manager (states, presence, messages, retries, logs), and an end
// line — the format [ReadRecording] reads. Keys and tokens are masked.
func Record(ctx context.Context, env *Env, w io.Writer, o StreamOptions) (Summary, error) {
	o.Frames = true
	o.Types = nil
	o.Identities = nil
	return stream(ctx, env, w, o, true)
}

func stream(ctx context.Context, env *Env, w io.Writer, o StreamOptions, header bool) (sum Summary, err error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 1 << 16
	}
	as := o.As
	if as == "" {
		as = env.Target.As
	}
	m, err := env.NewManager(o.Identity, ManagerOptions{Policy: o.Policy})
	if err != nil {
		return sum, err
	}
	defer m.Close()
	sub := m.Subscribe(context.Background(), registry.SubscribeOptions{Buffer: o.Buffer, BufferBytes: o.BufferBytes, Types: o.Types, Frames: o.Frames})
	defer sub.Close()

	var h *Header
	if header {
		st := m.Snapshot()
		h = &Header{Started: time.Now(), Target: st.Target.URL, Embedded: st.Target.Embedded,
			Serializer: st.Target.Serializer, Identity: identityText(st.Token), Channels: o.Joins, Tool: toolVersion()}
	}
	wr, err := NewWriter(w, h)
	if err != nil {
		return sum, err
	}

	// The pump writes what the subscription holds until told to stop,
	// then drains once more.
	stop := make(chan struct{})
	var reports chan limits.Report
	feedDone := make(chan struct{})
	if o.Limits != nil && !header {
		lo := *o.Limits
		if lo.Source == nil {
			lo.Source = env.LimitsSource()
		}
		reports = make(chan limits.Report, 1)
		go func() { defer close(feedDone); limitsFeed(m, lo, reports, stop) }()
	} else {
		close(feedDone)
	}
	pumpDone := make(chan error, 1)
	go func() { pumpDone <- pump(sub, wr, stop, reports) }()
	finish := func(runErr error) (Summary, error) {
		// Leave politely so the recording shows the leaves, then close.
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = m.CleanupAll(lctx)
		cancel()
		sum.Channels = m.Channels()
		close(stop)
		<-feedDone
		perr := <-pumpDone
		_ = m.Close()
		if perr == nil {
			perr = drainTo(sub, wr)
		}
		if cerr := wr.Close(time.Now()); perr == nil {
			perr = cerr
		}
		sum.End = wr.Counts()
		return sum, errors.Join(runErr, perr)
	}

	cctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	err = m.Connect(cctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return finish(nil)
		}
		// The attempt under way ended with Connect (its error names the
		// step it was stuck in); the last failure adds what went before.
		st := m.Snapshot()
		reason := st.Socket.LastError
		if reason == "" {
			reason = st.Socket.Reason
		}
		if reason == "" || strings.Contains(err.Error(), reason) {
			return finish(fmt.Errorf("connect to %s: no connection within %s: %w", st.Target.URL, o.ConnectTimeout, err))
		}
		return finish(fmt.Errorf("connect to %s: no connection within %s (%s): %w", st.Target.URL, o.ConnectTimeout, reason, err))
	}
	for i, n := range append(slices.Clip(o.Joins), o.PrivateJoins...) {
		user := ""
		if n.Kind == registry.KindPresence {
			user = as
		}
		var opts []registry.JoinOption
		if o.Private || i >= len(o.Joins) {
			opts = append(opts, registry.Private())
		}
		if _, err := joinAs(ctx, m, n, user, opts...); err != nil {
			if ctx.Err() != nil {
				return finish(nil)
			}
			return finish(fmt.Errorf("join %s: %w", n, err))
		}
	}
	if o.OnReady != nil {
		o.OnReady(m)
	}
	waitEnd(ctx, o.Duration, pumpDone)
	return finish(nil)
}

// waitEnd waits until ctx ends, d passes (0: no limit) or the writer
// fails (an error on done, a closed pipe: fatal), which it puts back on
// done for the caller's finish to read.
func waitEnd(ctx context.Context, d time.Duration, done chan error) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	case err := <-done:
		done <- err
	}
}

// pump writes events as they come, and the limits reports (reports nil:
// none), until stop is closed or a write fails.
func pump(sub *registry.Subscription, wr *Writer, stop <-chan struct{}, reports <-chan limits.Report) error {
	var buf []registry.Event
	for {
		select {
		case <-stop:
			return nil
		case <-sub.Done():
			return nil
		case r := <-reports:
			if err := wr.WriteLimits(r); err != nil {
				return err
			}
			if err := wr.Flush(); err != nil {
				return err
			}
			continue
		case <-sub.Ready():
		}
		buf = sub.Drain(buf[:0])
		for i, e := range buf {
			if err := wr.Write(e); err != nil {
				return err
			}
			buf[i] = nil // written: it may hold a frame of 32 MiB
		}
		if err := wr.Flush(); err != nil {
			return err
		}
	}
}

func drainTo(sub *registry.Subscription, wr *Writer) error {
	for _, e := range sub.Drain(nil) {
		if err := wr.Write(e); err != nil {
			return err
		}
	}
	return wr.Flush()
}

func identityText(t registry.TokenInfo) string {
	if !t.Present {
		return "anon (API key only)"
	}
	s := t.Subject
	if s == "" {
		s = "(no sub)"
	}
	if t.Role != "" {
		s += " (" + t.Role + ")"
	}
	return s
}

func toolVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "rtm"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	return "rtm " + v
}
