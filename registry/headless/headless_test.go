package headless_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/serverctl"
	"rtm/registry/target"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serverControl drives srv's server-side faults through its admin API
// (rtm's Go-API adapter is package main's: nothing under registry/
// imports realtime/server outside tests).
func serverControl(t *testing.T, srv *servertest.Server) registry.ServerControl {
	t.Helper()
	c, err := serverctl.NewHTTP(srv.URL, srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startEmbedded is EnvOptions.StartEmbedded on a fresh servertest
// server, as package main's embedded target gives it.
func startEmbedded(t *testing.T, so ...servertest.Option) func() (*headless.EmbeddedTarget, error) {
	return func() (*headless.EmbeddedTarget, error) {
		srv := servertest.New(t, so...)
		return &headless.EmbeddedTarget{URL: srv.URL, AnonKey: srv.AnonKey(), Secret: srv.Secret(),
			Control: serverControl(t, srv), Close: srv.Close}, nil
	}
}

// testEnv is an Env on a fresh embedded server reached over loopback as
// a project (URL, key, secret), with the server's faults.
func testEnv(t *testing.T, so ...servertest.Option) (*headless.Env, *servertest.Server) {
	t.Helper()
	return testEnvWith(t, 50*time.Millisecond, so...)
}

// testEnvWith is testEnv with the socket reconnecting reconnect after a
// drop.
func testEnvWith(t *testing.T, reconnect time.Duration, so ...servertest.Option) (*headless.Env, *servertest.Server) {
	t.Helper()
	srv := servertest.New(t, so...)
	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()),
		NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }},
		headless.EnvOptions{Server: serverControl(t, srv),
			ReconnectAfter: func(int) time.Duration { return reconnect }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	return env, srv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and polling readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sender is a second manager on the target that sends broadcasts.
func sender(t *testing.T, env *headless.Env, user string, ch registry.Name) *registry.Handle {
	t.Helper()
	m, err := env.NewManager(headless.Identity{User: user}, headless.ManagerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx := testCtx(t)
	if err := m.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := m.Join(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

// decodeLines decodes every NDJSON line with registry.DecodeEvent.
func decodeLines(t *testing.T, out string) []registry.Event {
	t.Helper()
	var evs []registry.Event
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ev, err := registry.DecodeEvent([]byte(line))
		if err != nil {
			t.Fatalf("line %d does not decode as a registry event: %v\n%s", i+1, err, line)
		}
		// The JSON form is stable: encoding the decoded event gives the
		// line back.
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := registry.DecodeEvent(again)
		if err != nil || ev2.EventType() != ev.EventType() {
			t.Fatalf("line %d does not round-trip: %v", i+1, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func broadcastsIn(evs []registry.Event, ch registry.Name) []string {
	var out []string
	for _, e := range evs {
		if m, ok := e.(registry.MessageEvent); ok && m.Direction == registry.In && m.Kind == registry.MessageBroadcast && m.Channel == ch {
			out = append(out, m.Event+" "+string(m.Payload))
		}
	}
	return out
}

// secretsOf returns the keys and tokens of env that must never appear in
// output.
func secretsOf(t *testing.T, env *headless.Env, users ...string) []string {
	t.Helper()
	s := []string{env.Target.Key.Value, string(env.Target.JWTSecret)}
	for _, u := range users {
		tok, err := env.Token(headless.Identity{User: u})
		if err != nil {
			t.Fatal(err)
		}
		// A token minted in the same second is identical; its
		// signature part is what must never leak.
		s = append(s, tok, tok[strings.LastIndexByte(tok, '.')+1:])
	}
	return s
}

func assertNoSecrets(t *testing.T, what, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Fatalf("%s holds a secret unmasked (%s…)", what, s[:min(8, len(s))])
		}
	}
}

func TestWatchEndToEnd(t *testing.T) {
	env, _ := testEnv(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	lobby := registry.MustName(registry.KindPresence, "lobby", "1", "")
	var out syncBuffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := headless.Watch(ctx, env, &out, headless.StreamOptions{Joins: []registry.Name{room, lobby}, As: "watcher",
			Identity: headless.Identity{User: "watcher"}, OnReady: func(*registry.Manager) { close(ready) }})
		done <- err
	}()
	<-ready
	eventually(t, "the watcher to be present", func() bool {
		return strings.Contains(out.String(), `"action":"join"`) && strings.Contains(out.String(), `"status":"connected"`)
	})
	eventually(t, "room joined", func() bool {
		return strings.Contains(out.String(), `"channel":"broadcast:room:1","status":"connected"`)
	})
	h := sender(t, env, "bob", room)
	for i := 1; i <= 5; i++ {
		if err := h.Broadcast(ctx, "note", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "5 messages in the watch output", func() bool { return strings.Count(out.String(), `"kind":"broadcast"`) >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
	evs := decodeLines(t, out.String())
	types := map[registry.EventType]int{}
	for _, e := range evs {
		types[e.EventType()]++
	}
	for _, want := range []registry.EventType{registry.TypeSocket, registry.TypeChannelState, registry.TypePresence, registry.TypeMessage, registry.TypeLog, registry.TypeToken, registry.TypeStats} {
		if types[want] == 0 {
			t.Errorf("no %s event in the watch output (types %v)", want, types)
		}
	}
	if types[registry.TypeFrame] != 0 {
		t.Errorf("frames printed without Frames")
	}
	got := broadcastsIn(evs, room)
	want := []string{`note {"n":1}`, `note {"n":2}`, `note {"n":3}`, `note {"n":4}`, `note {"n":5}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages: got %v, want %v", got, want)
	}
	assertNoSecrets(t, "watch output", out.String(), secretsOf(t, env, "watcher", "bob"))
}

func TestWatchTypesAndFrames(t *testing.T) {
	env, _ := testEnv(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := headless.Watch(ctx, env, &out, headless.StreamOptions{Joins: []registry.Name{room}, Frames: true,
			Types: []registry.EventType{registry.TypeFrame, registry.TypeChannelState}})
		done <- err
	}()
	eventually(t, "the join reply frame", func() bool { return strings.Contains(out.String(), `"event":"phx_reply"`) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, e := range decodeLines(t, out.String()) {
		if e.EventType() != registry.TypeFrame && e.EventType() != registry.TypeChannelState {
			t.Fatalf("event of type %s despite the filter", e.EventType())
		}
	}
	assertNoSecrets(t, "watch output", out.String(), secretsOf(t, env))
}

func TestWatchFatalWithoutServer(t *testing.T) {
	srv := servertest.New(t)
	url := srv.URL
	key := srv.AnonKey()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	env, err := headless.Open(target.Input{URL: url, Key: key, NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }},
		headless.EnvOptions{ReconnectAfter: func(int) time.Duration { return 20 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var out syncBuffer
	_, err = headless.Watch(testCtx(t), env, &out, headless.StreamOptions{
		Joins: []registry.Name{registry.MustName(registry.KindBroadcast, "a", "b", "")}, ConnectTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no connection within 300ms") {
		t.Fatalf("Watch against a closed server: err = %v, want a fatal connect error", err)
	}
	if errors.Is(err, headless.ErrInvalid) {
		t.Fatalf("an unreachable server is not invalid input: %v", err)
	}
	// What was seen before giving up is still printed.
	if !strings.Contains(out.String(), `"type":"socket"`) {
		t.Fatalf("no socket events printed:\n%s", out.String())
	}
}

func TestOpenInvalidTarget(t *testing.T) {
	_, err := headless.Open(target.Input{URL: "http://127.0.0.1:1", NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }}, headless.EnvOptions{})
	if !errors.Is(err, headless.ErrInvalid) || !strings.Contains(err.Error(), "no API key") {
		t.Fatalf("err = %v, want an invalid target naming the missing key", err)
	}
	noProject := target.Input{NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }}
	if _, err := headless.Open(noProject, headless.EnvOptions{}); !errors.Is(err, headless.ErrInvalid) || !strings.Contains(err.Error(), "no project configured") {
		t.Fatalf("no project and no embedded server: err = %v", err)
	}
	env, err := headless.Open(noProject, headless.EnvOptions{StartEmbedded: startEmbedded(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if !env.Target.Embedded || !env.ServerFaults() || !strings.HasPrefix(env.Target.URL.Value, "http://127.0.0.1:") {
		t.Fatalf("no target must start the embedded server in-process")
	}
	if _, err := env.Token(headless.Identity{Role: "root"}); !errors.Is(err, headless.ErrInvalid) {
		t.Fatalf("unknown role: err = %v", err)
	}
	for _, r := range headless.Roles() {
		if _, err := env.Token(headless.Identity{Role: r}); err != nil {
			t.Fatalf("role %s: %v", r, err)
		}
	}
}

// record records ch on env until n broadcasts were received, while send
// runs, and returns the file's text.
func record(t *testing.T, env *headless.Env, ch registry.Name, n int, send func(ctx context.Context)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var out syncBuffer
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := headless.Record(ctx, env, &out, headless.StreamOptions{Joins: []registry.Name{ch}, Identity: headless.Identity{User: "recorder"},
			OnReady: func(*registry.Manager) { close(ready) }})
		done <- err
	}()
	<-ready
	eventually(t, "the recorder joined", func() bool {
		return strings.Contains(out.String(), `"channel":"`+ch.String()+`","status":"connected"`)
	})
	send(ctx)
	eventually(t, fmt.Sprintf("%d broadcasts recorded", n), func() bool {
		return strings.Count(out.String(), `"direction":"in","kind":"broadcast"`) >= n
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Record: %v", err)
	}
	return out.String()
}

func readRec(t *testing.T, text string) *headless.Recording {
	t.Helper()
	rec, err := headless.ReadRecording("rec", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func broadcastValues(rec *headless.Recording, ch string) []string {
	var out []string
	for _, m := range headless.ReceivedMessages(rec) {
		if m.Channel == ch && strings.HasPrefix(m.Event, "broadcast ") {
			out = append(out, m.Event+" "+string(m.Value))
		}
	}
	return out
}

func TestRecordReplayDiff(t *testing.T) {
	env, _ := testEnv(t)
	room1 := registry.MustName(registry.KindBroadcast, "room", "1", "")
	room2 := registry.MustName(registry.KindBroadcast, "room", "2", "")
	// A token in a payload must not reach the file either.
	leaked, err := env.Token(headless.Identity{User: "leaky"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	textA := record(t, env, room1, n, func(ctx context.Context) {
		h := sender(t, env, "bob", room1)
		for i := 1; i <= n; i++ {
			payload := fmt.Sprintf(`{"i":%d,"text":"message %d"}`, i, i)
			if i == 7 {
				payload = fmt.Sprintf(`{"i":7,"note":"bearer %s"}`, leaked)
			}
			event := "note"
			if i%3 == 0 {
				event = "cursor"
			}
			if err := h.Broadcast(ctx, event, json.RawMessage(payload)); err != nil {
				t.Error(err)
			}
		}
	})
	assertNoSecrets(t, "the recording", textA, append(secretsOf(t, env, "recorder", "bob"), leaked, leaked[strings.LastIndexByte(leaked, '.')+1:]))
	a := readRec(t, textA)
	if a.Header.Type != headless.TypeRecording || a.Header.Version != headless.RecordingVersion || a.End == nil {
		t.Fatalf("header %+v end %+v", a.Header, a.End)
	}
	if a.Header.Serializer != "2.0.0" || len(a.Header.Channels) != 1 || a.Header.Channels[0] != room1 || !strings.Contains(a.Header.Identity, "recorder") {
		t.Fatalf("header %+v", a.Header)
	}
	frames := a.Frames()
	dirs := map[registry.Direction]int{}
	var joinOut bool
	for _, f := range frames {
		dirs[f.Direction]++
		if f.Time.IsZero() || f.Size == 0 {
			t.Fatalf("frame without time or size: %+v", f)
		}
		if f.Direction == registry.Out && f.Event == "phx_join" && f.Channel == room1 {
			joinOut = true
			if !strings.Contains(f.Text, `"access_token":"`) {
				t.Fatalf("the join frame lost its access_token member: %s", f.Text)
			}
		}
	}
	if dirs[registry.In] < n || dirs[registry.Out] == 0 || !joinOut || a.End.Frames != uint64(len(frames)) {
		t.Fatalf("frames in %d out %d, join out %v, end %+v of %d", dirs[registry.In], dirs[registry.Out], joinOut, a.End, len(frames))
	}
	gotA := broadcastValues(a, room1.String())
	if len(gotA) != n {
		t.Fatalf("recording A received %d broadcasts, want %d: %v", len(gotA), n, gotA)
	}

	// Replayed into room 2, a second recording receives the same
	// messages in the same order.
	var rep headless.ReplayReport
	textB := record(t, env, room2, n, func(ctx context.Context) {
		var err error
		rep, err = headless.ReplayInto(ctx, env, a, headless.ReplayOptions{Speed: 0, Into: map[registry.Name]registry.Name{room1: room2}})
		if err != nil {
			t.Error(err)
		}
	})
	if rep.Sent != n || rep.ByTo[room2.String()] != n {
		t.Fatalf("replay report %+v", rep)
	}
	b := readRec(t, textB)
	gotB := broadcastValues(b, room2.String())
	if fmt.Sprint(gotA) != fmt.Sprint(gotB) {
		t.Fatalf("replayed messages differ:\nA %v\nB %v", gotA, gotB)
	}
	d := headless.Diff("a", a, "b", b, headless.DiffOptions{Rename: map[string]string{room1.String(): room2.String()}, Events: []string{"broadcast"}})
	if !d.Identical || d.Same != 2 || len(d.Channels) != 0 {
		t.Fatalf("diff of a replay: %+v", d)
	}

	// Planted differences: a message removed from A, one changed in B.
	a2 := readRec(t, editFrames(t, textA, func(p string) (string, bool) { return p, !strings.Contains(p, `"message 11"`) }))
	b2 := readRec(t, editFrames(t, textB, func(p string) (string, bool) { return strings.Replace(p, `message 20`, `message 2O`, 1), true }))
	d = headless.Diff("a", a2, "b", b2, headless.DiffOptions{Rename: map[string]string{room1.String(): room2.String()}})
	if d.Identical || len(d.Channels) != 1 || d.Channels[0].Channel != room2.String() {
		t.Fatalf("planted differences not found: %+v", d)
	}
	ev := d.Channels[0].Events
	if len(ev) != 1 || ev[0].Event != "broadcast note" {
		t.Fatalf("events %+v", ev)
	}
	if len(ev[0].OnlyB) != 2 || len(ev[0].OnlyA) != 1 ||
		!strings.Contains(string(ev[0].OnlyA[0].Value), "message 2") || !strings.Contains(string(ev[0].OnlyB[0].Value), "message 11") ||
		!strings.Contains(string(ev[0].OnlyB[1].Value), "message 2O") {
		t.Fatalf("only_a %s only_b %s", js(ev[0].OnlyA), js(ev[0].OnlyB))
	}
	var text bytes.Buffer
	if err := d.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "only in b: {\"i\":11,\"text\":\"message 11\"}") {
		t.Fatalf("text report:\n%s", text.String())
	}
	// Order: the same messages, two swapped.
	swapped := readRec(t, swapFrames(t, textB, `"message 4"`, `"message 5"`))
	d = headless.Diff("b", b, "swapped", swapped, headless.DiffOptions{})
	if d.Identical || len(d.Channels) != 1 || !d.Channels[0].Events[0].OrderDiffers {
		t.Fatalf("swapped order not found: %s", js(d))
	}

	// The player delivers the recording's events in order, then a
	// marker; a seek back rewinds.
	testPlayer(t, a)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// framePayload returns the user payload of a broadcast frame line.
func framePayload(line string) (registry.FrameEvent, *protocol.Message, bool) {
	ev, err := registry.DecodeEvent([]byte(line))
	if err != nil {
		return registry.FrameEvent{}, nil, false
	}
	f, ok := ev.(registry.FrameEvent)
	if !ok || f.Direction != registry.In || len(f.Data) == 0 {
		return f, nil, false
	}
	m, err := protocol.V2.DecodeServer(f.Data, true)
	if err != nil || m.Broadcast == nil {
		return f, nil, false
	}
	return f, &m, true
}

// editFrames rewrites the binary broadcast frames of a recording: edit
// returns the new user payload and whether to keep the frame.
func editFrames(t *testing.T, text string, edit func(payload string) (string, bool)) string {
	t.Helper()
	var out []string
	changed := 0
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f, m, ok := framePayload(l)
		if !ok {
			out = append(out, l)
			continue
		}
		p, keep := edit(string(m.Broadcast.Payload))
		if !keep {
			changed++
			continue
		}
		if p != string(m.Broadcast.Payload) {
			changed++
			b := *m.Broadcast
			b.Payload = []byte(p)
			m.Broadcast = &b
			data, _, err := protocol.V2.AppendServer(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			f.Data, f.Size = data, len(data)
			enc, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			l = string(enc)
		}
		out = append(out, l)
	}
	if changed != 1 {
		t.Fatalf("edited %d frames, want 1", changed)
	}
	return strings.Join(out, "\n")
}

// swapFrames swaps the frames whose payloads hold x and y.
func swapFrames(t *testing.T, text, x, y string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	ix, iy := -1, -1
	for i, l := range lines {
		_, m, ok := framePayload(l)
		if !ok {
			continue
		}
		if strings.Contains(string(m.Broadcast.Payload), x) {
			ix = i
		}
		if strings.Contains(string(m.Broadcast.Payload), y) {
			iy = i
		}
	}
	if ix < 0 || iy < 0 {
		t.Fatalf("frames %q %q not found", x, y)
	}
	lines[ix], lines[iy] = lines[iy], lines[ix]
	return strings.Join(lines, "\n")
}

func testPlayer(t *testing.T, rec *headless.Recording) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	p := headless.NewPlayer(rec, headless.PlayerOptions{Speed: 1000, Name: "a"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	phase := "start"
	next := func() registry.Event {
		t.Helper()
		select {
		case e := <-p.Events():
			return e
		case <-time.After(20 * time.Second):
			at, l := p.Position()
			t.Fatalf("the player delivered nothing for 20 s (phase %s, position %s of %s, paused %v, events %d)", phase, at, l, p.Paused(), len(rec.Events))
			return nil
		}
	}
	first := next()
	phase = "play"
	if l, ok := first.(registry.LogEvent); !ok || l.Record.Message != "Replay started" {
		t.Fatalf("first event %#v", first)
	}
	for i, want := range rec.Events {
		got := next()
		if got.EventType() != want.EventType() || !got.EventTime().Equal(want.EventTime()) {
			t.Fatalf("event %d: got %s at %s, want %s at %s", i, got.EventType(), got.EventTime(), want.EventType(), want.EventTime())
		}
	}
	phase = "end"
	if l, ok := next().(registry.LogEvent); !ok || l.Record.Message != "Replay finished" {
		t.Fatalf("no end marker")
	}
	st := p.Snapshot()
	if len(st.Channels) != 0 || st.Socket.Status != registry.SocketClosed && st.Socket.Status != registry.SocketConnected {
		// The recorder left its channel and closed: the final state
		// has no channel.
		t.Fatalf("final snapshot: %d channels, socket %s", len(st.Channels), st.Socket.Status)
	}
	at, length := p.Position()
	if at != length || length <= 0 || length != rec.Length() {
		t.Fatalf("position %s of %s (recording %s)", at, length, rec.Length())
	}
	if err := p.SetSpeed(0); !errors.Is(err, headless.ErrInvalid) {
		t.Fatalf("SetSpeed(0) = %v", err)
	}
	// Seek back to the middle of the events (not of the recording: its
	// end line may come long after the last event, and a seek past the
	// last event is no rewind): a rewind marker, then the events up to
	// there.
	half := rec.Events[len(rec.Events)/2].EventTime()
	if !half.Before(rec.Events[len(rec.Events)-1].EventTime()) {
		t.Fatalf("the recording's events all share the time %s", half)
	}
	seekTo := half.Sub(rec.Start())
	p.SetPaused(true)
	p.Seek(seekTo)
	phase = "rewind"
	e := next()
	phase = "after"
	epoch, ok := headless.RewindEpoch(e)
	if !ok || epoch != 1 || !p.IsRewind(e) || p.IsRewind(rec.Events[0]) {
		t.Fatalf("after a seek back: %#v", e)
	}
	mid := rec.Start().Add(seekTo)
	// The player goes by the events' times made monotone (a recording's
	// events may be a little out of order: the frame tap and the
	// channels stamp them on different goroutines), so the events up to
	// mid are the prefix whose running maximum is not after it.
	var n int
	last := rec.Start()
	for _, ev := range rec.Events {
		if t := ev.EventTime(); t.After(last) {
			last = t
		}
		if last.After(mid) {
			break
		}
		n++
	}
	for i := 0; i < n; i++ {
		if got := next(); got.EventType() != rec.Events[i].EventType() {
			t.Fatalf("replayed event %d after the seek: %s, want %s", i, got.EventType(), rec.Events[i].EventType())
		}
	}
	if !p.Paused() {
		t.Fatal("not paused")
	}
	if at, _ := p.Position(); at != seekTo {
		t.Fatalf("paused at %s, want %s", at, seekTo)
	}
	if st := p.Snapshot(); len(st.Channels) != 1 || st.Channels[0].Status != registry.StatusConnected {
		t.Fatalf("mid-recording snapshot: %+v", st.Channels)
	}
	select {
	case e := <-p.Events():
		t.Fatalf("a paused player delivered %s", e.EventType())
	default:
	}
}

func TestReadRecordingErrors(t *testing.T) {
	head := `{"type":"recording","version":1,"started":"2026-01-01T00:00:00Z","target":"ws://x","serializer":"2.0.0","channels":[]}`
	frame := `{"type":"frame","time":"2026-01-01T00:00:01Z","direction":"in","topic":"realtime:broadcast:a:b","text":"[null,null,\"realtime:broadcast:a:b\",\"broadcast\",{}]","size":10}`
	end := `{"type":"recording_end","time":"2026-01-01T00:00:02Z","events":1,"frames":1}`
	for _, tc := range []struct {
		name, text string
		line       int
		reason     string
	}{
		{"not json", head + "\nnot json\n", 2, "not a JSON object"},
		{"header late", frame + "\n" + head + "\n", 2, "header must be the first line"},
		{"version", strings.Replace(head, `"version":1`, `"version":9`, 1), 1, "recording version 9: this rtm reads version 1"},
		{"serializer", strings.Replace(head, `2.0.0`, `3.0.0`, 1), 1, `serializer "3.0.0"`},
		{"unknown type", head + "\n" + `{"type":"bogus"}`, 2, `unknown type "bogus"`},
		{"no type", head + "\n{}\n", 2, `no "type" member`},
		{"bad direction", head + "\n" + strings.Replace(frame, `"in"`, `"up"`, 1), 2, `unknown direction "up"`},
		{"no direction", head + "\n" + strings.Replace(frame, `"direction":"in",`, ``, 1), 2, "frame without a direction"},
		{"after end", head + "\n" + frame + "\n" + end + "\n" + frame, 4, "content after the recording_end line"},
		{"bad channel", head + "\n" + `{"type":"message","channel":"nope","direction":"in","kind":"broadcast","size":0}`, 2, "invalid channel name"},
	} {
		_, err := headless.ReadRecording("f.ndjson", strings.NewReader(tc.text))
		var le *headless.LineError
		if !errors.As(err, &le) || !errors.Is(err, headless.ErrInvalid) {
			t.Errorf("%s: err = %v, want a LineError", tc.name, err)
			continue
		}
		if le.Line != tc.line || !strings.Contains(le.Reason, tc.reason) || !strings.HasPrefix(err.Error(), fmt.Sprintf("f.ndjson:%d: ", tc.line)) {
			t.Errorf("%s: %v, want line %d containing %q", tc.name, err, tc.line, tc.reason)
		}
	}
	// Good inputs: a full recording, one cut short, watch output without
	// a header, CRLF line ends and blank lines.
	for _, text := range []string{head + "\n" + frame + "\n" + end + "\n", head + "\n" + frame, frame + "\r\n\r\n" + frame + "\r\n"} {
		rec, err := headless.ReadRecording("f", strings.NewReader(text))
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if len(rec.Frames()) == 0 {
			t.Fatalf("%q: no frames", text)
		}
	}
	rec, _ := headless.ReadRecording("f", strings.NewReader(head+"\n"+frame))
	if rec.End != nil || len(headless.Diff("x", rec, "y", rec, headless.DiffOptions{}).Gaps) == 0 {
		t.Fatal("a cut recording must be reported as such")
	}
	// A line beyond the limit.
	long := head + "\n" + `{"type":"log","record":{"msg":"` + strings.Repeat("x", headless.MaxLine) + `"}}`
	if _, err := headless.ReadRecording("f", strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "f:2: line longer than") {
		t.Fatalf("long line: %v", err)
	}
}

// FuzzReadRecording: the reader never panics, errors name a line inside
// the input, and what it reads writes back and reads again the same.
func FuzzReadRecording(f *testing.F) {
	f.Add(`{"type":"recording","version":1,"started":"2026-01-01T00:00:00Z","serializer":"2.0.0","channels":["broadcast:a:b"]}` + "\n" +
		`{"type":"frame","time":"2026-01-01T00:00:01Z","direction":"in","channel":"broadcast:a:b","topic":"realtime:broadcast:a:b","text":"[null,null,\"realtime:broadcast:a:b\",\"broadcast\",{\"event\":\"e\",\"payload\":{\"a\":1},\"type\":\"broadcast\"}]","size":10}` + "\n" +
		`{"type":"frame","time":"2026-01-01T00:00:01Z","direction":"in","data":"BAAAAAAAAA==","size":10}` + "\n" +
		`{"type":"presence","time":"2026-01-01T00:00:02Z","channel":"presence:a:b","action":"join","user":{"user_id":"u","metas":1},"count":1}` + "\n" +
		`{"type":"recording_end","time":"2026-01-01T00:00:02Z"}`)
	f.Add(`{"type":"message","time":"2026-01-01T00:00:01Z","channel":"broadcast:a:b","direction":"in","kind":"broadcast","event":"x","payload":{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln":1},"size":1}`)
	f.Add("\n\n{}\n")
	f.Add(`{"type":"recording","version":1,"kind":"app","started":"2026-01-01T00:00:00Z","tool":"rtm proxy"}` + "\n" +
		`{"type":"app_open","time":"2026-01-01T00:00:00Z","socket":1,"vsn":"2.0.0","claims":{"role":"anon"}}` + "\n" +
		`{"type":"app_frame","time":"2026-01-01T00:00:01Z","socket":1,"dir":"app->upstream","text":"[\"1\",\"1\",\"realtime:a\",\"phx_join\",{\"config\":{}}]","bytes":40}` + "\n" +
		`{"type":"app_frame","time":"2026-01-01T00:00:01Z","socket":1,"dir":"upstream->app","text":"[\"1\",\"1\",\"realtime:a\",\"phx_reply\",{\"status\":\"ok\",\"response\":{}}]"}` + "\n" +
		`{"type":"dropped","time":"2026-01-01T00:00:01Z","count":2}` + "\n" +
		`{"type":"app_close","time":"2026-01-01T00:00:02Z","socket":1,"by":"app","code":1000}` + "\n" +
		`{"type":"recording_end","time":"2026-01-01T00:00:02Z"}`)
	f.Fuzz(func(t *testing.T, text string) {
		rec, err := headless.ReadRecording("f", strings.NewReader(text))
		if err != nil {
			var le *headless.LineError
			if errors.As(err, &le) && (le.Line < 1 || le.Line > strings.Count(text, "\n")+1) {
				t.Fatalf("error line %d outside the input", le.Line)
			}
			return
		}
		_ = headless.ReceivedMessages(rec)
		_ = headless.Diff("a", rec, "b", rec, headless.DiffOptions{})
		// The player delivers everything at once after a seek to the end.
		p := headless.NewPlayer(rec, headless.PlayerOptions{Paused: true})
		_, length := p.Position()
		p.Seek(length)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(ctx)
		}()
		for n := 0; ; n++ {
			e := <-p.Events()
			if l, ok := e.(registry.LogEvent); ok && l.Record.Message == "Replay finished" {
				break
			}
			if n > len(rec.Events)+1 {
				t.Fatalf("the player delivered %d events of %d", n, len(rec.Events))
			}
		}
		_ = p.Snapshot()
		if v := p.Apps(); v != nil {
			_, _ = v.Version(), v.Snapshot()
		}
		cancel()
		<-done
		if rec.IsApp() {
			fuzzAppRoundTrip(t, rec)
			return
		}
		var buf bytes.Buffer
		var h *headless.Header
		if rec.Header.Type != "" {
			h = &rec.Header
		}
		w, err := headless.NewWriter(&buf, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range rec.Events {
			if err := w.Write(e); err != nil {
				t.Fatalf("write back: %v", err)
			}
		}
		if err := w.Close(time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		again, err := headless.ReadRecording("again", &buf)
		if err != nil {
			t.Fatalf("what was read does not read back: %v\n%s", err, buf.String())
		}
		if len(again.Events) != len(rec.Events) {
			t.Fatalf("%d events read back, want %d", len(again.Events), len(rec.Events))
		}
		if strings.Contains(buf.String(), "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln") {
			t.Fatal("a JWT was written unmasked")
		}
	})
}

func TestSwarm(t *testing.T) {
	env, _ := testEnv(t, servertest.WithLimits(server.Limits{Off: true}))
	lobby := registry.MustName(registry.KindPresence, "lobby", "swarm", "")
	var progress []headless.SwarmProgress
	var mu sync.Mutex
	rep, err := headless.Swarm(testCtx(t), env, headless.SwarmOptions{Clients: 50, Channel: lobby, Presence: true, Rate: 2,
		Duration: 1500 * time.Millisecond, Progress: func(p headless.SwarmProgress) {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swarm: %s", js(rep))
	if rep.Clients != 50 || rep.Connected != 50 || rep.Joined != 50 || !rep.OwnTokens {
		t.Fatalf("clients %d connected %d joined %d own tokens %v", rep.Clients, rep.Connected, rep.Joined, rep.OwnTokens)
	}
	if rep.JoinLatency.N != 50 || rep.JoinLatency.Min <= 0 || rep.JoinLatency.Max < rep.JoinLatency.P50 || rep.JoinLatency.P50 < rep.JoinLatency.Min ||
		rep.ConnectLatency.N != 50 || rep.ConnectLatency.Min <= 0 {
		t.Fatalf("latencies %+v %+v", rep.JoinLatency, rep.ConnectLatency)
	}
	if !rep.PresenceConverged || rep.PresenceConvergenceMS == nil || *rep.PresenceConvergenceMS < 0 {
		t.Fatalf("presence did not converge: %+v", rep)
	}
	if rep.Sent == 0 || rep.SendFailures != 0 || rep.Expected != rep.Sent*49 || rep.Received != rep.Expected || rep.Delivery != 1 {
		t.Fatalf("fan-out: sent %d failures %d received %d expected %d ratio %v", rep.Sent, rep.SendFailures, rep.Received, rep.Expected, rep.Delivery)
	}
	if rep.FanoutRate <= 0 || rep.SendRate <= 0 || rep.FanoutRate < 40*rep.SendRate {
		t.Fatalf("rates: send %v fan-out %v", rep.SendRate, rep.FanoutRate)
	}
	if len(rep.LimitErrors) != 0 {
		t.Fatalf("limit errors without limits: %v", rep.LimitErrors)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) == 0 || progress[len(progress)-1].Phase != "done" || progress[len(progress)-1].Joined != 50 {
		t.Fatalf("progress: %+v", progress)
	}
}

func TestSwarmLimits(t *testing.T) {
	env, _ := testEnv(t, servertest.WithLimits(server.Limits{MaxEventsPerSecond: 5, MaxConcurrentUsers: 20}))
	room := registry.MustName(registry.KindBroadcast, "room", "swarm", "")
	rep, err := headless.Swarm(testCtx(t), env, headless.SwarmOptions{Clients: 25, Channel: room, Rate: 5,
		Duration: time.Second, JoinTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swarm: %s", js(rep))
	if rep.Connected != 20 || rep.Joined != 20 {
		t.Fatalf("connected %d joined %d, want 20 (the limit)", rep.Connected, rep.Joined)
	}
	var users, events bool
	for reason := range rep.LimitErrors {
		users = users || strings.Contains(reason, "Too many connected users")
		events = events || strings.Contains(reason, "Too many messages per second")
	}
	if !users || !events {
		t.Fatalf("limit errors %v: want the connected-users and messages-per-second limits", rep.LimitErrors)
	}
	if rep.Delivery >= 1 {
		t.Fatalf("delivery %v despite the message limit", rep.Delivery)
	}
}

func TestSwarmInvalid(t *testing.T) {
	env, _ := testEnv(t)
	for _, o := range []headless.SwarmOptions{
		{Clients: 0, Channel: registry.MustName(registry.KindBroadcast, "a", "b", "")},
		{Clients: 2},
		{Clients: 2, Channel: registry.MustName(registry.KindBroadcast, "a", "b", ""), Presence: true},
		{Clients: 2, Channel: registry.MustName(registry.KindBroadcast, "a", "b", ""), Rate: -1},
	} {
		if _, err := headless.Swarm(testCtx(t), env, o); !errors.Is(err, headless.ErrInvalid) {
			t.Errorf("%+v: err = %v", o, err)
		}
	}
}

// TestRecordingFileMasked writes through a file as `rtm record` does.
func TestRecordingFileMasked(t *testing.T) {
	env, _ := testEnv(t)
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ch := registry.MustName(registry.KindPresence, "doc", "9", "")
	ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
	defer cancel()
	sum, err := headless.Record(ctx, env, f, headless.StreamOptions{Joins: []registry.Name{ch}, As: "ann", Identity: headless.Identity{User: "ann"},
		OnReady: func(m *registry.Manager) {
			// Stop once the presence round trip is done.
			go func() {
				for ctx.Err() == nil {
					if u, _ := m.Presence(ch); len(u) == 1 {
						cancel()
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, "the recording file", string(data), secretsOf(t, env, "ann"))
	rec := readRec(t, string(data))
	if rec.End == nil || rec.End.Events != sum.Events || sum.Frames == 0 {
		t.Fatalf("end %+v summary %+v", rec.End, sum.End)
	}
	var track bool
	for _, m := range headless.ReceivedMessages(rec) {
		if m.Event == "presence_join" && strings.Contains(string(m.Value), `"key":"ann"`) {
			track = true
		}
	}
	if !track {
		t.Fatal("the recording holds no presence join of ann")
	}
}

// TestWriterMasks: secrets in binary frames, binary messages, JSON
// members and the header never reach the file; binary frames stay
// decodable.
func TestWriterMasks(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	frame, binary, err := protocol.V2.AppendServer(nil, &protocol.Message{Topic: "realtime:broadcast:a:b", Event: "broadcast",
		Broadcast: &protocol.Broadcast{Event: "tok", Payload: []byte(`{"t":"` + jwt + `"}`)}})
	if err != nil || !binary {
		t.Fatal(err, binary)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ch := registry.MustName(registry.KindBroadcast, "a", "b", "")
	var buf bytes.Buffer
	w, err := headless.NewWriter(&buf, &headless.Header{Target: "ws://h/socket?apikey=" + jwt + "&vsn=2.0.0", Serializer: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []registry.Event{
		registry.FrameEvent{Time: at, Direction: registry.In, Channel: ch, Topic: ch.Topic(), Event: "broadcast", Data: frame, Size: len(frame)},
		registry.MessageEvent{Time: at, Channel: ch, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "tok", Binary: []byte("x " + jwt)},
		registry.MessageEvent{Time: at, Channel: ch, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "tok",
			Payload: json.RawMessage(`{"access_token":"sb_secret_abcdefghijklmnopqrstuvwxyz","q":"a\"` + jwt + `"}`)},
	} {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(at); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range []string{jwt, "c2lnbmF0dXJlLXNpZ25hdHVyZQ", "sb_secret_abcdefghijklmnopqrstuvwxyz"} {
		if strings.Contains(out, s) {
			t.Fatalf("unmasked secret in:\n%s", out)
		}
	}
	rec := readRec(t, out)
	msgs := headless.ReceivedMessages(rec)
	if len(msgs) != 1 || msgs[0].Event != "broadcast tok" || !strings.Contains(string(msgs[0].Value), "eyJh…") {
		t.Fatalf("the masked binary frame must still decode: %+v", msgs)
	}
}

// TestPlayerEmpty: a recording with no event replays as a start and an
// end.
func TestPlayerEmpty(t *testing.T) {
	rec := readRec(t, `{"type":"recording","version":1,"started":"2026-01-01T00:00:00Z","serializer":"2.0.0","channels":[]}`)
	ctx, cancel := context.WithCancel(testCtx(t))
	p := headless.NewPlayer(rec, headless.PlayerOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	for _, want := range []string{"Replay started", "Replay finished"} {
		e := <-p.Events()
		if l, ok := e.(registry.LogEvent); !ok || l.Record.Message != want {
			t.Fatalf("got %#v, want %s", e, want)
		}
	}
	p.Seek(time.Hour)
	if at, length := p.Position(); at != 0 || length != 0 {
		t.Fatalf("position %s of %s", at, length)
	}
	if st := p.Snapshot(); len(st.Channels) != 0 || st.Socket.Status != registry.SocketIdle {
		t.Fatalf("snapshot %+v", st)
	}
	cancel()
	<-done
}

// fuzzAppRoundTrip writes the inputs of an app recording back and reads
// them again: the same inputs and events.
func fuzzAppRoundTrip(t *testing.T, rec *headless.Recording) {
	var buf bytes.Buffer
	h := rec.Header
	h.Type, h.Version, h.Kind = headless.TypeRecording, headless.RecordingVersion, headless.KindApp
	for _, v := range []any{h} {
		b, _ := json.Marshal(v)
		buf.Write(append(b, '\n'))
	}
	for _, in := range rec.Apps {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	again, err := headless.ReadRecording("again", &buf)
	if err != nil {
		t.Fatalf("what was read does not read back: %v\n%s", err, buf.String())
	}
	dropped := 0
	for _, e := range rec.Events {
		if _, ok := e.(registry.DroppedEvent); ok {
			dropped++
		}
	}
	if len(again.Apps) != len(rec.Apps) || len(again.Events) != len(rec.Events)-dropped {
		t.Fatalf("read back %d inputs and %d events, want %d and %d", len(again.Apps), len(again.Events), len(rec.Apps), len(rec.Events)-dropped)
	}
}
