// Command rtm is a terminal debugger and monitor for Supabase Realtime.
//
// This file only wires things together: it parses flags and environment
// with kong, builds the pieces from the packages below it, runs them and
// shuts them down in order. See README.md for usage.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/alecthomas/kong"

	"rtm/realtime/demo"
	"rtm/realtime/mask"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgcdc/demodb"
	"rtm/realtime/server/pgcdc/doctor"
	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/headless/scenario"
	"rtm/registry/serverctl"
	"rtm/registry/target"
	"rtm/theme"
	"rtm/tui"
)

// cli is the command line: sub-commands and their flags.
type cli struct {
	Monitor monitorCmd `cmd:"" default:"withargs" hidden:"" help:"Open the terminal UI (the default when no command is given)."`
	Serve   serveCmd   `cmd:"" help:"Run the embedded Supabase-compatible Realtime server."`
	Doctor  doctorCmd  `cmd:"" help:"Why do my postgres_changes not arrive? Check a table against everything Realtime needs."`
	Watch   watchCmd   `cmd:"" help:"Print every channel-manager event as NDJSON (one JSON object per line)."`
	Record  recordCmd  `cmd:"" help:"Record every frame in and out (and every event) to a file, keys and tokens masked."`
	Replay  replayCmd  `cmd:"" help:"Replay a recording in the read-only UI, or into live channels (--live)."`
	Diff    diffCmd    `cmd:"" help:"What one recording received that the other did not, per channel and event."`
	Run     runCmd     `cmd:"" help:"Run a scenario file (steps, faults, expectations): exit 0 held, 1 failed, 2 invalid."`
	Swarm   swarmCmd   `cmd:"" help:"Run N simulated clients: join latency, presence convergence, fan-out, limit errors."`
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

// monitorCmd opens the terminal UI: against the project the flags,
// environment or .env files name, or else against the embedded server
// started in-process with simulated peers.
type monitorCmd struct {
	URL        string   `help:"Project URL (https://<ref>.supabase.co, http://127.0.0.1:54321) or Realtime ws URL. Default: SUPABASE_URL or .env.local/.env (also NEXT_PUBLIC_, VITE_, EXPO_PUBLIC_ names); none: the embedded server."`
	Key        string   `help:"Project anon (or publishable) key. Default: SUPABASE_ANON_KEY or .env.local/.env."`
	JWT        string   `name:"jwt" help:"User access token sent with every join (default: the key)."`
	Tenant     string   `help:"Default tenant of channel names (tenant:ID:TYPE:...)."`
	As         string   `help:"Mint a user token for this user id (needs the JWT secret: embedded server, rtm serve's, or --jwt-secret); presence examples track this user."`
	JWTSecret  string   `name:"jwt-secret" help:"Project JWT secret, for --as and the expire-token fault. Default: SUPABASE_JWT_SECRET."`
	ServiceKey string   `name:"service-key" env:"RTM_SERVICE_KEY" help:"service_role key of an 'rtm serve' target: enables the server-side faults (kick, reject joins) through its admin API."`
	Join       []string `help:"Channel to open at start (repeatable), e.g. presence:room:1. The embedded server opens the design's examples."`
	NoDemo     bool     `help:"Embedded server: no simulated peers."`
	NoExamples bool     `help:"Embedded server: do not open the example channels."`
	ReadOnly   bool     `name:"readonly" help:"Turn every action off (join, leave, track, broadcast, retry, faults)."`
	LogFile    string   `help:"Write the JSONL log to this file (nothing is ever written to the terminal the UI draws on)."`
	LogLevel   string   `default:"info" enum:"debug,info,warn,error" help:"Level of the log pane and the log file."`
	Policy     string   `default:"fixed:3s,max=5" help:"Channel retry policy: fixed:3s, exp, breaker (see :policy)."`

	DB          string `name:"db" env:"DATABASE_URL" default:"auto" help:"PostgreSQL of the postgres changes. Embedded server: a URL whose changes it streams, \"auto\" (a private demo database the demo peers write to; needs PostgreSQL's binaries) or \"\" (none: simulated changes). A project: its database URL, for the doctor (D)."`
	Publication string `default:"supabase_realtime" help:"Publication the embedded server streams (created when missing) and the doctor checks."`
}

// Run resolves the target, starts the embedded server and the demo peers
// when there is no project, builds the channel manager, and runs the UI
// until it quits; then it shuts everything down in order.
func (c monitorCmd) Run(env *runEnv) (err error) {
	ctx, cancel := context.WithCancel(env.ctx)
	defer cancel()
	tg, err := target.Resolve(target.Input{
		URL: c.URL, Key: c.Key, JWT: c.JWT, Tenant: c.Tenant, As: c.As, JWTSecret: c.JWTSecret,
	})
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	policy, err := registry.ParsePolicy(c.Policy)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	var joins []registry.Name
	for _, j := range c.Join {
		n, err := registry.ParseName(j)
		if err != nil {
			return fmt.Errorf("--join: %w", err)
		}
		joins = append(joins, n)
	}

	// Logs go to the file or nowhere, never to the terminal.
	var logw io.Writer
	if c.LogFile != "" {
		f, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer f.Close()
		logw = &lockedWriter{w: f}
	}
	fileLog := slog.New(slog.DiscardHandler)
	if logw != nil {
		fileLog = slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: level, ReplaceAttr: mask.ReplaceAttr}))
	}

	// The embedded server when no project is configured, fed by the
	// database of --db. Its feed closes after the server (defers run in
	// reverse).
	var (
		srv     *server.Server
		control registry.ServerControl
		status  string
		feed    changeFeed
	)
	db := monitorDatabase(c.DB, c.Publication, tg.Embedded)
	if tg.Embedded {
		feed, err = openFeed(ctx, c.DB, c.Publication, "", fileLog.With("component", "db"))
		if err != nil {
			return fmt.Errorf("--db: %w", err)
		}
		defer feed.Close()
		db = db.embedded(feed)
		secret := []byte(rand.Text() + rand.Text())
		srv, err = server.New(server.Config{JWTSecret: secret, Changes: feed.Source, Logger: fileLog.With("component", "server")})
		if err != nil {
			return fmt.Errorf("embedded server: %w", err)
		}
		if err := srv.Start("127.0.0.1:0"); err != nil {
			return fmt.Errorf("embedded server: %w", err)
		}
		defer srv.Close()
		if err := tg.Embed(srv.URL(), srv.AnonKey(), secret); err != nil {
			return err
		}
		control = serverctl.Embedded{S: srv}
		status = "embedded server on " + srv.Addr() + " — no project configured (see --url, SUPABASE_URL, .env)"
	} else if c.ServiceKey != "" {
		control, err = serverctl.NewHTTP(tg.URL.Value, c.ServiceKey, nil)
		if err != nil {
			return fmt.Errorf("--service-key: %w", err)
		}
	}
	var mint func(map[string]any) (string, error)
	if len(tg.JWTSecret) > 0 {
		secret := tg.JWTSecret
		mint = func(claims map[string]any) (string, error) { return token.Sign(secret, claims) }
	}
	mgr, err := registry.New(registry.Options{
		URL: tg.URL.Value, APIKey: tg.Key.Value, Token: tg.Token.Value, Tenant: tg.Tenant,
		Policy: policy, LogFile: logw, LogLevel: level,
		Server: control, Embedded: tg.Embedded, MintToken: mint,
	})
	if err != nil {
		return err
	}
	defer mgr.Close()
	for _, w := range tg.Warnings {
		mgr.LogHandler().Handle(ctx, slog.NewRecord(time.Now(), slog.LevelWarn, w, 0))
	}
	db.log(ctx, mgr.LogHandler())
	sub := mgr.Subscribe(ctx, registry.SubscribeOptions{Frames: true, Buffer: 8192})
	defer sub.Close()

	// Connect and open the channels in the background: the UI shows the
	// progress and the errors.
	var bg sync.WaitGroup
	defer bg.Wait()
	bg.Add(1)
	go func() {
		defer bg.Done()
		if err := mgr.Connect(ctx); err != nil && ctx.Err() == nil {
			fileLog.Warn("Connect", "err", err)
		}
	}()
	adapter := tui.NewRegistryManager(mgr)
	if tg.Embedded && !c.NoExamples {
		joins = append(exampleChannels(tg.Tenant), joins...)
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		for _, n := range joins {
			req := tui.JoinRequest{Name: n}
			if n.Kind == registry.KindPresence && tg.As != "" && n.Tenant == tg.Tenant {
				req.As, req.UserName = tg.As, tg.As
			}
			if err := adapter.Join(ctx, req); err != nil && ctx.Err() == nil {
				fileLog.Warn("Join", "channel", n.String(), "err", err)
			}
		}
	}()
	if tg.Embedded && !c.NoDemo {
		secret, tenant := tg.JWTSecret, tg.Tenant
		var extra map[string]any
		topic := func(n registry.Name) string { return n.String() }
		if tenant != "" {
			extra = map[string]any{"tenant_id": tenant}
		}
		ex := exampleChannels(tenant)
		// Changes: real rows in the demo database, simulated ones
		// without a database, none when a database of the user's is
		// streamed (or the demo database could not start: the
		// subscription channel says why).
		var (
			emit  func(string, protocol.ChangeData) int
			write func(context.Context) (string, error)
		)
		switch {
		case feed.DemoURL != "":
			w, err := demodb.NewWriter(ctx, feed.DemoURL, nil)
			if err != nil {
				fileLog.Warn("Demo database writer", "err", err)
				break
			}
			defer w.Close() // after the demo (defers run in reverse)
			write = w.Step
		case c.DB == "":
			emit = srv.EmitChange
		}
		d, err := demo.Start(ctx, demo.Options{
			URL: srv.URL(), APIKey: srv.AnonKey(), EmitChange: emit, WriteChange: write,
			PresenceTopic: topic(ex[0]), SubscriptionTopic: topic(ex[1]), BroadcastTopic: topic(ex[2]),
			Token: func(user string) (string, error) {
				return token.User(secret, user, time.Now(), 24*time.Hour, extra)
			},
			Logger: fileLog.With("component", "demo"),
		})
		if err != nil {
			return err
		}
		defer d.Close()
		status += " · demo peers on (--no-demo turns them off)"
	}

	model := tui.New(tui.Options{
		Manager: adapter, Context: ctx, ReadOnly: c.ReadOnly,
		Logger: fileLog.With("component", "tui"), Status: status,
		Database: db.info, Doctor: db.doctor(), User: os.Getenv("USER"),
		Theme: func(dark bool) *theme.Styles { return theme.ForEnv(dark, os.LookupEnv) },
	})
	p := tea.NewProgram(model, tea.WithContext(ctx))
	bctx, stopBridge := context.WithCancel(ctx)
	bridgeDone := make(chan struct{})
	go func() {
		defer close(bridgeDone)
		tui.NewBridge(sub, mgr.Snapshot, tui.BridgeOptions{}).Run(bctx, p.Send)
	}()
	_, runErr := p.Run()
	stopBridge()
	<-bridgeDone
	cancel()
	if runErr != nil && !errors.Is(runErr, tea.ErrProgramKilled) && !errors.Is(runErr, tea.ErrInterrupted) {
		return fmt.Errorf("terminal UI: %w", runErr)
	}
	if err := model.Err(); err != nil {
		return err
	}
	return nil
}

