package registry

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"rtm/realtime/protocol"
)

func meta(t *testing.T, ref, payload string) protocol.PresenceMeta {
	t.Helper()
	m, err := protocol.NewPresenceMeta([]byte(payload), ref, "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPresenceCache(t *testing.T) {
	c := newPresenceCache(100)
	t0 := time.Unix(1000, 0)
	a1 := meta(t, "r1", `{"name":"Ann","online_at":"2026-01-02T03:04:05Z"}`)
	u, _ := c.join("ann", []protocol.PresenceMeta{a1}, t0)
	if u.UserID != "ann" || u.Name != "Ann" || u.Metas != 1 || !u.OnlineSince.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("user %+v", u)
	}
	var p map[string]any
	if err := json.Unmarshal(u.Payload, &p); err != nil || p["phx_ref"] != nil || p["name"] != "Ann" {
		t.Fatalf("payload %s", u.Payload)
	}
	// A second connection of ann, and bob without online_at.
	a2 := meta(t, "r2", `{"name":"Ann 2"}`)
	u, _ = c.join("ann", []protocol.PresenceMeta{a1, a2}, t0.Add(time.Second))
	if u.Metas != 2 || u.Name != "Ann 2" {
		t.Fatalf("after second join %+v", u)
	}
	c.join("bob", []protocol.PresenceMeta{meta(t, "r3", `{"online_at":1767323045000}`)}, t0)
	list := c.list("bob")
	if len(list) != 2 || list[0].UserID != "ann" || list[1].UserID != "bob" || !list[1].Self || list[0].Self {
		t.Fatalf("list %+v", list)
	}
	if !list[1].OnlineSince.Equal(time.UnixMilli(1767323045000)) {
		t.Fatalf("bob online since %v", list[1].OnlineSince)
	}
	// An update replaces a meta (phx_ref_prev): the key's metas after the
	// join are the others, then the new one.
	u, _ = c.join("ann", []protocol.PresenceMeta{a2, meta(t, "r1", `{"name":"Ann*"}`)}, t0)
	if u.Metas != 2 || u.Name != "Ann*" {
		t.Fatalf("after update %+v", u)
	}
	u, gone := c.leave("ann", []protocol.PresenceMeta{a2})
	if gone || u.Metas != 1 {
		t.Fatalf("partial leave %+v %v", u, gone)
	}
	u, gone = c.leave("ann", nil)
	if !gone || u.Metas != 0 || c.len() != 1 {
		t.Fatalf("full leave %+v %v len %d", u, gone, c.len())
	}
	if _, ok := c.get("ann"); ok {
		t.Fatal("ann still cached")
	}
	c.reset()
	if c.len() != 0 {
		t.Fatal("reset left users")
	}
}

// The cache holds at most its bound of users (the client's MaxMembers):
// beyond it a join is refused and counted, a reconcile keeps the bound,
// and the client's truncation shows with the cache's own.
func TestPresenceCacheBounded(t *testing.T) {
	c := newPresenceCache(2)
	t0 := time.Unix(1000, 0)
	for _, k := range []string{"a", "b", "c"} {
		c.join(k, []protocol.PresenceMeta{meta(t, "r"+k, `{}`)}, t0)
	}
	if c.len() != 2 || c.truncation() == nil || *c.truncation() != (PresenceTruncation{Members: 1}) {
		t.Fatalf("%d users, truncation %+v", c.len(), c.truncation())
	}
	state := map[string][]protocol.PresenceMeta{}
	for _, k := range []string{"d", "e", "f", "g"} {
		state[k] = []protocol.PresenceMeta{meta(t, "r"+k, `{}`)}
	}
	c.reconcile(state, 0, t0)
	if c.len() != 2 || c.truncation().Members != 2 {
		t.Fatalf("after reconcile: %d users, truncation %+v", c.len(), c.truncation())
	}
	c.reset()
	c.trunc.Metas = 5
	if tr := c.truncation(); tr == nil || tr.Metas != 5 || tr.Members != 0 {
		t.Fatalf("client truncation shown as %+v", tr)
	}
}

func TestTrackPayload(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := trackPayload(PresenceUser{UserID: "u1", Name: "Ann", Payload: json.RawMessage(`{"status":"online","name":"kept"}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["user_id"] != "u1" || m["name"] != "kept" || m["status"] != "online" || m["online_at"] != "2026-01-01T00:00:00Z" {
		t.Fatalf("payload %s", b)
	}
	for _, bad := range []string{`[1]`, `"x"`, `null`, `{`} {
		_, err := trackPayload(PresenceUser{UserID: "u", Payload: json.RawMessage(bad)}, now)
		if !errors.Is(err, ErrInvalidPayload) {
			t.Fatalf("payload %s: %v", bad, err)
		}
	}
}

// A sync reconciles the cache with the client's state when a resync is
// under way, or when the client dropped events and enough of them came
// since the last reconcile (an eighth of the users); else it is put off
// (due) to the next stats tick, so that reconciling costs at most a few
// operations per event.
func TestPresenceCacheReconcilePolicy(t *testing.T) {
	c := newPresenceCache(1000)
	t0 := time.Unix(1000, 0)
	state := map[string][]protocol.PresenceMeta{}
	for i := range 80 {
		k := "u" + strconv.Itoa(i)
		state[k] = []protocol.PresenceMeta{meta(t, "r"+k, `{}`)}
	}
	c.reconcile(state, 0, t0)
	if c.len() != 80 || c.needsReconcile(0) {
		t.Fatalf("%d users; reconcile wanted without drops", c.len())
	}
	c.join("x", []protocol.PresenceMeta{meta(t, "rx", `{}`)}, t0)
	if c.needsReconcile(5) || !c.due {
		t.Fatal("drops after one event: want the reconcile put off")
	}
	for i := range 10 {
		c.leave("u"+strconv.Itoa(i), nil)
	}
	if !c.needsReconcile(5) {
		t.Fatal("drops and 11 events for 71 users: want a reconcile")
	}
	c.reconcile(state, 5, t0)
	if c.len() != 80 || c.due || c.needsReconcile(5) {
		t.Fatalf("after reconcile: %d users, due %v", c.len(), c.due)
	}
	c.resyncing = true
	if !c.needsReconcile(5) {
		t.Fatal("a resync wants a reconcile")
	}
}
