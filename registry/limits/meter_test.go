package limits_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"rtm/registry"
	"rtm/registry/clock"
	"rtm/registry/limits"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func meter(t *testing.T, overrides ...string) (*limits.Meter, *clock.Fake) {
	t.Helper()
	lim, err := limits.Override(limits.Limits{}, overrides)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	return limits.New(lim, clk), clk
}

func gauge(t *testing.T, m *limits.Meter, n limits.Name) limits.Gauge {
	t.Helper()
	g, ok := m.Gauge(n)
	if !ok {
		t.Fatalf("no gauge %s", n)
	}
	return g
}

func TestRateGaugeLevels(t *testing.T) {
	m, clk := meter(t, "joins_per_second=10")
	m.Add(limits.JoinsPerSecond, 7)
	if g := gauge(t, m, limits.JoinsPerSecond); g.Usage != 7 || g.Level != limits.LevelOK || g.Percent != 70 {
		t.Fatalf("7 of 10: %+v", g)
	}
	clk.Advance(300 * time.Millisecond)
	m.Add(limits.JoinsPerSecond, 1)
	if g := gauge(t, m, limits.JoinsPerSecond); g.Usage != 8 || g.Level != limits.LevelWarning {
		t.Fatalf("8 of 10 is a warning: %+v", g)
	}
	m.Add(limits.JoinsPerSecond, 2)
	g := gauge(t, m, limits.JoinsPerSecond)
	if g.Usage != 10 || g.Level != limits.LevelError || g.HitIn == nil || *g.HitIn != 0 {
		t.Fatalf("10 of 10 is an error, hit now: %+v", g)
	}
	// A second after the first 7, they leave the window; the peak stays.
	clk.Advance(800 * time.Millisecond)
	g = gauge(t, m, limits.JoinsPerSecond)
	if g.Usage != 3 || g.Peak != 10 || g.Level != limits.LevelOK {
		t.Fatalf("after the window: %+v", g)
	}
	clk.Advance(time.Second)
	if g := gauge(t, m, limits.JoinsPerSecond); g.Usage != 0 || g.Peak != 10 {
		t.Fatalf("idle: %+v", g)
	}
}

func TestCountGaugeForecast(t *testing.T) {
	m, clk := meter(t, "channels_per_connection=100")
	// 5 channels more every second: at 50, the limit is 10 s away.
	for i := 0; i <= 10; i++ {
		m.Set(limits.ChannelsPerConnection, i*5)
		if i < 10 {
			clk.Advance(time.Second)
		}
	}
	g := gauge(t, m, limits.ChannelsPerConnection)
	if g.Usage != 50 || g.Trend != 5 || g.Level != limits.LevelOK {
		t.Fatalf("at 50: %+v", g)
	}
	if g.HitIn == nil || *g.HitIn != 10*time.Second {
		t.Fatalf("forecast at 5/s from 50 to 100: %v", g.HitIn)
	}
	// Held still for a while: no trend, no forecast.
	clk.Advance(TrendWait)
	g = gauge(t, m, limits.ChannelsPerConnection)
	if g.Trend != 0 || g.HitIn != nil || g.Usage != 50 || g.Peak != 50 {
		t.Fatalf("held: %+v", g)
	}
	// Dropping: negative trend, no forecast.
	m.Set(limits.ChannelsPerConnection, 85)
	clk.Advance(time.Second)
	m.Set(limits.ChannelsPerConnection, 10)
	g = gauge(t, m, limits.ChannelsPerConnection)
	if g.Usage != 10 || g.Peak != 85 || g.HitIn != nil {
		t.Fatalf("dropped: %+v", g)
	}
}

// TrendWait is longer than the trend window.
const TrendWait = (limits.TrendSeconds + 1) * time.Second

