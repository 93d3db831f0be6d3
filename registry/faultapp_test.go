package registry_test

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry"
)

// TestAppFaultsThroughProxy: a manager is the app behind a real proxy to
// the embedded server, and another manager, holding the proxy as its
// Options.Apps, breaks it with app faults through Faults.Apply: the app
// reconnects after a drop and rejoins after a kick.
func TestAppFaultsThroughProxy(t *testing.T) {
	srv := servertest.New(t)
	px, err := proxy.New(proxy.Config{Upstream: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(px)
	t.Cleanup(func() { _ = px.Close(); hs.Close() })

	app, err := registry.New(registry.Options{URL: hs.URL, APIKey: srv.AnonKey(), ReconnectAfter: func(int) time.Duration { return 20 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	if err := app.Connect(ctx(t)); err != nil {
		t.Fatal(err)
	}
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	if _, err := app.Join(ctx(t), room); err != nil {
		t.Fatal(err)
	}
	waitConnected := func(what string) {
		t.Helper()
		eventually(t, what, func() bool {
			info, err := app.Info(room)
			return err == nil && info.Status == registry.StatusConnected
		})
	}
	waitConnected("the app's channel to join through the proxy")

	ctl, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey(), Apps: px})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	if !ctl.Faults().AppsAvailable() {
		t.Fatal("the proxy's control should make app faults available")
	}
	apply := func(line ...string) {
		t.Helper()
		f, err := registry.ParseFault(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctl.Faults().Apply(ctx(t), f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}

	before := app.Metrics().Reconnects
	apply("app", "drop")
	eventually(t, "the app to reconnect after the proxy dropped it", func() bool { return app.Metrics().Reconnects > before })
	waitConnected("the app's channel to rejoin after the drop")

	joins := app.Metrics().ChannelAttempts
	apply("app", "kick", room.Topic())
	eventually(t, "the app to rejoin after the kick", func() bool {
		info, err := app.Info(room)
		return err == nil && app.Metrics().ChannelAttempts > joins && info.Status == registry.StatusConnected
	})

	// Without the proxy, an app fault is refused as unsupported.
	f, _ := registry.ParseFault([]string{"app", "drop"})
	if err := app.Faults().Apply(ctx(t), f); !errors.Is(err, registry.ErrUnsupported) {
		t.Fatalf("app fault without the proxy: %v", err)
	}
}
