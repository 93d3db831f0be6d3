package registry_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/server"
	"rtm/registry"
)

// benchServerEnv makes the test binary a child running the embedded
// server (limits off), so that the benchmarks measure the client side
// alone: the parent's CPU time is the client's (and the manager's).
const benchServerEnv = "RTM_REGISTRY_BENCH_SERVER"

// benchPayload is a ~130-byte cursor broadcast, as in the client's
// benchmarks.
const benchPayload = `{"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"selection":[12,48],"tool":"highlight"}`

// runBenchServer serves until stdin closes. It prints "URL KEY", then
// obeys lines "send TOPIC N RATE" (N broadcasts at RATE per second,
// answered "sent N").
func runBenchServer() {
	s, err := server.New(server.Config{JWTSecret: []byte(rand.Text()), Limits: server.Limits{Off: true}, OutboundQueue: 1 << 16})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(s.URL(), s.AnonKey())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "send" {
			continue
		}
		n, _ := strconv.Atoi(f[2])
		rate, _ := strconv.Atoi(f[3])
		start := time.Now()
		sent := 0
		for sent < n {
			due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
			for ; sent < due; sent++ {
				s.Broadcast(f[1], "cursor", []byte(benchPayload))
			}
			time.Sleep(200 * time.Microsecond)
		}
		fmt.Println("sent", sent)
	}
	_ = s.Close()
	os.Exit(0)
}

// benchServer is the child server process.
type benchServer struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Scanner
	url, key string
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	bs := &benchServer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !bs.out.Scan() {
		b.Fatal("bench server: no address")
	}
	f := strings.Fields(bs.out.Text())
	if len(f) != 2 {
		b.Fatalf("bench server: %q", bs.out.Text())
	}
	bs.url, bs.key = f[0], f[1]
	b.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	return bs
}

