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

	// ReadBufferSize is the per-connection read buffer. Default 1024;
	// larger messages are read straight into their own buffers.
	ReadBufferSize int
}

// Limits are the tenant limits of Supabase Realtime, with its defaults
// and its exact error reasons. A zero field gets its default; a negative
// field disables that one limit; Off disables all.
type Limits struct {
	// Off disables every limit (benchmarks, `rtm serve --limits=off`).
	Off bool

	// MaxChannelsPerClient bounds the channels one socket may join; join
	// error "ChannelRateLimitReached: Too many channels". Default 100.
	MaxChannelsPerClient int

	// MaxJoinsPerSecond bounds joins per second, server-wide; join error
	// "ClientJoinRateLimitReached: Too many joins per second" (the socket
	// is then closed) and HTTP 429 at connect while exceeded. Default 100.
	MaxJoinsPerSecond int

	// MaxConcurrentUsers bounds open sockets; HTTP 429 "Too many
	// connected users" at connect. Default 200.
	MaxConcurrentUsers int

	// MaxEventsPerSecond bounds client events (broadcast, presence and
	// other pushes, REST messages) per second, server-wide over a sliding
	// one-second window. A push over the limit shuts its channel down with
	// "Too many messages per second"; REST answers 429. Default 100.
	MaxEventsPerSecond int

	// MaxPresenceEventsPerSecond bounds presence tracks, untracks and
	// presence_state syncs per second, server-wide; channel shutdown
	// "Too many presence messages per second". Default 1000.
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
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
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
