package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"rtm/realtime/hostile"
	"rtm/realtime/hostile/tarpit"
	"rtm/realtime/jsharness"
	"rtm/realtime/mask/masktest"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgcdc/demodb"
	"rtm/realtime/server/pgcdc/pgcluster"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/target"
)

// tmuxTerm runs the built rtm in a real terminal: a detached tmux session
// on a private server, driven with send-keys and read with capture-pane.
type tmuxTerm struct {
	t       testing.TB
	tmux    string
	sock    string
	logFile string
}

func (x *tmuxTerm) run(args ...string) (string, error) {
	out, err := exec.Command(x.tmux, append([]string{"-L", x.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// keys sends tmux key names (Enter, Escape, ...).
func (x *tmuxTerm) keys(ks ...string) {
	x.t.Helper()
	if out, err := x.run(append([]string{"send-keys", "-t", "e2e"}, ks...)...); err != nil {
		x.t.Fatalf("send-keys %v: %v %s", ks, err, out)
	}
}

// text types literal text.
func (x *tmuxTerm) text(s string) {
	x.t.Helper()
	if out, err := x.run("send-keys", "-t", "e2e", "-l", s); err != nil {
		x.t.Fatalf("send-keys -l %q: %v %s", s, err, out)
	}
}

func (x *tmuxTerm) screen() string {
	out, _ := x.run("capture-pane", "-p", "-t", "e2e")
	return out
}

// waitFor polls the screen until cond holds (30 s at most).
func (x *tmuxTerm) waitFor(what string, cond func(string) bool) string {
	x.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := x.screen()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(x.logFile)
			if len(logs) > 4000 {
				logs = logs[len(logs)-4000:]
			}
			x.t.Fatalf("timed out waiting for %s; screen:\n%s\nlog tail:\n%s", what, s, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(subs ...string) func(string) bool {
	return func(s string) bool {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				return false
			}
		}
		return true
	}
}

// TestMonitorEndToEnd runs the real program against its embedded server:
// join presence as a user, see the user among the viewers, drop the
// connection, see the attempts, see the recovery, quit cleanly.
func TestMonitorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	defer goleak.VerifyNone(t)
	x := startTmux(t, 120, 40, "--no-demo")

	x.waitFor("the UI connected with the example channels", contains("embedded server", "socket ● connected", "Channels 3/100"))
	// --db auto: the demo database where PostgreSQL is installed, else
	// the header says there is none.
	if pgcluster.Available() == nil {
		x.waitFor("the demo database and a ready subscription", func(s string) bool {
			return strings.Contains(s, "db demo PostgreSQL") && regexp.MustCompile(`project:456\s+sub\s+ready`).MatchString(s)
		})
	} else {
		x.waitFor("no database", contains("db none"))
	}

	// Join presence as bob from the command line.
	x.text(":join presence room:42 --as bob")
	x.keys("Enter")
	x.waitFor("the join", contains("joined presence:room:42 as bob", "Channels 4/100"))

	// Select it and open its viewers: bob is there, as us.
	x.text("/room")
	x.keys("Enter")
	x.text("2")
	viewers := regexp.MustCompile(`bob\s+bob\s+\S+\s+1\s+\(you\)`)
	x.waitFor("bob among the viewers", func(s string) bool {
		return strings.Contains(s, "VIEWERS 1 · you are tracked as bob") && viewers.MatchString(s)
	})

	// The next connection attempt fails, then the connection drops.
	x.text(":fail-connects 1")
	x.keys("Enter")
	x.waitFor("the fail-connects fault", contains("the next 1 connection attempts will fail"))
	x.text("3")
	x.text(":drop")
	x.keys("Enter")
	// Attempt 1 fails (the injected connect failure), so attempt 2 is
	// scheduled with that reason.
	attempts := regexp.MustCompile(`(?m)\s2 \d\d:\d\d:\d\d\.\d{3} socket +\S+ scheduled +dial tcp: faults: inject`)
	x.waitFor("the failed attempt in the timeline", func(s string) bool {
		return attempts.MatchString(s) && regexp.MustCompile(`\s1 \d\d:\d\d:\d\d\.\d{3} socket +started`).MatchString(s)
	})
	recovered := regexp.MustCompile(`(?m)\s2 \d\d:\d\d:\d\d\.\d{3} socket .*succeeded`)
	x.waitFor("the recovery", func(s string) bool {
		return recovered.MatchString(s) && strings.Contains(s, "socket ● connected") && strings.Contains(s, "channel connected · attempts 0/5")
	})

	// After the recovery bob is tracked again.
	x.text("2")
	x.waitFor("bob back among the viewers", func(s string) bool {
		return strings.Contains(s, "VIEWERS 1 · you are tracked as bob") && viewers.MatchString(s)
	})

	// Quit: the program exits 0 and left nothing on the terminal.
	x.text("q")
	s := x.waitFor("the exit", contains("EXIT=0"))
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "EXIT=0" {
			t.Fatalf("the program wrote to the terminal: %q\n%s", l, s)
		}
	}
	logs, err := os.ReadFile(x.logFile)
	if err != nil || !strings.Contains(string(logs), `"msg":"User joined presence"`) {
		t.Fatalf("log file: %v\n%.2000s", err, logs)
	}
}

// require skips tb when a tool it needs is missing (err), or fails it
// when the environment variable CI is set: in CI a missing tool is an
// install step missing, never a silent skip.
func require(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("%v (CI is set, so this fails instead of skipping)", err)
	}
	tb.Skip(err)
}

// startTmux builds rtm (with -race) and runs it with args in a detached
// tmux session of w x h cells; the session is killed at cleanup.
func startTmux(t *testing.T, w, h int, args string) *tmuxTerm {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		err = fmt.Errorf("tmux is not installed (apt-get install tmux): %w", err)
	}
	require(t, err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "rtm")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	x := &tmuxTerm{t: t, tmux: tmux, sock: "rtm-e2e-" + rand.Text()[:10], logFile: filepath.Join(dir, "rtm.log")}
	cmd := bin + " " + args + " --log-file " + x.logFile + "; echo EXIT=$?; sleep 60"
	if out, err := x.run("new-session", "-d", "-s", "e2e", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), cmd); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	t.Cleanup(func() { x.run("kill-server") })
	return x
}