func TestRateForecast(t *testing.T) {
	m, clk := meter(t, "messages_per_second=100")
	// 10, 20, ..., 50 messages in successive seconds: +10/s each second.
	for i := 1; i <= 5; i++ {
		m.Add(limits.MessagesPerSecond, i*10)
		clk.Advance(time.Second - time.Millisecond)
		if i < 5 {
			clk.Advance(time.Millisecond)
		}
	}
	g := gauge(t, m, limits.MessagesPerSecond)
	if g.Usage != 50 || g.Trend <= 0 {
		t.Fatalf("rising rate: %+v", g)
	}
	if g.HitIn == nil || *g.HitIn <= 0 || *g.HitIn > 10*time.Second {
		t.Fatalf("forecast of a rising rate: %v (%+v)", g.HitIn, g)
	}
}

func TestSizeGauge(t *testing.T) {
	m, clk := meter(t, "payload_size=10") // 10 KB
	m.Payload(limits.PayloadSize, 8500)
	clk.Advance(30 * time.Second)
	m.Payload(limits.PayloadSize, 100)
	g := gauge(t, m, limits.PayloadSize)
	if g.Usage != 8500 || g.Limit != 10000 || g.Level != limits.LevelWarning || g.HitIn != nil {
		t.Fatalf("largest of the minute: %+v", g)
	}
	clk.Advance(31 * time.Second)
	if g := gauge(t, m, limits.PayloadSize); g.Usage != 100 || g.Peak != 8500 || g.Level != limits.LevelOK {
		t.Fatalf("a minute later: %+v", g)
	}
}

func TestServerErrorAttached(t *testing.T) {
	m, clk := meter(t, "channels_per_connection=100")
	m.Set(limits.ChannelsPerConnection, 3)
	n, ok := m.ServerError(time.Time{}, "ChannelRateLimitReached: Too many channels", "broadcast:room:1")
	if !ok || n != limits.ChannelsPerConnection {
		t.Fatalf("mapped to %q %v", n, ok)
	}
	if n, ok := m.ServerError(time.Time{}, "CLOSED: server closed the channel: Too many messages per second", "broadcast:room:2"); !ok || n != limits.MessagesPerSecond {
		t.Fatalf("a shutdown as the client words it: %q %v", n, ok)
	}
	if g := gauge(t, m, limits.MessagesPerSecond); g.Error == nil || g.Error.Reason != "Too many messages per second" || g.Error.Code != "" {
		t.Fatalf("the server's reason: %+v", g.Error)
	}
	if _, ok := m.ServerError(time.Time{}, "Unauthorized: You do not have permissions to read from this Channel topic: x", ""); ok {
		t.Fatal("an authorization error is no limit")
	}
	g := gauge(t, m, limits.ChannelsPerConnection)
	if g.Error == nil || g.Error.Code != "ChannelRateLimitReached" || g.Error.Channel != "broadcast:room:1" || g.Level != limits.LevelError {
		t.Fatalf("error attached: %+v %+v", g, g.Error)
	}
	if g := gauge(t, m, limits.JoinsPerSecond); g.Error != nil {
		t.Fatalf("on another gauge: %+v", g.Error)
	}
	clk.Advance(limits.HistorySeconds * time.Second)
	if g := gauge(t, m, limits.ChannelsPerConnection); g.Level != limits.LevelOK || g.Error == nil {
		t.Fatalf("a minute later the error is kept, the level is back: %+v", g)
	}
}

func TestServerUsage(t *testing.T) {
	m, clk := meter(t, "concurrent_clients=10")
	m.Set(limits.ConcurrentClients, 1)
	m.ServerUsage(limits.ServerUsage{Connections: 9})
	if g := gauge(t, m, limits.ConcurrentClients); g.Usage != 9 || g.Level != limits.LevelWarning {
		t.Fatalf("the server's count: %+v", g)
	}
	clk.Advance(5 * time.Second)
	if g := gauge(t, m, limits.ConcurrentClients); g.Usage != 1 || g.Peak != 9 {
		t.Fatalf("stale server count: %+v", g)
	}
}

