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
	"rtm/registry/apps"
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

// joinTopic dials url and joins topic; with self, the channel's
// broadcasts come back to the sender.
func joinTopic(b *testing.B, url, topic string, self bool) *websocket.Conn {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	join := `["1","1","` + topic + `","phx_join",{"config":{"broadcast":{"self":` + strconv.FormatBool(self) + `},"presence":{"enabled":false}}}]`
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

// A latency sample is one broadcast from a sender socket to a receiver
// socket on another connection: the sender writes its send time (on
// the monotonic clock, since the rig's base) into the payload, the
// receiver subtracts it from its receive time. Either leg can go
// through the proxy: sender proxied (the frame relayed app->upstream),
// receiver proxied (upstream->app), or neither (the baseline).
type latLeg struct {
	name     string
	from, to string // ws URLs of the sender and the receiver
}

// pushAt is broadcast number i on topic carrying its send time t (ns
// since the rig's base), about 110 bytes.
func pushAt(topic string, i int, t int64) []byte {
	return fmt.Appendf(nil, `["1","%d","%s","broadcast",{"type":"broadcast","event":"e","payload":{"pad":"0123456789","i":%d,"t":%d}}]`, i+2, topic, i, t)
}

// numAfter reads the decimal number after key in m (-1 when none).
func numAfter(m []byte, key string) int64 {
	k := bytes.LastIndex(m, []byte(key))
	if k < 0 {
		return -1
	}
	j := k + len(key)
	n := int64(0)
	if j >= len(m) || m[j] < '0' || m[j] > '9' {
		return -1
	}
	for ; j < len(m) && m[j] >= '0' && m[j] <= '9'; j++ {
		n = n*10 + int64(m[j]-'0')
	}
	return n
}

// oneWay sends n broadcasts paced at rate per second from a socket to
// leg.from to one to leg.to, on a fresh topic, and returns each one's
// send-to-receive latency, sorted, and the rate achieved.
func oneWay(b *testing.B, base time.Time, leg latLeg, topic string, n, rate int) ([]time.Duration, float64) {
	rx := joinTopic(b, leg.to, topic, false)
	defer rx.Close()
	tx := joinTopic(b, leg.from, topic, false)
	defer tx.Close()
	lat := make([]time.Duration, 0, n)
	done := make(chan error, 1)
	go func() {
		for len(lat) < n {
			_, m, err := rx.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			now := time.Since(base)
			if t := numAfter(m, `"t":`); t >= 0 {
				lat = append(lat, now-time.Duration(t))
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
		if err := tx.WriteMessage(websocket.TextMessage, pushAt(topic, i, int64(time.Since(base)))); err != nil {
			b.Fatal(err)
		}
	}
	achieved := float64(n) / time.Since(start).Seconds()
	select {
	case err := <-done:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("%s: %d of %d broadcasts arrived", leg.name, len(lat), n)
	}
	slices.Sort(lat)
	return lat, achieved
}

func quantile(d []time.Duration, q float64) float64 {
	return float64(d[int(float64(len(d)-1)*q)].Nanoseconds()) / 1e3
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkLatency: the latency of one frame, send to receive, at
// 10,000 messages a second, with one leg through the proxy (so each
// sample is one relayed frame) against both legs direct, in alternating
// rounds of the same run. Each round is 4,000 messages per leg; the
// figures are the medians over the rounds of each round's added p50 and
// p99 (proxied leg minus direct, in µs), per direction (from-app: the
// app's frame to the upstream; to-app: the upstream's frame to the
// app), for the bare proxy, for the proxy with the apps model as its
// Observer called on the relay's path (observed-) and through the
// observer queue (queued-, Config.ObserverQueue, as rtm proxy runs it),
// while a UI reads the models' snapshots 20 times a second.
func BenchmarkLatency(b *testing.B) {
	r := newBenchRig(b)
	q := "/realtime/v1/websocket?vsn=2.0.0&apikey=" + r.srv.AnonKey()
	om, qm := apps.New(apps.Options{}), apps.New(apps.Options{})
	_, ohs := startProxy(b, proxy.Config{Upstream: r.srv.URL, Observer: om})
	_, qhs := startProxy(b, proxy.Config{Upstream: r.srv.URL, Observer: qm, ObserverQueue: proxy.DefaultObserverQueue})
	observed, queued := wsURL(ohs.URL, q), wsURL(qhs.URL, q)
	// A UI reads both models' snapshots, as the TUI does, 20 times a
	// second.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_, _ = om.Snapshot(), qm.Snapshot()
			}
		}
	}()
	legs := []latLeg{
		{"direct", r.direct, r.direct},
		{"from-app", r.viaPx, r.direct},
		{"to-app", r.direct, r.viaPx},
		{"observed-from-app", observed, r.direct},
		{"observed-to-app", r.direct, observed},
		{"queued-from-app", queued, r.direct},
		{"queued-to-app", r.direct, queued},
	}
	const n, rate, rounds = 4000, 10000, 5
	base := time.Now()
	p50 := map[string][]float64{}
	p99 := map[string][]float64{}
	var rates []float64
	k := 0
	for b.Loop() {
		for round := range rounds {
			// Each round starts with another leg, so that the order
			// favours none.
			q50, q99 := map[string]float64{}, map[string]float64{}
			for j := range legs {
				leg := legs[(round+j)%len(legs)]
				k++
				lat, achieved := oneWay(b, base, leg, fmt.Sprintf("realtime:lat-%d", k), n, rate)
				rates = append(rates, achieved)
				q50[leg.name], q99[leg.name] = quantile(lat, 0.5), quantile(lat, 0.99)
			}
			for _, leg := range legs {
				d50, d99 := 0.0, 0.0
				if leg.name != "direct" {
					d50, d99 = q50["direct"], q99["direct"]
				}
				p50[leg.name] = append(p50[leg.name], q50[leg.name]-d50)
				p99[leg.name] = append(p99[leg.name], q99[leg.name]-d99)
			}
		}
	}
	b.ReportMetric(median(p50["direct"]), "direct-p50-µs")
	b.ReportMetric(median(p99["direct"]), "direct-p99-µs")
	for _, leg := range legs[1:] {
		b.ReportMetric(median(p50[leg.name]), leg.name+"-added-p50-µs")
		b.ReportMetric(median(p99[leg.name]), leg.name+"-added-p99-µs")
	}
	b.ReportMetric(median(rates), "sent-msg/s")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cost is what a throughput run used in the whole process.
type cost struct {
	cpu            time.Duration
	allocs, nbytes uint64 // heap allocations and their bytes
}

func mallocs() (uint64, uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc
}

// throughput sends n broadcasts on one socket to url as fast as a window
// of 256 in flight allows; it returns messages per second and what the
// process used.
func throughput(b *testing.B, url, topic string, n int) (perSec float64, used cost) {
	c := joinTopic(b, url, topic, true)
	defer c.Close()
	const window = 256
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	done := make(chan error, 1)
	a0, n0 := mallocs()
	cpu0, start := cpuTime(), time.Now()
	go func() {
		for got := 0; got < n; {
			_, m, err := c.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			if numAfter(m, `"i":`) >= 0 {
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
	perSec, used.cpu = float64(n)/time.Since(start).Seconds(), cpuTime()-cpu0
	a1, n1 := mallocs()
	used.allocs, used.nbytes = a1-a0, n1-n0
	return perSec, used
}

// BenchmarkThroughput: one socket's self broadcasts as fast as they go,
// direct and through three proxies: bare, with the apps model as its
// Observer on the relay's path (observed-) and through the observer
// queue (queued-, as rtm proxy runs it). ratio is proxied/direct
// messages per second; cpu-ns/frame, allocs/frame and B/frame the
// process's extra CPU, heap allocations and allocated bytes per relayed
// frame (two per message: the push and its echo). Each is the median
// over rounds that alternate direct and proxied.
func BenchmarkThroughput(b *testing.B) {
	r := newBenchRig(b)
	q := "/realtime/v1/websocket?vsn=2.0.0&apikey=" + r.srv.AnonKey()
	_, ohs := startProxy(b, proxy.Config{Upstream: r.srv.URL, Observer: apps.New(apps.Options{})})
	_, qhs := startProxy(b, proxy.Config{Upstream: r.srv.URL, Observer: apps.New(apps.Options{}), ObserverQueue: proxy.DefaultObserverQueue})
	variants := []struct{ name, url string }{{"", r.viaPx}, {"observed-", wsURL(ohs.URL, q)}, {"queued-", wsURL(qhs.URL, q)}}
	const n, rounds = 20000, 5
	var dRates []float64
	ratios, cpus, allocs, nbytes := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	runs := 0
	for b.Loop() {
		for range rounds {
			for _, v := range variants {
				runs++
				dr, dc := throughput(b, r.direct, fmt.Sprintf("realtime:tp-%d", runs), n)
				pr, pc := throughput(b, v.url, fmt.Sprintf("realtime:tp-px-%d", runs), n)
				dRates = append(dRates, dr)
				frames := float64(2 * n)
				ratios[v.name] = append(ratios[v.name], pr/dr)
				cpus[v.name] = append(cpus[v.name], float64((pc.cpu-dc.cpu).Nanoseconds())/frames)
				allocs[v.name] = append(allocs[v.name], (float64(pc.allocs)-float64(dc.allocs))/frames)
				nbytes[v.name] = append(nbytes[v.name], (float64(pc.nbytes)-float64(dc.nbytes))/frames)
			}
		}
	}
	b.ReportMetric(median(dRates), "direct-msg/s")
	for _, v := range variants {
		b.ReportMetric(median(ratios[v.name]), v.name+"ratio")
		b.ReportMetric(slices.Min(ratios[v.name]), v.name+"min-ratio")
		b.ReportMetric(median(cpus[v.name]), v.name+"cpu-ns/frame")
		b.ReportMetric(median(allocs[v.name]), v.name+"allocs/frame")
		b.ReportMetric(median(nbytes[v.name]), v.name+"B/frame")
	}
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
