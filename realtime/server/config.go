package server

import (
	"io"
	"log/slog"
	"time"
)

// Config configures a [Server]. Zero values get the documented defaults.
type Config struct {
	// JWTSecret verifies every token (HS256, HS384, HS512) and signs the
	// anon and service_role keys. Required.
	JWTSecret []byte

	// PublishableKey and SecretKey are opaque API keys
	// ("sb_publishable_…", "sb_secret_…") accepted wherever a JWT key is,
	// standing for the anon and service_role keys as Supabase's gateway
	// translates them. Empty: derived from JWTSecret (stable for one
	// secret).
	PublishableKey string
	SecretKey      string

	// Limits are Supabase's tenant limits; the zero value means
	// [DefaultLimits]. Limits{Off: true} disables all of them.
	Limits Limits

	// MaxTenantWindows bounds the tenants whose rate windows the server
	// holds at once, besides the default tenant's (see [Limits] for the
	// tenant model). A tenant's windows are dropped once it is idle (no
	// event charged for a second); a tenant charged while the server
	// holds this many busy ones shares one overflow set of windows with
	// the other such tenants until room frees up, so naming ever new
	// tenants costs a bounded amount of memory (about 600 bytes a
	// tenant) and never touches the windows of the tenants held. Default
	// 1000.
	MaxTenantWindows int

	// Logger receives structured logs; nil discards them. Tokens are
	// never logged in full.
	Logger *slog.Logger

	// Now is the server's clock (token expiry, rate windows, pauses);
	// nil means time.Now.
	Now func() time.Time

	// AfterFunc schedules f after d on the same clock as Now and returns a
	// function that cancels it (reporting whether it stopped the call).
	// nil means time.AfterFunc. A test that fakes Now fakes AfterFunc
	// too, so a channel's token expiry follows the fake clock (see
	// servertest.Clock).
	AfterFunc func(d time.Duration, f func()) (stop func() bool)

	// Rand is the source of randomness for presence refs and keys; nil
	// means crypto/rand.
	Rand io.Reader

	// IdleTimeout closes a socket that sent nothing for this long, as
	// Phoenix does. Default 60s.
	IdleTimeout time.Duration

	// JoinErrorDelay delays join error replies (Supabase sleeps 5s).
	// Default 0.
	JoinErrorDelay time.Duration

	// ConnectErrorDelay delays HTTP errors answering a WebSocket upgrade
	// (Supabase sleeps 2s). Default 0.
	ConnectErrorDelay time.Duration

	// HTTPReadHeaderTimeout closes a connection of the server's listener
	// whose request headers have not all arrived this long after the
	// request's first byte (a new connection's first request: after the
	// connection opened). Default 10s.
	//
	// This, HTTPIdleTimeout and MaxHTTPConnections hold for the server's
	// own listener (Start); an http.Server serving Handler applies its
	// own. HTTPReadTimeout and HTTPWriteTimeout are set per request
	// (http.ResponseController: a ResponseWriter wrapping the server's
	// must unwrap) and hold in any http.Server. A negative value disables
	// a timeout or the limit.
	HTTPReadHeaderTimeout time.Duration

	// HTTPReadTimeout bounds the reading of a request's body, counted from
	// the end of its headers: a REST or admin request whose body has not
	// all arrived in time is answered 408 and its connection closed.
	// Default 30s.
	HTTPReadTimeout time.Duration

	// HTTPWriteTimeout bounds an HTTP answer, counted from the end of the
	// request's headers: a client that does not read its answer in time
	// has its connection closed. It covers a WebSocket's 101 answer, not
	// the WebSocket after it (bounded by OutboundQueue and
	// OutboundQueueBytes, and IdleTimeout). Default 30s.
	HTTPWriteTimeout time.Duration

	// HTTPIdleTimeout closes a keep-alive connection that waits this long
	// for its next request. Default 30s.
	HTTPIdleTimeout time.Duration

	// MaxHTTPConnections bounds the listener's connections that speak
	// HTTP: those reading or answering a request or idle between
	// requests. A WebSocket leaves the count when it upgrades (it counts
	// against Limits.MaxConcurrentUsers), so at most MaxHTTPConnections +
	// MaxConcurrentUsers sockets are open. A connection over the limit is
	// answered at once, without reading its request, with 503
	// {"message":"Too many HTTP connections"} and closed; the timeouts
	// above free the slots of idle and slow clients. Default 1000.
	MaxHTTPConnections int

	// OutboundQueue is how many frames may wait for a connection's writer
	// before the connection is dropped as a slow consumer. Default 1024.
	OutboundQueue int

	// OutboundQueueBytes bounds the bytes waiting for a connection's
	// writer the same way. Default 16 MiB.
	OutboundQueueBytes int

	// MaxFrameSize is the largest inbound WebSocket message; a bigger one
	// closes the socket with status 1009. Default 5,000,000 bytes, as
	// Supabase.
	MaxFrameSize int

	// MaxPresenceBytesPerConn bounds the presence one connection keeps
	// tracked over all its channels: each meta as stored (the tracked
	// object with phx_ref added), its refs and presence key, and 192
	// bytes of bookkeeping. A track that would exceed it is answered
	// {"status":"error","response":{"reason":"PresenceBudgetExceeded: …"}}
	// (realtime-js's track() resolves "error"); the channel stays joined
	// and keeps its previous meta. Untrack, leave and close give the
	// bytes back. Default 16 MiB: five metas of the largest payload
	// (Limits.MaxPayloadSizeKB, 3000 KB) or thousands of ordinary ones.
	// Negative: no limit. Limits.Off leaves it on (it bounds memory, not
	// use).
	MaxPresenceBytesPerConn int

	// MaxPresenceBytes bounds the presence all connections keep, counted
	// and refused the same way. Default 256 MiB; negative: no limit.
	MaxPresenceBytes int

	// Changes, when set, feeds postgres_changes bindings from a database
	// (see ChangeSource); nil keeps the embedded behaviour: bindings are
	// accepted at once and only EmitChange produces changes.
	Changes ChangeSource

	// Authorizer, when set, decides private channels by the database's
	// RLS policies on realtime.messages, as Supabase does (see
	// [Authorizer]; package rtm/realtime/server/pgrealtime provides one);
	// nil keeps the role rule (authenticated and service_role may use
	// private channels).
	Authorizer Authorizer

	// AuthorizationErrorDelay delays the join errors the Authorizer
	// decides (Unauthorized, MissingPartition, …), as Supabase sleeps
	// CHANNEL_ERROR_BACKOFF_MS before them. Default 5s
	// (DefaultAuthorizationErrorDelay); negative: none. Other join errors
	// take JoinErrorDelay.
	AuthorizationErrorDelay time.Duration

	// Broadcasts, when set, delivers Broadcast from Database and replays
	// stored broadcasts to private joins that ask (see
	// [DatabaseBroadcasts]; package rtm/realtime/server/pgrealtime
	// provides it); nil: no database broadcasts.
	Broadcasts DatabaseBroadcasts

	// ReadBufferSize is the per-connection read buffer. Default 1024;
	// larger messages are read straight into their own buffers.
	ReadBufferSize int
}

