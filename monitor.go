package main

import (
	"context"
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

	"rtm/realtime/mask"
	"rtm/realtime/proxy"
	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/compare"
	"rtm/registry/limits"
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
	JWT        []string `name:"jwt" help:"User access token sent with every join (default: the key). Repeatable, and beside --as or --role: each token is one more identity side by side (its own socket; masked everywhere)."`
	Tenant     string   `help:"Default tenant of channel names (tenant:ID:TYPE:...)."`
	As         []string `help:"Mint a user token for this user id (needs the JWT secret: embedded server, rtm serve's, or --jwt-secret); presence examples track this user. Repeatable (--as alice --as bob; also role:ROLE, jwt:TOKEN, NAME=SPEC): one socket per identity, side by side, the first rtm's own (:as adds more, the Compare tab compares them)."`
	Role       []string `help:"One more identity side by side with this role: anon (the API key alone), authenticated or service_role (minted; needs the JWT secret). Repeatable."`
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

	Listen  string `default:"127.0.0.1:54340" help:"Address of the app proxy (port 0: a free port): point your app's SUPABASE_URL at it to see its traffic on :apps. A taken port turns the proxy off, not the monitor."`
	NoProxy bool   `name:"no-proxy" help:"Do not run the app proxy."`

	// --plan and --limit: the limits of the Limits view (:limits, L)
	// where the server does not say them, or over what it says.
	planFlags
}

// Run resolves the target, starts the embedded target (server, change
// feed, demo peers) when there is no project, builds the channel manager,
// and runs the UI until it quits; then it shuts everything down in order
// (defers run in reverse: the demo peers, the background connect and
// joins, the subscription, the manager, the embedded server and its
// feed, the log file).
func (c monitorCmd) Run(env *runEnv) error {
	ctx, cancel := context.WithCancel(env.ctx)
	defer cancel()
	s, err := c.settings()
	if err != nil {
		return err
	}
	logw, fileLog, closeLog, err := openLogFile(c.LogFile, s.level)
	if err != nil {
		return err
	}
	defer closeLog()
	mt, err := c.openTarget(ctx, s.target, fileLog)
	if err != nil {
		return err
	}
	defer mt.close()
	tg := s.target
	ap := c.startProxy(mt, tg, fileLog)
	defer ap.close()
	mopts := registry.Options{
		URL: tg.URL.Value, APIKey: tg.Key.Value, Token: tg.Token.Value, Tenant: tg.Tenant,
		Policy: s.policy, LogFile: logw, LogLevel: s.level,
		Server: mt.control, Embedded: tg.Embedded, MintToken: token.Signer(tg.JWTSecret),
		Apps: ap.control,
	}
	first, claims, err := firstIdentity(tg, s.identities)
	if err != nil {
		return err
	}
	if len(s.identities) > 0 && s.identities[0].Role != "" {
		mopts.Token = first.token // a role's token, minted now
	}
	mgr, err := registry.New(mopts)
	if err != nil {
		return err
	}
	defer mgr.Close()
	rows, closeRows := openRowChecker(ctx, mt.db.url, fileLog)
	defer closeRows()
	cmp := compare.New(compare.Options{Rows: rows})
	cmp.AddIdentity(compareIdentity(first.name, claims))
	ids := newMonitorIdentities(ctx, tg, mopts, cmp, fileLog)
	defer ids.close()
	for _, sp := range s.identities[min(1, len(s.identities)):] {
		if _, err := ids.add(sp, s.joins); err != nil {
			return err
		}
	}
	for _, w := range tg.Warnings {
		mgr.LogHandler().Handle(ctx, slog.NewRecord(time.Now(), slog.LevelWarn, w, 0))
	}
	mt.db.log(ctx, mgr.LogHandler())
	sub := mgr.Subscribe(ctx, registry.SubscribeOptions{Frames: true, Buffer: 8192})
	defer sub.Close()
	var limitsSrc limits.Source
	if src, ok := mt.control.(limits.Source); ok {
		limitsSrc = src
	}
	meter := startLimits(ctx, mgr, ap.model, limitsSrc, s.plan, s.overrides, 0)
	defer meter.stop()

	adapter := tui.NewRegistryManager(mgr)
	var bg sync.WaitGroup
	defer bg.Wait()
	c.connectAndJoin(ctx, &bg, mgr, adapter, tg, s.joins, fileLog)
	status := mt.status
	if ap.status != "" {
		status = joinStatus(status, ap.status)
	}
	if mt.embedded != nil && !c.NoDemo {
		stopDemo, err := mt.embedded.startDemo(ctx, tg.Tenant)
		if err != nil {
			return err
		}
		defer stopDemo()
		status = joinStatus(status, "demo peers on (--no-demo turns them off)")
	}

	opts := tui.Options{
		Manager: adapter, Identity: first.name, IdentityDetail: first.detail, Others: ids.others(), Identities: ids, Compare: cmp,
		Context: ctx, ReadOnly: c.ReadOnly,
		Logger: fileLog.With("component", "tui"), Status: status,
		Database: mt.db.info, Doctor: mt.db.doctor(), User: os.Getenv("USER"),
		Theme:  func(dark bool) *theme.Styles { return theme.ForEnv(dark, os.LookupEnv) },
		Limits: meter.meter,
	}
	if ap.model != nil {
		opts.Apps, opts.AppsURL, opts.AppsAnonKey = ap.model, ap.url, ap.anonKey
	}
	model := tui.New(opts)
	return runUI(ctx, cancel, model, sub, mgr, uiFeeds{ids: ids, observe: func(e registry.Event) { cmp.Observe(first.name, e) }})
}

