package proxy_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
)

// restRecorder is a recorder that also keeps the REST broadcasts.
type restRecorder struct {
	*recorder // its mu guards rest too
	rest      []proxy.RESTBroadcast
}

func newRESTRecorder() *restRecorder { return &restRecorder{recorder: newRecorder()} }

func (r *restRecorder) REST(rb proxy.RESTBroadcast) {
	for i := range rb.Messages {
		rb.Messages[i].Payload = bytes.Clone(rb.Messages[i].Payload)
	}
	r.mu.Lock()
	r.rest = append(r.rest, rb)
	r.mu.Unlock()
	r.signal()
}

// waitREST waits until n REST broadcasts have been reported.
func (r *restRecorder) waitREST(t *testing.T, n int) []proxy.RESTBroadcast {
	t.Helper()
	return waitRecorded(t, r.recorder, &r.rest, n, "REST broadcasts reported")
}

func post(t testing.TB, url, token, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("apikey", token)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Client-Info", "supabase-js-node/2.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A REST batch broadcast through the proxy reaches the embedded server's
// subscribers, and the Observer is told its messages, the status and the
// token's claims.
func TestRESTBroadcastObserved(t *testing.T) {
	srv := servertest.New(t)
	rec := newRESTRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: srv.URL, Observer: rec})
	sub := dial(t, wsURL(hs.URL, "/realtime/v1/websocket")+"?vsn=2.0.0&apikey="+srv.AnonKey(), nil)
	if err := sub.WriteMessage(websocket.TextMessage, []byte(`["1","1","realtime:room1","phx_join",{"config":{}}]`)); err != nil {
		t.Fatal(err)
	}
	readUntil(t, sub, `"phx_reply"`)

	user := srv.UserToken(t, "user-7", time.Hour, nil)
	status, body := post(t, hs.URL+"/realtime/v1/api/broadcast", user, "application/json", strings.NewReader(
		`{"messages":[{"topic":"room1","event":"a","payload":{"n":1}},{"topic":"room1","event":"b","payload":{"n":2},"private":false}]}`))
	if status != http.StatusAccepted {
		t.Fatalf("POST: %d %s, want 202", status, body)
	}
	readUntil(t, sub, `"event":"a"`)
	readUntil(t, sub, `"event":"b"`)

	rb := rec.waitREST(t, 1)[0]
	if rb.ID != 1 || rb.Status != http.StatusAccepted || !rb.Decoded || rb.Clipped || rb.Error != "" {
		t.Fatalf("observation %+v, want ID 1, 202, decoded", rb)
	}
	if rb.Path != "/realtime/v1/api/broadcast" || rb.Header.Get("X-Client-Info") != "supabase-js-node/2.0.0" || rb.RemoteAddr == "" {
		t.Errorf("request %q %v %q", rb.Path, rb.Header, rb.RemoteAddr)
	}
	if rb.Answered.Before(rb.Time) || rb.Bytes == 0 {
		t.Errorf("times %v %v, bytes %d", rb.Time, rb.Answered, rb.Bytes)
	}
	if len(rb.Messages) != 2 || rb.Messages[0].Topic != "room1" || rb.Messages[0].Event != "a" ||
		string(rb.Messages[0].Payload) != `{"n":1}` || rb.Messages[1].Event != "b" {
		t.Errorf("messages %+v", rb.Messages)
	}

	// The single endpoint: topic and event from the path.
	status, _ = post(t, hs.URL+"/realtime/v1/api/broadcast/room1/events/ev%20one?private=false", user, "application/octet-stream", strings.NewReader("\x00\x01"))
	if status != http.StatusAccepted {
		t.Fatalf("single: %d", status)
	}
	rb = rec.waitREST(t, 2)[1]
	if !rb.Decoded || len(rb.Messages) != 1 || rb.Messages[0].Topic != "room1" || rb.Messages[0].Event != "ev one" ||
		!rb.Messages[0].Binary || string(rb.Messages[0].Payload) != "\x00\x01" {
		t.Errorf("single %+v", rb)
	}
}

func readUntil(t *testing.T, c *websocket.Conn, want string) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(quick))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if bytes.Contains(m, []byte(want)) {
			return m
		}
	}
}

// sumUpstream answers every request with status and the sha256 of its
// body (sumOf).
func sumUpstream(t testing.TB, status int) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		w.WriteHeader(status)
		_, _ = w.Write(h.Sum(nil))
	}))
	t.Cleanup(up.Close)
	return up
}

func sumOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return string(sum[:])
}

