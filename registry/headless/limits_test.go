package headless_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
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

// watched is a Watch with limits lines: its manager, its target, a
// reader of the last line's gauges, and stop, which ends the watch,
// checks it ended well and returns its output.
type watched struct {
	m      *registry.Manager
	env    *headless.Env
	srv    *servertest.Server
	gauge  func(limits.Name) limits.Gauge
	report func() (limits.Report, bool)
	stop   func() string
}

// limitsWatch runs Watch with limits lines every 100 ms (the plan free
// under the server's limits, overrides over both) on an embedded server
// with lim, joined to broadcast:room:0.
func limitsWatch(t *testing.T, lim server.Limits, overrides ...string) watched {
	t.Helper()
	env, srv := testEnv(t, servertest.WithLimits(lim))
	ov, err := limits.Override(limits.Limits{}, overrides)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	t.Cleanup(cancel)
	plan, err := limits.Plan("free")
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ready := make(chan *registry.Manager, 1)
	done := make(chan error, 1)
	room := registry.MustName(registry.KindBroadcast, "room", "0", "")
	go func() {
		_, err := headless.Watch(ctx, env, out, headless.StreamOptions{Joins: []registry.Name{room},
			Types:   []registry.EventType{registry.TypeDropped},
			Limits:  &headless.LimitsOptions{Plan: plan, Overrides: ov, Interval: 100 * time.Millisecond},
			OnReady: func(m *registry.Manager) { ready <- m }})
		done <- err
	}()
	var m *registry.Manager
	select {
	case m = <-ready:
	case err := <-done:
		t.Fatalf("Watch: %v", err)
	}
	report := func() (limits.Report, bool) { return lastLimits(t, out.String()) }
	gauge := func(n limits.Name) limits.Gauge {
		r, ok := report()
		if !ok {
			return limits.Gauge{}
		}
		g, _ := r.Gauge(n)
		return g
	}
	stop := func() string {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Watch: %v", err)
		}
		return out.String()
	}
	eventually(t, "the first limits line", func() bool { _, ok := report(); return ok })
	return watched{m, env, srv, gauge, report, stop}
}

// onlyOn fails t if a gauge other than n has an error attached.
func onlyOn(t *testing.T, out string, n limits.Name) {
	t.Helper()
	r, _ := lastLimits(t, out)
	for _, o := range r.Gauges {
		if o.Name != n && o.Error != nil {
			t.Fatalf("%s has an error too: %+v", o.Name, o.Error)
		}
	}
}

// TestWatchLimitsChannels drives channels per connection against an
// embedded server allowing 20: at 17 the watch's limits line shows a
// warning at 85 % with a forecast; past 20 the server's refusal is on
// that gauge, with its reason, and no other.
func TestWatchLimitsChannels(t *testing.T) {
	w := limitsWatch(t, server.Limits{MaxChannelsPerClient: 20})
	m, gauge, stop := w.m, w.gauge, w.stop
	ctx := testCtx(t)
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
	var g limits.Gauge
	eventually(t, "a warning at 85 %", func() bool {
		g = gauge(limits.ChannelsPerConnection)
		return g.Usage == 17 && g.Level == limits.LevelWarning
	})
	if g.Limit != 20 || g.Source != "server" || g.Percent != 85 || g.Error != nil || g.HitIn == nil || *g.HitIn <= 0 {
		t.Fatalf("at 17 of 20: %+v (hit in %v)", g, g.HitIn)
	}
	// The plan holds where the server says nothing; the server's figure
	// wins where it does.
	if pg := gauge(limits.PostgresChangePayload); pg.Source != "plan free" || pg.Limit != 1_024_000 {
		t.Fatalf("postgres change payload: %+v", pg)
	}
	for i := 17; i < 22; i++ {
		if _, err := m.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), "")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the server's refusal on the channels gauge", func() bool {
		g := gauge(limits.ChannelsPerConnection)
		return g.Error != nil && g.Level == limits.LevelError
	})
	g = gauge(limits.ChannelsPerConnection)
	if g.Error.Reason != "ChannelRateLimitReached: Too many channels" || g.Error.Code != "ChannelRateLimitReached" || !strings.HasPrefix(g.Error.Channel, "broadcast:room:") {
		t.Fatalf("error: %+v", g.Error)
	}
	if g.Peak != 20 {
		t.Fatalf("peak %v", g.Peak)
	}
	out := stop()
	onlyOn(t, out, limits.ChannelsPerConnection)
	if strings.Contains(out, `"type":"message"`) {
		t.Fatal("the types filter let messages through")
	}
}

