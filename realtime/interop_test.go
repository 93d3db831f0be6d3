package realtime

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

// Interop: this client and realtime-js 2.119.0 (in Node, through
// jsharness) share a channel on the embedded server: they see each
// other's presence and exchange broadcasts, JSON and binary, with both
// serializers on the Go side.
func TestInteropWithRealtimeJS(t *testing.T) {
	for _, v := range []protocol.Version{protocol.V2, protocol.V1} {
		t.Run("go-"+v.String(), func(t *testing.T) { interopWithJS(t, v) })
	}
}

func interopWithJS(t *testing.T, vsn protocol.Version) {
	srv := servertest.New(t)
	d := jsharness.Start(t)
	t.Cleanup(func() {
		for _, e := range d.Events(jsharness.Match{Kind: jsharness.KindUncaught}) {
			t.Errorf("realtime-js threw: %s", e.Raw)
		}
	})
	const wait = 10 * time.Second
	js := d.NewClient(t, "js", jsharness.Endpoint(srv.URL), jsharness.ClientOptions{APIKey: srv.AnonKey()})
	jch := js.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "js"}}).
		On(t, "broadcast", map[string]any{"event": "*"}).
		On(t, "presence", map[string]any{"event": "*"})
	mark := d.Mark()
	jch.Subscribe(t, 0)
	jch.AwaitStatus(t, wait, mark, "SUBSCRIBED")

	s := dial(t, srv, fast, func(o *Options) { o.Vsn = vsn })
	gch, grec := channel(t, s, "room1", ChannelConfig{Presence: PresenceConfig{Key: "gopher", Enabled: true}})
	if err := gch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	// Go tracks: realtime-js sees gopher join with the payload.
	mark = d.Mark()
	if err := gch.Track(ctxT(t), json.RawMessage(`{"lang":"go"}`)); err != nil {
		t.Fatal(err)
	}
	join := jch.Await(t, wait, jsharness.Match{Kind: jsharness.KindPresence, Event: "join", After: mark})
	var jp struct {
		Key          string           `json:"key"`
		NewPresences []map[string]any `json:"newPresences"`
	}
	if err := join.Decode(&jp); err != nil || jp.Key != "gopher" || len(jp.NewPresences) != 1 || jp.NewPresences[0]["lang"] != "go" {
		t.Fatalf("realtime-js join callback %s", join.Payload)
	}
	if st := jch.PresenceState(t); len(st["gopher"]) != 1 || st["gopher"][0]["lang"] != "go" {
		t.Fatalf("realtime-js presenceState %v", st)
	}

	// realtime-js tracks: Go sees js join, with the same presence_ref.
	if res := jch.Track(t, map[string]any{"lang": "js"}); res != "ok" {
		t.Fatalf("js track: %s", res)
	}
	eventually(t, "Go to see js", func() bool { return len(gch.Presence().Get("js")) == 1 })
	jsMeta := gch.Presence().Get("js")[0]
	if string(jsMeta.UserFields()) != `{"lang":"js"}` {
		t.Fatalf("js meta at Go: %s", jsMeta.Raw)
	}
	if st := jch.PresenceState(t); len(st["js"]) != 1 || st["js"][0].Ref() != jsMeta.Ref {
		t.Fatalf("presence_ref at js %v, at Go %s", st["js"], jsMeta.Ref)
	}
	grec.wait(t, "Go's join event for js", func(e []Event) bool {
		for _, p := range presenceEvents(e, PresenceJoin) {
			if p.Key == "js" {
				return true
			}
		}
		return false
	})

	// Go broadcasts JSON: realtime-js gets exactly the payload.
	mark = d.Mark()
	if err := gch.Send(ctxT(t), "from-go", json.RawMessage(`{"n":1,"s":"é"}`)); err != nil {
		t.Fatal(err)
	}
	got := jch.Await(t, wait, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "from-go", After: mark})
	var bp struct {
		Type    string         `json:"type"`
		Event   string         `json:"event"`
		Payload map[string]any `json:"payload"`
	}
	if err := got.Decode(&bp); err != nil || bp.Type != "broadcast" || bp.Payload["n"] != 1.0 || bp.Payload["s"] != "é" {
		t.Fatalf("realtime-js got %s", got.Payload)
	}
	// realtime-js broadcasts: Go gets it.
	if res := jch.Broadcast(t, "from-js", map[string]any{"y": 2}); res != "ok" {
		t.Fatalf("js send: %s", res)
	}
	evs := grec.wait(t, "the js broadcast", func(e []Event) bool { return len(broadcasts(e)) >= 1 })
	if b := broadcasts(evs)[0]; b.Event != "from-js" || string(b.Payload) != `{"y":2}` {
		t.Fatalf("Go got %+v", b)
	}
	if vsn == protocol.V2 {
		// Binary both ways.
		mark = d.Mark()
		if err := gch.SendBinary(ctxT(t), "bin-go", []byte{1, 2, 3, 0xff}); err != nil {
			t.Fatal(err)
		}
		got = jch.Await(t, wait, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "bin-go", After: mark})
		var raw struct {
			Payload json.RawMessage `json:"payload"`
		}
		got.Decode(&raw)
		if b, err := jsharness.DecodeBase64(raw.Payload); err != nil || !bytes.Equal(b, []byte{1, 2, 3, 0xff}) {
			t.Fatalf("realtime-js binary payload %s (%v)", raw.Payload, err)
		}
		if res := jch.Send(t, map[string]any{"type": "broadcast", "event": "bin-js", "payload": jsharness.Base64([]byte{9, 8, 7})}); res != "ok" {
			t.Fatalf("js binary send: %s", res)
		}
		evs = grec.wait(t, "the js binary broadcast", func(e []Event) bool { return len(broadcasts(e)) >= 2 })
		if b := broadcasts(evs)[1]; b.Event != "bin-js" || !b.Binary || !bytes.Equal(b.Payload, []byte{9, 8, 7}) {
			t.Fatalf("Go got %+v", b)
		}
	}
	// Go leaves: realtime-js sees gopher leave.
	mark = d.Mark()
	if err := gch.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	leave := jch.Await(t, wait, jsharness.Match{Kind: jsharness.KindPresence, Event: "leave", After: mark})
	if err := leave.Decode(&jp); err != nil || jp.Key != "gopher" {
		t.Fatalf("realtime-js leave callback %s", leave.Payload)
	}
}
