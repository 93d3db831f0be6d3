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

// A second channel instance of a held topic: phoenix.js (and
// realtime-js) leave the first join before they send the second, so the
// topic is not held twice (no duplicate_topic), and the first join's
// phx_close, modelled before or after the second join (the two
// directions are relayed apart), leaves the channel joined; a phx_error
// of the old join is ignored too, as the app ignores it.
func TestLeaveThenJoinAgain(t *testing.T) {
	for _, closeFirst := range []bool{false, true} {
		m := apps.New(apps.Options{})
		sub := m.Subscribe(0)
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		m.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=2.0.0", Opened: t0})
		feed := func(dir proxy.Direction, frame string) {
			m.Frame(proxy.Frame{Conn: 1, Dir: dir, Time: t0, Data: []byte(frame)})
		}
		feed(proxy.FromApp, `["1","1","realtime:r","phx_join",{}]`)
		feed(proxy.ToApp, `["1","1","realtime:r","phx_reply",{"status":"ok","response":{}}]`)
		feed(proxy.FromApp, `["1","2","realtime:r","phx_leave",{}]`)
		join := func() { feed(proxy.FromApp, `["3","3","realtime:r","phx_join",{}]`) }
		if !closeFirst {
			join()
		}
		feed(proxy.ToApp, `["1","2","realtime:r","phx_reply",{"status":"ok","response":{}}]`)
		feed(proxy.ToApp, `["1","1","realtime:r","phx_close",{}]`)
		if closeFirst {
			if st := m.Snapshot().Sockets[0].Channels[0].Status; st != apps.StatusLeft {
				t.Errorf("close first: %s after the old join's phx_close, want left", st)
			}
			join()
		}
		feed(proxy.ToApp, `["3","3","realtime:r","phx_reply",{"status":"ok","response":{}}]`)
		feed(proxy.ToApp, `["1","1","realtime:r","phx_error",{}]`)
		snap := m.Snapshot()
		ch := snap.Sockets[0].Channels[0]
		if ch.Status != apps.StatusJoined || len(ch.Attempts) != 2 || ch.Attempts[1].Outcome != "ok" || len(snap.Flags) != 0 {
			t.Errorf("close first %v: %s, attempts %+v, flags %+v", closeFirst, ch.Status, ch.Attempts, snap.Flags)
		}
		for _, ev := range drain(sub) {
			if ev.Status == apps.StatusClosed || ev.Status == apps.StatusErrored {
				t.Errorf("close first %v: %s %q on the way", closeFirst, ev.Status, ev.Reason)
			}
		}
		sub.Close()
	}
}
