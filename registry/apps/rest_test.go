package apps_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
	"rtm/registry/apps/appstest"
)

// restRig is the embedded server behind a real proxy whose Observer is
// a Recorder in front of a live model.
type restRig struct {
	srv  *servertest.Server
	live *apps.Model
	rec  *apps.Recorder
	file bytes.Buffer
	px   string // the proxy's URL
}

func newRESTRig(t *testing.T, cfg proxy.Config) *restRig {
	t.Helper()
	r := &restRig{srv: servertest.New(t), live: apps.New(apps.Options{})}
	r.rec = apps.NewRecorder(r.live, &r.file, apps.RecorderOptions{})
	cfg.Upstream, cfg.Observer = r.srv.URL, r.rec
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p)
	t.Cleanup(func() { hs.Close(); _ = p.Close(); _ = r.rec.Close() })
	r.px = hs.URL
	return r
}

// post sends a REST broadcast through the proxy as supabase-js does
// (apikey and Authorization headers, x-client-info).
func (r *restRig) post(t *testing.T, path, token, clientInfo, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.px+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("apikey", r.srv.AnonKey())
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Client-Info", clientInfo)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// subscribe opens a socket through the proxy with clientInfo and joins
// room1 with token.
func (r *restRig) subscribe(t *testing.T, clientInfo, token string) *websocket.Conn {
	t.Helper()
	h := http.Header{"X-Client-Info": {clientInfo}}
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.px, "http")+"/realtime/v1/websocket?vsn=1.0.0&apikey="+r.srv.AnonKey(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	join := `{"topic":"realtime:room1","event":"phx_join","payload":{"config":{},"access_token":"` + token + `"},"ref":"1","join_ref":"1"}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		t.Fatal(err)
	}
	readFor(t, c, `"phx_reply"`)
	return c
}

func readFor(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if bytes.Contains(m, []byte(want)) {
			return
		}
	}
}

func viaREST(c *apps.Channel) []apps.Message {
	var out []apps.Message
	for _, m := range c.Messages {
		if m.Via == apps.ViaREST {
			out = append(out, m)
		}
	}
	return out
}

// TestRESTBroadcastModelled: an app's socket holds room1 through the
// proxy; its REST batch of two messages (same x-client-info, same user)
// reaches the subscriber and is shown on that socket's channel as two
// app messages via rest with the server's 202, published as app_message
// events with "via":"rest"; a request of another client is kept on its
// own. The recording replays to the same model and holds no key.
func TestRESTBroadcastModelled(t *testing.T) {
	r := newRESTRig(t, proxy.Config{})
	sub := r.live.Subscribe(64)
	defer sub.Close()
	user := r.srv.UserToken(t, "user-7", time.Hour, nil)
	app := r.subscribe(t, "supabase-js-node/2.0.0", user)

	padded := masktest.PaddedJWT(r.srv.Secret(), map[string]any{"role": "service_role"})
	secret := masktest.Payload(r.srv.ServiceRoleKey(), r.srv.SecretKey(), padded)
	status := r.post(t, "/realtime/v1/api/broadcast", user, "supabase-js-node/2.0.0",
		`{"messages":[{"topic":"room1","event":"first","payload":{"n":1}},{"topic":"room1","event":"second","payload":`+string(secret)+`}]}`)
	if status != http.StatusAccepted {
		t.Fatalf("POST: %d, want 202", status)
	}
	readFor(t, app, `"first"`)
	readFor(t, app, `"second"`)
	snap := eventually(t, r.live, "two messages via rest", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:room1")
		return c != nil && len(viaREST(c)) == 2
	})
	msgs := viaREST(channelOf(snap, 1, "realtime:room1"))
	for i, want := range []string{"first", "second"} {
		m := msgs[i]
		if m.UserEvent != want || m.HTTPStatus != http.StatusAccepted || m.Dir != "app->upstream" || m.Event != "broadcast" || m.Bytes == 0 {
			t.Errorf("message %d: %+v, want %s, 202, from the app", i, m, want)
		}
	}
	if len(snap.REST) != 1 || snap.REST[0].Socket != 1 || snap.REST[0].MessageCount != 2 || len(snap.REST[0].Messages) != 0 ||
		snap.REST[0].Token.Subject != "user-7" || snap.REST[0].Status != 202 || !snap.REST[0].Decoded {
		t.Errorf("REST list %+v", snap.REST)
	}
	if snap.Stats.RESTRequests != 1 || snap.Stats.RESTMessages != 2 {
		t.Errorf("stats %+v", snap.Stats)
	}

	// Another client: no socket of its own, kept with its request.
	if status := r.post(t, "/realtime/v1/api/broadcast", r.srv.AnonKey(), "curl", `{"messages":[{"topic":"room1","event":"alone","payload":{}}]}`); status != 202 {
		t.Fatalf("second POST: %d", status)
	}
	readFor(t, app, `"alone"`)
	snap = eventually(t, r.live, "the second request", func(s apps.Snapshot) bool { return len(s.REST) == 2 })
	if rq := snap.REST[1]; rq.Socket != 0 || len(rq.Messages) != 1 || rq.Messages[0].UserEvent != "alone" || rq.Messages[0].Via != apps.ViaREST || rq.Token.Role != "anon" {
		t.Errorf("REST-only request %+v", rq)
	}

	var events []apps.Event
	for len(events) < 3 {
		select {
		case ev := <-sub.Events():
			if ev.Via == apps.ViaREST {
				events = append(events, ev)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%d events via rest, want 3", len(events))
		}
	}
	if e := events[0]; e.Type != apps.TypeMessage || e.Action != "message" || e.Socket != 1 || e.Topic != "realtime:room1" || e.HTTPStatus != 202 || e.UserEvent != "first" {
		t.Errorf("event %+v", e)
	}
	if e := events[2]; e.Socket != 0 || e.UserEvent != "alone" {
		t.Errorf("event %+v", e)
	}
	var nd bytes.Buffer
	for _, e := range events {
		if err := apps.WriteNDJSON(&nd, e); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(nd.String(), `"via":"rest"`) || !strings.Contains(nd.String(), `"http_status":202`) {
		t.Errorf("NDJSON %s", nd.String())
	}

	_ = app.Close()
	eventually(t, r.live, "the socket closed", func(s apps.Snapshot) bool { return !socketOf(s, 1).Closed.IsZero() })
	if err := r.rec.Close(); err != nil {
		t.Fatal(err)
	}
	want := r.live.Snapshot()
	want.Stats.EventsDropped = 0
	got, _ := replayLines(t, r.file.Bytes())
	appstest.SameSnapshot(t, got.Snapshot(), want)
	if !bytes.Contains(r.file.Bytes(), []byte(`"type":"app_rest"`)) {
		t.Errorf("no app_rest line in %s", r.file.Bytes())
	}
	js, _ := json.Marshal(want)
	for _, k := range []string{r.srv.ServiceRoleKey(), r.srv.SecretKey(), r.srv.AnonKey(), user, padded} {
		for what, b := range map[string][]byte{"recording": r.file.Bytes(), "NDJSON": nd.Bytes(), "snapshot": js} {
			if masktest.Holds(b, k) {
				t.Errorf("the %s holds a key %.12s…", what, k)
			}
		}
	}
}

// TestRESTBroadcastUndecoded: a body over the proxy's copy bound is
// forwarded (the subscriber gets it) and shown clipped; a malformed one
// is forwarded (the server answers 422) and shown not decoded with the
// reason; both replay.
func TestRESTBroadcastUndecoded(t *testing.T) {
	r := newRESTRig(t, proxy.Config{MaxRESTBody: 512})
	user := r.srv.UserToken(t, "user-8", time.Hour, nil)
	app := r.subscribe(t, "app/1", user)
	big := `{"messages":[{"topic":"room1","event":"big","payload":{"pad":"` + strings.Repeat("x", 2000) + `"}}]}`
	if status := r.post(t, "/realtime/v1/api/broadcast", user, "app/1", big); status != 202 {
		t.Fatalf("big: %d", status)
	}
	readFor(t, app, `"big"`)
	// Each request is reported from a goroutine of its own once
	// answered: the first before the second is sent, so that they keep
	// their order.
	eventually(t, r.live, "the big request", func(s apps.Snapshot) bool { return len(s.REST) == 1 })
	if status := r.post(t, "/realtime/v1/api/broadcast", user, "app/1", `{"messages":[{"topic":`); status != http.StatusUnprocessableEntity {
		t.Fatalf("malformed: %d, want the server's 422", status)
	}
	snap := eventually(t, r.live, "two requests", func(s apps.Snapshot) bool { return len(s.REST) == 2 })
	if rq := snap.REST[0]; rq.Decoded || !rq.Clipped || rq.Bytes != int64(len(big)) || rq.Status != 202 || rq.MessageCount != 0 {
		t.Errorf("big: %+v", rq)
	}
	if rq := snap.REST[1]; rq.Decoded || rq.Clipped || rq.Error == "" || rq.Status != 422 {
		t.Errorf("malformed: %+v", rq)
	}
	if c := channelOf(snap, 1, "realtime:room1"); len(viaREST(c)) != 0 || snap.Stats.RESTMessages != 0 {
		t.Errorf("messages from undecoded requests: %+v", c.Messages)
	}
	if err := r.rec.Close(); err != nil {
		t.Fatal(err)
	}
	want := r.live.Snapshot()
	want.Stats.EventsDropped = 0
	got, _ := replayLines(t, r.file.Bytes())
	appstest.SameSnapshot(t, got.Snapshot(), want)
}

// TestRESTInputMasked: an app_rest line written by anyone is masked
// again when read.
func TestRESTInputMasked(t *testing.T) {
	srv := servertest.New(t)
	key := srv.ServiceRoleKey()
	line := `{"type":"app_rest","time":"2026-01-01T00:00:00Z","client_info":"` + key + `","path":"/realtime/v1/api/broadcast?k=` + key +
		`","error":"` + key + `","status":202,"decoded":true,"messages":[{"topic":"` + key + `","event":"e","text":"{\"apikey\":\"` + key + `\"}"},{"topic":"t","event":"` + key + `","data":"` +
		"AAEC" + `","binary":true}]}`
	in, err := apps.DecodeInput([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(in)
	if masktest.Holds(b, key) {
		t.Errorf("decoded line holds the key: %s", b)
	}
	m := apps.New(apps.Options{})
	if err := m.Apply(in); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(m.Snapshot())
	if masktest.Holds(js, key) || len(m.Snapshot().REST[0].Messages) != 2 {
		t.Errorf("snapshot %s", js)
	}
	for _, bad := range []string{`{"type":"app_rest","status":-1}`, `{"type":"app_rest","messages":[{"text":"a","data":"AA=="}]}`} {
		if _, err := apps.DecodeInput([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
