package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/demo"
	"rtm/realtime/mask"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc/demodb"
	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/serverctl"
	"rtm/registry/target"
	"rtm/theme"
	"rtm/tui"
)

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

// dbLabel names a database URL in a few words: host[:port]/database.
func dbLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "PostgreSQL"
	}
	return u.Host + u.Path
}
