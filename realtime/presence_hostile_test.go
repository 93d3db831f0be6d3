package realtime

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/hostile"
)

// logBuf collects a socket's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns the number of lines containing s.
func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// liveHeap returns the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// hostileRun is a client channel on a hostile server running a script.
type hostileRun struct {
	srv  *hostile.Server
	sock *Socket
	ch   *Channel
	peak uint64 // the largest live heap seen, above the heap before
	logs *logBuf
}

// runHostile joins one channel, whose consumer blocks until the test
// ends (the slowest consumer there is), on a server running script, and
// samples the live heap every 8 MB the server sends until it has sent
// sendBytes, or the heap grows by more than limit (then it stops at
// once: the test fails), or ctx ends.
func runHostile(t *testing.T, script hostile.Script, sendBytes int64, limit uint64, cfg ChannelConfig) *hostileRun {
	t.Helper()
	base := liveHeap()
	r := &hostileRun{srv: hostile.New(t, func(string) hostile.Script { return script }), logs: &logBuf{}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sock, err := Dial(ctx, r.srv.URL, &Options{APIKey: "k", Logger: r.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	r.sock = sock
	release := make(chan struct{})
	t.Cleanup(func() {
		close(release)
		sock.Close()
	})
	cfg.Presence.Enabled = true
	cfg.OnEvent = func(Event) { <-release }
	if r.ch, err = sock.Channel("room", cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.ch.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for r.srv.BytesOut() < sendBytes {
		if ctx.Err() != nil {
			t.Fatalf("the server sent %d MB in 3 minutes", r.srv.BytesOut()>>20)
		}
		if out := r.srv.BytesOut(); out >= next {
			next = out + 8<<20
			if h := liveHeap(); h > base && h-base > r.peak {
				r.peak = h - base
			}
			if r.peak > limit {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("server sent %d MB in %d frames; live heap grew by at most %d MB; queue %d events, %d KB; presence %d keys, %d KB; truncated %+v; dropped %d",
		r.srv.BytesOut()>>20, r.srv.FramesOut(), r.peak>>20, r.ch.q.len(), qSize(r.ch.q)>>10,
		r.ch.Presence().Len(), bytesOf(r.ch.Presence())>>10, chanTruncation(r.ch), r.ch.Stats().Dropped)
	if r.peak > limit {
		t.Errorf("the live heap grew by %d MB, want at most %d MB", r.peak>>20, limit>>20)
	}
	return r
}

// The bounds the hostile presence tests hold the client to: what the
// channel may keep (the presence state's 64 MiB, the event queue's 32
// MiB), plus slack for the frames in flight and the GC's accounting.
const (
	hostileSend     = hostileScale * 100 << 20
	hostileHeapMax  = 160 << 20
	hostilePadding  = 1000
	hostileQueueMax = DefaultEventBuffer + DefaultEventBuffer/8 + 1
)

// checkQueue checks that the channel's queue is within its bounds, the
// coalesced sync and the reserve of forced values included, and (drops)
// that it dropped events rather than grow.
func (r *hostileRun) checkQueue(t *testing.T, drops bool) {
	t.Helper()
	if n, b := r.ch.q.len(), qSize(r.ch.q); n > hostileQueueMax || b > DefaultEventBufferBytes+DefaultEventBufferBytes/8 {
		t.Errorf("the event queue holds %d events, %d bytes", n, b)
	}
	if drops && r.ch.Stats().Dropped == 0 {
		t.Error("no event dropped for a consumer that never returns")
	}
}

// A server that sends endless presence_diffs, each adding a meta to the
// same key: the client keeps MaxMetas of them (the rest are counted as
// not kept), its queue stays bounded, and the heap with them.
func TestHostileEndlessDiffsOneKey(t *testing.T) {
	r := runHostile(t, hostile.EndlessDiffs("u", 0, hostilePadding, false), hostileSend, hostileHeapMax, ChannelConfig{})
	r.checkQueue(t, false) // 1024 joins and one sync fit
	tr := chanTruncation(r.ch)
	if n := len(r.ch.Presence().Get("u")); n != DefaultPresenceMaxMetas || tr.Metas == 0 || tr.Members != 0 {
		t.Errorf("key u has %d metas, truncation %+v; want %d metas kept and the others counted", n, tr, DefaultPresenceMaxMetas)
	}
}

// Endless diffs each adding a new key: the client keeps keys while its
// limits allow (here the bytes: 64 MiB of 1 KB metas is about 55,000
// keys) and counts the joins not kept.
func TestHostileEndlessDiffsManyKeys(t *testing.T) {
	r := runHostile(t, hostile.EndlessDiffs("u", 0, hostilePadding, true), hostileSend, hostileHeapMax, ChannelConfig{})
	r.checkQueue(t, true)
	p := r.ch.Presence()
	tr := truncationOf(p)
	if tr.Members == 0 || tr.Metas < tr.Members || bytesOf(p) > DefaultPresenceMaxBytes || p.Len() > DefaultPresenceMaxMembers {
		t.Errorf("%d keys, %d bytes, truncation %+v", p.Len(), bytesOf(p), tr)
	}
	// A small limit on keys is the one that applies. The truncation is
	// logged when it begins and each time it doubles: tens of lines for
	// a hundred thousand joins not kept.
	r = runHostile(t, hostile.EndlessDiffs("u", 0, 10, true), 20<<20, hostileHeapMax, withPresenceLimits(ChannelConfig{}, 1000))
	p = r.ch.Presence()
	if p.Len() != 1000 || truncationOf(p).Members < 50_000 {
		t.Errorf("MaxMembers 1000: %d keys, truncation %+v", p.Len(), truncationOf(p))
	}
	if n := r.logs.count("Presence truncated"); n == 0 || n > 40 {
		t.Errorf("%d log lines of the truncation (%d joins not kept)", n, truncationOf(p).Members)
	}
}

// Endless diffs and never the presence_state: the diffs held for it
// stay within a quarter of MaxBytes; those dropped are counted.
func TestHostileDiffsWithoutState(t *testing.T) {
	r := runHostile(t, hostile.DiffsWithoutState(0, hostilePadding), hostileSend, hostileHeapMax, ChannelConfig{})
	p := r.ch.Presence()
	held, heldBytes := heldOf(p)
	if tr := truncationOf(p); tr.Diffs == 0 || heldBytes > DefaultPresenceMaxBytes/4 || held > maxPendingDiffs || p.Synced() {
		t.Errorf("%d diffs held (%d bytes), truncation %+v", held, heldBytes, tr)
	}
}

// A presence_state of 200,000 members: the client keeps the first
// 100,000 (MaxMembers) and counts the others; a later state that fits
// clears the truncation.
func TestHostileBigState(t *testing.T) {
	const members = 200_000
	next := make(chan struct{})
	srv := hostile.New(t, func(string) hostile.Script {
		return func(ctx context.Context, ch *hostile.Channel) error {
			if err := ch.Push("presence_state", hostile.PresenceState(members, 20)); err != nil {
				return err
			}
			select {
			case <-next:
			case <-ctx.Done():
				return nil
			}
			if err := ch.Push("presence_state", hostile.PresenceState(10, 20)); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}
	})
	base := liveHeap()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &logBuf{}
	sock, err := Dial(ctx, srv.URL, &Options{APIKey: "k", Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ch, err := sock.Channel("room", ChannelConfig{Presence: PresenceConfig{Enabled: true}, OnEvent: func(Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	p := ch.Presence()
	eventually(t, "the big state", func() bool { return p.Len() > 0 })
	heap := liveHeap()
	tr := truncationOf(p)
	t.Logf("big state: %d keys, %d KB counted, truncation %+v; live heap +%d MB", p.Len(), bytesOf(p)>>10, tr, (heap-min(heap, base))>>20)
	if p.Len() != DefaultPresenceMaxMembers || tr.Members != members-DefaultPresenceMaxMembers || tr.Metas != tr.Members || chanTruncation(ch) != tr {
		t.Errorf("after the big state: %d keys, truncation %+v", p.Len(), tr)
	}
	if heap > base && heap-base > 100<<20 {
		t.Errorf("the live heap grew by %d MB with the big state", (heap-base)>>20)
	}
	eventually(t, "the log line of the truncation", func() bool { return logs.count("Presence truncated") > 0 })
	if n := logs.count("Presence truncated"); n != 1 || logs.count("members_not_kept=100000") != 1 {
		t.Errorf("%d log lines of the truncation", n)
	}
	close(next)
	eventually(t, "the state that fits", func() bool { return p.Len() == 10 })
	if tr := truncationOf(p); tr.Truncated() {
		t.Errorf("a state that fits left the truncation at %+v", tr)
	}
	eventually(t, "the log line of the truncation's end", func() bool { return logs.count("Presence complete again") == 1 })
}
