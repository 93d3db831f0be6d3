package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/mask"
)

// Defaults of [Config].
const (
	// DefaultMaxFrameSize is the embedded server's: 5,000,000 bytes.
	DefaultMaxFrameSize = 5_000_000
	// DefaultHandshakeTimeout bounds the upstream's upgrade answer.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultCloseTimeout bounds the wait for a close frame's answer.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultMaxSockets bounds the relayed sockets open at once.
	DefaultMaxSockets = 10_000
	// DefaultBufferSize is the read buffer of each connection and the
	// size of the shared write buffers.
	DefaultBufferSize = 4096
	// maxPooledMessage is the largest message buffer kept for reuse;
	// bigger ones are left to the garbage collector.
	maxPooledMessage = 64 << 10
)

// Config configures [New]. Only Upstream is required.
type Config struct {
	// Upstream is the project URL the proxy forwards to: an http or https
	// URL with a host (https://<ref>.supabase.co, http://127.0.0.1:54321),
	// optionally with a base path, without query or fragment.
	Upstream string
	// Observer watches the relayed Realtime sockets (nil: none).
	Observer Observer
	// RootCAs verifies the upstream's TLS certificate (nil: the system
	// roots). CACertFile, when set, adds the PEM certificates of a file
	// to them. Insecure skips verification altogether.
	RootCAs    *x509.CertPool
	CACertFile string
	Insecure   bool
	// Dial opens connections to the upstream (nil: a net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives socket opens and closes and relay errors (nil:
	// discarded). Keys and tokens are masked before they are logged.
	Logger *slog.Logger
	// Now is the clock of ConnInfo.Opened, Frame.Time and Closed.Time
	// (nil: time.Now).
	Now func() time.Time
	// MaxFrameSize is the largest message relayed, each way (default
	// DefaultMaxFrameSize); a bigger one closes the socket with 1009.
	MaxFrameSize int
	// HandshakeTimeout bounds the upstream's answer to the upgrade
	// (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// CloseTimeout bounds how long a side has to answer a relayed close
	// frame before its connection is cut (default DefaultCloseTimeout).
	CloseTimeout time.Duration
	// MaxSockets bounds the relayed sockets open at once (default
	// DefaultMaxSockets); beyond, the upgrade is answered 503.
	MaxSockets int
	// BufferSize is each connection's read buffer and the size of the
	// shared write buffers (default DefaultBufferSize).
	BufferSize int
	// Rand returns numbers in [0, 1) for the latency fault's jitter
	// (nil: math/rand/v2.Float64).
	Rand func() float64
	// MaxRESTBody bounds the copy of a REST broadcast's body decoded for
	// a [RESTObserver] (default DefaultMaxRESTBody), MaxRESTBytes the
	// copies of all bodies in flight (default DefaultMaxRESTBytes): a
	// bigger body is forwarded whole and reported clipped.
	MaxRESTBody  int
	MaxRESTBytes int
	// ObserverQueue, when positive, has the Observer called from a
	// queue of at most this many calls (DefaultObserverQueue is a good
	// size) on one goroutine of the proxy, off the relay's path, and
	// ObserverQueueBytes bounds the frame data queued (default
	// DefaultObserverQueueBytes); see observe.go. 0: the relay calls the
	// Observer itself, before each frame is written on.
	ObserverQueue      int
	ObserverQueueBytes int
}

// Proxy is an http.Handler that forwards an app's requests to its
// upstream project and relays its Realtime websockets.
type Proxy struct {
	cfg      Config
	upstream *url.URL
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	tr       *http.Transport
	dialer   *websocket.Dialer
	upgrader websocket.Upgrader
	bufs     sync.Pool // *[]byte message buffers
	// batchBufs are the held writes of batchConns (*[]byte, maxBatch).
	batchBufs sync.Pool

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // requests and relays in flight
	nextID atomic.Uint64
	// nextREST numbers the REST broadcasts; restBytes is what their
	// copies hold (rest.go).
	nextREST  atomic.Uint64
	restBytes atomic.Int64

	mu      sync.Mutex
	closed  bool
	sockets map[*relay]struct{}

	faults faultState // the armed faults (faults.go)
	obsq   *obsQueue  // nil: the Observer is called directly (observe.go)
}

