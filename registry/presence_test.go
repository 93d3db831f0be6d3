package registry

import (
	"encoding/json"
	"errors"
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
	c := newPresenceCache()
	t0 := time.Unix(1000, 0)
	a1 := meta(t, "r1", `{"name":"Ann","online_at":"2026-01-02T03:04:05Z"}`)
	u := c.join("ann", nil, []protocol.PresenceMeta{a1}, t0)
	if u.UserID != "ann" || u.Name != "Ann" || u.Metas != 1 || !u.OnlineSince.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("user %+v", u)
	}
	var p map[string]any
	if err := json.Unmarshal(u.Payload, &p); err != nil || p["phx_ref"] != nil || p["name"] != "Ann" {
		t.Fatalf("payload %s", u.Payload)
	}
	// A second connection of ann, and bob without online_at.
	a2 := meta(t, "r2", `{"name":"Ann 2"}`)
	u = c.join("ann", []protocol.PresenceMeta{a1}, []protocol.PresenceMeta{a2}, t0.Add(time.Second))
	if u.Metas != 2 || u.Name != "Ann 2" {
		t.Fatalf("after second join %+v", u)
	}
	c.join("bob", nil, []protocol.PresenceMeta{meta(t, "r3", `{"online_at":1767323045000}`)}, t0)
	list := c.list("bob")
	if len(list) != 2 || list[0].UserID != "ann" || list[1].UserID != "bob" || !list[1].Self || list[0].Self {
		t.Fatalf("list %+v", list)
	}
	if !list[1].OnlineSince.Equal(time.UnixMilli(1767323045000)) {
		t.Fatalf("bob online since %v", list[1].OnlineSince)
	}
	// An update replaces a meta (phx_ref_prev): the join carries the new
	// meta and current holds the others.
	u = c.join("ann", []protocol.PresenceMeta{a1, a2}, []protocol.PresenceMeta{meta(t, "r1", `{"name":"Ann*"}`)}, t0)
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
