package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/proxy"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

func TestNewRejectsBadUpstream(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:54321", "ws://127.0.0.1:4000", "ftp://x", "http://", "http://h?apikey=secret", "https://user:pw@h"} {
		if _, err := proxy.New(proxy.Config{Upstream: u}); err == nil {
			t.Errorf("New(%q): no error", u)
		} else if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("New(%q): error shows a secret: %v", u, err)
		}
	}
	if _, err := proxy.New(proxy.Config{Upstream: "http://127.0.0.1:1", CACertFile: "/nonexistent/ca.pem"}); err == nil {
		t.Error("missing CA file: no error")
	}
}

// The relayed socket carries the app's path, query, headers and
// subprotocol, and each message both ways unchanged.
func TestRelayEcho(t *testing.T) {
	up := newEchoUpstream(t, false)
	var gotReq *http.Request
	seen := make(chan struct{})
	inner := up.Config.Handler
	up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			gotReq = r.Clone(context.Background())
			close(seen)
		}
		inner.ServeHTTP(w, r)
	})
	rec := newRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	h := http.Header{"X-Client-Info": {"realtime-js/2.119.0"}, "Authorization": {"Bearer tok"}, "Sec-Websocket-Protocol": {"chat"}}
	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket?apikey=k&vsn=2.0.0"), h)
	<-seen
	if gotReq.URL.Path != "/realtime/v1/websocket" || gotReq.URL.RawQuery != "apikey=k&vsn=2.0.0" {
		t.Errorf("upstream got %s?%s", gotReq.URL.Path, gotReq.URL.RawQuery)
	}
	for _, k := range []string{"X-Client-Info", "Authorization"} {
		if gotReq.Header.Get(k) != h.Get(k) {
			t.Errorf("upstream header %s = %q, want %q", k, gotReq.Header.Get(k), h.Get(k))
		}
	}
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q, want chat", c.Subprotocol())
	}
	msgs := []struct {
		typ  int
		data []byte
	}{{websocket.TextMessage, []byte(`["1","1","realtime:a","phx_join",{}]`)}, {websocket.BinaryMessage, []byte{3, 0, 0xff, 1}}, {websocket.TextMessage, nil}}
	for _, m := range msgs {
		if err := c.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, b, err := c.ReadMessage()
		if err != nil || typ != m.typ || !bytes.Equal(b, m.data) {
			t.Fatalf("echo: %d %q %v, want %d %q", typ, b, err, m.typ, m.data)
		}
	}
	// The app closes with its code and reason; the upstream gets them and
	// its answer comes back.
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, reason := closeCode(up.end(t)); code != 4000 || reason != "bye" {
		t.Errorf("upstream saw close %d %q, want 4000 bye", code, reason)
	}
	_, _, err := c.ReadMessage()
	if code, reason := closeCode(err); code != 4000 || reason != "bye" {
		t.Errorf("app got %v, want the close answered", err)
	}
	cl := rec.waitClosed(t, 1)
	if cl[0].By != proxy.FromApp || cl[0].Code != 4000 || cl[0].Reason != "bye" {
		t.Errorf("Closed %+v", cl[0])
	}
	for _, d := range []proxy.Direction{proxy.FromApp, proxy.ToApp} {
		fs := rec.framesOf(d)
		if len(fs) != len(msgs) {
			t.Fatalf("%s: %d frames, want %d", d, len(fs), len(msgs))
		}
		for i, f := range fs {
			if f.Binary != (msgs[i].typ == websocket.BinaryMessage) || !bytes.Equal(f.Data, msgs[i].data) || f.Conn != 1 {
				t.Errorf("%s frame %d: %+v", d, i, f)
			}
		}
	}
	if len(rec.opens) != 1 || rec.opens[0].RawQuery != "apikey=k&vsn=2.0.0" || rec.opens[0].Header.Get("Authorization") != "Bearer tok" {
		t.Errorf("Open: %+v", rec.opens)
	}
}

// An upstream that closes passes its code and reason to the app.
func TestRelayUpstreamCloses(t *testing.T) {
	up := newEchoUpstream(t, false)
	rec := newRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	c := dial(t, wsURL(hs.URL, "/socket/websocket?vsn=1.0.0"), nil)
	uc := <-up.conns
	if err := uc.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "kicked"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	if code, reason := closeCode(err); code != 4001 || reason != "kicked" {
		t.Errorf("app got %v, want 4001 kicked", err)
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "kicked"), time.Now().Add(time.Second))
	if cl := rec.waitClosed(t, 1); cl[0].By != proxy.ToApp || cl[0].Code != 4001 {
		t.Errorf("Closed %+v", cl[0])
	}
}