// uiFeeds are the UI's feeds beside the first identity's bridge: the
// other identities' bridges, and the comparer's observer of the first
// identity's events.
type uiFeeds struct {
	ids     *monitorIdentities
	observe func(registry.Event)
}

// firstID is the UI's first identity: its name, how its token was made,
// and the token of a role (minted now).
type firstID struct {
	name, detail, token string
}

// firstIdentity names the first identity: the first of --as, --role and
// --jwt when they make several, else the user of --as, the pasted
// token's subject or role, or "default".
func firstIdentity(tg *target.Target, specs []target.IdentitySpec) (firstID, target.Claims, error) {
	if len(specs) > 0 {
		tok, claims, err := tg.IdentityToken(specs[0])
		if err != nil {
			return firstID{}, target.Claims{}, fmt.Errorf("identity %s: %w", specs[0].Name, err)
		}
		return firstID{name: specs[0].Name, detail: identityDetail(specs[0], claims), token: tok}, claims, nil
	}
	name := tui.DefaultIdentity
	for _, n := range []string{tg.As, tg.Claims.Subject, tg.Claims.Role} {
		if n != "" && !strings.ContainsAny(n, " ,:=") {
			name = n
			break
		}
	}
	return firstID{name: name}, tg.Claims, nil
}

// joinStatus joins two parts of the first status line.
func joinStatus(a, b string) string {
	if a == "" {
		return b
	}
	return a + " · " + b
}

// monitorSettings are the monitor's flags, checked.
type monitorSettings struct {
	target *target.Target
	level  slog.Level
	policy registry.Policy
	joins  []registry.Name
	// plan and overrides are the budget meter's --plan and --limit.
	plan, overrides limits.Limits
	// identities are those of --as, --role and --jwt when they make
	// several (the first rtm's own), nil for the single one of before.
	identities []target.IdentitySpec
}

// settings resolves the target and parses the other flags.
func (c monitorCmd) settings() (monitorSettings, error) {
	specs, err := c.identitySpecs()
	if err != nil {
		return monitorSettings{}, err
	}
	tg, err := target.Resolve(firstInput(target.Input{URL: c.URL, Key: c.Key, Tenant: c.Tenant, JWTSecret: c.JWTSecret}, specs, c.As, c.JWT))
	if err != nil {
		return monitorSettings{}, err
	}
	s := monitorSettings{target: tg, identities: specs}
	if err := s.level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return monitorSettings{}, fmt.Errorf("--log-level: %w", err)
	}
	if s.policy, err = registry.ParsePolicy(c.Policy); err != nil {
		return monitorSettings{}, fmt.Errorf("--policy: %w", err)
	}
	if s.plan, s.overrides, err = c.limits(); err != nil {
		return monitorSettings{}, err
	}
	for _, j := range c.Join {
		n, err := registry.ParseName(j)
		if err != nil {
			return monitorSettings{}, fmt.Errorf("--join: %w", err)
		}
		s.joins = append(s.joins, n)
	}
	return s, nil
}

// openLogFile opens --log-file: logs go to the file or nowhere, never to
// the terminal. w is nil without a file.
func openLogFile(path string, level slog.Level) (w io.Writer, log *slog.Logger, closeFn func(), err error) {
	if path == "" {
		return nil, slog.New(slog.DiscardHandler), func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--log-file: %w", err)
	}
	lw := &lockedWriter{w: f}
	log = slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level, ReplaceAttr: mask.ReplaceAttr}))
	return lw, log, func() { _ = f.Close() }, nil
}

// monitorTarget is what the UI runs against beside the resolved target:
// the embedded target (nil for a project), the server-side controls
// (nil: none), the status line and the database of the postgres changes.
type monitorTarget struct {
	embedded *embeddedTarget
	control  registry.ServerControl
	status   string
	db       monitorDB
}

