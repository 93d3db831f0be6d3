package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
)

// benchTopic is the topic of the fan-out benchmarks.
const benchTopic = "realtime:broadcast:document:789"

// fanoutRig is the client side of a fan-out benchmark: subscribers that
// record publish-to-receive latency, and a publisher with a window.
type fanoutRig struct {
	// window is how many broadcasts the publisher may have outstanding
	// (published but not yet received by every subscriber).
	window    int64
	subs      []*websocket.Conn
	pub       *websocket.Conn
	delivered atomic.Int64
	progress  chan struct{}
	lat       [][]time.Duration // per subscriber
	wg        sync.WaitGroup
}

func newRig(n, window int) *fanoutRig {
	return &fanoutRig{window: int64(window), progress: make(chan struct{}, 1), lat: make([][]time.Duration, n)}
}

// listen starts a reader per subscriber.
func (r *fanoutRig) listen() {
	for i, ws := range r.subs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				k := bytes.Index(data, []byte(`"t":`))
				if k < 0 {
					continue // a join reply
				}
				end := bytes.IndexByte(data[k+4:], ',')
				sent, err := strconv.ParseInt(string(data[k+4:k+4+end]), 10, 64)
				if err != nil {
					continue
				}
				r.lat[i] = append(r.lat[i], time.Duration(now-sent))
				r.delivered.Add(1)
				select {
				case r.progress <- struct{}{}:
				default:
				}
			}
		}()
	}
}

// run publishes b.N broadcasts as kind-3 frames and waits until every
// subscriber got each of them; it reports deliveries/s and latency.
func (r *fanoutRig) run(b *testing.B) {
	n := int64(len(r.subs))
	pad := strings.Repeat("x", 64)
	var published int64
	start := time.Now()
	for b.Loop() {
		for r.delivered.Load() < (published-r.window)*n {
			<-r.progress
		}
		payload := fmt.Appendf(nil, `{"t":%d,"seq":%d,"user_id":"user-42","x":1024,"y":768,"pad":"%s"}`, time.Now().UnixNano(), published, pad)
		frame, _, err := protocol.V2.AppendClient(nil, &protocol.Message{JoinRef: "1", Ref: strconv.FormatInt(published+2, 10),
			Topic: benchTopic, Event: protocol.EventBroadcast, Broadcast: &protocol.Broadcast{Event: "cursor", Payload: payload}})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.pub.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			b.Fatal(err)
		}
		published++
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.delivered.Load() < published*n {
		select {
		case <-r.progress:
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", r.delivered.Load(), published*n)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range r.lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(published*n)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(all[len(all)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100])/1e6, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func (r *fanoutRig) close() {
	for _, ws := range r.subs {
		ws.Close()
	}
	if r.pub != nil {
		r.pub.Close()
	}
	r.wg.Wait()
}

// dialBench dials with small client buffers (many connections).
func dialBench(b *testing.B, url string) *websocket.Conn {
	d := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 1024}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	return ws
}

// BenchmarkFanout measures broadcast fan-out on loopback: one publisher
// sending ~150-byte kind-3 broadcasts to N subscribers of one topic (all
// 2.0.0, receiving kind-4 frames), deliveries/s and publish-to-receive
// latency measured at the subscribers. The publisher keeps at most
// "window" broadcasts in flight (8: a steady load; 32: saturation).
// "server" is this package; "bare" is the ceiling, in the same run: a
// plain gorilla handler writing one PreparedMessage to every connection
// in a loop.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, w := range []int{8, 32} {
			b.Run(fmt.Sprintf("subs=%d/window=%d/server", n, w), func(b *testing.B) { benchServer(b, n, w) })
			b.Run(fmt.Sprintf("subs=%d/window=%d/bare", n, w), func(b *testing.B) { benchBare(b, n, w) })
		}
	}
}

func benchServer(b *testing.B, n, window int) {
	srv, err := server.New(server.Config{JWTSecret: []byte("bench"), Limits: server.Limits{Off: true}})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	url := "ws://" + srv.Addr() + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + srv.AnonKey()
	r := newRig(n, window)
	defer r.close()
	join := []byte(`["1","1","` + benchTopic + `","phx_join",{"config":{"broadcast":{"ack":false,"self":false}}}]`)
	for range n {
		ws := dialBench(b, url)
		if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil { // the join reply
			b.Fatal(err)
		}
		r.subs = append(r.subs, ws)
	}
	r.pub = dialBench(b, url)
	if err := r.pub.WriteMessage(websocket.TextMessage, join); err != nil {
		b.Fatal(err)
	}
	if _, _, err := r.pub.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	r.listen()
	r.run(b)
	if st := srv.Stats(); st.SlowConsumerDrops != 0 {
		b.Errorf("slow consumer drops: %d", st.SlowConsumerDrops)
	}
}

// bareServer is the baseline: gorilla/websocket with no protocol logic.
type bareServer struct {
	up   websocket.Upgrader
	mu   sync.Mutex
	subs []*websocket.Conn
	wg   sync.WaitGroup
}

