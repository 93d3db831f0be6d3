package headless_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/limits"
)

// lastLimits returns the last limits line of a watch output.
func lastLimits(t *testing.T, out string) (limits.Report, bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], `{"type":"limits"`) {
			r, err := limits.DecodeReport([]byte(lines[i]))
			if err != nil {
				t.Fatalf("limits line %d: %v\n%s", i+1, err, lines[i])
			}
			return r, true
		}
	}
	return limits.Report{}, false
}

// TestWatchLimitsChannels drives channels per connection against an
// embedded server allowing 20: at 17 the watch's limits line shows a
// warning at 85 % with a forecast; past 20 the server's refusal is on
// that gauge, with its reason, and no other.
func TestWatchLimitsChannels(t *testing.T) {
	env, _ := testEnv(t, servertest.WithLimits(server.Limits{MaxChannelsPerClient: 20}))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	room := registry.MustName(registry.KindBroadcast, "room", "0", "")
	var out syncBuffer
	ready := make(chan *registry.Manager, 1)
	done := make(chan error, 1)
	plan, err := limits.Plan("free")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := headless.Watch(ctx, env, &out, headless.StreamOptions{Joins: []registry.Name{room}, Duration: 40 * time.Second,
			Types:   []registry.EventType{registry.TypeDropped},
			Limits:  &headless.LimitsOptions{Plan: plan, Interval: 100 * time.Millisecond},
			OnReady: func(m *registry.Manager) { ready <- m }})
		done <- err
	}()
	m := <-ready
	gaugeOf := func() limits.Gauge {
		r, ok := lastLimits(t, out.String())
		if !ok {
			return limits.Gauge{}
		}
		g, _ := r.Gauge(limits.ChannelsPerConnection)
		return g
	}
	// A join every 150 ms: the climb spans seconds, which the trend
	// (one value per second) needs for a forecast.
	pace := time.NewTicker(150 * time.Millisecond)
	defer pace.Stop()
	for i := 1; i < 17; i++ {
		<-pace.C
		if _, err := m.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), "")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a warning at 85 %", func() bool {
		g := gaugeOf()
		return g.Usage == 17 && g.Level == limits.LevelWarning
	})
	g := gaugeOf()
	if g.Limit != 20 || g.Source != "server" || g.Percent != 85 || g.Error != nil || g.HitIn == nil || *g.HitIn <= 0 {
		t.Fatalf("at 17 of 20: %+v (hit in %v)", g, g.HitIn)
	}
	// The plan holds where the server says nothing; the server's figure
	// wins where it does.
	r, _ := lastLimits(t, out.String())
	if pg, _ := r.Gauge(limits.PostgresChangePayload); pg.Source != "plan free" || pg.Limit != 1_024_000 {
		t.Fatalf("postgres change payload: %+v", pg)
	}
	for i := 17; i < 22; i++ {
		if _, err := m.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), "")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the server's refusal on the channels gauge", func() bool {
		g := gaugeOf()
		return g.Error != nil && g.Level == limits.LevelError
	})
	g = gaugeOf()
	if g.Error.Reason != "ChannelRateLimitReached: Too many channels" || g.Error.Code != "ChannelRateLimitReached" || !strings.HasPrefix(g.Error.Channel, "broadcast:room:") {
		t.Fatalf("error: %+v", g.Error)
	}
	if g.Peak != 20 {
		t.Fatalf("peak %v", g.Peak)
	}
	r, _ = lastLimits(t, out.String())
	for _, o := range r.Gauges {
		if o.Name != limits.ChannelsPerConnection && o.Error != nil {
			t.Fatalf("%s has the error too: %+v", o.Name, o.Error)
		}
	}
	if strings.Contains(out.String(), `"type":"message"`) {
		t.Fatal("the types filter let messages through")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}
