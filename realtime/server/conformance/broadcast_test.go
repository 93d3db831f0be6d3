package conformance

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

// kind3 builds the kind-3 frame realtime-js sends for a broadcast push.
func kind3(joinRef, ref, topic, event string, binary bool, payload []byte) []byte {
	enc := byte(1)
	if binary {
		enc = 0
	}
	out := []byte{3, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)), 0, enc}
	out = append(out, joinRef...)
	out = append(out, ref...)
	out = append(out, topic...)
	out = append(out, event...)
	return append(out, payload...)
}

// kind4 builds the kind-4 frame a server sends for a user broadcast.
func kind4(topic, event string, binary bool, payload []byte) []byte {
	enc := byte(1)
	if binary {
		enc = 0
	}
	out := []byte{4, byte(len(topic)), byte(len(event)), 0, enc}
	out = append(out, topic...)
	out = append(out, event...)
	return append(out, payload...)
}

// Scenario 4: binary broadcast fan-out between realtime-js clients of both
// serializers.
func TestS04BroadcastFanOut(t *testing.T) {
	e := newEnv(t)
	cfg := map[string]any{"broadcast": map[string]any{"self": false}}
	var chans []*jsharness.Channel
	for _, n := range []struct{ name, vsn string }{{"a", "2.0.0"}, {"b", "2.0.0"}, {"c", "1.0.0"}} {
		cl := e.client(n.name, jsharness.ClientOptions{Vsn: n.vsn})
		ch := cl.Channel(t, "room", "room1", cfg).On(t, "broadcast", map[string]any{"event": "cursor"})
		chans = append(chans, ch)
	}
	a, b, c := chans[0], chans[1], chans[2]
	ja := e.subscribe(a)
	e.subscribe(b)
	e.subscribe(c)
	topic := "realtime:room1"

	mark := e.d.Mark()
	if res := a.Broadcast(t, "cursor", map[string]any{"x": 1}); res != "ok" {
		t.Errorf("send: %s, want ok", res)
	}
	push, pm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventBroadcast, After: mark})
	if !push.Binary {
		t.Fatalf("push is not binary: %s", push)
	}
	if want := kind3(ja, pm.Ref, topic, "cursor", false, []byte(`{"x":1}`)); !bytes.Equal(push.Bytes(), want) {
		t.Errorf("kind-3 push\n got  %x\n want %x", push.Bytes(), want)
	}

	got, _ := e.frame(quick, match{Client: "b", Dir: "in", Where: isBroadcast("cursor"), After: mark})
	if want := kind4(topic, "cursor", false, []byte(`{"x":1}`)); !got.Binary || !bytes.Equal(got.Bytes(), want) {
		t.Errorf("B received %s, want kind-4 %x", got, want)
	}
	cb := b.Await(t, quick, match{Kind: kBroadcast, Event: "cursor", After: mark})
	wantJSON(t, "B callback", cb.Payload, `{"type":"broadcast","event":"cursor","payload":{"x":1}}`)

	v1, _ := e.frame(quick, match{Client: "c", Dir: "in", Where: isBroadcast("cursor"), After: mark})
	wantText(t, v1, `{"topic":"realtime:room1","event":"broadcast","payload":{"event":"cursor","payload":{"x":1},"type":"broadcast"},"ref":null}`)
	cbc := c.Await(t, quick, match{Kind: kBroadcast, Event: "cursor", After: mark})
	wantJSON(t, "C callback", cbc.Payload, `{"type":"broadcast","event":"cursor","payload":{"x":1}}`)

	// A got neither its own broadcast nor a reply (ack is off).
	fa := e.fence(a.Client, topic)
	e.noFrames("A's own broadcast", mark, fa, match{Client: "a", Dir: "in", Where: isBroadcast("cursor")})
	e.noFrames("a reply to A's push without ack", mark, fa, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, pm.Ref)})

	// An ArrayBuffer payload travels as raw bytes (encoding 0); v1
	// subscribers cannot receive it.
	raw := []byte{0, 1, 2, 0xfe, 0xff}
	mark = e.d.Mark()
	if res := a.Send(t, map[string]any{"type": "broadcast", "event": "cursor", "payload": jsharness.Base64(raw)}); res != "ok" {
		t.Errorf("binary send: %s", res)
	}
	push, pm = e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventBroadcast, After: mark})
	if want := kind3(ja, pm.Ref, topic, "cursor", true, raw); !bytes.Equal(push.Bytes(), want) {
		t.Errorf("binary kind-3 push\n got  %x\n want %x", push.Bytes(), want)
	}
	got, _ = e.frame(quick, match{Client: "b", Dir: "in", Where: isBroadcast("cursor"), After: mark})
	if want := kind4(topic, "cursor", true, raw); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("B received %s, want kind-4 %x", got, want)
	}
	cb = b.Await(t, quick, match{Kind: kBroadcast, Event: "cursor", After: mark})
	var p struct {
		Type    string
		Event   string
		Payload json.RawMessage
	}
	if err := cb.Decode(&p); err != nil || !cb.Binary || p.Type != "broadcast" || p.Event != "cursor" {
		t.Errorf("B binary callback %s (binary %v)", cb.Payload, cb.Binary)
	} else if data, err := jsharness.DecodeBase64(p.Payload); err != nil || !bytes.Equal(data, raw) {
		t.Errorf("B got ArrayBuffer %x (%v), want %x", data, err, raw)
	}
	fc := e.fence(c.Client, topic)
	e.noFrames("v1 client C and a binary broadcast", mark, fc, match{Client: "c", Dir: "in", Where: isBroadcast("cursor")})

	// A v1 client's broadcast (a JSON object frame) reaches v2 clients as a
	// JSON text frame.
	mark = e.d.Mark()
	if res := c.Broadcast(t, "cursor", map[string]any{"from": "c"}); res != "ok" {
		t.Errorf("v1 send: %s", res)
	}
	out, om := e.frame(quick, match{Client: "c", Dir: "out", Event: protocol.EventBroadcast, After: mark})
	jc := *c.Info(t).JoinRef
	wantText(t, out, `{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"cursor","payload":{"from":"c"}},"ref":`+q(om.Ref)+`,"join_ref":`+q(jc)+`}`)
	got, _ = e.frame(quick, match{Client: "b", Dir: "in", Where: isBroadcast("cursor"), After: mark})
	wantText(t, got, `[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"from":"c"}}]`)
	cb = b.Await(t, quick, match{Kind: kBroadcast, Event: "cursor", After: mark})
	wantJSON(t, "B callback for v1 sender", cb.Payload, `{"type":"broadcast","event":"cursor","payload":{"from":"c"}}`)

	// Serializer 1.0.0 frames from the server are objects of topic, event,
	// payload and ref only.
	for _, ev := range e.d.Events(match{Kind: kFrame, Client: "c", Dir: "in"}) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev.Text), &obj); err != nil || ev.Binary {
			t.Errorf("v1 frame %s is not a JSON object", ev)
			continue
		}
		for k := range obj {
			if k != "topic" && k != "event" && k != "payload" && k != "ref" {
				t.Errorf("v1 frame %s has key %q", ev, k)
			}
		}
		if len(obj) != 4 {
			t.Errorf("v1 frame %s: want keys topic, event, payload, ref", ev)
		}
	}
}

