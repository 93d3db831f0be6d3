package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"rtm/realtime/mask"
	"rtm/registry/target"
)

// Bounds and defaults of exec steps.
const (
	// MaxExecOutput is how much of a command's output (stdout and stderr
	// together) the report keeps: the last 64 KiB.
	MaxExecOutput = 64 << 10
	// DefaultExecTimeout bounds a foreground exec with no timeout.
	DefaultExecTimeout = time.Minute
	// execGrace is how long a command has to exit after SIGTERM before
	// its process group is killed.
	execGrace = 2 * time.Second
	// failureOutput is how much of a failed foreground exec's output its
	// step's reason quotes.
	failureOutput = 1 << 10
)

// ExecResult is what an exec step's command did, in the report.
type ExecResult struct {
	// Name and Line name the step; Command is the command (masked).
	Name       string `json:"name"`
	Line       int    `json:"line"`
	Command    string `json:"command"`
	Dir        string `json:"dir"`
	Background bool   `json:"background,omitempty"`
	// ExitCode is the command's exit status (-1 when a signal ended it
	// or it never started); Signal says which signal ("signal:
	// killed").
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	// Stopped says why rtm ended it: "timeout" (its own), "end of run"
	// (a background exec still running when the steps were done),
	// "scenario timeout".
	Stopped    string  `json:"stopped,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	// Output is the end of stdout and stderr as written (the last
	// MaxExecOutput bytes, keys and tokens masked); OutputBytes counts
	// all of it.
	Output      string `json:"output"`
	OutputBytes int64  `json:"output_bytes"`
	// Error says why the command could not start.
	Error string `json:"error,omitempty"`
}

// tail is an io.Writer that keeps the last max bytes written (in a
// buffer of at most 2*max, compacted when full).
type tail struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	if t.buf == nil {
		t.buf = make([]byte, 0, 2*t.max)
	}
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	if len(t.buf)+len(p) > 2*t.max {
		keep := t.max - len(p)
		t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-keep:])]
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// text returns the last max bytes; when the start was cut, it begins
// after the first character that cannot be part of a key or token, so
// that no secret is kept cut in two (and then not recognized by the
// masking).
func (t *tail) text() (string, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf[max(0, len(t.buf)-t.max):])
	if t.total > int64(len(s)) {
		if i := strings.IndexFunc(s, func(r rune) bool { return !isTokenChar(r) }); i >= 0 {
			s = s[i:]
		} else {
			s = ""
		}
	}
	return s, t.total
}

func isTokenChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.=+/~", r)
}

// process is a running exec.
type process struct {
	x       *Exec
	line    int
	dir     string
	cmd     *exec.Cmd
	out     *tail
	started time.Time
	done    chan struct{} // closed when the command has exited
	timer   *time.Timer   // its timeout, or nil

	mu      sync.Mutex
	stopped string // why rtm ended it ("" : it exited by itself)
	err     error  // of Start, or of Wait
	took    time.Duration
}

// execEnv returns the environment of a command: rtm's, then the
// SUPABASE_* names pointing at the proxy (URL) and the target's key,
// then the step's own.
func (r *runner) execEnv(x *Exec) []string {
	env := os.Environ()
	if r.app != nil {
		for _, v := range target.URLVars() {
			env = append(env, v+"="+r.app.url)
		}
	}
	if key := r.o.Env.Target.Key.Value; key != "" {
		for _, v := range target.KeyVars() {
			if strings.Contains(v, "ANON_KEY") {
				env = append(env, v+"="+key)
			}
		}
	}
	return append(env, x.Env...)
}

// execDir resolves the working directory of x against the scenario's
// directory.
func (r *runner) execDir(x *Exec) string {
	base := r.o.Dir
	if base == "" && r.sc.File != "" {
		base = filepath.Dir(r.sc.File)
	}
	switch {
	case x.Dir == "":
		return base
	case filepath.IsAbs(x.Dir):
		return x.Dir
	}
	return filepath.Join(base, x.Dir)
}

// startExec starts the exec of st.
func (r *runner) startExec(st Step) (*process, error) {
	x := st.Exec
	p := &process{x: x, line: st.Line, dir: r.execDir(x), out: &tail{max: MaxExecOutput}, done: make(chan struct{})}
	p.cmd = exec.Command(x.Args[0], x.Args[1:]...)
	p.cmd.Dir = p.dir
	p.cmd.Env = r.execEnv(x)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.WaitDelay = execGrace
	setGroup(p.cmd)
	r.execs[x.Name] = p
	r.execOrder = append(r.execOrder, p)
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.err = err
		close(p.done)
		return p, err
	}
	timeout := x.Timeout
	if timeout <= 0 && !x.Background {
		timeout = DefaultExecTimeout
	}
	if timeout > 0 {
		p.timer = time.AfterFunc(timeout, func() { p.stop("timeout") })
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err, p.took = err, time.Since(p.started)
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the command has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the command, if it still runs: SIGTERM to its process
// group, SIGKILL after execGrace. It returns once the command exited.
func (p *process) stop(why string) {
	if p.exited() {
		return
	}
	p.mu.Lock()
	if p.stopped == "" {
		p.stopped = why
	}
	p.mu.Unlock()
	signalGroup(p.cmd, false)
	t := time.NewTimer(execGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	signalGroup(p.cmd, true)
	<-p.done
}

// status describes how the command ended: its exit code, and the
// signal that ended it, if any.
func (p *process) status() (code int, signal string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd.ProcessState == nil {
		return -1, ""
	}
	code = p.cmd.ProcessState.ExitCode()
	if code < 0 {
		signal = p.cmd.ProcessState.String()
	}
	return code, signal
}

// describe says how the command ended, for a step's observation.
func (p *process) describe() string {
	if !p.exited() {
		return fmt.Sprintf("%s still running after %s", p.x.Name, time.Since(p.started).Round(time.Millisecond))
	}
	p.mu.Lock()
	err, stopped, took := p.err, p.stopped, p.took
	p.mu.Unlock()
	if p.cmd.ProcessState == nil {
		return fmt.Sprintf("%s did not start: %v", p.x.Name, err)
	}
	code, sig := p.status()
	s := fmt.Sprintf("%s exited with code %d after %s", p.x.Name, code, took.Round(time.Millisecond))
	if sig != "" {
		s = fmt.Sprintf("%s ended by %s after %s", p.x.Name, sig, took.Round(time.Millisecond))
	}
	if stopped != "" {
		s += " (stopped by rtm: " + stopped + ")"
	}
	return s
}

// result is the command's entry in the report, masked with secrets
// (the values rtm knows are secret: the target's key and token).
func (p *process) result(secrets []string) ExecResult {
	res := ExecResult{Name: p.x.Name, Line: p.line, Command: maskKnown(strings.Join(p.x.Args, " "), secrets),
		Dir: p.dir, Background: p.x.Background, ExitCode: -1}
	res.ExitCode, res.Signal = p.status()
	p.mu.Lock()
	res.Stopped, res.DurationMS = p.stopped, ms(p.took)
	if p.cmd.ProcessState == nil && p.err != nil {
		res.Error = maskKnown(p.err.Error(), secrets)
	}
	p.mu.Unlock()
	out, total := p.out.text()
	res.Output, res.OutputBytes = maskKnown(out, secrets), total
	return res
}

// lastOutput returns the end of the command's output, masked, for a
// failure's reason.
func (p *process) lastOutput(secrets []string) string {
	out, _ := p.out.text()
	out = strings.TrimSpace(maskKnown(out, secrets))
	if len(out) > failureOutput {
		out = "…" + out[len(out)-failureOutput:]
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			out = "…" + out[i+1:]
		}
	}
	return out
}

// maskKnown masks keys and tokens in s (package realtime/mask), and
// every occurrence of the known secrets.
func maskKnown(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			s = strings.ReplaceAll(s, sec, mask.Secret(sec))
		}
	}
	return mask.Text(s)
}

// exec runs an exec step: a background one is started, a foreground one
// run to its end (its step fails unless it exits 0).
func (r *runner) exec(ctx context.Context, st Step) (string, error) {
	p, err := r.startExec(st)
	if err != nil {
		return "", fmt.Errorf("exec %s: %w", st.Exec.Name, err)
	}
	if st.Exec.Background {
		return fmt.Sprintf("%s started (pid %d)", st.Exec.Name, p.cmd.Process.Pid), nil
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop("scenario timeout")
		return p.describe(), ctx.Err()
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	obs := p.describe()
	if code, _ := p.status(); code != 0 {
		err := errors.New(obs)
		if out := p.lastOutput(r.secrets()); out != "" {
			err = fmt.Errorf("%s; its output ends with:\n%s", obs, out)
		}
		return obs, err
	}
	return obs, nil
}

// expectExit waits for a background exec to exit with the code.
func (r *runner) expectExit(ctx context.Context, st Step) (string, string, error) {
	expected := fmt.Sprintf("%s exits with code %d within %s", st.ExecName, st.Code, st.Within)
	p := r.execs[st.ExecName]
	if p == nil {
		return expected, "not started", fmt.Errorf("exec %s was not started", st.ExecName)
	}
	ok, obs, err := r.poll(ctx, st.Within, func() (bool, bool, string) {
		if !p.exited() {
			return false, false, p.describe()
		}
		code, _ := p.status()
		return true, code == st.Code && p.cmd.ProcessState != nil, p.describe()
	})
	if err != nil {
		return expected, obs, err
	}
	if !ok {
		err := fmt.Errorf("expected %s; observed %s", expected, obs)
		if out := p.lastOutput(r.secrets()); out != "" && p.exited() {
			err = fmt.Errorf("%w; its output ends with:\n%s", err, out)
		}
		return expected, obs, err
	}
	return expected, obs, nil
}

// stopExecs ends the commands still running (background ones, at the
// end of the run) and stops their timers.
func (r *runner) stopExecs() {
	var wg sync.WaitGroup
	for _, p := range r.execOrder {
		if p.timer != nil {
			p.timer.Stop()
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.stop("end of run") }()
	}
	wg.Wait()
}

// secrets are the values the reports must not quote: the target's key,
// token and JWT secret.
func (r *runner) secrets() []string {
	tg := r.o.Env.Target
	return []string{tg.Key.Value, tg.Token.Value, string(tg.JWTSecret)}
}
