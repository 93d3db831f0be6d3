package apps_test

import (
	"testing"
	"time"

	"rtm/realtime/proxy"
	"rtm/registry/apps"
)

// The frames realtime-js sends when a join times out (the join, then a
// leave when it gives up, then the rejoin a step of its ladder later),
// and those of an expired token (the system error, then phx_close), fed
// with exact times: the rejoin's delay counts from the leave, and the
// closed channel keeps the system message's reason.
func TestRejoinAfterTimeoutAndExpiry(t *testing.T) {
	m := apps.New(apps.Options{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=1.0.0", Opened: t0})
	feed := func(dir proxy.Direction, at time.Duration, frame string) {
		m.Frame(proxy.Frame{Conn: 1, Dir: dir, Time: t0.Add(at), Data: []byte(frame)})
	}
	feed(proxy.FromApp, 0, `{"topic":"realtime:r","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`)
	feed(proxy.FromApp, 800*time.Millisecond, `{"topic":"realtime:r","event":"phx_leave","payload":{},"ref":"2","join_ref":"1"}`)
	feed(proxy.FromApp, 1800*time.Millisecond, `{"topic":"realtime:r","event":"phx_join","payload":{},"ref":"3","join_ref":"3"}`)
	feed(proxy.ToApp, 1810*time.Millisecond, `{"topic":"realtime:r","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3","join_ref":"3"}`)
	ch := m.Snapshot().Sockets[0].Channels[0]
	if len(ch.Attempts) != 2 || ch.Attempts[0].Outcome != "timeout" || ch.Attempts[1].Outcome != "ok" || ch.Status != apps.StatusJoined {
		t.Fatalf("attempts %+v status %s", ch.Attempts, ch.Status)
	}
	if d := ch.Attempts[1].Delay; d != time.Second {
		t.Errorf("rejoin delay %v, want 1s (from the leave)", d)
	}

	const expired = "Token has expired 0 seconds ago"
	feed(proxy.ToApp, 2*time.Second, `{"topic":"realtime:r","event":"system","payload":{"extension":"system","status":"error","message":"`+expired+`","channel":"r"},"ref":null,"join_ref":"3"}`)
	feed(proxy.ToApp, 2*time.Second, `{"topic":"realtime:r","event":"phx_close","payload":{},"ref":"3","join_ref":"3"}`)
	ch = m.Snapshot().Sockets[0].Channels[0]
	if ch.Status != apps.StatusClosed || ch.Reason != expired {
		t.Errorf("after expiry %s %q, want closed %q", ch.Status, ch.Reason, expired)
	}
	// A plain phx_close keeps its own reason.
	feed(proxy.FromApp, 3*time.Second, `{"topic":"realtime:r","event":"phx_join","payload":{},"ref":"4","join_ref":"4"}`)
	feed(proxy.ToApp, 3*time.Second, `{"topic":"realtime:r","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"4","join_ref":"4"}`)
	feed(proxy.ToApp, 3*time.Second, `{"topic":"realtime:r","event":"phx_close","payload":{},"ref":"4","join_ref":"4"}`)
	if ch = m.Snapshot().Sockets[0].Channels[0]; ch.Reason != "phx_close" {
		t.Errorf("after phx_close %q", ch.Reason)
	}
}
