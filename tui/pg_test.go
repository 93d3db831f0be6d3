package tui

import (
	"context"
	"testing"

	"rtm/realtime/server/pgcdc/pgcluster"
)

// startPG starts a throwaway PostgreSQL cluster for the test, stopped at
// its end; without PostgreSQL the test fails (it skips only under
// -short).
func startPG(ctx context.Context, t *testing.T) *pgcluster.Cluster {
	t.Helper()
	if err := pgcluster.Available(); err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Stop() })
	return cl
}
