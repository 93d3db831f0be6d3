package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/theme"
)

// bigModel is the model of the performance targets: 100 channels (two
// tenants, every status), 10k log lines, messages, presence, retries.
func bigModel(tb testing.TB, w, h int) *Model {
	tb.Helper()
	m := New(Options{Now: func() time.Time { return t0 }, Theme: func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(time.Duration, func(time.Time) tea.Msg) tea.Cmd { return nil }, LogRing: 10000})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	st := sampleState(t0)
	st.Channels = nil
	st.Presence = map[registry.Name][]registry.PresenceUser{}
	statuses := registry.Statuses()
	for i := 0; i < 100; i++ {
		tenant := ""
		if i%3 == 1 {
			tenant = "acme"
		} else if i%3 == 2 {
			tenant = "globex"
		}
		kind := registry.Kinds()[i%3]
		n := registry.MustName(kind, "entity", fmt.Sprintf("%04d", i), tenant)
		c := registry.ChannelInfo{Name: n, Topic: n.Topic(), Status: statuses[i%4], CreatedAt: t0.Add(-time.Duration(i) * time.Minute),
			RefCount: 1 + i%3, MaxAttempts: 5, Attempts: i % 6, MessagesIn: uint64(i * 1000), PresenceCount: i % 7}
		st.Channels = append(st.Channels, c)
		if kind == registry.KindPresence {
			for u := 0; u < i%7; u++ {
				st.Presence[n] = append(st.Presence[n], registry.PresenceUser{UserID: fmt.Sprintf("user%02d", u), Name: "User", Metas: 1, OnlineSince: t0.Add(-time.Hour)})
			}
		}
	}
	slices.SortFunc(st.Channels, func(a, b registry.ChannelInfo) int { return a.Name.Compare(b.Name) })
	var evs []registry.Event
	for i := 0; i < 10000; i++ {
		evs = append(evs, registry.LogEvent{Record: registry.LogRecord{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Millisecond),
			Level: slog.Level((i % 4) * 4), Message: "Channel joined", Attrs: []registry.LogAttr{
				{Key: "channel", Value: st.Channels[i%100].Name.String()}, {Key: "join_ref", Value: fmt.Sprint(i)}, {Key: "attempt", Value: "1/5"}}}})
	}
	for i := 0; i < 500; i++ {
		evs = append(evs, registry.MessageEvent{Time: t0, Channel: st.Channels[0].Name, Direction: registry.In, Kind: registry.MessageBroadcast,
			Event: "cursor", Payload: json.RawMessage(fmt.Sprintf(`{"user_id":"ben","x":%d,"y":%d,"color":"#61afef"}`, i, i*2))})
		evs = append(evs, registry.RetryEvent{Time: t0, Scope: registry.ScopeChannel, Channel: st.Channels[0].Name, Attempt: i%5 + 1, Max: 5,
			Delay: 3 * time.Second, Outcome: registry.RetryFailed, Err: "RealtimeRestarting"})
	}
	m.Update(EventsBatchMsg{Events: evs, State: &st})
	if m.log.logs.Len() != 10000 || len(m.state.Channels) != 100 {
		tb.Fatalf("model has %d logs, %d channels", m.log.logs.Len(), len(m.state.Channels))
	}
	return m
}

// percentiles returns the p50 and p99 of durations.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

// viewLoop times n View calls, prepare running (untimed) before each.
func viewLoop(n int, prepare func(i int), view func()) []time.Duration {
	ds := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		prepare(i)
		start := time.Now()
		view()
		ds = append(ds, time.Since(start))
	}
	return ds
}

