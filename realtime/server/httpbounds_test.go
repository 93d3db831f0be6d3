package server_test

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// short is the HTTP timeout of these tests; every outcome is awaited with
// the deadline wait, far beyond it.
const short = 300 * time.Millisecond

// rawConn is a TCP connection speaking HTTP by hand.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response reads one response, body included.
func (c *rawConn) response() (*http.Response, string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// get sends GET / and reads its answer.
func (c *rawConn) get() (*http.Response, string) {
	c.t.Helper()
	c.write("GET / HTTP/1.1\r\nHost: rtm\r\n\r\n")
	return c.response()
}

// awaitClosed fails unless the server closes the connection within the
// deadline wait; whatever arrives before is discarded.
func (c *rawConn) awaitClosed(desc string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("%s: the connection is still open after %v", desc, wait)
	}
}

// TestHTTPBodylessPostClosed: a POST whose body never comes is answered
// 408 and closed after HTTPReadTimeout (it stayed open for ever).
func TestHTTPBodylessPostClosed(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.HTTPReadTimeout = short }))
	for _, path := range []string{"/realtime/v1/api/broadcast", "/realtime/v1/api/broadcast/room/events/e", "/admin/drop"} {
		c := dialRaw(t, s.Addr())
		c.write("POST " + path + " HTTP/1.1\r\nHost: rtm\r\nContent-Type: application/json\r\nContent-Length: 100\r\n" +
			"Authorization: Bearer " + s.ServiceRoleKey() + "\r\n\r\n{")
		resp, body := c.response()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "did not arrive") {
			t.Errorf("%s: %d %s, want 408", path, resp.StatusCode, body)
		}
		c.awaitClosed(path)
	}
}

// TestHTTPIdleKeepAliveClosed: a keep-alive connection waiting for its
// next request is closed after HTTPIdleTimeout.
func TestHTTPIdleKeepAliveClosed(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.HTTPIdleTimeout = short }))
	c := dialRaw(t, s.Addr())
	if resp, _ := c.get(); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /: %d, close %v", resp.StatusCode, resp.Close)
	}
	c.awaitClosed("idle keep-alive")
	eventually(t, "no HTTP connection counted", func() bool { return s.Stats().HTTPConnections == 0 })
}

// TestHTTPHeaderTimeout: a connection that sends no complete request
// header is closed after HTTPReadHeaderTimeout.
func TestHTTPHeaderTimeout(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.HTTPReadHeaderTimeout = short }))
	silent := dialRaw(t, s.Addr())
	partial := dialRaw(t, s.Addr())
	partial.write("GET / HTTP/1.1\r\nHost: rtm\r\n")
	silent.awaitClosed("silent connection")
	partial.awaitClosed("partial header")
}

// TestHTTPSlowReaderCut: a client that sends requests and never reads the
// answers has its connection closed after HTTPWriteTimeout (the server's
// writer blocked for ever).
func TestHTTPSlowReaderCut(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.HTTPWriteTimeout = short }))
	d := net.Dialer{Timeout: wait, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { // a small window: the answers back up at once
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	nc, err := d.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Pipelined requests, written until the server ends the connection;
	// their answers (~500 bytes each) fill the socket buffers and the
	// server's write blocks.
	batch := strings.Repeat("GET / HTTP/1.1\r\nHost: rtm\r\n\r\n", 1000)
	writeErr := make(chan error, 1)
	go func() {
		for {
			if _, err := io.WriteString(nc, batch); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	select {
	case err := <-writeErr:
		t.Logf("the server cut the connection: %v", err)
	case <-time.After(wait):
		nc.Close()
		<-writeErr
		t.Fatalf("a client reading nothing still held its connection after %v", wait)
	}
	eventually(t, "no HTTP connection counted", func() bool { return s.Stats().HTTPConnections == 0 })
}

// TestHTTPConnectionLimit: beyond MaxHTTPConnections a connection is
// answered 503 at once and closed (a WebSocket upgrade too) while the
// first ones are held; a slot frees when one closes; an upgraded
// WebSocket stops counting.
func TestHTTPConnectionLimit(t *testing.T) {
	t.Parallel()
	const n = 3
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.MaxHTTPConnections = n }))
	held := make([]*rawConn, n)
	for i := range held {
		held[i] = dialRaw(t, s.Addr())
		if resp, _ := held[i].get(); resp.StatusCode != http.StatusOK {
			t.Fatalf("held %d: %d", i, resp.StatusCode)
		}
	}
	if got := s.Stats().HTTPConnections; got != n {
		t.Errorf("HTTPConnections %d, want %d", got, n)
	}
	refused := func(desc string) {
		t.Helper()
		c := dialRaw(t, s.Addr())
		resp, body := c.response() // answered before it sends anything
		var m map[string]string
		if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &m) != nil || m["message"] != "Too many HTTP connections" {
			t.Errorf("%s: %d %q, want 503 Too many HTTP connections", desc, resp.StatusCode, body)
		}
		c.awaitClosed(desc)
	}
	refused("connection n+1")
	_, resp, err := websocket.DefaultDialer.Dial(s.SocketURL(s.AnonKey(), "2.0.0"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("WebSocket over the limit: %v %v, want 503", err, resp)
	}
	if resp != nil {
		resp.Body.Close()
	}
	if got := s.Stats().HTTPConnectionsRefused; got != 2 {
		t.Errorf("HTTPConnectionsRefused %d, want 2", got)
	}
	for _, c := range held {
		if resp, _ := c.get(); resp.StatusCode != http.StatusOK {
			t.Errorf("a held connection: %d", resp.StatusCode)
		}
	}

	// Closing one frees its slot: a WebSocket takes it, then leaves the
	// count, so n HTTP connections fit beside it.
	held[0].nc.Close()
	eventually(t, "a slot freed", func() bool { return s.Stats().HTTPConnections == n-1 })
	ws := dialV2(t, s)
	eventually(t, "the WebSocket not counted", func() bool { return s.Stats().HTTPConnections == n-1 })
	held[0] = dialRaw(t, s.Addr())
	if resp, _ := held[0].get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("reopened: %d", resp.StatusCode)
	}
	refused("connection n+1 beside a WebSocket")
	ws.awaitReply(ws.send("", "phoenix", "heartbeat", "{}"))
}

