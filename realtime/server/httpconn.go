package server

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// withHTTPDeadlines gives every request read and write deadlines
// (Config.HTTPReadTimeout, HTTPWriteTimeout) counted from the end of its
// headers, through http.ResponseController, so that they hold in any
// http.Server serving Handler. A WebSocket upgrade sheds them: hijacking
// resets a connection's deadlines (net/http and gorilla both do), and
// the socket then follows Config.IdleTimeout.
func (s *Server) withHTTPDeadlines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		if d := s.cfg.HTTPReadTimeout; d > 0 {
			_ = rc.SetReadDeadline(now.Add(d))
		}
		if d := s.cfg.HTTPWriteTimeout; d > 0 {
			_ = rc.SetWriteDeadline(now.Add(d))
		}
		h.ServeHTTP(w, r)
	})
}

// timeoutAnswerGrace is how long the 408 answering a body that did not
// arrive in time may take to write: the write deadline, counted like the
// read deadline from the end of the headers, has often passed by then.
const timeoutAnswerGrace = time.Second

// answerTimedOut answers 408 with message and closes the connection.
func answerTimedOut(w http.ResponseWriter, message string) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeoutAnswerGrace))
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusRequestTimeout, map[string]string{"message": message})
}

// delayDeadlines moves a request's write deadline d later, for a
// deliberate wait of d before answering (Config.ConnectErrorDelay), and
// lifts its read deadline so that it does not end the request during the
// wait.
func (s *Server) delayDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	if wt := s.cfg.HTTPWriteTimeout; wt > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(d + wt))
	}
}

// httpConns counts the connections of the server's own listener that
// speak HTTP, against Config.MaxHTTPConnections. A connection counts from
// its accept until it closes or is upgraded to a WebSocket (which then
// counts against Limits.MaxConcurrentUsers instead).
type httpConns struct {
	open    atomic.Int64
	refused atomic.Uint64

	mu       sync.Mutex
	refusing map[net.Conn]struct{} // being answered 503; at most maxRefusing
	closed   bool
}

// maxRefusing bounds the connections refused over the limit that are
// answered at once; beyond it a refused connection is closed unanswered.
const maxRefusing = 32

// refuseLinger is how long a refused connection is read (and discarded)
// after its 503, so that closing it with the request unread does not
// reset the connection before the client reads the answer.
const refuseLinger = time.Second

// refuseAnswer is the answer to a connection over Config.MaxHTTPConnections.
var refuseAnswer = func() string {
	body := `{"message":"Too many HTTP connections"}` + "\n"
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + body
}()

// acquire counts a new connection, reporting false when max (> 0) are
// open.
func (h *httpConns) acquire(max int) bool {
	if max <= 0 {
		h.open.Add(1)
		return true
	}
	for {
		n := h.open.Load()
		if n >= int64(max) {
			return false
		}
		if h.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// connState follows http.Server's connection states: a connection stops
// counting once closed or hijacked.
func (s *Server) connState(_ net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		s.httpConns.open.Add(-1)
	}
}

// limitListener is the server's listener: it hands http.Server the
// connections within Config.MaxHTTPConnections and answers the others
// itself, so Accept never blocks on the limit.
type limitListener struct {
	net.Listener
	s *Server
}

func (l limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.httpConns.acquire(l.s.cfg.MaxHTTPConnections) {
			return nc, nil
		}
		l.s.refuseConn(nc)
	}
}

// refuseConn answers a connection over the limit with 503 and closes it,
// in the background; when maxRefusing are being answered it closes it at
// once.
func (s *Server) refuseConn(nc net.Conn) {
	h := &s.httpConns
	h.refused.Add(1)
	s.log.Debug("HTTP connection refused: too many", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxHTTPConnections)
	h.mu.Lock()
	if h.closed || len(h.refusing) >= maxRefusing {
		h.mu.Unlock()
		_ = nc.Close()
		return
	}
	if h.refusing == nil {
		h.refusing = make(map[net.Conn]struct{})
	}
	h.refusing[nc] = struct{}{}
	h.mu.Unlock()
	done := func() {
		h.mu.Lock()
		delete(h.refusing, nc)
		h.mu.Unlock()
		_ = nc.Close()
	}
	if !s.spawn(func() {
		defer done()
		_ = nc.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := io.WriteString(nc, refuseAnswer); err != nil {
			return
		}
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, nc, 64<<10)
	}) {
		done()
	}
}

// closeRefusing stops answering refused connections (Close).
func (h *httpConns) closeRefusing() {
	h.mu.Lock()
	h.closed = true
	for nc := range h.refusing {
		_ = nc.Close()
	}
	h.mu.Unlock()
}
