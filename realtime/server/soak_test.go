package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// TestSoakHostileMix runs a few seconds of mixed hostile traffic against
// one server (REST batches of a hundred thousand empty messages,
// body-less POSTs and idle keep-alive connections, presence hogs, joins
// of megabyte topics, another tenant flooding broadcasts and joins,
// garbage frames, broadcasts to ever new tenants) while a well-behaved
// tenant's two clients keep sending broadcasts over the WebSocket and
// REST and tracking presence. The well-behaved clients must receive
// everything, in order; every hostile kind must meet its own limit; the
// server's heap must stay bounded; and closing the server must leave no
// goroutine behind. RTM_SOAK=30s makes it longer.
func TestSoakHostileMix(t *testing.T) {
	dur := 3 * time.Second
	if v := os.Getenv("RTM_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RTM_SOAK=%q: %v", v, err)
		}
		dur = d
	}
	leaks := goleak.IgnoreCurrent()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.HTTPReadHeaderTimeout = 300 * time.Millisecond
		c.HTTPReadTimeout = time.Second
		c.HTTPIdleTimeout = 300 * time.Millisecond
		c.MaxHTTPConnections = 300
		c.MaxPresenceBytesPerConn = 2 << 20
		c.MaxPresenceBytes = 16 << 20
	}))
	runtime.GC() // the base: what is live, not what earlier tests left
	base := heapInuse()
	// REST clients let idle connections go before the server's idle
	// timeout closes them, so that no request goes out on a connection
	// the server is closing (a POST is not retried).
	hc := &http.Client{Transport: &http.Transport{IdleConnTimeout: 100 * time.Millisecond, MaxIdleConnsPerHost: 8}}

	// The well-behaved tenant: a sender and a receiver on one room.
	const room = "realtime:tenant:good:room"
	good := s.UserToken(t, "alice", time.Hour, map[string]any{"tenant_id": "good"})
	sender, receiver := dial(t, s, good, "2.0.0"), dial(t, s, good, "2.0.0")
	sj, _ := sender.join(room, joinPayload(`{"ack":true,"self":false}`, `{"key":"sender","enabled":true}`, false, ""))
	rj, _ := receiver.join(room, joinPayload(`{"ack":false,"self":false}`, `{"key":"receiver","enabled":true}`, false, ""))
	if _, r := receiver.awaitReply(receiver.send(rj, room, protocol.EventPresence,
		`{"type":"presence","event":"track","payload":{"name":"receiver"}}`)); r.Status != protocol.StatusOK {
		t.Fatalf("receiver's track: %+v", r)
	}
	sender.await("the receiver's presence", func(f inFrame) bool {
		return f.msg.Event == protocol.EventPresenceDiff && strings.Contains(string(f.msg.Payload), `"receiver"`)
	})

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var peak atomic.Uint64
	var wg sync.WaitGroup
	counts := map[string]*atomic.Int64{}
	hostile := func(name string, round func(ctx context.Context) error) {
		n := &atomic.Int64{}
		counts[name] = n
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := round(ctx); err != nil {
					// A dial or read cut by the soak's end is no failure
					// (it may return a moment before ctx reports it).
					if deadline, _ := ctx.Deadline(); ctx.Err() == nil && time.Until(deadline) > 50*time.Millisecond {
						t.Errorf("%s: %v", name, err)
					}
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // the heap's peak, sampled
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapInuse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	bomb := []byte(`{"messages":[` + strings.Repeat(`{},`, 199_999) + `{}]}`)
	hostile("REST batch of 200k empty messages", func(ctx context.Context) error {
		status, body, err := post(ctx, hc, s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), bomb)
		switch {
		case err != nil:
			return err
		case status != http.StatusUnprocessableEntity || len(body) > 64<<10 || !json.Valid(body):
			return fmt.Errorf("answer %d, %d bytes: %.200s", status, len(body), body)
		}
		return nil
	})
	hostile("body-less POSTs", func(ctx context.Context) error {
		return heldConns(ctx, s.Addr(), 20, "POST /realtime/v1/api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	})
	hostile("idle keep-alive connections", func(ctx context.Context) error {
		return heldConns(ctx, s.Addr(), 20, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	})
	hostile("presence hog", func(ctx context.Context) error {
		c, err := dialRawWS(ctx, s.SocketURL(s.AnonKey(), "2.0.0"))
		if errors.Is(err, errRefused) {
			return pause(ctx) // the default tenant is over its joins: 429
		}
		if err != nil {
			return err
		}
		defer c.close()
		meta := `{"type":"presence","event":"track","payload":{"pad":"` + strings.Repeat("p", 600_000) + `"}}`
		refused := 0
		for i := range 5 {
			topic := fmt.Sprintf("realtime:hog-%d", i)
			r, err := c.call(protocol.EventJoin, topic, "", joinPayload(`{}`, `{"enabled":true}`, false, ""))
			if err == nil && overJoins(r) {
				return pause(ctx)
			}
			if err != nil || r.Status != protocol.StatusOK {
				return fmt.Errorf("join %s: %+v, %v", topic, r, err)
			}
			r, err = c.call(protocol.EventPresence, topic, c.joinRef, meta)
			if err != nil {
				return err
			}
			if r.Status == protocol.StatusError && strings.HasPrefix(r.Reason(), "PresenceBudgetExceeded:") {
				refused++
			}
		}
		if refused == 0 {
			return errors.New("five tracks of 600 kB, none refused over a budget of 2 MiB")
		}
		return nil
	})
	hostile("joins of 2 MB topics", func(ctx context.Context) error {
		c, err := dialRawWS(ctx, s.SocketURL(s.AnonKey(), "2.0.0"))
		if errors.Is(err, errRefused) {
			return pause(ctx)
		}
		if err != nil {
			return err
		}
		defer c.close()
		for i := range 5 {
			topic := fmt.Sprintf("realtime:%d-%s", i, strings.Repeat("t", 2<<20))
			r, err := c.call(protocol.EventJoin, topic, "", defaultJoin)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(r.Reason(), "TopicTooLong:") {
				return fmt.Errorf("join of a 2 MB topic: %+v", r)
			}
		}
		return nil
	})
	bad := s.UserToken(t, "mallory", time.Hour, map[string]any{"tenant_id": "bad"})
	worse := s.UserToken(t, "trudy", time.Hour, map[string]any{"tenant_id": "worse"})
	hostile("another tenant's broadcast flood", func(ctx context.Context) error {
		c, err := dialRawWS(ctx, s.SocketURL(bad, "2.0.0"))
		if errors.Is(err, errRefused) {
			return pause(ctx) // the tenant is over its joins: 429
		}
		if err != nil {
			return err
		}
		defer c.close()
		const topic = "realtime:tenant:bad:x"
		r, err := c.call(protocol.EventJoin, topic, "", defaultJoin)
		if err == nil && overJoins(r) {
			return pause(ctx)
		}
		if err != nil || r.Status != protocol.StatusOK {
			return fmt.Errorf("join: %+v, %v", r, err)
		}
		for range 200 {
			if err := c.push(protocol.EventBroadcast, topic, c.joinRef, `{"type":"broadcast","event":"spam","payload":{}}`); err != nil {
				return fmt.Errorf("flooding: %w", err)
			}
		}
		return c.until(func(m protocol.Message) bool {
			return m.Event == protocol.EventSystem && strings.Contains(string(m.Payload), "Too many messages per second")
		})
	})
	hostile("another tenant's join flood", func(ctx context.Context) error {
		c, err := dialRawWS(ctx, s.SocketURL(worse, "2.0.0"))
		if errors.Is(err, errRefused) {
			return pause(ctx)
		}
		if err != nil {
			return err
		}
		defer c.close()
		for i := range 150 {
			if err := c.push(protocol.EventJoin, fmt.Sprintf("realtime:tenant:worse:j%d", i), "", defaultJoin); err != nil {
				break // the server closed it already
			}
		}
		err = c.until(func(protocol.Message) bool { return false })
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			return fmt.Errorf("after 150 joins: %v, want close 1001", err)
		}
		return nil
	})
	hostile("garbage frames", func(ctx context.Context) error {
		c, err := dialRawWS(ctx, s.SocketURL(s.AnonKey(), "2.0.0"))
		if err != nil {
			return err
		}
		defer c.close()
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`["1","1","realtime:x","phx_join",{"config":`)); err != nil {
			return err
		}
		err = c.until(func(protocol.Message) bool { return false })
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
			return fmt.Errorf("after a malformed frame: %v, want close 1007", err)
		}
		return nil
	})
	var tenantSeq atomic.Int64
	hostile("broadcasts to ever new tenants", func(ctx context.Context) error {
		for range 20 {
			url := fmt.Sprintf("%s/realtime/v1/api/broadcast/tenant:t%d:x/events/e", s.URL, tenantSeq.Add(1))
			status, body, err := post(ctx, hc, url, s.ServiceRoleKey(), []byte(`{}`))
			if err != nil {
				return err
			}
			if status != http.StatusAccepted && status != http.StatusTooManyRequests {
				return fmt.Errorf("REST to a new tenant: %d %s", status, body)
			}
		}
		return nil
	})

	// Meanwhile the good tenant sends 40 broadcasts a second over its
	// socket (acked) and 4 over REST: under its limit of 100.
	// Its REST client opens a connection per request: a kept-alive one
	// would race the server's 300 ms idle timeout (a POST is not retried).
	goodHC := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var acks []string
	sent := 0
	tick := time.NewTicker(25 * time.Millisecond)
	for ctx.Err() == nil {
		<-tick.C
		acks = append(acks, sender.broadcastJSON(sj, room, "seq", fmt.Sprintf(`{"i":%d}`, sent)))
		sent++
		if sent%10 == 0 {
			status, body, err := post(context.Background(), goodHC, s.URL+"/realtime/v1/api/broadcast/tenant:good:room/events/rest", good,
				[]byte(fmt.Sprintf(`{"i":%d}`, sent/10)))
			if err != nil || status != http.StatusAccepted {
				t.Errorf("the good tenant's REST broadcast: %d %s %v", status, body, err)
			}
		}
	}
	tick.Stop()
	wg.Wait()

	for _, ref := range acks {
		if _, r := sender.awaitReply(ref); r.Status != protocol.StatusOK {
			t.Errorf("broadcast %s acked %+v", ref, r)
		}
	}
	receiver.await("the last broadcast", func(f inFrame) bool {
		b, err := f.msg.UserBroadcast()
		return err == nil && f.msg.Topic == room && b.Event == "seq" && string(b.Payload) == fmt.Sprintf(`{"i":%d}`, sent-1)
	})
	got := receiver.find(isBroadcast(room, "seq"))
	for i, f := range got {
		if b, _ := f.msg.UserBroadcast(); string(b.Payload) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("broadcast %d of %d received is %s", i, sent, b.Payload)
		}
	}
	if len(got) != sent {
		t.Errorf("the receiver got %d of %d broadcasts", len(got), sent)
	}
	receiver.await("the last REST broadcast", func(f inFrame) bool {
		b, err := f.msg.UserBroadcast()
		return err == nil && f.msg.Topic == room && b.Event == "rest" && string(b.Payload) == fmt.Sprintf(`{"i":%d}`, sent/10)
	})
	if n := len(receiver.find(isBroadcast(room, "rest"))); n != sent/10 {
		t.Errorf("the receiver got %d of %d REST broadcasts", n, sent/10)
	}
	if len(receiver.find(func(f inFrame) bool { return f.msg.Event == protocol.EventSystem || f.msg.Event == protocol.EventClose })) > 0 {
		t.Errorf("the good tenant's receiver got a shutdown:\n%s", receiver.dump())
	}
	if len(sender.find(func(f inFrame) bool { return f.msg.Event == protocol.EventSystem || f.msg.Event == protocol.EventClose })) > 0 {
		t.Errorf("the good tenant's sender got a shutdown:\n%s", sender.dump())
	}

	st := s.Stats()
	t.Logf("%s of hostile traffic; the good tenant sent %d broadcasts and %d over REST", dur, sent, sent/10)
	for name, n := range counts {
		t.Logf("  %-36s %d rounds", name, n.Load())
		if n.Load() == 0 {
			t.Errorf("%s: no round completed", name)
		}
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("server: heap in use peaked %.1f MiB over the %.1f MiB before; %d presence bytes, %d refused tracks, %d rate limited, %d bad frames, %d HTTP connections refused, %d tenants held",
		float64(grew)/(1<<20), float64(base)/(1<<20), st.PresenceBytes, st.PresenceRefused, st.RateLimited, st.BadFrames, st.HTTPConnectionsRefused, st.TenantWindows)
	if grew > soakHeapBound {
		t.Errorf("the heap grew by %d MiB under the soak, over its bound of %d MiB", grew>>20, soakHeapBound>>20)
	}
	if st.PresenceRefused == 0 || st.RateLimited == 0 || st.BadFrames == 0 || st.TenantWindows > 1000 {
		t.Errorf("stats %+v: the hostile traffic did not meet its limits", st)
	}

	sender.close()
	receiver.close()
	hc.CloseIdleConnections()
	_ = s.Close()
	goleak.VerifyNone(t, leaks)
}

