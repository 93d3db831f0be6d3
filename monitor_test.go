package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/server/pgcdc/demodb"
	"rtm/realtime/server/pgcdc/pgcluster"
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
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is required for the end-to-end test in CI")
		}
		t.Skip("tmux is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rtm")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	x := &tmuxTerm{t: t, tmux: tmux, sock: "rtm-e2e-" + rand.Text()[:10], logFile: filepath.Join(dir, "rtm.log")}
	cmd := bin + " --no-demo --log-file " + x.logFile + "; echo EXIT=$?; sleep 60"
	if out, err := x.run("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40", cmd); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	t.Cleanup(func() { x.run("kill-server") })

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

// startTmux builds rtm (with -race) and runs it with args in a detached
// tmux session of w x h cells; the session is killed at cleanup.
func startTmux(t *testing.T, w, h int, args string) *tmuxTerm {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is required for the end-to-end test in CI")
		}
		t.Skip("tmux is not installed")
	}
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
	if err := pgcluster.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
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
