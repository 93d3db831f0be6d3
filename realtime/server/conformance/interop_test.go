package conformance

import (
	"encoding/json"
	"testing"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

// Interop: a realtime-js client and a bare Go websocket client speaking
// rtm/realtime/protocol share a channel and see each other's broadcasts
// (JSON and binary) and presence, with both Go serializers.
func TestInteropGoAndRealtimeJS(t *testing.T) {
	for _, v := range []protocol.Version{protocol.V2, protocol.V1} {
		t.Run("go-"+v.String(), func(t *testing.T) { interop(t, v) })
	}
}

func interop(t *testing.T, v protocol.Version) {
	e := newEnv(t)
	topic := "realtime:room1"
	js := e.client("js", jsharness.ClientOptions{})
	ch := js.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "js"}}).
		On(t, "broadcast", map[string]any{"event": "*"}).
		On(t, "presence", map[string]any{"event": "*"})
	e.subscribe(ch)

	goc := dialRaw(t, e.srv.WSURL, e.srv.AnonKey(), v)
	mark := goc.mark()
	jr, reply := goc.join(topic, `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"gopher","enabled":true},"postgres_changes":[],"private":false}}`)
	if reply.Status != "ok" {
		t.Fatalf("Go join: %s %s", reply.Status, reply.Response)
	}
	goc.await(quick, mark, "presence_state", func(m protocol.Message) bool { return m.Event == protocol.EventPresenceState })

	// Go tracks; realtime-js sees gopher join.
	mark = goc.mark()
	dmark := e.d.Mark()
	ref := goc.nextRef()
	goc.send(protocol.Message{JoinRef: jr, Ref: ref, Topic: topic, Event: protocol.EventPresence,
		Payload: json.RawMessage(`{"type":"presence","event":"track","payload":{"lang":"go"}}`)})
	f := goc.await(quick, mark, "track reply", func(m protocol.Message) bool { return m.Event == protocol.EventReply && m.Ref == ref })
	if r, err := protocol.ParseReply(f.Msg.Payload); err != nil || r.Status != "ok" {
		t.Errorf("Go track reply %s", f.Data)
	}
	join := ch.Await(t, quick, match{Kind: kPresence, Event: "join", After: dmark})
	var jp presenceCallback
	join.Decode(&jp)
	if jp.Key != "gopher" || len(jp.NewPresences) != 1 || jp.NewPresences[0]["lang"] != "go" {
		t.Errorf("realtime-js join callback %s", join.Payload)
	}
	ch.Await(t, quick, match{Kind: kPresence, Event: "sync", After: join.Seq})
	if st := ch.PresenceState(t); len(st["gopher"]) != 1 || st["gopher"][0]["lang"] != "go" {
		t.Errorf("realtime-js presenceState %v", st)
	}

	// realtime-js tracks; Go sees a diff joining js.
	mark = goc.mark()
	if res := ch.Track(t, map[string]any{"lang": "js"}); res != "ok" {
		t.Errorf("js track: %s", res)
	}
	f = goc.await(quick, mark, "presence_diff joining js", func(m protocol.Message) bool {
		if m.Event != protocol.EventPresenceDiff {
			return false
		}
		var d protocol.PresenceDiff
		return json.Unmarshal(m.Payload, &d) == nil && len(d.Joins["js"].Metas) == 1
	})
	var diff protocol.PresenceDiff
	json.Unmarshal(f.Msg.Payload, &diff)
	wantJSON(t, "js meta seen by Go", diff.Joins["js"].Metas[0].UserFields(), `{"lang":"js"}`)

	// Go broadcasts as JSON text, then (V2) as a binary kind-3 frame.
	dmark = e.d.Mark()
	goc.send(protocol.Message{JoinRef: jr, Ref: goc.nextRef(), Topic: topic, Event: protocol.EventBroadcast,
		Payload: json.RawMessage(`{"type":"broadcast","event":"from-go","payload":{"n":1}}`)})
	got := ch.Await(t, quick, match{Kind: kBroadcast, Event: "from-go", After: dmark})
	wantJSON(t, "Go text broadcast at realtime-js", got.Payload, `{"type":"broadcast","event":"from-go","payload":{"n":1}}`)
	if v == protocol.V2 {
		dmark = e.d.Mark()
		goc.send(protocol.Message{JoinRef: jr, Ref: goc.nextRef(), Topic: topic, Event: protocol.EventBroadcast,
			Broadcast: &protocol.Broadcast{Event: "from-go-bin", Payload: []byte(`{"n":2}`)}})
		fr, _ := e.frame(quick, match{Client: "js", Dir: "in", Where: isBroadcast("from-go-bin"), After: dmark})
		if want := kind4(topic, "from-go-bin", false, []byte(`{"n":2}`)); string(fr.Bytes()) != string(want) {
			t.Errorf("Go kind-3 broadcast reached realtime-js as %s, want kind-4 %x", fr, want)
		}
		got = ch.Await(t, quick, match{Kind: kBroadcast, Event: "from-go-bin", After: dmark})
		wantJSON(t, "Go binary broadcast at realtime-js", got.Payload, `{"type":"broadcast","event":"from-go-bin","payload":{"n":2}}`)
	}

	// realtime-js broadcasts (kind 3); Go receives it (kind 4 under V2,
	// JSON under V1).
	mark = goc.mark()
	if res := ch.Broadcast(t, "from-js", map[string]any{"n": 3}); res != "ok" {
		t.Errorf("js send: %s", res)
	}
	f = goc.await(quick, mark, "broadcast from js", func(m protocol.Message) bool {
		b, err := m.UserBroadcast()
		return m.Event == protocol.EventBroadcast && err == nil && b.Event == "from-js"
	})
	b, _ := f.Msg.UserBroadcast()
	if f.Binary != (v == protocol.V2) || f.Msg.Topic != topic || b.Binary {
		t.Errorf("Go received %q (binary %v)", f.Data, f.Binary)
	}
	wantJSON(t, "js broadcast at Go", b.Payload, `{"n":3}`)

	// Go leaves; realtime-js sees gopher leave.
	dmark = e.d.Mark()
	mark = goc.mark()
	leaveRef := goc.nextRef()
	goc.send(protocol.Message{JoinRef: jr, Ref: leaveRef, Topic: topic, Event: protocol.EventLeave, Payload: json.RawMessage(`{}`)})
	goc.await(quick, mark, "leave reply", func(m protocol.Message) bool { return m.Event == protocol.EventReply && m.Ref == leaveRef })
	goc.await(quick, mark, "phx_close", func(m protocol.Message) bool { return m.Event == protocol.EventClose })
	leave := ch.Await(t, quick, match{Kind: kPresence, Event: "leave", After: dmark})
	var lp presenceCallback
	leave.Decode(&lp)
	if lp.Key != "gopher" {
		t.Errorf("leave callback %s", leave.Payload)
	}
	ch.Await(t, quick, match{Kind: kPresence, Event: "sync", After: leave.Seq})
	if st := ch.PresenceState(t); len(st) != 1 || st["js"] == nil {
		t.Errorf("presenceState after Go left: %v", st)
	}
}
