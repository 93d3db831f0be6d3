package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"go.uber.org/goleak"

	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/target"
)

// noProjectEnv clears the variables that name a project, so the
// commands start the embedded server in-process.
func noProjectEnv(t *testing.T) {
	for _, v := range append(append(target.URLVars(), target.KeyVars()...), target.SecretVar) {
		t.Setenv(v, "")
	}
}

// rtmRun runs the rtm command line in-process and returns its exit code
// and output.
func rtmRun(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRunCommandExitCodes is the CI check: `rtm run` against the
// embedded server exits 0 when the expectations hold, 1 on a broken
// reconnect (with the failed expectation on stderr and in the report),
// 2 on an invalid scenario (with its line).
func TestRunCommandExitCodes(t *testing.T) {
	defer goleak.VerifyNone(t)
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	code, out, errs := rtmRun(ctx, "run", "testdata/scenarios/five-attempts-then-stop.yaml")
	var rep struct {
		OK     bool   `json:"ok"`
		Target string `json:"target"`
		Passed int    `json:"passed"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || rep.Passed != 6 || !strings.Contains(rep.Target, "embedded") {
		t.Fatalf("five attempts: exit %d, report %+v (%v)\n%s\n%s", code, rep, err, out, errs)
	}

	code, out, errs = rtmRun(ctx, "run", "testdata/scenarios/broken-reconnect.yaml")
	if code != 1 || !strings.Contains(errs, "broken-reconnect.yaml:20: expect status failed: expected broadcast:room:2 connected within 5s") ||
		!strings.Contains(out, `"ok": false`) {
		t.Fatalf("broken reconnect: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}

	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errs = rtmRun(ctx, "run", "--report", report, "testdata/scenarios/broken-reconnect.yaml")
	data, err := os.ReadFile(report)
	if code != 1 || err != nil || !strings.Contains(string(data), `"first_failure"`) ||
		!strings.Contains(out, "broken-reconnect.yaml:20 expect status: failed — expected") {
		t.Fatalf("--report: exit %d (%v)\n%s\n%s", code, err, out, errs)
	}

	code, out, errs = rtmRun(ctx, "run", "testdata/scenarios/invalid/unknown-step.yaml")
	if code != 2 || out != "" || !strings.Contains(errs, `unknown-step.yaml:3: unknown step "jump"`) {
		t.Fatalf("invalid scenario: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs = rtmRun(ctx, "run", "testdata/scenarios/nope.yaml"); code != 2 || !strings.Contains(errs, "no such file") {
		t.Fatalf("missing scenario: exit %d %s", code, errs)
	}
}

// lockedBuf is a buffer written by a command while the test polls it.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// background runs an rtm command until its context is cancelled.
func background(ctx context.Context, stdout *lockedBuf, args ...string) (wait func() (int, string)) {
	var errb lockedBuf
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stdout, &errb) }()
	return func() (int, string) { return <-done, errb.String() }
}

// TestHeadlessCommands drives watch, record, replay --live, diff and
// swarm end to end against a server on loopback, as a project.
func TestHeadlessCommands(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the server's cleanup
	noProjectEnv(t)
	srv := servertest.New(t)
	flags := []string{"--url", srv.URL, "--key", srv.AnonKey(), "--jwt-secret", string(srv.Secret())}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	recA := filepath.Join(dir, "a.ndjson")
	room1 := registry.MustName(registry.KindBroadcast, "room", "1", "")

	// rtm record while a peer sends 10 broadcasts.
	rctx, rcancel := context.WithCancel(ctx)
	var recOut lockedBuf
	wait := background(rctx, &recOut, append([]string{"record", "--out", recA, "--join", room1.String(), "--as", "rec"}, flags...)...)
	fileHas := func(path, s string, n int) func() bool {
		return func() bool {
			b, _ := os.ReadFile(path)
			return strings.Count(string(b), s) >= n
		}
	}
	waitFor(t, "the recorder joined", fileHas(recA, `"channel":"broadcast:room:1","status":"connected"`, 1))
	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()), NoDotenv: true}, headless.EnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	peer, err := env.NewManager(headless.Identity{User: "peer"}, headless.ManagerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := peer.Join(ctx, room1)
	if err != nil || h.Ready(ctx) != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if err := h.Broadcast(ctx, "note", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "10 broadcasts recorded", fileHas(recA, `"direction":"in","kind":"broadcast"`, 10))
	rcancel()
	if code, errs := wait(); code != 0 || !strings.Contains(errs, "written to "+recA) {
		t.Fatalf("record: exit %d: %s", code, errs)
	}

	// rtm watch on room 2 while rtm replay --live sends the recording
	// there: the watcher receives the same messages in the same order.
	wctx, wcancel := context.WithCancel(ctx)
	var watchOut lockedBuf
	wwait := background(wctx, &watchOut, append([]string{"watch", "--join", "broadcast:room:2", "--types", "message", "--types", "channel_state"}, flags...)...)
	waitFor(t, "the watcher joined", func() bool { return strings.Contains(watchOut.String(), `"status":"connected"`) })
	code, out, errs := rtmRun(ctx, append([]string{"replay", recA, "--live", "--into", "broadcast:room:2", "--speed", "20"}, flags...)...)
	if code != 0 || !strings.Contains(out, `"sent": 10`) {
		t.Fatalf("replay --live: exit %d\n%s\n%s", code, out, errs)
	}
	waitFor(t, "10 replayed messages watched", func() bool { return strings.Count(watchOut.String(), `"kind":"broadcast"`) >= 10 })
	wcancel()
	if code, errs := wwait(); code != 0 {
		t.Fatalf("watch: exit %d: %s", code, errs)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(watchOut.String()), "\n") {
		ev, err := registry.DecodeEvent([]byte(line))
		if err != nil {
			t.Fatalf("watch line does not decode: %v: %s", err, line)
		}
		if m, ok := ev.(registry.MessageEvent); ok && m.Direction == registry.In {
			got = append(got, string(m.Payload))
		}
	}
	if want := `[{"i":1} {"i":2} {"i":3} {"i":4} {"i":5} {"i":6} {"i":7} {"i":8} {"i":9} {"i":10}]`; fmt.Sprint(got) != want {
		t.Fatalf("replayed: %v, want %s", got, want)
	}
	for _, s := range []string{srv.AnonKey(), string(srv.Secret())} {
		b, _ := os.ReadFile(recA)
		if strings.Contains(string(b), s) || strings.Contains(watchOut.String(), s) {
			t.Fatal("a key or secret was written unmasked")
		}
	}

	// rtm diff: identical with itself; a planted difference exits 1.
	if code, out, _ := rtmRun(ctx, "diff", recA, recA); code != 0 || !strings.HasPrefix(out, "no differences") {
		t.Fatalf("diff a a: exit %d: %s", code, out)
	}
	data, _ := os.ReadFile(recA)
	var lines []string
	dropped := false
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !dropped && strings.Contains(l, `"type":"frame"`) && strings.Contains(l, `"direction":"in"`) && strings.Contains(l, `"data":`) {
			dropped = true // the first broadcast frame
			continue
		}
		lines = append(lines, l)
	}
	recB := filepath.Join(dir, "b.ndjson")
	if err := os.WriteFile(recB, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = rtmRun(ctx, "diff", "--json", recA, recB)
	var rep headless.DiffReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Identical || len(rep.Channels) != 1 ||
		len(rep.Channels[0].Events[0].OnlyA) != 1 || compact(rep.Channels[0].Events[0].OnlyA[0].Value) != `{"i":1}` {
		t.Fatalf("diff with a planted difference: exit %d (%v)\n%s", code, err, out)
	}
	if code, _, errs := rtmRun(ctx, "diff", recA, filepath.Join(dir, "missing")); code != 2 || !strings.Contains(errs, "no such file") {
		t.Fatalf("diff of a missing file: exit %d %s", code, errs)
	}

	// rtm swarm: the JSON summary.
	code, out, errs = rtmRun(ctx, append([]string{"swarm", "--clients", "5", "--join", "presence:lobby:1", "--presence", "--rate", "2", "--duration", "500ms"}, flags...)...)
	var sw headless.SwarmReport
	if err := json.Unmarshal([]byte(out), &sw); err != nil || code != 0 || sw.Joined != 5 || !sw.PresenceConverged || sw.Sent == 0 || sw.Received != sw.Sent*4 {
		t.Fatalf("swarm: exit %d (%v)\n%s\n%s", code, err, out, errs)
	}

	// rtm watch exits non-zero on a fatal error.
	if code, _, errs := rtmRun(ctx, "watch", "--join", "broadcast:a:1", "--url", "http://127.0.0.1:1", "--key", srv.AnonKey(), "--connect-timeout", "200ms"); code != 1 || !strings.Contains(errs, "no connection within 200ms") {
		t.Fatalf("watch against nothing: exit %d %s", code, errs)
	}
	if code, _, errs := rtmRun(ctx, "watch", "--join", "nope"); code != 2 || !strings.Contains(errs, "--join") {
		t.Fatalf("watch with a bad name: exit %d %s", code, errs)
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// TestReplayIntoUI: a recording replayed into the read-only UI shows its
// channel and its messages, as `rtm replay FILE` wires it.
func TestReplayIntoUI(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	noProjectEnv(t)
	srv := servertest.New(t)
	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()), NoDotenv: true}, headless.EnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	room := registry.MustName(registry.KindBroadcast, "replayroom", "7", "")
	var buf lockedBuf
	rctx, rcancel := context.WithCancel(ctx)
	_, err = headless.Record(rctx, env, &buf, headless.StreamOptions{Joins: []registry.Name{room}, Identity: headless.Identity{User: "rec"},
		OnReady: func(m *registry.Manager) {
			go func() {
				defer rcancel()
				peer, err := env.NewManager(headless.Identity{User: "peer"}, headless.ManagerOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				defer peer.Close()
				if err := peer.Connect(rctx); err != nil {
					t.Error(err)
					return
				}
				h, err := peer.Join(rctx, room)
				if err != nil || h.Ready(rctx) != nil {
					t.Error("peer join", err)
					return
				}
				for ctx.Err() == nil {
					if i, err := m.Info(room); err == nil && i.Status == registry.StatusConnected {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				_ = h.Broadcast(rctx, "greeting", json.RawMessage(`{"text":"hello from the recording"}`))
				for ctx.Err() == nil {
					if msgs, _ := m.Messages(room, 0); len(msgs) > 0 {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := headless.ReadRecording("rec", strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	player := headless.NewPlayer(rec, headless.PlayerOptions{Speed: 100, Name: "rec.ndjson"})
	uctx, ucancel := context.WithCancel(ctx)
	model := replayModel(uctx, player, rec, "rec.ndjson")
	model.Update(tea.WindowSizeMsg{Width: 160, Height: 40})
	var mu sync.Mutex
	stop := runReplay(uctx, player, func(msg tea.Msg) {
		mu.Lock()
		model.Update(msg)
		mu.Unlock()
	})
	screen := func() string {
		mu.Lock()
		defer mu.Unlock()
		return model.Render()
	}
	waitFor(t, "the replayed channel on screen", func() bool {
		s := screen()
		return strings.Contains(s, "replayroom") && strings.Contains(s, "Replay finished")
	})
	if s := screen(); !strings.Contains(s, "read-only") {
		t.Fatalf("the replay UI must say it is read-only:\n%s", s)
	}
	// Back to the moment the message arrived, paused: the channel is
	// there again, connected, with its message.
	var at time.Duration
	for _, e := range rec.Events {
		if m, ok := e.(registry.MessageEvent); ok && m.Direction == registry.In {
			at = m.Time.Sub(rec.Start())
		}
	}
	player.SetPaused(true)
	player.Seek(at)
	waitFor(t, "the message on screen after a seek back", func() bool {
		return strings.Contains(screen(), "hello from the recording")
	})
	ucancel()
	stop()
}
