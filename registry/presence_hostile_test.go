package registry_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"rtm/realtime/hostile"
	"rtm/registry"
)

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// truncatedSyncs counts the presence syncs a subscriber sees that report
// a truncated cache.
func truncatedSyncs(t *testing.T, m *registry.Manager) *atomic.Int64 {
	sub := m.Subscribe(context.Background(), registry.SubscribeOptions{Types: []registry.EventType{registry.TypePresence}})
	t.Cleanup(sub.Close)
	var n atomic.Int64
	go func() {
		for ev := range sub.Events() {
			if pe, ok := ev.(registry.PresenceEvent); ok && pe.Action == registry.PresenceSync && eventTruncation(pe) != nil && eventTruncation(pe).Members > 0 {
				n.Add(1)
			}
		}
	}()
	return &n
}

// A server that adds a new user with every presence_diff, endlessly:
// the manager's presence cache holds the client's MaxMembers users and
// no more, says it is truncated (ChannelInfo, Snapshot, the sync
// events), and the heap stays bounded.
func TestPresenceHostileEndlessUsers(t *testing.T) {
	srv := hostile.New(t, func(string) hostile.Script { return hostile.EndlessDiffs("u", 0, 10, true) })
	base := liveHeap()
	m := hostileManager(t, srv, func(o *registry.Options) { *o = presenceOptions(1000) })
	syncs := truncatedSyncs(t, m)
	name := registry.MustName(registry.KindPresence, "room", "1", "")
	h, err := m.Join(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Release(context.Background()) }()
	var peak uint64
	deadline := time.Now().Add(2 * time.Minute)
	for next := int64(0); srv.BytesOut() < 30<<20 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if srv.BytesOut() >= next {
			next += 4 << 20
			if h := liveHeap(); h > base && h-base > peak {
				peak = h - base
			}
		}
	}
	info, err := m.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server sent %d MB in %d frames; live heap +%d MB; %d users, truncated %+v, client dropped %d",
		srv.BytesOut()>>20, srv.FramesOut(), peak>>20, info.PresenceCount, infoTruncation(info), info.ClientDropped)
	if tr := infoTruncation(info); info.PresenceCount > 1000 || tr == nil || tr.Members == 0 {
		t.Errorf("presence: %d users, truncated %+v", info.PresenceCount, tr)
	}
	if users := m.Snapshot().Presence[name]; len(users) > 1000 {
		t.Errorf("the snapshot lists %d users", len(users))
	}
	eventually(t, "a sync event telling the truncation", func() bool { return syncs.Load() > 0 })
	if peak > 64<<20 {
		t.Errorf("the live heap grew by %d MB", peak>>20)
	}
}

// A presence_state of 200,000 users: the manager shows the 100,000 the
// client keeps (its default MaxMembers) and says 100,000 are not shown.
func TestPresenceHostileBigState(t *testing.T) {
	srv := hostile.New(t, func(string) hostile.Script { return hostile.BigState(200_000, 20) })
	base := liveHeap()
	m := hostileManager(t, srv, nil)
	syncs := truncatedSyncs(t, m)
	name := registry.MustName(registry.KindPresence, "room", "1", "")
	h, err := m.Join(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Release(context.Background()) }()
	eventuallyWithin(t, time.Minute, "the big state", func() bool {
		info, _ := m.Info(name)
		return info.PresenceCount >= defaultMaxMembers
	})
	heap := liveHeap()
	info, _ := m.Info(name)
	t.Logf("%d users, truncated %+v; live heap +%d MB", info.PresenceCount, infoTruncation(info), (heap-min(heap, base))>>20)
	if tr := infoTruncation(info); info.PresenceCount != defaultMaxMembers || tr == nil || tr.Members != 100_000 || tr.Metas != 100_000 {
		t.Errorf("%d users, truncated %+v; want %d and 100000 users and metas", info.PresenceCount, tr, defaultMaxMembers)
	}
	eventually(t, "a sync event telling the truncation", func() bool { return syncs.Load() > 0 })
	if heap > base && heap-base > 150<<20 {
		t.Errorf("the live heap grew by %d MB", (heap-base)>>20)
	}
}

// While the manager is slow (a presence listener that blocks), the
// client drops presence events; once it catches up, the cache is
// reconciled with the client's state: no user is lost or left over.
func TestPresenceReconciledAfterDrops(t *testing.T) {
	const users = 100_000
	srv := hostile.New(t, func(string) hostile.Script { return hostile.EndlessDiffs("u", users, 0, true) })
	m := hostileManager(t, srv, nil)
	release := make(chan struct{})
	name := registry.MustName(registry.KindPresence, "room", "1", "")
	h, err := m.Join(ctx(t), name, registry.OnPresence(func(registry.PresenceEvent) { <-release }))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Release(context.Background()) }()
	eventually(t, "the server to send every diff", func() bool { return srv.FramesOut() >= users+2 })
	close(release)
	eventually(t, "the cache to hold every user", func() bool {
		info, _ := m.Info(name)
		return info.PresenceCount == users
	})
	if info, _ := m.Info(name); info.ClientDropped == 0 || infoTruncation(info) != nil {
		t.Errorf("client dropped %d, truncated %+v; want drops and no truncation", info.ClientDropped, infoTruncation(info))
	}
}
