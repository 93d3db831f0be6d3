package main

import (
	"log/slog"

	"rtm/realtime/proxy"
	"rtm/registry/apps"
	"rtm/registry/target"
)

// monitorProxy is the app proxy the monitor runs beside its own client
// (--listen, --no-proxy): its model feeds the UI's Apps view.
type monitorProxy struct {
	// model is nil when the proxy is off; url is the app's URL of the
	// proxy; status says why it is off, or warns about the address.
	model  *apps.Model
	url    string
	status string
	close  func()
}

// startProxy starts the app proxy on --listen, forwarding to the
// monitor's target (the embedded server when mt has one). A listen
// address that is taken is not fatal: the monitor runs without the
// proxy and its status says so.
func (c monitorCmd) startProxy(mt monitorTarget, tg *target.Target, logger *slog.Logger) monitorProxy {
	if c.NoProxy {
		return monitorProxy{close: func() {}}
	}
	upstream := projectURL(tg.URL.Value)
	if mt.embedded != nil {
		upstream = mt.embedded.srv.URL()
	}
	model := apps.New(apps.Options{})
	ps, err := listenProxy(c.Listen, proxy.Config{Upstream: upstream, Logger: logger, Observer: model})
	if err != nil {
		logger.Warn("proxy off", "err", err)
		return monitorProxy{status: "app proxy off: " + err.Error() + " (--listen ADDR picks another, --no-proxy turns it off)", close: func() {}}
	}
	stopTick := tickModel(model)
	mp := monitorProxy{model: model, url: ps.url, close: func() { ps.shutdown(logger); stopTick() }}
	if w := ps.warning(); w != "" {
		mp.status = "app proxy: warning: " + w
	}
	return mp
}
