package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// TestTopicNamesMemory joins 100 topics of 2 MB names (a tenth under the
// race detector) from one socket: each join is refused with TopicTooLong
// and the server keeps nothing of them. Not parallel: it measures the
// heap.
func TestTopicNamesMemory(t *testing.T) {
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxJoinsPerSecond: -1}))
	c := dialLean(t, s, "2.0.0")
	name := strings.Repeat("t", 2_000_000/floodScale())
	before := liveHeap()
	wrong := 0
	for i := range 100 {
		ref := strconv.Itoa(i)
		topic := protocol.Topic(fmt.Sprintf("%03d", i) + name)
		c.push(ref, ref, topic, protocol.EventJoin, []byte(defaultJoin))
		r := c.reply(ref)
		if r.status != protocol.StatusError || !strings.HasPrefix(r.reason, "TopicTooLong: ") || r.topicLen != len(topic) {
			if wrong++; wrong == 1 {
				t.Errorf("join %d: %+v, want a TopicTooLong error echoing the topic", i, r)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of 100 joins not refused with TopicTooLong", wrong)
	}
	after := liveHeap()
	runtime.KeepAlive(name) // counted in before: keep it in after
	growth := int64(after) - int64(before)
	t.Logf("100 joins of %d-byte topics: server heap %+.1f MiB (%d -> %d bytes)", len(name)+3+len(protocol.TopicPrefix),
		float64(growth)/mib, before, after)
	if growth > 4*mib {
		t.Errorf("server heap grew by %d bytes, want at most 4 MiB", growth)
	}
	if st := s.Stats(); st.Channels != 0 || st.Topics != 0 {
		t.Errorf("stats: %d channels, %d topics, want none", st.Channels, st.Topics)
	}
}

// capTopic returns a wire topic of n bytes.
func capTopic(n int) string {
	return protocol.TopicPrefix + strings.Repeat("c", n-len(protocol.TopicPrefix))
}

// TestTopicAtCap: a topic of exactly MaxTopicBytes works end to end under
// both serializers (the 2.0.0 binary frames carry it); one byte more is
// refused with TopicTooLong under both, and other pushes on it get the
// unmatched topic reply.
func TestTopicAtCap(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	topic := capTopic(server.MaxTopicBytes)
	v2 := dialV2(t, s)
	v1 := dial(t, s, s.AnonKey(), "1.0.0")
	j2, _ := v2.join(topic, joinPayload(`{"ack":true,"self":true}`, `{"key":"k","enabled":true}`, false, ""))
	j1, _ := v1.join(topic, joinPayload(`{"ack":true}`, `{"key":"","enabled":true}`, false, ""))

	// A kind-3 push from V2: kind 4 to V2 (self), JSON to V1.
	ref := v2.broadcastBinary(j2, topic, "bin", []byte(`{"x":1}`), false)
	if _, r := v2.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Errorf("V2 broadcast: %+v", r)
	}
	if f := v2.await("kind 4 at the cap", isBroadcast(topic, "bin")); !f.binary {
		t.Errorf("V2 got %s, want a binary frame", f.raw)
	}
	v1.await("V1 broadcast at the cap", isBroadcast(topic, "bin"))
	// A JSON push from V1 reaches V2.
	ref = v1.broadcastJSON(j1, topic, "text", `{"y":2}`)
	if _, r := v1.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Errorf("V1 broadcast: %+v", r)
	}
	v2.await("text broadcast at the cap", isBroadcast(topic, "text"))
	// Presence and REST too.
	if _, r := v2.awaitReply(v2.send(j2, topic, protocol.EventPresence, trackPush(`{"s":1}`))); r.Status != protocol.StatusOK {
		t.Errorf("track at the cap: %+v", r)
	}
	v1.awaitEvent(topic, protocol.EventPresenceDiff)
	status, body := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast/"+protocol.SubTopic(topic)+"/events/rest", s.AnonKey(), "application/json", `{}`)
	if status != http.StatusAccepted {
		t.Fatalf("REST single at the cap: %d %s", status, body)
	}
	v2.await("REST at the cap", isBroadcast(topic, "rest"))
	v1.await("REST at the cap", isBroadcast(topic, "rest"))

	// One byte more: refused under both serializers.
	long := capTopic(server.MaxTopicBytes + 1)
	for _, c := range []*client{v1, v2} {
		if reason := c.joinErr(long, defaultJoin); !strings.HasPrefix(reason, "TopicTooLong: Topics are limited to 255 bytes") {
			t.Errorf("%s: join of a 256-byte topic: %q", c.vsn, reason)
		}
		_, r := c.awaitReply(c.broadcastJSON("", long, "e", `{}`))
		if r.Reason() != "unmatched topic" {
			t.Errorf("%s: broadcast on a 256-byte topic: %+v", c.vsn, r)
		}
	}
	if st := s.Stats(); st.Channels != 2 || st.Topics != 1 || st.JoinErrors != 2 {
		t.Errorf("stats: %d channels, %d topics, %d join errors; want 2, 1, 2", st.Channels, st.Topics, st.JoinErrors)
	}
}

