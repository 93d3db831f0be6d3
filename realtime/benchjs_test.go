package realtime

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/jsharness"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// The benchmarks in this file compare this client with realtime-js
// 2.119.0 running in Node 22 (the pinned binary of jsharness), in the same
// run, on the same frames or the same server. The Node side is in
// testdata/realtimejs/bench. Each reports medians of several rounds and
// the ratios as custom metrics; run them with -benchtime=1x (they do
// their own rounds).

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// node runs a bench script and returns its stdout.
func node(b *testing.B, stdin string, script string, args ...string) []byte {
	b.Helper()
	bin := jsharness.Install(b)
	cmd := exec.Command(bin, append([]string{filepath.Join(jsharness.Dir(b), "bench", script)}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return out
}

const rounds = 5

// goDispatchNs times BenchmarkDispatch's loop over n frames of one kind
// (testing.Benchmark cannot nest in a benchmark).
func goDispatchNs(b *testing.B, frame string, binary bool, n int) float64 {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var got atomic.Int64
	s, c, _ := benchSocket(b, ChannelConfig{}, func(e Event) {
		if e.Type == EventBroadcast && e.Broadcast.Event == "cursor" {
			got.Add(1)
		}
	})
	data := []byte(frame)
	start := time.Now()
	for i := 1; i <= n; i++ {
		s.handleFrame(c, data, binary, time.Now())
		if i&255 == 0 {
			runtime.Gosched()
		}
	}
	s.Close() // waits for the last deliveries
	elapsed := time.Since(start)
	if int(got.Load()) != n {
		b.Fatalf("delivered %d of %d", got.Load(), n)
	}
	return float64(elapsed.Nanoseconds()) / float64(n)
}

// BenchmarkDispatchVsRealtimeJS: decode + dispatch of a ~220-byte
// broadcast frame (text and binary kind 4) on one core, this client
// (GOMAXPROCS 1, consumer included) against realtime-js's socket message
// handler fed the same frames (JSON.parse or binary decode, channel
// routing, binding filter, callback).
func BenchmarkDispatchVsRealtimeJS(b *testing.B) {
	const frames = 200000
	var goText, goBin []float64
	goDispatchNs(b, benchText, false, frames) // warm up
	for range rounds {
		goText = append(goText, goDispatchNs(b, benchText, false, frames))
		goBin = append(goBin, goDispatchNs(b, benchBinary, true, frames))
	}
	out := node(b, "", "dispatch.mjs", benchTopic, benchText, base64.StdEncoding.EncodeToString([]byte(benchBinary)), "200000", strconv.Itoa(rounds))
	var js struct{ Text, Binary []float64 }
	if err := json.Unmarshal(out, &js); err != nil {
		b.Fatalf("node output %q: %v", out, err)
	}
	b.ReportMetric(median(goText), "go-text-ns/frame")
	b.ReportMetric(median(js.Text), "js-text-ns/frame")
	b.ReportMetric(median(js.Text)/median(goText), "text-speedup")
	b.ReportMetric(median(goBin), "go-binary-ns/frame")
	b.ReportMetric(median(js.Binary), "js-binary-ns/frame")
	b.ReportMetric(median(js.Binary)/median(goBin), "binary-speedup")
	b.Logf("frame %d bytes text, %d binary; go text %v, js text %v; go binary %v, js binary %v (ns/frame per round)",
		len(benchText), len(benchBinary), goText, js.Text, goBin, js.Binary)
}

// BenchmarkPresenceVsRealtimeJS: a 10k-member presence_state and one diff
// into a 10k-member state, this client against realtime-js (bare, and
// reading presenceState() on each sync as a UI does).
func BenchmarkPresenceVsRealtimeJS(b *testing.B) {
	const members, diffs = 10000, 20000
	state := presenceState(members, "1")
	join, leave := presenceDiff("newcomer", "N1", true), presenceDiff("newcomer", "N1", false)
	var goState, goDiff []float64
	for range rounds {
		s, c, ch := benchSocket(b, ChannelConfig{Presence: PresenceConfig{Enabled: true}, EventBuffer: 1 << 20}, func(Event) {})
		t0 := time.Now()
		s.handleFrame(c, state, false, time.Now())
		goState = append(goState, float64(time.Since(t0).Nanoseconds())/1e6)
		if ch.Presence().Len() != members {
			b.Fatalf("%d members", ch.Presence().Len())
		}
		t0 = time.Now()
		for i := range diffs {
			if i%2 == 0 {
				s.handleFrame(c, join, false, time.Now())
			} else {
				s.handleFrame(c, leave, false, time.Now())
			}
		}
		goDiff = append(goDiff, float64(time.Since(t0).Nanoseconds())/diffs)
		s.Close()
	}
	frames := string(state) + "\n" + string(join) + "\n" + string(leave) + "\n"
	out := node(b, frames, "presence.mjs", strings.TrimPrefix(benchTopic, "realtime:"), strconv.Itoa(members), strconv.Itoa(diffs), "10", strconv.Itoa(rounds))
	var js struct {
		StateMs, DiffNs, DiffReadNs []float64
	}
	if err := json.Unmarshal(out, &js); err != nil {
		b.Fatalf("node output %q: %v", out, err)
	}
	b.ReportMetric(median(goState), "go-state10k-ms")
	b.ReportMetric(median(js.StateMs), "js-state10k-ms")
	b.ReportMetric(median(goDiff), "go-diff-ns")
	b.ReportMetric(median(js.DiffNs), "js-diff-ns")
	b.ReportMetric(median(js.DiffReadNs), "js-diff+read-ns")
	b.ReportMetric(median(js.DiffNs)/median(goDiff), "diff-speedup")
	b.ReportMetric(median(js.DiffReadNs)/median(goDiff), "diff+read-speedup")
	b.Logf("go state %v ms, diff %v ns; js state %v ms, diff %v ns, diff+read %v ns", goState, goDiff, js.StateMs, js.DiffNs, js.DiffReadNs)
}

// streamServer starts a server that can queue a whole stream for one
// socket.
func streamServer(b *testing.B) *servertest.Server {
	return servertest.New(b, servertest.WithLimits(server.Limits{Off: true}), servertest.WithConfig(func(c *server.Config) {
		c.OutboundQueue = 1 << 22
		c.OutboundQueueBytes = 1 << 30
	}))
}

// streamPayload is the broadcast payload of message i: ~220-byte frames.
func streamPayload(i int) json.RawMessage {
	return json.RawMessage(`{"i":` + strconv.Itoa(i) + `,"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"sel":[12,48]}`)
}

// produce broadcasts n messages on topic from the server and returns when
// it started.
func produce(srv *servertest.Server, name string, n int) time.Time {
	start := time.Now()
	for i := range n {
		srv.Broadcast(name, "cursor", streamPayload(i))
	}
	return start
}

// seqOf reads i from a payload {"i":<i>,...}.
func seqOf(p []byte) int {
	const pre = `{"i":`
	if len(p) < len(pre) || string(p[:len(pre)]) != pre {
		return -1
	}
	n := 0
	for _, c := range p[len(pre):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// recvGo receives n messages with this client; returns msgs/s.
func recvGo(b *testing.B, srv *servertest.Server, name string, n int) float64 {
	done := make(chan time.Time, 1)
	var count, next int
	inOrder := true
	s := dial(b, srv, func(o *Options) { o.EventBuffer = n })
	ch, err := s.Channel(name, ChannelConfig{OnEvent: func(e Event) {
		if e.Type != EventBroadcast {
			return
		}
		if seqOf(e.Broadcast.Payload) != next {
			inOrder = false
		}
		next++
		if count++; count == n {
			done <- time.Now()
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Subscribe(ctxT(b)); err != nil {
		b.Fatal(err)
	}
	start := produce(srv, name, n)
	var last time.Time
	select {
	case last = <-done:
	case <-time.After(time.Minute):
		b.Fatalf("go: %d of %d", count, n)
	}
	if !inOrder || ch.Stats().Dropped != 0 {
		b.Fatalf("go: in order %v, dropped %d", inOrder, ch.Stats().Dropped)
	}
	s.Close()
	return float64(n) / last.Sub(start).Seconds()
}

// recvBare receives n messages with a bare gorilla read loop (join by
// hand, then ReadMessage and count); returns msgs/s.
func recvBare(b *testing.B, srv *servertest.Server, name string, n int) float64 {
	ws, _, err := websocket.DefaultDialer.Dial(srv.SocketURL(srv.AnonKey(), "2.0.0"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	join := fmt.Sprintf(`["1","1","realtime:%s","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}]`, name)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		b.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"ok"`) {
		b.Fatalf("join reply %s %v", msg, err)
	}
	done := make(chan time.Time, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, _, err := ws.ReadMessage(); err != nil {
				done <- time.Time{}
				return
			}
		}
		done <- time.Now()
	}()
	start := produce(srv, name, n)
	last := <-done
	if last.IsZero() {
		b.Fatal("bare read loop failed")
	}
	return float64(n) / last.Sub(start).Seconds()
}

// recvJS receives n messages with realtime-js in Node; returns msgs/s.
func recvJS(b *testing.B, srv *servertest.Server, name string, n int) float64 {
	bin := jsharness.Install(b)
	cmd := exec.Command(bin, filepath.Join(jsharness.Dir(b), "bench", "recv.mjs"), jsharness.Endpoint(srv.URL), srv.AnonKey(), name, strconv.Itoa(n))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.Contains(lines.Text(), "ready") {
		b.Fatalf("recv.mjs did not subscribe: %s %s", lines.Text(), stderr.String())
	}
	start := produce(srv, name, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := make(chan string, 1)
	go func() {
		if lines.Scan() {
			res <- lines.Text()
		}
		close(res)
	}()
	var line string
	select {
	case line = <-res:
	case <-ctx.Done():
		b.Fatalf("recv.mjs: no result; %s", stderr.String())
	}
	var r struct {
		Count       int
		First, Last float64
		InOrder     bool
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.Count != n || !r.InOrder {
		b.Fatalf("recv.mjs result %q (%v) %s", line, err, stderr.String())
	}
	last := time.UnixMicro(int64(r.Last * 1000))
	return float64(n) / last.Sub(start).Seconds()
}

// BenchmarkReceiveStream: sustained receive on one socket of a stream of
// ~220-byte broadcasts sent by the embedded server, measured from the
// first broadcast to the last message handed to the consumer: this client,
// a bare gorilla read loop (the ceiling) and realtime-js, in turns on the
// same server. No loss and order are checked for this client and
// realtime-js.
func BenchmarkReceiveStream(b *testing.B) {
	const n = 100000
	srv := streamServer(b)
	var goR, bareR, jsR []float64
	for r := range 7 {
		name := fmt.Sprintf("stream%d", r)
		// Rotate the order so no receiver always runs first.
		for k := range 3 {
			switch (r + k) % 3 {
			case 0:
				goR = append(goR, recvGo(b, srv, name+"go", n))
			case 1:
				bareR = append(bareR, recvBare(b, srv, name+"bare", n))
			case 2:
				jsR = append(jsR, recvJS(b, srv, name+"js", n))
			}
		}
	}
	b.ReportMetric(median(goR), "go-msgs/s")
	b.ReportMetric(median(bareR), "bare-msgs/s")
	b.ReportMetric(median(jsR), "js-msgs/s")
	b.ReportMetric(median(goR)/median(jsR), "go/js")
	b.ReportMetric(median(goR)/median(bareR), "go/bare")
	b.Logf("msgs/s per round: go %.0f, bare %.0f, js %.0f", goR, bareR, jsR)
}
