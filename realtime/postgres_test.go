package realtime

import (
	"encoding/json"
	"slices"
	"testing"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

// postgres_changes are routed by the server ids of the join reply and the
// binding's event: two channels on one socket with different bindings
// each get only their own changes, with the bindings they matched.
func TestPostgresChangesRoutingByIDs(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	a, ra := channel(t, s, "room1", ChannelConfig{PostgresChanges: []PostgresBinding{
		{Event: "INSERT", Schema: "public", Table: "todos", Filter: "id=eq.1"},
		{Event: "*", Schema: "public", Table: "other"},
		{Event: "DELETE", Schema: "public", Table: "todos"},
	}})
	b, rb := channel(t, s, "room2", ChannelConfig{PostgresChanges: []PostgresBinding{
		{Event: "*", Schema: "public", Table: "todos"},
	}})
	for _, ch := range []*Channel{a, b} {
		if err := ch.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	cols := []protocol.Column{{Name: "id", Type: "int8"}, {Name: "done", Type: "bool"}, {Name: "tags", Type: "_text"}, {Name: "meta", Type: "jsonb"}}
	change := func(table, typ, record, old string) protocol.ChangeData {
		d := protocol.ChangeData{Schema: "public", Table: table, Type: typ, CommitTimestamp: "2026-01-01T00:00:00.000Z", Columns: cols}
		if record != "" {
			d.Record = json.RawMessage(record)
		}
		if old != "" {
			d.OldRecord = json.RawMessage(old)
		}
		return d
	}
	// INSERT todos id 1: a's binding 0 (filter matches), b's binding 0.
	if n := srv.EmitChange("", change("todos", "INSERT", `{"id":1,"done":"t","tags":"{a,b}","meta":"{\"k\":1}"}`, "")); n != 2 {
		t.Fatalf("INSERT delivered %d", n)
	}
	// INSERT todos id 2: only b (a's filter is id=eq.1).
	srv.EmitChange("", change("todos", "INSERT", `{"id":2,"done":"f"}`, ""))
	// UPDATE other: only a's binding 1.
	srv.EmitChange("", change("other", "UPDATE", `{"id":3,"done":"t"}`, `{"id":3}`))
	// DELETE todos: a's binding 2 and b.
	srv.EmitChange("", change("todos", "DELETE", "", `{"id":1}`))

	evA := ra.wait(t, "a's three changes", func(e []Event) bool { return len(changesOf(e)) == 3 })
	evB := rb.wait(t, "b's three changes", func(e []Event) bool { return len(changesOf(e)) == 3 })
	ca, cb := changesOf(evA), changesOf(evB)
	want := []struct {
		typ, table string
		bindings   []int
	}{{"INSERT", "todos", []int{0}}, {"UPDATE", "other", []int{1}}, {"DELETE", "todos", []int{2}}}
	for i, w := range want {
		c := ca[i]
		if c.Type != w.typ || c.Table != w.table || !slices.Equal(c.Bindings, w.bindings) {
			t.Fatalf("a's change %d: %s %s bindings %v, want %+v", i, c.Type, c.Table, c.Bindings, w)
		}
		ids := a.ServerIDs()
		for _, bi := range c.Bindings {
			found := false
			for _, id := range c.IDs {
				found = found || id == ids[bi]
			}
			if !found {
				t.Fatalf("a's change %d: ids %v lack binding %d's id %d", i, c.IDs, bi, ids[bi])
			}
		}
	}
	for i, typ := range []string{"INSERT", "INSERT", "DELETE"} {
		if cb[i].Type != typ || !slices.Equal(cb[i].Bindings, []int{0}) {
			t.Fatalf("b's change %d: %s %v", i, cb[i].Type, cb[i].Bindings)
		}
	}
	// Records are converted by column type, as realtime-js does.
	nu, err := ca[0].New()
	if err != nil || nu["id"] != 1.0 || nu["done"] != true || len(nu["tags"].([]any)) != 2 || nu["meta"].(map[string]any)["k"] != 1.0 {
		t.Fatalf("New() = %#v, %v", nu, err)
	}
	if old, err := ca[2].Old(); err != nil || old["id"] != 1.0 {
		t.Fatalf("Old() = %#v, %v", old, err)
	}
	if nu, _ := ca[2].New(); len(nu) != 0 {
		t.Fatalf("New() of a DELETE = %v", nu)
	}
	if nu, _ := cb[1].New(); nu["done"] != false {
		t.Fatalf("b's second New() = %v", nu)
	}
}

func changesOf(evs []Event) []*PostgresChange {
	var out []*PostgresChange
	for _, e := range evs {
		if e.Type == EventPostgresChange {
			out = append(out, e.Change)
		}
	}
	return out
}

func TestConvertRecord(t *testing.T) {
	cols := []protocol.Column{{Name: "n", Type: "numeric"}, {Name: "f", Type: "float8"}, {Name: "ts", Type: "timestamp"},
		{Name: "j", Type: "json"}, {Name: "bad", Type: "jsonb"}, {Name: "arr", Type: "_int4"}, {Name: "s", Type: "text"}, {Name: "b", Type: "bool"}}
	got, err := ConvertRecord(cols, json.RawMessage(`{"n":"12.5abc","f":"x","ts":"2026-01-01 10:00:00","j":"[1,\"a\"]","bad":"{nope","arr":"{1,2,3}","s":"5","b":"maybe","extra":7}`))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{"n": 12.5, "f": "x", "ts": "2026-01-01T10:00:00", "bad": "{nope", "s": "5", "b": "maybe", "extra": 7.0}
	for k, v := range checks {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if j := got["j"].([]any); j[0] != 1.0 || j[1] != "a" {
		t.Errorf("j = %#v", got["j"])
	}
	if a := got["arr"].([]any); len(a) != 3 || a[2] != 3.0 {
		t.Errorf("arr = %#v", got["arr"])
	}
	if m, err := ConvertRecord(cols, nil); err != nil || len(m) != 0 {
		t.Errorf("nil record: %v %v", m, err)
	}
	if _, err := ConvertRecord(cols, json.RawMessage(`[1]`)); err == nil {
		t.Error("array record accepted")
	}
}
