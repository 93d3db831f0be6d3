package tui

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/theme"
)

// TestAppFaultsThroughTheProxy drives the Apps view's fault menu against
// real parts: an app (a registry manager) joined to a channel through
// rtm's proxy in front of the embedded server, the proxy's model of its
// traffic as Options.Apps, and a registry manager holding the proxy as
// its Options.Apps behind the UI. Keys kick the app's channel and then
// close its socket with a code and reason from the form; the app
// rejoins, then reconnects, and the Apps view shows both.
func TestAppFaultsThroughTheProxy(t *testing.T) {
	srv := servertest.New(t)
	model := apps.New(apps.Options{})
	px, err := proxy.New(proxy.Config{Upstream: srv.URL, Observer: model})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(px)
	t.Cleanup(func() { _ = px.Close(); hs.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	app, err := registry.New(registry.Options{URL: hs.URL, APIKey: srv.AnonKey(), ReconnectAfter: func(int) time.Duration { return 20 * time.Millisecond },
		Policy: registry.Fixed{Interval: 20 * time.Millisecond, Max: 5}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	if err := app.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	if _, err := app.Join(ctx, room); err != nil {
		t.Fatal(err)
	}
	appJoined := func() bool {
		info, err := app.Info(room)
		return err == nil && info.Status == registry.StatusConnected
	}
	waitFor(t, "the app's channel to join through the proxy", appJoined)

	ctl, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey(), Apps: px})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	m := New(Options{Manager: NewRegistryManager(ctl), Apps: model, AppsURL: hs.URL, Context: ctx,
		Now: time.Now, Theme: func(bool) *theme.Styles { return theme.Default(true) },
		// Timers are not run (runCmd skips them).
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
			return func() tea.Msg { return scheduledMsg{d: d, msg: f(time.Now())} }
		}})
	m.Update(teaSize(160, 45))
	tick := func() { m.Update(tickMsg{t: time.Now(), gen: m.tickGen}) }
	run := func(ks ...string) {
		t.Helper()
		for _, c := range keys(m, ks...) {
			feed(m, c)
		}
	}

	keys(m, "A")
	waitFor(t, "the Apps view to show the app's joined channel", func() bool {
		tick()
		s := screen(m)
		return strings.Contains(s, room.Topic()) && strings.Contains(s, "joined")
	})
	sock := m.apps.Sockets[len(m.apps.Sockets)-1].ID
	attempts := app.Metrics().ChannelAttempts

	// tab selects the channel, x K kicks it (phx_error): the app rejoins.
	run("tab", "x", "K")
	if !strings.Contains(m.status.text, "kicked the app's "+room.Topic()+" (error)") {
		t.Fatalf("status after the kick: %q", m.status.text)
	}
	waitFor(t, "the app to rejoin after the kick", func() bool {
		return app.Metrics().ChannelAttempts > attempts && appJoined()
	})
	waitFor(t, "the Apps view to show the rejoin", func() bool {
		tick()
		s := m.apps.Sockets[len(m.apps.Sockets)-1]
		return len(s.Channels) == 1 && len(s.Channels[0].Attempts) >= 2 && s.Channels[0].Status == apps.StatusJoined
	})

	// esc back to the socket, x c: the close form, its defaults.
	reconnects := app.Metrics().Reconnects
	run("esc", "x", "c", "enter")
	if !strings.Contains(m.status.text, "closed app socket") || !strings.Contains(m.status.text, "4000") {
		t.Fatalf("status after the close: %q", m.status.text)
	}
	waitFor(t, "the app to reconnect after the close", func() bool { return app.Metrics().Reconnects > reconnects && appJoined() })

	// The view has not read the snapshot since: it still shows the
	// socket open, so x d asks the proxy, which refuses; the error shows.
	run("x", "d")
	if !strings.Contains(m.status.text, "proxy: no such socket") || !strings.Contains(m.status.text, "fault app") {
		t.Fatalf("drop of the closed socket: %q", m.status.text)
	}
	waitFor(t, "the Apps view to show the closed socket and its successor", func() bool {
		tick()
		for _, s := range m.apps.Sockets {
			if s.ID == sock && !s.Closed.IsZero() && s.CloseCode == 4000 {
				return len(m.apps.Sockets) > 1
			}
		}
		return false
	})

	// Now the view knows: the faults that name the closed socket are
	// disabled.
	run("g")
	if v, _ := topDialog[*appsView](m); m.apps.Sockets[v.sel].ID != sock {
		t.Fatalf("g selected socket %d, want %d", m.apps.Sockets[v.sel].ID, sock)
	}
	run("x", "d")
	if !strings.Contains(m.status.text, "is closed") {
		t.Fatalf("drop on a closed socket: %q", m.status.text)
	}
}