// soakHeapBound bounds the heap's growth under TestSoakHostileMix: the
// presence budget (16 MiB), the requests in flight (a 600 kB body each)
// and what the test's own clients keep. Before the server bounded its
// REST answers, one 200k-message answer took ~17 MB and its building
// ~200 MB.
const soakHeapBound = 96 << 20

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// pause waits a moment before the next round of a refused client.
func pause(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}

// post sends body with token and returns the answer.
func post(ctx context.Context, hc *http.Client, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return http.StatusAccepted, nil, nil // the soak ended mid-request
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// heldConns opens n connections that each send request (headers only)
// and never anything more, and waits for the server to close every one
// of them (after an answer, or none), which its HTTP timeouts must do
// within a second.
func heldConns(ctx context.Context, addr string, n int, request string) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if _, err := io.WriteString(c, request); err != nil {
				errs <- err
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, bufio.NewReader(c)) // until the server closes
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				errs <- errors.New("a held connection still open after 5 s")
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// rawWS is a hostile client's WebSocket: it discards what it does not
// wait for, and keeps nothing.
type rawWS struct {
	ws      *websocket.Conn
	ref     int
	joinRef string
}

var errRefused = errors.New("connect refused")

func dialRawWS(ctx context.Context, url string) (*rawWS, error) {
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			return nil, errRefused
		}
		return nil, err
	}
	return &rawWS{ws: ws}, nil
}

