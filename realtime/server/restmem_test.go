package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"rtm/realtime/server"
)

// restMemChildEnv makes TestRESTMemoryChild a server in a child process
// whose peak RSS the REST memory tests read.
const restMemChildEnv = "RTM_TEST_REST_MEM_CHILD"

// TestRESTMemoryChild is the child of the REST memory tests: a server with
// Supabase's limits except the events rate (so a valid batch is
// delivered, not refused with 429). It prints its address and anon key,
// then serves until stdin closes. Without the environment variable it
// does nothing.
func TestRESTMemoryChild(t *testing.T) {
	if os.Getenv(restMemChildEnv) == "" {
		t.Skip("the child of the REST memory tests")
	}
	srv, err := server.New(server.Config{JWTSecret: []byte("rest-memory"), Limits: server.Limits{MaxEventsPerSecond: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s %s\n", srv.URL(), srv.AnonKey())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	os.Exit(0) // net/http's lingering close of a refused body may outlive Close: no leak check here
}

// memChild is a server in a child process.
type memChild struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdin    io.Closer
	url, key string
}

func startMemChild(t *testing.T) *memChild {
	t.Helper()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		if os.Getenv("CI") != "" { // a skip must not hide a missing piece in CI
			t.Fatalf("needs /proc to read a child's peak RSS: %v", err)
		}
		t.Skip("needs /proc to read a child's peak RSS")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRESTMemoryChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), restMemChildEnv+"=1", "GOMAXPROCS=2")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &memChild{t: t, cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) != 2 {
		t.Fatalf("child said %q: %v", line, err)
	}
	c.url, c.key = fields[0], fields[1]
	return c
}

// status reads a field of the child's /proc status in bytes.
func (c *memChild) status(field string) int64 {
	c.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				c.t.Fatalf("%s: %v", l, err)
			}
			return kb << 10
		}
	}
	c.t.Fatalf("no %s in the child's status", field)
	return 0
}

// resetPeak resets the child's VmHWM to its current RSS (Linux 4.0+); it
// reports false when the kernel refuses.
func (c *memChild) resetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.cmd.Process.Pid), []byte("5"), 0) == nil
}

// post sends body and returns the status, the reply's length and its
// first 1 MiB.
func (c *memChild) post(body []byte) (status int, n int64, head []byte) {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.url+"/realtime/v1/api/broadcast", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("apikey", c.key)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	n, err = io.Copy(&limitedBuffer{&buf, 1 << 20}, resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, n, buf.Bytes()
}

// limitedBuffer keeps the first max bytes written and counts the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// measure posts body to the child and returns the reply and the child's
// peak RSS growth while answering.
func (c *memChild) measure(body []byte) (status int, n int64, head []byte, growth int64) {
	c.t.Helper()
	// Warm up: the handlers' code and buffers are paged in before the
	// baseline.
	c.post([]byte(`{"messages":[{"topic":"warm","event":"up","payload":{}}]}`))
	c.post([]byte(`{"messages":[{}]}`))
	base := c.status("VmRSS")
	if !c.resetPeak() {
		base = c.status("VmHWM")
	}
	status, n, head = c.post(body)
	return status, n, head, c.status("VmHWM") - base
}

// TestRESTBatchErrorReplyBounded sends a batch of a million empty
// messages (3 MB) to a server in a child process: the 422 reply stays
// small and lists the first failures with their index and the count, and
// the server's peak RSS grows by a small multiple of the body (at most 8x;
// 1.8x measured, 360x before scanBatch).
func TestRESTBatchErrorReplyBounded(t *testing.T) {
	c := startMemChild(t)
	const n = 1_000_000
	body := []byte(`{"messages":[` + strings.Repeat(`{},`, n-1) + `{}]}`)
	status, size, head, growth := c.measure(body)
	t.Logf("batch of %d empty messages (%d bytes): %d, reply %d bytes, peak RSS growth %.1f MiB (%.1fx the body)",
		n, len(body), status, size, float64(growth)/(1<<20), float64(growth)/float64(len(body)))
	if status != http.StatusUnprocessableEntity {
		t.Errorf("status %d, want 422", status)
	}
	if size >= 64<<10 {
		t.Errorf("reply of %d bytes, want < 64 KiB", size)
	}
	var reply struct {
		Errors struct {
			Messages []map[string]json.RawMessage `json:"messages"`
		} `json:"errors"`
		Failed int `json:"failed"`
		Total  int `json:"total"`
	}
	if err := json.Unmarshal(head, &reply); err != nil {
		t.Fatalf("reply does not parse: %v (%.200s)", err, head)
	}
	if reply.Failed != n || reply.Total != n || len(reply.Errors.Messages) != 100 {
		t.Errorf("failed %d, total %d, %d listed; want %d, %d, 100", reply.Failed, reply.Total, len(reply.Errors.Messages), n, n)
	}
	if len(reply.Errors.Messages) > 0 {
		first, _ := json.Marshal(reply.Errors.Messages[99])
		if want := `{"event":["can't be blank"],"index":99,"payload":["can't be blank"],"topic":["can't be blank"]}`; string(first) != want {
			t.Errorf("entry 99 %s, want %s", first, want)
		}
	}
	if limit := int64(8 * raceSlack * len(body)); growth > limit {
		t.Errorf("peak RSS grew by %d bytes answering a %d-byte body, want at most %d (%dx)", growth, len(body), limit, 8*raceSlack)
	}
}

// TestRESTValidBatchMemory delivers a valid batch of 200,000 messages
// (10 MB): with no per-message map or list, the server's peak RSS grows
// by a small multiple of the body (at most 5x; 2.4-3x measured, 10x
// before scanBatch).
func TestRESTValidBatchMemory(t *testing.T) {
	c := startMemChild(t)
	const n = 200_000
	var b bytes.Buffer
	b.WriteString(`{"messages":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"topic":"room%d","event":"e","payload":{"i":%d}}`, i%10, i)
	}
	b.WriteString(`]}`)
	body := b.Bytes()
	status, size, head, growth := c.measure(body)
	t.Logf("valid batch of %d messages (%d bytes): %d, reply %d bytes, peak RSS growth %.1f MiB (%.1fx the body)",
		n, len(body), status, size, float64(growth)/(1<<20), float64(growth)/float64(len(body)))
	if status != http.StatusAccepted {
		t.Errorf("status %d (%.200s), want 202", status, head)
	}
	if limit := int64(5 * raceSlack * len(body)); growth > limit {
		t.Errorf("peak RSS grew by %d bytes delivering a %d-byte batch, want at most %d (%dx)", growth, len(body), limit, 5*raceSlack)
	}
}
