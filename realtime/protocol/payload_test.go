package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestFlexBoolJoinConfig(t *testing.T) {
	var p JoinPayload
	in := `{"config":{"broadcast":{"ack":"TRUE","self":"false"},"presence":{"key":"alice","enabled":true},"postgres_changes":[{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.1"}],"private":"True"},"user_token":"tok","version":"realtime-js/2.119.0"}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	c := p.Config
	if !c.Broadcast.Ack || c.Broadcast.Self || c.Presence.Key != "alice" || !c.Presence.Enabled || !c.Private {
		t.Fatalf("config %+v", c)
	}
	if len(c.PostgresChanges) != 1 || c.PostgresChanges[0].Filter != "id=eq.1" {
		t.Fatalf("pg %+v", c.PostgresChanges)
	}
	if p.Token() != "tok" {
		t.Fatalf("token %q", p.Token())
	}
	var b FlexBool
	if err := json.Unmarshal([]byte(`"yes"`), &b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("yes: %v", err)
	}
	out, _ := json.Marshal(FlexBool(true))
	if string(out) != "true" {
		t.Fatalf("marshal %s", out)
	}
}

func TestReplies(t *testing.T) {
	if got := string(ReplyPayload(StatusOK, nil)); got != `{"status":"ok","response":{}}` {
		t.Fatal(got)
	}
	p := ErrorReplyPayload(`InvalidJWTToken: Token has expired 5 seconds ago`)
	r, err := ParseReply(p)
	if err != nil || r.Status != StatusError || r.Reason() != "InvalidJWTToken: Token has expired 5 seconds ago" {
		t.Fatalf("%+v %v", r, err)
	}
	code, msg := SplitReason(r.Reason())
	if code != "InvalidJWTToken" || msg != "Token has expired 5 seconds ago" {
		t.Fatalf("%q %q", code, msg)
	}
	if code, msg := SplitReason("unmatched topic"); code != "" || msg != "unmatched topic" {
		t.Fatalf("%q %q", code, msg)
	}
	r, _ = ParseReply([]byte(`{"status":"error","response":"payload_size_exceeded"}`))
	if r.Reason() != "payload_size_exceeded" {
		t.Fatal(r.Reason())
	}
	if _, err := ParseReply([]byte(`{"response":{}}`)); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func TestPresenceMeta(t *testing.T) {
	m, err := NewPresenceMeta([]byte(`{"status":"online","phx_ref":"evil","n":[1,2]}`), "F1", "")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Raw) != `{"status":"online","n":[1,2],"phx_ref":"F1"}` {
		t.Fatalf("raw %s", m.Raw)
	}
	m2, err := NewPresenceMeta([]byte(`{}`), "F2", "F1")
	if err != nil || string(m2.Raw) != `{"phx_ref":"F2","phx_ref_prev":"F1"}` {
		t.Fatalf("raw %s %v", m2.Raw, err)
	}
	if _, err := NewPresenceMeta([]byte(`[1]`), "x", ""); err == nil {
		t.Fatal("non-object meta accepted")
	}
	var st PresenceState
	in := `{"alice":{"metas":[{"status":"online","phx_ref":"F1"},{"phx_ref":"F2","phx_ref_prev":"F1"}]}}`
	if err := json.Unmarshal([]byte(in), &st); err != nil {
		t.Fatal(err)
	}
	metas := st["alice"].Metas
	if len(metas) != 2 || metas[0].Ref != "F1" || metas[1].PrevRef != "F1" {
		t.Fatalf("%+v", metas)
	}
	if string(metas[0].UserFields()) != `{"status":"online"}` {
		t.Fatalf("user fields %s", metas[0].UserFields())
	}
	out, _ := json.Marshal(st)
	if string(out) != in {
		t.Fatalf("round trip %s", out)
	}
	if err := json.Unmarshal([]byte(`{"a":{"metas":[3]}}`), &st); err == nil {
		t.Fatal("non-object meta decoded")
	}
}

func TestSubTopic(t *testing.T) {
	for in, want := range map[string]string{"realtime:room1": "room1", "REALTIME:room1": "room1", "room1": "room1", "realtime:": "", "phoenix": "phoenix"} {
		if got := SubTopic(in); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
	if Topic("a") != "realtime:a" {
		t.Fatal("Topic")
	}
}

func TestPostgresChangesPayload(t *testing.T) {
	in := `{"ids":[11],"data":{"schema":"public","table":"todos","commit_timestamp":"2026-01-01T00:00:00.000Z","type":"INSERT","columns":[{"name":"id","type":"int8"}],"record":{"id":1},"errors":null}}`
	var p PostgresChangesPayload
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.IDs[0] != 11 || p.Data.Type != "INSERT" || string(p.Data.Record) != `{"id":1}` || p.Data.Errors != nil {
		t.Fatalf("%+v", p)
	}
	out, _ := json.Marshal(p)
	if string(out) != in {
		t.Fatalf("round trip\n got %s\nwant %s", out, in)
	}
}

func TestValid(t *testing.T) {
	good := []string{`{}`, `[]`, `0`, `-0.5e+3`, `"a\u00e9"`, ` {"a":[true,false,null,{"b":"c"}]} `}
	for _, g := range good {
		if !Valid([]byte(g)) || Valid([]byte(g)) != json.Valid([]byte(g)) {
			t.Errorf("%q should be valid", g)
		}
	}
	bad := []string{``, `{`, `{"a"}`, `[1,]`, `01`, `1.`, `"\u12"`, `{} {}`, `nul`, `{"a":1,}`}
	for _, b := range bad {
		if Valid([]byte(b)) {
			t.Errorf("%q should be invalid", b)
		}
	}
	if IsObject([]byte(`[]`)) || !IsObject([]byte(` {"a":1}`)) {
		t.Fatal("IsObject")
	}
}

func TestSetMember(t *testing.T) {
	for _, tc := range []struct{ obj, key, val, want string }{
		{`{"event":"INSERT","schema":"public"}`, "id", "31", `{"event":"INSERT","schema":"public","id":31}`},
		{`{}`, "id", "1", `{"id":1}`},
		{` { "id" : 5 , "a" : [1] } `, "id", " 7 ", `{"a":[1],"id":7}`},
		{`{"a":"\u00e9","id":1,"id":2}`, "id", `"x"`, `{"a":"\u00e9","id":"x"}`},
	} {
		got, err := SetMember([]byte(tc.obj), tc.key, []byte(tc.val))
		if err != nil {
			t.Fatalf("SetMember(%s): %v", tc.obj, err)
		}
		if string(got) != tc.want {
			t.Errorf("SetMember(%s, %s, %s) = %s, want %s", tc.obj, tc.key, tc.val, got, tc.want)
		}
	}
	for _, bad := range []struct{ obj, val string }{{`[1]`, "1"}, {`{"a":}`, "1"}, {`{}`, "nope"}, {`null`, "1"}, {`{} x`, "1"}} {
		if _, err := SetMember([]byte(bad.obj), "id", []byte(bad.val)); !errors.Is(err, ErrMalformed) {
			t.Errorf("SetMember(%s, %s) err = %v, want ErrMalformed", bad.obj, bad.val, err)
		}
	}
}
