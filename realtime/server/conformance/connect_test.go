package conformance

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/token"
)

// Scenario 1: connect and heartbeat.
func TestS01ConnectAndHeartbeat(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{HeartbeatIntervalMs: 1000})
	c.OnHeartbeat(t)
	c.Connect(t)
	open := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "open"})

	connecting := e.d.Events(match{Kind: kSocket, Client: "a", State: "connecting"})
	wantURL := strings.Replace(e.srv.WSURL, "http", "ws", 1) + "?apikey=" + url.QueryEscape(e.srv.AnonKey()) + "&vsn=2.0.0"
	if len(connecting) != 1 || connecting[0].URL != wantURL {
		t.Errorf("connect URL %v, want %s", connecting, wantURL)
	}
	var o struct {
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(open.Raw, &o); err != nil || o.Protocol != "" {
		t.Errorf("server chose subprotocol %q, want none", o.Protocol)
	}

	// Five heartbeat round trips, every one answered within the interval.
	oks := e.d.AwaitN(t, 15*time.Second, match{Kind: kHeartbeat, Client: "a", Status: "ok"}, 5)
	if d := oks[4].Time.Sub(open.Time); d < 4900*time.Millisecond {
		t.Errorf("5 heartbeats %v after open, want >= 5 intervals", d)
	}
	var seq []string
	for _, ev := range e.d.Events(match{Kind: kHeartbeat, Client: "a", After: open.Seq}) {
		if ev.Source != "onHeartbeat" {
			t.Errorf("heartbeat event from %q, want onHeartbeat: %s", ev.Source, ev)
		}
		seq = append(seq, ev.Status)
	}
	if len(seq) < 10 {
		t.Fatalf("heartbeat statuses %v", seq)
	}
	for i, s := range seq[:10] {
		if want := []string{"sent", "ok"}[i%2]; s != want {
			t.Fatalf("heartbeat statuses %v, want sent/ok alternating", seq)
		}
	}
	beats := e.d.Events(match{Kind: kFrame, Client: "a", Dir: "out", Event: protocol.EventHeartbeat})
	if len(beats) < 5 {
		t.Fatalf("%d heartbeat frames", len(beats))
	}
	for _, hb := range beats[:5] {
		m, _ := hb.Message()
		wantText(t, hb, `[null,`+q(m.Ref)+`,"phoenix","heartbeat",{}]`)
		reply := e.d.Await(t, quick, match{Kind: kFrame, Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, m.Ref), Desc: "reply to heartbeat " + m.Ref})
		wantText(t, reply, `[null,`+q(m.Ref)+`,"phoenix","phx_reply",{"status":"ok","response":{}}]`)
		if d := reply.Time.Sub(hb.Time); d >= time.Second {
			t.Errorf("heartbeat %s answered after %v, want < 1 interval", m.Ref, d)
		}
	}
	for _, bad := range []string{"timeout", "error"} {
		if evs := e.d.Events(match{Kind: kHeartbeat, Status: bad}); len(evs) > 0 {
			t.Errorf("heartbeat %s: %v", bad, evs)
		}
	}
	if evs := e.d.Events(match{Kind: kSocket, State: "close"}); len(evs) > 0 {
		t.Errorf("socket closed: %v", evs)
	}
	if st := c.State(t); !st.IsConnected {
		t.Errorf("client state %+v, want connected", st)
	}
}

// Scenario 1, negative: a bad apikey gets an HTTP 401 with a JSON error
// instead of the upgrade.
func TestS01BadAPIKeyRefused(t *testing.T) {
	e := newEnv(t)
	secret := e.srv.Secret()
	exp := time.Now().Add(time.Hour).Unix()
	sign := func(secret []byte, claims map[string]any) string {
		tok, err := token.Sign(secret, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	b64 := base64.RawURLEncoding.EncodeToString
	noneToken := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"role":"anon","exp":9999999999}`)) + "."
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"missing", "vsn=2.0.0", "API key is missing"},
		{"expired", "apikey=" + e.userToken("u", -time.Minute, nil) + "&vsn=2.0.0", "Token has expired"},
		{"not a JWT", "apikey=not-a-jwt&vsn=2.0.0", "The token provided is not a valid JWT"},
		{"bad signature", "apikey=" + sign([]byte("another secret"), map[string]any{"role": "anon", "exp": exp}) + "&vsn=2.0.0", "Failed to validate JWT signature"},
		{"no role", "apikey=" + sign(secret, map[string]any{"exp": exp}) + "&vsn=2.0.0", "Fields `role` and `exp` are required in JWT"},
		{"no exp", "apikey=" + sign(secret, map[string]any{"role": "anon"}) + "&vsn=2.0.0", "Fields `role` and `exp` are required in JWT"},
		{"alg none", "apikey=" + noneToken + "&vsn=2.0.0", "Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
	}
	for _, tt := range tests {
		resp, body := dialRefused(t, e.srv.WSURL, tt.query)
		if resp.StatusCode != 401 {
			t.Errorf("%s: HTTP %d %s, want 401", tt.name, resp.StatusCode, body)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", tt.name, ct)
		}
		wantJSON(t, tt.name, []byte(body), `{"error":`+q(tt.want)+`}`)
	}
	if resp, body := dialRefused(t, e.srv.WSURL, "apikey="+e.srv.AnonKey()+"&vsn=3.0.0"); resp.StatusCode < 400 {
		t.Errorf("vsn 3.0.0: HTTP %d %s, want a refusal", resp.StatusCode, body)
	}

	// realtime-js with an expired key: the upgrade fails, nothing opens.
	c := e.client("a", jsharness.ClientOptions{APIKey: e.userToken("u", -time.Minute, nil)})
	c.Connect(t)
	e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "error"})
	if evs := e.d.Events(match{Kind: kSocket, State: "open"}); len(evs) > 0 {
		t.Errorf("socket opened with an expired key: %v", evs)
	}
}