// An upstream that refuses the upgrade is seen by the app as it answered.
func TestRelayRefusedUpgrade(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
	}{{403, `{"message":"Unauthorized: invalid JWT"}`}, {429, `{"message":"Too many connections"}`}, {500, "boom"}} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Refused", "1")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		rec := newRecorder()
		_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
		_, resp, err := websocket.DefaultDialer.Dial(wsURL(hs.URL, "/realtime/v1/websocket?vsn=2.0.0"), nil)
		if err == nil || resp == nil {
			t.Fatalf("%d: dial %v, want a refusal", tc.status, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || string(body) != tc.body || resp.Header.Get("X-Refused") != "1" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%d: app got %d %q %v", tc.status, resp.StatusCode, body, resp.Header)
		}
		if len(rec.opens) != 0 {
			t.Errorf("%d: Observer told of a refused socket", tc.status)
		}
		up.Close()
	}
}

// An unreachable upstream is a 502.
func TestRelayUnreachable(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	url := up.URL
	up.Close()
	_, hs := startProxy(t, proxy.Config{Upstream: url})
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(hs.URL, "/realtime/v1/websocket?apikey=eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dial: %v %v, want 502", err, resp)
	}
	resp, err = http.Get(hs.URL + "/rest/v1/x")
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("GET: %v %v, want 502", err, resp)
	}
	resp.Body.Close()
}

// An upstream that dies in the middle of a frame gives the app an
// abnormal close, as a direct connection would.
func TestRelayUpstreamDiesMidFrame(t *testing.T) {
	up := newEchoUpstream(t, false)
	rec := newRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
	uc := <-up.conns
	// A text frame header announcing 100 bytes, 10 of them, then the end.
	raw := append([]byte{0x81, 100}, "0123456789"...)
	if _, err := uc.NetConn().Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = uc.NetConn().Close()
	_, _, err := c.ReadMessage()
	if code, _ := closeCode(err); code != websocket.CloseAbnormalClosure {
		t.Errorf("app got %v, want 1006", err)
	}
	cl := rec.waitClosed(t, 1)
	if cl[0].By != proxy.ToApp || cl[0].Code != websocket.CloseAbnormalClosure {
		t.Errorf("Closed %+v", cl[0])
	}
	if fs := rec.framesOf(proxy.ToApp); len(fs) != 0 {
		t.Errorf("a partial frame was observed: %+v", fs)
	}
}

// A message over MaxFrameSize closes both sides with 1009, each way.
func TestRelayOversized(t *testing.T) {
	const max = 1000
	up := newEchoUpstream(t, false)
	rec := newRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec, MaxFrameSize: max})

	c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
	<-up.conns
	if err := c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), max)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.ReadMessage(); err != nil || len(b) != max {
		t.Fatalf("a message of the limit: %d bytes, %v", len(b), err)
	}
	if err := c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), max+1)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	if code, reason := closeCode(err); code != websocket.CloseMessageTooBig || reason != "message exceeds 1000 bytes" {
		t.Errorf("app got %v, want 1009", err)
	}
	if code, _ := closeCode(up.end(t)); code != websocket.CloseMessageTooBig {
		t.Errorf("upstream: want 1009")
	}
	if cl := rec.waitClosed(t, 1); cl[0].By != proxy.FromApp || cl[0].Code != websocket.CloseMessageTooBig {
		t.Errorf("Closed %+v", cl[0])
	}

	// The other way: the upstream sends too much.
	c2 := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
	uc := <-up.conns
	if err := uc.WriteMessage(websocket.BinaryMessage, make([]byte, 3*max)); err != nil {
		t.Fatal(err)
	}
	_, _, err = c2.ReadMessage()
	if code, _ := closeCode(err); code != websocket.CloseMessageTooBig {
		t.Errorf("app got %v, want 1009", err)
	}
	if cl := rec.waitClosed(t, 2); cl[1].By != proxy.ToApp || cl[1].Code != websocket.CloseMessageTooBig {
		t.Errorf("Closed %+v", cl[1])
	}
}

// transcript is what an app sees on a socket after sending msgs: each
// message received, then the close code.
func transcript(t *testing.T, url string, msgs [][]byte) []string {
	t.Helper()
	c := dial(t, url, nil)
	for _, m := range msgs {
		if err := c.WriteMessage(websocket.TextMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			code, reason := closeCode(err)
			if code == 0 {
				out = append(out, "timeout")
			} else {
				out = append(out, fmt.Sprintf("close %d %s", code, reason))
			}
			return out
		}
		out = append(out, string(b))
	}
}