// BenchmarkView measures View at 200x50 with 100 channels and 10k log
// lines, beside a bubbles viewport showing the same 10k lines (the bare
// library path). Reported: p50/p99 per scenario.
//
//   - cold: every area and row re-rendered (caches dropped each time);
//   - frame: a batch of 50 new events (logs and messages of the shown
//     channel) before each View, as at 50k events/s;
//   - tick: the clock ticked (ages, countdowns) before each View;
//   - apps-frame, apps-tick: frame and tick with the Apps view open
//     (two app sockets, channels, flags) over the panes;
//   - limits-frame, limits-tick: the same with the Limits view open
//     (every gauge, an error, the throttle; the header's gauge on);
//   - identities-frame: frame with a second identity (its channels
//     grouped in the table), the Messages tab open;
//   - compare-frame, compare-tick: frame and tick with the Compare tab
//     open (two identities, four differences);
//   - baseline-viewport: bubbles viewport.View over the 10k lines.
func BenchmarkView(b *testing.B) {
	const iters = 2000
	m := bigModel(b, 200, 50)
	keys(m, "tab") // main pane focused, messages of the first channel
	run := func(name string, prepare func(i int), view func()) {
		b.Run(name, func(b *testing.B) {
			var all []time.Duration
			for range b.N {
				all = append(all, viewLoop(iters, prepare, view)...)
			}
			p50, p99 := percentiles(all)
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
	render := func() { _ = m.View() }
	run("cold", func(int) { m.invalidate(); m.clearRowCaches() }, render)
	ch := m.chans.sel
	seq := 0
	frame := func(int) {
		evs := make([]registry.Event, 0, 50)
		for j := 0; j < 25; j++ {
			seq++
			evs = append(evs, registry.LogEvent{Record: registry.LogRecord{Seq: uint64(100000 + seq), Time: t0, Level: slog.LevelInfo,
				Message: "Broadcast received", Attrs: []registry.LogAttr{{Key: "channel", Value: ch.String()}, {Key: "n", Value: fmt.Sprint(seq)}}}},
				registry.MessageEvent{Time: t0, Channel: ch, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "cursor",
					Payload: json.RawMessage(fmt.Sprintf(`{"user_id":"ben","x":%d,"y":%d}`, seq, seq))})
		}
		m.Update(EventsBatchMsg{Events: evs})
	}
	tick := func(int) { m.Update(tickMsg{t: t0, gen: m.tickGen}) }
	run("frame", frame, render)
	run("tick", tick, render)
	withApps(m, sampleApps())
	keys(m, "A")
	run("apps-frame", frame, render)
	run("apps-tick", tick, render)
	keys(m, "esc")
	withLimits(m, sampleLimits())
	keys(m, "L")
	run("limits-frame", frame, render)
	run("limits-tick", tick, render)
	keys(m, "esc")
	// The Compare tab: a second identity holding the shown channel,
	// the comparer's reading of two columns and four differences; the
	// frames keep coming to the first identity's channel.
	bob := m.state
	bob.Channels = slices.Clone(bob.Channels[:10])
	m.Update(identityAddedMsg{id: Identity{Name: "bob"}})
	m.Update(EventsBatchMsg{State: &bob, Identity: "bob"})
	m.opts.Compare = sampleCompare()
	m.main.show(tabMessages)
	run("identities-frame", frame, render)
	for _, c := range keys(m, "5") {
		feed(m, c)
	}
	if m.main.tab != tabCompare || len(m.cmp.cols) != 2 {
		b.Fatalf("the Compare tab is not open: tab %v, %d columns", m.main.tab, len(m.cmp.cols))
	}
	run("compare-frame", frame, render)
	run("compare-tick", tick, render)
	m.cmpBusy = false

	var lines []string
	for i := 0; i < m.log.logs.Len(); i++ {
		lines = append(lines, m.log.row(m.st, m.log.logs.Ptr(i), 198))
	}
	vp := viewport.New(viewport.WithWidth(200), viewport.WithHeight(50))
	vp.SetContentLines(lines)
	vp.GotoBottom()
	run("baseline-viewport", func(int) {}, func() { _ = vp.View() })
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingModel counts Update and View calls of the model it wraps.
type countingModel struct {
	m               *Model
	updates, views  atomic.Int64
	events, batches atomic.Int64
}

func (c *countingModel) Init() tea.Cmd { return nil }
func (c *countingModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	c.updates.Add(1)
	if b, ok := msg.(EventsBatchMsg); ok {
		c.batches.Add(1)
		c.events.Add(int64(len(b.Events)))
	}
	_, cmd := c.m.Update(msg)
	return c, cmd
}
func (c *countingModel) View() tea.View { c.views.Add(1); return c.m.View() }

// publisher produces rate events per second (in slices every ms) until
// total are published, like the registry's publisher: into a bounded
// subscription, never blocking, counting drops.
func publish(ctx context.Context, src *chanSource, rate, total int, chans []registry.Name) {
	per := rate / 1000
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	payload := json.RawMessage(`{"user_id":"ben","x":120,"y":340,"color":"#61afef"}`)
	next := time.Now()
	for n := 0; n < total; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Catch up on missed milliseconds so the rate holds.
		due := int(time.Since(next)/time.Millisecond) + 1
		next = next.Add(time.Duration(due) * time.Millisecond)
		for k := 0; k < due*per && n < total; k++ {
			var ev registry.Event
			switch {
			case n%10 == 0:
				ev = registry.LogEvent{Record: registry.LogRecord{Seq: uint64(n), Time: t0, Level: slog.LevelDebug, Message: "Broadcast received",
					Attrs: []registry.LogAttr{{Key: "channel", Value: chans[n%len(chans)].String()}}}}
			default:
				ev = registry.MessageEvent{Time: t0, Channel: chans[n%len(chans)], Direction: registry.In, Kind: registry.MessageBroadcast,
					Event: "cursor", Payload: payload, Size: len(payload)}
			}
			src.publish(ev)
			n++
		}
	}
}

// BenchmarkStream feeds 50k events/s for 1M events through the bridge
// into a real tea.Program (renderer on, output discarded) at 200x50 and
// reports: Update+View calls per second, the UI's CPU share of one core
// (process CPU minus the same publisher draining into nothing: the
// baseline), heap in use after 200k and after 1M events, and drops.
// Run with: go test ./tui -run XXX -bench Stream -benchtime 1x
func BenchmarkStream(b *testing.B) {
	const rate, total = 50000, 1000000
	chans := make([]registry.Name, 10)
	for i := range chans {
		chans[i] = registry.MustName(registry.KindBroadcast, "document", fmt.Sprint(i), "")
	}
	// Baseline: the publisher alone, its events drained and discarded.
	b.Run("baseline-drain", func(b *testing.B) {
		for range b.N {
			src := newChanSource(8192)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-ctx.Done():
						return
					case <-src.ch:
					}
				}
			}()
			c0, t0w := cpuTime(), time.Now()
			publish(ctx, src, rate, total, chans)
			wall := time.Since(t0w)
			cpu := cpuTime() - c0
			cancel()
			wg.Wait()
			b.ReportMetric(float64(cpu)/float64(wall)*100, "cpu-%")
			b.ReportMetric(float64(total)/wall.Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		}
	})
	b.Run("ui", func(b *testing.B) {
		for range b.N {
			streamOnce(b, rate, total, chans)
		}
	})
}

func streamOnce(b *testing.B, rate, total int, chans []registry.Name) {
	src := newChanSource(8192)
	m := New(Options{Theme: func(bool) *theme.Styles { return theme.Default(true) }})
	cm := &countingModel{m: m}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := tea.NewProgram(cm, tea.WithInput(nil), tea.WithOutput(io.Discard), tea.WithWindowSize(200, 50),
		tea.WithoutSignalHandler(), tea.WithContext(ctx))
	st := sampleState(t0)
	st.Channels = nil
	for _, n := range chans {
		st.Channels = append(st.Channels, registry.ChannelInfo{Name: n, Topic: n.Topic(), Status: registry.StatusConnected, MaxAttempts: 5})
	}
	snapshot := func() registry.State { return st }
	progDone := make(chan struct{})
	go func() { defer close(progDone); _, _ = p.Run() }()
	bctx, stopBridge := context.WithCancel(ctx)
	bridgeDone := make(chan struct{})
	go func() { defer close(bridgeDone); NewBridge(src, snapshot, BridgeOptions{}).Run(bctx, p.Send) }()

	var mu sync.Mutex
	var heap200k, heapMax uint64
	sample := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		heapMax = max(heapMax, ms.HeapInuse)
		mu.Unlock()
		return ms.HeapInuse
	}
	pubCtx, stopPub := context.WithCancel(ctx)
	u0, v0 := cm.updates.Load(), cm.views.Load()
	c0, w0 := cpuTime(), time.Now()
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); publish(pubCtx, src, rate, total, chans) }()
	// Sample the heap once 200k events went through, and at the end.
	for cm.events.Load()+int64(src.Dropped()) < 200000 {
		time.Sleep(10 * time.Millisecond)
	}
	heap200k = sample()
	<-pubDone
	for len(src.ch) > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the last batch and frame
	wall := time.Since(w0)
	cpu := cpuTime() - c0
	updates, views := cm.updates.Load()-u0, cm.views.Load()-v0
	heapEnd := sample()
	stopPub()
	stopBridge()
	<-bridgeDone
	p.Quit()
	<-progDone

	b.ReportMetric(float64(updates)/wall.Seconds(), "updates/s")
	b.ReportMetric(float64(views)/wall.Seconds(), "views/s")
	b.ReportMetric(float64(cm.events.Load())/float64(max(1, cm.batches.Load())), "events/batch")
	b.ReportMetric(float64(cpu)/float64(wall)*100, "cpu-%")
	b.ReportMetric(float64(heap200k)/(1<<20), "heap-200k-MiB")
	b.ReportMetric(float64(heapEnd)/(1<<20), "heap-1M-MiB")
	b.ReportMetric(float64(src.Dropped()), "dropped")
	b.ReportMetric(float64(cm.events.Load()), "delivered")
	b.ReportMetric(0, "ns/op")
	if d := src.Dropped(); d+uint64(cm.events.Load()) != uint64(total) {
		b.Fatalf("delivered %d + dropped %d != %d", cm.events.Load(), d, total)
	}
	_ = strings.TrimSpace
}