// TestHTTPTimeoutsFreeSlots: connections that hold every slot and send
// nothing are closed by the header timeout, so a WebSocket client gets
// in.
func TestHTTPTimeoutsFreeSlots(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.MaxHTTPConnections = 2
		c.HTTPReadHeaderTimeout = short
	}))
	a, b := dialRaw(t, s.Addr()), dialRaw(t, s.Addr())
	eventually(t, "both slots taken", func() bool { return s.Stats().HTTPConnections == 2 })
	var ws *websocket.Conn
	eventually(t, "a WebSocket connected", func() bool {
		c, resp, err := websocket.DefaultDialer.Dial(s.SocketURL(s.AnonKey(), "2.0.0"), nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		ws = c
		return err == nil
	})
	defer ws.Close()
	a.awaitClosed("silent a")
	b.awaitClosed("silent b")
	if s.Stats().HTTPConnectionsRefused == 0 {
		t.Errorf("no WebSocket attempt was refused while the slots were taken")
	}
}

// webSocketOutlives keeps a WebSocket busy for many times short (pushes
// both ways), failing if it ends.
func webSocketOutlives(t *testing.T, s *servertest.Server) {
	t.Helper()
	c := dialV2(t, s)
	const topic = "realtime:room1"
	c.join(topic, defaultJoin)
	start := time.Now()
	for i := 0; time.Since(start) < 5*short; i++ {
		c.awaitReply(c.send("", "phoenix", "heartbeat", "{}"))
		ev := "tick" + string(rune('a'+i%26))
		s.Broadcast(topic, ev, json.RawMessage(`{}`))
		c.await(ev, isBroadcast(topic, ev))
		// Some quiet time (not an outcome wait): a socket that inherited
		// a deadline would die on the next push.
		time.Sleep(short / 3)
	}
}

// TestWebSocketOutlivesHTTPTimeouts: a WebSocket upgraded through a
// server with short HTTP timeouts keeps working long past them.
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout = short, short, short, short
	}))
	webSocketOutlives(t, s)
}

// serveForeign serves srv's Handler in a plain http.Server configured by
// cfg and returns it as a servertest.Server.
func serveForeign(t *testing.T, srv *server.Server, hs *http.Server) *servertest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Handler = srv.Handler()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
		_ = srv.Close()
	})
	addr := ln.Addr().String()
	return &servertest.Server{Server: srv, URL: "http://" + addr, WSURL: "ws://" + addr + "/realtime/v1/websocket"}
}

// TestHTTPDeadlinesUnderForeignServer: served by another http.Server
// through Handler, a body-less POST is still cut by HTTPReadTimeout, and a
// WebSocket still outlives that server's own timeouts.
func TestHTTPDeadlinesUnderForeignServer(t *testing.T) {
	t.Parallel()
	srv, err := server.New(server.Config{JWTSecret: []byte(rand.Text()), HTTPReadTimeout: short, HTTPWriteTimeout: short})
	if err != nil {
		t.Fatal(err)
	}
	s := serveForeign(t, srv, &http.Server{ReadTimeout: short, WriteTimeout: short, IdleTimeout: short})
	c := dialRaw(t, strings.TrimPrefix(s.URL, "http://"))
	c.write("POST /realtime/v1/api/broadcast HTTP/1.1\r\nHost: rtm\r\nContent-Length: 10\r\napikey: " + s.AnonKey() + "\r\n\r\n")
	if resp, _ := c.response(); resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("body-less POST: %d, want 408", resp.StatusCode)
	}
	c.awaitClosed("body-less POST")
	webSocketOutlives(t, s)

	// With no timeouts of its own, the server still gets the handler's.
	srv2, err := server.New(server.Config{JWTSecret: []byte(rand.Text()), HTTPReadTimeout: short})
	if err != nil {
		t.Fatal(err)
	}
	s2 := serveForeign(t, srv2, &http.Server{})
	c = dialRaw(t, strings.TrimPrefix(s2.URL, "http://"))
	c.write("POST /realtime/v1/api/broadcast HTTP/1.1\r\nHost: rtm\r\nContent-Length: 10\r\napikey: " + s2.AnonKey() + "\r\n\r\n")
	if resp, _ := c.response(); resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("body-less POST, no server timeouts: %d, want 408", resp.StatusCode)
	}
	c.awaitClosed("body-less POST, no server timeouts")
}
