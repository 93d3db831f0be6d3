package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/alecthomas/kong"

	"rtm/realtime/mask"
	"rtm/realtime/server"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/headless/scenario"
	"rtm/registry/limits"
	"rtm/registry/target"
	"rtm/theme"
	"rtm/tui"
)

// The headless commands (watch, record, replay, diff, run, swarm): each
// Run wires flags to package registry/headless and its scenario
// sub-package.

// targetFlags are the target flags of the UI, shared by the headless
// commands. With none (and nothing in the environment or .env), the
// embedded server runs in-process.
type targetFlags struct {
	URL        string   `help:"Project URL or Realtime ws URL. Default: SUPABASE_URL or .env.local/.env; none: the embedded server in-process."`
	Key        string   `help:"Project anon (or publishable) key. Default: SUPABASE_ANON_KEY or .env.local/.env."`
	JWT        string   `name:"jwt" help:"User access token sent with every join (default: the key)."`
	Tenant     string   `help:"Default tenant of channel names."`
	As         []string `help:"Mint a user token for this user id (needs the JWT secret); presence channels track this user. rtm watch takes several (--as alice --as bob, role:ROLE, jwt:TOKEN, NAME=SPEC): one connection per identity, side by side."`
	JWTSecret  string   `name:"jwt-secret" help:"Project JWT secret, to mint tokens (--as, scenario users and roles, swarm clients). Default: SUPABASE_JWT_SECRET."`
	ServiceKey string   `name:"service-key" env:"RTM_SERVICE_KEY" help:"service_role key of an 'rtm serve' target: enables server-side faults (kick, reject-joins, drop-all, restart)."`
	LogFile    string   `help:"Write the managers' JSONL log to this file."`
}

// open resolves the target; with no project configured, the embedded
// target (embedded.go) starts with the limits of embedded and the log of
// --log-file.
func (f targetFlags) open(ctx context.Context, embedded embeddedConfig) (*headless.Env, func(), error) {
	var opts headless.EnvOptions
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
	embedded.logger = opts.Logger
	opts.StartEmbedded = func() (*headless.EmbeddedTarget, error) {
		et, err := startEmbedded(ctx, embedded)
		if err != nil {
			return nil, err
		}
		return et.headless(), nil
	}
	if len(f.As) > 1 {
		return nil, nil, fmt.Errorf("%w: --as given %d times: only rtm watch takes several identities", headless.ErrInvalid, len(f.As))
	}
	env, err := headless.Open(target.Input{URL: f.URL, Key: f.Key, JWT: f.JWT, Tenant: f.Tenant, As: strings.Join(f.As, ""), JWTSecret: f.JWTSecret}, opts)
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
	Types  []string `help:"Only these event types (channel_state, socket, presence, message, retry, log, stats, token, error, frame; limits as with --limits)."`
	limitFlags
	identityFlags
}

// limitFlags choose the limits of the budget meter (package
// registry/limits).
type limitFlags struct {
	Limits bool     `help:"Print a limits line about once a second: each Supabase limit's usage, peak, trend, level and forecast, against the server's configured limits (embedded server, rtm serve with --service-key), the plan's and the --limit overrides."`
	Plan   string   `help:"Supabase plan whose documented limits apply (free, pro, pro-no-cap, team, enterprise); implies --limits."`
	Limit  []string `help:"Override one limit, NAME=N (repeatable; sizes in KB; N=off for none), e.g. channels_per_connection=50; implies --limits."`
}

// options returns the meter's options, nil when no limits line is
// asked for.
func (f limitFlags) meterOptions(types []string) (*headless.LimitsOptions, []string, error) {
	on := f.Limits || f.Plan != "" || len(f.Limit) > 0
	var rest []string
	for _, t := range types {
		if t == limits.TypeLimits {
			on = true
			continue
		}
		rest = append(rest, t)
	}
	if len(types) > 0 && len(rest) == 0 {
		rest = []string{string(registry.TypeDropped)} // limits lines only
	}
	if !on {
		return nil, types, nil
	}
	var o headless.LimitsOptions
	if f.Plan != "" {
		p, err := limits.Plan(f.Plan)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --plan: %w", headless.ErrInvalid, err)
		}
		o.Plan = p
	}
	ov, err := limits.Override(limits.Limits{}, f.Limit)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --limit: %w", headless.ErrInvalid, err)
	}
	o.Overrides = ov
	return &o, rest, nil
}

// Run streams events to stdout.
func (c watchCmd) Run(env *runEnv, parser *kong.Kong) error {
	o, err := c.options()
	if err != nil {
		return exit(env, parser, err)
	}
	o.Frames = c.Frames
	lo, types, err := c.meterOptions(c.Types)
	if err != nil {
		return exit(env, parser, err)
	}
	o.Limits = lo
	for _, t := range types {
		o.Types = append(o.Types, registry.EventType(t))
	}
	tf, ids, err := c.identities(c.targetFlags)
	if err != nil {
		return exit(env, parser, err)
	}
	o.Identities = ids
	e, done, err := tf.open(env.ctx, embeddedConfig{})
	if err != nil {
		return exit(env, parser, err)
	}
	defer done()
	closeRows, err := c.compareOptions(env.ctx, &o)
	if err != nil {
		return exit(env, parser, err)
	}
	defer closeRows()
	_, err = headless.Watch(env.ctx, e, env.stdout, o)
	return exit(env, parser, err)
}

// streamFlags are the flags of the commands that join channels and run
// until interrupted (watch, record).
type streamFlags struct {
	Join           []string      `required:"" help:"Channel to join (repeatable), e.g. presence:room:1."`
	Private        bool          `help:"Join the channels as private channels (with rtm serve --db, the RLS policies on realtime.messages decide; a refusal is a channel_state event with the server's reason)."`
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
	return headless.StreamOptions{Joins: names, Private: f.Private, Policy: pol, Duration: f.Duration, ConnectTimeout: f.ConnectTimeout}, nil
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
	e, done, err := c.open(env.ctx, embeddedConfig{})
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
	if rec.IsApp() {
		return exit(env, parser, fmt.Errorf("%w: %s is an app recording (rtm proxy --record): --live sends what rtm's own client received (rtm record); replay an app recording in the UI (rtm replay %s)", headless.ErrInvalid, c.File, c.File))
	}
	into, err := parseInto(c.Into, rec)
	if err != nil {
		return exit(env, parser, err)
	}
	e, done, err := c.open(env.ctx, embeddedConfig{})
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
	what, hint := "replay", ""
	if rec.IsApp() {
		what, hint = "app replay", ", :apps shows the app"
	}
	status := fmt.Sprintf("%s of %s (%s, recorded %s) — read-only; space pauses, ←/→ seek, +/- speed%s", what, name, rec.Length().Round(time.Second),
		rec.Header.Started.Format(time.DateTime), hint)
	o := tui.Options{Context: ctx, ReadOnly: true, Now: player.Now, Status: status, Replay: player,
		Theme: func(dark bool) *theme.Styles { return theme.ForEnv(dark, os.LookupEnv) }}
	v := player.Apps()
	if v == nil {
		return tui.New(o)
	}
	o.Apps = v
	m := tui.New(o)
	m.OpenApps()
	return m
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
	if err := headless.Comparable(c.A, a, c.B, b); err != nil {
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
	e, done, err := c.open(env.ctx, embeddedConfig{})
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
	e, done, err := c.open(env.ctx, embeddedConfig{limits: server.Limits{Off: c.Limits == "off"}})
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
