package proxy_test

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/proxy"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// The benchmarks run each figure direct to the embedded server and
// through the proxy in the same run, and report the proxy's part: the
// added latency per frame, the throughput ratio, the CPU per relayed
// frame and the memory per idle proxied socket. Client, proxy and server
// share the process (and its cores), so the figures are upper bounds.

// benchRig is an embedded server and a proxy to it.
type benchRig struct {
	srv    *servertest.Server
	direct string // ws URL of the server
	viaPx  string // ws URL through the proxy
}

func newBenchRig(b *testing.B) *benchRig {
	srv := servertest.New(b, servertest.WithLimits(server.Limits{Off: true}), servertest.WithConfig(func(c *server.Config) {
		c.IdleTimeout = time.Hour
	}))
	_, hs := startProxy(b, proxy.Config{Upstream: srv.URL})
	q := "?vsn=2.0.0&apikey=" + srv.AnonKey()
	return &benchRig{srv: srv, direct: srv.WSURL + q, viaPx: wsURL(hs.URL, "/realtime/v1/websocket") + q}
}

// joinSelf dials url and joins a channel whose broadcasts come back to
// the sender.
func joinSelf(b *testing.B, url, topic string) *websocket.Conn {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	join := `["1","1","` + topic + `","phx_join",{"config":{"broadcast":{"self":true},"presence":{"enabled":false}}}]`
	if err := c.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		b.Fatal(err)
	}
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if bytes.Contains(m, []byte(`"phx_reply"`)) {
			if !bytes.Contains(m, []byte(`"ok"`)) {
				b.Fatalf("join: %s", m)
			}
			return c
		}
	}
}

// push is broadcast number i on topic, padded to about 100 bytes.
func push(topic string, i int) []byte {
	return fmt.Appendf(nil, `["1","%d","%s","broadcast",{"type":"broadcast","event":"e","payload":{"pad":"0123456789012345","i":%d}}]`, i+2, topic, i)
}

// seqOf reads the "i" of a received broadcast (-1 when none).
func seqOf(m []byte) int {
	k := bytes.LastIndex(m, []byte(`"i":`))
	if k < 0 {
		return -1
	}
	j := k + 4
	for j < len(m) && m[j] >= '0' && m[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(m[k+4 : j]))
	if err != nil {
		return -1
	}
	return n
}

// latencies sends n broadcasts at rate per second on a fresh socket to
// url and returns each one's round trip, sorted.
func latencies(b *testing.B, url, topic string, n, rate int) []time.Duration {
	c := joinSelf(b, url, topic)
	defer c.Close()
	sent := make([]time.Time, n)
	rtt := make([]time.Duration, 0, n)
	done := make(chan error, 1)
	go func() {
		for len(rtt) < n {
			_, m, err := c.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			if i := seqOf(m); i >= 0 && i < n {
				rtt = append(rtt, time.Since(sent[i]))
			}
		}
		done <- nil
	}()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sent[i] = time.Now()
		if err := c.WriteMessage(websocket.TextMessage, push(topic, i)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("%d of %d broadcasts came back", len(rtt), n)
	}
	slices.Sort(rtt)
	return rtt
}

func quantile(d []time.Duration, q float64) float64 {
	return float64(d[int(float64(len(d)-1)*q)].Nanoseconds()) / 1e3
}

