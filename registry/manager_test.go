package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/clock"
	"rtm/registry/serverctl"
)

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		runBenchServer() // a child of the benchmarks
	}
	goleak.VerifyTestMain(m)
}

// env is a manager connected to a fresh embedded server.
type env struct {
	t   *testing.T
	srv *servertest.Server
	m   *registry.Manager
	clk *clock.Fake // nil with the real clock
}

type envOpt func(*registry.Options, *[]servertest.Option)

func withFakeClock(c *clock.Fake) envOpt {
	return func(o *registry.Options, _ *[]servertest.Option) { o.Clock = c }
}

func withOpts(f func(*registry.Options)) envOpt {
	return func(o *registry.Options, _ *[]servertest.Option) { f(o) }
}

func withServer(so ...servertest.Option) envOpt {
	return func(_ *registry.Options, s *[]servertest.Option) { *s = append(*s, so...) }
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	var o registry.Options
	var so []servertest.Option
	for _, f := range opts {
		f(&o, &so)
	}
	srv := servertest.New(t, so...)
	o.URL = srv.URL
	o.APIKey = srv.AnonKey()
	control, err := serverctl.NewHTTP(srv.URL, srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Server = control
	o.Embedded = true
	if o.ReconnectAfter == nil {
		o.ReconnectAfter = func(int) time.Duration { return 20 * time.Millisecond }
	}
	secret := srv.Secret()
	o.MintToken = func(claims map[string]any) (string, error) { return token.Sign(secret, claims) }
	m, err := registry.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, m: m}
	if c, ok := o.Clock.(*clock.Fake); ok {
		e.clk = c
	}
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 15*time.Second, what, cond)
}

// eventuallyWithin is eventually with another deadline, for work that
// is merely big (a 200,000-user presence state under the race detector
// on a loaded machine).
func eventuallyWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

func (e *env) info(n registry.Name) registry.ChannelInfo {
	e.t.Helper()
	i, err := e.m.Info(n)
	if err != nil {
		e.t.Fatalf("Info(%s): %v", n, err)
	}
	return i
}

func (e *env) waitStatus(n registry.Name, st registry.Status) registry.ChannelInfo {
	e.t.Helper()
	var last registry.ChannelInfo
	eventually(e.t, fmt.Sprintf("%s to be %s", n, st), func() bool {
		i, err := e.m.Info(n)
		last = i
		return err == nil && i.Status == st
	})
	return last
}

// serverChannels returns the topics the server holds for all its
// connections.
func (e *env) serverChannels() []string {
	var out []string
	for _, c := range e.srv.Conns() {
		for _, ch := range c.Channels {
			out = append(out, ch.Topic)
		}
	}
	return out
}

func (e *env) joins() uint64 { return e.srv.Stats().Joins }

// socketDownForGood drops the socket and fails every reconnect.
func (e *env) socketDownForGood() {
	e.t.Helper()
	f := e.m.Faults()
	if err := f.FailConnects(1_000_000); err != nil {
		e.t.Fatal(err)
	}
	if _, err := f.Drop(); err != nil {
		e.t.Fatal(err)
	}
}

func TestDuplicatePreventionUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	name := registry.MustName(registry.KindPresence, "contact", "123", "")
	var wg sync.WaitGroup
	handles := make([]*registry.Handle, 10)
	errs := make([]error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handles[i], errs[i] = e.m.Join(ctx(t), name)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	for _, h := range handles {
		if err := h.Ready(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.info(name).RefCount; got != 10 {
		t.Fatalf("ref count %d, want 10", got)
	}
	// Exactly one phx_join reached the server, and it holds one channel.
	if j := e.joins(); j != 1 {
		t.Fatalf("server saw %d joins, want 1", j)
	}
	if got := e.serverChannels(); len(got) != 1 || got[0] != name.Topic() {
		t.Fatalf("server channels %v", got)
	}
	// Releasing all but one keeps the channel on the server.
	for _, h := range handles[1:] {
		if err := h.Release(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if i := e.info(name); i.RefCount != 1 || i.Status != registry.StatusConnected {
		t.Fatalf("after 9 releases: %+v", i)
	}
	if len(e.serverChannels()) != 1 {
		t.Fatal("channel left the server before the last release")
	}
	// Releasing twice is harmless; the last release leaves.
	if err := handles[1].Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := handles[0].Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Info(name); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Info after the last release: %v", err)
	}
	eventually(t, "the server to drop the channel", func() bool { return len(e.serverChannels()) == 0 })
	if err := handles[0].Broadcast(ctx(t), "x", nil); !errors.Is(err, registry.ErrReleased) {
		t.Fatalf("Broadcast on a released handle: %v", err)
	}
}

func TestPresenceJoinTrackAndCleanup(t *testing.T) {
	e := newEnv(t)
	h, err := e.m.JoinPresence(ctx(t), "contact", "123", registry.PresenceUser{UserID: "alice", Name: "Alice", Payload: json.RawMessage(`{"status":"online"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	name := h.Name()
	eventually(t, "alice in the presence cache", func() bool {
		users, _ := e.m.Presence(name)
		return len(users) == 1 && users[0].UserID == "alice" && users[0].Name == "Alice" && users[0].Self
	})
	logs := e.m.Logs(0)
	var msgs []string
	for _, r := range logs {
		msgs = append(msgs, r.Message)
	}
	joined := strings.Join(msgs, "|")
	for _, want := range []string{"Creating new presence channel", "Channel joined", "Presence synced", "User joined presence"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("log lacks %q: %s", want, joined)
		}
	}
	if err := e.m.CleanupAll(ctx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to hold no channel", func() bool { return len(e.serverChannels()) == 0 })
	if st := e.m.Snapshot(); len(st.Channels) != 0 || st.Stats.Total != 0 {
		t.Fatalf("after cleanup: %+v", st.Channels)
	}
}

// The socket's round-trip time is known right after connecting, not one
// heartbeat interval later.
func TestRTTKnownRightAfterConnect(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.HeartbeatInterval = time.Hour }))
	eventually(t, "an RTT in the snapshot", func() bool { return e.m.Snapshot().Socket.RTT > 0 })
}

// A burst of broadcasts reaches the manager in the client's batches:
// every message arrives once and in order at the listener and at a
// MessageBatches subscriber, the counters see them all, and the
// channel's message ring keeps the newest, whether the ring is larger
// than a batch (messages built in place) or smaller (copied in).
func TestBroadcastBurst(t *testing.T) {
	for _, ring := range []int{0, 5} {
		t.Run(fmt.Sprintf("ring%d", ring), func(t *testing.T) {
			e := newEnv(t, withOpts(func(o *registry.Options) { o.MessageRing = ring }),
				withServer(servertest.WithLimits(server.Limits{Off: true}), servertest.WithConfig(func(c *server.Config) { c.OutboundQueue = 1 << 14 })))
			var mu sync.Mutex
			var heard []string
			h, err := e.m.JoinBroadcast(ctx(t), "doc", "burst", registry.OnBroadcast("seq", func(b registry.Broadcast) {
				mu.Lock()
				heard = append(heard, string(b.Payload))
				mu.Unlock()
			}))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Ready(ctx(t)); err != nil {
				t.Fatal(err)
			}
			sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Buffer: 1 << 14, MessageBatches: true, Types: []registry.EventType{registry.TypeMessageBatch}})
			defer sub.Close()
			const n = 2000
			for i := range n {
				e.srv.Broadcast(h.Name().Topic(), "seq", json.RawMessage(`{"i":`+strconv.Itoa(i)+`}`))
			}
			var got []string
			var evs []registry.Event
			deadline := time.Now().Add(15 * time.Second)
			for len(got) < n && time.Now().Before(deadline) {
				select {
				case <-sub.Ready():
				case <-time.After(100 * time.Millisecond):
				}
				evs = sub.Drain(evs[:0])
				for _, ev := range evs {
					for _, m := range ev.(registry.MessageBatchEvent).Messages {
						got = append(got, string(m.Payload))
					}
				}
			}
			want := func(i int) string { return `{"i":` + strconv.Itoa(i) + `}` }
			if len(got) != n || sub.Dropped() != 0 {
				t.Fatalf("subscriber got %d of %d (dropped %d); server %+v", len(got), n, sub.Dropped(), e.srv.Stats())
			}
			for i, p := range got {
				if p != want(i) {
					t.Fatalf("subscriber message %d is %s", i, p)
				}
			}
			eventually(t, "the listener", func() bool { mu.Lock(); defer mu.Unlock(); return len(heard) >= n })
			mu.Lock()
			for i, p := range heard {
				if p != want(i) {
					t.Fatalf("listener message %d is %s", i, p)
				}
			}
			mu.Unlock()
			if in := e.info(h.Name()).MessagesIn; in != n {
				t.Fatalf("MessagesIn %d", in)
			}
			keep := ring
			if keep == 0 {
				keep = registry.DefaultMessageRing
			}
			kept, err := e.m.Messages(h.Name(), 0)
			if err != nil || len(kept) != keep {
				t.Fatalf("ring kept %d (%v), want %d", len(kept), err, keep)
			}
			for i, m := range kept {
				if string(m.Payload) != want(n-keep+i) || m.Direction != registry.In || m.Event != "seq" {
					t.Fatalf("ring message %d: %+v", i, m)
				}
			}
		})
	}
}

// The channel's message ring gives back what was sent and received,
// text and binary, with its channel and direction.
func TestMessageRingKeepsBinaryAndText(t *testing.T) {
	e := newEnv(t)
	h, err := e.m.JoinBroadcast(ctx(t), "doc", "ring", registry.WithBroadcastConfig(true, true))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := h.BroadcastBinary(ctx(t), "blob", []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	if err := h.Broadcast(ctx(t), "note", json.RawMessage(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	var got []registry.MessageEvent
	eventually(t, "both messages back (self)", func() bool {
		got, err = e.m.Messages(h.Name(), 0)
		return err == nil && len(got) == 4
	})
	type seen struct {
		dir         registry.Direction
		event, text string
		bin         []byte
	}
	var in, out []seen
	for _, m := range got {
		if m.Channel != h.Name() || m.Kind != registry.MessageBroadcast {
			t.Fatalf("message %+v", m)
		}
		s := seen{m.Direction, m.Event, string(m.Payload), m.Binary}
		if m.Direction == registry.In {
			in = append(in, s)
		} else {
			out = append(out, s)
		}
	}
	for _, side := range [][]seen{in, out} {
		if len(side) != 2 || side[0].event != "blob" || !bytes.Equal(side[0].bin, []byte{0, 1, 2, 255}) || side[0].text != "" ||
			side[1].event != "note" || side[1].text != `{"a":1}` || side[1].bin != nil {
			t.Fatalf("ring: in %+v, out %+v", in, out)
		}
	}
}
