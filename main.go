// Command rtm is a terminal debugger and monitor for Supabase Realtime.
//
// This file only wires things together: it parses flags and environment
// with kong, builds the pieces from the packages below it, runs them and
// shuts them down in order. See README.md for usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kong"
)

// cli is the command line: sub-commands and their flags.
type cli struct {
	Monitor monitorCmd `cmd:"" default:"withargs" hidden:"" help:"Open the terminal UI (the default when no command is given)."`
	Serve   serveCmd   `cmd:"" help:"Run the embedded Supabase-compatible Realtime server."`
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
		fmt.Fprintf(stderr, "rtm: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help printed usage and asked to exit
		return exitCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "rtm: %v\n", err)
		return 2
	}
	env := &runEnv{ctx: ctx, stdout: stdout, stderr: stderr}
	if err := kctx.Run(env, parser); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintf(stderr, "rtm: %v\n", err)
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

// Run prints the help text.
func (h helpCmd) Run(env *runEnv, parser *kong.Kong) error {
	kctx, err := kong.Trace(parser, h.Command)
	if err != nil {
		return err
	}
	if kctx.Error != nil {
		return fmt.Errorf("help: %w", kctx.Error)
	}
	return kctx.PrintUsage(false)
}

// monitorCmd opens the terminal UI.
type monitorCmd struct{}

// Run opens the terminal UI. Until the UI lands it explains what to run.
func (monitorCmd) Run(env *runEnv) error {
	return errors.New("the terminal UI is not built yet; run `rtm serve` for the embedded Realtime server")
}

// serveCmd runs the embedded server.
type serveCmd struct {
	Addr string `default:"127.0.0.1:4000" help:"Address to listen on."`
}

// Run serves until the context ends.
func (s serveCmd) Run(env *runEnv) error {
	return errors.New("serve: not built yet")
}
