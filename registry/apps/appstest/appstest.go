// Package appstest holds test helpers for code that rebuilds an
// apps.Model (replays of app recordings).
package appstest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"rtm/registry/apps"
)

// SameSnapshot fails t unless got and want agree, their durations
// (reconnect delays, heartbeat round trips, attempt delays: measured
// live on the monotonic clock, replayed on wall times) within a
// millisecond.
func SameSnapshot(t testing.TB, got, want apps.Snapshot) {
	t.Helper()
	g, gd := durationsAside(got)
	w, wd := durationsAside(want)
	gj, err := json.MarshalIndent(g, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	wj, err := json.MarshalIndent(w, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if string(gj) != string(wj) {
		t.Fatalf("replayed snapshot differs:\n got %s\nwant %s", gj, wj)
	}
	for i := range gd {
		if d := gd[i] - wd[i]; d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("duration %d: %v, want %v", i, gd[i], wd[i])
		}
	}
}

// durationsAside zeroes the durations of s (a copy) and returns them.
func durationsAside(s apps.Snapshot) (apps.Snapshot, []time.Duration) {
	var ds []time.Duration
	s.Sockets = slices.Clone(s.Sockets)
	for i := range s.Sockets {
		so := &s.Sockets[i]
		ds = append(ds, so.ReconnectDelay, so.HeartbeatRTT)
		so.ReconnectDelay, so.HeartbeatRTT = 0, 0
		so.Channels = slices.Clone(so.Channels)
		for j := range so.Channels {
			c := &so.Channels[j]
			c.Attempts = slices.Clone(c.Attempts)
			for k := range c.Attempts {
				ds = append(ds, c.Attempts[k].Delay)
				c.Attempts[k].Delay = 0
			}
		}
	}
	return s, ds
}