// openTarget starts the embedded target, fed by the database of --db,
// when no project is configured; for a project, --service-key gives the
// server-side controls of an `rtm serve`.
func (c monitorCmd) openTarget(ctx context.Context, tg *target.Target, log *slog.Logger) (monitorTarget, error) {
	mt := monitorTarget{db: monitorDatabase(c.DB, c.Publication, tg.Embedded)}
	switch {
	case tg.Embedded:
		et, err := startEmbedded(ctx, embeddedConfig{db: c.DB, publication: c.Publication, logger: log})
		if err != nil {
			return monitorTarget{}, err
		}
		if err := et.embed(tg); err != nil {
			_ = et.Close()
			return monitorTarget{}, err
		}
		mt.embedded, mt.control, mt.status = et, et.control(), et.status()
		mt.db = mt.db.embedded(et.feed)
	case c.ServiceKey != "":
		control, err := serverctl.NewHTTP(tg.URL.Value, c.ServiceKey, nil)
		if err != nil {
			return monitorTarget{}, fmt.Errorf("--service-key: %w", err)
		}
		mt.control = control
	}
	return mt, nil
}

// close stops the embedded target, if one was started.
func (mt monitorTarget) close() {
	if mt.embedded != nil {
		_ = mt.embedded.Close()
	}
}

// connectAndJoin connects and opens the channels in the background (the
// UI shows the progress and the errors): the --join channels, after the
// design's examples on the embedded server. bg counts the goroutines.
func (c monitorCmd) connectAndJoin(ctx context.Context, bg *sync.WaitGroup, mgr *registry.Manager, adapter *tui.RegistryManager,
	tg *target.Target, joins []registry.Name, log *slog.Logger) {
	bg.Add(1)
	go func() {
		defer bg.Done()
		if err := mgr.Connect(ctx); err != nil && ctx.Err() == nil {
			log.Warn("Connect", "err", err)
		}
	}()
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
				log.Warn("Join", "channel", n.String(), "err", err)
			}
		}
	}()
}

// runUI runs the terminal UI on model, fed by the bridge from sub, until
// it quits; then it stops the bridge and cancels the monitor's context.
func runUI(ctx context.Context, cancel context.CancelFunc, model *tui.Model, sub *registry.Subscription, mgr *registry.Manager, feeds uiFeeds) error {
	p := tea.NewProgram(model, tea.WithContext(ctx))
	bctx, stopBridge := context.WithCancel(ctx)
	bridgeDone := make(chan struct{})
	go func() {
		defer close(bridgeDone)
		tui.NewBridge(sub, mgr.Snapshot, tui.BridgeOptions{Observe: feeds.observe}).Run(bctx, p.Send)
	}()
	if feeds.ids != nil {
		feeds.ids.run(p.Send)
	}
	_, runErr := p.Run()
	stopBridge()
	<-bridgeDone
	cancel()
	if runErr != nil && !errors.Is(runErr, tea.ErrProgramKilled) && !errors.Is(runErr, tea.ErrInterrupted) {
		return fmt.Errorf("terminal UI: %w", runErr)
	}
	return model.Err()
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

// monitorProxy is the app proxy the monitor runs beside its own client
// (--listen, --no-proxy): its model feeds the UI's Apps view.
type monitorProxy struct {
	// model is nil when the proxy is off; url is the app's URL of the
	// proxy; status says why it is off, or warns about the address.
	model *apps.Model
	// control is the proxy's fault control (nil when it is off): the
	// manager's app faults (":app ...").
	control registry.AppControl
	url     string
	// anonKey is the upstream's anon key when rtm knows it: the
	// embedded server's ("" for a project: the app keeps its own).
	anonKey string
	status  string
	close   func()
}

// startProxy starts the app proxy on --listen, forwarding to the
// monitor's target (the embedded server when mt has one). A listen
// address that is taken is not fatal: the monitor runs without the
// proxy and its status says so.
func (c monitorCmd) startProxy(mt monitorTarget, tg *target.Target, logger *slog.Logger) monitorProxy {
	if c.NoProxy {
		return monitorProxy{close: func() {}}
	}
	upstream, anonKey := target.ProjectURL(tg.URL.Value), ""
	if mt.embedded != nil {
		upstream, anonKey = mt.embedded.srv.URL(), mt.embedded.srv.AnonKey()
	}
	model := apps.New(apps.Options{})
	ps, err := listenProxy(c.Listen, proxy.Config{Upstream: upstream, Logger: logger, Observer: model})
	if err != nil {
		logger.Warn("proxy off", "err", err)
		return monitorProxy{status: "app proxy off: " + err.Error() + " (--listen ADDR picks another, --no-proxy turns it off)", close: func() {}}
	}
	stopTick := tickModel(model)
	mp := monitorProxy{model: model, control: ps.p, url: ps.url, anonKey: anonKey, close: func() { ps.shutdown(logger); stopTick() }}
	if w := ps.warning(); w != "" {
		mp.status = "app proxy: warning: " + w
	}
	return mp
}