// TestEventNameCap: events of MaxEventBytes work; longer push events and
// broadcast user events are refused with EventTooLong.
func TestEventNameCap(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:events"
	v1 := dial(t, s, s.AnonKey(), "1.0.0")
	v2 := dialV2(t, s)
	j1, _ := v1.join(topic, joinPayload(`{"ack":true}`, `{"key":""}`, false, ""))
	v2.join(topic, defaultJoin)
	atCap, over := strings.Repeat("e", server.MaxEventBytes), strings.Repeat("e", server.MaxEventBytes+1)

	// A JSON broadcast whose user event is at the cap is delivered, as a
	// kind-3 one is.
	if _, r := v1.awaitReply(v1.broadcastJSON(j1, topic, atCap, `{}`)); r.Status != protocol.StatusOK {
		t.Errorf("broadcast at the cap: %+v", r)
	}
	v2.await("broadcast at the cap", isBroadcast(topic, atCap))
	// One byte more: the ack is an error and nobody gets it.
	_, r := v1.awaitReply(v1.broadcastJSON(j1, topic, over, `{}`))
	if want := "EventTooLong: Event names are limited to 255 bytes; this one has 256"; r.Status != protocol.StatusError || r.Reason() != want {
		t.Errorf("broadcast over the cap: %+v, want %q", r, want)
	}
	// The same under an escaped event name: the cap counts its bytes.
	esc := strings.Repeat(`\u00e9`, 128) // 256 bytes of UTF-8
	ref := v1.send(j1, topic, protocol.EventBroadcast, `{"type":"broadcast","event":"`+esc+`","payload":{}}`)
	if _, r := v1.awaitReply(ref); r.Status != protocol.StatusError || !strings.HasPrefix(r.Reason(), "EventTooLong: ") {
		t.Errorf("escaped event over the cap: %+v", r)
	}
	v2.sync()
	if n := len(v2.find(isBroadcast(topic, over))); n != 0 {
		t.Errorf("a broadcast over the cap was delivered")
	}
	// A push whose own event is over the cap, on a channel or not.
	for _, tp := range []string{topic, "realtime:other", protocol.PhoenixTopic} {
		_, r := v1.awaitReply(v1.send(j1, tp, over, `{}`))
		if r.Status != protocol.StatusError || !strings.HasPrefix(r.Reason(), "EventTooLong: ") {
			t.Errorf("push event over the cap on %s: %+v", tp, r)
		}
	}
	if st := s.Stats(); st.Channels != 2 || st.Broadcasts != 1 {
		t.Errorf("stats: %d channels, %d broadcasts; want 2, 1", st.Channels, st.Broadcasts)
	}
}

// TestPresenceKeyAndRefCaps: presence keys and join refs of 255 bytes work;
// longer ones refuse the join.
func TestPresenceKeyAndRefCaps(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	const topic = "realtime:keys"
	c := dialV2(t, s)
	key := strings.Repeat("k", server.MaxPresenceKeyBytes)
	j, _ := c.join(topic, joinPayload(`{}`, `{"key":"`+key+`","enabled":true}`, false, ""))
	if _, r := c.awaitReply(c.send(j, topic, protocol.EventPresence, trackPush(`{"a":1}`))); r.Status != protocol.StatusOK {
		t.Fatalf("track with a key at the cap: %+v", r)
	}
	joins, _ := diffOf(t, c.awaitEvent(topic, protocol.EventPresenceDiff))
	if len(joins[key]) != 1 {
		t.Errorf("diff without the key at the cap: %v", joins)
	}
	for _, k := range []string{`"` + key + `k"`, strings.Repeat("7", server.MaxPresenceKeyBytes+1)} {
		reason := c.joinErr("realtime:keys2", joinPayload(`{}`, `{"key":`+k+`}`, false, ""))
		if want := "PresenceKeyTooLong: Presence keys are limited to 255 bytes; this one has 256"; reason != want {
			t.Errorf("join with a 256-byte key: %q, want %q", reason, want)
		}
	}
	// Refs: a join ref at the cap is kept and used; one byte more is refused.
	ref := strings.Repeat("r", server.MaxRefBytes)
	c.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: "realtime:refs", Event: protocol.EventJoin, Payload: json.RawMessage(defaultJoin)})
	if _, r := c.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Errorf("join with a ref at the cap: %+v", r)
	}
	ref += "r"
	c.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: "realtime:refs2", Event: protocol.EventJoin, Payload: json.RawMessage(defaultJoin)})
	if _, r := c.awaitReply(ref); r.Status != protocol.StatusError || !strings.HasPrefix(r.Reason(), "RefTooLong: ") {
		t.Errorf("join with a 256-byte ref: %+v", r)
	}
	if st := s.Stats(); st.Channels != 2 {
		t.Errorf("%d channels, want 2", st.Channels)
	}
}

