package server

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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

	stopBroadcasts func() // Config.Broadcasts' Listen

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
	s.listenBroadcasts()
	return s, nil
}

// Handler returns the server's HTTP handler: WebSocket, REST broadcast
// and admin endpoints.
func (s *Server) Handler() http.Handler { return s.handler }

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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
