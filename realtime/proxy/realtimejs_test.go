package proxy_test

import (
	"bytes"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
)

// realtime-js (2.119.0, Node 22) through the proxy to the embedded
// server: it subscribes, receives its own broadcast, tracks presence, and
// the Observer saw every frame each way with the bytes realtime-js sent
// and received, in order.
func TestRealtimeJSThroughProxy(t *testing.T) {
	srv := servertest.New(t)
	d := jsharness.Start(t)
	for _, vsn := range []string{"2.0.0", "1.0.0"} {
		t.Run(vsn, func(t *testing.T) {
			rec := newRecorder()
			_, hs := startProxy(t, proxy.Config{Upstream: srv.URL, Observer: rec})
			name := "app-" + vsn
			cl := d.NewClient(t, name, jsharness.Endpoint(hs.URL), jsharness.ClientOptions{APIKey: srv.AnonKey(), Vsn: vsn, HeartbeatIntervalMs: 2000})
			ch := cl.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"self": true}, "presence": map[string]any{"key": "alice"}}).
				On(t, "broadcast", map[string]any{"event": "cursor"}).
				On(t, "presence", map[string]any{"event": "*"})
			mark := d.Mark()
			ch.Subscribe(t, 0)
			ch.AwaitStatus(t, 20*time.Second, mark, "SUBSCRIBED")

			mark = d.Mark()
			if res := ch.Broadcast(t, "cursor", map[string]any{"x": 1}); res != "ok" {
				t.Errorf("broadcast: %s", res)
			}
			ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "cursor", After: mark})

			mark = d.Mark()
			if res := ch.Track(t, map[string]any{"status": "online"}); res != "ok" {
				t.Errorf("track: %s", res)
			}
			ch.Await(t, quick, jsharness.Match{Kind: jsharness.KindPresence, Event: "join", After: mark})
			if st := ch.PresenceState(t); len(st["alice"]) != 1 || st["alice"][0]["status"] != "online" {
				t.Errorf("presence state %v", st)
			}

			cl.Disconnect(t, 1000, "done")
			c := rec.waitClosed(t, 1)
			if c[0].By != proxy.FromApp || c[0].Code != 1000 || c[0].Reason != "done" {
				t.Errorf("Closed %+v", c[0])
			}
			if len(rec.opens) != 1 || rec.opens[0].Header.Get("X-Client-Info") == "" && rec.opens[0].RawQuery == "" {
				t.Errorf("Open %+v", rec.opens)
			}
			for _, dir := range []struct {
				js string
				d  proxy.Direction
			}{{"out", proxy.FromApp}, {"in", proxy.ToApp}} {
				sent := d.Events(jsharness.Match{Kind: jsharness.KindFrame, Client: name, Dir: dir.js})
				seen := rec.framesOf(dir.d)
				if len(sent) < 3 || len(sent) != len(seen) {
					t.Fatalf("%s: realtime-js logged %d frames, the Observer saw %d", dir.d, len(sent), len(seen))
				}
				binary := 0
				for i, ev := range sent {
					if ev.Binary != seen[i].Binary || !bytes.Equal(ev.Bytes(), seen[i].Data) {
						t.Errorf("%s frame %d: realtime-js %s, Observer binary=%v %q", dir.d, i, ev, seen[i].Binary, seen[i].Data)
					}
					if ev.Binary {
						binary++
					}
				}
				if vsn == "2.0.0" && binary == 0 {
					t.Errorf("%s: no binary frame (the 2.0.0 broadcast)", dir.d)
				}
			}
		})
	}
}