// TestMonitorPostgresChanges runs the real program with --db on a real
// PostgreSQL: subscription:project:456 gets ready, receives an UPDATE of
// row 456 committed by the test, and the doctor (D) passes every check.
// Without PostgreSQL it skips with how to install it (fails in CI).
func TestMonitorPostgresChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	require(t, pgcluster.Available())
	ctx := context.Background()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{GeneratePassword: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	if err := cl.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Exec(ctx, "app", demodb.Schema); err != nil {
		t.Fatal(err)
	}
	defer goleak.VerifyNone(t)
	x := startTmux(t, 120, 40, "--no-demo --db "+cl.URL("app"))

	// The header names the database (password masked), the subscription
	// channel gets ready.
	s := x.waitFor("a ready subscription", func(s string) bool {
		return strings.Contains(s, "db 127.0.0.1:") && regexp.MustCompile(`project:456\s+sub\s+ready`).MatchString(s)
	})
	if pw := passwordOf(cl.URL("app")); pw != "" && strings.Contains(s, pw) {
		t.Fatalf("the database password is on screen:\n%s", s)
	}
	x.text("/project")
	x.keys("Enter")
	x.text("1")
	x.waitFor("the subscription selected", contains("subscription:project:456 · ready", "Subscribed to PostgreSQL"))

	// A real UPDATE of row 456 arrives, with its new value.
	if err := cl.Exec(ctx, "app", "update public.project set progress = 77, name = 'From the e2e test' where id = 456"); err != nil {
		t.Fatal(err)
	}
	x.waitFor("the UPDATE", contains("db change  UPDATE", `"name": "From the e2e test"`, `"progress": 77`))

	// The doctor passes every check.
	x.text("D")
	x.waitFor("the doctor's report", func(s string) bool {
		return strings.Contains(s, "Doctor — subscription:project:456") && strings.Contains(s, "✓ publication") &&
			strings.Contains(s, "all 11 checks passed") && !strings.Contains(s, "✗")
	})
	x.keys("Escape")
	x.waitFor("the doctor closed", func(s string) bool { return !strings.Contains(s, "Doctor —") })
	x.text("4")
	x.waitFor("the Info tab", contains("Ready     yes", "Doctor    all 11 checks passed"))

	x.text("q")
	x.waitFor("the exit", contains("EXIT=0"))
	logs, err := os.ReadFile(x.logFile)
	if err != nil || !strings.Contains(string(logs), `"msg":"Postgres changes ready"`) {
		t.Fatalf("log file: %v\n%.2000s", err, logs)
	}
}

// passwordOf returns the password of a postgres URL.
func passwordOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	_, pw, _ := strings.Cut(userinfo, ":")
	return pw
}

// procCPU returns the user+system CPU time of a process from
// /proc/<pid>/stat (in clock ticks of 10 ms).
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command (which is in parentheses): state is 3,
	// utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// BenchmarkIdleCPU measures the CPU share of the real program, idle but
// connected (heartbeats, the UI clock) to its embedded server, with no
// demo peers, over 30 s in a real terminal; beside it, in the same window,
// `rtm serve` alone with one idle client connection would not be a UI, so
// the baseline is `rtm serve` idle (the server side of the same work).
// Run with: go test -run XXX -bench IdleCPU -benchtime 1x .
func BenchmarkIdleCPU(b *testing.B) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		b.Skip("tmux is not installed")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "rtm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	window := 30 * time.Second
	if v := os.Getenv("RTM_IDLE_WINDOW"); v != "" {
		window, _ = time.ParseDuration(v)
	}
	x := &tmuxTerm{tmux: tmux, sock: "rtm-idle-" + rand.Text()[:10], logFile: filepath.Join(dir, "rtm.log")}
	defer x.run("kill-server")
	start := func(name, cmd string) string {
		if out, err := x.run("new-session", "-d", "-s", name, "-x", "200", "-y", "50", "exec "+cmd); err != nil {
			b.Fatalf("tmux: %v %s", err, out)
		}
		pid, err := x.run("list-panes", "-t", name, "-F", "#{pane_pid}")
		if err != nil {
			b.Fatalf("tmux list-panes: %v", err)
		}
		return strings.TrimSpace(pid)
	}
	ui := start("ui", bin+" --no-demo --log-file "+x.logFile)
	srv := start("srv", bin+" serve --addr 127.0.0.1:0")
	time.Sleep(5 * time.Second) // warm up: connect, join the examples
	out, _ := x.run("capture-pane", "-p", "-t", "ui")
	if !strings.Contains(out, "socket ● connected") {
		b.Fatalf("the UI is not connected:\n%s", out)
	}
	u0, err := procCPU(ui)
	if err != nil {
		b.Fatal(err)
	}
	s0, _ := procCPU(srv)
	w0 := time.Now()
	time.Sleep(window)
	wall := time.Since(w0)
	u1, _ := procCPU(ui)
	s1, _ := procCPU(srv)
	b.ReportMetric(float64(u1-u0)/float64(wall)*100, "rtm-cpu-%")
	b.ReportMetric(float64(s1-s0)/float64(wall)*100, "serve-baseline-cpu-%")
	b.ReportMetric(0, "ns/op")
}

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

