// Package server is rtm's embedded Supabase-compatible Realtime server: a
// WebSocket endpoint speaking the protocol of Supabase Realtime (serializers
// 1.0.0 and 2.0.0, as used by @supabase/realtime-js 2.119.0), the REST
// broadcast API, Supabase's tenant limits with their exact reasons, and
// fault controls (drop, kick, reject joins, pause, restart) for testing
// clients, as a Go API and under /admin/ over HTTP.
//
// postgres_changes: without a database, bindings are echoed with their ids
// and answered "Subscribed to PostgreSQL" at once, and changes come only
// from [Server.EmitChange]. With [Config].Changes (a [ChangeSource], e.g.
// package rtm/realtime/server/pgcdc reading PostgreSQL logical
// replication), each channel subscribes as its token's role and claims,
// the readiness message is sent when the source proves the subscription
// live, and refusals come back as postgres_changes system errors.
//
// Limits count per tenant, as in Supabase, so that a tenant over a limit
// never holds back another: a topic "tenant:<ID>:..." belongs to tenant
// <ID>, any other topic to the default tenant, and a socket to the tenant
// of its token's tenant_id claim, or to the default tenant. Events,
// presence events and joins are charged to the topic's tenant (a join
// refused because its token may not use the tenant topic, to the
// socket's); the HTTP 429s at connect and the concurrent-users limit to
// the socket's tenant; channels are counted per socket and presence
// pushes per channel. At most [Config].MaxTenantWindows tenants' rate
// windows are held at once, idle ones are dropped; see [Limits].
//
// Endpoints of [Server.Handler]:
//
//	GET  /realtime/v1/websocket, /socket/websocket         WebSocket (apikey, vsn)
//	POST /realtime/v1/api/broadcast, /api/broadcast         batch broadcast (202)
//	POST /realtime/v1/api/broadcast/{topic}/events/{event}  single broadcast (202)
//	     /admin/...                                         fault controls (service_role)
//
// A batch broadcast is checked in one pass over its body, with no map or
// list per message, so its memory is a small multiple of the body's; a
// 422 lists the errors of at most 100 messages (Supabase's list, one entry
// per message, for a batch of up to 100; beyond, the first 100 failing
// messages with their "index", and the counts "failed" and "total"). An
// error message quotes at most 200 bytes of a topic, path or header.
//
// Slow and idle HTTP clients are bounded in time: every request gets read
// and write deadlines from the end of its headers ([Config].HTTPReadTimeout,
// HTTPWriteTimeout, set per request so that they hold under Handler in any
// http.Server too), and the server's own listener closes connections
// whose headers are late (HTTPReadHeaderTimeout) or that idle between
// requests (HTTPIdleTimeout), and answers 503 at once to connections
// beyond MaxHTTPConnections. A WebSocket sheds the HTTP deadlines when it
// upgrades, and leaves the HTTP count for Limits.MaxConcurrentUsers.
//
// Delivery and concurrency: each connection has one reader goroutine,
// which handles its frames in order, and one writer goroutine fed by a
// bounded queue. A broadcast is encoded once per serializer and the same
// bytes are queued on every subscriber; a subscriber whose queue is full
// is disconnected (counted in [Stats].SlowConsumerDrops) and never slows
// the others. Within a topic, every subscriber receives presence_state
// before the presence_diffs that follow it. All methods of Server are
// safe for concurrent use.
//
// Hostile input: presence has byte budgets, per connection and
// server-wide ([Config].MaxPresenceBytesPerConn, 16 MiB, and
// MaxPresenceBytes, 256 MiB). Each meta is kept once, charged to both, and
// given back on untrack, leave and close; a track over a budget is
// answered {"status":"error","response":{"reason":"PresenceBudgetExceeded:
// …"}} and changes nothing. A presence_state holds one topic's metas and a
// joiner whose state could never fit its outbound queue is dropped before
// it is encoded. Topics, event names, presence keys and join refs are
// capped at 255 bytes ([MaxTopicBytes] and its siblings), the caps of the
// 2.0.0 binary frames, for text frames and REST too; longer ones are
// refused with TopicTooLong, EventTooLong, PresenceKeyTooLong or
// RefTooLong and never kept.
package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// Log keys.
const (
	logKeyConn   = "conn"
	logKeyTopic  = "topic"
	logKeyEvent  = "event"
	logKeyReason = "reason"
	logKeyErr    = "err"
)

// ErrClosed is returned by methods of a closed Server.
var ErrClosed = errors.New("server: closed")

// ErrNotStarted is returned by Restart on a server that does not own its
// listener (it was never started with Start).
var ErrNotStarted = errors.New("server: not started with Start")