// Limits are the tenant limits of Supabase Realtime, with its defaults
// and its exact error reasons. A zero field gets its default; a negative
// field disables that one limit; Off disables all.
//
// The rate limits and MaxConcurrentUsers count per tenant, as in
// Supabase, so that a tenant over a limit never holds back another:
// events, presence events and joins count against the tenant of the
// topic (a topic "tenant:<ID>:..." belongs to tenant <ID>, any other
// topic to the default tenant); a join refused because its token may not
// use the tenant topic counts against the socket's tenant instead. The
// connect-time checks (HTTP 429) and MaxConcurrentUsers count against the
// tenant of the socket's token: its tenant_id claim, or the default
// tenant without one. service_role may use every tenant's topics and is
// charged to each topic's tenant. MaxChannelsPerClient counts per socket
// and ClientPresenceMaxCalls per channel, as in Supabase.
type Limits struct {
	// Off disables every limit (benchmarks, `rtm serve --limits=off`).
	Off bool

	// MaxChannelsPerClient bounds the channels one socket may join; join
	// error "ChannelRateLimitReached: Too many channels". Default 100.
	MaxChannelsPerClient int

	// MaxJoinsPerSecond bounds joins per second per tenant (the joined
	// topic's) over a sliding one-second window; join error
	// "ClientJoinRateLimitReached: Too many joins per second" (the socket
	// is then closed), and HTTP 429 "Too many joins per second" at connect
	// while the token's tenant is over the limit. Default 100.
	MaxJoinsPerSecond int

	// MaxConcurrentUsers bounds the open sockets per tenant (the socket
	// token's); HTTP 429 "Too many connected users" at connect. Default
	// 200.
	MaxConcurrentUsers int

	// MaxEventsPerSecond bounds client events (broadcast pushes, pushes
	// of unknown events, REST messages) per second per tenant (the
	// topic's), over a sliding one-second window. A push over the limit shuts its channel
	// down with "Too many messages per second"; REST answers 429.
	// Default 100.
	MaxEventsPerSecond int

	// MaxPresenceEventsPerSecond bounds presence tracks and
	// presence_state syncs per second per tenant (the topic's); channel
	// shutdown "Too many presence messages per second". Default 1000.
	MaxPresenceEventsPerSecond int

	// ClientPresenceMaxCalls presence pushes are allowed per channel per
	// ClientPresenceWindow; channel shutdown "Client presence rate limit
	// exceeded". Default 5 per 30s.
	ClientPresenceMaxCalls int
	ClientPresenceWindow   time.Duration

	// MaxPayloadSizeKB bounds broadcast and presence payloads (KB of 1000
	// bytes). Default 3000.
	MaxPayloadSizeKB int
}

