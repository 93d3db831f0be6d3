package proxy_test

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quick bounds what should happen at once.
const quick = 5 * time.Second

// recorder is an Observer that keeps everything it is told.
type recorder struct {
	mu     sync.Mutex
	opens  []proxy.ConnInfo
	frames []proxy.Frame
	closed []proxy.Closed
	seen   chan struct{} // signalled on every call
}

func newRecorder() *recorder { return &recorder{seen: make(chan struct{}, 1)} }

func (r *recorder) signal() {
	select {
	case r.seen <- struct{}{}:
	default:
	}
}

func (r *recorder) Open(c proxy.ConnInfo) {
	r.mu.Lock()
	r.opens = append(r.opens, c)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) Frame(f proxy.Frame) {
	f.Data = bytes.Clone(f.Data)
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) Closed(c proxy.Closed) {
	r.mu.Lock()
	r.closed = append(r.closed, c)
	r.mu.Unlock()
	r.signal()
}

// waitRecorded waits until the list the recorder keeps in *list (read
// under r.mu) has at least n entries and returns a copy; what names
// them in the failure.
func waitRecorded[T any](t *testing.T, r *recorder, list *[]T, n int, what string) []T {
	t.Helper()
	deadline := time.After(quick)
	for {
		r.mu.Lock()
		got := append([]T(nil), *list...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.seen:
		case <-deadline:
			t.Fatalf("%d %s, want %d", len(got), what, n)
		}
	}
}

// waitClosed waits until n sockets have been reported closed.
func (r *recorder) waitClosed(t *testing.T, n int) []proxy.Closed {
	t.Helper()
	return waitRecorded(t, r, &r.closed, n, "sockets closed")
}

// waitOpen waits until n sockets have been reported open.
func (r *recorder) waitOpen(t *testing.T, n int) {
	t.Helper()
	waitRecorded(t, r, &r.opens, n, "sockets open")
}

// framesOf returns the frames of one direction, in order.
func (r *recorder) framesOf(d proxy.Direction) []proxy.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []proxy.Frame
	for _, f := range r.frames {
		if f.Dir == d {
			out = append(out, f)
		}
	}
	return out
}

// startProxy serves a proxy of cfg on loopback; the cleanup closes the
// listener, then the proxy.
func startProxy(t testing.TB, cfg proxy.Config) (*proxy.Proxy, *httptest.Server) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(servertest.NewLogWriter(t), nil))
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p)
	t.Cleanup(func() {
		hs.Close()
		_ = p.Close()
	})
	return p, hs
}

// wsURL turns an http URL into the ws URL of path.
func wsURL(httpURL, path string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http") + path
}

// echoUpstream is a websocket upstream that echoes every message, tells
// how its socket ended, and can be told to send something.
type echoUpstream struct {
	*httptest.Server
	ends  chan error           // each socket's read error
	conns chan *websocket.Conn // each socket, as accepted
}

func newEchoUpstream(t testing.TB, tls bool) *echoUpstream {
	t.Helper()
	e := &echoUpstream{ends: make(chan error, 16), conns: make(chan *websocket.Conn, 16)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, Subprotocols: []string{"chat"}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			w.Header().Set("X-Upstream", "yes")
			_, _ = w.Write([]byte("plain " + r.URL.Path))
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetCloseHandler(func(int, string) error { return nil })
		e.conns <- c
		for {
			typ, b, err := c.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ce.Text), time.Now().Add(time.Second))
				}
				e.ends <- err
				return
			}
			if err := c.WriteMessage(typ, b); err != nil {
				e.ends <- err
				return
			}
		}
	})
	if tls {
		// The refused handshakes of TestTLSUpstream are expected.
		e.Server = httptest.NewUnstartedServer(h)
		e.Config.ErrorLog = log.New(io.Discard, "", 0)
		e.StartTLS()
	} else {
		e.Server = httptest.NewServer(h)
	}
	t.Cleanup(e.Close)
	return e
}

// end waits for the upstream's socket to end and returns its error.
func (e *echoUpstream) end(t testing.TB) error {
	t.Helper()
	select {
	case err := <-e.ends:
		return err
	case <-time.After(quick):
		t.Fatal("the upstream socket did not end")
		return nil
	}
}

// dial opens a websocket to url, failing t on error.
func dial(t testing.TB, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closeCode is the close code of err (0 when it is no close error).
func closeCode(err error) (int, string) {
	if ce, ok := err.(*websocket.CloseError); ok {
		return ce.Code, ce.Text
	}
	return 0, ""
}
