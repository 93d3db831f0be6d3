package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// serveWS upgrades a WebSocket request after checking vsn, the apikey and
// the connection limits; refusals are HTTP errors with a JSON body
// {"error": "..."}, as Supabase answers them.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	vsn, err := protocol.ParseVersion(q.Get("vsn"))
	if err != nil {
		s.connectError(w, r, http.StatusBadRequest, "Unsupported serializer version: "+clip(q.Get("vsn")))
		return
	}
	token := r.Header.Get("x-api-key")
	if token == "" {
		token = q.Get("apikey")
	}
	if token == "" {
		s.connectError(w, r, http.StatusUnauthorized, "API key is missing")
		return
	}
	token = s.apiKeyJWT(token)
	claims, aerr := verifyToken(token, s.cfg.JWTSecret, s.now())
	if aerr != nil {
		s.log.Info("Connect refused", logKeyReason, aerr.Reason(), "token", MaskToken(token))
		s.connectError(w, r, http.StatusUnauthorized, aerr.Connect)
		return
	}
	lim := s.cfg.Limits
	tn := tokenTenant(claims)
	if lim.MaxJoinsPerSecond > 0 && s.tenants.count(tn, rateJoins, s.now()) >= int64(lim.MaxJoinsPerSecond) {
		s.stats.rateLimited.Add(1)
		s.connectError(w, r, http.StatusTooManyRequests, "Too many joins per second")
		return
	}
	s.connMu.Lock()
	switch {
	case s.connClosed || s.draining:
		s.connMu.Unlock()
		s.connectError(w, r, http.StatusServiceUnavailable, "Realtime is shutting down")
		return
	case !s.tenants.reserveConn(tn, lim.MaxConcurrentUsers): // counts the socket when it fits
		s.connMu.Unlock()
		s.stats.rateLimited.Add(1)
		s.connectError(w, r, http.StatusTooManyRequests, "Too many connected users")
		return
	}
	s.reserved++
	s.connSeq++
	id := "conn-" + strconv.FormatUint(s.connSeq, 10)
	s.connMu.Unlock()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.releaseReservation(tn)
		s.log.Debug("Upgrade failed", logKeyErr, err)
		return
	}
	c := &conn{
		s: s, id: id, ws: ws, nc: ws.NetConn(), vsn: vsn, remote: r.RemoteAddr,
		created: s.now(), apikey: token, claims: claims, xHeaders: s.xHeaders(r),
		log:        s.log.With(logKeyConn, id),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	ws.SetPingHandler(func(data string) error {
		c.send(controlFrame(opPong, []byte(data)))
		return nil
	})
	ws.SetCloseHandler(func(code int, text string) error {
		if code == websocket.CloseNoStatusReceived {
			c.sendCloseFrame(controlFrame(opClose, nil))
		} else {
			c.sendClose(code, "")
		}
		return nil
	})
	s.connMu.Lock()
	if s.connClosed {
		s.connMu.Unlock()
		s.releaseReservation(tn)
		_ = c.nc.Close()
		return
	}
	s.conns[id] = c
	s.connMu.Unlock()
	s.stats.connectionsTotal.Add(1)
	if !s.spawn(c.writeLoop) {
		close(c.writerDone)
		c.kill()
		s.removeConn(c)
		return
	}
	if !s.spawn(c.readLoop) {
		c.kill()
		<-c.writerDone
		s.removeConn(c)
		return
	}
	c.log.Info("Connected", "remote", c.remote, "vsn", vsn.String(), "role", claims.Role, "apikey", MaskToken(token))
	// A socket upgraded while Shutdown runs may have been registered
	// after Shutdown listed the sockets: it closes itself the same way.
	s.connMu.Lock()
	draining := s.draining
	s.connMu.Unlock()
	if draining {
		c.sendClose(websocket.CloseGoingAway, "server shutting down")
	}
}

func (s *Server) releaseReservation(tn tenant) {
	s.connMu.Lock()
	s.reserved--
	s.tenants.releaseConn(tn)
	s.connMu.Unlock()
	select {
	case s.connGone <- struct{}{}:
	default:
	}
}

// removeConn unregisters a torn-down connection.
func (s *Server) removeConn(c *conn) {
	s.connMu.Lock()
	if s.conns[c.id] == c {
		delete(s.conns, c.id)
		s.reserved--
		s.tenants.releaseConn(tokenTenant(c.claims))
	}
	s.connMu.Unlock()
	select {
	case s.connGone <- struct{}{}:
	default:
	}
}

// connCount returns the number of open sockets.
func (s *Server) connCount() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}

func (s *Server) connList() []*conn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	return out
}

// connectError answers a refused upgrade after ConnectErrorDelay.
func (s *Server) connectError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.stats.connectErrors.Add(1)
	if d := s.cfg.ConnectErrorDelay; d > 0 {
		s.delayDeadlines(w, d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-s.closing:
		}
		t.Stop()
	}
	writeJSON(w, status, map[string]string{"error": msg})
}