// A body over MaxRESTBody is forwarded whole and unchanged; the
// observation says it was clipped and holds no message. A body that is
// no batch is forwarded, and reported not decoded.
func TestRESTBroadcastClippedAndMalformed(t *testing.T) {
	up := sumUpstream(t, http.StatusAccepted)
	rec := newRESTRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec, MaxRESTBody: 1024})

	big := `{"messages":[{"topic":"room1","event":"e","payload":{"pad":"` + strings.Repeat("p", 10000) + `"}}]}`
	status, body := post(t, hs.URL+"/realtime/v1/api/broadcast", "", "application/json", strings.NewReader(big))
	if status != http.StatusAccepted || body != sumOf(big) {
		t.Fatalf("big body: status %d, the upstream did not get it unchanged", status)
	}
	rb := rec.waitREST(t, 1)[0]
	if rb.Decoded || !rb.Clipped || len(rb.Messages) != 0 || rb.Bytes != int64(len(big)) || rb.Status != http.StatusAccepted {
		t.Errorf("big: %+v, want clipped, not decoded, %d bytes", rb, len(big))
	}

	for i, bad := range []string{`{"messages":[{"topic":1}`, `{}`, `[1,2]`} {
		status, body := post(t, hs.URL+"/realtime/v1/api/broadcast", "", "application/json", strings.NewReader(bad))
		if status != http.StatusAccepted || body != sumOf(bad) {
			t.Fatalf("%s: status %d, not forwarded unchanged", bad, status)
		}
		rb := rec.waitREST(t, 2+i)[1+i]
		if rb.Decoded || rb.Clipped || rb.Error == "" || len(rb.Messages) != 0 {
			t.Errorf("%s: %+v, want not decoded with an error", bad, rb)
		}
	}

	// Other requests, GETs and other paths are not observed.
	for _, path := range []string{"/rest/v1/items", "/realtime/v1/api/broadcast/x", "/realtime/v1/api/broadcasts"} {
		post(t, hs.URL+path, "", "application/json", strings.NewReader(`{"messages":[]}`))
	}
	if resp, err := http.Get(hs.URL + "/realtime/v1/api/broadcast"); err == nil {
		resp.Body.Close()
	}
	post(t, hs.URL+"/realtime/v1/api/broadcast", "", "application/json", strings.NewReader(`{"messages":[]}`))
	got := rec.waitREST(t, 5)
	if len(got) != 5 || !got[4].Decoded || len(got[4].Messages) != 0 {
		t.Errorf("%d observations (the last %+v), want 5: the others are no REST broadcasts", len(got), got[len(got)-1])
	}
}

// A slow body streams: the upstream reads its first piece before the app
// has written the second.
func TestRESTBroadcastStreams(t *testing.T) {
	got := make(chan string, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				break
			}
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(up.Close)
	rec := newRESTRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec})
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/realtime/v1/api/broadcast", pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	first, second := `{"messages":[{"topic":"a","event":"e",`, `"payload":{}}]}`
	if _, err := io.WriteString(pw, first); err != nil {
		t.Fatal(err)
	}
	var seen string
	for seen != first {
		select {
		case s := <-got:
			seen += s
		case <-time.After(quick):
			t.Fatalf("the upstream got %q of the first piece: the body is held", seen)
		}
	}
	_, _ = io.WriteString(pw, second)
	_ = pw.Close()
	if status := <-done; status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	rb := rec.waitREST(t, 1)[0]
	if !rb.Decoded || len(rb.Messages) != 1 || rb.Messages[0].Topic != "a" {
		t.Errorf("%+v", rb)
	}
}

// The copies of all bodies in flight are bounded too: with MaxRESTBytes
// smaller than a body, it is forwarded and reported clipped.
func TestRESTBroadcastBudget(t *testing.T) {
	up := sumUpstream(t, http.StatusAccepted)
	rec := newRESTRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: up.URL, Observer: rec, MaxRESTBytes: 16})
	body := `{"messages":[{"topic":"room1","event":"e","payload":{}}]}`
	if status, got := post(t, hs.URL+"/realtime/v1/api/broadcast", "", "application/json", strings.NewReader(body)); status != http.StatusAccepted || got != sumOf(body) {
		t.Fatalf("status %d", status)
	}
	if rb := rec.waitREST(t, 1)[0]; !rb.Clipped || rb.Decoded {
		t.Errorf("%+v, want clipped", rb)
	}
}

// An upstream that cannot be reached: the app gets 502, and so does the
// observation.
func TestRESTBroadcastUnreachable(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	url := up.URL
	up.Close()
	rec := newRESTRecorder()
	_, hs := startProxy(t, proxy.Config{Upstream: url, Observer: rec})
	if status, _ := post(t, hs.URL+"/realtime/v1/api/broadcast", "", "application/json", strings.NewReader(`{"messages":[]}`)); status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", status)
	}
	if rb := rec.waitREST(t, 1)[0]; rb.Status != http.StatusBadGateway {
		t.Errorf("%+v, want 502", rb)
	}
}

// FuzzRESTTee: whatever the body, a REST broadcast reaches the upstream
// unchanged and its observation says what became of it (decoded, or
// clipped, or why not). The first byte picks the endpoint.
func FuzzRESTTee(f *testing.F) {
	for _, s := range []string{
		"\x00" + `{"messages":[{"topic":"a","event":"e","payload":{"x":1},"private":true}]}`,
		"\x00" + `{"messages":[{"topic":1}]}`,
		"\x00" + `{"messages":null}`,
		"\x01" + `{"x":1}`,
		"\x02\x00\x01\xff",
		"\x00" + strings.Repeat("[", 300),
	} {
		f.Add([]byte(s))
	}
	up := sumUpstream(f, http.StatusAccepted)
	rec := newRESTRecorder()
	_, hs := startProxy(f, proxy.Config{Upstream: up.URL, Observer: rec, MaxRESTBody: 256})
	paths := []string{"/realtime/v1/api/broadcast", "/realtime/v1/api/broadcast/room/events/e", "/api/broadcast/r/events/bin"}
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		k := int(data[0]) % len(paths)
		path, body := paths[k], string(data[1:])
		ct := "application/json"
		if k == 2 {
			ct = "application/octet-stream"
		}
		status, got := post(t, hs.URL+path, "", ct, strings.NewReader(body))
		if status != http.StatusAccepted || got != sumOf(body) {
			t.Fatalf("status %d: the body was not forwarded unchanged", status)
		}
		n++
		rb := rec.waitREST(t, n)[n-1]
		if rb.Bytes != int64(len(body)) || rb.Decoded == (rb.Clipped || rb.Error != "") || rb.Clipped != (len(body) > 256) {
			t.Fatalf("observation %+v of %d bytes", rb, len(body))
		}
	})
}