// TestWatchLimitsJoins drives joins per second against a server
// allowing 20 a second: 17 joins in a burst read 85 % (a warning, and a
// forecast from the climb), 4 more are refused with the server's
// reason on the joins gauge.
func TestWatchLimitsJoins(t *testing.T) {
	w := limitsWatch(t, server.Limits{MaxJoinsPerSecond: 20})
	m, gauge, stop := w.m, w.gauge, w.stop
	ctx := testCtx(t)
	// Let the first second's join (room 0) leave the window.
	eventually(t, "the first join out of the window", func() bool {
		g := gauge(limits.JoinsPerSecond)
		return g.Limit == 20 && g.Usage == 0
	})
	var hs []*registry.Handle
	for i := 1; i <= 17; i++ {
		h, err := m.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), ""))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		if err := h.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var g limits.Gauge
	eventually(t, "a warning", func() bool { g = gauge(limits.JoinsPerSecond); return g.Level == limits.LevelWarning })
	if g.Usage < 16 || g.Usage > 19 || g.Error != nil || g.HitIn == nil {
		t.Fatalf("17 joins: %+v (hit in %v)", g, g.HitIn)
	}
	for i := 18; i <= 21; i++ {
		if _, err := m.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), "")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the server's refusal on the joins gauge", func() bool {
		g := gauge(limits.JoinsPerSecond)
		return g.Error != nil && g.Level == limits.LevelError
	})
	// The join refused, or (the server closes the socket then) the
	// reconnect refused with 429 while the second lasts.
	if e := gauge(limits.JoinsPerSecond).Error; e.Reason != "ClientJoinRateLimitReached: Too many joins per second" && e.Reason != "Too many joins per second" {
		t.Fatalf("error: %+v", e)
	}
	onlyOn(t, stop(), limits.JoinsPerSecond)
}