// TestRunAppScenario: `rtm run` of the supabase-js app scenario exits 0
// with the app's exec in the report, and 1 when the app's reconnect is
// broken (BROKEN_RECONNECT=1 reaches the app through rtm's environment).
func TestRunAppScenario(t *testing.T) {
	defer goleak.VerifyNone(t)
	noProjectEnv(t)
	node := jsharness.Install(t)
	t.Setenv("PATH", filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, errs := rtmRun(ctx, "run", "testdata/scenarios/app-reconnect.yaml")
	var rep struct {
		OK    bool   `json:"ok"`
		Proxy string `json:"proxy"`
		Execs []struct {
			Name     string `json:"name"`
			ExitCode int    `json:"exit_code"`
			Output   string `json:"output"`
		} `json:"execs"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || rep.Proxy == "" || len(rep.Execs) != 1 ||
		rep.Execs[0].ExitCode != 0 || !strings.Contains(rep.Execs[0].Output, "status SUBSCRIBED") {
		t.Fatalf("app scenario: exit %d, report %+v (%v)\n%s\n%s", code, rep, err, out, errs)
	}
	t.Setenv("BROKEN_RECONNECT", "1")
	code, out, errs = rtmRun(ctx, "run", "testdata/scenarios/app-reconnect.yaml")
	if code != 1 || !strings.Contains(errs, "app-reconnect.yaml:39: expect app_attempts failed: expected at least 1 rejoins") {
		t.Fatalf("broken app: exit %d\nstdout %s\nstderr %s", code, out, errs)
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

// `rtm doctor` prints one line per check and exits 1 on a red one; `rtm
// serve --db <url>` reads the same database.
func TestDoctorCommand(t *testing.T) {
	require(t, pgcluster.Available())
	ctx := context.Background()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	if err := cl.Exec(ctx, "postgres", `create table items(id int8 primary key); create publication supabase_realtime for table items;
		do $$ begin create role anon nologin; exception when duplicate_object then null; end $$; grant select on items to anon`); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"doctor", "--db", cl.URL("postgres"), "--table", "items", "--filter", "id=eq.1"}, &out, &errOut)
	if code != 0 || strings.Count(out.String(), "✓") != 11 || strings.Contains(out.String(), "\x1b") {
		t.Errorf("healthy: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code = run(ctx, []string{"doctor", "--db", cl.URL("postgres"), "--table", "items", "--filter", "nope=eq.1"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), `✗ filter`) || !strings.Contains(out.String(), `column "nope" does not exist`) {
		t.Errorf("bad filter: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

func TestOpenChangesWithoutDB(t *testing.T) {
	f, err := openFeed(context.Background(), "", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Source != nil || f.Authorizer != nil || f.Broadcasts != nil || !strings.Contains(f.Line, "--db auto") ||
		!strings.Contains(f.authorizationLine(), "RLS policies are not evaluated without --db") {
		t.Errorf("no --db: %+v", f)
	}
	if got := maskURL("postgres://u:secret@h:5432/db"); strings.Contains(got, "secret") {
		t.Errorf("maskURL %s", got)
	}
}

// --db auto starts the demo database, its Broadcast from Database
// stream delivers realtime.send; Close removes it.
func TestOpenFeedAuto(t *testing.T) {
	require(t, pgcluster.Available())
	f, err := openFeed(context.Background(), "auto", "supabase_realtime", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Source == nil || f.Authorizer == nil || f.Broadcasts == nil || f.DemoURL == "" || !strings.Contains(f.Line, "public.project") || strings.Contains(f.Line, f.DemoURL) {
		t.Fatalf("feed %+v", f)
	}
	got := make(chan server.DatabaseBroadcast, 1)
	stop := f.Broadcasts.Listen(func(b server.DatabaseBroadcast) {
		select {
		case got <- b:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, f.DemoURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `select realtime.send('{"a":1}'::jsonb, 'ev', 'room', false)`); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	select {
	case b := <-got:
		if b.Topic != "room" || b.Event != "ev" || b.Private || b.ID == "" {
			t.Errorf("delivered %+v", b)
		}
	case <-ctx.Done():
		t.Error("realtime.send never reached the server")
	}
	stop()
	f.Close()
	// The demo server is gone.
	if err := pgcdcProbe(f.DemoURL); err == nil {
		t.Error("the demo database still answers after Close")
	}
}

func pgcdcProbe(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgcdc.Probe(ctx, url, "supabase_realtime")
	return err
}

// TestConnectTimeoutCommands: against a server that never finishes a
// connection, watch and record (--connect-timeout), run (a connect
// step's timeout) and swarm (--join-timeout) exit within the timeout
// plus a grace, with their documented exit code and a message naming
// the timeout and the step the connection was stuck in — not after the
// client's 10 s handshake timeout.
func TestConnectTimeoutCommands(t *testing.T) {
	const (
		timeout = time.Second
		grace   = time.Second
		key     = "sb_publishable_connecttimeouttest0000"
	)
	noLeaks(t)
	noProjectEnv(t)
	dir := t.TempDir()
	sc := filepath.Join(dir, "connect.yaml")
	if err := os.WriteFile(sc, []byte("name: connect to a tarpit\nsteps:\n  - connect: {timeout: 1s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		kinds []tarpit.Kind
		args  func(url string) []string
		code  int
		check func(t *testing.T, k tarpit.Kind, stdout, stderr string)
	}{
		{
			name:  "watch",
			kinds: tarpit.Kinds,
			args: func(url string) []string {
				return []string{"watch", "--connect-timeout", "1s", "--url", url, "--key", key, "--join", "broadcast:room:1"}
			},
			code: 1,
			check: func(t *testing.T, k tarpit.Kind, _, stderr string) {
				if !strings.Contains(stderr, "no connection within 1s: ") || !strings.Contains(stderr, "context deadline exceeded "+k.Stage()) {
					t.Errorf("stderr %q; want the timeout and %q", stderr, k.Stage())
				}
			},
		},
		{
			name:  "record",
			kinds: []tarpit.Kind{tarpit.Silent},
			args: func(url string) []string {
				return []string{"record", "--connect-timeout", "1s", "--url", url, "--key", key, "--join", "broadcast:room:1", "--out", filepath.Join(dir, "rec.ndjson")}
			},
			code: 1,
			check: func(t *testing.T, k tarpit.Kind, _, stderr string) {
				if !strings.Contains(stderr, "no connection within 1s: ") || !strings.Contains(stderr, k.Stage()) {
					t.Errorf("stderr %q; want the timeout and %q", stderr, k.Stage())
				}
			},
		},
		{
			name:  "run",
			kinds: []tarpit.Kind{tarpit.Silent, tarpit.TLS},
			args:  func(url string) []string { return []string{"run", "--url", url, "--key", key, sc} },
			code:  1,
			check: func(t *testing.T, k tarpit.Kind, _, stderr string) {
				want := "connect.yaml:3: connect failed: connect as the target's identity: no connection within 1s: "
				if !strings.Contains(stderr, want) || !strings.Contains(stderr, "context deadline exceeded "+k.Stage()) {
					t.Errorf("stderr %q; want %q and %q", stderr, want, k.Stage())
				}
			},
		},
		{
			name:  "swarm",
			kinds: []tarpit.Kind{tarpit.Silent, tarpit.TLS},
			args: func(url string) []string {
				return []string{"swarm", "--clients", "3", "--join-timeout", "1s", "--url", url, "--key", key, "--join", "broadcast:room:1"}
			},
			code: 0, // the summary was printed; client failures are in it
			check: func(t *testing.T, k tarpit.Kind, stdout, _ string) {
				var rep struct {
					Connected int            `json:"connected"`
					Errors    map[string]int `json:"errors"`
				}
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatalf("report: %v\n%s", err, stdout)
				}
				want := "connect: no connection within 1s: context deadline exceeded " + k.Stage()
				if rep.Connected != 0 || rep.Errors[want] != 3 || len(rep.Errors) != 1 {
					t.Errorf("report: connected %d, errors %v; want 0 and {%q: 3}", rep.Connected, rep.Errors, want)
				}
			},
		},
	}
	for _, c := range cases {
		for _, k := range c.kinds {
			t.Run(c.name+"/"+k.String(), func(t *testing.T) {
				p := tarpit.New(t, k)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				start := time.Now()
				code, stdout, stderr := rtmRun(ctx, c.args(p.URL)...)
				took := time.Since(start)
				t.Logf("rtm %s, tarpit %s: exit %d after %v; stderr: %s", c.name, k, code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
				if took > timeout+grace {
					t.Errorf("exited after %v; want within %v + %v", took, timeout, grace)
				}
				if code != c.code {
					t.Errorf("exit %d, want %d\nstdout %s\nstderr %s", code, c.code, stdout, stderr)
				}
				c.check(t, k, stdout, stderr)
			})
		}
	}
}

// noLeaks fails t when goroutines it started are still running after
// its cleanups.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// serveAndDial runs `rtm serve` on a free port with args and dials it
// with the anon key under 2.0.0; stop ends the server and wait returns
// its exit code and stderr. The socket is closed when the test ends.
func serveAndDial(t *testing.T, args ...string) (ws *websocket.Conn, stop func(), wait func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	sctx, stop := context.WithCancel(ctx)
	var out lockedBuf
	wait = background(sctx, &out, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "error"}, args...)...)
	banner := regexp.MustCompile(`Realtime URL: (ws://\S+)\n(?s:.*)anon key: (\S+)\n`)
	waitFor(t, "the banner", func() bool { return banner.MatchString(out.String()) })
	m := banner.FindStringSubmatch(out.String())
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, m[1]+"?vsn=2.0.0&apikey="+m[2], nil)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, stop, wait
}

// TestServePresenceBudgetFlags: rtm serve's presence budget flags reach
// the server: a track over --max-presence-bytes-per-conn gets the error
// reply naming that budget.
func TestServePresenceBudgetFlags(t *testing.T) {
	ws, stop, wait := serveAndDial(t, "--max-presence-bytes-per-conn", "5000", "--max-presence-bytes", "1000000")
	push := func(frame string) map[string]any {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			msg, err := protocol.V2.DecodeServer(data, false)
			if err == nil && msg.Event == protocol.EventReply {
				var r map[string]any
				if err := json.Unmarshal(msg.Payload, &r); err != nil {
					t.Fatal(err)
				}
				return r
			}
		}
	}
	if r := push(`["1","1","realtime:room","phx_join",{"config":{"presence":{"key":"k"}}}]`); r["status"] != "ok" {
		t.Fatalf("join: %v", r)
	}
	r := push(`["1","2","realtime:room","presence",{"type":"presence","event":"track","payload":{"s":"` + strings.Repeat("s", 6000) + `"}}]`)
	resp, _ := r["response"].(map[string]any)
	reason, _ := resp["reason"].(string)
	if r["status"] != "error" || !strings.HasPrefix(reason, "PresenceBudgetExceeded: ") || !strings.HasSuffix(reason, "over its budget of 5000") {
		t.Errorf("track over the flag's budget: %v", r)
	}
	ws.Close()
	stop()
	if code, stderr := wait(); code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr)
	}
}

// TestServeFrameFlag: rtm serve's --max-frame-size reaches the server: a
// frame over it closes the socket with 1009, naming the limit, while one
// under it is answered.
func TestServeFrameFlag(t *testing.T) {
	ws, stop, wait := serveAndDial(t, "--max-frame-size", "2000", "--outbound-queue-bytes", "100000", "--max-tenant-windows", "10")
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	small := `["1","1","realtime:room","phx_join",{"pad":"` + strings.Repeat("s", 1500) + `"}]`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(small)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := ws.ReadMessage(); err != nil || !strings.Contains(string(data), `"status":"ok"`) {
		t.Fatalf("a frame under --max-frame-size: %s %v", data, err)
	}
	big := `["1","2","realtime:room","broadcast",{"pad":"` + strings.Repeat("b", 2500) + `"}]`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig || !strings.Contains(ce.Text, "2000") {
			t.Errorf("a frame over --max-frame-size: %v, want close 1009 naming 2000 bytes", err)
		}
		break
	}
	stop()
	if code, stderr := wait(); code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr)
	}
}

// TestWatchFramesAndRecordMaskEscapedSecrets: `rtm watch --frames` and
// `rtm record --log-file`, run as the command line runs them against a
// server on loopback, while peers broadcast (a text frame, a binary
// frame, a raw binary frame) a payload that spells the service_role JWT
// and the sb_secret_ key with a \u escape and holds a JWT with '='
// padding — which the server accepts: the peers connect and join with
// it. Neither stdout, the recording nor the log file holds a key,
// however decoded, and `rtm diff` still reads the recording.
func TestWatchFramesAndRecordMaskEscapedSecrets(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the server's cleanup
	noProjectEnv(t)
	srv := servertest.New(t)
	flags := []string{"--url", srv.URL, "--key", srv.AnonKey(), "--jwt-secret", string(srv.Secret())}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	recPath, logPath := filepath.Join(dir, "rec.ndjson"), filepath.Join(dir, "log.jsonl")
	padded := masktest.PaddedJWT(srv.Secret(), map[string]any{"role": "authenticated", "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	secrets := []string{srv.ServiceRoleKey(), srv.SecretKey(), padded, padded[strings.LastIndexByte(padded, '.')+1:], string(srv.Secret())}
	payload := masktest.Payload(srv.ServiceRoleKey(), srv.SecretKey(), padded)
	room := registry.MustName(registry.KindBroadcast, "vault", "3", "")

	sctx, stop := context.WithCancel(ctx)
	var watchOut, recOut lockedBuf
	wwait := background(sctx, &watchOut, append([]string{"watch", "--frames", "--join", room.String()}, flags...)...)
	rwait := background(sctx, &recOut, append([]string{"record", "--out", recPath, "--log-file", logPath, "--join", room.String()}, flags...)...)
	joined := `"channel":"broadcast:vault:3","status":"connected"`
	waitFor(t, "both joined", func() bool {
		b, _ := os.ReadFile(recPath)
		return strings.Contains(watchOut.String(), joined) && strings.Contains(string(b), joined)
	})

	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()), NoDotenv: true}, headless.EnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		peer, err := env.NewManager(headless.Identity{}, headless.ManagerOptions{Tune: func(o *registry.Options) {
			o.APIKey, o.Token, o.Serializer = padded, padded, vsn
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		if err := peer.Connect(ctx); err != nil {
			t.Fatalf("connect with the padded JWT: %v", err)
		}
		h, err := peer.Join(ctx, room)
		if err == nil {
			err = h.Ready(ctx)
		}
		if err != nil {
			t.Fatalf("join with the padded JWT: %v", err)
		}
		if err := h.Broadcast(ctx, "rotate", payload); err != nil {
			t.Fatal(err)
		}
		if vsn == "2.0.0" {
			if err := h.BroadcastBinary(ctx, "raw", []byte("raw "+string(payload))); err != nil {
				t.Fatal(err)
			}
		}
	}
	inFrames := `"direction":"in","channel":"broadcast:vault:3","topic":"realtime:broadcast:vault:3","event":"broadcast"`
	waitFor(t, "three broadcast frames watched and recorded", func() bool {
		b, _ := os.ReadFile(recPath)
		return strings.Count(watchOut.String(), inFrames) >= 3 && strings.Count(string(b), inFrames) >= 3
	})
	stop()
	if code, errs := wwait(); code != 0 {
		t.Fatalf("watch: exit %d: %s", code, errs)
	}
	if code, errs := rwait(); code != 0 {
		t.Fatalf("record: exit %d: %s", code, errs)
	}

	rec, _ := os.ReadFile(recPath)
	logs, _ := os.ReadFile(logPath)
	for _, out := range []struct {
		what string
		b    []byte
	}{{"rtm watch --frames", []byte(watchOut.String())}, {"the recording", rec}, {"the log file", logs}} {
		if len(out.b) == 0 {
			t.Fatalf("%s is empty", out.what)
		}
		for _, k := range secrets {
			if masktest.Holds(out.b, k) {
				t.Fatalf("%s holds a key (%s…):\n%s", out.what, k[:8], out.b)
			}
		}
	}
	if code, out, errs := rtmRun(ctx, "diff", recPath, recPath); code != 0 || !strings.HasPrefix(out, "no differences") {
		t.Fatalf("diff of the masked recording: exit %d: %s %s", code, out, errs)
	}
}

// TestErrorsMasked: an error that quotes what was typed or received (a
// flag's value, a server's reason) is printed with its keys masked.
func TestErrorsMasked(t *testing.T) {
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	padded := masktest.PaddedJWT([]byte("secret"), map[string]any{"role": "service_role"})
	code, _, errs := rtmRun(ctx, "watch", "--join", "broadcast:a:1", "--connect-timeout", padded)
	if code != 2 || !strings.Contains(errs, "--connect-timeout") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if masktest.Holds([]byte(errs), padded) || !strings.Contains(errs, "eyJh…") {
		t.Fatalf("the error shows the key: %s", errs)
	}
}

// TestServeLogsMasked: `rtm serve` logs what clients send (a topic) with
// the keys in it masked, however the frame spelled them.
func TestServeLogsMasked(t *testing.T) {
	defer goleak.VerifyNone(t)
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	var out lockedBuf
	var errs lockedBuf
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--addr", "127.0.0.1:0", "--jwt-secret", "serve-mask-test-secret", "--log-level", "debug"}, &out, &errs)
	}()
	var addr string
	waitFor(t, "the banner", func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if a, ok := strings.CutPrefix(strings.TrimSpace(l), "Realtime URL: ws://"); ok {
				addr, _, _ = strings.Cut(a, "/")
			}
		}
		return addr != ""
	})
	anon := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(l), "anon key: "); ok {
			anon = k
		}
	}
	jwt := masktest.PaddedJWT([]byte("serve-mask-test-secret"), map[string]any{"role": "service_role"})
	c, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/realtime/v1/websocket?vsn=1.0.0&apikey="+anon, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := `{"topic":"realtime:` + masktest.EscapeOne(jwt, 2) + `","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the join logged", func() bool { return strings.Contains(errs.String(), "Joined") })
	_ = c.Close()
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("serve: exit %d: %s", code, errs.String())
	}
	if masktest.Holds([]byte(errs.String()), jwt) || !strings.Contains(errs.String(), "eyJh…") {
		t.Fatalf("the server's log shows the key:\n%s", errs.String())
	}
}