func TestMatchReason(t *testing.T) {
	for reason, want := range map[string]limits.Name{
		"ChannelRateLimitReached: Too many channels":                        limits.ChannelsPerConnection,
		"ClientJoinRateLimitReached: Too many joins per second":             limits.JoinsPerSecond,
		"realtime: connection refused: HTTP 429: Too many joins per second": limits.JoinsPerSecond,
		"ConnectionRateLimitReached: Too many connected users":              limits.ConcurrentClients,
		"Too many messages per second":                                      limits.MessagesPerSecond,
		"You have exceeded your rate limit":                                 limits.MessagesPerSecond,
		"Too many presence messages per second":                             limits.PresenceEventsPerSecond,
		"Client presence rate limit exceeded":                               limits.PresenceEventsPerSecond,
		"Track message size exceeded":                                       limits.PayloadSize,
		`"payload_size_exceeded"`:                                           limits.PayloadSize,
		"Error 413: Payload Too Large":                                      limits.PostgresChangePayload,
	} {
		got, server, ok := limits.MatchReason(reason)
		if !ok || got != want || !strings.Contains(reason, server) || strings.HasPrefix(server, "realtime:") || strings.ContainsAny(server, ")\"") {
			t.Errorf("%q: %q %q %v, want %q", reason, got, server, ok, want)
		}
	}
}

