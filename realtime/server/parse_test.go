package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/token"
)

var protoChange = protocol.ChangeData{Schema: "public", Table: "t", Type: "INSERT"}

func TestParseFilter(t *testing.T) {
	row := map[string]any{"id": json.Number("5"), "name": "a,b", "done": "t", "tag": "Hello", "n": nil}
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"id=eq.5", true}, {"id=eq.5.0", true}, {"id=neq.5", false}, {"id=lt.10", true}, {"id=lte.5", true},
		{"id=gt.5", false}, {"id=gte.5", true}, {"id=in.(1,5,7)", true}, {"id=not.in.(1,5,7)", false},
		{`name=eq."a,b"`, true}, {`name=in.("a,b",c)`, true}, {"id=gt.0,id=lt.100", true}, {"id=gt.0,id=lt.3", false},
		{"tag=like.He%", true}, {"tag=like.he%", false}, {"tag=ilike.he*", true}, {"tag=match.^H.l", true},
		{"tag=imatch.^h", true}, {"n=is.null", true}, {"id=is.null", false}, {"done=is.true", true},
		{"n=eq.1", false}, {"n=not.eq.1", false}, {"missing=isdistinct.1", true}, {"id=isdistinct.5", false},
		{"", true}, {"  ", true}, {`name=eq."a\"b"`, false},
	} {
		conds, err := parseFilter(tc.filter)
		if err != nil {
			t.Errorf("parseFilter(%q): %v", tc.filter, err)
			continue
		}
		b := binding{event: "*", schema: "*", filter: conds}
		if got := b.matches(&protoChange, row); got != tc.want {
			t.Errorf("filter %q on %v = %v, want %v", tc.filter, row, got, tc.want)
		}
	}
	for _, bad := range []string{"id", "id=", "id=eq", "id=zz.1", "id=in.1", "id=in.(1", `id=eq."x`, "id=eq.(", "=eq.1", "id=not.zz.1", `id=eq.1"`, "id=eq.1,"} {
		if _, err := parseFilter(bad); err == nil {
			t.Errorf("parseFilter(%q) accepted", bad)
		}
	}
}

func TestParseJoin(t *testing.T) {
	cfg, problems := parseJoin([]byte(`{"config":{"broadcast":{"ack":"TRUE","self":true},"presence":{"key":42,"enabled":"true"},"private":"True","postgres_changes":[null,{"event":"*","schema":"public"},7,{"event":1}]},"user_token":"u","access_token":"a"}`))
	if !cfg.ack || !cfg.self || !cfg.presenceEnabled || !cfg.private || cfg.presenceKey != "42" || cfg.token != "a" || len(cfg.bindings) != 1 {
		t.Errorf("parseJoin: %+v", cfg)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "postgres_changes[2]") {
		t.Errorf("problems: %q", problems)
	}
	cfg, problems = parseJoin([]byte(`{"config":{"broadcast":{"ack":"maybe"},"presence":{"key":{}}},"user_token":"u"}`))
	if cfg.ack || cfg.presenceKey != "" || cfg.token != "u" || len(problems) != 2 {
		t.Errorf("parseJoin bad shapes: %+v %q", cfg, problems)
	}
}

func TestVerifyTokenClaims(t *testing.T) {
	secret := []byte("s")
	now := time.Unix(1_800_000_000, 0)
	tok, _ := token.Sign(secret, map[string]any{"role": "authenticated", "exp": 1_800_000_060.4, "sub": "u", "app_metadata": map[string]any{"tenant_id": 7}})
	c, err := verifyToken(tok, secret, now)
	if err != nil || c.Exp != 1_800_000_060 || c.TenantID != "7" || c.Sub != "u" {
		t.Fatalf("verifyToken: %+v %v", c, err)
	}
	tok, _ = token.Sign(secret, map[string]any{"role": "x", "exp": 1_800_000_000})
	if _, err := verifyToken(tok, secret, now); err == nil || err.Message != "Token has expired 0 seconds ago" || err.Connect != "Token has expired" {
		t.Errorf("exp == now: %v", err)
	}
	tok, _ = token.Sign(secret, map[string]any{"role": "x", "exp": 1_800_000_100, "iat": "yesterday"})
	if _, err := verifyToken(tok, secret, now); err != errMalformedJWT {
		t.Errorf("iat string: %v", err)
	}
}

func TestRateWindow(t *testing.T) {
	var r rateWindow
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		if !r.allow(t0.Add(time.Duration(i)*10*time.Millisecond), 5, 1) {
			t.Fatalf("event %d refused", i)
		}
	}
	if r.allow(t0.Add(500*time.Millisecond), 5, 1) {
		t.Errorf("6th event within a second allowed")
	}
	if !r.allow(t0.Add(1050*time.Millisecond), 5, 3) {
		t.Errorf("events a second later refused")
	}
	if r.count(t0.Add(1050*time.Millisecond)) != 3 {
		t.Errorf("count = %d, want 3", r.count(t0.Add(1050*time.Millisecond)))
	}
	if !r.allow(t0, 0, 1000) {
		t.Errorf("limit 0 refused")
	}
}

// TestFanoutEncodesOncePerSerializer checks that a broadcast is encoded
// once per serializer: every subscriber of one serializer is queued the
// very same bytes.
func TestFanoutEncodesOncePerSerializer(t *testing.T) {
	s, err := New(Config{JWTSecret: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp := s.acquireTopic(fanKey{sub: "room1"})
	var conns []*conn
	for i := range 6 {
		v := protocol.V2
		if i%3 == 0 {
			v = protocol.V1
		}
		c := &conn{s: s, vsn: v, wake: make(chan struct{}, 1), log: s.log}
		conns = append(conns, c)
		tp.addLocked(&channel{c: c, topic: tp.name})
	}
	tp.mu.Unlock()
	for _, m := range []*protocol.Message{
		{Topic: tp.name, Event: protocol.EventBroadcast, Broadcast: &protocol.Broadcast{Event: "e", Payload: []byte(`{"a":1}`)}},
		{Topic: tp.name, Event: protocol.EventBroadcast, Payload: []byte(`{"type":"broadcast","event":"e","payload":{}}`)},
	} {
		if n := s.fanout(tp, nil, m); n != 6 {
			t.Fatalf("fanout delivered %d, want 6", n)
		}
	}
	for k := range 2 {
		first := map[protocol.Version]*byte{}
		for _, c := range conns {
			if len(c.queue) != 2 {
				t.Fatalf("queue of %d frames, want 2", len(c.queue))
			}
			f := c.queue[k]
			if p, ok := first[c.vsn]; ok && p != &f[0] {
				t.Errorf("message %d: a %s subscriber got its own encoding", k, c.vsn)
			}
			first[c.vsn] = &f[0]
		}
		if first[protocol.V1] == first[protocol.V2] {
			t.Errorf("message %d: V1 and V2 share an encoding", k)
		}
	}
	// The V2 form of the binary push is a kind-4 binary frame (opcode 2).
	if f := conns[1].queue[0]; f[0] != 0x82 || f[2] != protocol.KindUserBroadcast {
		t.Errorf("V2 frame % x, want a binary kind-4 frame", f[:3])
	}
	if f := conns[0].queue[0]; f[0] != 0x81 {
		t.Errorf("V1 frame % x, want text", f[:3])
	}
}
