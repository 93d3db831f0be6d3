package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"rtm/realtime/demo"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc/demodb"
	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/limits"
	"rtm/registry/target"
)

// The embedded target: rtm's Supabase-compatible server (package
// realtime/server) started in-process on a loopback port, with a fresh
// JWT secret, the change feed of --db and, for the UI, the demo peers.
// It is the target of the UI and of the headless commands when no
// project is configured, and this file is the one place that starts it:
// the packages below main get what they need of it through their own
// small types (target.Target.Embed: URL, anon key and secret;
// registry.ServerControl: the server-side faults; headless.EmbeddedTarget
// for the headless commands), so nothing under registry/ imports
// realtime/server. Tokens are minted with package realtime/token.

// embeddedConfig configures [startEmbedded].
type embeddedConfig struct {
	// db and publication are --db and --publication: "" (no database:
	// the demo's simulated changes), "auto" (a private demo database) or
	// a PostgreSQL URL whose changes the server streams.
	db, publication string
	// limits are the server's limits (zero: Supabase's defaults).
	limits server.Limits
	// logger receives the server's and the feed's logs (nil: discarded).
	logger *slog.Logger
}

// embeddedTarget is a running embedded server and its change feed.
type embeddedTarget struct {
	srv    *server.Server
	secret []byte
	feed   changeFeed
	cfg    embeddedConfig
	log    *slog.Logger
}

// startEmbedded opens the change feed of cfg.db, then starts the server
// on it. Close stops both.
func startEmbedded(ctx context.Context, cfg embeddedConfig) (*embeddedTarget, error) {
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	feed, err := openFeed(ctx, cfg.db, cfg.publication, "", log.With("component", "db"))
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	secret := []byte(rand.Text() + rand.Text())
	srv, err := server.New(server.Config{JWTSecret: secret, Changes: feed.Source, Authorizer: feed.Authorizer, Broadcasts: feed.Broadcasts,
		Limits: cfg.limits, Logger: log.With("component", "server")})
	if err != nil {
		feed.Close()
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		_ = srv.Close()
		feed.Close()
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	return &embeddedTarget{srv: srv, secret: secret, feed: feed, cfg: cfg, log: log}, nil
}

// Close stops the server, then its change feed.
func (e *embeddedTarget) Close() error {
	err := e.srv.Close()
	e.feed.Close()
	return err
}

// embed completes tg, a target that found no project, with the server's
// URL, anon key and secret (and mints the --as token).
func (e *embeddedTarget) embed(tg *target.Target) error {
	return tg.Embed(e.srv.URL(), e.srv.AnonKey(), e.secret)
}

// control returns the server-side fault controls of the server.
func (e *embeddedTarget) control() registry.ServerControl { return embeddedControl{s: e.srv} }

// status is the UI's status line about the server.
func (e *embeddedTarget) status() string {
	return "embedded server on " + e.srv.Addr() + " — no project configured (see --url, SUPABASE_URL, .env)"
}

// headless is the server as package headless takes it.
func (e *embeddedTarget) headless() *headless.EmbeddedTarget {
	return &headless.EmbeddedTarget{URL: e.srv.URL(), AnonKey: e.srv.AnonKey(), Secret: e.secret, Control: e.control(), Close: e.Close}
}

// startDemo starts the simulated peers (package realtime/demo) on the
// example channels of tenant. Their changes are real rows in the demo
// database (--db auto), simulated ones without a database (--db ""), and
// none when a database of the user's is streamed (or the demo database
// could not start: the subscription channel says why). stop closes the
// peers, then the demo database's writer.
func (e *embeddedTarget) startDemo(ctx context.Context, tenant string) (stop func(), err error) {
	var extra map[string]any
	if tenant != "" {
		extra = map[string]any{"tenant_id": tenant}
	}
	ex := exampleChannels(tenant)
	var (
		emit      func(string, protocol.ChangeData) int
		write     func(context.Context) (string, error)
		closeDemo = func() {}
	)
	switch {
	case e.feed.DemoURL != "":
		w, err := demodb.NewWriter(ctx, e.feed.DemoURL, nil)
		if err != nil {
			e.log.Warn("Demo database writer", "err", err)
			break
		}
		closeDemo = func() { _ = w.Close() }
		write = w.Step
	case e.cfg.db == "":
		emit = e.srv.EmitChange
	}
	secret := e.secret
	d, err := demo.Start(ctx, demo.Options{
		URL: e.srv.URL(), APIKey: e.srv.AnonKey(), EmitChange: emit, WriteChange: write,
		PresenceTopic: ex[0].String(), SubscriptionTopic: ex[1].String(), BroadcastTopic: ex[2].String(),
		Token: func(user string) (string, error) {
			return token.User(secret, user, time.Now(), 24*time.Hour, extra)
		},
		Logger: e.log.With("component", "demo"),
	})
	if err != nil {
		closeDemo()
		return nil, err
	}
	return func() { _ = d.Close(); closeDemo() }, nil
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

// embeddedControl implements registry.ServerControl on the server's Go
// API (`rtm serve` is driven through its admin API: package serverctl).
type embeddedControl struct {
	s *server.Server
}

// Target implements registry.ServerControl.
func (e embeddedControl) Target() string { return "embedded server at " + e.s.URL() }

// Kick implements registry.ServerControl.
func (e embeddedControl) Kick(_ context.Context, topic string, mode registry.KickMode) (int, error) {
	m := server.KickError
	if mode == registry.KickClose {
		m = server.KickClose
	}
	return e.s.Kick(topic, m), nil
}

// RejectJoins implements registry.ServerControl.
func (e embeddedControl) RejectJoins(_ context.Context, r registry.Rejection) error {
	if r.Count < 0 || r.For < 0 {
		return fmt.Errorf("embedded server: reject joins: count and duration must not be negative")
	}
	e.s.RejectJoins(server.Rejection{Count: r.Count, For: r.For, Reason: r.Reason})
	return nil
}

// DropAll implements registry.ServerControl.
func (e embeddedControl) DropAll(context.Context) (int, error) { return e.s.Drop(), nil }

// Restart implements registry.ServerControl.
func (e embeddedControl) Restart(ctx context.Context, downtime time.Duration) error {
	return e.s.Restart(ctx, downtime)
}

// ServerLimits implements limits.Source on the server's Go API (the
// default tenant's counters).
func (e embeddedControl) ServerLimits(context.Context) (limits.ServerReport, error) {
	r := e.s.LimitsReport("")
	c, u := r.Limits, r.Usage
	return limits.ServerReport{Off: r.Off, Configured: limits.ServerLimits{
		MaxConcurrentUsers: int64(c.MaxConcurrentUsers), MaxChannelsPerClient: int64(c.MaxChannelsPerClient),
		MaxJoinsPerSecond: int64(c.MaxJoinsPerSecond), MaxEventsPerSecond: int64(c.MaxEventsPerSecond),
		MaxPresenceEventsPerSecond: int64(c.MaxPresenceEventsPerSecond), MaxPayloadSizeInKB: int64(c.MaxPayloadSizeInKB),
	}, Usage: limits.ServerUsage{
		Connections: int64(u.Connections), MaxChannelsPerConnection: int64(u.MaxChannelsPerConnection),
		JoinsPerSecond: u.JoinsPerSecond, EventsPerSecond: u.EventsPerSecond, PresenceEventsPerSecond: u.PresenceEventsPerSecond,
	}}, nil
}

var (
	_ registry.ServerControl = embeddedControl{}
	_ limits.Source          = embeddedControl{}
)
