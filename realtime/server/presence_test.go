package server_test

import (
	"encoding/json"
	"regexp"
	"testing"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

// presencePayload decodes a presence_state or one side of a diff.
func presenceOf(t *testing.T, raw json.RawMessage) map[string][]map[string]any {
	t.Helper()
	var st map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("presence %s: %v", raw, err)
	}
	out := map[string][]map[string]any{}
	for k, v := range st {
		out[k] = v.Metas
	}
	return out
}

func diffOf(t *testing.T, f inFrame) (joins, leaves map[string][]map[string]any) {
	t.Helper()
	var d struct {
		Joins  json.RawMessage `json:"joins"`
		Leaves json.RawMessage `json:"leaves"`
	}
	if err := json.Unmarshal(f.msg.Payload, &d); err != nil {
		t.Fatalf("diff %s: %v", f.raw, err)
	}
	return presenceOf(t, d.Joins), presenceOf(t, d.Leaves)
}

func isEvent(topic, event string) func(inFrame) bool {
	return func(f inFrame) bool { return f.msg.Topic == topic && f.msg.Event == event }
}

func TestPresenceThreeClients(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a, b, c := dialV2(t, s), dialV2(t, s), dial(t, s, s.AnonKey(), "1.0.0")

	ja, _ := a.join(topic, joinPayload(`{"ack":false,"self":false}`, `{"key":"alice","enabled":true}`, false, ""))
	st := a.awaitEvent(topic, protocol.EventPresenceState)
	if got, want := string(st.raw), `["`+ja+`",null,"realtime:room1","presence_state",{}]`; got != want {
		t.Errorf("first presence_state %s, want %s", got, want)
	}
	// A tracks: ok reply to A, then a join diff to every subscriber (A too).
	ref := a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"status":"online"}}`)
	if _, r := a.awaitReply(ref); r.Status != "ok" {
		t.Fatalf("track: %+v", r)
	}
	d := a.await("alice join diff", isEvent(topic, protocol.EventPresenceDiff))
	if d.msg.JoinRef != "" || d.msg.Ref != "" {
		t.Errorf("diff refs %q/%q, want null/null", d.msg.JoinRef, d.msg.Ref)
	}
	joins, leaves := diffOf(t, d)
	if len(leaves) != 0 || len(joins["alice"]) != 1 || joins["alice"][0]["status"] != "online" {
		t.Fatalf("join diff %s", d.raw)
	}
	aliceRef, _ := joins["alice"][0]["phx_ref"].(string)
	if aliceRef == "" {
		t.Fatalf("meta without phx_ref: %s", d.raw)
	}

	// B joins with presence enabled and an empty key: presence_state shows alice.
	jb, _ := b.join(topic, joinPayload(`{}`, `{"key":"","enabled":true}`, false, ""))
	st = b.awaitEvent(topic, protocol.EventPresenceState)
	state := presenceOf(t, st.msg.Payload)
	if st.msg.JoinRef != jb || len(state) != 1 || state["alice"][0]["phx_ref"] != aliceRef {
		t.Fatalf("B presence_state %s", st.raw)
	}
	// B tracks with an empty key: the server assigned a UUID key.
	ref = b.send(jb, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"n":1}}`)
	b.awaitReply(ref)
	d = a.await("B join diff", isEvent(topic, protocol.EventPresenceDiff))
	joins, _ = diffOf(t, d)
	var bKey string
	for k := range joins {
		bKey = k
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(bKey) {
		t.Errorf("assigned presence key %q is not a UUID v1", bKey)
	}

	// C (1.0.0) joins without presence enabled: no presence_state, but
	// diffs reach it (Supabase fans presence_diff out to every
	// subscriber of a public topic).
	jc, _ := c.join(topic, defaultJoin)

	// A re-tracks with a new meta: leaves has the old meta, joins the new one with phx_ref_prev.
	ref = a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"status":"away"}}`)
	a.awaitReply(ref)
	for _, cl := range []*client{a, b, c} {
		d := cl.await("update diff", func(f inFrame) bool {
			if !isEvent(topic, protocol.EventPresenceDiff)(f) {
				return false
			}
			j, _ := diffOf(t, f)
			return len(j["alice"]) == 1 && j["alice"][0]["status"] == "away"
		})
		joins, leaves := diffOf(t, d)
		if leaves["alice"][0]["phx_ref"] != aliceRef || leaves["alice"][0]["status"] != "online" {
			t.Errorf("update leaves %s", d.raw)
		}
		if joins["alice"][0]["phx_ref_prev"] != aliceRef || joins["alice"][0]["phx_ref"] == aliceRef {
			t.Errorf("update joins %s", d.raw)
		}
	}
	// The same meta again is a no-op: ok, no diff.
	ref = a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"status":"away"}}`)
	a.awaitReply(ref)
	a.sync()
	if n := len(a.find(isEvent(topic, protocol.EventPresenceDiff))); n != 3 {
		t.Errorf("A saw %d diffs, want 3 (a no-op re-track sends none)", n)
	}
	if len(c.find(isEvent(topic, protocol.EventPresenceState))) != 0 {
		t.Errorf("C got presence_state without presence enabled")
	}

	// A untracks: leave diff to the others.
	ref = a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"untrack"}`)
	a.awaitReply(ref)
	d = b.await("untrack leave", func(f inFrame) bool {
		_, l := diffOf(t, f)
		return isEvent(topic, protocol.EventPresenceDiff)(f) && len(l["alice"]) == 1
	})
	if j, _ := diffOf(t, d); len(j) != 0 {
		t.Errorf("untrack diff %s", d.raw)
	}
	// A tracks again then leaves the channel: leave diff.
	ref = a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"k":2}}`)
	a.awaitReply(ref)
	a.send(ja, topic, protocol.EventLeave, `{}`)
	b.await("leave-on-leave", func(f inFrame) bool {
		j, l := diffOf(t, f)
		return isEvent(topic, protocol.EventPresenceDiff)(f) && len(j) == 0 && len(l["alice"]) == 1 && l["alice"][0]["k"] == float64(2)
	})
	// B's socket closes: C gets B's leave.
	b.close()
	c.await("leave-on-close", func(f inFrame) bool {
		_, l := diffOf(t, f)
		return isEvent(topic, protocol.EventPresenceDiff)(f) && len(l[bKey]) == 1
	})
	// C rejoins with presence: the state is empty again.
	c.send(jc, topic, protocol.EventLeave, `{}`)
	c.join(topic, joinPayload(`{}`, `{"enabled":true}`, false, ""))
	st = c.awaitEvent(topic, protocol.EventPresenceState)
	if string(st.msg.Payload) != "{}" {
		t.Errorf("final presence_state %s, want {}", st.msg.Payload)
	}
	if n := s.Stats().Presences; n != 0 {
		t.Errorf("Presences = %d, want 0", n)
	}
}

