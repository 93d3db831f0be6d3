package main

import (
	"context"
	"regexp"
	"testing"

	"rtm/realtime/server/pgcdc/pgcluster"
)

// startPG starts a throwaway PostgreSQL cluster for the test (required:
// under CI=true a missing PostgreSQL fails the test), stopped at its end.
func startPG(ctx context.Context, t *testing.T) *pgcluster.Cluster {
	t.Helper()
	require(t, pgcluster.Available())
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Stop() })
	return cl
}

// serveDB runs `rtm serve --db db` with args on a free port until the
// test ends, and returns its API URL and anon key once its banner is
// out; stop ends it and fails the test unless it exited 0.
func serveDB(ctx context.Context, t *testing.T, db string, args ...string) (url, anon string, stop func()) {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	var out lockedBuf
	wait := background(sctx, &out, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "error", "--db", db}, args...)...)
	banner := regexp.MustCompile(`API URL: (http://\S+)\n(?s:.*)anon key: (\S+)\n`)
	waitFor(t, "the banner", func() bool { return banner.MatchString(out.String()) })
	m := banner.FindStringSubmatch(out.String())
	return m[1], m[2], func() {
		t.Helper()
		cancel()
		if code, errs := wait(); code != 0 {
			t.Errorf("serve exited %d: %s", code, errs)
		}
	}
}
