package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/proxy"
	"rtm/registry/apps"
	"rtm/registry/headless"
	"rtm/registry/target"
	"rtm/tui"
)

// proxyCmd runs the app proxy (package realtime/proxy) headless: the
// app's Supabase URL points at it, it forwards everything to the
// upstream and relays the Realtime websocket frame by frame, and the
// model of the app's traffic (package registry/apps) prints what it sees
// as NDJSON on stdout. The banner (what to set in the app) and the logs
// go to stderr, so stdout stays one JSON object per line.
type proxyCmd struct {
	Upstream string `help:"Project URL to forward to (https://<ref>.supabase.co, http://127.0.0.1:54321, rtm serve's URL). Default: the target as the other commands resolve it (SUPABASE_URL or .env.local/.env); none: the embedded server in-process."`
	Listen   string `default:"127.0.0.1:54340" help:"Address to listen on (port 0: a free port). A non-loopback address is warned about: whoever reaches it reaches your project."`
	CACert   string `name:"ca-cert" type:"path" help:"PEM file of a CA to trust for the upstream's TLS, besides the system roots."`
	Insecure bool   `help:"Do not verify the upstream's TLS certificate."`
	Record   string `type:"path" placeholder:"FILE" help:"Also write a masked recording of the app's traffic to FILE (NDJSON), which rtm replay and rtm diff read."`
}

// Run proxies until the context ends, then shuts down gracefully.
func (c proxyCmd) Run(env *runEnv) error {
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{ReplaceAttr: mask.ReplaceAttr}))
	upstream, anonKey, closeUpstream, err := c.upstream(env.ctx, logger)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer closeUpstream()
	model := apps.New(apps.Options{})
	var observer proxy.Observer = model
	var ticker modelTicker = model
	if c.Record != "" {
		rec, closeRec, err := c.recorder(upstream, anonKey != "", model, env.stderr)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		defer closeRec()
		observer, ticker = rec, rec
	}
	events := model.Subscribe(0)
	streamed := make(chan error, 1)
	go func() { streamed <- events.Stream(context.Background(), env.stdout) }()
	stopTick := tickModel(ticker)
	defer func() {
		stopTick()
		events.Close() // Stream writes what is queued, then returns
		if err := <-streamed; err != nil {
			logger.Warn("proxy: writing events", "err", err)
		}
		if n := events.Dropped(); n > 0 {
			logger.Warn("proxy: events dropped (stdout too slow)", "count", n)
		}
	}()
	ps, err := listenProxy(c.Listen, proxy.Config{
		Upstream: upstream, CACertFile: c.CACert, Insecure: c.Insecure, Logger: logger,
		Observer: observer,
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if w := ps.warning(); w != "" {
		fmt.Fprintf(env.stderr, "rtm proxy: warning: %s\n", w)
	}
	fmt.Fprint(env.stderr, proxyBanner(ps.url, upstream, anonKey, c.Insecure))

	var serveErr error
	select {
	case <-env.ctx.Done():
	case serveErr = <-ps.served:
	}
	ps.shutdown(logger)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("proxy: %w", serveErr)
	}
	return nil
}

// proxyServer is the app proxy serving on its listener: `rtm proxy`'s
// and the monitor's.
type proxyServer struct {
	p   *proxy.Proxy
	srv *http.Server
	// served receives Serve's error once it returns.
	served chan error
	// host is the host of the listen address; url the app's URL of the
	// proxy.
	host, url string
	port      int
}

