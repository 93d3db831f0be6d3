package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/token"
)

func FuzzParseJoin(f *testing.F) {
	for _, s := range []string{
		`{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}`,
		`{"config":{"broadcast":{"ack":"TRUE"},"presence":{"key":7},"private":"x","postgres_changes":[null,{"event":"*","schema":"public","filter":"id=eq.1"},3]},"access_token":"t"}`,
		`{"config":null,"user_token":5}`, `{}`, `{"config":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !protocol.IsObject(data) {
			return
		}
		cfg, _ := parseJoin(data)
		resp, ids := joinResponse(cfg.bindings)
		if len(ids) != len(cfg.bindings) || !protocol.IsObject(resp) {
			t.Fatalf("join response %q for %q", resp, data)
		}
		var r struct {
			PG []map[string]json.RawMessage `json:"postgres_changes"`
		}
		if err := json.Unmarshal(resp, &r); err != nil || len(r.PG) != len(ids) {
			t.Fatalf("join response %q: %v", resp, err)
		}
		for i, b := range cfg.bindings {
			if _, err := parseBinding(b, ids[i]); err != nil && !strings.Contains(string(b), "filter") {
				t.Fatalf("binding %q: %v", b, err)
			}
		}
	})
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"id=eq.1", `name=in.("a,b",c)`, "id=not.in.(1,2)", "a=gt.0,b=lt.1", `x=eq."\\"`, "t=ilike.%a_", "t=match.(", "id=is.null"} {
		f.Add(s, `{"id":1,"name":"a,b","t":"abc","x":null}`)
	}
	f.Fuzz(func(t *testing.T, filter, rowJSON string) {
		conds, err := parseFilter(filter)
		if err != nil {
			return
		}
		if len(strings.TrimSpace(filter)) > 0 && len(conds) == 0 {
			t.Fatalf("filter %q parsed to nothing", filter)
		}
		var row map[string]any
		_ = json.Unmarshal([]byte(rowJSON), &row)
		b := binding{event: "*", schema: "*", filter: conds}
		b.matches(&protocol.ChangeData{Type: "INSERT"}, row)
	})
}

func FuzzVerifyToken(f *testing.F) {
	secret := []byte("secret")
	good, _ := token.Sign(secret, map[string]any{"role": "anon", "exp": 2_000_000_000})
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("%20" + good)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := verifyToken(token, secret, time.Unix(1_900_000_000, 0))
		if (c == nil) == (err == nil) {
			t.Fatalf("verifyToken(%q) = %v, %v", token, c, err)
		}
		if err != nil && (err.Code == "" || err.Message == "" || err.Connect == "") {
			t.Fatalf("incomplete error %+v", err)
		}
		if c != nil && (c.Role == "" && c.All["role"] == nil) {
			t.Fatalf("claims without role accepted: %+v", c)
		}
	})
}