// Server is an embedded Supabase-compatible Realtime server.
type Server struct {
	cfg        Config
	log        *slog.Logger
	anonKey    string
	serviceKey string
	upgrader   websocket.Upgrader
	handler    http.Handler
	bufPool    sync.Pool

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	wgMu      sync.Mutex
	wgClosed  bool

	lifeMu  sync.Mutex // Start, Restart, Close
	addr    string
	httpSrv *http.Server

	connMu     sync.Mutex
	conns      map[string]*conn
	reserved   int // open or upgrading sockets
	connSeq    uint64
	connClosed bool
	draining   bool          // Shutdown runs: sockets that finish upgrading get a close frame
	connGone   chan struct{} // signalled when a connection or a reservation is released

	regMu  sync.Mutex
	topics map[fanKey]*topic

	rejections rejectState
	tenants    *tenantTable // rate windows and socket counts per tenant

	refMu     sync.Mutex
	refPrefix string
	refSeq    uint64

	httpConns httpConns

	stats counters
}

// New returns a server for cfg. It listens only once started (Start), or
// serves through Handler in another http.Server.
func New(cfg Config) (*Server, error) {
	if len(cfg.JWTSecret) == 0 {
		return nil, errors.New("server: Config.JWTSecret is required")
	}
	cfg.JWTSecret = append([]byte(nil), cfg.JWTSecret...)
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		closing:  make(chan struct{}),
		conns:    make(map[string]*conn),
		topics:   make(map[fanKey]*topic),
		connGone: make(chan struct{}, 1),
		tenants:  newTenantTable(cfg.MaxTenantWindows),
	}
	s.bufPool.New = func() any { b := make([]byte, 0, 32<<10); return &b }
	var err error
	if s.anonKey, err = roleKey(cfg.JWTSecret, RoleAnon); err != nil {
		return nil, err
	}
	if s.serviceKey, err = roleKey(cfg.JWTSecret, RoleServiceRole); err != nil {
		return nil, err
	}
	if s.cfg.PublishableKey == "" {
		s.cfg.PublishableKey = opaqueKey(cfg.JWTSecret, "sb_publishable_")
	}
	if s.cfg.SecretKey == "" {
		s.cfg.SecretKey = opaqueKey(cfg.JWTSecret, "sb_secret_")
	}
	s.refPrefix = s.randomHex(4)
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  cfg.ReadBufferSize,
		WriteBufferPool: &sync.Pool{}, // gorilla never writes data frames here; keep no idle write buffer
		CheckOrigin:     func(*http.Request) bool { return true },
		// The 101 answer is a write like any other answer's.
		HandshakeTimeout: max(cfg.HTTPWriteTimeout, 0),
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeJSON(w, status, map[string]string{"error": reason.Error()})
		},
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler: WebSocket, REST broadcast
// and admin endpoints.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on addr ("127.0.0.1:0" picks a port) and serves in the
// background until Close.
func (s *Server) Start(addr string) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if s.httpSrv != nil {
		return fmt.Errorf("server: already started on %s", s.addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	return s.serveLocked(ln)
}

// serveLocked serves ln with the server-wide HTTP bounds: the header and
// idle timeouts and the connection limit (the read and write deadlines are
// per request, see withHTTPDeadlines).
func (s *Server) serveLocked(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HTTPReadHeaderTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ConnState:         s.connState,
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
	}
	ln = limitListener{Listener: ln, s: s}
	if !s.spawn(func() { _ = srv.Serve(ln) }) {
		_ = ln.Close()
		return ErrClosed
	}
	s.httpSrv = srv
	s.log.Info("Listening", "addr", s.addr)
	return nil
}

// Addr returns the listening address ("127.0.0.1:54321") once started.
func (s *Server) Addr() string {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	return s.addr
}

// URL returns the project URL clients take ("http://127.0.0.1:54321"),
// once started. realtime-js connects to URL + "/realtime/v1".
func (s *Server) URL() string {
	if a := s.Addr(); a != "" {
		return "http://" + a
	}
	return ""
}

// AnonKey returns a JWT with role "anon", signed with the secret, valid
// until 2100: the project's anon key. One secret always gives the same
// key.
func (s *Server) AnonKey() string { return s.anonKey }

// ServiceRoleKey returns a JWT with role "service_role": the project's
// service key, which also opens the admin API.
func (s *Server) ServiceRoleKey() string { return s.serviceKey }

// PublishableKey returns the opaque key that stands for the anon key
// ("sb_publishable_…"), as new Supabase projects hand out.
func (s *Server) PublishableKey() string { return s.cfg.PublishableKey }

// SecretKey returns the opaque key that stands for the service_role key
// ("sb_secret_…").
func (s *Server) SecretKey() string { return s.cfg.SecretKey }

// apiKeyJWT maps an opaque API key to the JWT it stands for, as
// Supabase's gateway does; any other token is returned unchanged.
func (s *Server) apiKeyJWT(token string) string {
	switch token {
	case s.cfg.PublishableKey:
		return s.anonKey
	case s.cfg.SecretKey:
		return s.serviceKey
	}
	return token
}

