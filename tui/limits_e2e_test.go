package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/limits"
	"rtm/registry/serverctl"
	"rtm/theme"
)

// TestLimitsViewEmbedded drives channels per connection against the
// embedded server allowing 20, with a real manager, a real meter fed by
// the manager's events and refreshed from the server's admin API (as
// `rtm serve` is read), and the UI's Limits view open: at 17 channels
// the view's channels row reads 85 % of the server's 20 in the warning
// colour with a forecast, and the header's gauge names it; past 20 the
// server's refusal shows under that row, with its reason, the row and
// the header turn to error, and no other gauge has an error.
func TestLimitsViewEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := servertest.New(t, servertest.WithLimits(server.Limits{MaxChannelsPerClient: 20}))
	src, err := serverctl.NewHTTP(srv.URL, srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey(), Policy: registry.Fixed{Interval: time.Hour, Max: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	plan, err := limits.Plan("free")
	if err != nil {
		t.Fatal(err)
	}
	meter := limits.New(plan, nil)
	feed := limits.NewFeed(meter)
	sub := mgr.Subscribe(ctx, registry.SubscribeOptions{Buffer: 1 << 12, Types: limits.ManagerTypes(), MessageBatches: true})
	defer sub.Close()
	if err := mgr.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	m := New(Options{Manager: NewRegistryManager(mgr), Context: ctx, Now: time.Now, Limits: meter,
		Theme: func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
			return func() tea.Msg { return scheduledMsg{d: d, msg: f(time.Now())} }
		}})
	m.Update(teaSize(160, 40))
	keys(m, "L")
	// tick does what the monitor's meter and the UI's clock do: the
	// manager's events into the meter, the server's limits and counters
	// from its admin API, and a clock tick (the UI reads the meter).
	tick := func() {
		t.Helper()
		for _, e := range sub.Drain(nil) {
			feed.Manager(e)
		}
		if err := meter.Refresh(ctx, src, plan, limits.Limits{}); err != nil {
			t.Fatal(err)
		}
		m.Update(tickMsg{t: time.Now(), gen: m.tickGen})
	}
	// row returns the screen's row of a limit and the row below it.
	row := func(name limits.Name) (string, string) {
		lines := strings.Split(screen(m), "\n")
		for i, l := range lines {
			if strings.Contains(l, " "+string(name)+" ") && i+1 < len(lines) {
				return l, lines[i+1]
			}
		}
		return "", ""
	}
	painted := func(p theme.Paint, s string) bool {
		return strings.Contains(m.Render(), strings.TrimSuffix(p.Render(s), "\x1b[m"))
	}
	// forecast is the HITS IN of a row: what follows its source.
	forecast := func(l string) string {
		f := strings.Fields(l)
		for i, w := range f {
			if w == "server" && i+1 < len(f) && f[i+1] != "│" {
				return f[i+1]
			}
		}
		return ""
	}
	join := func(i int) {
		t.Helper()
		if _, err := mgr.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), "")); err != nil {
			t.Fatal(err)
		}
	}
	// A join every 150 ms: the climb spans seconds, which the trend
	// (one value per second) needs for a forecast.
	pace := time.NewTicker(150 * time.Millisecond)
	defer pace.Stop()
	for i := 1; i <= 17; i++ {
		<-pace.C
		join(i)
		tick()
	}
	var l, below string
	defer func() {
		if t.Failed() {
			t.Log(screen(m))
		}
	}()
	waitFor(t, "the channels row at 85 % with a forecast", func() bool {
		tick()
		l, below = row(limits.ChannelsPerConnection)
		// … 17 17 ███ 85% 20 server 2.3s │ │
		return strings.Contains(l, " 17         17 ") && strings.Contains(l, " 85% ") && forecast(l) != ""
	})
	if hit, err := time.ParseDuration(forecast(l)); err != nil || hit <= 0 || hit > time.Minute {
		t.Errorf("forecast %q (%v) in %q", forecast(l), err, l)
	}
	if !painted(m.st.Warn, "channels_per_connection") {
		t.Errorf("the channels row is not in the warning colour: %q", l)
	}
	if strings.Contains(below, "✗") {
		t.Errorf("an error under the channels row before the limit: %q", below)
	}
	mustContain(t, headerOf(screen(m)), "limits 85% channels/sock")

	for i := 18; i <= 22; i++ {
		join(i)
	}
	waitFor(t, "the server's refusal under the channels row", func() bool {
		tick()
		l, below = row(limits.ChannelsPerConnection)
		return strings.Contains(below, "✗ ChannelRateLimitReached: Too many channels · broadcast:room:")
	})
	mustContain(t, l, " 20 ", "100%", " 20 server ")
	if !painted(m.st.Error, "channels_per_connection") {
		t.Errorf("the channels row is not in the error colour: %q", l)
	}
	mustContain(t, headerOf(screen(m)), "limits 100% channels/sock")
	// No other gauge has an error.
	if n := strings.Count(screen(m), "✗"); n != 1 {
		t.Fatalf("%d errors on screen:\n%s", n, screen(m))
	}
}