// New checks cfg and returns a proxy to cfg.Upstream.
func New(cfg Config) (*Proxy, error) {
	up, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxFrameSize = positive(cfg.MaxFrameSize, DefaultMaxFrameSize)
	cfg.HandshakeTimeout = positive(cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	cfg.CloseTimeout = positive(cfg.CloseTimeout, DefaultCloseTimeout)
	cfg.MaxSockets = positive(cfg.MaxSockets, DefaultMaxSockets)
	cfg.BufferSize = positive(cfg.BufferSize, DefaultBufferSize)
	cfg.MaxRESTBody = positive(cfg.MaxRESTBody, DefaultMaxRESTBody)
	cfg.MaxRESTBytes = positive(cfg.MaxRESTBytes, DefaultMaxRESTBytes)

	p := &Proxy{cfg: cfg, upstream: up, log: cfg.Logger, sockets: map[*relay]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.Observer != nil && cfg.ObserverQueue > 0 {
		p.obsq = newObsQueue(p, cfg.ObserverQueue, positive(cfg.ObserverQueueBytes, DefaultObserverQueueBytes))
	}
	p.tr = &http.Transport{
		DialContext:           cfg.Dial,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   cfg.HandshakeTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = up.Host
		},
		Transport:     p.tr,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			answered(resp.Request.Context(), resp.StatusCode)
			return nil
		},
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("proxy: upstream request failed", "method", r.Method, "path", r.URL.Path, "err", mask.Text(err.Error()))
			answered(r.Context(), http.StatusBadGateway)
			http.Error(w, "rtm proxy: upstream unreachable: "+mask.Text(err.Error()), http.StatusBadGateway)
		},
	}
	pool := &sync.Pool{}
	p.dialer = &websocket.Dialer{
		NetDialContext:   p.dialBatch,
		TLSClientConfig:  tlsConf,
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.BufferSize,
		WriteBufferSize:  cfg.BufferSize,
		WriteBufferPool:  pool,
	}
	p.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.BufferSize,
		WriteBufferSize:  cfg.BufferSize,
		WriteBufferPool:  pool,
		// Supabase accepts any origin; so does the relay.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return p, nil
}

func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// parseUpstream checks a project URL.
func parseUpstream(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("proxy: no upstream URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream %q: want an http or https project URL (https://<ref>.supabase.co, http://127.0.0.1:54321): %w", mask.URL(raw), err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("proxy: upstream %q: want an http or https project URL (https://<ref>.supabase.co, http://127.0.0.1:54321)", mask.URL(raw))
	case u.Host == "":
		return nil, fmt.Errorf("proxy: upstream %q: no host", mask.URL(raw))
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("proxy: upstream %q: want a project URL without user, query or fragment", mask.URL(raw))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// tlsConfig is the TLS configuration of the upstream connections.
func tlsConfig(cfg Config) (*tls.Config, error) {
	c := &tls.Config{RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.Insecure} //nolint:gosec // explicit --insecure
	if cfg.CACertFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(cfg.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("proxy: CA certificate: %w", err)
	}
	if c.RootCAs == nil {
		if c.RootCAs, err = x509.SystemCertPool(); err != nil {
			c.RootCAs = x509.NewCertPool()
		}
	} else {
		c.RootCAs = c.RootCAs.Clone()
	}
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("proxy: CA certificate %s: no PEM certificate in it", cfg.CACertFile)
	}
	return c, nil
}

// isRealtimeSocket tells the Realtime websocket's upgrade from any other
// request.
func isRealtimeSocket(r *http.Request) bool {
	return (r.URL.Path == "/realtime/v1/websocket" || r.URL.Path == "/socket/websocket") &&
		websocket.IsWebSocketUpgrade(r)
}

// ServeHTTP relays the Realtime websocket and forwards everything else.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		http.Error(w, "rtm proxy: shutting down", http.StatusServiceUnavailable)
		return
	}
	defer p.wg.Done()
	if isRealtimeSocket(r) {
		p.relaySocket(w, r)
		return
	}
	// A forwarded request (and a websocket other than Realtime's, which
	// ReverseProxy relays) ends when the proxy closes.
	obs, r := p.observeREST(r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
	if obs != nil {
		// Not on this goroutine: the app's answer ends when it returns.
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			obs.report()
		}()
	}
}

// enter counts a request in, unless the proxy is closed.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// stopAccepting marks the proxy closed (no new socket is kept) and
// returns the sockets it relays.
func (p *Proxy) stopAccepting() []*relay {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	rs := make([]*relay, 0, len(p.sockets))
	for r := range p.sockets {
		rs = append(rs, r)
	}
	return rs
}

// Close cuts every relayed socket and forwarded request at once and
// waits until their goroutines have ended.
func (p *Proxy) Close() error {
	rs := p.stopAccepting()
	p.cancel()
	for _, r := range rs {
		r.cut()
	}
	p.wg.Wait()
	if p.obsq != nil {
		p.obsq.stop()
	}
	p.tr.CloseIdleConnections()
	return nil
}

// Shutdown ends every relayed socket with a close frame (1001, going
// away) to both sides, waits until they have ended or ctx is done, then
// closes the proxy as Close does. The http.Server serving the proxy is
// the caller's to shut down (before, so that no new request arrives).
func (p *Proxy) Shutdown(ctx context.Context) error {
	rs := p.stopAccepting()
	// Concurrently: a side that does not read holds its close frame up to
	// CloseTimeout.
	var sent sync.WaitGroup
	for _, r := range rs {
		sent.Go(r.goAway)
	}
	done := make(chan struct{})
	go func() {
		for _, r := range rs {
			<-r.done
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("proxy: shutdown: %w", ctx.Err())
	}
	_ = p.Close()
	<-done
	sent.Wait()
	return err
}