// TestWatchLimitsMessages drives messages per second against a server
// allowing 20 a second: 17 broadcasts in a burst read 85 %, 5 more shut
// the channel down with "Too many messages per second" on the messages
// gauge.
func TestWatchLimitsMessages(t *testing.T) {
	w := limitsWatch(t, server.Limits{MaxEventsPerSecond: 20})
	m, gauge, stop := w.m, w.gauge, w.stop
	ctx := testCtx(t)
	room := registry.MustName(registry.KindBroadcast, "room", "0", "")
	eventually(t, "the channel joined", func() bool {
		i, err := m.Info(room)
		return err == nil && i.Status == registry.StatusConnected
	})
	send := func(n int) {
		for i := range n {
			if err := m.Broadcast(ctx, room, "tick", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A trend needs two seconds of the meter's life: the burst comes a
	// second after its first line at least.
	first, _ := w.report()
	eventually(t, "the meter a second old", func() bool {
		r, ok := w.report()
		return ok && r.Time.Sub(first.Time) > 1100*time.Millisecond
	})
	send(17)
	var g limits.Gauge
	eventually(t, "a warning", func() bool {
		g = gauge(limits.MessagesPerSecond)
		return g.Usage == 17 && g.Level == limits.LevelWarning
	})
	if g.Limit != 20 || g.Source != "server" || g.Error != nil || g.HitIn == nil {
		t.Fatalf("17 messages: %+v (hit in %v)", g, g.HitIn)
	}
	send(5)
	eventually(t, "the server's shutdown on the messages gauge", func() bool {
		g := gauge(limits.MessagesPerSecond)
		return g.Error != nil && g.Level == limits.LevelError
	})
	if e := gauge(limits.MessagesPerSecond).Error; e.Reason != "Too many messages per second" || e.Channel != room.String() {
		t.Fatalf("error: %+v", e)
	}
	out := stop()
	onlyOn(t, out, limits.MessagesPerSecond)
	// rtm's own brakes beside the gauge: none configured, none holding.
	if r, _ := lastLimits(t, out); r.Throttle == nil || *r.Throttle != (registry.Throttle{}) {
		t.Fatalf("throttle: %+v", r.Throttle)
	}
}

// TestWatchLimitsPayload drives the payload size against a server
// allowing 1 KB: an 850-byte broadcast reads 85 %, a 1200-byte one is
// refused with the server's "payload_size_exceeded" (an acknowledged
// channel), on the payload gauge.
func TestWatchLimitsPayload(t *testing.T) {
	w := limitsWatch(t, server.Limits{MaxPayloadSizeKB: 1})
	m, gauge, stop := w.m, w.gauge, w.stop
	ctx := testCtx(t)
	room := registry.MustName(registry.KindBroadcast, "acked", "1", "")
	h, err := m.Join(ctx, room, registry.WithBroadcastConfig(true, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	payload := func(n int) json.RawMessage { // n bytes of JSON
		return json.RawMessage(`{"t":"` + strings.Repeat("x", n-8) + `"}`)
	}
	if err := m.Broadcast(ctx, room, "doc", payload(850)); err != nil {
		t.Fatal(err)
	}
	var g limits.Gauge
	eventually(t, "a warning", func() bool {
		g = gauge(limits.PayloadSize)
		return g.Level == limits.LevelWarning
	})
	if g.Usage != 850 || g.Limit != 1000 || g.Source != "server" || g.Error != nil {
		t.Fatalf("850 bytes: %+v", g)
	}
	if err := m.Broadcast(ctx, room, "doc", payload(1200)); err == nil || !strings.Contains(err.Error(), "payload_size_exceeded") {
		t.Fatalf("the big broadcast: %v", err)
	}
	eventually(t, "the server's refusal on the payload gauge", func() bool {
		g = gauge(limits.PayloadSize)
		return g.Error != nil && g.Level == limits.LevelError
	})
	// (The refused broadcast is no message of the manager's: the gauge
	// knows of it by the server's error.)
	if g.Error.Reason != "payload_size_exceeded" || g.Error.Channel != room.String() {
		t.Fatalf("error: %+v %+v", g, g.Error)
	}
	onlyOn(t, stop(), limits.PayloadSize)
}

// TestWatchLimitsPresence drives presence events per second against a
// server allowing 20 a second, with presence channels joined and
// tracked: the gauge turns to warning first (rtm counts the tracks it
// sends and the presence_state and presence_diff it receives, as
// Supabase counts deliveries), then a burst's shutdown "Too many
// presence messages per second" lands on it.
func TestWatchLimitsPresence(t *testing.T) {
	w := limitsWatch(t, server.Limits{MaxPresenceEventsPerSecond: 20})
	m, gauge, stop := w.m, w.gauge, w.stop
	ctx := testCtx(t)
	n := 0
	join := func() {
		n++
		if _, err := m.JoinPresence(ctx, "lobby", fmt.Sprint(n), registry.PresenceUser{UserID: "watcher"}); err != nil {
			t.Fatal(err)
		}
	}
	// Joins ever closer (each is about 2 presence events: the
	// presence_state and the track), from 4 a second up: the rate climbs
	// through 80 % to a warning before it reaches the server's limit.
	var g limits.Gauge
	for gap := 250 * time.Millisecond; g.Level != limits.LevelWarning && g.Level != limits.LevelError; gap = max(gap-10*time.Millisecond, 50*time.Millisecond) {
		if n == 60 {
			t.Fatalf("no warning after %d joins: %+v", n, g)
		}
		pace := time.NewTimer(gap)
		<-pace.C
		join()
		g = gauge(limits.PresenceEventsPerSecond)
	}
	if g.Error != nil || g.Limit != 20 || g.Source != "server" {
		t.Fatalf("a warning without the server's error: %+v %+v", g, g.Error)
	}
	// A burst: the server shuts a channel down.
	for range 15 {
		join()
	}
	eventually(t, "the server's shutdown on the presence gauge", func() bool {
		g = gauge(limits.PresenceEventsPerSecond)
		return g.Error != nil && g.Level == limits.LevelError
	})
	if g.Error.Reason != "Too many presence messages per second" || !strings.HasPrefix(g.Error.Channel, "presence:lobby:") {
		t.Fatalf("error: %+v %+v", g, g.Error)
	}
	onlyOn(t, stop(), limits.PresenceEventsPerSecond)
}

// TestWatchLimitsClients drives concurrent clients against a server
// allowing 5: with 3 more sockets than the watch's the gauge (the
// server's count) reads 80 %, a warning; with 5 it is at the limit, and
// when the watch's own socket drops and another client takes its place,
// the watch's reconnect is refused with the server's 429 "Too many
// connected users" on that gauge.
func TestWatchLimitsClients(t *testing.T) {
	w := limitsWatch(t, server.Limits{MaxConcurrentUsers: 5})
	ctx := testCtx(t)
	connect := func() error {
		m, err := w.env.NewManager(headless.Identity{}, headless.ManagerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := m.Connect(cctx); err != nil {
			_ = m.Close()
			return err
		}
		t.Cleanup(func() { _ = m.Close() })
		return nil
	}
	for range 3 {
		if err := connect(); err != nil {
			t.Fatal(err)
		}
	}
	var g limits.Gauge
	eventually(t, "a warning at 80 %", func() bool {
		g = w.gauge(limits.ConcurrentClients)
		return g.Usage == 4 && g.Level == limits.LevelWarning
	})
	if g.Limit != 5 || g.Source != "server" || g.Error != nil {
		t.Fatalf("4 of 5: %+v", g)
	}
	if err := connect(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "at the limit", func() bool {
		g = w.gauge(limits.ConcurrentClients)
		return g.Usage == 5 && g.Level == limits.LevelError
	})
	// Drop the watch's socket and take its place before it reconnects
	// (it waits 50 ms); if it wins the race, try again.
	for try := 0; ; try++ {
		if try == 20 {
			t.Fatal("the watch always reconnected first")
		}
		eventually(t, "the watch connected", func() bool { return w.m.Snapshot().Socket.Status == registry.SocketConnected })
		if _, err := w.m.Faults().Drop(); err != nil {
			t.Fatal(err)
		}
		if connect() == nil {
			break
		}
	}
	eventually(t, "the server's refusal on the clients gauge", func() bool {
		g = w.gauge(limits.ConcurrentClients)
		return g.Error != nil
	})
	if g.Error.Reason != "Too many connected users" {
		t.Fatalf("error: %+v", g.Error)
	}
	onlyOn(t, w.stop(), limits.ConcurrentClients)
}

// TestWatchLimitsChangePayload drives the postgres change payload
// against a limit of 2 KB (--limit): changes of growing rows read 80 %
// (a warning), then a change the server could not deliver whole
// ("errors": ["Error 413: Payload Too Large"], as Supabase and the
// embedded server's database feed send it) puts that error on the
// gauge.
func TestWatchLimitsChangePayload(t *testing.T) {
	w := limitsWatch(t, server.Limits{}, "postgres_change_payload=2")
	ctx := testCtx(t)
	h, err := w.m.SubscribeEntity(ctx, "project", "1", registry.ChangeFilter{}, func(registry.Change) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	cols := []protocol.Column{{Name: "id", Type: "int8"}, {Name: "body", Type: "text"}}
	emit := func(body string, errs ...string) {
		rec, _ := json.Marshal(map[string]string{"id": "1", "body": body})
		if n := w.srv.EmitChange("", protocol.ChangeData{Schema: "public", Table: "project", Type: "UPDATE", Columns: cols,
			CommitTimestamp: "2026-01-01T00:00:00.000Z", Record: rec, Errors: errs}); n != 1 {
			t.Fatalf("the change reached %d channels", n)
		}
	}
	var g limits.Gauge
	for n := 1000; g.Level != limits.LevelWarning; n += 50 {
		if n > 2000 {
			t.Fatalf("no warning: %+v", g)
		}
		emit(strings.Repeat("x", n))
		eventually(t, "the change measured", func() bool {
			g = w.gauge(limits.PostgresChangePayload)
			return g.Usage >= float64(n)
		})
	}
	if g.Percent < 80 || g.Percent >= 90 || g.Limit != 2000 || g.Source != "--limit" || g.Error != nil {
		t.Fatalf("a warning: %+v", g)
	}
	emit("", "Error 413: Payload Too Large")
	eventually(t, "the server's 413 on the change payload gauge", func() bool {
		g = w.gauge(limits.PostgresChangePayload)
		return g.Error != nil && g.Level == limits.LevelError
	})
	if g.Error.Reason != "Error 413: Payload Too Large" || g.Error.Channel != h.Name().String() {
		t.Fatalf("error: %+v", g.Error)
	}
	onlyOn(t, w.stop(), limits.PostgresChangePayload)
}
