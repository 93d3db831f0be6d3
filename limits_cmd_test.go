package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/registry/limits"
)

// TestWatchLimitsLine: `rtm watch --plan free --limit ...` against the
// embedded server writes limits lines: the embedded server's configured
// limits (read through its Go API) over the plan's, the override over
// both; bad --plan and --limit values exit 2 naming the flag.
func TestWatchLimitsLine(t *testing.T) {
	defer goleak.VerifyNone(t)
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, errs := rtmRun(ctx, "watch", "--join", "broadcast:room:1", "--duration", "2500ms",
		"--plan", "free", "--limit", "joins_per_second=40", "--types", "limits")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var reports []limits.Report
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		r, err := limits.DecodeReport([]byte(line))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		reports = append(reports, r)
	}
	if len(reports) < 2 {
		t.Fatalf("%d limits lines in 2.5 s\n%s", len(reports), out)
	}
	r := reports[len(reports)-1]
	for name, want := range map[limits.Name]struct {
		limit  float64
		source string
	}{
		limits.ChannelsPerConnection: {100, "server"},
		limits.PayloadSize:           {3_000_000, "server"},
		limits.JoinsPerSecond:        {40, "--limit"},
		limits.PostgresChangePayload: {1_024_000, "plan free"},
	} {
		g, ok := r.Gauge(name)
		if !ok || g.Limit != want.limit || g.Source != want.source {
			t.Errorf("%s: %+v, want limit %v from %q", name, g, want.limit, want.source)
		}
	}
	if g, _ := r.Gauge(limits.ChannelsPerConnection); g.Usage != 1 || g.Level != limits.LevelOK {
		t.Errorf("one channel joined: %+v", g)
	}
	if g, _ := r.Gauge(limits.ConcurrentClients); g.Usage != 1 {
		t.Errorf("one socket: %+v", g)
	}

	for _, bad := range [][]string{{"--plan", "gold"}, {"--limit", "channels=5"}, {"--limit", "joins_per_second=-3"}} {
		code, _, errs := rtmRun(ctx, append([]string{"watch", "--join", "broadcast:room:1"}, bad...)...)
		if code != 2 || !strings.Contains(errs, bad[0]) {
			t.Errorf("%v: exit %d, %s", bad, code, errs)
		}
	}
}
