// Package jsharness runs the official @supabase/realtime-js client under
// Node.js for rtm's tests: the realtime-js conformance suite of the
// embedded server, and the interop tests of rtm's Go client.
//
// [Start] installs the npm packages pinned in testdata/realtimejs (on first
// use, `npm ci`, guarded by a file lock), starts one long-lived Node 22
// process running testdata/realtimejs/driver.mjs, and returns a [Driver].
// A test then creates realtime-js clients and channels through the typed
// API ([Driver.NewClient], [Client.Channel], [Channel.Subscribe], ...) or
// the raw [Driver.Do] (ClientOptions.Lib [LibSupabaseJS] makes the
// client the realtime client of @supabase/supabase-js instead, created
// as an app creates it, with the realtime-js it bundles; the same API
// drives it), and asserts on the events the driver reports:
// subscribe statuses, callbacks (broadcast, presence, postgres_changes,
// system), heartbeats, socket events, REST requests and every WebSocket
// frame sent or received, verbatim, with timestamps. Events are kept in a
// log, so a test can wait for one with a deadline ([Driver.WaitEvent],
// [Driver.Await]) or look back ([Driver.Events]).
//
// When npm or Node is missing, or the install fails, Start skips the test
// with instructions, except when the environment variable CI is set: then
// it fails. The driver process is killed when the test ends; its stderr
// and the event log are written to the test log if the test failed.
//
// [StartPhoenix] runs testdata/realtimejs/phoenix.mjs instead: the Phoenix
// framework's own JS client (npm phoenix 1.8.17) with the same line
// protocol and event log, driven through [Phoenix.NewSocket],
// [PhoenixSocket.Channel], [PhoenixChannel.Push] and friends, as a second
// judge of the embedded server that nobody here wrote.
//
// realtime-js 2.119.0 has no WebSocket dependency: under Node it uses the
// global WebSocket (undici), which the driver wraps to log frames. Under
// Node 22.23.3 (undici 6.28.1) a connection attempt that fails (refused,
// or answered with an HTTP error instead of the upgrade) fires "error" but
// never "close", so realtime-js stays "connecting" and does not retry it;
// only closes of open sockets lead to its reconnect schedule. Tests must
// not expect a retry after a failed connect.
package jsharness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTimeout bounds each command of the typed API and each Await with
// no explicit timeout. Commands that wait for the server (send with ack,
// unsubscribe) take up to the client's push timeout (10 s by default).
const DefaultTimeout = 30 * time.Second

// maxLine is the longest line the driver may write (frames are hex).
const maxLine = 64 << 20

// Driver is a running driver process.
type Driver struct {
	tb  testing.TB
	cmd *exec.Cmd

	// NodeVersion and RealtimeJSVersion are what the driver reported.
	NodeVersion       string
	RealtimeJSVersion string

	writeMu sync.Mutex
	stdin   io.WriteCloser

	mu      sync.Mutex
	nextID  int
	pending map[int]chan reply
	events  []Event
	changed chan struct{} // closed and replaced whenever events grow
	exited  bool
	exitErr error

	stderr syncBuffer
	done   chan struct{} // closed when the reader has finished
}

