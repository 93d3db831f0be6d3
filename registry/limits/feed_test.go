package limits_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/proxy"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/limits"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually polls cond every 10 ms until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestFeedApp: an app behind rtm's proxy (a real client through
// realtime/proxy to the embedded server, watched by the app model of
// registry/apps) fills the meter through Feed.App: its socket, its
// channels to 80 % of the server's 5 and to 100 %, its broadcast and the
// payload's size, and the server's refusal of the 6th channel on the
// channels gauge.
func TestFeedApp(t *testing.T) {
	srv := servertest.New(t, servertest.WithLimits(server.Limits{MaxChannelsPerClient: 5}))
	model := apps.New(apps.Options{})
	p, err := proxy.New(proxy.Config{Upstream: srv.URL, Observer: model})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	lim, _ := limits.Override(limits.Limits{}, []string{"channels_per_connection=5", "messages_per_second=100", "payload_size=1"})
	meter := limits.New(lim, nil)
	feed := limits.NewFeed(meter)
	sub := model.Subscribe(4096)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for e := range sub.Events() {
			feed.App(e)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := registry.New(registry.Options{URL: front.URL, APIKey: srv.AnonKey(), Policy: registry.Fixed{Interval: time.Hour, Max: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = app.Close()
		front.CloseClientConnections()
		front.Close()
		_ = p.Close()
		sub.Close()
		<-fed
	})
	if err := app.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	gauge := func(n limits.Name) limits.Gauge { g, _ := meter.Gauge(n); return g }
	join := func(i int) *registry.Handle {
		h, err := app.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), ""))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := join(1)
	for i := 2; i <= 4; i++ {
		join(i)
	}
	eventually(t, "4 of 5 channels, a warning", func() bool {
		g := gauge(limits.ChannelsPerConnection)
		return g.Usage == 4 && g.Level == limits.LevelWarning
	})
	if g := gauge(limits.ConcurrentClients); g.Usage != 1 {
		t.Fatalf("one app socket: %+v", g)
	}
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Broadcast(ctx, "big", json.RawMessage(`{"text":"`+fmt.Sprintf("%0900d", 0)+`"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broadcast counted", func() bool {
		g := gauge(limits.PayloadSize)
		return gauge(limits.MessagesPerSecond).Peak >= 1 && g.Usage > 900 && g.Level == limits.LevelWarning
	})
	join(5)
	join(6)
	eventually(t, "the server's refusal on the channels gauge", func() bool {
		g := gauge(limits.ChannelsPerConnection)
		return g.Error != nil && g.Level == limits.LevelError
	})
	g := gauge(limits.ChannelsPerConnection)
	if ch := g.Error.Channel; g.Peak != 5 || g.Error.Reason != "ChannelRateLimitReached: Too many channels" || (ch != "realtime:broadcast:room:5" && ch != "realtime:broadcast:room:6") {
		t.Fatalf("at the limit: %+v %+v", g, g.Error)
	}
	if g := gauge(limits.JoinsPerSecond); g.Peak < 6 {
		t.Fatalf("joins: %+v", g)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the app socket closed", func() bool { return gauge(limits.ConcurrentClients).Usage == 0 })
}