// exampleChannels are the channels of the design, opened on the embedded
// server: a presence channel, a postgres-changes subscription and a
// broadcast channel, in the --tenant's namespace (the token minted for
// --as then carries its tenant_id claim).
func exampleChannels(tenant string) []registry.Name {
	return []registry.Name{
		registry.MustName(registry.KindPresence, "contact", "123", tenant),
		registry.MustName(registry.KindSubscription, "project", "456", tenant),
		registry.MustName(registry.KindBroadcast, "document", "789", tenant),
	}
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

// serveCmd runs the embedded Supabase-compatible Realtime server
// (package realtime/server) until interrupted. Flags mirror server.Config.
type serveCmd struct {
	Addr      string `default:"127.0.0.1:4000" env:"RTM_ADDR" help:"Address to listen on."`
	JWTSecret string `name:"jwt-secret" env:"RTM_JWT_SECRET" help:"JWT secret (HS256/384/512) that verifies tokens and signs the printed keys; generated and printed when empty."`

	Limits                     string        `default:"on" enum:"on,off" help:"Supabase's tenant limits: on, or off (benchmarks)."`
	MaxChannelsPerClient       int           `default:"100" help:"Channels one socket may join."`
	MaxJoinsPerSecond          int           `default:"100" help:"Joins per second per tenant (the joined topic's); connects get 429 while the token's tenant is over."`
	MaxConcurrentUsers         int           `default:"200" help:"Open sockets per tenant (the token's tenant_id, else the default tenant)."`
	MaxEventsPerSecond         int           `default:"100" help:"Client events (broadcasts, REST messages) per second per tenant (the topic's)."`
	MaxPresenceEventsPerSecond int           `default:"1000" help:"Presence events per second per tenant (the topic's)."`
	ClientPresenceMaxCalls     int           `default:"5" help:"Presence pushes per channel per --client-presence-window."`
	ClientPresenceWindow       time.Duration `default:"30s" help:"Window of --client-presence-max-calls."`
	MaxPayloadSizeKB           int           `name:"max-payload-size-kb" default:"3000" help:"Largest broadcast or presence payload, in KB (1000 bytes)."`

	IdleTimeout        time.Duration `default:"60s" help:"Close a socket that sent nothing for this long."`
	JoinErrorDelay     time.Duration `default:"0s" help:"Delay join error replies (Supabase: 5s)."`
	ConnectErrorDelay  time.Duration `default:"0s" help:"Delay refused upgrades (Supabase: 2s)."`
	OutboundQueue      int           `default:"1024" help:"Frames queued per socket before it is dropped as a slow consumer."`
	OutboundQueueBytes int           `default:"16777216" help:"Bytes queued per socket (16 MiB) before it is dropped as a slow consumer."`
	MaxFrameSize       int           `default:"5000000" help:"Largest frame a client may send, in bytes (Supabase: 5,000,000); a bigger one closes the socket with 1009."`
	MaxTenantWindows   int           `default:"1000" help:"Tenants whose rate windows are held at once; tenants beyond share one overflow budget until idle ones are dropped."`
	LogLevel           string        `default:"info" enum:"debug,info,warn,error" help:"Log level (logs go to stderr; tokens are masked)."`

	HTTPReadHeaderTimeout   time.Duration `name:"http-read-header-timeout" default:"10s" help:"Close a connection whose request headers have not arrived in this long (negative: never)."`
	HTTPReadTimeout         time.Duration `name:"http-read-timeout" default:"30s" help:"Answer 408 and close when a request body has not arrived this long after its headers (negative: never)."`
	HTTPWriteTimeout        time.Duration `name:"http-write-timeout" default:"30s" help:"Close a connection whose answer is not written this long after the request's headers; WebSockets are exempt once upgraded (negative: never)."`
	HTTPIdleTimeout         time.Duration `name:"http-idle-timeout" default:"30s" help:"Close a keep-alive connection idle this long between requests (negative: never)."`
	MaxHTTPConnections      int           `name:"max-http-connections" default:"1000" help:"Connections speaking HTTP (WebSockets leave the count once upgraded); beyond, 503 at once (negative: no limit)."`
	MaxPresenceBytesPerConn int           `default:"16777216" help:"Presence bytes one socket may keep tracked over all its channels (16 MiB); a track over it gets the error PresenceBudgetExceeded. Negative: no limit; --limits=off leaves it on."`
	MaxPresenceBytes        int           `default:"268435456" help:"Presence bytes all sockets together may keep tracked (256 MiB), refused the same way. Negative: no limit."`

	DB          string `name:"db" env:"RTM_DB" help:"PostgreSQL URL whose changes feed postgres_changes (logical replication), or \"auto\" for a private demo database (needs PostgreSQL's binaries)."`
	Publication string `default:"supabase_realtime" help:"Publication to stream (created when missing)."`
	Slot        string `help:"Named replication slot (kept across restarts); empty uses a temporary slot."`
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
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: mask.ReplaceAttr}))
	changes, dbLine, closeDB, err := openChanges(env.ctx, c.DB, c.Publication, c.Slot, logger)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeDB()
	srv, err := server.New(server.Config{
		JWTSecret: []byte(secret),
		Changes:   changes,
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
		Logger:            logger,
		IdleTimeout:       c.IdleTimeout,
		JoinErrorDelay:    c.JoinErrorDelay,
		ConnectErrorDelay: c.ConnectErrorDelay,
		OutboundQueue:     c.OutboundQueue,

		OutboundQueueBytes:      c.OutboundQueueBytes,
		MaxFrameSize:            c.MaxFrameSize,
		MaxTenantWindows:        c.MaxTenantWindows,
		HTTPReadHeaderTimeout:   c.HTTPReadHeaderTimeout,
		HTTPReadTimeout:         c.HTTPReadTimeout,
		HTTPWriteTimeout:        c.HTTPWriteTimeout,
		HTTPIdleTimeout:         c.HTTPIdleTimeout,
		MaxHTTPConnections:      c.MaxHTTPConnections,
		MaxPresenceBytesPerConn: c.MaxPresenceBytesPerConn,
		MaxPresenceBytes:        c.MaxPresenceBytes,
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
 publishable key: %s
      secret key: %s
          limits: %s
        database: %s

Press Ctrl+C to stop.
`, srv.URL(), srv.Addr(), srv.URL(), srv.URL(), secretLine, srv.AnonKey(), srv.ServiceRoleKey(),
		srv.PublishableKey(), srv.SecretKey(), limits, dbLine)
	<-env.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// changeFeed is what openChanges opened.
type changeFeed struct {
	// Source is server.Config.Changes (nil without --db).
	Source server.ChangeSource
	// Line describes the database for a banner (password masked).
	Line string
	// DemoURL is the demo database's URL with --db auto (for
	// demodb.NewWriter), else "".
	DemoURL string
	// Close stops the feed and the demo database.
	Close func()
}

// openFeed is openChanges returning a changeFeed (for the TUI's embedded
// mode and rtm serve).
func openFeed(ctx context.Context, db, publication, slot string, log *slog.Logger) (changeFeed, error) {
	var demoURL string
	src, line, closeFn, err := openChangesDemo(ctx, db, publication, slot, log, &demoURL)
	return changeFeed{Source: src, Line: line, DemoURL: demoURL, Close: closeFn}, err
}

// openChanges opens the change feed of `--db`: a URL, "auto" (a private
// demo database, or, without PostgreSQL's binaries, a source that tells
// every subscription why), or "" (none: changes only from EmitChange). It
// returns the source, a line for the banner and a function that closes
// everything.
func openChanges(ctx context.Context, db, publication, slot string, log *slog.Logger) (server.ChangeSource, string, func(), error) {
	return openChangesDemo(ctx, db, publication, slot, log, nil)
}

func openChangesDemo(ctx context.Context, db, publication, slot string, log *slog.Logger, demoURL *string) (server.ChangeSource, string, func(), error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nothing := func() {}
	if db == "" {
		return nil, "none (postgres_changes only from the Go API; --db <url> or --db auto for real changes)", nothing, nil
	}
	var auto *demodb.Auto
	if db == "auto" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		a, err := demodb.Start(sctx, log)
		cancel()
		if err != nil {
			reason := fmt.Sprintf("No database: rtm could not start its demo PostgreSQL (%v)", err)
			log.Warn("--db auto: no demo database", "err", err)
			return pgcdc.Unavailable(reason), "unavailable: " + err.Error(), nothing, nil
		}
		auto, db = a, a.URL
		if demoURL != nil {
			*demoURL = a.URL
		}
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	feed, err := pgcdc.Open(octx, pgcdc.Config{URL: db, Publication: publication, Slot: slot, Logger: log})
	cancel()
	if err != nil {
		if auto != nil {
			_ = auto.Close()
		}
		return nil, "", nothing, err
	}
	closeAll := func() {
		_ = feed.Close()
		if auto != nil {
			_ = auto.Close()
		}
	}
	line := fmt.Sprintf("%s (publication %s)", maskURL(db), feed.Publication())
	if auto != nil {
		line = fmt.Sprintf("demo PostgreSQL %s (publication %s; tables public.project, public.task)", maskURL(db), feed.Publication())
	}
	return feed.Source(), line, closeAll, nil
}

// maskURL hides a database URL's password and any other secret in it
// (a password= parameter, a key).
func maskURL(s string) string { return mask.URL(s) }

// doctorCmd runs the postgres_changes doctor (package
// realtime/server/pgcdc/doctor) and exits 1 when a check is red.
type doctorCmd struct {
	DB          string        `name:"db" env:"DATABASE_URL" required:"" help:"PostgreSQL URL."`
	Table       string        `required:"" help:"Table to check: schema.table or table (schema public)."`
	As          string        `default:"anon" help:"Subscriber: a role (anon, authenticated), role:user-id (e.g. authenticated:8f2c...), or a JWT."`
	Filter      string        `help:"The binding's filter, e.g. id=eq.1."`
	Event       string        `default:"*" enum:"*,INSERT,UPDATE,DELETE" help:"The binding's event."`
	Publication string        `default:"supabase_realtime" help:"Publication Realtime streams."`
	MaxSlotLag  int64         `default:"67108864" help:"Retained WAL (bytes) above which a replication slot is reported."`
	Timeout     time.Duration `default:"20s" help:"Bound on the whole check."`
}

// Run prints one line per check.
func (c doctorCmd) Run(env *runEnv) error {
	r, err := doctor.Run(env.ctx, doctor.Options{URL: c.DB, Table: c.Table, As: c.As, Filter: c.Filter, Event: c.Event,
		Publication: c.Publication, MaxSlotLag: c.MaxSlotLag, Timeout: c.Timeout})
	if err != nil {
		return err
	}
	color := os.Getenv("NO_COLOR") == ""
	if f, ok := env.stdout.(*os.File); !ok || !isTerminal(f) {
		color = false
	}
	if err := r.Write(env.stdout, color); err != nil {
		return err
	}
	if !r.OK() {
		return errDoctorFailed
	}
	return nil
}

// errDoctorFailed makes rtm exit 1 after a red check (already printed).
var errDoctorFailed = errors.New("doctor: some checks failed")

// isTerminal reports whether f is a character device.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// monitorDB is the database of the terminal UI's postgres changes: what
// the header and the Info tab say about it, and what the doctor checks.
type monitorDB struct {
	info tui.DatabaseInfo
	// url is the database the doctor checks ("" when there is none, and
	// missing says why); raw is --db.
	url, missing, publication, raw string
}

// monitorDatabase describes --db before the embedded server's feed is
// opened (for a project: the database the doctor checks).
func monitorDatabase(db, publication string, embedded bool) monitorDB {
	d := monitorDB{publication: publication, raw: db}
	switch {
	case embedded:
		// Completed by embedded once the feed is open.
	case db == "" || db == "auto":
		d.missing = "the project's database is not known: start rtm with --db <its postgres URL> (or DATABASE_URL; " +
			"Supabase: Project Settings → Database → Connection string, the direct connection)"
	default:
		d.url = db
		d.info = tui.DatabaseInfo{Label: dbLabel(db), Detail: maskURL(db) + " (checked by the doctor; the project streams the changes)"}
	}
	return d
}

// embedded completes d with the embedded server's feed.
func (d monitorDB) embedded(f changeFeed) monitorDB {
	switch {
	case f.DemoURL != "":
		d.url = f.DemoURL
		d.info = tui.DatabaseInfo{Label: "demo PostgreSQL", Detail: f.Line}
	case f.Source == nil:
		d.missing = "rtm runs with --db \"\": subscription channels get simulated changes"
		d.info = tui.DatabaseInfo{Label: "none (simulated changes)", Detail: "none: the demo's simulated changes only; " +
			"--db auto starts a demo PostgreSQL, --db <url> streams yours", Missing: true}
	case strings.HasPrefix(f.Line, "unavailable: "):
		reason := strings.TrimPrefix(f.Line, "unavailable: ")
		d.missing = "the demo database could not start (" + reason + ")"
		d.info = tui.DatabaseInfo{Label: "none", Detail: "none: rtm could not start its demo PostgreSQL (" + reason +
			"); or give --db <postgres url>", Missing: true}
	default: // --db <url>: the feed streams it
		d.url = d.raw
		d.info = tui.DatabaseInfo{Label: dbLabel(d.raw), Detail: f.Line}
	}
	return d
}

// log writes what the database is, or why there is none, to the log.
func (d monitorDB) log(ctx context.Context, h slog.Handler) {
	if d.info.Detail == "" {
		return
	}
	level, msg := slog.LevelInfo, "Postgres changes from "+d.info.Label
	if d.info.Missing {
		level, msg = slog.LevelWarn, "No database for postgres changes"
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(slog.String("db", d.info.Detail))
	_ = h.Handle(ctx, r)
}

// doctor returns the UI's doctor: package pgcdc/doctor against d's
// database.
func (d monitorDB) doctor() tui.Doctor { return dbDoctor(d) }

// dbDoctor adapts package pgcdc/doctor to tui.Doctor.
type dbDoctor monitorDB

// Check implements tui.Doctor.
func (d dbDoctor) Check(ctx context.Context, req tui.DoctorRequest) ([]tui.DoctorCheck, error) {
	if d.url == "" {
		return nil, fmt.Errorf("%w: %s", tui.ErrNoDatabase, d.missing)
	}
	ready := req.ReadySeen
	r, err := doctor.Run(ctx, doctor.Options{URL: d.url, Table: req.Schema + "." + req.Table, As: req.As,
		Filter: req.Filter, Event: req.Event, Publication: d.publication, ReadySeen: &ready})
	if err != nil {
		return nil, err
	}
	out := make([]tui.DoctorCheck, len(r.Checks))
	for i, c := range r.Checks {
		out[i] = tui.DoctorCheck{Name: c.Name, Detail: c.Detail, Fix: c.Fix, OK: c.OK}
	}
	return out, nil
}

// dbLabel names a database URL in a few words: host[:port]/database.
func dbLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "PostgreSQL"
	}
	return u.Host + u.Path
}

// The headless commands (watch, record, replay, diff, run, swarm): each
// Run wires flags to package registry/headless and its scenario
// sub-package.

// targetFlags are the target flags of the UI, shared by the headless
// commands. With none (and nothing in the environment or .env), the
// embedded server runs in-process.
type targetFlags struct {
	URL        string `help:"Project URL or Realtime ws URL. Default: SUPABASE_URL or .env.local/.env; none: the embedded server in-process."`
	Key        string `help:"Project anon (or publishable) key. Default: SUPABASE_ANON_KEY or .env.local/.env."`
	JWT        string `name:"jwt" help:"User access token sent with every join (default: the key)."`
	Tenant     string `help:"Default tenant of channel names."`
	As         string `help:"Mint a user token for this user id (needs the JWT secret); presence channels track this user."`
	JWTSecret  string `name:"jwt-secret" help:"Project JWT secret, to mint tokens (--as, scenario users and roles, swarm clients). Default: SUPABASE_JWT_SECRET."`
	ServiceKey string `name:"service-key" env:"RTM_SERVICE_KEY" help:"service_role key of an 'rtm serve' target: enables server-side faults (kick, reject-joins, drop-all, restart)."`
	LogFile    string `help:"Write the managers' JSONL log to this file."`
}

// open resolves the target and starts the embedded server if needed.
func (f targetFlags) open(opts headless.EnvOptions) (*headless.Env, func(), error) {
	closers := []func(){}
	if f.LogFile != "" {
		fh, err := os.OpenFile(f.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --log-file: %w", headless.ErrInvalid, err)
		}
		lw := &lockedWriter{w: fh}
		opts.LogFile = lw
		opts.Logger = slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{ReplaceAttr: mask.ReplaceAttr}))
		closers = append(closers, func() { _ = fh.Close() })
	}
	opts.ServiceKey = f.ServiceKey
	env, err := headless.Open(target.Input{URL: f.URL, Key: f.Key, JWT: f.JWT, Tenant: f.Tenant, As: f.As, JWTSecret: f.JWTSecret}, opts)
	if err != nil {
		for _, c := range closers {
			c()
		}
		return nil, nil, err
	}
	return env, func() {
		_ = env.Close()
		for _, c := range closers {
			c()
		}
	}, nil
}

// exit ends a headless command with code: err (if any) goes to stderr.
// Bad input (headless.ErrInvalid) exits 2.
func exit(env *runEnv, parser *kong.Kong, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	fmt.Fprintf(env.stderr, "rtm: %s\n", registry.MaskText(err.Error()))
	if errors.Is(err, headless.ErrInvalid) {
		parser.Exit(2)
	} else {
		parser.Exit(1)
	}
	return nil
}

// watchCmd prints every manager event as NDJSON.
type watchCmd struct {
	targetFlags
	streamFlags
	Frames bool     `help:"Also print every raw frame in and out."`
	Types  []string `help:"Only these event types (channel_state, socket, presence, message, retry, log, stats, token, error, frame)."`
}

// Run streams events to stdout.
func (c watchCmd) Run(env *runEnv, parser *kong.Kong) error {
	o, err := c.options()
	if err != nil {
		return exit(env, parser, err)
	}
	o.Frames = c.Frames
	for _, t := range c.Types {
		o.Types = append(o.Types, registry.EventType(t))
	}
	e, done, err := c.open(headless.EnvOptions{})
	if err != nil {
		return exit(env, parser, err)
	}
	defer done()
	_, err = headless.Watch(env.ctx, e, env.stdout, o)
	return exit(env, parser, err)
}

// streamFlags are the flags of the commands that join channels and run
// until interrupted (watch, record).
type streamFlags struct {
	Join           []string      `required:"" help:"Channel to join (repeatable), e.g. presence:room:1."`
	Duration       time.Duration `help:"Stop after this long (default: until interrupted)."`
	Policy         string        `default:"fixed:3s,max=5" help:"Channel retry policy."`
	ConnectTimeout time.Duration `default:"30s" help:"Fail when no connection opens within this time (the attempt under way ends then, at any step: DNS, TCP, TLS, upgrade)."`
}

func (f streamFlags) options() (headless.StreamOptions, error) {
	names, err := headless.ParseNames("--join", f.Join)
	if err != nil {
		return headless.StreamOptions{}, err
	}
	pol, err := registry.ParsePolicy(f.Policy)
	if err != nil {
		return headless.StreamOptions{}, fmt.Errorf("%w: --policy: %w", headless.ErrInvalid, err)
	}
	return headless.StreamOptions{Joins: names, Policy: pol, Duration: f.Duration, ConnectTimeout: f.ConnectTimeout}, nil
}

// recordCmd writes a recording.
type recordCmd struct {
	targetFlags
	streamFlags
	Out string `required:"" short:"o" help:"Recording file to write (NDJSON)."`
}

// Run records until interrupted or the duration passes.
func (c recordCmd) Run(env *runEnv, parser *kong.Kong) error {
	o, err := c.options()
	if err != nil {
		return exit(env, parser, err)
	}
	f, err := os.OpenFile(c.Out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return exit(env, parser, fmt.Errorf("%w: --out: %w", headless.ErrInvalid, err))
	}
	defer f.Close()
	e, done, err := c.open(headless.EnvOptions{})
	if err != nil {
		return exit(env, parser, err)
	}
	defer done()
	sum, err := headless.Record(env.ctx, e, f, o)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		fmt.Fprintf(env.stderr, "rtm record: %d events (%d frames) written to %s\n", sum.Events, sum.Frames, c.Out)
	}
	return exit(env, parser, err)
}

// replayCmd replays a recording into the read-only UI or a live channel.
type replayCmd struct {
	targetFlags
	File   string        `arg:"" help:"Recording to replay."`
	Live   bool          `help:"Send the recorded broadcasts into live channels on the target instead of opening the UI."`
	Into   []string      `help:"With --live: FROM=TO sends what FROM received on channel TO (repeatable); a single NAME maps every recorded channel to it."`
	Speed  float64       `default:"1" help:"Speed: 1 is the recorded pace, 10 ten times faster; with --live, 0 sends as fast as possible."`
	From   time.Duration `help:"UI: start this far into the recording."`
	Paused bool          `help:"UI: start paused."`
}

// Run replays.
func (c replayCmd) Run(env *runEnv, parser *kong.Kong) error {
	rec, err := readRecording(c.File)
	if err != nil {
		return exit(env, parser, err)
	}
	if !c.Live {
		return exit(env, parser, c.ui(env, rec))
	}
	into, err := parseInto(c.Into, rec)
	if err != nil {
		return exit(env, parser, err)
	}
	e, done, err := c.open(headless.EnvOptions{})
	if err != nil {
		return exit(env, parser, err)
	}
	defer done()
	rep, err := headless.ReplayInto(env.ctx, e, rec, headless.ReplayOptions{Speed: c.Speed, Into: into})
	if err == nil {
		err = writeJSON(env.stdout, rep)
	}
	return exit(env, parser, err)
}

func (c replayCmd) ui(env *runEnv, rec *headless.Recording) error {
	if c.Speed <= 0 {
		return fmt.Errorf("%w: --speed %v: the UI replays at a speed above 0", headless.ErrInvalid, c.Speed)
	}
	ctx, cancel := context.WithCancel(env.ctx)
	defer cancel()
	player := headless.NewPlayer(rec, headless.PlayerOptions{Speed: c.Speed, From: c.From, Paused: c.Paused, Name: c.File})
	model := replayModel(ctx, player, rec, c.File)
	p := tea.NewProgram(model, tea.WithContext(ctx))
	stop := runReplay(ctx, player, p.Send)
	_, err := p.Run()
	cancel()
	stop()
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, tea.ErrInterrupted) {
		return fmt.Errorf("terminal UI: %w", err)
	}
	return model.Err()
}

// replayModel is the read-only UI on a player: its clock is the
// recording's.
func replayModel(ctx context.Context, player *headless.Player, rec *headless.Recording, name string) *tui.Model {
	status := fmt.Sprintf("replay of %s (%s, recorded %s) — read-only; space pauses, ←/→ seek, +/- speed", name, rec.Length().Round(time.Second),
		rec.Header.Started.Format(time.DateTime))
	return tui.New(tui.Options{Context: ctx, ReadOnly: true, Now: player.Now, Status: status, Replay: player,
		Theme: func(dark bool) *theme.Styles { return theme.ForEnv(dark, os.LookupEnv) }})
}

// runReplay runs the player and the bridge that feeds send until ctx
// ends; stop waits for both.
func runReplay(ctx context.Context, player *headless.Player, send func(tea.Msg)) (stop func()) {
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		player.Run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		tui.NewBridge(player, player.Snapshot, tui.BridgeOptions{}).Run(ctx, send)
	}()
	return func() { <-done; <-done }
}

func readRecording(path string) (*headless.Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", headless.ErrInvalid, err)
	}
	defer f.Close()
	return headless.ReadRecording(path, f)
}

// parseInto reads --into: FROM=TO pairs, or one NAME for every channel.
func parseInto(into []string, rec *headless.Recording) (map[registry.Name]registry.Name, error) {
	out := map[registry.Name]registry.Name{}
	for _, s := range into {
		from, to, pair := strings.Cut(s, "=")
		if !pair {
			n, err := registry.ParseName(s)
			if err != nil {
				return nil, fmt.Errorf("%w: --into %q: %w", headless.ErrInvalid, s, err)
			}
			if len(into) > 1 {
				return nil, fmt.Errorf("%w: --into %q: a single channel name maps every channel; with several, write FROM=TO", headless.ErrInvalid, s)
			}
			for _, f := range rec.Frames() {
				if !f.Channel.IsZero() {
					out[f.Channel] = n
				}
			}
			continue
		}
		fn, err := registry.ParseName(from)
		if err != nil {
			return nil, fmt.Errorf("%w: --into %q: %w", headless.ErrInvalid, s, err)
		}
		tn, err := registry.ParseName(to)
		if err != nil {
			return nil, fmt.Errorf("%w: --into %q: %w", headless.ErrInvalid, s, err)
		}
		out[fn] = tn
	}
	return out, nil
}

// diffCmd compares two recordings.
type diffCmd struct {
	A      string   `arg:"" help:"First recording."`
	B      string   `arg:"" help:"Second recording."`
	JSON   bool     `name:"json" help:"Print the report as JSON."`
	Map    []string `help:"FROM=TO: compare channel FROM of A with channel TO of B (repeatable)."`
	Events []string `help:"Compare only events with these prefixes (broadcast, presence, postgres_changes, system, phx_reply)."`
}

// errDiffer makes rtm exit 1 when the recordings differ (like diff).
var errDiffer = errors.New("the recordings differ")

// Run prints the differences; exit 1 when there are some.
func (c diffCmd) Run(env *runEnv, parser *kong.Kong) error {
	a, err := readRecording(c.A)
	if err != nil {
		return exit(env, parser, err)
	}
	b, err := readRecording(c.B)
	if err != nil {
		return exit(env, parser, err)
	}
	rename := map[string]string{}
	for _, m := range c.Map {
		from, to, ok := strings.Cut(m, "=")
		if !ok || from == "" || to == "" {
			return exit(env, parser, fmt.Errorf("%w: --map %q: write FROM=TO", headless.ErrInvalid, m))
		}
		rename[strings.TrimPrefix(from, registry.TopicPrefix)] = strings.TrimPrefix(to, registry.TopicPrefix)
	}
	rep := headless.Diff(c.A, a, c.B, b, headless.DiffOptions{Rename: rename, Events: c.Events})
	if c.JSON {
		err = writeJSON(env.stdout, rep)
	} else {
		err = rep.WriteText(env.stdout)
	}
	if err != nil {
		return exit(env, parser, err)
	}
	if !rep.Identical {
		parser.Exit(1)
	}
	return nil
}

// runCmd runs a scenario.
type runCmd struct {
	targetFlags
	Scenario string `arg:"" help:"Scenario file (YAML)."`
	Report   string `help:"Write the JSON report to this file instead of stdout (stdout then gets one line per step)."`
}

// Run runs the scenario: exit 0 when every expectation held, 1 when one
// failed, 2 when the scenario is invalid.
func (c runCmd) Run(env *runEnv, parser *kong.Kong) error {
	data, err := os.ReadFile(c.Scenario)
	if err != nil {
		return exit(env, parser, fmt.Errorf("%w: %w", headless.ErrInvalid, err))
	}
	sc, err := scenario.Parse(c.Scenario, data)
	if err != nil {
		return exit(env, parser, err)
	}
	e, done, err := c.open(headless.EnvOptions{})
	if err != nil {
		return exit(env, parser, err)
	}
	defer done()
	o := scenario.Options{Env: e}
	if c.Report != "" {
		o.OnStep = func(r scenario.StepResult) {
			line := fmt.Sprintf("%s:%d %s: %s", c.Scenario, r.Line, r.Step, r.Result)
			if r.Reason != "" {
				line += " — " + r.Reason
			}
			fmt.Fprintln(env.stdout, line)
		}
	}
	rep := scenario.Run(env.ctx, sc, o)
	out := env.stdout
	if c.Report != "" {
		f, err := os.OpenFile(c.Report, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return exit(env, parser, fmt.Errorf("--report: %w", err))
		}
		defer f.Close()
		out = f
	}
	if err := writeJSON(out, rep); err != nil {
		return exit(env, parser, err)
	}
	if !rep.OK {
		if f := rep.FirstFailure; f != nil {
			fmt.Fprintf(env.stderr, "rtm run: %s:%d: %s failed: %s\n", c.Scenario, f.Line, f.Step, f.Reason)
		}
		parser.Exit(1)
	}
	return nil
}

// swarmCmd runs simulated clients.
type swarmCmd struct {
	targetFlags
	Clients     int           `default:"10" help:"Number of simulated clients."`
	Join        string        `required:"" help:"Channel every client joins, e.g. presence:room:1."`
	Presence    bool          `help:"Every client tracks itself on the (presence) channel."`
	Rate        float64       `default:"0" help:"Broadcasts per second per client during the load phase."`
	Duration    time.Duration `default:"10s" help:"Length of the load phase."`
	JoinTimeout time.Duration `default:"30s" help:"Bound on connecting (the attempts under way end then), joining and presence convergence."`
	Concurrency int           `default:"16" help:"Clients connecting at once."`
	Limits      string        `default:"on" enum:"on,off" help:"Embedded server only: Supabase's limits on or off."`
}

// Run runs the swarm: a live progress line on a terminal, the JSON
// summary at the end.
func (c swarmCmd) Run(env *runEnv, parser *kong.Kong) error {
	names, err := headless.ParseNames("--join", []string{c.Join})
	if err != nil {
		return exit(env, parser, err)
	}
	e, done, err := c.open(headless.EnvOptions{Limits: server.Limits{Off: c.Limits == "off"}})
	if err != nil {
		return exit(env, parser, err)
	}
	defer done()
	o := headless.SwarmOptions{Clients: c.Clients, Channel: names[0], Presence: c.Presence, Rate: c.Rate,
		Duration: c.Duration, JoinTimeout: c.JoinTimeout, Concurrency: c.Concurrency}
	term := false
	if f, ok := env.stderr.(*os.File); ok && isTerminal(f) {
		term = true
		o.Progress = func(p headless.SwarmProgress) {
			fmt.Fprintf(env.stderr, "\r\x1b[2Kswarm %s %s: %d/%d connected, %d joined, sent %d, received %d (%.0f/s), limit errors %d, errors %d",
				p.Phase, p.Elapsed.Round(100*time.Millisecond), p.Connected, p.Clients, p.Joined, p.Sent, p.Received, p.ReceiveRate, p.LimitErrors, p.Errors)
		}
	}
	rep, err := headless.Swarm(env.ctx, e, o)
	if term {
		fmt.Fprintln(env.stderr)
	}
	if err != nil {
		return exit(env, parser, err)
	}
	return exit(env, parser, writeJSON(env.stdout, rep))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
