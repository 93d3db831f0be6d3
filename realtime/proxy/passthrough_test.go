package proxy_test

import (
	"bufio"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/proxy"
)

// noRedirect is a client that returns redirects instead of following.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Every request that is not the Realtime websocket reaches the upstream
// unchanged and its answer comes back unchanged.
func TestPassthrough(t *testing.T) {
	var requests atomic.Int32
	next := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/stream":
			// Chunked, flushed piece by piece: the second piece waits until
			// the app has read the first.
			for i := range 3 {
				_, _ = io.WriteString(w, "piece\n")
				w.(http.Flusher).Flush()
				if i < 2 {
					select {
					case <-next:
					case <-time.After(quick):
						return
					}
				}
			}
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Echo-Method", r.Method)
			w.Header().Set("X-Echo-Host", r.Host)
			w.Header().Set("X-Echo-Query", r.URL.RawQuery)
			w.Header().Set("X-Echo-Apikey", r.Header.Get("apikey"))
			w.Header().Set("X-Echo-Forwarded", r.Header.Get("X-Forwarded-For"))
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write(append([]byte(r.URL.Path+":"), body...))
		}
	}))
	defer up.Close()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL})
	upHost := strings.TrimPrefix(up.URL, "http://")

	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		req, _ := http.NewRequest(method, hs.URL+"/rest/v1/todos?select=*&id=eq.1", strings.NewReader("body of "+method))
		req.Header.Set("apikey", "the-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot || string(body) != "/rest/v1/todos:body of "+method {
			t.Errorf("%s: %d %q", method, resp.StatusCode, body)
		}
		h := resp.Header
		if h.Get("X-Echo-Method") != method || h.Get("X-Echo-Host") != upHost || h.Get("X-Echo-Query") != "select=*&id=eq.1" ||
			h.Get("X-Echo-Apikey") != "the-key" || h.Get("X-Echo-Forwarded") != "" || len(h.Values("Set-Cookie")) != 2 {
			t.Errorf("%s: headers %v", method, h)
		}
	}
	if n := requests.Load(); n != 6 {
		t.Errorf("upstream got %d requests, want 6", n)
	}

	// A redirect is returned, not followed.
	resp, err := noRedirect.Get(hs.URL + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" || requests.Load() != 7 {
		t.Errorf("redirect: %d %q (%d requests)", resp.StatusCode, resp.Header.Get("Location"), requests.Load())
	}

	// A streamed answer arrives piece by piece.
	resp, err = http.Get(hs.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("stream: transfer encoding %v, want chunked", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != "piece\n" {
			t.Fatalf("piece %d: %q %v", i, line, err)
		}
		if i < 2 {
			next <- struct{}{} // the upstream writes the next piece only now
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("stream: trailing %q", rest)
	}
}

// A websocket upgrade other than Realtime's is relayed by the reverse
// proxy (not observed).
func TestPassthroughOtherWebsocket(t *testing.T) {
	up := newEchoUpstream(t, false)
	rec := newRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	c := dial(t, wsURL(hs.URL, "/functions/v1/ws"), nil)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.ReadMessage(); err != nil || string(b) != "hi" {
		t.Fatalf("echo %q %v", b, err)
	}
	if len(rec.opens) != 0 {
		t.Error("a non-Realtime websocket was observed")
	}
	// Close ends it (TestMain checks no goroutine is left).
}

// TLS to the upstream is verified: a local upstream with its own CA is
// refused without the CA, accepted with the CA file or with Insecure.
func TestTLSUpstream(t *testing.T) {
	up := newEchoUpstream(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  proxy.Config
		ok   bool
	}{
		{"system roots", proxy.Config{}, false},
		{"ca file", proxy.Config{CACertFile: caFile}, true},
		{"insecure", proxy.Config{Insecure: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Upstream = up.URL
			_, hs := startProxy(t, tc.cfg)
			resp, err := http.Get(hs.URL + "/auth/v1/health")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := http.StatusOK
			if !tc.ok {
				want = http.StatusBadGateway
			}
			if resp.StatusCode != want {
				t.Errorf("GET: %d %q, want %d", resp.StatusCode, body, want)
			}
			c, resp, err := websocket.DefaultDialer.Dial(wsURL(hs.URL, "/realtime/v1/websocket"), nil)
			if !tc.ok {
				if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
					t.Errorf("websocket: %v, want 502", err)
				}
				if c != nil {
					c.Close()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			<-up.conns
			if err := c.WriteMessage(websocket.TextMessage, []byte("over tls")); err != nil {
				t.Fatal(err)
			}
			if _, b, err := c.ReadMessage(); err != nil || string(b) != "over tls" {
				t.Errorf("echo %q %v", b, err)
			}
		})
	}
	if _, err := proxy.New(proxy.Config{Upstream: up.URL, CACertFile: os.Args[0]}); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA file with no PEM: %v", err)
	}
}
