package scenario_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/registry/headless/scenario"
)

// nodeOnPath puts the Node 22 of testdata/realtimejs first on PATH, as
// a user's PATH has it for the scenario's `node apps/reconnect.mjs`. A
// missing Node skips the test, or fails it when CI is set.
func nodeOnPath(t *testing.T) {
	node := jsharness.Install(t)
	t.Setenv("PATH", filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// runApp runs app-reconnect.yaml, its exec steps' dirs resolved against
// testdata/scenarios.
func runApp(t *testing.T) scenario.Report {
	t.Helper()
	sc := parseFile(t, filepath.Join(dir, "app-reconnect.yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := scenario.Run(ctx, sc, scenario.Options{Env: testEnv(t), Dir: dir})
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report:\n%s", b)
	return rep
}

// TestSupabaseJSAppReconnects is the CI check of an app: a supabase-js
// app under Node 22, behind the scenario's proxy, rejoins after every
// fault (the scenario passes); with its reconnect broken
// (BROKEN_RECONNECT=1: it removes its channel at the first error) the
// run fails at the rejoin, and the report says what the app did.
func TestSupabaseJSAppReconnects(t *testing.T) {
	nodeOnPath(t)
	t.Run("working", func(t *testing.T) {
		rep := runApp(t)
		if !rep.OK || rep.Failed != 0 || rep.Skipped != 0 {
			t.Fatalf("the app's reconnect works: the run must pass; first failure %+v", rep.FirstFailure)
		}
		if len(rep.Execs) != 1 {
			t.Fatalf("execs %+v", rep.Execs)
		}
		x := rep.Execs[0]
		if x.Name != "app" || x.ExitCode != 0 || x.Stopped != "" || !strings.Contains(x.Output, "status SUBSCRIBED") ||
			!strings.Contains(x.Output, "status CHANNEL_ERROR") || !strings.Contains(x.Output, "broadcast ping") || !strings.Contains(x.Output, "\nstop\n") {
			t.Fatalf("the app's exec: %+v", x)
		}
	})
	t.Run("broken", func(t *testing.T) {
		t.Setenv("BROKEN_RECONNECT", "1")
		rep := runApp(t)
		f := rep.FirstFailure
		if rep.OK || rep.Failed != 1 || f == nil {
			t.Fatalf("a broken reconnect must fail the run: %+v", rep)
		}
		if f.Line != 39 || f.Step != "expect app_attempts" || !strings.Contains(f.Expected, "at least 1 rejoins of the app's realtime:presence:room:1 within 10s") ||
			!strings.Contains(f.Observed, "0 rejoins (1 joins)") {
			t.Fatalf("first failure %+v", f)
		}
		if x := rep.Execs[0]; x.Stopped != "end of run" || !strings.Contains(x.Output, "gave up") {
			t.Fatalf("the app's exec: %+v", x)
		}
	})
}
