package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// trackPush is a track push of meta (a JSON object).
func trackPush(meta string) string {
	return `{"type":"presence","event":"track","payload":` + meta + `}`
}

// filler is a meta of about n bytes.
func filler(tag string, n int) string {
	return `{"tag":"` + tag + `","fill":"` + strings.Repeat("f", n) + `"}`
}

var budgetReasonRE = regexp.MustCompile(`^PresenceBudgetExceeded: (This connection's presence|Presence on this server) would take (\d+) bytes, over its budget of (\d+)$`)

// wantBudgetError checks that the reply to ref is the budget error reply:
// {"status":"error","response":{"reason":"PresenceBudgetExceeded: ..."}},
// for the connection's budget or the server's.
func wantBudgetError(t *testing.T, c *client, ref string, serverWide bool, limit int) {
	t.Helper()
	f, r := c.awaitReply(ref)
	var p struct {
		Status   string                     `json:"status"`
		Response map[string]json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(f.msg.Payload, &p); err != nil || p.Status != "error" || len(p.Response) != 1 || p.Response["reason"] == nil {
		t.Fatalf("reply %s, want {\"status\":\"error\",\"response\":{\"reason\":...}}", f.raw)
	}
	m := budgetReasonRE.FindStringSubmatch(r.Reason())
	if m == nil {
		t.Fatalf("reason %q, want PresenceBudgetExceeded", r.Reason())
	}
	if scope := m[1] == "Presence on this server"; scope != serverWide || m[3] != fmt.Sprint(limit) {
		t.Errorf("reason %q, want the %s budget of %d", r.Reason(), map[bool]string{true: "server's", false: "connection's"}[serverWide], limit)
	}
}

// diffCount returns how many presence_diffs of topic c has received.
func diffCount(c *client, topic string) int {
	return len(c.find(isEvent(topic, protocol.EventPresenceDiff)))
}

func TestPresenceBudgetPerConnection(t *testing.T) {
	t.Parallel()
	const budget = 10_000
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.MaxPresenceBytesPerConn = budget
		c.MaxPresenceBytes = -1
		c.Limits.ClientPresenceMaxCalls = 100
	}))
	a, obs := dialV2(t, s), dialV2(t, s)
	join := joinPayload(`{"ack":true,"self":false}`, `{"key":"alice","enabled":true}`, false, "")
	topics := []string{"realtime:b1", "realtime:b2", "realtime:b3"}
	refs := map[string]string{}
	for _, tp := range topics {
		refs[tp], _ = a.join(tp, join)
		obs.join(tp, joinPayload(`{}`, `{"key":"obs","enabled":true}`, false, ""))
	}
	track := func(topic, meta string) string {
		return a.send(refs[topic], topic, protocol.EventPresence, trackPush(meta))
	}
	ok := func(topic, meta string) {
		t.Helper()
		if _, r := a.awaitReply(track(topic, meta)); r.Status != protocol.StatusOK {
			t.Fatalf("track on %s: %+v", topic, r)
		}
	}

	ok("realtime:b1", filler("one", 4000))
	ok("realtime:b2", filler("two", 4000))
	// An update of the same size fits (only its phx_ref_prev is new).
	ok("realtime:b1", filler("uno", 4000))

	// A third meta would exceed the budget: error reply, no diff, the
	// channel stays joined.
	obs.sync()
	diffs := diffCount(obs, "realtime:b3")
	used := s.Stats().PresenceBytes
	wantBudgetError(t, a, track("realtime:b3", filler("three", 4000)), false, budget)
	if used < 8000 || used > budget {
		t.Errorf("PresenceBytes %d after two 4 KB metas", used)
	}
	if st := s.Stats(); st.PresenceRefused != 1 || st.Presences != 2 || st.PresenceBytes != used {
		t.Errorf("after a refusal: %d refused, %d presences, %d bytes; want 1, 2, %d", st.PresenceRefused, st.Presences, st.PresenceBytes, used)
	}
	ref := a.broadcastJSON(refs["realtime:b3"], "realtime:b3", "still", `{"n":1}`)
	if _, r := a.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Errorf("broadcast after a refused track: %+v", r)
	}
	obs.await("broadcast after a refused track", isBroadcast("realtime:b3", "still"))
	if n := diffCount(obs, "realtime:b3"); n != diffs {
		t.Errorf("a refused track sent %d diffs", n-diffs)
	}

	// A bigger update is refused too, and the previous meta stays tracked.
	wantBudgetError(t, a, track("realtime:b1", filler("big", 6000)), false, budget)
	late := dialV2(t, s)
	late.join("realtime:b1", joinPayload(`{}`, `{"key":"late","enabled":true}`, false, ""))
	st := presenceOf(t, late.awaitEvent("realtime:b1", protocol.EventPresenceState).msg.Payload)
	if m := st["alice"]; len(m) != 1 || m[0]["tag"] != "uno" {
		t.Errorf("presence after a refused update: %v, want the previous meta", st)
	}

	// With the budget full, a no-op re-track is still ok without a diff, and
	// a smaller update is accepted.
	obs.sync()
	diffs = diffCount(obs, "realtime:b1")
	ok("realtime:b1", filler("uno", 4000))
	obs.sync()
	if n := diffCount(obs, "realtime:b1"); n != diffs {
		t.Errorf("a no-op re-track sent %d diffs", n-diffs)
	}
	ok("realtime:b1", filler("small", 100))
	obs.await("small update", func(f inFrame) bool {
		if !isEvent("realtime:b1", protocol.EventPresenceDiff)(f) {
			return false
		}
		j, _ := diffOf(t, f)
		return len(j["alice"]) == 1 && j["alice"][0]["tag"] == "small"
	})

	// Untrack frees budget: the refused track now succeeds.
	if _, r := a.awaitReply(a.send(refs["realtime:b2"], "realtime:b2", protocol.EventPresence, `{"type":"presence","event":"untrack"}`)); r.Status != protocol.StatusOK {
		t.Fatalf("untrack: %+v", r)
	}
	ok("realtime:b3", filler("three", 4000))
	// Leave frees it too.
	before := s.Stats().PresenceBytes
	a.send(refs["realtime:b3"], "realtime:b3", protocol.EventLeave, `{}`)
	eventually(t, "leave releases presence bytes", func() bool { return s.Stats().PresenceBytes < before-4000 })
	ok("realtime:b2", filler("two", 4000))
	// Closing the socket releases everything it kept.
	a.close()
	eventually(t, "close releases presence bytes", func() bool {
		st := s.Stats()
		return st.PresenceBytes == 0 && st.Presences == 0
	})
}

