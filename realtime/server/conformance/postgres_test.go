package conformance

import (
	"encoding/json"
	"strconv"
	"testing"

	"rtm/realtime/jsharness"
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

// Scenario 7: a change reaches the bindings whose ids the frame lists, and
// realtime-js converts the record by column type.
func TestS07PostgresChangesDelivery(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil).
		On(t, "postgres_changes", map[string]any{"event": "INSERT", "schema": "public", "table": "todos", "filter": "id=eq.1"}).
		On(t, "postgres_changes", map[string]any{"event": "*", "schema": "public", "table": "other"})
	j := e.subscribe(ch)
	_, rm := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, j)})
	var reply struct {
		Response struct {
			PostgresChanges []struct {
				ID int64 `json:"id"`
			} `json:"postgres_changes"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rm.Payload, &reply); err != nil || len(reply.Response.PostgresChanges) != 2 {
		t.Fatalf("join reply %s", rm.Payload)
	}
	id1, id2 := reply.Response.PostgresChanges[0].ID, reply.Response.PostgresChanges[1].ID
	cols := []protocol.Column{{Name: "id", Type: "int8"}, {Name: "done", Type: "bool"}}

	// An insert into todos with id 1 fires the first binding only.
	mark := e.d.Mark()
	n := e.srv.EmitChange("room1", protocol.ChangeData{Schema: "public", Table: "todos", CommitTimestamp: "2026-01-01T00:00:00.000Z",
		Type: "INSERT", Columns: cols, Record: json.RawMessage(`{"id":1,"done":"t"}`)})
	if n != 1 {
		t.Errorf("EmitChange = %d deliveries, want 1", n)
	}
	fr, _ := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventPostgresChanges, After: mark})
	wantText(t, fr, `[null,null,"realtime:room1","postgres_changes",{"ids":[`+jsonInt(id1)+`],"data":{"schema":"public","table":"todos","commit_timestamp":"2026-01-01T00:00:00.000Z","type":"INSERT","columns":[{"name":"id","type":"int8"},{"name":"done","type":"bool"}],"record":{"id":1,"done":"t"},"errors":null}}]`)
	cb := ch.Await(t, quick, match{Kind: jsharness.KindPostgresChanges, After: mark})
	wantJSON(t, "INSERT callback", cb.Payload, `{"schema":"public","table":"todos","commit_timestamp":"2026-01-01T00:00:00.000Z","eventType":"INSERT","new":{"id":1,"done":true},"old":{},"errors":null}`)
	var filter map[string]any
	json.Unmarshal(cb.Filter, &filter)
	if filter["table"] != "todos" {
		t.Errorf("the change fired the binding %s", cb.Filter)
	}

	// An update of "other" fires the second binding, with old and new.
	mark = e.d.Mark()
	e.srv.EmitChange("room1", protocol.ChangeData{Schema: "public", Table: "other", CommitTimestamp: "2026-01-01T00:00:01.000Z",
		Type: "UPDATE", Columns: cols, Record: json.RawMessage(`{"id":7,"done":"f"}`), OldRecord: json.RawMessage(`{"id":7}`)})
	fr, _ = e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventPostgresChanges, After: mark})
	if m, _ := fr.Message(); !jsonEqual(mustField(t, m.Payload, "ids"), []byte("["+jsonInt(id2)+"]")) {
		t.Errorf("ids of the update %s, want [%d]", m.Payload, id2)
	}
	cb = ch.Await(t, quick, match{Kind: jsharness.KindPostgresChanges, After: mark})
	wantJSON(t, "UPDATE callback", cb.Payload, `{"schema":"public","table":"other","commit_timestamp":"2026-01-01T00:00:01.000Z","eventType":"UPDATE","new":{"id":7,"done":false},"old":{"id":7},"errors":null}`)

	// A row the filter excludes, and an event the binding does not take,
	// are not delivered.
	mark = e.d.Mark()
	e.srv.EmitChange("room1", protocol.ChangeData{Schema: "public", Table: "todos", CommitTimestamp: "2026-01-01T00:00:02.000Z",
		Type: "INSERT", Columns: cols, Record: json.RawMessage(`{"id":2,"done":"t"}`)})
	e.srv.EmitChange("room1", protocol.ChangeData{Schema: "public", Table: "todos", CommitTimestamp: "2026-01-01T00:00:03.000Z",
		Type: "DELETE", Columns: cols, OldRecord: json.RawMessage(`{"id":1}`)})
	f := e.fence(c, ch.Topic)
	e.noFrames("changes no binding takes", mark, f, match{Client: "a", Dir: "in", Event: protocol.EventPostgresChanges})
}

// jsonInt formats n as JSON.
func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

// mustField returns the raw member name of the JSON object obj.
func mustField(t *testing.T, obj []byte, name string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	return m[name]
}
