package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
	"rtm/registry/limits"
)

// fakeLimits is a [Limits] with a fixed report; reads counts Report
// calls.
type fakeLimits struct {
	r     limits.Report
	reads int
}

func (f *fakeLimits) Report() limits.Report { f.reads++; return f.r }

// sampleLimits is a report at t0: channels per connection at 85 % of
// the server's 20 (a warning, hitting it in 42s), joins at the plan's
// limit with the server's refusal, messages at 30 % with the manager's
// throttle holding some back, presence off, payloads small, clients
// unknown.
func sampleLimits() limits.Report {
	d := func(v time.Duration) *time.Duration { return &v }
	g := func(n limits.Name, usage, peak, limit float64, src string, lvl limits.Level) limits.Gauge {
		p := 0.0
		if limit > 0 {
			p = usage / limit * 100
		}
		return limits.Gauge{Name: n, Kind: limits.KindOf(n), Usage: usage, Peak: peak, Limit: limit, Source: src, Percent: p, Level: lvl}
	}
	chans := g(limits.ChannelsPerConnection, 17, 17, 20, "server", limits.LevelWarning)
	chans.Trend, chans.HitIn = 0.07, d(42*time.Second)
	joins := g(limits.JoinsPerSecond, 20, 21, 20, "plan free", limits.LevelError)
	joins.HitIn = d(0)
	joins.Error = &limits.LimitError{Time: t0.Add(-3 * time.Second), Reason: "ClientJoinRateLimitReached: Too many joins per second",
		Code: "ClientJoinRateLimitReached", Channel: "broadcast:room:21"}
	return limits.Report{Time: t0, Gauges: []limits.Gauge{
		g(limits.ConcurrentClients, 1, 1, 0, "", limits.LevelNone),
		chans, joins,
		g(limits.MessagesPerSecond, 30, 44, 100, "--limit", limits.LevelOK),
		g(limits.PresenceEventsPerSecond, 2, 5, 0, "server", limits.LevelNone),
		g(limits.PayloadSize, 1234, 1234, 256_000, "plan free", limits.LevelOK),
		g(limits.PostgresChangePayload, 0, 0, 1_024_000, "plan free", limits.LevelOK),
	}, Throttle: &registry.Throttle{Rate: 10, Burst: 5, Waiting: 3, Debouncers: 1, Pending: 2, Replaced: 14}}
}

// withLimits gives the model a fake meter of r, read now.
func withLimits(m *Model, r limits.Report) *fakeLimits {
	f := &fakeLimits{r: r}
	m.opts.Limits = f
	m.refreshLimits()
	return f
}

// TestLimitsView: L opens the view with a row per limit (usage, peak,
// limit, source, forecast), the server's error under its gauge, the
// throttle under messages per second, the note on unknown limits; the
// levels take the theme's colours; esc closes it.
func TestLimitsView(t *testing.T) {
	m, _ := newTestModel(t, 160, 45)
	withLimits(m, sampleLimits())
	keys(m, "L")
	if !isTop[*limitsView](m) {
		t.Fatal("L did not open the Limits view")
	}
	s := screen(m)
	mustContain(t, s, "Limits", "LIMIT", "HITS IN",
		"channels_per_connection", "17", "85%", "20", "server", "42s",
		"joins_per_second", "20/s", "21/s", "100%", "plan free", "now",
		"✗ ClientJoinRateLimitReached: Too many joins per second · broadcast:room:21 · 3s ago",
		"└ rtm's rate limit 10.0/s (burst 5) 3 waiting · debounce 2 pending, 14 replaced",
		"messages_per_second", "--limit", "presence_events_per_second", "off",
		"1.2 KB", "256 KB", "1024 KB",
		"1 limit is unknown: give the project's plan (--plan free|pro|pro-no-cap|team|enterprise) or --limit NAME=N.",
		// The header's gauge: the worst one, the error.
		"limits 100% joins/s")
	// Each row in its level's colour.
	raw := m.Render()
	for _, c := range []struct {
		what, text string
		paint      func() string
	}{
		{"warning", "channels_per_connection", func() string { return m.st.Warn.Render("channels_per_connection") }},
		{"error", "joins_per_second", func() string { return m.st.Error.Render("joins_per_second") }},
		{"error reason", "✗ ClientJoinRateLimitReached", func() string { return m.st.Error.Render("  ✗ ClientJoinRateLimitReached") }},
	} {
		if !strings.Contains(raw, strings.TrimSuffix(c.paint(), "\x1b[m")) {
			t.Errorf("%s: %q is not painted %q", c.what, c.text, c.paint())
		}
	}
	keys(m, "esc")
	if isTop[*limitsView](m) {
		t.Fatal("esc did not close the Limits view")
	}
	keys(m, ":")
	typeText(m, "limits")
	keys(m, "enter")
	if !isTop[*limitsView](m) {
		t.Fatal(":limits did not open the Limits view")
	}
}

