package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/clock"
)

func TestSocketDownDoesNotSpendAttempts(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	e := newEnv(t, withFakeClock(clk))
	e.srv.RejectJoins(server.Rejection{Count: 1000})
	name := registry.MustName(registry.KindBroadcast, "document", "789", "")
	if _, err := e.m.Join(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	e.advanceToNextAttempt(name, 1, 3*time.Second)
	e.advanceToNextAttempt(name, 2, 3*time.Second)
	eventually(t, "attempt 3 scheduled", func() bool { i := e.info(name); return i.Attempts == 2 && !i.NextAttemptAt.IsZero() })
	refused := e.srv.Stats().RejectedJoins // 3

	// The socket goes down and stays down: the pending attempt is held.
	e.socketDownForGood()
	eventually(t, "the channel to see the socket down", func() bool {
		i := e.info(name)
		return i.Status == registry.StatusDisconnected && i.NextAttemptAt.IsZero()
	})
	eventually(t, "several failed reconnects", func() bool { return e.m.Snapshot().Socket.Attempt >= 3 })
	for range 20 {
		clk.Advance(time.Minute)
	}
	if i := e.info(name); i.Attempts != 2 || i.Status != registry.StatusDisconnected {
		t.Fatalf("attempts spent while the socket was down: %+v", i)
	}
	if got := e.srv.Stats().RejectedJoins; got != refused {
		t.Fatalf("joins reached the server while down: %d -> %d", refused, got)
	}

	// The socket comes back: the client's own rejoin (free) is refused,
	// and the series resumes at attempt 3.
	if err := e.m.Faults().FailConnects(0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the socket to reconnect", func() bool { return e.m.Snapshot().Socket.Status == registry.SocketConnected })
	eventually(t, "attempt 3 to be scheduled", func() bool { i := e.info(name); return i.Attempts == 2 && !i.NextAttemptAt.IsZero() })
	if got := e.srv.Stats().RejectedJoins; got != refused+1 {
		t.Fatalf("after reconnect the server refused %d joins, want %d", got, refused+1)
	}
	for n := 3; n <= 5; n++ {
		e.advanceToNextAttempt(name, n, 3*time.Second)
	}
	info := e.waitStatus(name, registry.StatusError)
	if info.Attempts != 5 {
		t.Fatalf("info %+v", info)
	}
	if m := e.m.Metrics(); m.SocketAttempts < 4 || m.ChannelAttempts != 5 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestReferenceCountingAndKeepAlive(t *testing.T) {
	e := newEnv(t)
	name := registry.MustName(registry.KindBroadcast, "document", "789", "")
	h1, err := e.m.Join(ctx(t), name, registry.KeepAlive())
	if err != nil {
		t.Fatal(err)
	}
	h2, err := e.m.JoinBroadcast(ctx(t), "document", "789")
	if err != nil {
		t.Fatal(err)
	}
	if h1.Name() != h2.Name() {
		t.Fatal("not the same channel")
	}
	if err := h2.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if i := e.info(name); i.RefCount != 2 || !i.KeepAlive {
		t.Fatalf("info %+v", i)
	}
	_ = h1.Release(ctx(t))
	_ = h2.Release(ctx(t))
	// Kept alive with no reference.
	if i := e.info(name); i.RefCount != 0 || i.Status != registry.StatusConnected {
		t.Fatalf("kept-alive channel %+v", i)
	}
	if len(e.serverChannels()) != 1 {
		t.Fatal("kept-alive channel left the server")
	}
	// A new join shares it again without a join on the wire.
	h3, err := e.m.Join(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	if e.joins() != 1 {
		t.Fatalf("joins %d", e.joins())
	}
	// Leave forces it out, whatever the references.
	if err := e.m.Leave(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to drop it", func() bool { return len(e.serverChannels()) == 0 })
	if err := h3.Release(ctx(t)); err != nil {
		t.Fatalf("release after Leave: %v", err)
	}
	if err := e.m.Leave(ctx(t), name); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("second Leave: %v", err)
	}
}

func TestListenersRestoredOnRejoinAndRecreation(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	e := newEnv(t, withFakeClock(clk))
	var mu sync.Mutex
	var got []string
	h, err := e.m.JoinBroadcast(ctx(t), "document", "789", registry.OnBroadcast("cursor", func(b registry.Broadcast) {
		mu.Lock()
		got = append(got, string(b.Payload))
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	sub, err := e.m.SubscribeEntity(ctx(t), "project", "456", registry.ChangeFilter{Event: "UPDATE"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	has := func(payload string) bool { return slices.Contains(received(), payload) }
	send := func(i int) {
		t.Helper()
		topic := h.Name().Topic()
		payload := fmt.Sprintf(`{"n":%d}`, i)
		eventually(t, fmt.Sprintf("broadcast %d delivered", i), func() bool {
			// Resend until the listener gets it: the channel may still be
			// joining on the server side (so a payload may arrive twice).
			if has(payload) {
				return true
			}
			e.srv.Broadcast(topic, "cursor", json.RawMessage(payload))
			time.Sleep(20 * time.Millisecond)
			return has(payload)
		})
	}
	send(1)

	// 1. A socket drop: the client rejoins; the listener still fires.
	if _, err := e.m.Faults().Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejoin", func() bool { return e.info(h.Name()).Joins == 2 && e.info(h.Name()).Status == registry.StatusConnected })
	send(2)

	// 2. A server close (phx_close): the channel is gone from the client;
	// the policy recreates it with the same listener and filters.
	if n, err := e.m.Faults().Kick(ctx(t), h.Name(), registry.KickClose); err != nil || n != 1 {
		t.Fatalf("kick: %d, %v", n, err)
	}
	if n, err := e.m.Faults().Kick(ctx(t), sub.Name(), registry.KickClose); err != nil || n != 1 {
		t.Fatalf("kick: %d, %v", n, err)
	}
	e.advanceToNextAttempt(h.Name(), 1, 3*time.Second)
	e.waitStatus(h.Name(), registry.StatusConnected)
	eventually(t, "the subscription's attempt", func() bool {
		i := e.info(sub.Name())
		return !i.NextAttemptAt.IsZero() || i.Status == registry.StatusConnected
	})
	if i := e.info(sub.Name()); !i.NextAttemptAt.IsZero() {
		clk.Set(i.NextAttemptAt)
	}
	e.waitStatus(sub.Name(), registry.StatusConnected)
	send(3)
	r := slices.Compact(received()) // a resent payload may arrive twice in a row
	if len(r) < 3 || r[0] != `{"n":1}` || r[1] != `{"n":2}` || r[2] != `{"n":3}` {
		t.Fatalf("listener got %v", received())
	}
	// The recreated subscription joined with the same postgres filter.
	var pg []json.RawMessage
	for _, c := range e.srv.Conns() {
		for _, ch := range c.Channels {
			if ch.Topic == sub.Name().Topic() {
				pg = ch.PostgresChanges
			}
		}
	}
	if len(pg) != 1 {
		t.Fatalf("server bindings after recreation: %s", pg)
	}
	var b struct{ Event, Schema, Table, Filter string }
	if err := json.Unmarshal(pg[0], &b); err != nil || b.Event != "UPDATE" || b.Schema != "public" || b.Table != "project" || b.Filter != "id=eq.456" {
		t.Fatalf("binding %s", pg[0])
	}
	info := e.info(sub.Name())
	if len(info.Bindings) != 1 || info.Bindings[0].ID == 0 || info.Bindings[0].Listeners != 1 {
		t.Fatalf("bindings %+v", info.Bindings)
	}
}

func TestOfflineQueueOrderAndOverflow(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.OfflineQueue = 5 }))
	// A second client on the same topic receives what the first sends.
	peer := newPeer(t, e.srv)
	var mu sync.Mutex
	var got []string
	ph, err := peer.JoinBroadcast(ctx(t), "document", "789", registry.OnBroadcast("*", func(b registry.Broadcast) {
		mu.Lock()
		got = append(got, string(b.Payload))
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h, err := e.m.JoinBroadcast(ctx(t), "document", "789")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.socketDownForGood()
	eventually(t, "the channel down", func() bool { return e.info(h.Name()).Status == registry.StatusDisconnected })
	for i := range 5 {
		if err := h.Broadcast(ctx(t), "msg", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatalf("queued broadcast %d: %v", i, err)
		}
	}
	// The sixth overflows: refused, counted, reported.
	if err := h.Broadcast(ctx(t), "msg", json.RawMessage(`{"i":5}`)); !errors.Is(err, registry.ErrQueueFull) {
		t.Fatalf("overflow: %v", err)
	}
	if i := e.info(h.Name()); i.Queued != 5 || i.QueueDropped != 1 {
		t.Fatalf("queue info %+v", i)
	}
	if e.m.Metrics().QueueDropped != 1 {
		t.Fatal("queue drop not in the metrics")
	}
	_ = e.m.Faults().FailConnects(0)
	e.waitStatus(h.Name(), registry.StatusConnected)
	// After the rejoin a new broadcast goes after the queued ones.
	if err := h.Broadcast(ctx(t), "msg", json.RawMessage(`{"i":6}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the peer to receive everything", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 6
	})
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []int{0, 1, 2, 3, 4, 6} {
		if got[i] != fmt.Sprintf(`{"i":%d}`, want) {
			t.Fatalf("order: %v", got)
		}
	}
	if i := e.info(h.Name()); i.Queued != 0 || i.MessagesOut != 6 {
		t.Fatalf("after flush %+v", i)
	}
}

// newPeer is another manager on the same server.
func newPeer(t *testing.T, srv *servertest.Server, opts ...func(*registry.Options)) *registry.Manager {
	t.Helper()
	o := registry.Options{URL: srv.URL, APIKey: srv.AnonKey(), ReconnectAfter: func(int) time.Duration { return 20 * time.Millisecond }}
	for _, f := range opts {
		f(&o)
	}
	m, err := registry.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Connect(c); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCaps(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) {
		o.MaxChannels = 3
		o.EntityCaps = map[string]int{"contact": 1}
	}))
	if _, err := e.m.JoinPresence(ctx(t), "contact", "1", registry.PresenceUser{UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.JoinBroadcast(ctx(t), "contact", "2")
	var ce *registry.CapError
	if !errors.As(err, &ce) || ce.Scope != "entity type" || ce.EntityType != "contact" || ce.Limit != 1 || !errors.Is(err, registry.ErrCapReached) {
		t.Fatalf("entity cap: %v", err)
	}
	// Sharing an existing channel is not a new channel.
	if _, err := e.m.JoinPresence(ctx(t), "contact", "1", registry.PresenceUser{UserID: "u"}); err != nil {
		t.Fatalf("sharing refused by the cap: %v", err)
	}
	for i := range 2 {
		if _, err := e.m.JoinBroadcast(ctx(t), "document", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.m.JoinBroadcast(ctx(t), "document", "9")
	if !errors.As(err, &ce) || ce.Scope != "connection" || ce.Limit != 3 || ce.Current != 3 {
		t.Fatalf("connection cap: %v", err)
	}
	if e.m.Stats().Total != 3 {
		t.Fatal("refused join registered")
	}
}

func TestDefaultCapMatchesServerLimit(t *testing.T) {
	// The server refuses the 101st channel; the manager refuses it first,
	// with a clear error, and no join reaches the server.
	e := newEnv(t, withServer(servertest.WithLimits(server.Limits{MaxChannelsPerClient: 100, MaxJoinsPerSecond: 100000,
		MaxConcurrentUsers: 200, MaxEventsPerSecond: 100000, MaxPresenceEventsPerSecond: 100000, ClientPresenceMaxCalls: 5,
		ClientPresenceWindow: 30 * time.Second, MaxPayloadSizeKB: 3000})))
	var hs []*registry.Handle
	for i := range 100 {
		h, err := e.m.JoinBroadcast(ctx(t), "doc", fmt.Sprint(i))
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		if err := h.Ready(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.m.JoinBroadcast(ctx(t), "doc", "100")
	if !errors.Is(err, registry.ErrCapReached) {
		t.Fatalf("101st join: %v", err)
	}
	if j := e.joins(); j != 100 {
		t.Fatalf("server joins %d", j)
	}
	if err := e.m.CleanupAll(ctx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no channel left on the server", func() bool { return len(e.serverChannels()) == 0 })
}

func TestPresenceConvergesAcrossThreeClients(t *testing.T) {
	e := newEnv(t)
	ms := []*registry.Manager{e.m, newPeer(t, e.srv), newPeer(t, e.srv)}
	users := []string{"alice", "bob", "carol"}
	hs := make([]*registry.Handle, 3)
	for i, m := range ms {
		h, err := m.JoinPresence(ctx(t), "contact", "123", registry.PresenceUser{UserID: users[i], Name: users[i] + "!"})
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = h
	}
	name := hs[0].Name()
	names := func(m *registry.Manager) string {
		us, err := m.Presence(name)
		if err != nil {
			return err.Error()
		}
		s := ""
		for _, u := range us {
			s += u.UserID + ":" + u.Name + " "
		}
		return s
	}
	for i, m := range ms {
		eventually(t, fmt.Sprintf("client %d to see all three", i), func() bool {
			return names(m) == "alice:alice! bob:bob! carol:carol! "
		})
	}
	// Bob leaves: the others converge to two.
	if err := hs[1].Release(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		eventually(t, fmt.Sprintf("client %d to see bob leave", i), func() bool { return names(ms[i]) == "alice:alice! carol:carol! " })
	}
	// Carol's connection drops and comes back: she is tracked again.
	if _, err := ms[2].Faults().Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol back for alice", func() bool {
		return names(ms[0]) == "alice:alice! carol:carol! " && ms[2].Snapshot().Socket.Reconnects == 1
	})
	eventually(t, "carol to see herself again", func() bool { return names(ms[2]) == "alice:alice! carol:carol! " })
}

func TestTenantNames(t *testing.T) {
	// Tenant isolation is by name and by token: the server lets a token
	// with tenant_id "abc" join only tenant:abc:... topics.
	var srv *servertest.Server
	e := newEnv(t, withOpts(func(o *registry.Options) {
		o.Tenant = "abc"
		o.Policy = registry.Fixed{Interval: 10 * time.Millisecond, Max: 1}
	}))
	srv = e.srv
	e.m.SetToken(srv.UserToken(t, "u1", time.Hour, map[string]any{"tenant_id": "abc"}))
	h, err := e.m.JoinPresence(ctx(t), "contact", "123", registry.PresenceUser{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Name().String(); got != "tenant:abc:presence:contact:123" {
		t.Fatalf("name %q", got)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// Another tenant's client on the same entity.
	peer := newPeer(t, srv, func(o *registry.Options) {
		o.Tenant = "xyz"
		o.Token = srv.UserToken(t, "u2", time.Hour, map[string]any{"tenant_id": "xyz"})
	})
	other, err := peer.JoinPresence(ctx(t), "contact", "123", registry.PresenceUser{UserID: "u2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := other.Name().String(); got != "tenant:xyz:presence:contact:123" {
		t.Fatalf("peer name %q", got)
	}
	topics := map[string]bool{}
	for _, tp := range e.serverChannels() {
		topics[tp] = true
	}
	for _, want := range []string{"realtime:tenant:abc:presence:contact:123", "realtime:tenant:xyz:presence:contact:123"} {
		if !topics[want] {
			t.Fatalf("server topics %v lack %s", topics, want)
		}
	}
	// Each presence channel sees only its own tenant's user.
	eventually(t, "isolated presence", func() bool {
		a, _ := e.m.Presence(h.Name())
		b, _ := peer.Presence(other.Name())
		return len(a) == 1 && a[0].UserID == "u1" && len(b) == 1 && b[0].UserID == "u2"
	})
	// The abc client may not join xyz's channel: refused, with the reason.
	x, err := e.m.JoinBroadcast(ctx(t), "contact", "123", registry.WithTenant("xyz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Ready(ctx(t)); !errors.Is(err, registry.ErrChannelFailed) {
		t.Fatalf("cross-tenant join: %v", err)
	}
	if i := e.info(x.Name()); i.LastErrorCode != "Unauthorized" || i.Status != registry.StatusError {
		t.Fatalf("cross-tenant info %+v", i)
	}
	st := e.m.Snapshot()
	if st.Target.Tenant != "abc" || st.Stats.ByKind[registry.KindPresence] != 1 || st.Token.Subject != "u1" {
		t.Fatalf("snapshot %+v %+v %+v", st.Target, st.Stats, st.Token)
	}
	if _, err := e.m.JoinBroadcast(ctx(t), "contact", "1", registry.WithTenant("a:b")); !errors.Is(err, registry.ErrInvalidName) {
		t.Fatalf("bad tenant: %v", err)
	}
}

func TestTrackOnAChannelWithoutKeyRejoinsWithTheUserID(t *testing.T) {
	e := newEnv(t)
	name := registry.MustName(registry.KindPresence, "contact", "123", "")
	h, err := e.m.Join(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Track(ctx(t), name, registry.PresenceUser{UserID: "me", Name: "Me"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "me present as self under my user id", func() bool {
		us, _ := e.m.Presence(name)
		return len(us) == 1 && us[0].UserID == "me" && us[0].Self && us[0].Name == "Me"
	})
	if i := e.info(name); i.Config.PresenceKey != "me" || !i.Tracked || i.TrackedAs != "me" {
		t.Fatalf("info %+v", i)
	}
	// The server keys the presence by the user id too.
	keys := ""
	for _, c := range e.srv.Conns() {
		for _, ch := range c.Channels {
			keys += ch.PresenceKey
		}
	}
	if keys != "me" {
		t.Fatalf("server presence keys %q", keys)
	}
	// Another user may not take over a tracked channel.
	if err := e.m.Track(ctx(t), name, registry.PresenceUser{UserID: "you"}); err == nil {
		t.Fatal("tracking a second user succeeded")
	}
	// After untracking, another user may track: the channel rejoins with
	// the new key.
	if err := e.m.Untrack(ctx(t), name); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Track(ctx(t), name, registry.PresenceUser{UserID: "you"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "you present as self", func() bool {
		us, _ := e.m.Presence(name)
		return len(us) == 1 && us[0].UserID == "you" && us[0].Self
	})
}

func TestEntityMapping(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) {
		o.Entities = map[string]registry.EntityMapping{"project": {Table: "projects", Key: "project_id"}}
	}))
	h, err := e.m.SubscribeEntity(ctx(t), "project", "456", registry.ChangeFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h2, err := e.m.SubscribeEntity(ctx(t), "task", "9", registry.ChangeFilter{Key: "task_id", Event: "INSERT"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		h.Name().Topic():  `public projects project_id=eq.456 *`,
		h2.Name().Topic(): `public task task_id=eq.9 INSERT`,
	}
	for _, c := range e.srv.Conns() {
		for _, ch := range c.Channels {
			var b struct{ Event, Schema, Table, Filter string }
			if len(ch.PostgresChanges) != 1 || json.Unmarshal(ch.PostgresChanges[0], &b) != nil {
				t.Fatalf("%s bindings %s", ch.Topic, ch.PostgresChanges)
			}
			if got := b.Schema + " " + b.Table + " " + b.Filter + " " + b.Event; got != want[ch.Topic] {
				t.Fatalf("%s binding %q, want %q", ch.Topic, got, want[ch.Topic])
			}
		}
	}
}

// TestConcurrentUse hammers the manager from several goroutines (joins,
// releases, broadcasts, tracks, retries, leaves) while the connection is
// dropped and channel errors are injected; then CleanupAll must leave
// nothing on the server and nothing in the registry. -race checks the
// locking; goleak the goroutines.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) {
		o.Policy = registry.Fixed{Interval: 5 * time.Millisecond, Max: registry.Unlimited}
	}))
	names := []registry.Name{
		registry.MustName(registry.KindPresence, "contact", "1", ""),
		registry.MustName(registry.KindPresence, "contact", "2", ""),
		registry.MustName(registry.KindBroadcast, "doc", "1", ""),
		registry.MustName(registry.KindBroadcast, "doc", "2", ""),
		registry.MustName(registry.KindSubscription, "project", "1", ""),
	}
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Buffer: 64, MessageBatches: true})
	defer sub.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []*registry.Handle
			for i := 0; ; i++ {
				select {
				case <-stop:
					for _, h := range held {
						_ = h.Release(ctx(t))
					}
					return
				default:
				}
				n := names[(w+i)%len(names)]
				switch i % 7 {
				case 0, 1:
					if h, err := e.m.Join(ctx(t), n); err == nil {
						held = append(held, h)
					}
				case 2:
					if len(held) > 0 {
						_ = held[0].Release(ctx(t))
						held = held[1:]
					}
				case 3:
					_ = e.m.Broadcast(ctx(t), n, "x", json.RawMessage(`{"w":1}`))
				case 4:
					if n.Kind == registry.KindPresence {
						_ = e.m.Track(ctx(t), n, registry.PresenceUser{UserID: fmt.Sprint("u", w)})
					}
				case 5:
					_ = e.m.RetryNow(ctx(t), n)
				case 6:
					if i%21 == 6 {
						_ = e.m.Leave(ctx(t), n)
					}
				}
				_ = e.m.Snapshot()
				sub.Drain(nil)
			}
		}()
	}
	for i := range 6 {
		time.Sleep(100 * time.Millisecond) // let the workers run between faults
		if i%2 == 0 {
			_, _ = e.m.Faults().Drop()
		} else {
			_ = e.m.Faults().InjectChannelError(names[i%len(names)])
		}
	}
	close(stop)
	wg.Wait()
	if err := e.m.CleanupAll(ctx(t)); err != nil {
		t.Logf("cleanup: %v", err) // leaves may time out while reconnecting; the state must still be clean
	}
	if st := e.m.Snapshot(); len(st.Channels) != 0 {
		t.Fatalf("channels left in the registry: %+v", st.Channels)
	}
	eventually(t, "no channel left on the server", func() bool { return len(e.serverChannels()) == 0 })
}

// Tracking on a channel joined without a key recreates it with the user's
// key; the people present before and after must not be announced again
// (no ghost join events), only the user who tracked joins.
func TestTrackRejoinDoesNotReannounceOthers(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"ana", "ben"} {
		if _, err := newPeer(t, e.srv).JoinPresence(ctx(t), "contact", "123", registry.PresenceUser{UserID: u, Name: u}); err != nil {
			t.Fatal(err)
		}
	}
	name := registry.MustName(registry.KindPresence, "contact", "123", "")
	h, err := e.m.Join(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	ids := func() string {
		us, _ := e.m.Presence(name)
		s := ""
		for _, u := range us {
			s += u.UserID + " "
		}
		return s
	}
	eventually(t, "ana and ben present", func() bool { return ids() == "ana ben " })
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Types: []registry.EventType{registry.TypePresence}, NoInitialState: true})
	defer sub.Close()
	if err := e.m.Track(ctx(t), name, registry.PresenceUser{UserID: "me", Name: "Me"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "me present after the rejoin", func() bool { return ids() == "ana ben me " && e.info(name).Config.PresenceKey == "me" })
	var changes []string
	for _, ev := range sub.Drain(nil) {
		if pe, ok := ev.(registry.PresenceEvent); ok && pe.Action != registry.PresenceSync {
			changes = append(changes, string(pe.Action)+" "+pe.User.UserID)
		}
	}
	if len(changes) != 1 || changes[0] != "join me" {
		t.Fatalf("presence events after the track: %q, want only [join me]", changes)
	}
}

// The client's log and the manager's number a socket reconnect alike:
// reconnect attempt n is the n-th since the last open (ReconnectAfter's
// tries), in "Socket reconnecting" and "Socket connecting" (the client)
// as in "Scheduling reconnect" (the manager) and the socket RetryEvents.
func TestSocketReconnectAttemptNumbering(t *testing.T) {
	e := newEnv(t)
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{NoInitialState: true})
	defer sub.Close()
	f := e.m.Faults()
	if err := f.FailConnects(2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reconnect", func() bool { return e.m.Snapshot().Socket.Reconnects == 1 })
	attempts := func(msg string) string {
		var out []string
		for _, r := range e.m.Logs(0) {
			if r.Message != msg {
				continue
			}
			if s, ok := r.Attr("scope"); msg == "Scheduling reconnect" && (!ok || s != "socket") {
				continue
			}
			if a, ok := r.Attr(registry.KeyAttempt); ok {
				out = append(out, a) // none for the first connection
			}
		}
		return strings.Join(out, " ")
	}
	if got := attempts("Socket reconnecting"); got != "1 2 3" {
		t.Errorf("the client's reconnecting attempts: %q, want 1 2 3", got)
	}
	if got := attempts("Scheduling reconnect"); got != "1 2 3" {
		t.Errorf("the manager's scheduled attempts: %q, want 1 2 3", got)
	}
	if got := attempts("Socket connecting"); got != "1 2 3" {
		t.Errorf("the client's connecting attempts after the open: %q, want 1 2 3", got)
	}
	var scheduled []string
	for _, ev := range sub.Drain(nil) {
		if r, ok := ev.(registry.RetryEvent); ok && r.Scope == registry.ScopeSocket && r.Outcome == registry.RetryScheduled {
			scheduled = append(scheduled, strconv.Itoa(r.Attempt))
		}
	}
	if got := strings.Join(scheduled, " "); got != "1 2 3" {
		t.Errorf("socket RetryEvents scheduled: %q, want 1 2 3", got)
	}
}