// Secret returns a copy of the JWT secret, to sign test tokens with
// package realtime/token.
func (s *Server) Secret() []byte { return append([]byte(nil), s.cfg.JWTSecret...) }

// Restart simulates a server restart: every connection is dropped
// abruptly, all state is cleared (channels, presence, rate windows,
// rejections), the listener stays down for downtime, then listens again
// on the same address. When ctx ends during the downtime the server
// listens again at once and Restart returns ctx's error.
func (s *Server) Restart(ctx context.Context, downtime time.Duration) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if s.httpSrv == nil {
		return ErrNotStarted
	}
	s.log.Info("Restarting", "downtime", downtime)
	_ = s.httpSrv.Close()
	s.httpSrv = nil
	s.Drop()
	if err := s.waitNoConns(ctx); err != nil {
		return err
	}
	s.rejections.set(Rejection{}, s.now())
	s.tenants.resetWindows()
	s.refMu.Lock()
	s.refPrefix = s.randomHex(4)
	s.refMu.Unlock()
	s.stats.restarts.Add(1)

	var ctxErr error
	if downtime > 0 {
		t := time.NewTimer(downtime)
		select {
		case <-t.C:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		case <-s.closing:
			t.Stop()
			return ErrClosed
		}
		t.Stop()
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("server: restart: listen again on %s: %w", s.addr, err)
	}
	if err := s.serveLocked(ln); err != nil {
		return err
	}
	return ctxErr
}