// TestLimitsNarrow: at 80 columns the short names and every figure fit
// on a row each.
func TestLimitsNarrow(t *testing.T) {
	m, _ := newTestModel(t, 80, 24)
	withLimits(m, sampleLimits())
	keys(m, "L")
	s := screen(m)
	mustContain(t, s, "channels/sock", "85%", "42s", "joins/s", "100%", "✗ ClientJoinRateLimitReached")
	for i, l := range strings.Split(s, "\n") {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("line %d is %d wide: %q", i, w, l)
		}
	}
}

// TestLimitsTick: the meter is read on the clock's tick (the header's
// gauge follows it), and the view shows the new report.
func TestLimitsTick(t *testing.T) {
	m, _ := newTestModel(t, 160, 45)
	f := withLimits(m, limits.Report{Time: t0})
	mustNotContain(t, headerOf(screen(m)), "limits")
	reads := f.reads
	r := sampleLimits()
	r.Gauges[2].Level, r.Gauges[2].Error, r.Gauges[2].Usage, r.Gauges[2].Percent = limits.LevelOK, nil, 5, 25
	f.r = r
	m.Update(tickMsg{t: t0.Add(time.Second), gen: m.tickGen})
	if f.reads != reads+1 {
		t.Fatalf("reads %d, want %d", f.reads, reads+1)
	}
	// The worst is now the warning.
	mustContain(t, screen(m), "limits 85% channels/sock")
	keys(m, "L")
	mustContain(t, screen(m), "channels_per_connection", "42s")
	mustNotContain(t, screen(m), "ClientJoinRateLimitReached")
}

// TestLimitsOff: without a meter the view says so and the header has no
// gauge.
func TestLimitsOff(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "L")
	s := screen(m)
	mustContain(t, s, "The limits meter is off")
	mustNotContain(t, headerOf(s), "limits")
}

// TestWorstGauge: an error beats a higher percentage; no limit, no
// gauge.
func TestWorstGauge(t *testing.T) {
	if _, ok := worstGauge(limits.Report{Gauges: []limits.Gauge{{Name: limits.ConcurrentClients, Usage: 5}}}); ok {
		t.Fatal("a gauge without a limit is the worst")
	}
	g, ok := worstGauge(limits.Report{Gauges: []limits.Gauge{
		{Name: limits.ConcurrentClients, Limit: 10, Percent: 150, Level: limits.LevelWarning},
		{Name: limits.PayloadSize, Limit: 10, Percent: 10, Level: limits.LevelError},
		{Name: limits.JoinsPerSecond, Limit: 10, Percent: 90, Level: limits.LevelWarning},
	}})
	if !ok || g.Name != limits.PayloadSize {
		t.Fatalf("worst %+v", g)
	}
	// A server error on a limit rtm does not know still shows.
	m, _ := newTestModel(t, 120, 40)
	withLimits(m, limits.Report{Gauges: []limits.Gauge{{Name: limits.ConcurrentClients, Kind: limits.KindCount, Level: limits.LevelError,
		Error: &limits.LimitError{Time: t0, Reason: "Too many connected users"}}}})
	mustContain(t, headerOf(screen(m)), "limits ✗ clients")
}

// headerOf is a screen's header: its first two lines.
func headerOf(s string) string {
	l := strings.SplitN(s, "\n", 3)
	return strings.Join(l[:min(2, len(l))], "\n")
}