func (c *rawWS) close() { _ = c.ws.Close() }

// push sends a push and returns nothing; a join's ref becomes joinRef.
func (c *rawWS) push(event, topic, joinRef, payload string) error {
	c.ref++
	ref := fmt.Sprint(c.ref)
	if event == protocol.EventJoin {
		joinRef, c.joinRef = ref, ref
	}
	data, _, err := protocol.V2.AppendClient(nil, &protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Payload: json.RawMessage(payload)})
	if err != nil {
		return err
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

// call sends a push and waits for its reply.
func (c *rawWS) call(event, topic, joinRef, payload string) (protocol.Reply, error) {
	if err := c.push(event, topic, joinRef, payload); err != nil {
		return protocol.Reply{}, err
	}
	ref := fmt.Sprint(c.ref)
	var reply protocol.Reply
	err := c.until(func(m protocol.Message) bool {
		if m.Event != protocol.EventReply || m.Ref != ref {
			return false
		}
		reply, _ = protocol.ParseReply(m.Payload)
		return true
	})
	return reply, err
}

// until reads frames until done accepts one (nil) or the connection ends
// (its error), within 5 s.
func (c *rawWS) until(done func(protocol.Message) bool) error {
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return errors.New("nothing came within 5 s")
			}
			return err
		}
		m, err := protocol.V2.DecodeServer(data, typ == websocket.BinaryMessage)
		if err == nil && done(m) {
			return nil
		}
	}
}

// overJoins reports a join refused for its tenant's joins per second.
func overJoins(r protocol.Reply) bool {
	return r.Status == protocol.StatusError && strings.HasPrefix(r.Reason(), "ClientJoinRateLimitReached:")
}