// BenchmarkLatency: the round trip of a self broadcast at 10,000
// messages a second, direct and through the proxy (which relays each
// message twice, once each way); reported in µs, the proxy's part as
// added-p50-µs and added-p99-µs.
func BenchmarkLatency(b *testing.B) {
	r := newBenchRig(b)
	const n, rate = 20000, 10000
	var direct, proxied []time.Duration
	k := 0
	for b.Loop() {
		// Alternate quarters so that drift in the machine's load hits both.
		for range 4 {
			k++
			direct = append(direct, latencies(b, r.direct, fmt.Sprintf("realtime:lat-%d", k), n/4, rate)...)
			proxied = append(proxied, latencies(b, r.viaPx, fmt.Sprintf("realtime:lat-px-%d", k), n/4, rate)...)
		}
	}
	slices.Sort(direct)
	slices.Sort(proxied)
	b.ReportMetric(quantile(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(quantile(direct, 0.99), "direct-p99-µs")
	b.ReportMetric(quantile(proxied, 0.5), "proxied-p50-µs")
	b.ReportMetric(quantile(proxied, 0.99), "proxied-p99-µs")
	b.ReportMetric(quantile(proxied, 0.5)-quantile(direct, 0.5), "added-p50-µs")
	b.ReportMetric(quantile(proxied, 0.99)-quantile(direct, 0.99), "added-p99-µs")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// throughput sends n broadcasts on one socket to url as fast as a window
// of 256 in flight allows; it returns messages per second and the CPU
// time the process used.
func throughput(b *testing.B, url, topic string, n int) (perSec float64, cpu time.Duration) {
	c := joinSelf(b, url, topic)
	defer c.Close()
	const window = 256
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	done := make(chan error, 1)
	cpu0, start := cpuTime(), time.Now()
	go func() {
		for got := 0; got < n; {
			_, m, err := c.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			if seqOf(m) >= 0 {
				got++
				credit <- struct{}{}
			}
		}
		done <- nil
	}()
	for i := range n {
		<-credit
		if err := c.WriteMessage(websocket.TextMessage, push(topic, i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds(), cpuTime() - cpu0
}

// BenchmarkThroughput: one socket's self broadcasts as fast as they go,
// direct and proxied; median-ratio is proxied/direct messages per second, and
// cpu-ns/frame the process's extra CPU per relayed frame (two per
// message: the push and its echo).
func BenchmarkThroughput(b *testing.B) {
	r := newBenchRig(b)
	// Five alternating rounds of each; the ratio is the median round's, so
	// that one round hit by the machine's other load does not decide it.
	const n, rounds = 20000, 5
	var dRate, pRate float64
	var dCPU, pCPU time.Duration
	var ratios []float64
	runs := 0
	for b.Loop() {
		for range rounds {
			runs++
			dr, dc := throughput(b, r.direct, fmt.Sprintf("realtime:tp-%d", runs), n)
			pr, pc := throughput(b, r.viaPx, fmt.Sprintf("realtime:tp-px-%d", runs), n)
			dRate, pRate, dCPU, pCPU = dRate+dr, pRate+pr, dCPU+dc, pCPU+pc
			ratios = append(ratios, pr/dr)
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(dRate/float64(runs), "direct-msg/s")
	b.ReportMetric(pRate/float64(runs), "proxied-msg/s")
	b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
	b.ReportMetric(ratios[0], "min-ratio")
	b.ReportMetric(float64((pCPU-dCPU).Nanoseconds())/float64(2*n*runs), "cpu-ns/frame")
	b.ReportMetric(0, "ns/op")
}

// inUse is the heap in use plus goroutine stacks, after GC, and the
// goroutine count.
func inUse() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

// holdIdle opens n sockets to url and returns what they cost (bytes,
// goroutines) with the server's connections, then closes them.
func holdIdle(b *testing.B, r *benchRig, url string, n int) (uint64, int) {
	before, gBefore := inUse()
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 30 * time.Second}
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		c, _, err := d.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	for r.srv.Stats().Connections != n {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the relays settle in their reads
	after, gAfter := inUse()
	for _, c := range conns {
		_ = c.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); r.srv.Stats().Connections != 0 || runtime.NumGoroutine() > gBefore; {
		if time.Now().After(deadline) {
			b.Fatalf("sockets did not close: %d left", r.srv.Stats().Connections)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return after - min(after, before), gAfter - gBefore
}

// BenchmarkIdleMemory: 1,000 idle sockets direct, then 1,000 through the
// proxy; the difference is the proxy's cost per socket (both of its
// connections and its goroutines), bytes/socket.
func BenchmarkIdleMemory(b *testing.B) {
	r := newBenchRig(b)
	const n = 1000
	var bytesPer, gPer float64
	for b.Loop() {
		db, dg := holdIdle(b, r, r.direct, n)
		pb, pg := holdIdle(b, r, r.viaPx, n)
		bytesPer = (float64(pb) - float64(db)) / n
		gPer = float64(pg-dg) / n
	}
	b.ReportMetric(bytesPer, "bytes/socket")
	b.ReportMetric(gPer, "goroutines/socket")
	b.ReportMetric(0, "ns/op")
}
