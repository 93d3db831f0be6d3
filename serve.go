package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/server"
)

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

	IdleTimeout             time.Duration `default:"60s" help:"Close a socket that sent nothing for this long."`
	JoinErrorDelay          time.Duration `default:"0s" help:"Delay join error replies (Supabase: 5s); refusals by RLS policies take --authorization-error-delay."`
	AuthorizationErrorDelay time.Duration `default:"5s" help:"Delay the join errors of private channels refused by the database's RLS policies (with --db), as Supabase's 5s backoff (negative: none)."`
	ConnectErrorDelay       time.Duration `default:"0s" help:"Delay refused upgrades (Supabase: 2s)."`
	OutboundQueue           int           `default:"1024" help:"Frames queued per socket before it is dropped as a slow consumer."`
	OutboundQueueBytes      int           `default:"16777216" help:"Bytes queued per socket (16 MiB) before it is dropped as a slow consumer."`
	MaxFrameSize            int           `default:"5000000" help:"Largest frame a client may send, in bytes (Supabase: 5,000,000); a bigger one closes the socket with 1009."`
	MaxTenantWindows        int           `default:"1000" help:"Tenants whose rate windows are held at once; tenants beyond share one overflow budget until idle ones are dropped."`
	LogLevel                string        `default:"info" enum:"debug,info,warn,error" help:"Log level (logs go to stderr; tokens are masked)."`

	HTTPReadHeaderTimeout   time.Duration `name:"http-read-header-timeout" default:"10s" help:"Close a connection whose request headers have not arrived in this long (negative: never)."`
	HTTPReadTimeout         time.Duration `name:"http-read-timeout" default:"30s" help:"Answer 408 and close when a request body has not arrived this long after its headers (negative: never)."`
	HTTPWriteTimeout        time.Duration `name:"http-write-timeout" default:"30s" help:"Close a connection whose answer is not written this long after the request's headers; WebSockets are exempt once upgraded (negative: never)."`
	HTTPIdleTimeout         time.Duration `name:"http-idle-timeout" default:"30s" help:"Close a keep-alive connection idle this long between requests (negative: never)."`
	MaxHTTPConnections      int           `name:"max-http-connections" default:"1000" help:"Connections speaking HTTP (WebSockets leave the count once upgraded); beyond, 503 at once (negative: no limit)."`
	MaxPresenceBytesPerConn int           `default:"16777216" help:"Presence bytes one socket may keep tracked over all its channels (16 MiB); a track over it gets the error PresenceBudgetExceeded. Negative: no limit; --limits=off leaves it on."`
	MaxPresenceBytes        int           `default:"268435456" help:"Presence bytes all sockets together may keep tracked (256 MiB), refused the same way. Negative: no limit."`

	DB          string `name:"db" env:"RTM_DB" help:"PostgreSQL URL whose changes feed postgres_changes (logical replication) and whose RLS policies on realtime.messages authorise private channels (the realtime schema is created when missing), or \"auto\" for a private demo database (needs PostgreSQL's binaries)."`
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
	feed, err := openFeed(env.ctx, c.DB, c.Publication, c.Slot, logger)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer feed.Close()
	if feed.Authorizer == nil {
		logger.Info("Private channels by role: RLS policies are not evaluated without --db")
	}
	srv, err := server.New(server.Config{
		JWTSecret:               []byte(secret),
		Changes:                 feed.Source,
		Authorizer:              feed.Authorizer,
		Broadcasts:              feed.Broadcasts,
		AuthorizationErrorDelay: c.AuthorizationErrorDelay,
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
private channels: %s

Press Ctrl+C to stop.
`, srv.URL(), srv.Addr(), srv.URL(), srv.URL(), secretLine, srv.AnonKey(), srv.ServiceRoleKey(),
		srv.PublishableKey(), srv.SecretKey(), limits, feed.Line, feed.authorizationLine())
	<-env.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
