package headless_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/mask/masktest"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/apps/appstest"
	"rtm/registry/headless"
)

// recordApp runs rtm's Go client as the app through a real proxy to
// srv, recording with an AppRecorder: it joins room1 with presence,
// receives the broadcasts a peer sends (events), then closes. It
// returns the file and the live model's snapshot.
func recordApp(t *testing.T, srv *servertest.Server, events []string, payload json.RawMessage) ([]byte, apps.Snapshot) {
	t.Helper()
	live := apps.New(apps.Options{})
	var file bytes.Buffer
	rec, err := headless.NewAppRecorder(&file, headless.Header{Started: time.Now(), Target: srv.URL + "?apikey=" + srv.AnonKey(), Tool: "rtm proxy"},
		live, apps.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Upstream: srv.URL, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p)
	defer func() { hs.Close(); _ = p.Close() }()
	ctx := testCtx(t)
	h := http.Header{}
	h.Set("X-Client-Info", "supabase-js-web/2.119.2")
	user := srv.UserToken(t, "alice", time.Hour, nil)
	app, err := realtime.Dial(ctx, hs.URL, &realtime.Options{APIKey: srv.AnonKey(), AccessToken: user, Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	peer, err := realtime.Dial(ctx, srv.URL, &realtime.Options{APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ach, err := app.Channel("room1", realtime.ChannelConfig{Presence: realtime.PresenceConfig{Key: "alice", Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	pch, err := peer.Channel("room1", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*realtime.Channel{ach, pch} {
		if err := c.Subscribe(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := ach.Track(ctx, json.RawMessage(`{"name":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := pch.Send(ctx, ev, payload); err != nil {
			t.Fatal(err)
		}
	}
	received := func() int {
		n := 0
		for _, s := range live.Snapshot().Sockets {
			for _, c := range s.Channels {
				for _, m := range c.Messages {
					if m.Dir == proxy.ToApp.String() && m.Event == "broadcast" {
						n++
					}
				}
			}
		}
		return n
	}
	eventually(t, "the app received the broadcasts", func() bool { return received() == len(events) })
	if err := ach.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	_ = app.Close()
	eventually(t, "the app's socket closed", func() bool {
		s := live.Snapshot().Sockets
		return len(s) == 1 && !s[0].Closed.IsZero()
	})
	end, err := rec.Close(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if end.Dropped != 0 || end.Frames == 0 {
		t.Fatalf("end %+v", end)
	}
	snap := live.Snapshot()
	snap.Stats.EventsDropped = 0
	return file.Bytes(), snap
}

// TestAppRecordingReplayAndDiff: two app recordings through a real
// proxy — the second lacks a message — read back as app recordings
// whose player rebuilds the live model at its end (and an empty one at
// its start, after a seek back), whose events are the model's as log
// lines, which diff tells apart by the message, which hold no key, and
// which diff refuses to compare with a client recording.
func TestAppRecordingReplayAndDiff(t *testing.T) {
	srv := servertest.New(t)
	secret := json.RawMessage(`{"n":1,"apikey":"` + srv.ServiceRoleKey() + `"}`)
	fileA, liveA := recordApp(t, srv, []string{"hello", "missed"}, secret)
	fileB, _ := recordApp(t, srv, []string{"hello"}, secret)

	for _, k := range []string{srv.ServiceRoleKey(), srv.AnonKey(), srv.SecretKey()} {
		if masktest.Holds(fileA, k) {
			t.Fatalf("the app recording holds a key %.12s…", k)
		}
	}
	a, err := headless.ReadRecording("a.ndjson", bytes.NewReader(fileA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := headless.ReadRecording("b.ndjson", bytes.NewReader(fileB))
	if err != nil {
		t.Fatal(err)
	}
	if !a.IsApp() || a.Header.Kind != headless.KindApp || a.Header.Tool != "rtm proxy" || a.End == nil || strings.Contains(a.Header.Target, srv.AnonKey()) {
		t.Fatalf("header %+v end %+v", a.Header, a.End)
	}
	var msgs []string
	for _, e := range a.Events {
		if l, ok := e.(registry.LogEvent); ok {
			msgs = append(msgs, l.Record.Message)
		}
	}
	for _, want := range []string{"app_socket open", "app_channel join", "app_channel joined", "app_presence state", "app_message message", "app_channel left", "app_socket close"} {
		if !slices.Contains(msgs, want) {
			t.Errorf("events %q lack %q", msgs, want)
		}
	}

	p := headless.NewPlayer(a, headless.PlayerOptions{Paused: true})
	view := p.Apps()
	if view == nil {
		t.Fatal("no apps view of an app recording")
	}
	if s := view.Snapshot(); len(s.Sockets) != 1 || len(s.Sockets[0].Channels) != 0 {
		t.Fatalf("at the start: %+v", s)
	}
	_, length := p.Position()
	p.Seek(length)
	v1 := view.Version()
	appstest.SameSnapshot(t, view.Snapshot(), liveA)
	p.Seek(0)
	if view.Version() == v1 || len(view.Snapshot().Sockets[0].Channels) != 0 {
		t.Fatal("a seek back did not rewind the apps view")
	}
	p.Seek(length)
	appstest.SameSnapshot(t, view.Snapshot(), liveA)

	if err := headless.Comparable("a", a, "b", b); err != nil {
		t.Fatal(err)
	}
	rep := headless.Diff("a", a, "b", b, headless.DiffOptions{})
	if rep.Identical || len(rep.Channels) != 1 || rep.Channels[0].Channel != "room1" {
		t.Fatalf("diff %+v", rep)
	}
	var only []string
	for _, e := range rep.Channels[0].Events {
		if len(e.OnlyB) > 0 {
			t.Errorf("only in b: %+v", e)
		}
		if len(e.OnlyA) > 0 {
			only = append(only, e.Event)
		}
	}
	if !slices.Equal(only, []string{"broadcast missed"}) {
		t.Fatalf("only in a: %v (%+v)", only, rep.Channels)
	}
	if same := headless.Diff("a", a, "a", a, headless.DiffOptions{}); !same.Identical {
		t.Fatalf("a differs from itself: %+v", same)
	}

	client, err := headless.ReadRecording("c", strings.NewReader(`{"type":"recording","version":1}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := headless.Comparable("a", a, "c", client); !errors.Is(err, headless.ErrInvalid) || !strings.Contains(err.Error(), "a is an app recording") {
		t.Fatalf("comparing an app and a client recording: %v", err)
	}
}

// TestAppRecordingRejectsMixing: app lines and client events do not mix
// in one file.
func TestAppRecordingRejectsMixing(t *testing.T) {
	open := `{"type":"app_open","time":"2026-01-01T00:00:00Z","socket":1,"vsn":"2.0.0"}`
	client := `{"type":"socket","time":"2026-01-01T00:00:00Z","status":"connected"}`
	for name, file := range map[string]string{
		"client event in an app recording": `{"type":"recording","version":1,"kind":"app"}` + "\n" + open + "\n" + client,
		"app line in a client recording":   client + "\n" + open,
		"bad app line":                     `{"type":"recording","version":1,"kind":"app"}` + "\n" + `{"type":"app_frame","socket":1}`,
	} {
		if _, err := headless.ReadRecording("x", strings.NewReader(file)); !errors.Is(err, headless.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestAppReceivedFaults: a message the proxy dropped (the drop_message
// fault right after its frame) is not what the app received; one it
// duplicated was received twice; an armed fault changes nothing.
func TestAppReceivedFaults(t *testing.T) {
	frame := func(sec int, event string) string {
		return fmt.Sprintf(`{"type":"app_frame","time":"2026-01-01T00:00:%02dZ","socket":1,"dir":"upstream->app","text":%q}`, sec,
			fmt.Sprintf(`{"topic":"realtime:room","event":"broadcast","payload":{"type":"broadcast","event":%q,"payload":{}},"ref":null}`, event))
	}
	fault := func(sec int, kind string, armed bool) string {
		return fmt.Sprintf(`{"type":"app_fault","time":"2026-01-01T00:00:%02dZ","socket":1,"kind":%q,"armed":%v,"topic":"realtime:room"}`, sec, kind, armed)
	}
	file := strings.Join([]string{
		`{"type":"recording","version":1,"kind":"app"}`,
		`{"type":"app_open","time":"2026-01-01T00:00:00Z","socket":1,"vsn":"1.0.0"}`,
		fault(1, proxy.FaultDropMessage, true),
		frame(2, "kept"), frame(3, "lost"), fault(3, proxy.FaultDropMessage, false),
		frame(4, "twice"), fault(4, proxy.FaultDuplicateMessage, false),
	}, "\n")
	rec, err := headless.ReadRecording("f", strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range headless.ReceivedMessages(rec) {
		got = append(got, m.Channel+" "+m.Event)
	}
	if want := []string{"room broadcast kept", "room broadcast twice", "room broadcast twice"}; !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
}