func TestPlansAndOverrides(t *testing.T) {
	free, err := limits.Plan("free")
	if err != nil {
		t.Fatal(err)
	}
	if v, src := free.Get(limits.PayloadSize); v != 256_000 || src != "plan free" {
		t.Fatalf("free payload: %d %q", v, src)
	}
	if v, _ := free.Get(limits.PresenceEventsPerSecond); v != 20 {
		t.Fatalf("free presence: %d", v)
	}
	pro, _ := limits.Plan("Pro")
	if v, _ := pro.Get(limits.ConcurrentClients); v != 500 {
		t.Fatalf("pro clients: %d", v)
	}
	if _, err := limits.Plan("gold"); !errors.Is(err, limits.ErrInvalid) || !strings.Contains(err.Error(), "pro-no-cap") {
		t.Fatalf("unknown plan: %v", err)
	}
	l, err := limits.Override(free, []string{"max_channels_per_client=50", "payload-size=off", "joins_per_second=1_000"})
	if err != nil {
		t.Fatal(err)
	}
	if v, src := l.Get(limits.ChannelsPerConnection); v != 50 || src != "--limit" {
		t.Fatalf("override: %d %q", v, src)
	}
	if v, src := l.Get(limits.PayloadSize); v != 0 || src != "--limit" {
		t.Fatalf("off: %d %q", v, src)
	}
	// An override set off wins over the server's value too.
	srv := limits.ServerReport{Configured: limits.ServerLimits{MaxPayloadSizeInKB: 64, MaxChannelsPerClient: 7}}.Limits()
	merged := free.Merge(srv).Merge(l)
	if v, src := merged.Get(limits.PayloadSize); v != 0 || src != "--limit" {
		t.Fatalf("off over the server: %d %q", v, src)
	}
	if v, src := free.Merge(srv).Get(limits.ChannelsPerConnection); v != 7 || src != "server" {
		t.Fatalf("server over plan: %d %q", v, src)
	}
	if v, src := free.Merge(srv).Get(limits.PostgresChangePayload); v != 1_024_000 || src != "plan free" {
		t.Fatalf("the server says nothing of change payloads: %d %q", v, src)
	}
	if v, src := free.Merge(limits.ServerReport{Off: true}.Limits()).Get(limits.ConcurrentClients); v != 0 || src != "server" {
		t.Fatalf("limits off: %d %q", v, src)
	}
	if v, _ := l.Get(limits.JoinsPerSecond); v != 1000 {
		t.Fatalf("1_000: %d", v)
	}
	for _, bad := range []string{"", "x", "channels=5", "joins_per_second=", "joins_per_second=-1", "joins_per_second=0", "joins_per_second=1.5", "joins_per_second=99999999999"} {
		if _, _, err := limits.ParseOverride(bad); !errors.Is(err, limits.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for s, want := range map[string]float64{"80%": 80, "12.5": 12.5, " 100 % ": 100} {
		if v, err := limits.ParsePercent(s); err != nil || v != want {
			t.Errorf("%q: %v %v", s, v, err)
		}
	}
	for _, bad := range []string{"", "%", "-1%", "NaN", "Inf", "2000%"} {
		if _, err := limits.ParsePercent(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReportJSON(t *testing.T) {
	m, _ := meter(t, "channels_per_connection=10")
	m.Set(limits.ChannelsPerConnection, 9)
	m.ServerError(time.Time{}, "ChannelRateLimitReached: Too many channels", "broadcast:a:1")
	if m.Report().Throttle != nil {
		t.Fatal("a throttle before one was set")
	}
	m.SetThrottle(registry.Throttle{Rate: 5, Burst: 1, Waiting: 3})
	b, err := json.Marshal(m.Report())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"type":"limits","time":`) || strings.Contains(string(b), `"hit_in_ms"`) {
		t.Fatalf("line: %s", b)
	}
	r, err := limits.DecodeReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Gauges) != limits.NumNames {
		t.Fatalf("%d gauges", len(r.Gauges))
	}
	g, _ := r.Gauge(limits.ChannelsPerConnection)
	if g.Usage != 9 || g.Limit != 10 || g.Level != limits.LevelError || g.Error == nil || g.Error.Code != "ChannelRateLimitReached" {
		t.Fatalf("decoded: %+v", g)
	}
	if r.Throttle == nil || r.Throttle.Waiting != 3 || r.Throttle.Rate != 5 {
		t.Fatalf("throttle: %+v", r.Throttle)
	}
	if _, err := limits.DecodeReport([]byte(`{"type":"stats"}`)); err == nil {
		t.Fatal("a stats line decoded as limits")
	}
}

func FuzzParseOverride(f *testing.F) {
	for _, s := range []string{"channels_per_connection=50", "max_payload_size_in_kb=256", "x=off", "=", "a=b=c", "joins_per_second=1_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, v, err := limits.ParseOverride(s)
		if err != nil {
			if !errors.Is(err, limits.ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if v < 0 || limits.KindOf(n) == "" {
			t.Fatalf("%q: %q=%d", s, n, v)
		}
		l := limits.Limits{}.Set(n, v, "--limit")
		if got, _ := l.Get(n); got != v {
			t.Fatalf("%q: set %d, got %d", s, v, got)
		}
	})
}

func FuzzParsePercent(f *testing.F) {
	for _, s := range []string{"80%", "0", "12.5 %", "1e2", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := limits.ParsePercent(s)
		if err == nil && (v < 0 || v > 1000 || v != v) {
			t.Fatalf("%q: %v", s, v)
		}
	})
}

func FuzzMatchReason(f *testing.F) {
	for _, s := range []string{"ChannelRateLimitReached: Too many channels", "CHANNEL_ERROR: socket closed (Too many joins per second)", `"payload_size_exceeded"`, "Error 413: Payload Too Large", "ÀTOO MANY CHANNELS"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, reason, ok := limits.MatchReason(s)
		if !ok {
			return
		}
		if limits.KindOf(n) == "" || reason == "" || !strings.Contains(s, reason) {
			t.Fatalf("%q: %q %q", s, n, reason)
		}
	})
}

// TestNoForecastFromNoise: no forecast from seconds before the meter
// started, from an idle gauge, or beyond MaxForecast.
func TestNoForecastFromNoise(t *testing.T) {
	m, clk := meter(t, "joins_per_second=100", "concurrent_clients=1000000")
	m.Add(limits.JoinsPerSecond, 5)
	if g := gauge(t, m, limits.JoinsPerSecond); g.Trend != 0 || g.HitIn != nil {
		t.Fatalf("first second: %+v", g)
	}
	clk.Advance(1500 * time.Millisecond)
	if g := gauge(t, m, limits.JoinsPerSecond); g.Usage != 0 || g.HitIn != nil {
		t.Fatalf("idle: %+v (hit in %v)", g, g.HitIn)
	}
	// One more client a second: a million is days away.
	for i := 1; i <= 5; i++ {
		m.Set(limits.ConcurrentClients, i)
		clk.Advance(time.Second)
	}
	if g := gauge(t, m, limits.ConcurrentClients); g.Trend <= 0 || g.HitIn != nil {
		t.Fatalf("far away: %+v (hit in %v)", g, g.HitIn)
	}
}