func TestPresenceBudgetServerWide(t *testing.T) {
	t.Parallel()
	const budget = 10_000
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.MaxPresenceBytes = budget
	}))
	const topic = "realtime:shared"
	var cs []*client
	var jrefs []string
	for range 3 {
		c := dialV2(t, s)
		j, _ := c.join(topic, joinPayload(`{}`, `{"key":"","enabled":true}`, false, ""))
		cs, jrefs = append(cs, c), append(jrefs, j)
	}
	for i := range 2 {
		if _, r := cs[i].awaitReply(cs[i].send(jrefs[i], topic, protocol.EventPresence, trackPush(filler("m", 4000)))); r.Status != protocol.StatusOK {
			t.Fatalf("track %d: %+v", i, r)
		}
	}
	wantBudgetError(t, cs[2], cs[2].send(jrefs[2], topic, protocol.EventPresence, trackPush(filler("m", 4000))), true, budget)
	if st := s.Stats(); st.PresenceRefused != 1 || st.Presences != 2 {
		t.Errorf("stats: %+v", st)
	}
	// Another socket closing makes room.
	cs[0].close()
	eventually(t, "close releases presence bytes", func() bool { return s.Stats().Presences == 1 })
	if _, r := cs[2].awaitReply(cs[2].send(jrefs[2], topic, protocol.EventPresence, trackPush(filler("m", 4000)))); r.Status != protocol.StatusOK {
		t.Fatalf("track after a close: %+v", r)
	}
	// A restart drops every socket and releases all presence.
	if err := s.Restart(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.PresenceBytes != 0 || st.Presences != 0 {
		t.Errorf("after a restart: %d bytes, %d presences", st.PresenceBytes, st.Presences)
	}
}

// TestPresenceStateLargerThanQueue: a joiner whose presence_state could
// never fit its outbound queue is dropped as a slow consumer, as before,
// but without the state being encoded first.
func TestPresenceStateLargerThanQueue(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := servertest.New(t, servertest.WithConfig(func(c *server.Config) {
		c.OutboundQueueBytes = 64 << 10
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}))
	const topic = "realtime:crowd"
	for i := range 3 {
		c := dialV2(t, s)
		j, _ := c.join(topic, defaultJoin)
		if _, r := c.awaitReply(c.send(j, topic, protocol.EventPresence, trackPush(filler(fmt.Sprint(i), 30_000)))); r.Status != protocol.StatusOK {
			t.Fatalf("track %d: %+v", i, r)
		}
	}
	late := dialV2(t, s)
	ref := late.nextRef()
	late.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: topic, Event: protocol.EventJoin,
		Payload: json.RawMessage(joinPayload(`{}`, `{"key":"late","enabled":true}`, false, ""))})
	late.awaitClosed()
	if n := s.Stats().SlowConsumerDrops; n != 1 {
		t.Errorf("SlowConsumerDrops = %d, want 1", n)
	}
	if out := logs.String(); !strings.Contains(out, `reason="presence_state larger than the outbound queue"`) {
		t.Errorf("no presence_state drop in the log:\n%s", out)
	}
}
