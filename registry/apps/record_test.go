package apps_test

import (
	"bufio"
	"bytes"

	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/mask/masktest"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
	"rtm/registry/apps/appstest"
)

// replayLines applies the input lines of an app recording to a new
// model and returns it with the number of dropped lines.
func replayLines(t *testing.T, data []byte) (*apps.Model, uint64) {
	t.Helper()
	m := apps.New(apps.Options{})
	var dropped uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 32<<20)
	for sc.Scan() {
		var head struct {
			Type  string `json:"type"`
			Count uint64 `json:"count"`
		}
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if head.Type == apps.LineDropped {
			dropped += head.Count
			continue
		}
		in, err := apps.DecodeInput(sc.Bytes())
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if err := m.Apply(in); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m, dropped
}

// TestRecorderRebuildsModel: rtm's Go client, as the app, talks through
// a real proxy to the embedded server — a user token, presence, a
// broadcast it sends and one a peer sends (both spelling keys), a token
// push, binary in 2.0.0, a leave, a close — while a Recorder writes the
// recording. Applying its lines to a new model rebuilds the live
// model's snapshot exactly (times included), and the file holds no key
// or token however decoded.
func TestRecorderRebuildsModel(t *testing.T) {
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		t.Run(vsn, func(t *testing.T) { testRecorderRebuilds(t, vsn) })
	}
}

