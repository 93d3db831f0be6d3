package server_test

import (
	"bytes"
	"fmt"
	"testing"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

// phoenixPush is a kind-0 frame as phoenix.js encodes a push with an
// ArrayBuffer payload.
func phoenixPush(joinRef, ref, topic, event string, payload []byte) []byte {
	m := protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Binary: true, Raw: payload}
	out, _, err := protocol.V2.AppendClient(nil, &m)
	if err != nil {
		panic(err)
	}
	return out
}

// TestPhoenixBinaryPush: a kind-0 push of event "broadcast" is fanned out
// as a Phoenix kind-2 broadcast to 2.0.0 subscribers (and to the sender
// with self), not at all to 1.0.0 ones, and answered ok with ack; binary
// presence is answered ok and changes nothing; a binary join crashes.
func TestPhoenixBinaryPush(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	v1 := dial(t, s, s.AnonKey(), "1.0.0")
	ja, _ := a.join(topic, joinPayload(`{"ack":true,"self":true}`, `{}`, false, ""))
	b.join(topic, defaultJoin)
	v1.join(topic, defaultJoin)
	payload := []byte{0, 1, 2, 0xff}

	ref := a.nextRef()
	a.writeRaw(true, phoenixPush(ja, ref, topic, protocol.EventBroadcast, payload))
	if f, r := a.awaitReply(ref); r.Status != protocol.StatusOK || f.binary ||
		string(f.raw) != fmt.Sprintf(`["%s","%s","realtime:room1","phx_reply",{"status":"ok","response":{}}]`, ja, ref) {
		t.Errorf("ack reply %s", f.raw)
	}
	want := append([]byte{2, byte(len(topic)), 9}, topic+"broadcast"...)
	want = append(want, payload...)
	for name, c := range map[string]*client{"peer": b, "sender (self)": a} {
		f := c.await("the binary broadcast", func(f inFrame) bool { return f.binary })
		if !bytes.Equal(f.raw, want) {
			t.Errorf("%s got % x, want % x", name, f.raw, want)
		}
	}
	v1.sync()
	if got := v1.find(func(f inFrame) bool { return f.msg.Event == protocol.EventBroadcast }); len(got) != 0 {
		t.Errorf("a 1.0.0 subscriber got %s", got[0].raw)
	}

	// Binary presence: ok, no presence change.
	ref = a.nextRef()
	a.writeRaw(true, phoenixPush(ja, ref, topic, protocol.EventPresence, []byte("x")))
	if _, r := a.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Errorf("binary presence: %+v", r)
	}
	if st := s.Stats(); st.Presences != 0 {
		t.Errorf("presences after a binary presence push: %d", st.Presences)
	}
	// Another event: ignored, the socket lives on.
	a.writeRaw(true, phoenixPush(ja, a.nextRef(), topic, "custom", payload))
	// A binary join: Realtime's join crashes on it.
	ref = a.nextRef()
	a.writeRaw(true, phoenixPush(ref, ref, "realtime:other", protocol.EventJoin, nil))
	if _, r := a.awaitReply(ref); r.Reason() != "join crashed" {
		t.Errorf("binary join: %+v", r)
	}
	a.sync()
}

// TestStaleJoinRef: pushes with another join_ref than the channel's reach
// it (replies carry the channel's join_ref); a leave with another
// join_ref is ignored; a join without join_ref is left by any leave.
func TestStaleJoinRef(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a, b := dialV2(t, s), dialV2(t, s)
	ja, _ := a.join(topic, joinPayload(`{"ack":true}`, `{}`, false, ""))
	b.join(topic, defaultJoin)

	ref := a.broadcastJSON("stale-1", topic, "old", `{}`)
	b.await("the stale broadcast", isBroadcast(topic, "old"))
	if f, _ := a.awaitReply(ref); string(f.raw) != fmt.Sprintf(`["%s","%s","realtime:room1","phx_reply",{"status":"ok","response":{}}]`, ja, ref) {
		t.Errorf("ack of a stale push %s", f.raw)
	}
	ref = a.send("", topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"a":1}}`)
	if _, r := a.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Errorf("track without join_ref: %+v", r)
	}
	lref := a.send("stale-1", topic, protocol.EventLeave, `{}`)
	a.sync()
	if got := a.find(func(f inFrame) bool { return f.msg.Ref == lref || f.msg.Event == protocol.EventClose }); len(got) != 0 {
		t.Errorf("stale leave answered: %s", got[0].raw)
	}
	lref = a.send(ja, topic, protocol.EventLeave, `{}`)
	if _, r := a.awaitReply(lref); r.Status != protocol.StatusOK {
		t.Errorf("leave: %+v", r)
	}
	a.awaitEvent(topic, protocol.EventClose)

	// 1.0.0 join without join_ref: any leave is its own.
	v1 := dial(t, s, s.AnonKey(), "1.0.0")
	jref := v1.nextRef()
	v1.push(protocol.Message{Ref: jref, Topic: topic, Event: protocol.EventJoin, Payload: []byte(defaultJoin)})
	v1.awaitReply(jref)
	lref = v1.send("whatever", topic, protocol.EventLeave, `{}`)
	if _, r := v1.awaitReply(lref); r.Status != protocol.StatusOK {
		t.Errorf("v1 leave: %+v", r)
	}
	v1.awaitEvent(topic, protocol.EventClose)
}
