package conformance

import (
	"encoding/json"
	"testing"

	"rtm/realtime/internal/jsharness"
	"rtm/realtime/protocol"
)

// Scenario 7: postgres_changes bindings are echoed in order with integer
// ids, and the subscription status follows as a system message.
func TestS07PostgresChangesRouting(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	bindings := []string{
		`{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.1"}`,
		`{"event":"*","schema":"public","table":"other"}`,
	}
	ch := c.Channel(t, "room", "room1", nil)
	for _, b := range bindings {
		var f map[string]any
		json.Unmarshal([]byte(b), &f)
		ch.On(t, "postgres_changes", f)
	}
	ch.On(t, "system", nil)
	j := e.subscribe(ch)

	join, jm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventJoin})
	var jp struct {
		Config struct {
			PostgresChanges []json.RawMessage `json:"postgres_changes"`
		} `json:"config"`
	}
	if err := json.Unmarshal(jm.Payload, &jp); err != nil || len(jp.Config.PostgresChanges) != 2 {
		t.Fatalf("join %s", join)
	}
	for i, b := range bindings {
		wantJSON(t, "join binding", jp.Config.PostgresChanges[i], b)
	}

	_, rm := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, j)})
	var reply struct {
		Status   string `json:"status"`
		Response struct {
			PostgresChanges []map[string]json.RawMessage `json:"postgres_changes"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rm.Payload, &reply); err != nil || reply.Status != "ok" || len(reply.Response.PostgresChanges) != 2 {
		t.Fatalf("join reply %s", rm.Payload)
	}
	ids := map[string]bool{}
	for i, echo := range reply.Response.PostgresChanges {
		id := echo["id"]
		var n json.Number
		if err := json.Unmarshal(id, &n); err != nil {
			t.Errorf("binding %d: id %s is not a number", i, id)
		} else if _, err := n.Int64(); err != nil {
			t.Errorf("binding %d: id %s is not an integer", i, id)
		}
		if ids[string(id)] {
			t.Errorf("binding %d: id %s repeated", i, id)
		}
		ids[string(id)] = true
		delete(echo, "id")
		b, _ := json.Marshal(echo)
		wantJSON(t, "echoed binding", b, bindings[i])
	}

	sys, _ := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventSystem})
	wantText(t, sys, `[`+q(j)+`,null,"realtime:room1","system",{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"room1"}]`)
	cb := ch.Await(t, quick, match{Kind: kSystem})
	wantJSON(t, "system callback", cb.Payload, `{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"room1"}`)
}