func TestPresencePushErrors(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:room1"
	a := dialV2(t, s)
	ja, _ := a.join(topic, defaultJoin)
	for _, tc := range []struct{ payload, status, reason string }{
		{`{"type":"presence","event":"track","payload":[1]}`, "error", "Presence track payload must be a map"},
		{`{"type":"presence","event":"track","payload":"x"}`, "error", "Presence track payload must be a map"},
		{`{"type":"presence","event":"jump"}`, "error", "{}"},
		{`{"type":"presence"}`, "ok", "{}"},
	} {
		ref := a.send(ja, topic, protocol.EventPresence, tc.payload)
		_, r := a.awaitReply(ref)
		if r.Status != tc.status || r.Reason() != tc.reason {
			t.Errorf("%s: %s %s, want %s %s", tc.payload, r.Status, r.Reason(), tc.status, tc.reason)
		}
	}
	// A track without payload tracks {} (and uppercase event names work).
	ref := a.send(ja, topic, protocol.EventPresence, `{"type":"presence","event":"TRACK"}`)
	if _, r := a.awaitReply(ref); r.Status != "ok" {
		t.Errorf("track without payload: %+v", r)
	}
	d := a.await("diff", isEvent(topic, protocol.EventPresenceDiff))
	j, _ := diffOf(t, d)
	if len(j) != 1 {
		t.Errorf("diff %s", d.raw)
	}
	// Tracking enabled presence on the channel (Conns shows it).
	if ch := s.Conns()[0].Channels[0]; !ch.PresenceEnabled || ch.Meta == nil {
		t.Errorf("channel info after track: %+v", ch)
	}
}