// DefaultLimits returns Supabase's defaults (realtime v2.129.8).
func DefaultLimits() Limits {
	return Limits{
		MaxChannelsPerClient:       100,
		MaxJoinsPerSecond:          100,
		MaxConcurrentUsers:         200,
		MaxEventsPerSecond:         100,
		MaxPresenceEventsPerSecond: 1000,
		ClientPresenceMaxCalls:     5,
		ClientPresenceWindow:       30 * time.Second,
		MaxPayloadSizeKB:           3000,
	}
}

// withDefaults fills zero fields with defaults and turns disabled limits
// (Off or negative) into 0, which means "no limit" internally.
func (l Limits) withDefaults() Limits {
	if l.Off {
		return Limits{Off: true}
	}
	d := DefaultLimits()
	fill := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	fill(&l.MaxChannelsPerClient, d.MaxChannelsPerClient)
	fill(&l.MaxJoinsPerSecond, d.MaxJoinsPerSecond)
	fill(&l.MaxConcurrentUsers, d.MaxConcurrentUsers)
	fill(&l.MaxEventsPerSecond, d.MaxEventsPerSecond)
	fill(&l.MaxPresenceEventsPerSecond, d.MaxPresenceEventsPerSecond)
	fill(&l.ClientPresenceMaxCalls, d.ClientPresenceMaxCalls)
	fill(&l.MaxPayloadSizeKB, d.MaxPayloadSizeKB)
	switch {
	case l.ClientPresenceWindow == 0:
		l.ClientPresenceWindow = d.ClientPresenceWindow
	case l.ClientPresenceWindow < 0:
		l.ClientPresenceWindow = 0
	}
	return l
}

func (c Config) withDefaults() Config {
	c.Limits = c.Limits.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AfterFunc == nil {
		c.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	switch {
	case c.AuthorizationErrorDelay == 0:
		c.AuthorizationErrorDelay = DefaultAuthorizationErrorDelay
	case c.AuthorizationErrorDelay < 0:
		c.AuthorizationErrorDelay = 0
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	timeout := func(v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0 // none
		}
	}
	timeout(&c.HTTPReadHeaderTimeout, 10*time.Second)
	timeout(&c.HTTPReadTimeout, 30*time.Second)
	timeout(&c.HTTPWriteTimeout, 30*time.Second)
	timeout(&c.HTTPIdleTimeout, 30*time.Second)
	switch {
	case c.MaxHTTPConnections == 0:
		c.MaxHTTPConnections = 1000
	case c.MaxHTTPConnections < 0:
		c.MaxHTTPConnections = 0 // no limit
	}
	if c.OutboundQueue <= 0 {
		c.OutboundQueue = 1024
	}
	if c.OutboundQueueBytes <= 0 {
		c.OutboundQueueBytes = 16 << 20
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = 5_000_000
	}
	c.MaxPresenceBytesPerConn = byteBudget(c.MaxPresenceBytesPerConn, DefaultMaxPresenceBytesPerConn)
	c.MaxPresenceBytes = byteBudget(c.MaxPresenceBytes, DefaultMaxPresenceBytes)
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 1024
	}
	if c.MaxTenantWindows <= 0 {
		c.MaxTenantWindows = defaultMaxTenantWindows
	}
	return c
}

// Default presence budgets.
const (
	// DefaultMaxPresenceBytesPerConn is Config.MaxPresenceBytesPerConn's
	// default, 16 MiB.
	DefaultMaxPresenceBytesPerConn = 16 << 20
	// DefaultMaxPresenceBytes is Config.MaxPresenceBytes's default,
	// 256 MiB.
	DefaultMaxPresenceBytes = 256 << 20
)

// byteBudget returns v, def when v is 0, or 0 (no limit) when v is
// negative.
func byteBudget(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
