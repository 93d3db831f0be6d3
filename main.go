// Command rtm is a terminal debugger and monitor for Supabase Realtime.
//
// This file only wires things together: it parses flags and environment
// with kong, builds the pieces from the packages below it, runs them and
// shuts them down in order. See README.md for usage.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"rtm/realtime/server"
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

// serveCmd runs the embedded Supabase-compatible Realtime server
// (package realtime/server) until interrupted. Flags mirror server.Config.
type serveCmd struct {
	Addr      string `default:"127.0.0.1:4000" env:"RTM_ADDR" help:"Address to listen on."`
	JWTSecret string `name:"jwt-secret" env:"RTM_JWT_SECRET" help:"JWT secret (HS256/384/512) that verifies tokens and signs the printed keys; generated and printed when empty."`

	Limits                     string        `default:"on" enum:"on,off" help:"Supabase's tenant limits: on, or off (benchmarks)."`
	MaxChannelsPerClient       int           `default:"100" help:"Channels one socket may join."`
	MaxJoinsPerSecond          int           `default:"100" help:"Joins per second, server-wide."`
	MaxConcurrentUsers         int           `default:"200" help:"Open sockets."`
	MaxEventsPerSecond         int           `default:"100" help:"Client events (broadcasts, REST messages) per second, server-wide."`
	MaxPresenceEventsPerSecond int           `default:"1000" help:"Presence events per second, server-wide."`
	ClientPresenceMaxCalls     int           `default:"5" help:"Presence pushes per channel per --client-presence-window."`
	ClientPresenceWindow       time.Duration `default:"30s" help:"Window of --client-presence-max-calls."`
	MaxPayloadSizeKB           int           `name:"max-payload-size-kb" default:"3000" help:"Largest broadcast or presence payload, in KB (1000 bytes)."`

	IdleTimeout       time.Duration `default:"60s" help:"Close a socket that sent nothing for this long."`
	JoinErrorDelay    time.Duration `default:"0s" help:"Delay join error replies (Supabase: 5s)."`
	ConnectErrorDelay time.Duration `default:"0s" help:"Delay refused upgrades (Supabase: 2s)."`
	OutboundQueue     int           `default:"1024" help:"Frames queued per socket before it is dropped as a slow consumer."`
	LogLevel          string        `default:"info" enum:"debug,info,warn,error" help:"Log level (logs go to stderr; tokens are masked)."`
}

// Run serves until the context ends, then shuts down gracefully.
func (c serveCmd) Run(env *runEnv) error {
	secret, generated := c.JWTSecret, false
	if secret == "" {
		secret, generated = rand.Text()+rand.Text(), true
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv, err := server.New(server.Config{
		JWTSecret: []byte(secret),
		Limits: server.Limits{
			Off:                        c.Limits == "off",
			MaxChannelsPerClient:       c.MaxChannelsPerClient,
			MaxJoinsPerSecond:          c.MaxJoinsPerSecond,
			MaxConcurrentUsers:         c.MaxConcurrentUsers,
			MaxEventsPerSecond:         c.MaxEventsPerSecond,
			MaxPresenceEventsPerSecond: c.MaxPresenceEventsPerSecond,
			ClientPresenceMaxCalls:     c.ClientPresenceMaxCalls,
			ClientPresenceWindow:       c.ClientPresenceWindow,
			MaxPayloadSizeKB:           c.MaxPayloadSizeKB,
		},
		Logger:            slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level})),
		IdleTimeout:       c.IdleTimeout,
		JoinErrorDelay:    c.JoinErrorDelay,
		ConnectErrorDelay: c.ConnectErrorDelay,
		OutboundQueue:     c.OutboundQueue,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := srv.Start(c.Addr); err != nil {
		_ = srv.Close()
		return fmt.Errorf("serve: %w", err)
	}
	secretLine := "(from --jwt-secret / RTM_JWT_SECRET)"
	if generated {
		secretLine = secret + "  (generated; pass --jwt-secret or RTM_JWT_SECRET to keep it)"
	}
	limits := "Supabase defaults"
	if c.Limits == "off" {
		limits = "off"
	}
	fmt.Fprintf(env.stdout, `rtm serve: Supabase-compatible Realtime server

         API URL: %s
    Realtime URL: ws://%s/realtime/v1/websocket
  REST broadcast: %s/realtime/v1/api/broadcast
       Admin API: %s/admin/ (service_role key)
      JWT secret: %s
        anon key: %s
service_role key: %s
          limits: %s

Press Ctrl+C to stop.
`, srv.URL(), srv.Addr(), srv.URL(), srv.URL(), secretLine, srv.AnonKey(), srv.ServiceRoleKey(), limits)
	<-env.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