// Garbage from the app is relayed: the embedded server answers it
// through the proxy exactly as it does directly.
func TestRelayGarbage(t *testing.T) {
	srv := servertest.New(t, servertest.WithLimits(server.Limits{Off: true}))
	rec := newRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: srv.URL, Observer: rec})
	garbage := [][]byte{[]byte("not json"), []byte(`["1","1","realtime:x","phx_join"`), {0xff, 0xfe, 0}, []byte(`{"topic":1}`), {3, 200, 1}}
	n := 0
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		q := "?vsn=" + vsn + "&apikey=" + srv.AnonKey()
		for _, g := range garbage {
			msgs := [][]byte{g, []byte(`["1","2","phoenix","heartbeat",{}]`)}
			direct := transcript(t, srv.WSURL+q, msgs)
			proxied := transcript(t, wsURL(hs.URL, "/realtime/v1/websocket")+q, msgs)
			if strings.Join(direct, "\n") != strings.Join(proxied, "\n") {
				t.Errorf("vsn %s, %q: direct:\n%s\nproxied:\n%s", vsn, g, strings.Join(direct, "\n"), strings.Join(proxied, "\n"))
			}
			n++
			rec.waitClosed(t, n)
			var first []byte
			for _, f := range rec.framesOf(proxy.FromApp) {
				if f.Conn == uint64(n) {
					first = f.Data
					break
				}
			}
			if !bytes.Equal(first, g) {
				t.Errorf("vsn %s: garbage %q not observed as sent", vsn, g)
			}
		}
	}
}

// Close with sockets open cuts them all and leaves no goroutine (TestMain
// checks); Shutdown sends them 1001 first.
func TestCloseWithSocketsOpen(t *testing.T) {
	up := newEchoUpstream(t, false)
	for _, graceful := range []bool{false, true} {
		rec := newRecorder()
		p, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
		var cs []*websocket.Conn
		for range 3 {
			c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
			<-up.conns
			cs = append(cs, c)
		}
		rec.waitOpen(t, 3) // a socket the proxy had not yet counted would end unobserved
		if graceful {
			go func() {
				// The apps answer the close frame.
				for _, c := range cs {
					go func() {
						_, _, err := c.ReadMessage()
						if code, _ := closeCode(err); code == websocket.CloseGoingAway {
							_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
						}
					}()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), quick)
			if err := p.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			cancel()
		} else {
			_ = p.Close()
			for _, c := range cs {
				if _, _, err := c.ReadMessage(); err == nil {
					t.Error("a socket survived Close")
				}
			}
		}
		cl := rec.waitClosed(t, 3)
		for _, c := range cl {
			if c.By != 0 {
				t.Errorf("graceful %v: Closed %+v, want by the proxy", graceful, c)
			}
			if graceful && c.Code != websocket.CloseGoingAway {
				t.Errorf("Shutdown: Closed %+v, want 1001", c)
			}
		}
		for range 3 {
			up.end(t)
		}
		// A closed proxy answers 503.
		resp, err := http.Get(hs.URL + "/x")
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("after close: %v %v", err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

// A burst of messages of every size (some over the coalescing bound) is
// relayed whole and in order both ways, with writes coalesced.
func TestRelayBurst(t *testing.T) {
	for _, tls := range []bool{false, true} {
		up := newEchoUpstream(t, tls)
		rec := newRecorder()
		_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec, Insecure: true})
		c := dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil)
		<-up.conns
		const n = 2000
		msg := func(i int) []byte {
			size := (i * 7919) % (40 << 10)
			if i%10 != 0 {
				size %= 300
			}
			return append(fmt.Appendf(nil, "%d:", i), bytes.Repeat([]byte{byte(i)}, size)...)
		}
		errc := make(chan error, 1)
		go func() {
			for i := range n {
				if err := c.WriteMessage(websocket.BinaryMessage, msg(i)); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for i := range n {
			_, b, err := c.ReadMessage()
			if err != nil || !bytes.Equal(b, msg(i)) {
				t.Fatalf("tls %v: message %d: %d bytes %v", tls, i, len(b), err)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if got := len(rec.framesOf(proxy.ToApp)); got != n {
			t.Errorf("tls %v: %d frames observed to the app, want %d", tls, got, n)
		}
	}
}

// Shutdown with an app that does not answer the close frame gives up
// when its context ends, cuts the socket and leaves nothing running.
func TestShutdownUnanswered(t *testing.T) {
	up := newEchoUpstream(t, false)
	rec := newRecorder()
	p, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	dial(t, wsURL(hs.URL, "/realtime/v1/websocket"), nil) // never reads
	<-up.conns
	rec.waitOpen(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if cl := rec.waitClosed(t, 1); cl[0].Code != websocket.CloseGoingAway || cl[0].By != 0 {
		t.Errorf("Closed %+v", cl[0])
	}
}