// Scenario 5: ack and self.
func TestS05AckAndSelf(t *testing.T) {
	e := newEnv(t)
	cl := e.client("a", jsharness.ClientOptions{APIKey: e.userToken("alice", time.Hour, nil), TimeoutMs: 1500, HeartbeatIntervalMs: 5000})
	ch := cl.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"ack": true, "self": true}}).
		On(t, "broadcast", map[string]any{"event": "cursor"})
	j := e.subscribe(ch)
	topic := "realtime:room1"

	mark := e.d.Mark()
	if res := ch.Broadcast(t, "cursor", map[string]any{"x": 1}); res != "ok" {
		t.Errorf("send: %s, want ok", res)
	}
	_, pm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventBroadcast, After: mark})
	if pm.JoinRef != j || pm.Ref == "" {
		t.Errorf("push refs %q %q", pm.JoinRef, pm.Ref)
	}
	reply, _ := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, pm.Ref), After: mark})
	wantText(t, reply, `[`+q(j)+`,`+q(pm.Ref)+`,"realtime:room1","phx_reply",{"status":"ok","response":{}}]`)
	echo, _ := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventBroadcast, After: mark})
	if want := kind4(topic, "cursor", false, []byte(`{"x":1}`)); !bytes.Equal(echo.Bytes(), want) {
		t.Errorf("self echo %s, want kind-4 %x", echo, want)
	}
	cb := ch.Await(t, quick, match{Kind: kBroadcast, After: mark})
	wantJSON(t, "self callback", cb.Payload, `{"type":"broadcast","event":"cursor","payload":{"x":1}}`)

	// No reply: the send resolves "timed out" after the push timeout. The
	// server is made to stall this connection so the ack cannot arrive.
	id := e.connID("alice")
	if err := e.srv.Pause(id, 2500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if res := ch.Broadcast(t, "cursor", map[string]any{"x": 2}); res != "timed out" {
		t.Errorf("send to a stalled server: %s, want timed out", res)
	}
	if d := time.Since(start); d < 1400*time.Millisecond {
		t.Errorf("timed out after %v, want the 1.5 s push timeout", d)
	}
}