// startBareServer serves a bareServer on a loopback port until stop;
// url is its WebSocket URL.
func startBareServer(b *testing.B) (bs *bareServer, url string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bs = &bareServer{}
	hs := &http.Server{Handler: bs}
	go hs.Serve(ln)
	stop = func() {
		hs.Close()
		bs.mu.Lock()
		for _, c := range bs.subs {
			c.Close()
		}
		bs.mu.Unlock()
		bs.wg.Wait()
	}
	return bs, "ws://" + ln.Addr().String() + "/", stop
}

func (s *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if r.URL.Query().Get("role") != "pub" {
		s.mu.Lock()
		s.subs = append(s.subs, ws)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() { // drain, so closes are seen
			defer s.wg.Done()
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer ws.Close()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			m, err := protocol.V2.DecodeClient(data, true)
			if err != nil {
				continue
			}
			out, _, _ := protocol.V2.AppendServer(nil, &protocol.Message{Topic: m.Topic, Event: m.Event, Broadcast: m.Broadcast})
			pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, out)
			if err != nil {
				return
			}
			s.mu.Lock()
			subs := s.subs
			s.mu.Unlock()
			for _, c := range subs {
				_ = c.WritePreparedMessage(pm)
			}
		}
	}()
}

func benchBare(b *testing.B, n, window int) {
	bs, url, stop := startBareServer(b)
	defer stop()
	r := newRig(n, window)
	defer r.close()
	for range n {
		r.subs = append(r.subs, dialBench(b, url))
	}
	r.pub = dialBench(b, url+"?role=pub")
	for {
		bs.mu.Lock()
		k := len(bs.subs)
		bs.mu.Unlock()
		if k == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.listen()
	r.run(b)
}

// idleChildEnv makes the test binary a child holding idle client
// connections (see BenchmarkIdleConnMemory).
const idleChildEnv = "RTM_BENCH_IDLE_CHILD"

// runIdleChild dials n connections to url, optionally joins a channel on
// each, prints "ready" and holds them until stdin closes.
func runIdleChild(spec string) {
	parts := strings.SplitN(spec, " ", 3)
	n, _ := strconv.Atoi(parts[0])
	joinEach := parts[1] == "join"
	url := parts[2]
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 30 * time.Second}
	conns := make([]*websocket.Conn, 0, n)
	for i := range n {
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			fmt.Printf("error dial %d: %v\n", i, err)
			os.Exit(1)
		}
		if joinEach {
			msg := fmt.Sprintf(`["1","1","realtime:idle-%d","phx_join",{"config":{"presence":{"enabled":false}}}]`, i%100)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				fmt.Printf("error join %d: %v\n", i, err)
				os.Exit(1)
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				fmt.Printf("error join reply %d: %v\n", i, err)
				os.Exit(1)
			}
		}
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		ws.Close()
	}
	os.Exit(0)
}

// BenchmarkIdleConnMemory measures the server's Go memory per idle
// connection: heap in use plus goroutine stacks, after GC, with 10,000
// connections held by a child process (this test binary re-executed, so
// the 20,000-descriptor limit covers both ends), minus the same figure
// before they connected. "connected" sockets have no channel; "joined"
// sockets each joined one channel; "bare" is the baseline: a plain
// gorilla server with its default buffers and one reader goroutine per
// connection.
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, mode := range []string{"connected", "joined", "bare"} {
		b.Run(mode, func(b *testing.B) {
			const n = 10000
			for b.Loop() {
				perConn, goroutines := idleMemory(b, n, mode)
				b.ReportMetric(perConn, "bytes/conn")
				b.ReportMetric(goroutines, "goroutines/conn")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func idleMemory(b *testing.B, n int, mode string) (bytesPerConn, goroutinesPerConn float64) {
	var url string
	var connections func() int
	if mode == "bare" {
		bs, u, stop := startBareServer(b)
		defer stop()
		url = u
		connections = func() int { bs.mu.Lock(); defer bs.mu.Unlock(); return len(bs.subs) }
	} else {
		srv, err := server.New(server.Config{JWTSecret: []byte("bench"), Limits: server.Limits{Off: true}, IdleTimeout: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Start("127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		url = "ws://" + srv.Addr() + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + srv.AnonKey()
		connections = func() int { return srv.Stats().Connections }
	}
	inuse := func() (uint64, int) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
	}
	before, gBefore := inuse()
	child := "connect"
	if mode == "joined" {
		child = "join"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleChildEnv+"="+fmt.Sprintf("%d %s %s", n, child, url))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("child: %q %v", line, err)
	}
	deadline := time.Now().Add(time.Minute)
	for connections() != n {
		if time.Now().After(deadline) {
			b.Fatalf("connections %d, want %d", connections(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	after, gAfter := inuse()
	return float64(after-before) / float64(n), float64(gAfter-gBefore) / float64(n)
}
