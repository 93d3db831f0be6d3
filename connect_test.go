package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/internal/tarpit"
)

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
