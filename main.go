// Command rtm is a terminal debugger and monitor for Supabase Realtime.
//
// Package main only wires things together: it parses flags and
// environment with kong, builds the pieces from the packages below it,
// runs them and shuts them down in order. See README.md for usage.
//
// One file per command, each holding its kong struct (flags) and its Run:
//
//   - main.go: the CLI (the command list, run, exit codes), version, help
//   - monitor.go: the terminal UI (the default command)
//   - serve.go: rtm serve; changes.go: the change feed of --db it shares
//     with the embedded target
//   - doctor.go: rtm doctor, and the UI's doctor
//   - headless.go: watch, record, replay, diff, run, swarm (package
//     registry/headless and its scenario sub-package)
//   - proxy.go: rtm proxy (package realtime/proxy), the app's
//     Supabase URL pointed at rtm
//   - embedded.go: the embedded target (server, change feed, demo peers,
//     server-side controls), the one place that starts it
//
// A new headless command is a struct in headless.go (embedding
// targetFlags for a live target), its field in [cli] and its code in
// package registry/headless.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"

	"github.com/alecthomas/kong"

	"rtm/registry"
)

// cli is the command line: sub-commands and their flags.
type cli struct {
	Monitor monitorCmd `cmd:"" default:"withargs" hidden:"" help:"Open the terminal UI (the default when no command is given)."`
	Serve   serveCmd   `cmd:"" help:"Run the embedded Supabase-compatible Realtime server."`
	Doctor  doctorCmd  `cmd:"" help:"Why do my postgres_changes not arrive (--table)? Why is my private channel Unauthorized (--private)? Check the database against everything Realtime needs."`
	Watch   watchCmd   `cmd:"" help:"Print every channel-manager event as NDJSON (one JSON object per line)."`
	Record  recordCmd  `cmd:"" help:"Record every frame in and out (and every event) to a file, keys and tokens masked."`
	Replay  replayCmd  `cmd:"" help:"Replay a recording in the read-only UI, or into live channels (--live)."`
	Diff    diffCmd    `cmd:"" help:"What one recording received that the other did not, per channel and event."`
	Run     runCmd     `cmd:"" help:"Run a scenario file (steps, faults, expectations): exit 0 held, 1 failed, 2 invalid."`
	Swarm   swarmCmd   `cmd:"" help:"Run N simulated clients: join latency, presence convergence, fan-out, limit errors."`
	Proxy   proxyCmd   `cmd:"" help:"Proxy your app's Supabase traffic to its project, relaying the Realtime websocket frame by frame."`
	Version versionCmd `cmd:"" help:"Print rtm's version."`
	Help    helpCmd    `cmd:"" help:"Show help for rtm or for a command."`
}

// runEnv is what every command gets: the process context and the output
// streams, injectable for tests.
type runEnv struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args and runs the chosen command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c cli
	exitCode := -1
	parser, err := kong.New(&c,
		kong.Name("rtm"),
		kong.Description("A terminal debugger and monitor for Supabase Realtime.\n\nWith no command, rtm opens the terminal UI."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "rtm: %s\n", registry.MaskText(err.Error()))
		return 2
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help printed usage and asked to exit
		return exitCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "rtm: %s\n", registry.MaskText(err.Error()))
		return 2
	}
	env := &runEnv{ctx: ctx, stdout: stdout, stderr: stderr}
	if err := kctx.Run(env, parser); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintf(stderr, "rtm: %s\n", registry.MaskText(err.Error()))
		return 1
	}
	if exitCode >= 0 {
		return exitCode
	}
	return 0
}

// versionCmd prints the version.
type versionCmd struct{}

// Run prints the module version, VCS revision when known, and Go version.
func (versionCmd) Run(env *runEnv) error {
	_, err := fmt.Fprintln(env.stdout, versionString())
	return err
}

func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "rtm (unknown version)"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return fmt.Sprintf("rtm %s %s", v, info.GoVersion)
}

// helpCmd prints usage for rtm or a command.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"Command to show help for."`
}

// Run prints what `rtm CMD --help` prints (`rtm --help` with no
// command). Tracing the command alone would not do: with no command kong
// applies the default one and prints the monitor's flags. So it checks
// the command exists, then parses it again with --help, whose hook
// prints the help and asks to exit 0 (run's kong.Exit records it); what
// that second parse says about missing flags or arguments is moot.
func (h helpCmd) Run(parser *kong.Kong) error {
	kctx, err := kong.Trace(parser, h.Command)
	if err != nil {
		return err
	}
	if kctx.Error != nil {
		return fmt.Errorf("help: %w", kctx.Error)
	}
	_, _ = parser.Parse(append(slices.Clone(h.Command), "--help"))
	return nil
}

// lockedWriter serializes writes of several loggers to one file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// isTerminal reports whether f is a character device.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