func testRecorderRebuilds(t *testing.T, vsn string) {
	srv := servertest.New(t)
	live := apps.New(apps.Options{})
	var file bytes.Buffer
	rec := apps.NewRecorder(live, &file, apps.RecorderOptions{})
	p, err := proxy.New(proxy.Config{Upstream: srv.URL, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p)
	defer func() { hs.Close(); _ = p.Close() }()

	user := srv.UserToken(t, "alice", time.Hour, nil)
	fresh := srv.UserToken(t, "alice", 2*time.Hour, nil)
	v, _ := protocol.ParseVersion(vsn)
	h := http.Header{}
	h.Set("X-Client-Info", "supabase-js-node/2.119.2")
	a, err := realtime.Dial(ctxT(t), hs.URL, &realtime.Options{APIKey: srv.AnonKey(), AccessToken: user, Vsn: v, Header: h,
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := realtime.Dial(ctxT(t), srv.URL, &realtime.Options{APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ch, _, padded := session(t, srv, live, vsn, a, b)
	const topic = "realtime:room1"
	a.SetAuth(fresh)
	eventually(t, live, "the messages and the token push", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, topic)
		if c == nil || len(c.TokenPushes) == 0 {
			return false
		}
		var hello, bob bool
		for _, m := range c.Messages {
			hello = hello || m.UserEvent == "hello" && m.Dir == "upstream->app"
			bob = bob || m.UserEvent == "from-bob"
		}
		return hello && bob
	})
	if err := ch.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	eventually(t, live, "the socket closed", func(s apps.Snapshot) bool {
		so := socketOf(s, 1)
		return so != nil && !so.Closed.IsZero()
	})
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	want := live.Snapshot()
	want.Stats.EventsDropped = 0 // no subscriber in either
	got, dropped := replayLines(t, file.Bytes())
	if dropped != 0 || rec.Counts().Dropped != 0 {
		t.Fatalf("dropped %d (%d)", dropped, rec.Counts().Dropped)
	}
	appstest.SameSnapshot(t, got.Snapshot(), want)
	c := channelOf(want, 1, topic)
	if c.Token.Subject != "alice" || len(c.Attempts) == 0 || c.Attempts[0].Subject != "alice" || c.TokenPushes[0].Token.Expiry.IsZero() {
		t.Errorf("the claims were not kept: %+v", c)
	}
	if n := rec.Counts(); n.Frames == 0 || n.Lines <= n.Frames {
		t.Errorf("counts %+v", n)
	}
	for _, k := range []string{srv.ServiceRoleKey(), srv.SecretKey(), srv.AnonKey(), user, fresh, padded} {
		if masktest.Holds(file.Bytes(), k) {
			t.Errorf("the recording holds a key %.12s…", k)
		}
	}
}

// gate is a writer that blocks until released.
type gate struct {
	open chan struct{}
	buf  bytes.Buffer
}

func (g *gate) Write(b []byte) (int, error) {
	<-g.open
	return g.buf.Write(b)
}

// TestRecorderDropsWhenBehind: a writer that does not move makes the
// bounded queue fill; the calls are still passed on at once, the lost
// ones are counted and a "dropped" line marks them.
func TestRecorderDropsWhenBehind(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	m := apps.New(apps.Options{})
	rec := apps.NewRecorder(m, g, apps.RecorderOptions{MaxQueue: 4})
	now := time.Now()
	rec.Open(proxy.ConnInfo{ID: 1, RemoteAddr: "127.0.0.1:1", RawQuery: "vsn=2.0.0", Header: http.Header{}, Opened: now})
	const n = 100
	for i := range n {
		rec.Frame(proxy.Frame{Conn: 1, Dir: proxy.FromApp, Time: now.Add(time.Duration(i)), Data: []byte(`["1","1","realtime:a","phx_join",{}]`)})
	}
	if got := m.Stats().Frames; got != n {
		t.Fatalf("the model got %d frames, want %d (the recorder must pass every call on)", got, n)
	}
	close(g.open)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	c := rec.Counts()
	if c.Dropped == 0 || c.Lines+c.Dropped != n+1 {
		t.Fatalf("counts %+v, want drops and lines+dropped = %d", c, n+1)
	}
	_, dropped := replayLines(t, g.buf.Bytes())
	if dropped != c.Dropped {
		t.Errorf("dropped lines count %d, the recorder %d", dropped, c.Dropped)
	}
}

// TestDecodeInputRejects: the decoder names what is wrong.
func TestDecodeInputRejects(t *testing.T) {
	for line, want := range map[string]string{
		`nope`:                            "not an app recording line",
		`{"type":"app_open"}`:             "without a socket",
		`{"type":"app_frame","socket":1}`: "dir",
		`{"type":"app_bogus"}`:            "unknown",
		`{"type":"app_frame","socket":1,"dir":"app->upstream","text":"x","data":"eA=="}`: "both",
	} {
		if _, err := apps.DecodeInput([]byte(line)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", line, err, want)
		}
	}
}

func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{
		`{"type":"app_open","time":"2026-01-01T00:00:00Z","socket":1,"vsn":"2.0.0","claims":{"role":"anon"}}`,
		`{"type":"app_frame","time":"2026-01-01T00:00:01Z","socket":1,"dir":"app->upstream","text":"[\"1\",\"1\",\"realtime:a\",\"phx_join\",{\"access_token\":\"x\"}]","bytes":40}`,
		`{"type":"app_frame","time":"2026-01-01T00:00:01Z","socket":1,"dir":"upstream->app","binary":true,"data":"BAEBYWI="}`,
		`{"type":"app_close","time":"2026-01-01T00:00:02Z","socket":1,"by":"app","code":1000}`,
		`{"type":"app_fault","socket":1,"kind":"drop"}`,
		`{"type":"app_tick","time":"2026-01-01T00:00:03Z"}`,
		`{"type":"app_rest","time":"2026-01-01T00:00:04Z","answered":"2026-01-01T00:00:04.001Z","client_info":"supabase-js/2","path":"/realtime/v1/api/broadcast","claims":{"role":"authenticated","subject":"u"},"status":202,"bytes":80,"decoded":true,"messages":[{"topic":"a","event":"e","text":"{\"n\":1}","bytes":7},{"topic":"a","event":"b","data":"AAE=","bytes":2,"binary":true,"private":true}]}`,
		`{"type":"app_rest","time":"2026-01-01T00:00:05Z","status":413,"bytes":2000000,"clipped":true,"error":"too big"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := apps.DecodeInput(b)
		if err != nil {
			return
		}
		m := apps.New(apps.Options{})
		_ = m.Apply(apps.Input{Type: apps.LineOpen, Socket: in.Socket, Time: in.Time})
		if err := m.Apply(in); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := apps.DecodeInput(out); err != nil {
			t.Fatalf("re-encoded %s: %v", out, err)
		}
	})
}

// TestRecorderFaultAndReconnect: the proxy drops the app's socket; the
// app (rtm's Go client) reconnects and rejoins. The recording has the
// fault, and rebuilds the two sockets linked as attempts of one
// connection, with the rejoin.
func TestRecorderFaultAndReconnect(t *testing.T) {
	srv := servertest.New(t)
	live := apps.New(apps.Options{})
	var file bytes.Buffer
	rec := apps.NewRecorder(live, &file, apps.RecorderOptions{})
	p, err := proxy.New(proxy.Config{Upstream: srv.URL, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p)
	defer func() { hs.Close(); _ = p.Close() }()
	h := http.Header{}
	h.Set("X-Client-Info", "app")
	a, err := realtime.Dial(ctxT(t), hs.URL, &realtime.Options{APIKey: srv.AnonKey(), Header: h,
		RejoinAfter:    func(int) time.Duration { return 100 * time.Millisecond },
		ReconnectAfter: func(int) time.Duration { return 150 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ch, err := a.Channel("room1", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, live, "joined", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:room1")
		return c != nil && c.Status == apps.StatusJoined
	})
	if err := p.Drop(1); err != nil {
		t.Fatal(err)
	}
	eventually(t, live, "the rejoin on a second socket", func(s apps.Snapshot) bool {
		c := channelOf(s, 2, "realtime:room1")
		return c != nil && c.Status == apps.StatusJoined
	})
	_ = a.Close()
	eventually(t, live, "closed", func(s apps.Snapshot) bool {
		so := socketOf(s, 2)
		return so != nil && !so.Closed.IsZero()
	})
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	want := live.Snapshot()
	if so := socketOf(want, 2); so.Attempt != 2 || so.Previous != 1 {
		t.Fatalf("the live model did not link the sockets: %+v", so)
	}
	if !strings.Contains(file.String(), `"type":"app_fault","time":`) || !strings.Contains(file.String(), `"kind":"`+proxy.FaultDrop+`"`) {
		t.Errorf("no drop fault line in\n%s", file.String())
	}
	got, _ := replayLines(t, file.Bytes())
	appstest.SameSnapshot(t, got.Snapshot(), want)
}

// TestRecorderMaxLine: a frame whose line would pass MaxLine is written
// cut — no content, its size kept — and every line stays within it.
func TestRecorderMaxLine(t *testing.T) {
	var file bytes.Buffer
	m := apps.New(apps.Options{})
	rec := apps.NewRecorder(m, &file, apps.RecorderOptions{MaxLine: 512})
	now := time.Now()
	rec.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=1.0.0", Header: http.Header{}, Opened: now})
	big := `{"topic":"realtime:a","event":"broadcast","payload":{"type":"broadcast","event":"big","payload":{"s":"` + strings.Repeat("x", 4096) + `"}},"ref":null}`
	rec.Frame(proxy.Frame{Conn: 1, Dir: proxy.ToApp, Time: now, Data: []byte(big)})
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(file.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines:\n%s", file.String())
	}
	for _, l := range lines {
		if len(l) > 512 {
			t.Errorf("a line of %d bytes", len(l))
		}
	}
	in, err := apps.DecodeInput([]byte(lines[1]))
	if err != nil || !in.Cut || in.Bytes != len(big) || len(in.Content()) != 0 {
		t.Fatalf("cut frame %+v %v", in, err)
	}
	r, _ := replayLines(t, file.Bytes())
	if s := r.Snapshot(); s.Sockets[0].BytesToApp != uint64(len(big)) || s.Sockets[0].Undecodable != 1 {
		t.Errorf("replayed %+v", s.Sockets[0])
	}
}