// TestRESTNameCaps: the REST endpoints hold topics and events to the same
// caps as the socket (topics are names there: 246 bytes).
func TestRESTNameCaps(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	name := strings.Repeat("n", server.MaxTopicBytes-len(protocol.TopicPrefix))
	event := strings.Repeat("e", server.MaxEventBytes)
	c := dialV2(t, s)
	c.join(protocol.Topic(name), defaultJoin)
	batch := func(topic, event string) (int, string) {
		return httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
			`{"messages":[{"topic":`+strconv.Quote(topic)+`,"event":`+strconv.Quote(event)+`,"payload":{}}]}`)
	}
	if status, body := batch(name, event); status != http.StatusAccepted {
		t.Fatalf("batch at the caps: %d %s", status, body)
	}
	c.await("batch at the caps", isBroadcast(protocol.Topic(name), event))
	for _, tc := range []struct{ topic, event, want string }{
		{name + "n", "e", `{"errors":{"messages":[{"topic":["must be at most 246 bytes (255 with the \"realtime:\" prefix)"]}]}}`},
		{"room", event + "e", `{"errors":{"messages":[{"event":["must be at most 255 bytes"]}]}}`},
	} {
		if status, body := batch(tc.topic, tc.event); status != http.StatusUnprocessableEntity || strings.TrimSpace(body) != tc.want {
			t.Errorf("batch %d/%d bytes: %d %s, want 422 %s", len(tc.topic), len(tc.event), status, body, tc.want)
		}
	}
	single := func(topic, event string) int {
		status, _ := httpDo(t, "POST", fmt.Sprintf("%s/realtime/v1/api/broadcast/%s/events/%s", s.URL, topic, event), s.AnonKey(), "application/json", `{}`)
		return status
	}
	if got := single(name, event); got != http.StatusAccepted {
		t.Errorf("single at the caps: %d", got)
	}
	if got := single(name+"n", "e"); got != http.StatusUnprocessableEntity {
		t.Errorf("single over the topic cap: %d", got)
	}
	if got := single("room", event+"e"); got != http.StatusUnprocessableEntity {
		t.Errorf("single over the event cap: %d", got)
	}
}

// TestBindingCaps: a join keeps its postgres_changes bindings, so their
// number and bytes are capped: at the caps the join succeeds with every
// binding echoed; one more binding, or one more byte, is refused.
func TestBindingCaps(t *testing.T) {
	t.Parallel()
	s := servertest.New(t)
	c := dialV2(t, s)
	binding := func(filter string) string {
		return `{"event":"*","schema":"public","table":"todos","filter":"` + filter + `"}`
	}
	bindings := func(n int, filter string) string {
		list := make([]string, n)
		for i := range list {
			list[i] = binding(fmt.Sprintf("id=eq.%d%s", i, filter))
		}
		return `{"config":{"postgres_changes":[` + strings.Join(list, ",") + `]}}`
	}
	_, resp := c.join("realtime:many", bindings(server.MaxBindings, ""))
	var r struct {
		PG []json.RawMessage `json:"postgres_changes"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || len(r.PG) != server.MaxBindings {
		t.Fatalf("join with %d bindings: %d echoed, %v", server.MaxBindings, len(r.PG), err)
	}
	if reason := c.joinErr("realtime:toomany", bindings(server.MaxBindings+1, "")); !strings.HasPrefix(reason, "PostgresChangesTooLarge: ") {
		t.Errorf("join with %d bindings: %q", server.MaxBindings+1, reason)
	}
	// One binding whose filter takes the bytes over the cap (the filter
	// value is a list: id=in.(...)).
	big := "," + strings.Repeat("9", server.MaxBindingBytes)
	if reason := c.joinErr("realtime:big", bindings(1, big)); !strings.HasPrefix(reason, "PostgresChangesTooLarge: ") {
		t.Errorf("join with a %d-byte binding: %q", len(big), reason)
	}
	if n := len(s.Conns()[0].Channels); n != 1 {
		t.Errorf("%d channels kept, want the one within the caps", n)
	}
}