// peakRSS returns the peak resident set size of process pid (VmHWM), in
// bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// ndjsonCounter counts the lines of an NDJSON stream by the type their
// first bytes name, without holding a line: it reads 30 MiB lines in
// constant memory.
type ndjsonCounter struct {
	mu    sync.Mutex
	head  []byte // the first bytes of the line being read
	lines map[string]int
	bytes int64
}

var lineType = regexp.MustCompile(`^\{"type":"([a-z_]+)"`)

func (c *ndjsonCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines == nil {
		c.lines = map[string]int{}
	}
	n := len(p)
	c.bytes += int64(n)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if room := 64 - len(c.head); room > 0 {
			c.head = append(c.head, part[:min(room, len(part))]...)
		}
		if i < 0 {
			break
		}
		t := "?"
		if m := lineType.FindSubmatch(c.head); m != nil {
			t = string(m[1])
		}
		c.lines[t]++
		c.head = c.head[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (c *ndjsonCounter) count(t string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines[t]
}

func (c *ndjsonCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d bytes, lines %v", c.bytes, c.lines)
}

// TestHugeBroadcastsPeakRSS runs the built `rtm watch` and `rtm record`
// against a hostile server that sends 30 MiB broadcasts without end (the
// client accepts frames up to 32 MiB): while the server sends hundreds
// of megabytes, the child's peak RSS stays under maxRSS, it keeps
// writing NDJSON (messages, and for record frames, with counted drops
// when it falls behind), and it exits cleanly on SIGINT. Before the
// byte bounds, watch reached about 1.4 GB.
func TestHugeBroadcastsPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	// What the process holds at most: a frame being read (30 MiB, and as
	// much again while it is copied into a buffer of its size), the
	// events queued for the writer (the subscription's 32 MiB) and the
	// batch being written (as much), the line being written (one copy of
	// the payload, to mask it; for record also the frame's masked text),
	// the runtime: about 200 MiB live, and the garbage collector lets the
	// heap grow to twice what was live at its last cycle (GOGC=100).
	// Before the byte bounds, watch peaked at 1.3 GB.
	const size = 30 << 20
	const maxRSS = 512 << 20
	bin := filepath.Join(t.TempDir(), "rtm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := hostile.New(t, func(string) hostile.Script { return hostile.HugeBroadcasts("big", 0, size) })
	for _, mode := range []string{"watch", "record"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{mode, "--url", srv.URL, "--key", "sb_publishable_hostile", "--join", "broadcast:room:" + mode}
			var out ndjsonCounter
			cmd := exec.Command(bin, args...)
			var fifo string
			if mode == "record" {
				// The recording goes to a pipe the test reads, so that
				// gigabytes need no disk.
				fifo = filepath.Join(t.TempDir(), "rec.ndjson")
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Fatalf("mkfifo: %v", err)
				}
				cmd.Args = append(cmd.Args, "--out", fifo)
			} else {
				cmd.Stdout = &out
			}
			var errb lockedBuf
			cmd.Stderr = &errb
			sent0 := srv.BytesOut()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			readDone := make(chan struct{})
			if fifo != "" {
				go func() {
					defer close(readDone)
					f, err := os.Open(fifo)
					if err != nil {
						t.Errorf("open the fifo: %v", err)
						return
					}
					defer f.Close()
					_, _ = io.Copy(&out, f)
				}()
			} else {
				close(readDone)
			}
			go func() { exited <- cmd.Wait() }()
			var peak int64
			sample := func() {
				if v, err := peakRSS(cmd.Process.Pid); err == nil {
					peak = max(peak, v)
				}
			}
			deadline := time.Now().Add(3 * time.Minute)
			for srv.BytesOut()-sent0 < 800<<20 || out.count("message") < 5 || (mode == "record" && out.count("frame") < 5) {
				sample()
				select {
				case err := <-exited:
					t.Fatalf("rtm %s exited early: %v\n%s\noutput: %s", mode, err, errb.String(), out.String())
				default:
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					<-exited
					t.Fatalf("rtm %s: after 3 min the server sent %d MB; output: %s; peak RSS %d MB\n%s",
						mode, (srv.BytesOut()-sent0)>>20, out.String(), peak>>20, errb.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			sample()
			sentMB := (srv.BytesOut() - sent0) >> 20
			stopAt := time.Now()
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("rtm %s after SIGINT: %v\n%s", mode, err, errb.String())
				}
			case <-time.After(30 * time.Second):
				sample()
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("rtm %s did not exit within 30 s of SIGINT (peak RSS %d MB; output %s)", mode, peak>>20, out.String())
			}
			<-readDone
			t.Logf("rtm %s: server sent %d MB; peak RSS %d MB; exited %v after SIGINT; output %s", mode, sentMB, peak>>20,
				time.Since(stopAt).Round(time.Millisecond), out.String())
			if peak > maxRSS {
				t.Errorf("rtm %s: peak RSS %d MB, want at most %d MB", mode, peak>>20, maxRSS>>20)
			}
			if mode == "record" && out.count("recording_end") != 1 {
				t.Errorf("rtm record: the recording has no end line: %s", out.String())
			}
		})
	}
}