// waitNoConns waits until every connection, those still upgrading
// included, is torn down.
func (s *Server) waitNoConns(ctx context.Context) error {
	for {
		s.connMu.Lock()
		n := s.reserved
		s.connMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-s.connGone:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
}

// Shutdown closes the server gracefully: every socket gets a close frame
// (1001, "server shutting down") and a moment to flush, bounded by ctx,
// then Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("Shutting down", "connections", s.connCount())
	s.closeListener()
	s.connMu.Lock()
	s.draining = true
	s.connMu.Unlock()
	for _, c := range s.connList() {
		c.sendClose(websocket.CloseGoingAway, "server shutting down")
	}
	err := s.waitNoConns(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops the server: it closes the listener and every connection
// (abruptly) and waits for every goroutine it started.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.closeListener()
	s.httpConns.closeRefusing()
	s.connMu.Lock()
	s.connClosed = true
	s.connMu.Unlock()
	s.Drop()
	s.wgMu.Lock()
	s.wgClosed = true
	s.wgMu.Unlock()
	s.wg.Wait()
	return nil
}

// closeListener stops accepting connections (hijacked sockets stay).
func (s *Server) closeListener() {
	s.lifeMu.Lock()
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
		s.httpSrv = nil
	}
	s.lifeMu.Unlock()
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// spawn runs f in a goroutine that Close waits for. It reports false when
// the server is closed.
func (s *Server) spawn(f func()) bool {
	s.wgMu.Lock()
	if s.wgClosed {
		s.wgMu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.wgMu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// afterFunc runs f after d on the server's clock; Close waits for a
// running f and cancels pending ones.
func (s *Server) afterFunc(d time.Duration, f func()) func() bool {
	return s.cfg.AfterFunc(d, func() {
		s.wgMu.Lock()
		if s.wgClosed {
			s.wgMu.Unlock()
			return
		}
		s.wg.Add(1)
		s.wgMu.Unlock()
		defer s.wg.Done()
		f()
	})
}

func (s *Server) now() time.Time { return s.cfg.Now() }

func (s *Server) randomHex(n int) string {
	b := make([]byte, n)
	_, _ = io.ReadFull(s.rand(), b)
	return hex.EncodeToString(b)
}

func (s *Server) rand() io.Reader {
	if s.cfg.Rand != nil {
		return s.cfg.Rand
	}
	return rand.Reader
}

// newRef returns a unique phx_ref for a presence meta.
func (s *Server) newRef() string {
	s.refMu.Lock()
	defer s.refMu.Unlock()
	s.refSeq++
	return s.refPrefix + strconv.FormatUint(s.refSeq, 36)
}

// newUUID returns a version-1 style UUID for an anonymous presence key, as
// Supabase assigns one per join: the clock's time and random clock
// sequence and node.
func (s *Server) newUUID() string {
	var b [16]byte
	// 100 ns intervals since 1582-10-15.
	ts := uint64(s.now().UnixNano()/100) + 0x01B21DD213814000
	binary.BigEndian.PutUint32(b[0:4], uint32(ts))
	binary.BigEndian.PutUint16(b[4:6], uint16(ts>>32))
	binary.BigEndian.PutUint16(b[6:8], uint16(ts>>48)&0x0fff|0x1000)
	_, _ = io.ReadFull(s.rand(), b[8:])
	b[8] = b[8]&0x3f | 0x80
	b[10] |= 0x01 // multicast bit: a random node id
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

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
		created: s.now(), apikey: token, claims: claims,
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// logWriter sends net/http's error log to slog.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug("HTTP server", "msg", string(p))
	return len(p), nil
}

// counters are the server's statistics.
type counters struct {
	connectionsTotal, connectErrors               atomic.Uint64
	framesIn, framesOut, bytesIn, bytesOut        atomic.Uint64
	joins, joinErrors, rejectedJoins, shutdowns   atomic.Uint64
	channels, presences                           atomic.Uint64
	broadcasts, deliveries, restBroadcasts        atomic.Uint64
	slowDrops, badFrames, idleCloses, rateLimited atomic.Uint64
	drops, kicks, restarts                        atomic.Uint64
	presenceRefused                               atomic.Uint64
	presenceBytes                                 atomic.Int64 // held to Config.MaxPresenceBytes
}

// Stats are counters of the server since New.
type Stats struct {
	// Connections and Channels are open now; Presences are tracked now.
	Connections int    `json:"connections"`
	Channels    int    `json:"channels"`
	Topics      int    `json:"topics"`
	Presences   uint64 `json:"presences"`
	// PresenceBytes is what the tracked presence costs the server now
	// (held to Config.MaxPresenceBytes); PresenceRefused counts tracks
	// refused because they would exceed a presence budget.
	PresenceBytes   int64  `json:"presence_bytes"`
	PresenceRefused uint64 `json:"presence_refused"`

	ConnectionsTotal uint64 `json:"connections_total"`
	ConnectErrors    uint64 `json:"connect_errors"`
	FramesIn         uint64 `json:"frames_in"`
	FramesOut        uint64 `json:"frames_out"`
	BytesIn          uint64 `json:"bytes_in"`
	BytesOut         uint64 `json:"bytes_out"`
	Joins            uint64 `json:"joins"`
	JoinErrors       uint64 `json:"join_errors"`
	RejectedJoins    uint64 `json:"rejected_joins"`
	Shutdowns        uint64 `json:"channel_shutdowns"`
	// Broadcasts are accepted broadcasts (WebSocket, REST, Go API);
	// Deliveries are the frames they fanned out to.
	Broadcasts     uint64 `json:"broadcasts"`
	RESTBroadcasts uint64 `json:"rest_broadcasts"`
	Deliveries     uint64 `json:"deliveries"`
	// SlowConsumerDrops are connections dropped because their outbound
	// queue was full.
	SlowConsumerDrops uint64 `json:"slow_consumer_drops"`
	BadFrames         uint64 `json:"bad_frames"`
	IdleCloses        uint64 `json:"idle_closes"`
	RateLimited       uint64 `json:"rate_limited"`
	Drops             uint64 `json:"drops"`
	Kicks             uint64 `json:"kicks"`
	Restarts          uint64 `json:"restarts"`

	// TenantWindows are the tenants whose rate windows the server holds
	// now, the default tenant's not counted; at most
	// [Config].MaxTenantWindows.
	TenantWindows int `json:"tenant_windows"`

	// HTTPConnections are the listener's connections speaking HTTP now
	// (not those upgraded to WebSockets); HTTPConnectionsRefused were
	// refused over Config.MaxHTTPConnections.
	HTTPConnections        int    `json:"http_connections"`
	HTTPConnectionsRefused uint64 `json:"http_connections_refused"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	s.regMu.Lock()
	topics := len(s.topics)
	s.regMu.Unlock()
	return Stats{
		Connections: s.connCount(), Channels: int(c.channels.Load()), Topics: topics, Presences: c.presences.Load(),
		ConnectionsTotal: c.connectionsTotal.Load(), ConnectErrors: c.connectErrors.Load(),
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Joins: c.joins.Load(), JoinErrors: c.joinErrors.Load(), RejectedJoins: c.rejectedJoins.Load(), Shutdowns: c.shutdowns.Load(),
		Broadcasts: c.broadcasts.Load(), RESTBroadcasts: c.restBroadcasts.Load(), Deliveries: c.deliveries.Load(),
		SlowConsumerDrops: c.slowDrops.Load(), BadFrames: c.badFrames.Load(), IdleCloses: c.idleCloses.Load(),
		RateLimited: c.rateLimited.Load(), Drops: c.drops.Load(), Kicks: c.kicks.Load(), Restarts: c.restarts.Load(),
		TenantWindows:   s.tenants.windows(),
		HTTPConnections: int(s.httpConns.open.Load()), HTTPConnectionsRefused: s.httpConns.refused.Load(),
		PresenceBytes: c.presenceBytes.Load(), PresenceRefused: c.presenceRefused.Load(),
	}
}