type reply struct {
	ok     bool
	result json.RawMessage
	err    string
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start installs the pinned packages if needed, starts the driver and
// waits until it is ready. The process is stopped when tb ends.
func Start(tb testing.TB) *Driver {
	tb.Helper()
	d, ready := startScript(tb, "driver.mjs")
	if d == nil {
		return nil
	}
	var info struct {
		Node       string `json:"node"`
		RealtimeJS string `json:"realtimeJs"`
	}
	json.Unmarshal(ready.Raw, &info)
	d.NodeVersion, d.RealtimeJSVersion = info.Node, info.RealtimeJS
	if d.RealtimeJSVersion != RealtimeJSVersion {
		tb.Fatalf("jsharness: driver runs realtime-js %s, want %s", d.RealtimeJSVersion, RealtimeJSVersion)
	}
	return d
}

// startScript starts Node on script (a file of testdata/realtimejs that
// speaks the driver's line protocol) and waits for its ready event. It
// returns nil when tb was skipped.
func startScript(tb testing.TB, script string) (*Driver, Event) {
	tb.Helper()
	node := Install(tb)
	dir := Dir(tb)
	d := &Driver{
		tb:      tb,
		pending: make(map[int]chan reply),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	cmd := exec.Command(node, "--unhandled-rejections=warn", filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Stderr = &d.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("jsharness: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("jsharness: %v", err)
	}
	if err := cmd.Start(); err != nil {
		unavailable(tb, "cannot start %s: %v; %s", node, err, howToGetNode)
		return nil, Event{}
	}
	d.cmd = cmd
	d.stdin = stdin
	go d.read(stdout)
	tb.Cleanup(d.stop)

	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	ready, err := d.WaitEvent(ctx, Match{Kind: KindReady})
	if err != nil {
		tb.Fatalf("jsharness: %s did not start: %v\nstderr:\n%s", script, err, d.stderr.String())
	}
	return d, ready
}

// read consumes stdout until the process closes it.
func (d *Driver) read(stdout io.Reader) {
	defer close(d.done)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var probe struct {
			ID     *int            `json:"id"`
			OK     bool            `json:"ok"`
			Result json.RawMessage `json:"result"`
			Error  *string         `json:"error"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			d.stderr.Write([]byte(fmt.Sprintf("jsharness: bad driver line %q: %v\n", line, err)))
			continue
		}
		if probe.ID != nil {
			r := reply{ok: probe.OK, result: append(json.RawMessage(nil), probe.Result...)}
			if probe.Error != nil {
				r.err = *probe.Error
			}
			d.mu.Lock()
			ch := d.pending[*probe.ID]
			delete(d.pending, *probe.ID)
			d.mu.Unlock()
			if ch != nil {
				ch <- r
			}
			continue
		}
		e, err := parseEvent(line)
		if err != nil {
			d.stderr.Write([]byte(fmt.Sprintf("jsharness: bad driver event %q: %v\n", line, err)))
			continue
		}
		d.append(e)
	}
	err := d.cmd.Wait()
	d.mu.Lock()
	d.exited = true
	d.exitErr = err
	for id, ch := range d.pending {
		ch <- reply{err: "driver exited"}
		delete(d.pending, id)
	}
	d.mu.Unlock()
	msg := "driver exited"
	if err != nil {
		msg += ": " + err.Error()
	}
	d.append(Event{Kind: KindExit, Time: time.Now(), Error: msg})
}

func (d *Driver) append(e Event) {
	d.mu.Lock()
	e.Seq = len(d.events) + 1
	d.events = append(d.events, e)
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// stop ends the driver: stdin is closed (the driver exits at once), and
// after a grace period the process is killed.
func (d *Driver) stop() {
	d.stdin.Close()
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	if d.tb.Failed() {
		d.tb.Logf("jsharness: driver stderr:\n%s", d.stderr.String())
		d.tb.Logf("jsharness: event log:\n%s", d.Dump(400))
	}
}

// Dump renders the last n events of the log, one per line.
func (d *Driver) Dump(n int) string {
	all := d.Events(nil)
	// Routine heartbeats (sent, answered ok) would push everything else
	// out of a long wait's dump: they are counted, not shown.
	events := make([]Event, 0, len(all))
	skipped := 0
	for _, e := range all {
		if routineHeartbeat(&e) {
			skipped++
			continue
		}
		events = append(events, e)
	}
	if len(events) > n {
		events = events[len(events)-n:]
	}
	var sb strings.Builder
	for _, e := range events {
		sb.WriteString(e.String())
		sb.WriteByte('\n')
	}
	if skipped > 0 {
		fmt.Fprintf(&sb, "(%d routine heartbeat events not shown)\n", skipped)
	}
	return sb.String()
}

// routineHeartbeat reports whether e is part of a heartbeat that went
// well: the callback's "sent" or "ok", the frame out, its ok reply.
func routineHeartbeat(e *Event) bool {
	switch e.Kind {
	case KindHeartbeat:
		return e.Status == "sent" || e.Status == "ok"
	case KindFrame:
		return strings.Contains(e.Text, `"phoenix","heartbeat",`) ||
			strings.Contains(e.Text, `"phoenix","phx_reply",{"status":"ok"`)
	}
	return false
}

// Do sends one command and waits for its reply. args are the command's
// fields (see driver.mjs); a JavaScript exception comes back as an error
// with its message. With args["async"] = true the reply comes at once
// and the outcome later as a KindResult event (see [Driver.DoAsync]).
func (d *Driver) Do(ctx context.Context, op string, args map[string]any) (json.RawMessage, error) {
	cmd := make(map[string]any, len(args)+2)
	for k, v := range args {
		cmd[k] = v
	}
	ch := make(chan reply, 1)
	d.mu.Lock()
	if d.exited {
		d.mu.Unlock()
		return nil, errors.New("jsharness: driver exited")
	}
	d.nextID++
	id := d.nextID
	d.pending[id] = ch
	d.mu.Unlock()
	cmd["id"] = id
	cmd["op"] = op
	line, err := json.Marshal(cmd)
	if err != nil {
		d.forget(id)
		return nil, fmt.Errorf("jsharness: %s: %w", op, err)
	}
	d.writeMu.Lock()
	_, err = d.stdin.Write(append(line, '\n'))
	d.writeMu.Unlock()
	if err != nil {
		d.forget(id)
		return nil, fmt.Errorf("jsharness: %s: write: %w", op, err)
	}
	select {
	case r := <-ch:
		if r.err != "" || !r.ok {
			return nil, &CommandError{Op: op, Message: r.err}
		}
		return r.result, nil
	case <-ctx.Done():
		d.forget(id)
		return nil, fmt.Errorf("jsharness: %s: %w", op, ctx.Err())
	}
}

func (d *Driver) forget(id int) {
	d.mu.Lock()
	delete(d.pending, id)
	d.mu.Unlock()
}

// CommandError is a command the driver answered with an error: usually a
// JavaScript exception from realtime-js, whose message it carries.
type CommandError struct {
	Op      string
	Message string
}

func (e *CommandError) Error() string { return fmt.Sprintf("jsharness: %s: %s", e.Op, e.Message) }

// Pending is a command started with [Driver.DoAsync].
type Pending struct {
	d  *Driver
	op string
	id int
}

// DoAsync starts a command whose outcome may take long (a send waiting for
// an ack, an unsubscribe) without waiting for it; [Pending.Wait] collects
// it.
func (d *Driver) DoAsync(ctx context.Context, op string, args map[string]any) (*Pending, error) {
	a := make(map[string]any, len(args)+1)
	for k, v := range args {
		a[k] = v
	}
	a["async"] = true
	res, err := d.Do(ctx, op, a)
	if err != nil {
		return nil, err
	}
	var p struct {
		Pending int `json:"pending"`
	}
	if err := json.Unmarshal(res, &p); err != nil || p.Pending == 0 {
		return nil, fmt.Errorf("jsharness: %s: bad async reply %s", op, res)
	}
	return &Pending{d: d, op: op, id: p.Pending}, nil
}

// Wait waits for the outcome of the command.
func (p *Pending) Wait(ctx context.Context) (json.RawMessage, error) {
	e, err := p.d.WaitEvent(ctx, Match{Kind: KindResult, Where: func(e Event) bool { return e.Op == p.id }})
	if err != nil {
		return nil, err
	}
	if !e.OK {
		return nil, &CommandError{Op: p.op, Message: e.Error}
	}
	return e.Result, nil
}

// Done reports whether the outcome has arrived.
func (p *Pending) Done() bool {
	return len(p.d.Events(Match{Kind: KindResult, Where: func(e Event) bool { return e.Op == p.id }})) > 0
}

// Mark returns the Seq of the last event so far; Match{After: mark}
// selects only later events.
func (d *Driver) Mark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events)
}

// Events returns the logged events that m matches (all when m is nil), in
// order.
func (d *Driver) Events(m Matcher) []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Event
	for _, e := range d.events {
		if m == nil || m.Matches(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitEvent returns the first event of the log that m matches, waiting
// for it if none has arrived yet, until ctx ends or the driver exits.
func (d *Driver) WaitEvent(ctx context.Context, m Matcher) (Event, error) {
	evs, err := d.WaitEvents(ctx, m, 1)
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// WaitEvents waits until m matches n events of the log and returns the
// first n.
func (d *Driver) WaitEvents(ctx context.Context, m Matcher, n int) ([]Event, error) {
	from := 0
	var found []Event
	for {
		d.mu.Lock()
		for ; from < len(d.events); from++ {
			if m.Matches(d.events[from]) {
				found = append(found, d.events[from])
				if len(found) == n {
					d.mu.Unlock()
					return found, nil
				}
			}
		}
		changed, exited := d.changed, d.exited
		d.mu.Unlock()
		if exited {
			return found, fmt.Errorf("jsharness: driver exited while waiting for %d× %v (saw %d)", n, m, len(found))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return found, fmt.Errorf("jsharness: waiting for %d× %v (saw %d): %w", n, m, len(found), ctx.Err())
		}
	}
}

// Await is WaitEvent for tests: it fails tb (with the recent event log)
// when no matching event arrives within timeout.
func (d *Driver) Await(tb testing.TB, timeout time.Duration, m Matcher) Event {
	tb.Helper()
	return d.AwaitN(tb, timeout, m, 1)[0]
}

// AwaitN waits until m matches n events, like Await.
func (d *Driver) AwaitN(tb testing.TB, timeout time.Duration, m Matcher, n int) []Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	evs, err := d.WaitEvents(ctx, m, n)
	if err != nil {
		tb.Fatalf("%v\nrecent events:\n%s", err, d.Dump(60))
	}
	return evs
}