// TestWatchHostilePresenceBounded runs the built rtm watch (no -race: the
// race detector multiplies memory) against a server that sends endless
// presence_diffs: on one channel each adds a meta to the same user, on
// another each adds a new user. Until the server has sent
// watchHostileBytes, the child's peak RSS (VmHWM) must stay under
// watchHostileRSS, the NDJSON must keep coming (more lines in the second
// half) and report the truncated presence, and an interrupt must end it
// cleanly (exit 0).
//
// The bound: what the process may hold by design is the client's
// presence state of the two channels (100,000 users of small metas, about
// 25 MB; one user of 1024 metas), their event queues (at most 64 MiB
// each, the registry's client buffers), the manager's presence cache
// (about 15 MB), the subscription's buffer and the runtime, and the GC
// lets the heap grow to twice what is live: about 350 MB at worst. It
// measured 223 MB after 300 MB sent (244 MB after 900 MB); before the
// bounds it passed 3 GB after the server had sent 6 MB.
func TestWatchHostilePresenceBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rtm and streams hundreds of MB")
	}
	const (
		watchHostileBytes = 300 << 20
		watchHostileRSS   = 400 << 20
	)
	noProjectEnv(t)
	srv := hostile.New(t, func(topic string) hostile.Script {
		switch topic {
		case "realtime:presence:room:one":
			return hostile.EndlessDiffs("u", 0, 40, false)
		case "realtime:presence:room:many":
			return hostile.EndlessDiffs("u", 0, 40, true)
		}
		return nil
	})
	bin := filepath.Join(t.TempDir(), "rtm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "watch", "--url", srv.URL, "--key", "sb_publishable_hostile",
		"--join", "presence:room:one", "--join", "presence:room:many", "--types", "presence,channel_state,stats")
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var lines, bad, truncated atomic.Int64
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		for sc.Scan() {
			lines.Add(1)
			if !json.Valid(sc.Bytes()) {
				bad.Add(1)
			}
			if bytes.Contains(sc.Bytes(), []byte(`"truncated"`)) {
				truncated.Add(1)
			}
		}
		done <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	var peak, linesAtHalf int64
	deadline := time.Now().Add(3 * time.Minute)
	for srv.BytesOut() < watchHostileBytes {
		if linesAtHalf == 0 && srv.BytesOut() >= watchHostileBytes/2 {
			linesAtHalf = lines.Load()
		}
		hwm, err := peakRSS(cmd.Process.Pid)
		if err != nil {
			t.Fatalf("rtm watch ended early (%v): %s", err, stderr.String())
		}
		peak = hwm
		if peak > watchHostileRSS {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server sent only %d MB in 3 minutes", srv.BytesOut()>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if hwm, err := peakRSS(cmd.Process.Pid); err == nil {
		peak = hwm
	}
	linesAt := lines.Load()
	t.Logf("server sent %d MB in %d frames; rtm watch peak RSS %d MB; %d NDJSON lines (%d with truncated)",
		srv.BytesOut()>>20, srv.FramesOut(), peak>>20, linesAt, truncated.Load())
	if peak > watchHostileRSS {
		t.Errorf("rtm watch peak RSS %d MB, want at most %d MB", peak>>20, watchHostileRSS>>20)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("rtm watch exited with %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("rtm watch did not exit within 30 s of the interrupt")
	}
	if linesAt <= linesAtHalf || bad.Load() != 0 {
		t.Errorf("%d NDJSON lines (%d at half the load), %d not JSON", linesAt, linesAtHalf, bad.Load())
	}
	if truncated.Load() == 0 {
		t.Errorf("no event reported the truncated presence")
	}
}

// TestHelpCommand: `rtm help` prints what `rtm --help` prints (the
// command list, not the default command's flags), and `rtm help CMD`
// what `rtm CMD --help` prints.
func TestHelpCommand(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{nil, {"watch"}, {"serve"}, {"monitor"}} {
		code, got, errs := rtmRun(ctx, append([]string{"help"}, args...)...)
		wcode, want, _ := rtmRun(ctx, append(args, "--help")...)
		if code != 0 || wcode != 0 || got != want || errs != "" {
			t.Fatalf("rtm help %v: exit %d (--help %d), stderr %q\n--- help:\n%s\n--- --help:\n%s", args, code, wcode, errs, got, want)
		}
	}
	if _, out, _ := rtmRun(ctx, "help"); !strings.Contains(out, "Usage: rtm <command>") || !strings.Contains(out, "swarm") {
		t.Fatalf("rtm help is not the command list:\n%s", out)
	}
	if code, _, errs := rtmRun(ctx, "help", "nope"); code != 1 || !strings.Contains(errs, "unexpected argument nope") {
		t.Fatalf("rtm help nope: exit %d %s", code, errs)
	}
}

// TestEmbeddedControl drives the embedded server's Go API through the
// registry.ServerControl of embedded.go.
func TestEmbeddedControl(t *testing.T) {
	srv := servertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := embeddedControl{s: srv.Server}
	if c.Target() != "embedded server at "+srv.URL {
		t.Fatalf("target %q", c.Target())
	}
	if n, err := c.Kick(ctx, "realtime:nobody", registry.KickClose); err != nil || n != 0 {
		t.Fatalf("kick: %d %v", n, err)
	}
	if err := c.RejectJoins(ctx, registry.Rejection{Count: 1, Reason: "X: y"}); err != nil {
		t.Fatalf("reject: %v", err)
	}
	if err := c.RejectJoins(ctx, registry.Rejection{Count: -1}); err == nil {
		t.Fatal("negative count accepted")
	}
	if n, err := c.DropAll(ctx); err != nil || n != 0 {
		t.Fatalf("drop: %d %v", n, err)
	}
	if err := c.Restart(ctx, 10*time.Millisecond); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

// TestProxyCommand runs the built binary's `rtm proxy` with no project
// configured: it starts the embedded server, prints what to set in the
// app (with the anon key), relays a websocket through (a self broadcast
// comes back), logs the socket's open and close with the key masked, and
// exits 0 on Ctrl+C.
func TestProxyCommand(t *testing.T) {
	noProjectEnv(t)
	bin := filepath.Join(t.TempDir(), "rtm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "proxy", "--listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	var stdout, stderr lockedBuf
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	waitFor(t, "the banner", func() bool { return strings.Contains(stderr.String(), "Press Ctrl+C to stop.") })
	out := stderr.String()
	m := regexp.MustCompile(`(?m)^  SUPABASE_URL=(http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(out)
	k := regexp.MustCompile(`(?m)^  SUPABASE_ANON_KEY=(\S+)$`).FindStringSubmatch(out)
	if m == nil || k == nil {
		t.Fatalf("banner:\n%s", out)
	}
	for _, name := range []string{"NEXT_PUBLIC_SUPABASE_URL=", "VITE_SUPABASE_URL=", "EXPO_PUBLIC_SUPABASE_URL=", "NEXT_PUBLIC_SUPABASE_ANON_KEY="} {
		if !strings.Contains(out, "  "+name) {
			t.Errorf("banner lacks %s:\n%s", name, out)
		}
	}
	appURL, anon := m[1], k[1]

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(appURL, "http")+"/realtime/v1/websocket?vsn=1.0.0&apikey="+anon, nil)
	if err != nil {
		t.Fatalf("dial through the proxy: %v\n%s", err, stderr.String())
	}
	read := func(want string) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if strings.Contains(string(msg), want) {
				return
			}
		}
	}
	join := `{"topic":"realtime:room","event":"phx_join","payload":{"config":{"broadcast":{"self":true}}},"ref":"1","join_ref":"1"}`
	require(t, ws.WriteMessage(websocket.TextMessage, []byte(join)))
	read(`"status":"ok"`)
	bc := `{"topic":"realtime:room","event":"broadcast","payload":{"type":"broadcast","event":"hi","payload":{"n":42}},"ref":"2","join_ref":"1"}`
	require(t, ws.WriteMessage(websocket.TextMessage, []byte(bc)))
	read(`"n":42`)
	require(t, ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second)))
	_, _, err = ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1000 {
		t.Errorf("close: %v", err)
	}
	ws.Close()
	waitFor(t, "the close logged", func() bool { return strings.Contains(stderr.String(), "proxy: socket closed") })

	// Ctrl+C with a socket open: the app gets 1001, the command exits 0.
	open, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(appURL, "http")+"/realtime/v1/websocket?vsn=2.0.0&apikey="+anon, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	waitFor(t, "the second socket", func() bool { return strings.Count(stderr.String(), "proxy: socket open") == 2 })
	require(t, cmd.Process.Signal(os.Interrupt))
	_ = open.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := open.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("open socket at Ctrl+C: %v, want 1001", err)
	}
	_ = open.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, stderr.String())
	}
	errs := stderr.String()
	if !strings.Contains(errs, "proxy: socket open") || !strings.Contains(errs, `code=1000 reason=bye`) {
		t.Errorf("stderr lacks the socket's open and close:\n%s", errs)
	}
	if strings.Contains(errs, "warning") || strings.Count(errs, anon) != 4 {
		t.Errorf("stderr warns, or shows the key elsewhere than the banner's four lines:\n%s", errs)
	}

	// stdout is the app model's NDJSON: the two sockets, the channel's
	// join and its answer, the broadcast both ways, the first socket's
	// close with its code; the key only masked.
	events := stdout.String()
	if strings.Contains(events, anon) {
		t.Errorf("the events show the key unmasked:\n%s", events)
	}
	var opens, joins, joined, sent, received, closes int
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		var ev struct {
			Type, Action, Status, Topic, Dir, Event, Reason string
			UserEvent                                       string `json:"user_event"`
			Code                                            int
			Socket                                          uint64
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q: %v", line, err)
		}
		switch {
		case ev.Type == "app_socket" && ev.Action == "open":
			opens++
		case ev.Type == "app_socket" && ev.Action == "close" && ev.Socket == 1 && ev.Code == 1000 && ev.Reason == "bye":
			closes++
		case ev.Type == "app_channel" && ev.Action == "join" && ev.Topic == "realtime:room":
			joins++
		case ev.Type == "app_channel" && ev.Status == "joined" && ev.Topic == "realtime:room":
			joined++
		case ev.Type == "app_message" && ev.UserEvent == "hi" && ev.Dir == "app->upstream":
			sent++
		case ev.Type == "app_message" && ev.UserEvent == "hi" && ev.Dir == "upstream->app":
			received++
		}
	}
	if opens != 2 || closes != 1 || joins != 1 || joined != 1 || sent != 1 || received != 1 {
		t.Errorf("events: %d opens, %d closes 1000 bye, %d joins, %d joined, %d sent, %d received (want 2 1 1 1 1 1):\n%s",
			opens, closes, joins, joined, sent, received, events)
	}
}

// TestProxyCommandWarnsOffLoopback: a non-loopback --listen is warned
// about on stderr; an --upstream that is no project URL is an error.
func TestProxyCommandWarnsOffLoopback(t *testing.T) {
	noLeaks(t)
	srv := servertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pctx, stop := context.WithCancel(ctx)
	var out, errb lockedBuf
	done := make(chan int, 1)
	go func() {
		done <- run(pctx, []string{"proxy", "--upstream", srv.URL, "--listen", "0.0.0.0:0"}, &out, &errb)
	}()
	waitFor(t, "the banner", func() bool { return strings.Contains(errb.String(), "Press Ctrl+C") })
	stop()
	code := <-done
	if errs := errb.String(); code != 0 || !strings.Contains(errs, "warning: listening on 0.0.0.0:") || strings.Contains(errs, "ANON_KEY") || out.String() != "" {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, out.String(), errs)
	}
	if code, _, errs := rtmRun(ctx, "proxy", "--upstream", "127.0.0.1:54321"); code != 1 || !strings.Contains(errs, "want an http or https project URL") {
		t.Errorf("bad upstream: exit %d %s", code, errs)
	}
}

// TestMonitorAppsEndToEnd runs the real program against a project on
// loopback: an app's websocket through the monitor's proxy joins a
// channel, and :apps shows the socket and the joined channel; the
// header shows the proxy's URL.
func TestMonitorAppsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the server's cleanup
	srv := servertest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	x := startTmux(t, 160, 45, "--url "+srv.URL+" --key "+srv.AnonKey()+" --listen "+addr)
	x.waitFor("the UI connected, with the proxy in the header", contains("socket ● connected", "apps → http://"+addr))

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/realtime/v1/websocket?vsn=1.0.0&apikey="+srv.AnonKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	join := `{"topic":"realtime:room:e2e","event":"phx_join","payload":{"config":{}},"ref":"1","join_ref":"1"}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, reply, err := ws.ReadMessage(); err != nil || !strings.Contains(string(reply), `"status":"ok"`) {
		t.Fatalf("join reply through the proxy: %s %v", reply, err)
	}

	x.text(":apps")
	x.keys("Enter")
	x.waitFor("the app socket and its channel on :apps", func(s string) bool {
		return strings.Contains(s, "APP SOCKETS 1") && strings.Contains(s, "vsn 1.0.0") &&
			regexp.MustCompile(`realtime:room:e2e\s+joined`).MatchString(s) && !strings.Contains(s, srv.AnonKey())
	})
	x.text("A") // closes the view
	x.waitFor("the view closed", func(s string) bool { return !strings.Contains(s, "APP SOCKETS") })
	_ = ws.Close()
	x.text("q")
	x.waitFor("the exit", contains("EXIT=0"))
}

// TestMonitorProxy: the monitor's app proxy forwards to its target; a
// taken --listen port turns it off with a status, not an error;
// --no-proxy runs none.
func TestMonitorProxy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer up.Close()
	tg := &target.Target{URL: target.Setting{Value: up.URL}}
	log := slog.New(slog.DiscardHandler)

	ap := monitorCmd{Listen: "127.0.0.1:0"}.startProxy(monitorTarget{}, tg, log)
	// A project's anon key is the app's own: the proxy offers none.
	if ap.model == nil || !strings.HasPrefix(ap.url, "http://127.0.0.1:") || ap.status != "" || ap.anonKey != "" {
		t.Fatalf("proxy: %+v", ap)
	}
	res, err := http.Get(ap.url + "/rest/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(body) != "upstream /rest/v1/x" {
		t.Fatalf("forwarded: %q", body)
	}
	ap.close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := monitorCmd{Listen: ln.Addr().String()}.startProxy(monitorTarget{}, tg, log)
	if taken.model != nil || !strings.Contains(taken.status, "app proxy off: --listen: ") || !strings.Contains(taken.status, "in use") {
		t.Fatalf("taken port: %+v", taken)
	}
	taken.close()

	if off := (monitorCmd{NoProxy: true, Listen: "127.0.0.1:0"}).startProxy(monitorTarget{}, tg, log); off.model != nil || off.status != "" {
		t.Fatalf("--no-proxy: %+v", off)
	}

	// In front of the embedded server the proxy offers its anon key
	// (the UI shows it masked, c and w give it to the app).
	et, err := startEmbedded(context.Background(), embeddedConfig{logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer et.Close()
	emb := monitorCmd{Listen: "127.0.0.1:0"}.startProxy(monitorTarget{embedded: et}, &target.Target{Embedded: true}, log)
	defer emb.close()
	if emb.model == nil || emb.anonKey == "" || emb.anonKey != et.srv.AnonKey() {
		t.Fatalf("embedded upstream: anon key %q, want the server's", emb.anonKey)
	}
}

// TestProxyRecordCommand runs the built binary: `rtm proxy --record`
// twice in front of a server on loopback, an app that joins and receives
// broadcasts (the second run one fewer) through it; each recording ends
// in order, holds no key, and `rtm diff` of the two names the broadcast
// only the first received (exit 1; --json too). `rtm replay --live` of
// an app recording and `rtm diff` of an app recording against a client
// recording are refused (exit 2).
func TestProxyRecordCommand(t *testing.T) {
	noProjectEnv(t)
	srv := servertest.New(t)
	bin := filepath.Join(t.TempDir(), "rtm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	record := func(file string, events ...string) string {
		t.Helper()
		path := filepath.Join(dir, file)
		cmd := exec.Command(bin, "proxy", "--listen", "127.0.0.1:0", "--upstream", srv.URL, "--record", path)
		cmd.Dir = dir
		var stdout, stderr lockedBuf
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require(t, cmd.Start())
		defer func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}()
		waitFor(t, "the banner", func() bool { return strings.Contains(stderr.String(), "Press Ctrl+C to stop.") })
		m := regexp.MustCompile(`(?m)^  SUPABASE_URL=(http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(stderr.String())
		if m == nil {
			t.Fatalf("banner:\n%s", stderr.String())
		}
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(m[1], "http")+"/realtime/v1/websocket?vsn=1.0.0&apikey="+srv.AnonKey(), nil)
		if err != nil {
			t.Fatalf("dial through the proxy: %v\n%s", err, stderr.String())
		}
		defer ws.Close()
		read := func(want string) {
			t.Helper()
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("waiting for %s: %v", want, err)
				}
				if strings.Contains(string(msg), want) {
					return
				}
			}
		}
		join := `{"topic":"realtime:room","event":"phx_join","payload":{"config":{"broadcast":{"self":true}},"access_token":"` + srv.AnonKey() + `"},"ref":"1","join_ref":"1"}`
		require(t, ws.WriteMessage(websocket.TextMessage, []byte(join)))
		read(`"status":"ok"`)
		for i, ev := range events {
			bc := fmt.Sprintf(`{"topic":"realtime:room","event":"broadcast","payload":{"type":"broadcast","event":%q,"payload":{"key":%q}},"ref":"%d","join_ref":"1"}`,
				ev, srv.ServiceRoleKey(), i+2)
			require(t, ws.WriteMessage(websocket.TextMessage, []byte(bc)))
			read(`"event":"` + ev + `"`)
		}
		require(t, ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second)))
		_, _, _ = ws.ReadMessage()
		waitFor(t, "the close", func() bool { return strings.Contains(stdout.String(), `"action":"close"`) })
		require(t, cmd.Process.Signal(os.Interrupt))
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "dropped) recorded to "+path) || strings.Contains(stderr.String(), "0 frames") {
			t.Fatalf("stderr lacks the recording's summary:\n%s", stderr.String())
		}
		data, err := os.ReadFile(path)
		require(t, err)
		for _, k := range []string{srv.AnonKey(), srv.ServiceRoleKey()} {
			if masktest.Holds(data, k) {
				t.Fatalf("%s holds a key:\n%s", file, data)
			}
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if !strings.Contains(lines[0], `"kind":"app"`) || !strings.Contains(lines[len(lines)-1], `"type":"recording_end"`) {
			t.Fatalf("%s: first or last line:\n%s", file, data)
		}
		return path
	}
	a := record("a.ndjson", "hi", "extra")
	b := record("b.ndjson", "hi")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(args ...string) (int, string, string) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	code, out, errs := run("diff", a, b)
	if code != 1 || !strings.Contains(out, "room\n  broadcast extra: 1 in "+a+", 0 in "+b) || !strings.Contains(out, "only in "+a+": ") || strings.Contains(out, "broadcast hi") {
		t.Errorf("diff: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = run("diff", "--json", a, b)
	var rep struct {
		Identical bool `json:"identical"`
		Channels  []struct {
			Channel string `json:"channel"`
			Events  []struct {
				Event string `json:"event"`
			} `json:"events"`
		} `json:"channels"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 1 || err != nil || rep.Identical || len(rep.Channels) != 1 || len(rep.Channels[0].Events) != 1 || rep.Channels[0].Events[0].Event != "broadcast extra" {
		t.Errorf("diff --json: exit %d %v\n%s", code, err, out)
	}
	if code, out, errs := run("diff", a, a); code != 0 || !strings.Contains(out, "no differences") {
		t.Errorf("diff of a recording with itself: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run("replay", "--live", a); code != 2 || !strings.Contains(errs, "is an app recording") {
		t.Errorf("replay --live of an app recording: exit %d %s", code, errs)
	}
	client := filepath.Join(dir, "client.ndjson")
	require(t, os.WriteFile(client, []byte(`{"type":"recording","version":1}`+"\n"), 0o600))
	if code, _, errs := run("diff", a, client); code != 2 || !strings.Contains(errs, a+" is an app recording") {
		t.Errorf("diff of an app and a client recording: exit %d %s", code, errs)
	}
}
