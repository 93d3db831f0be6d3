package realtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/protocol"
)

// Defaults of [Options], as in realtime-js 2.119.0.
const (
	// DefaultHeartbeatInterval is the heartbeat period (realtime-js
	// heartbeatIntervalMs); a reply must arrive within one interval.
	DefaultHeartbeatInterval = 25 * time.Second
	// DefaultPushTimeout is the time a push (join, leave, acked
	// broadcast, track) waits for its reply.
	DefaultPushTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds one connection attempt (see
	// [Options].HandshakeTimeout).
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds the write of one frame.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultEventBuffer is the number of events a channel holds for a
	// slow consumer before it drops (see the package doc).
	DefaultEventBuffer = 4096
	// DefaultEventBufferBytes is the bytes of events a channel holds for a
	// slow consumer before it drops: 4096 events of 8 KiB (an event costs
	// its frame's size and about 200 bytes; a presence event the metas it
	// keeps alive).
	DefaultEventBufferBytes = 32 << 20
	// DefaultSendBuffer is the number of user pushes (broadcasts, track)
	// queued for the writer before Send fails with ErrSendBufferFull.
	DefaultSendBuffer = 1024
	// DefaultTapBuffer is the number of frames the tap holds for a slow
	// consumer before it drops.
	DefaultTapBuffer = 8192
	// DefaultTapBufferBytes is the bytes of frames the tap holds for a
	// slow consumer before it drops: two of the largest frames accepted.
	DefaultTapBufferBytes = 64 << 20
	// DefaultReadLimit is the largest frame accepted from the server.
	DefaultReadLimit = 32 << 20
)

// Options configures a [Socket]. The zero value of every field gets the
// documented default; a nil *Options is all defaults except APIKey, which
// is required.
type Options struct {
	// APIKey is the project key sent as the apikey query parameter
	// (required, as realtime-js requires it). It is also the channel
	// token when AccessToken is empty.
	APIKey string
	// AccessToken is the user's JWT sent in every phx_join (access_token).
	// Empty: the server uses APIKey. Change it later with [Socket.SetAuth].
	AccessToken string
	// Vsn is the serializer: protocol.V2 ("2.0.0", default) or protocol.V1.
	Vsn protocol.Version
	// LogLevel, when set, is sent as the log_level query parameter
	// ("info", "warning", "error"); it only changes server logging.
	LogLevel string
	// Header is sent with the WebSocket upgrade request.
	Header http.Header

	// HeartbeatInterval is the heartbeat period; a heartbeat not answered
	// within one interval closes the connection (1000 "heartbeat
	// timeout") and reconnects. Default 25s; negative disables heartbeats.
	HeartbeatInterval time.Duration
	// HeartbeatOnOpen sends the first heartbeat as soon as a connection
	// opens instead of one interval later (realtime-js's timing), so the
	// round-trip time is known at once — a monitor wants it before 25 s.
	// Later heartbeats keep the interval.
	HeartbeatOnOpen bool
	// PushTimeout is the reply timeout of pushes. Default 10s.
	PushTimeout time.Duration
	// HandshakeTimeout bounds one connection attempt: DNS and TCP, the
	// TLS handshake (wss) and the HTTP upgrade together; when it passes,
	// the attempt's connection is closed, whatever step it is in, and the
	// attempt fails with an error wrapping context.DeadlineExceeded
	// ("handshake timeout 10s: context deadline exceeded awaiting the
	// WebSocket upgrade response"). A [Socket.Connect] (or [Dial]) whose
	// context ends sooner ends the attempt under way then; later attempts
	// of the reconnect loop have HandshakeTimeout alone. Default 10s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds the write of one frame; a write that does not
	// complete in time (a peer that stopped reading) ends the connection,
	// which then reconnects. Default 10s.
	WriteTimeout time.Duration

	// ReconnectAfter gives the delay before reconnection attempt tries
	// (1, 2, ...); tries resets when a connection opens. Default: 1, 2,
	// 5, 10 s, then 10 s forever, each scaled by a random factor in
	// [0.8, 1.2) (see Rand).
	ReconnectAfter func(tries int) time.Duration
	// RejoinAfter gives the delay before a channel's rejoin attempt tries
	// after phx_error, a refused join or a join timeout, while the socket
	// is connected; tries resets on a successful join and on every socket
	// open or close. Default 1, 2, 5 s, then 10 s (phoenix). A negative
	// delay disables the automatic channel rejoin: the channel stays in
	// [ChannelErrored] until [Channel.Subscribe] is called (a channel
	// manager drives its own policy this way). Rejoins after a socket
	// reconnect happen in any case.
	RejoinAfter func(tries int) time.Duration

	// Dial, when set, makes the TCP connections (under TLS for wss), so a
	// fault-injecting net.Conn can sit under the WebSocket. It must
	// return when ctx ends (the attempt's bound, see HandshakeTimeout);
	// the connection it returns is given a past deadline and closed when
	// the bound passes before the upgrade completes. Default: a
	// net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig configures wss connections.
	TLSConfig *tls.Config
	// ReadBufferSize and WriteBufferSize size the WebSocket I/O buffers
	// (default 16 KiB and 4 KiB).
	ReadBufferSize, WriteBufferSize int
	// ReadLimit is the largest frame accepted (default 32 MiB); a larger
	// one closes the connection.
	ReadLimit int64

	// EventBuffer is the default per-channel event buffer (default 4096);
	// EventBufferBytes bounds its bytes (default 32 MiB). See the package
	// doc for what happens beyond.
	EventBuffer      int
	EventBufferBytes int
	// SendBuffer bounds the user pushes waiting for the writer (default
	// 1024); beyond it Send, Track and Untrack fail with ErrSendBufferFull.
	SendBuffer int

	// Logger receives the client's structured logs. Default: discarded.
	// Tokens and keys are never logged unmasked.
	Logger *slog.Logger
	// Now is the clock of timestamps (events, statuses, frames). Default
	// time.Now, read once per network read rather than per frame: a frame
	// is stamped with the time of the read that completed it. Timers
	// (heartbeat, push timeouts, backoff) use real time.
	Now func() time.Time
	// Rand returns a number in [0, 1) for the reconnect jitter. Default
	// math/rand/v2.Float64.
	Rand func() float64

	// OnStatus is called for every change of the socket [Status], in
	// order, on a goroutine of its own (never on the read loop).
	OnStatus func(StatusChange)
	// OnHeartbeat is called for every heartbeat outcome, in order with
	// OnStatus, on the same goroutine.
	OnHeartbeat func(Heartbeat)
	// Tap is called with every frame read (as read) or written (just
	// before the write, so a frame precedes its reply), in order, on a
	// goroutine of its own, holding at most TapBuffer frames (default
	// 8192) and TapBufferBytes of them (default 64 MiB; a frame larger
	// than that still goes through when nothing waits) for a slow
	// consumer; beyond that frames are dropped and counted in
	// [Stats].TapDrops. Frames hold tokens: mask before showing them.
	Tap            func(Frame)
	TapBuffer      int
	TapBufferBytes int
}

// DefaultReconnectAfter is realtime-js's socket reconnect ladder without
// jitter: 1, 2, 5, 10 s, then 10 s.
func DefaultReconnectAfter(tries int) time.Duration {
	steps := [...]time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}
	if tries >= 1 && tries <= len(steps) {
		return steps[tries-1]
	}
	return 10 * time.Second
}