func (bs *benchServer) send(b *testing.B, topic string, n, rate int) {
	b.Helper()
	if _, err := fmt.Fprintf(bs.in, "send %s %d %d\n", topic, n, rate); err != nil {
		b.Fatal(err)
	}
	if !bs.out.Scan() || bs.out.Text() != "sent "+strconv.Itoa(n) {
		b.Fatalf("bench server: %q", bs.out.Text())
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func waitCount(b *testing.B, what string, c *atomic.Int64, n int64) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for c.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d events", what, c.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkEvents100k sends 100,000 broadcasts at 100,000 per second from
// a server in a child process to (a) the bare client: a realtime.Channel
// (with the manager's event buffer of 65,536) whose OnEvent counts them,
// and (b) the manager (fault transport, per-channel message ring; the
// frame tap and rings in the "+frames" variants) with one consumer, as
// (a) has one: a subscriber that drains the event stream every 5 ms, as
// a UI does per frame, and counts the messages, as MessageBatchEvents
// ("batches", SubscribeOptions.MessageBatches) or one MessageEvent each
// ("events"); or, in "listener", an OnBroadcast listener that counts
// them (no subscriber). Each iteration runs (a) and (b), interleaved in
// alternating order; cpu-ratio is (b)'s process CPU time over (a)'s, and
// median-cpu-ratio the median of the per-iteration ratios: the manager's
// overhead is the ratio - 1. The server's CPU is not counted.
func BenchmarkEvents100k(b *testing.B) {
	bs := startBenchServer(b)
	b.Run("bare-vs-bare", func(b *testing.B) { benchBareVsBare(b, bs) })
	b.Run("batches", func(b *testing.B) { benchEvents(b, bs, true, consumeBatches) })
	b.Run("batches+frames", func(b *testing.B) { benchEvents(b, bs, false, consumeBatches) })
	b.Run("events", func(b *testing.B) { benchEvents(b, bs, true, consumeEvents) })
	b.Run("events+frames", func(b *testing.B) { benchEvents(b, bs, false, consumeEvents) })
	b.Run("listener", func(b *testing.B) { benchEvents(b, bs, true, consumeListener) })
}

// consumer is how BenchmarkEvents100k's manager side takes the messages.
type consumer int

const (
	consumeBatches  consumer = iota // a subscriber with MessageBatches
	consumeEvents                   // a subscriber, one MessageEvent each
	consumeListener                 // an OnBroadcast listener
)

// bareClient is the bare client of BenchmarkEvents100k: a socket with one
// channel counting the broadcasts it receives.
func bareClient(b *testing.B, ctx context.Context, bs *benchServer, topic string) (*realtime.Socket, *realtime.Channel, *atomic.Int64) {
	b.Helper()
	var count atomic.Int64
	sock, err := realtime.NewSocket(bs.url, &realtime.Options{APIKey: bs.key})
	if err != nil {
		b.Fatal(err)
	}
	if err := sock.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	ch, err := sock.Channel(topic, realtime.ChannelConfig{EventBuffer: 1 << 16, OnEvent: func(e realtime.Event) {
		if e.Type == realtime.EventBroadcast && e.Broadcast.Event == "cursor" {
			count.Add(1)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Subscribe(ctx); err != nil {
		b.Fatal(err)
	}
	return sock, ch, &count
}

// benchBareVsBare is the calibration of the measurement: the bare client
// against an identical bare client, with the same alternation and
// ratios. Its spread around 1.0 is the noise floor of cpu-ratio on this
// machine.
func benchBareVsBare(b *testing.B, bs *benchServer) {
	const n, rate = 100_000, 100_000
	suffix := fmt.Sprint(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s1, _, c1 := bareClient(b, ctx, bs, "broadcast:document:a"+suffix)
	defer s1.Close()
	s2, _, c2 := bareClient(b, ctx, bs, "broadcast:document:b"+suffix)
	defer s2.Close()
	var ratios []float64
	var t1, t2 time.Duration
	iters := 0
	for b.Loop() {
		iters++
		run := func(topic string, c *atomic.Int64) time.Duration {
			c0 := cpuTime()
			bs.send(b, topic, n, rate)
			waitCount(b, topic, c, int64(iters*n))
			return cpuTime() - c0
		}
		var a, c time.Duration
		if iters%2 == 1 {
			a, c = run("broadcast:document:a"+suffix, c1), run("broadcast:document:b"+suffix, c2)
		} else {
			c, a = run("broadcast:document:b"+suffix, c2), run("broadcast:document:a"+suffix, c1)
		}
		t1 += a
		t2 += c
		ratios = append(ratios, float64(c)/float64(a))
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(float64(t2)/float64(t1), "cpu-ratio")
	b.ReportMetric(ratios[len(ratios)/2], "median-cpu-ratio")
	b.ReportMetric(ratios[0], "min-ratio")
	b.ReportMetric(ratios[len(ratios)-1], "max-ratio")
}

func benchEvents(b *testing.B, bs *benchServer, noFrames bool, how consumer) {
	const n, rate = 100_000, 100_000
	suffix := fmt.Sprint(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// (a) the bare client.
	bareTopic := "broadcast:document:bare" + suffix
	sock, ch, bare := bareClient(b, ctx, bs, bareTopic)
	defer sock.Close()

	// (b) the manager and its one consumer.
	var viaMgr atomic.Int64
	m, err := registry.New(registry.Options{URL: bs.url, APIKey: bs.key, NoFrames: noFrames})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	var opts []registry.JoinOption
	if how == consumeListener {
		opts = append(opts, registry.OnBroadcast("cursor", func(registry.Broadcast) { viaMgr.Add(1) }))
	}
	h, err := m.JoinBroadcast(ctx, "document", "mgr"+suffix, opts...)
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	var sub *registry.Subscription
	var wg sync.WaitGroup
	if how != consumeListener {
		sub = m.Subscribe(ctx, registry.SubscribeOptions{Buffer: 1 << 16, MessageBatches: how == consumeBatches})
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []registry.Event
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-sub.Done():
					return
				case <-tick.C:
				}
				batch = sub.Drain(batch[:0])
				for _, ev := range batch {
					switch e := ev.(type) {
					case registry.MessageEvent:
						if e.Event == "cursor" {
							viaMgr.Add(1)
						}
					case registry.MessageBatchEvent:
						k := 0
						for i := range e.Messages {
							if e.Messages[i].Event == "cursor" {
								k++
							}
						}
						viaMgr.Add(int64(k))
					}
				}
				clear(batch)
			}
		}()
	}

	var cpuBare, cpuMgr time.Duration
	var ratios []float64
	iters := 0
	for b.Loop() {
		iters++
		runBare := func() time.Duration {
			c0 := cpuTime()
			bs.send(b, bareTopic, n, rate)
			waitCount(b, "bare", bare, int64(iters*n))
			return cpuTime() - c0
		}
		runMgr := func() time.Duration {
			c0 := cpuTime()
			bs.send(b, h.Name().String(), n, rate)
			waitCount(b, "manager", &viaMgr, int64(iters*n))
			return cpuTime() - c0
		}
		// Alternate the order so that neither side always pays for the
		// other's garbage.
		var cb, cm time.Duration
		if iters%2 == 1 {
			cb, cm = runBare(), runMgr()
		} else {
			cm, cb = runMgr(), runBare()
		}
		cpuBare += cb
		cpuMgr += cm
		ratios = append(ratios, float64(cm)/float64(cb))
	}
	b.StopTimer()
	var subDropped uint64
	if sub != nil {
		sub.Close()
		wg.Wait()
		subDropped = sub.Dropped()
	}
	if got := viaMgr.Load(); got != int64(iters*n) {
		b.Fatalf("the manager's consumer got %d of %d", got, iters*n)
	}
	total := float64(iters * n)
	b.ReportMetric(float64(cpuBare.Nanoseconds())/total, "bare-cpu-ns/event")
	b.ReportMetric(float64(cpuMgr.Nanoseconds())/total, "mgr-cpu-ns/event")
	b.ReportMetric(float64(cpuMgr)/float64(cpuBare), "cpu-ratio")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "median-cpu-ratio")
	b.ReportMetric(ratios[0], "min-ratio")
	b.ReportMetric(ratios[len(ratios)-1], "max-ratio")
	b.ReportMetric(float64(subDropped), "dropped")
	b.ReportMetric(float64(ch.Stats().Dropped), "bare-dropped")
	info, _ := h.Info()
	b.ReportMetric(float64(info.ClientDropped), "mgr-client-dropped")
}

// BenchmarkJoin1000 joins 1,000 channels and leaves them all, against a
// server in a child process with its limits off: (a) with the bare
// client (Channel + Subscribe for each, concurrently, then Leave for
// each, concurrently) and (b) with the manager (Join for each, Ready for
// each, then CleanupAll). Per op: the 1,000 joins and the cleanup.
func BenchmarkJoin1000(b *testing.B) {
	const n = 1000
	bs := startBenchServer(b)
	b.Run("bare", func(b *testing.B) {
		ctx := context.Background()
		sock, err := realtime.NewSocket(bs.url, &realtime.Options{APIKey: bs.key})
		if err != nil {
			b.Fatal(err)
		}
		defer sock.Close()
		if err := sock.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			chs := make([]*realtime.Channel, n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				c, err := sock.Channel(fmt.Sprintf("broadcast:doc:%d", i), realtime.ChannelConfig{OnEvent: func(realtime.Event) {}})
				if err != nil {
					b.Fatal(err)
				}
				chs[i] = c
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.Subscribe(ctx); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			for _, c := range chs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := c.Leave(ctx); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		}
	})
	b.Run("manager", func(b *testing.B) {
		ctx := context.Background()
		m, err := registry.New(registry.Options{URL: bs.url, APIKey: bs.key, MaxChannels: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if err := m.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			hs := make([]*registry.Handle, n)
			for i := range n {
				h, err := m.JoinBroadcast(ctx, "doc", strconv.Itoa(i))
				if err != nil {
					b.Fatal(err)
				}
				hs[i] = h
			}
			for _, h := range hs {
				if err := h.Ready(ctx); err != nil {
					b.Fatal(err)
				}
			}
			if err := m.CleanupAll(ctx); err != nil {
				b.Fatal(err)
			}
			if st := m.Stats(); st.Total != 0 {
				b.Fatalf("%d channels left", st.Total)
			}
		}
	})
}
