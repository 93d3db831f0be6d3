package tui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/jsharness"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
	"rtm/theme"
)

// TestAppsViewShowsRESTBroadcasts: a supabase-js app (Node 22, through
// rtm's proxy in front of the embedded server) subscribes a channel,
// then sends on it by REST (channel.httpSend, the Realtime broadcast
// endpoint); another sender, with no socket, posts one broadcast by
// REST. The Apps view shows the app's REST message among its channel's
// messages, marked via REST with the server's 202, and the lone request
// in its own section; the socket count, the socket's channel count and
// the frames the app sent on its socket are what they were before.
func TestAppsViewShowsRESTBroadcasts(t *testing.T) {
	srv := servertest.New(t)
	d := jsharness.Start(t)
	model := apps.New(apps.Options{})
	px, err := proxy.New(proxy.Config{Upstream: srv.URL, Observer: model})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(px)
	t.Cleanup(func() { _ = px.Close(); hs.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	// No heartbeat while the test runs: the app's frames stay put.
	cl := d.NewClient(t, "sb-apps-rest", hs.URL, jsharness.ClientOptions{Lib: jsharness.LibSupabaseJS, APIKey: srv.AnonKey(),
		HeartbeatIntervalMs: 120_000})
	t.Cleanup(func() { cl.Disconnect(t, 1000, "test done") })
	ch := cl.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"self": true}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	mark := d.Mark()
	ch.Subscribe(t, 0)
	ch.AwaitStatus(t, 20*time.Second, mark, "SUBSCRIBED")

	m := New(Options{Apps: model, AppsURL: hs.URL, Context: ctx, Now: time.Now,
		Theme: func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
			return func() tea.Msg { return scheduledMsg{d: d, msg: f(time.Now())} }
		}})
	m.Update(teaSize(160, 50))
	tick := func() { m.Update(tickMsg{t: time.Now(), gen: m.tickGen}) }
	keys(m, "A")
	waitFor(t, "the Apps view to show the app's joined channel", func() bool {
		tick()
		return len(m.apps.Sockets) == 1 && len(m.apps.Sockets[0].Channels) == 1 && m.apps.Sockets[0].Channels[0].Status == apps.StatusJoined
	})
	before := m.apps.Sockets[0]
	keys(m, "tab") // the channel's messages

	if _, err := ch.HTTPSend(ctx, "notify", map[string]any{"n": 41}); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/realtime/v1/api/broadcast",
		strings.NewReader(`{"messages":[{"topic":"room1","event":"job_done","payload":{"id":7}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("apikey", srv.ServiceRoleKey())
	req.Header.Set("Authorization", "Bearer "+srv.ServiceRoleKey())
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("the lone REST broadcast: %d, want 202", res.StatusCode)
	}

	var out string
	waitFor(t, "the Apps view to show both REST broadcasts", func() bool {
		tick()
		out = screen(m)
		return strings.Contains(out, "broadcast notify via REST 202") && strings.Contains(out, "REST BROADCASTS of no app socket  1")
	})
	mustContain(t, out, `{"n":41}`, "202 /realtime/v1/api/broadcast · service_role", "job_done", "APP SOCKETS 1", "CHANNELS of #")
	after := m.apps.Sockets[0]
	if len(m.apps.Sockets) != 1 || len(after.Channels) != len(before.Channels) || after.FramesFromApp != before.FramesFromApp {
		t.Fatalf("REST changed the socket: %d sockets, %d channels (was %d), %d frames from the app (was %d)",
			len(m.apps.Sockets), len(after.Channels), len(before.Channels), after.FramesFromApp, before.FramesFromApp)
	}
	if c := after.Channels[0]; c.MessagesFromApp != before.Channels[0].MessagesFromApp+1 {
		t.Fatalf("the channel counts %d messages from the app, want %d", c.MessagesFromApp, before.Channels[0].MessagesFromApp+1)
	}
	if strings.Contains(out, srv.ServiceRoleKey()) || strings.Contains(out, srv.AnonKey()) {
		t.Fatalf("a key shows:\n%s", out)
	}
}