// DefaultRejoinAfter is phoenix's channel rejoin ladder: 1, 2, 5 s, then
// 10 s.
func DefaultRejoinAfter(tries int) time.Duration {
	steps := [...]time.Duration{time.Second, 2 * time.Second, 5 * time.Second}
	if tries >= 1 && tries <= len(steps) {
		return steps[tries-1]
	}
	return 10 * time.Second
}

// normalize returns a copy of o with the defaults filled in.
func (o *Options) normalize() (Options, error) {
	var n Options
	if o != nil {
		n = *o
	}
	if n.APIKey == "" {
		return n, fmt.Errorf("%w: API key is required to connect to Realtime", ErrInvalidConfig)
	}
	switch n.Vsn {
	case 0:
		n.Vsn = protocol.V2
	case protocol.V1, protocol.V2:
	default:
		return n, fmt.Errorf("%w: unsupported serializer version %s", ErrInvalidConfig, n.Vsn)
	}
	if n.HeartbeatInterval == 0 {
		n.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if n.PushTimeout <= 0 {
		n.PushTimeout = DefaultPushTimeout
	}
	if n.HandshakeTimeout <= 0 {
		n.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if n.WriteTimeout <= 0 {
		n.WriteTimeout = DefaultWriteTimeout
	}
	if n.Rand == nil {
		n.Rand = rand.Float64
	}
	if n.ReconnectAfter == nil {
		rnd := n.Rand
		n.ReconnectAfter = func(tries int) time.Duration {
			d := DefaultReconnectAfter(tries)
			return time.Duration(float64(d) * (0.8 + 0.4*rnd()))
		}
	}
	if n.RejoinAfter == nil {
		n.RejoinAfter = DefaultRejoinAfter
	}
	if n.ReadBufferSize <= 0 {
		n.ReadBufferSize = 16 << 10
	}
	if n.WriteBufferSize <= 0 {
		n.WriteBufferSize = 4 << 10
	}
	if n.ReadLimit <= 0 {
		n.ReadLimit = DefaultReadLimit
	}
	if n.EventBuffer <= 0 {
		n.EventBuffer = DefaultEventBuffer
	}
	if n.SendBuffer <= 0 {
		n.SendBuffer = DefaultSendBuffer
	}
	if n.TapBuffer <= 0 {
		n.TapBuffer = DefaultTapBuffer
	}
	if n.EventBufferBytes <= 0 {
		n.EventBufferBytes = DefaultEventBufferBytes
	}
	if n.TapBufferBytes <= 0 {
		n.TapBufferBytes = DefaultTapBufferBytes
	}
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	if n.Now == nil {
		n.Now = time.Now
	}
	return n, nil
}

// EndpointURL returns the WebSocket URL a socket connects to for rawURL:
//
//   - a project URL (http or https, e.g. https://<ref>.supabase.co or
//     http://127.0.0.1:54321, optionally ending in /realtime/v1) gets
//     /realtime/v1/websocket;
//   - a ws or wss URL ending in /websocket is kept; one with no path gets
//     /realtime/v1/websocket; any other path gets /websocket appended, as
//     phoenix does with its endpoint.
//
// The query is the URL's own parameters (apikey and vsn removed), then
// apikey, log_level when set, and vsn last, as realtime-js sends them.
func EndpointURL(rawURL, apiKey string, vsn protocol.Version, logLevel string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%w: URL: %w", ErrInvalidConfig, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%w: URL %q has no host", ErrInvalidConfig, rawURL)
	}
	path := strings.TrimRight(u.Path, "/")
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		u.Scheme = "ws" + strings.ToLower(u.Scheme)[4:]
		switch {
		case strings.HasSuffix(path, "/websocket"):
		case strings.HasSuffix(path, "/realtime/v1"):
			path += "/websocket"
		default:
			path += "/realtime/v1/websocket"
		}
	case "ws", "wss":
		u.Scheme = strings.ToLower(u.Scheme)
		switch {
		case strings.HasSuffix(path, "/websocket"):
		case path == "":
			path = "/realtime/v1/websocket"
		default:
			path += "/websocket"
		}
	default:
		return "", fmt.Errorf("%w: URL scheme %q (want http, https, ws or wss)", ErrInvalidConfig, u.Scheme)
	}
	u.Path, u.RawPath = path, ""
	var q strings.Builder
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if kv == "" || k == "apikey" || k == "vsn" || k == "log_level" {
			continue
		}
		q.WriteString(kv)
		q.WriteByte('&')
	}
	q.WriteString("apikey=")
	q.WriteString(url.QueryEscape(apiKey))
	if logLevel != "" {
		q.WriteString("&log_level=")
		q.WriteString(url.QueryEscape(logLevel))
	}
	q.WriteString("&vsn=")
	q.WriteString(vsn.String())
	u.RawQuery = q.String()
	u.Fragment = ""
	return u.String(), nil
}

// maskURL masks an endpoint URL for logs and errors: its password, the
// apikey and every other secret-named query parameter, and any key in it
// (see rtm/realtime/mask).
func maskURL(endpoint string) string { return mask.URL(endpoint) }
