package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"rtm/realtime/proxy"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/target"
)

// appProxy is the scenario's proxy in front of the target, serving on
// loopback, with the model of the app's traffic as its Observer.
type appProxy struct {
	p     *proxy.Proxy
	model *apps.Model
	srv   *http.Server
	// url is the app's URL of the proxy (http://127.0.0.1:PORT).
	url    string
	served chan error
}

// startProxy starts the proxy of ps in front of upstream (the target's
// project URL).
func startProxy(ps *ProxySetting, upstream string, log *slog.Logger) (*appProxy, error) {
	model := apps.New(apps.Options{})
	p, err := proxy.New(proxy.Config{Upstream: target.ProjectURL(upstream), Observer: model, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	ln, err := net.Listen("tcp", ps.Listen)
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("proxy: listen: %w", err)
	}
	ap := &appProxy{p: p, model: model, served: make(chan error, 1),
		url: "http://" + ln.Addr().String(),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	go func() { ap.served <- ap.srv.Serve(ln) }()
	return ap, nil
}

// close stops the proxy within a second: the server stops accepting,
// the sockets get a close frame (1001), what is left is cut.
func (ap *appProxy) close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { _ = ap.srv.Shutdown(ctx); close(stopped) }()
	if err := ap.p.Shutdown(ctx); err != nil {
		log.Debug("proxy: shutdown", "err", err)
	}
	<-stopped
	_ = ap.srv.Close()
	if err := <-ap.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("proxy: serve", "err", err)
	}
}

// appFault applies an app fault through the scenario's proxy.
func (r *runner) appFault(ctx context.Context, st Step) error {
	if r.app == nil {
		return fmt.Errorf("fault %s: the scenario's proxy is not running", st.Fault)
	}
	if err := registry.ApplyAppFault(ctx, r.app.p, st.Fault); err != nil {
		if errors.Is(err, proxy.ErrNoSocket) {
			return fmt.Errorf("fault %s: %w (has the app connected through the proxy yet? expect app_status first)", st.Fault, err)
		}
		return fmt.Errorf("fault %s: %w", st.Fault, err)
	}
	return nil
}