// listenProxy creates the proxy of cfg and serves it on listen (port 0:
// a free port). Its Observer (the app model) is called from the proxy's
// observer queue (proxy.DefaultObserverQueue calls, 16 MiB of frames),
// not on the relay's path: the benchmarks of package realtime/proxy
// show the synchronous Observer adding about 240-290 µs at p99 at 10k
// frames/s, the queued one 30-120 µs, for about a tenth less
// throughput. A frame that finds the queue full is not modelled; the
// count is logged at shutdown.
func listenProxy(listen string, cfg proxy.Config) (*proxyServer, error) {
	if cfg.Observer != nil && cfg.ObserverQueue == 0 {
		cfg.ObserverQueue = proxy.DefaultObserverQueue
	}
	p, err := proxy.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("--listen: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ps := &proxyServer{p: p, served: make(chan error, 1),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}}
	ps.host, _, _ = net.SplitHostPort(listen)
	ps.port = ln.Addr().(*net.TCPAddr).Port
	ps.url = appURL(ps.host, ps.port)
	go func() { ps.served <- ps.srv.Serve(ln) }()
	return ps, nil
}

// warning is what to tell about the listen address: "" on loopback.
func (ps *proxyServer) warning() string {
	if ip := net.ParseIP(ps.host); ps.host == "localhost" || ip != nil && ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("listening on %s, not loopback: anyone who can reach it can use your project through it",
		net.JoinHostPort(ps.host, fmt.Sprint(ps.port)))
}

// shutdown stops the proxy gracefully, within 2 seconds: the server
// stops accepting and waits for its requests while the proxy closes its
// sockets (1001 to both sides) and then cuts what is left, forwarded
// requests included.
func (ps *proxyServer) shutdown(logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { _ = ps.srv.Shutdown(ctx); close(stopped) }()
	if err := ps.p.Shutdown(ctx); err != nil {
		logger.Warn("proxy: shutdown", "err", err)
	}
	<-stopped
	if n := ps.p.ObserverDropped(); n > 0 {
		logger.Warn("proxy: frames relayed but not modelled (the observer queue was full)", "count", n)
	}
}

// recorder opens --record and writes its header; closeFn writes the end
// line (after the proxy shut down: it is deferred before the shutdown)
// and tells on w what was written.
func (c proxyCmd) recorder(upstream string, embedded bool, model *apps.Model, w io.Writer) (*headless.AppRecorder, func(), error) {
	f, err := os.OpenFile(c.Record, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--record: %w", err)
	}
	rec, err := headless.NewAppRecorder(f, headless.Header{Started: time.Now(), Target: upstream, Embedded: embedded, Tool: "rtm proxy"},
		model, apps.RecorderOptions{})
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("--record: %w", err)
	}
	return rec, func() {
		end, err := rec.Close(time.Now())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(w, "rtm proxy: --record %s: %v\n", c.Record, err)
			return
		}
		fmt.Fprintf(w, "rtm proxy: %d lines (%d frames, %d dropped) recorded to %s\n", end.Events, end.Frames, end.Dropped, c.Record)
	}, nil
}

// modelTicker is what tickModel ticks: the app model, or the recorder
// in front of it.
type modelTicker interface{ Tick(time.Time) }

// tickModel calls model.Tick every second (tokens that expire while the
// app is quiet) until stop is called.
func tickModel(model modelTicker) (stop func()) {
	t := time.NewTicker(time.Second)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case now := <-t.C:
				model.Tick(now)
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done); <-finished }
}

// upstream resolves the upstream: --upstream, else the configured
// project, else the embedded server (started here; its anon key is
// returned for the banner, and closeFn stops it).
func (c proxyCmd) upstream(ctx context.Context, logger *slog.Logger) (upstream, anonKey string, closeFn func(), err error) {
	if c.Upstream != "" {
		return c.Upstream, "", func() {}, nil
	}
	tg, err := target.Resolve(target.Input{})
	if err != nil {
		return "", "", nil, err
	}
	if !tg.Embedded {
		return target.ProjectURL(tg.URL.Value), "", func() {}, nil
	}
	et, err := startEmbedded(ctx, embeddedConfig{logger: logger})
	if err != nil {
		return "", "", nil, err
	}
	return et.srv.URL(), et.srv.AnonKey(), func() { _ = et.Close() }, nil
}

// appURL is the URL an app on this machine uses to reach the proxy
// listening on host and port (loopback for an unspecified host).
func appURL(host string, port int) string {
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(port))
}

// proxyBanner is what `rtm proxy` prints at start: what to set in the
// app, with the anon key when the upstream is the embedded server.
func proxyBanner(app, upstream, anonKey string, insecure bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rtm proxy: %s -> %s", app, mask.URL(upstream))
	if insecure {
		b.WriteString(" (TLS not verified)")
	}
	b.WriteString("\n\nPoint your app's Supabase URL at the proxy:\n\n")
	env := tui.AppEnv(app, anonKey)
	urls := len(tui.AppEnvNames(""))
	for _, l := range env[:urls] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	if anonKey != "" {
		b.WriteString("\nThe upstream is rtm's embedded server (no project configured); its anon key:\n\n")
		for _, l := range env[urls:] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	b.WriteString("\nPress Ctrl+C to stop.\n")
	return b.String()
}
