package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"rtm/realtime"
	"rtm/realtime/faultnet"
	"rtm/realtime/protocol"
	"rtm/registry/clock"
)

// Defaults of [Options].
const (
	// DefaultMaxChannels is the per-connection channel cap, the server's
	// max_channels_per_client.
	DefaultMaxChannels = 100
	// DefaultOfflineQueue is the number of broadcasts a channel keeps
	// while it is down, and DefaultOfflineQueueBytes their bytes (event
	// names and payloads).
	DefaultOfflineQueue      = 100
	DefaultOfflineQueueBytes = 4 << 20
	// DefaultMessageRing is the number of messages kept per channel, and
	// DefaultMessageBytes their bytes (event names and payloads).
	DefaultMessageRing  = 200
	DefaultMessageBytes = 2 << 20
	// DefaultFrameRing is the number of raw frames kept per channel.
	DefaultFrameRing = 200
	// DefaultFrameBytes bounds the bytes of the frames kept per channel.
	DefaultFrameBytes = 64 << 10
	// DefaultHistory is the number of events kept for Export, and
	// DefaultHistoryBytes their bytes.
	DefaultHistory      = 5000
	DefaultHistoryBytes = 8 << 20
	// DefaultRTTHistory is the number of RTT samples kept.
	DefaultRTTHistory = 60
	// rateHistory is the number of per-second rate samples kept.
	rateHistory = 60
)

// Options configures a [Manager]. Zero fields get the documented
// defaults; URL and APIKey are required.
type Options struct {
	// URL is the project URL (https://<ref>.supabase.co,
	// http://127.0.0.1:54321) or a ws(s) URL of the Realtime endpoint.
	URL string
	// APIKey is the project's anon (or other) key.
	APIKey string
	// Token is the user's JWT sent with every join; empty means the API
	// key. Change it with [Manager.SetToken].
	Token string
	// Tenant is the tenant of names built by JoinPresence,
	// SubscribeEntity and JoinBroadcast ("" for none).
	Tenant string
	// Serializer is "2.0.0" (default) or "1.0.0".
	Serializer string
	// HeartbeatInterval and PushTimeout are the client's (defaults 25 s
	// and 10 s).
	HeartbeatInterval time.Duration
	PushTimeout       time.Duration
	// ReconnectAfter is the socket's reconnect ladder (default 1, 2, 5,
	// 10 s, then 10 s, jittered). The socket reconnects forever.
	ReconnectAfter func(tries int) time.Duration

	// Policy is the channel retry policy (default [DefaultPolicy]: fixed
	// 3 s, at most 5 attempts).
	Policy Policy
	// MaxChannels caps the channels of the connection (default 100, the
	// server's limit; negative: no cap).
	MaxChannels int
	// EntityCaps caps the channels per entity type.
	EntityCaps map[string]int
	// Entities maps entity types to tables and key columns for
	// SubscribeEntity (default: table = entity type in schema public,
	// key "id").
	Entities map[string]EntityMapping
	// OfflineQueue is the number of broadcasts kept per channel while it
	// is down (default 100; negative: none, such broadcasts fail), and
	// OfflineQueueBytes bounds their bytes, event names and payloads
	// (default 4 MiB): a broadcast beyond either is refused with
	// ErrQueueFull.
	OfflineQueue      int
	OfflineQueueBytes int
	// BroadcastRate limits outgoing broadcasts over all channels, per
	// second, with BroadcastBurst (default 0: no limit).
	BroadcastRate  float64
	BroadcastBurst int

	// Clock drives retry ladders, debouncers, the limiter and the stats
	// (default the real clock). Rand returns numbers in [0, 1) for
	// jitter (default math/rand/v2).
	Clock clock.Clock
	Rand  func() float64

	// LogHandler receives the manager's and the client's logs (default: a
	// new handler with LogRing records of at most LogBytes in all,
	// writing LogFile if set, at LogLevel; see LogOptions for the
	// defaults).
	LogHandler *LogHandler
	LogRing    int
	LogBytes   int
	LogFile    io.Writer
	LogLevel   slog.Leveler

	// Dial makes the TCP connections (default a net.Dialer); the fault
	// transport wraps it unless NoFaults is set.
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	NoFaults bool
	// Server, when set, offers the server-side faults (see package
	// serverctl); Embedded tells the UI the target is the embedded server.
	Server   ServerControl
	Embedded bool
	// MintToken signs claims into a JWT, when the JWT secret is known
	// (embedded server, rtm serve, --jwt-secret). It enables
	// Faults().ExpireToken.
	MintToken func(claims map[string]any) (string, error)

	// MessageRing and FrameRing are the messages and raw frames kept per
	// channel (defaults 200; negative: none). MessageBytes bounds the
	// bytes of the kept messages per channel, event names and payloads
	// (default 2 MiB); a message larger than that is kept truncated to
	// its first PreviewBytes (MessageEvent.Truncated). FrameBytes bounds
	// the bytes of the kept frames per channel (default 64 KiB); a frame
	// larger than that is kept cut to it (FrameEvent.Size says how big
	// it was). What the rings keep are copies. NoFrames turns the frame
	// tap off entirely.
	MessageRing  int
	MessageBytes int
	FrameRing    int
	FrameBytes   int
	NoFrames     bool
	// PresenceLimits bound each channel's presence state in the client
	// (default: realtime's, 100,000 users, 1024 metas per user, 64 MiB);
	// the presence cache follows it and holds at most MaxMembers users.
	// What does not fit is counted and reported
	// (ChannelInfo.PresenceTruncated, PresenceEvent.Truncated).
	PresenceLimits realtime.PresenceLimits
	// History is the number of events kept for Export (default 5000),
	// and HistoryBytes their bytes (default 8 MiB); an event larger than
	// that is not kept.
	History      int
	HistoryBytes int
	// StatsInterval is the period of StatsEvents and rate samples
	// (default 1 s).
	StatsInterval time.Duration
}

// Manager is the channel manager. Its methods are safe for concurrent
// use. See the package documentation for its guarantees.
type Manager struct {
	opts    Options
	clk     clock.Clock
	rnd     func() float64
	logs    *LogHandler
	log     *slog.Logger
	broker  *broker
	sock    *realtime.Socket
	tr      *faultnet.Transport
	limiter *Limiter
	mask    *secretPattern
	vsn     protocol.Version

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	msgsIn, msgsOut atomic.Uint64

	mu        sync.Mutex
	closed    bool
	connected bool
	entries   map[Name]*entry
	runMsgs   []MessageEvent // onBroadcasts' buffer
	capture   atomic.Bool    // the frame rings are on
	tapMu     sync.Mutex
	tapOn     bool // the client's tap is installed

	// fmu guards topics, lastFrame and the entries' frame rings.
	fmu           sync.Mutex
	topics        map[string]*entry // by wire topic, for the frame tap
	lastFrame     *entry
	policy        Policy
	policySpec    string // policy.Info().Spec, cached
	socket        SocketInfo
	rtts          []time.Duration
	token         string
	tokenInfo     TokenInfo
	started       time.Time
	connTotal     time.Duration
	sockAttempt   int
	reconnects    int
	everConnected bool
	socketTries   uint64
	chanTries     uint64
	errors        uint64
	errSamples    []uint64 // errors per stats interval, oldest first
	lastErrors    uint64
	inHist        []float64
	outHist       []float64
	lastIn        uint64
	lastOut       uint64
	lastTick      time.Time
	queueDrops    uint64
}

// New returns a manager for the target of opts. It does not connect; call
// [Manager.Connect] (joins made before wait for the connection).
func New(opts Options) (*Manager, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("registry: Options.URL is required")
	}
	if opts.APIKey == "" {
		return nil, fmt.Errorf("registry: Options.APIKey is required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Policy == nil {
		opts.Policy = DefaultPolicy()
	}
	if opts.MaxChannels == 0 {
		opts.MaxChannels = DefaultMaxChannels
	}
	if opts.OfflineQueue == 0 {
		opts.OfflineQueue = DefaultOfflineQueue
	}
	if opts.OfflineQueueBytes <= 0 {
		opts.OfflineQueueBytes = DefaultOfflineQueueBytes
	}
	if opts.MessageRing == 0 {
		opts.MessageRing = DefaultMessageRing
	}
	if opts.MessageBytes <= 0 {
		opts.MessageBytes = DefaultMessageBytes
	}
	if opts.FrameRing == 0 {
		opts.FrameRing = DefaultFrameRing
	}
	if opts.FrameBytes <= 0 {
		opts.FrameBytes = DefaultFrameBytes
	}
	if opts.History == 0 {
		opts.History = DefaultHistory
	}
	if opts.HistoryBytes <= 0 {
		opts.HistoryBytes = DefaultHistoryBytes
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Second
	}
	for et, n := range opts.EntityCaps {
		if n < 0 || et == "" || strings.ContainsRune(et, ':') {
			return nil, fmt.Errorf("registry: bad entity cap %q=%d", et, n)
		}
	}
	vsn := protocol.V2
	switch opts.Serializer {
	case "", "2.0.0":
	case "1.0.0":
		vsn = protocol.V1
	default:
		return nil, fmt.Errorf("registry: serializer %q (want 1.0.0 or 2.0.0)", opts.Serializer)
	}
	if opts.Tenant != "" {
		if err := checkPart(opts.Tenant, "tenant", opts.Tenant); err != nil {
			return nil, err
		}
	}
	m := &Manager{
		opts:       opts,
		clk:        opts.Clock,
		rnd:        opts.Rand,
		entries:    map[Name]*entry{},
		topics:     map[string]*entry{},
		policy:     opts.Policy,
		policySpec: opts.Policy.Info().Spec,
		mask:       newSecretPattern(),
		vsn:        vsn,
		token:      opts.Token,
	}
	m.started = m.clk.Now()
	m.logs = opts.LogHandler
	if m.logs == nil {
		m.logs = NewLogHandler(LogOptions{Ring: opts.LogRing, Bytes: opts.LogBytes, File: opts.LogFile, Level: opts.LogLevel, Now: m.clk.Now})
	}
	m.broker = newBroker(m.clk.Now, opts.History, opts.HistoryBytes)
	m.logs.SetSink(func(r LogRecord) { m.broker.publish(LogEvent{Record: r}) })
	m.log = slog.New(m.logs).With("component", "registry")
	m.limiter = NewLimiter(opts.BroadcastRate, opts.BroadcastBurst, m.clk)
	m.socket = SocketInfo{Status: SocketIdle}
	m.tokenInfo = tokenInfoOf(opts.Token)

	dial := opts.Dial
	if !opts.NoFaults {
		clk := m.clk
		m.tr = faultnet.New(faultnet.Options{Dial: opts.Dial, Now: clk.Now,
			AfterFunc: func(d time.Duration, f func()) func() bool { return clk.AfterFunc(d, f).Stop }})
		dial = m.tr.DialContext
	}
	co := &realtime.Options{
		APIKey:            opts.APIKey,
		AccessToken:       opts.Token,
		Vsn:               vsn,
		HeartbeatInterval: opts.HeartbeatInterval,
		// A monitor wants the round-trip time at once, not 25 s after
		// every (re)connect.
		HeartbeatOnOpen: true,
		PushTimeout:     opts.PushTimeout,
		ReconnectAfter:  opts.ReconnectAfter,
		// The registry's policy decides every channel rejoin after a
		// failure; the client still rejoins when the socket reopens.
		RejoinAfter: func(int) time.Duration { return -1 },
		Dial:        dial,
		Logger:      slog.New(m.logs).With("component", "client"),
		Rand:        opts.Rand,
		OnStatus:    m.onSocketStatus,
		OnHeartbeat: m.onHeartbeat,
	}
	m.capture.Store(!opts.NoFrames && opts.FrameRing > 0)
	if m.capture.Load() {
		co.Tap = m.onFrame
		m.tapOn = true
	}
	sock, err := realtime.NewSocket(opts.URL, co)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	m.sock = sock
	if !opts.NoFrames {
		m.broker.onFrames = m.updateTap
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.statsLoop()
	return m, nil
}

// Connect starts the connection and waits until the socket is open or
// ctx is done. When ctx is done first, the connection attempt under way
// is abandoned at whatever step it is in (DNS and TCP, TLS, the upgrade;
// see realtime.Socket.Connect), so the first attempt ends no later than
// ctx's deadline, and the error wraps ctx's error and names that step.
// The socket keeps reconnecting on its own ladder after Connect returns,
// whatever the outcome, until Close (which also ends an attempt under
// way at once); those later attempts are bounded by the client's
// handshake timeout (10 s).
func (m *Manager) Connect(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.mu.Unlock()
	m.log.Info("Connecting", "url", m.sock.Endpoint())
	if err := m.sock.Connect(ctx); err != nil {
		return fmt.Errorf("registry: connect: %w", err)
	}
	return nil
}

// Close leaves nothing running: it stops every retry, closes the socket
// (without leaving channels one by one; the server drops them with the
// connection) and ends every subscription. Call CleanupAll first for an
// orderly logout. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.closed = true
	for _, e := range m.entries {
		e.retry.stopTimer()
		e.gen++
		for _, d := range e.debounced {
			d.Stop()
		}
	}
	m.mu.Unlock()
	m.cancel()
	err := m.sock.Close()
	m.wg.Wait()
	m.mu.Lock()
	m.setSocketLocked(SocketClosed, "manager closed")
	m.mu.Unlock()
	m.log.Info("Closed")
	m.logs.SetSink(nil)
	m.broker.closeAll()
	return err
}

// Subscribe returns a subscription to the manager's events; it ends when
// ctx is done, when it is closed, or when the manager closes.
//
// Unless opts.NoInitialState, the subscription starts with the current
// state as state events (socket, token, stats, then each channel), taken
// atomically with the registration: every later change arrives after
// them, so a consumer needs no separate Snapshot.
func (m *Manager) Subscribe(ctx context.Context, opts SubscribeOptions) *Subscription {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.broker.subscribe(ctx, opts)
	if m.closed {
		s.Close()
		return s
	}
	if !opts.NoInitialState {
		now := m.clk.Now()
		seed := []Event{
			SocketEvent{Time: now, Status: m.socket.Status, Previous: m.socket.Status, Reason: m.socket.Reason,
				RTT: m.socket.RTT, Attempt: m.socket.Attempt, NextAttemptAt: m.socket.NextAttemptAt},
			TokenEvent{Time: now, Action: "set", Token: m.tokenInfo},
			StatsEvent{Time: now, Stats: m.statsLocked(), Metrics: m.metricsLocked(now)},
		}
		names := make([]Name, 0, len(m.entries))
		for n := range m.entries {
			names = append(names, n)
		}
		slices.SortFunc(names, Name.Compare)
		for _, n := range names {
			e := m.entries[n]
			seed = append(seed, ChannelStateEvent{Time: now, Channel: n, Status: e.status, Previous: e.status, Reason: e.reason, Info: m.infoLocked(e)})
		}
		for _, ev := range seed {
			if s.wants(ev) {
				s.push(ev)
			}
		}
	}
	return s
}

// Logs returns up to the last n log records (all kept when n <= 0),
// oldest first.
func (m *Manager) Logs(n int) []LogRecord { return m.logs.Records(n) }

// LogHandler returns the handler of the manager's logs, to log into the
// same ring and file (slog.New(m.LogHandler())).
func (m *Manager) LogHandler() *LogHandler { return m.logs }

// EventsDropped returns the events dropped for slow subscribers, over all
// subscribers.
func (m *Manager) EventsDropped() uint64 { return m.broker.dropped.Load() }

// Export writes the kept events as NDJSON, one event per line, in time
// order: the last History events (log records, states, presence,
// retries, errors...) merged with the messages kept by every channel.
// Secrets are masked.
func (m *Manager) Export(w io.Writer) error {
	evs := m.broker.hist.all()
	m.mu.Lock()
	for _, e := range m.entries {
		for _, me := range e.msgs.messages(e.name, 0) {
			evs = append(evs, me)
		}
	}
	m.mu.Unlock()
	slices.SortStableFunc(evs, func(a, b Event) int { return a.EventTime().Compare(b.EventTime()) })
	for _, ev := range evs {
		b, err := MarshalMasked(ev)
		if err == nil {
			_, err = w.Write(append(b, '\n'))
		}
		if err != nil {
			return fmt.Errorf("registry: export: %w", err)
		}
	}
	return nil
}

// Policy returns the retry policy in force.
func (m *Manager) Policy() Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy
}

// SetPolicy changes the retry policy. Series under way continue with the
// new policy from their next attempt (a channel already past the new
// maximum stops at its next failure).
func (m *Manager) SetPolicy(p Policy) {
	if p == nil {
		p = DefaultPolicy()
	}
	spec := p.Info().Spec
	m.mu.Lock()
	m.policy = p
	m.policySpec = spec
	for _, e := range m.entries {
		m.publishStateLocked(e, "policy "+spec)
	}
	m.mu.Unlock()
	m.log.Info("Retry policy set", KeyPolicy, spec)
}

// SetToken sets the user token: it is pushed to every joined channel
// (access_token) and used by every later join. Empty reverts to the API
// key.
func (m *Manager) SetToken(token string) {
	m.mu.Lock()
	m.token = token
	m.tokenInfo = tokenInfoOf(token)
	info := m.tokenInfo
	for _, e := range m.entries {
		e.join.tokenExpiry = info.Expiry
	}
	ev := TokenEvent{Time: m.clk.Now(), Action: "set", Token: info}
	if token == "" {
		ev.Action = "cleared"
	}
	m.broker.publish(ev)
	m.mu.Unlock()
	m.sock.SetAuth(token)
	m.log.Info("Token set", "token", token, "sub", info.Subject, "exp", info.Expiry)
}

// Token returns what is known of the token in use (never the token).
func (m *Manager) Token() TokenInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokenInfo
}

// tokenInfoOf reads the claims of a JWT without verifying it.
func tokenInfoOf(tok string) TokenInfo {
	if tok == "" {
		return TokenInfo{}
	}
	info := TokenInfo{Present: true, Masked: MaskSecret(tok)}
	claims, err := jwtClaims(tok)
	if err != nil {
		return info
	}
	if s, ok := claims["sub"].(string); ok {
		info.Subject = s
	}
	if s, ok := claims["role"].(string); ok {
		info.Role = s
	}
	if f, ok := claims["exp"].(float64); ok {
		info.Expiry = time.Unix(int64(f), 0)
	}
	return info
}

func jwtClaims(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// onSocketStatus follows the client's socket status.
func (m *Manager) onSocketStatus(c realtime.StatusChange) {
	now := m.clk.Now()
	reason := ""
	if c.Err != nil {
		reason = m.mask.mask(c.Err.Error())
	}
	m.mu.Lock()
	if m.closed && c.Status != realtime.StatusClosed {
		m.mu.Unlock()
		return
	}
	var retry *RetryEvent
	switch c.Status {
	case realtime.StatusConnecting:
		m.socketTries++
		m.sockAttempt = c.Attempt
		m.socket.NextAttemptAt = time.Time{}
		m.setSocketLocked(SocketConnecting, "")
		if c.Attempt > 0 {
			// Attempt 0 is the first connection; c.Attempt numbers the
			// reconnects, as the client's log does.
			retry = &RetryEvent{Scope: ScopeSocket, Attempt: c.Attempt, Outcome: RetryStarted, Reason: m.socket.LastError}
		}
	case realtime.StatusOpen:
		if m.everConnected {
			m.reconnects++
		}
		if m.sockAttempt > 0 {
			retry = &RetryEvent{Scope: ScopeSocket, Attempt: m.sockAttempt, Outcome: RetrySucceeded}
		}
		m.everConnected = true
		m.sockAttempt = 0
		m.connected = true
		m.socket.ConnectedAt = now
		m.socket.Attempt = 0
		m.socket.NextAttemptAt = time.Time{}
		m.socket.LastError = ""
		m.socket.Reconnects = m.reconnects
		m.setSocketLocked(SocketConnected, "")
		m.onSocketOpenLocked()
	case realtime.StatusReconnecting:
		if m.connected {
			m.connTotal += now.Sub(m.socket.ConnectedAt)
			m.errors++
		}
		if m.socket.Status == SocketConnecting && m.sockAttempt > 0 {
			// Reconnect attempt sockAttempt failed.
			m.broker.publish(RetryEvent{Time: now, Scope: ScopeSocket, Attempt: m.sockAttempt, Outcome: RetryFailed, Err: reason})
		}
		m.connected = false
		m.socket.ConnectedAt = time.Time{}
		m.socket.LastError = reason
		m.socket.Attempt = c.Attempt
		m.socket.NextAttemptAt = now.Add(c.Delay)
		m.setSocketLocked(SocketDisconnected, reason)
		m.onSocketDownLocked(reason)
		retry = &RetryEvent{Scope: ScopeSocket, Attempt: c.Attempt, Delay: c.Delay, NextAt: now.Add(c.Delay), Outcome: RetryScheduled, Reason: reason}
	case realtime.StatusClosed:
		if m.connected {
			m.connTotal += now.Sub(m.socket.ConnectedAt)
		}
		m.connected = false
		m.socket.ConnectedAt = time.Time{}
		m.setSocketLocked(SocketClosed, "closed")
	}
	if retry != nil {
		retry.Time = now
		m.broker.publish(*retry)
	}
	m.mu.Unlock()
	switch c.Status {
	case realtime.StatusReconnecting:
		m.log.Warn("Scheduling reconnect", "scope", "socket", KeyAttempt, c.Attempt, KeyDelay, c.Delay, KeyErr, reason)
	case realtime.StatusOpen:
		m.log.Info("Connected", "url", m.sock.Endpoint())
	}
}

// setSocketLocked changes the socket status and publishes it.
func (m *Manager) setSocketLocked(st SocketStatus, reason string) {
	prev := m.socket.Status
	m.socket.Status = st
	m.socket.Reason = reason
	m.broker.publish(SocketEvent{Time: m.clk.Now(), Status: st, Previous: prev, Reason: reason,
		RTT: m.socket.RTT, Attempt: m.socket.Attempt, NextAttemptAt: m.socket.NextAttemptAt})
}

// onHeartbeat records RTTs.
func (m *Manager) onHeartbeat(h realtime.Heartbeat) {
	switch h.Status {
	case realtime.HeartbeatOK, realtime.HeartbeatError:
		m.mu.Lock()
		m.socket.RTT = h.RTT
		m.rtts = append(m.rtts, h.RTT)
		if len(m.rtts) > DefaultRTTHistory {
			m.rtts = append(m.rtts[:0], m.rtts[len(m.rtts)-DefaultRTTHistory:]...)
		}
		m.broker.publish(SocketEvent{Time: m.clk.Now(), Status: m.socket.Status, Previous: m.socket.Status, RTT: h.RTT})
		m.mu.Unlock()
	case realtime.HeartbeatTimeout:
		m.log.Warn("Heartbeat timeout", KeyReason, "no reply within one interval; reconnecting")
	}
}

// SetFrameCapture turns the per-channel frame rings on or off at run
// time (they start on unless Options.NoFrames or a negative FrameRing).
// The client's frame tap runs only while the rings are on or a
// subscriber asked for frames: it costs CPU on every frame. It has no
// effect with Options.NoFrames.
func (m *Manager) SetFrameCapture(on bool) {
	if m.opts.NoFrames || m.opts.FrameRing < 0 {
		return
	}
	m.capture.Store(on)
	m.updateTap()
}

// updateTap installs or removes the client's tap as needed.
func (m *Manager) updateTap() {
	want := m.capture.Load() || m.broker.wantFrames()
	m.tapMu.Lock()
	defer m.tapMu.Unlock()
	if want == m.tapOn {
		return
	}
	m.tapOn = want
	if want {
		m.sock.SetTap(m.onFrame)
	} else {
		m.sock.SetTap(nil)
	}
}

// onFrame keeps raw frames per channel and publishes them to the
// subscribers that asked for frames. Secrets are masked before anything
// leaves the manager.
func (m *Manager) onFrame(f realtime.Frame) {
	want := m.broker.wantFrames()
	keep := m.capture.Load()
	if !keep && !want {
		return
	}
	topic := f.Message.Topic
	// Frames have their own lock: the tap must not contend with the
	// channels' events for the manager's.
	m.fmu.Lock()
	e := m.lastFrame
	if e == nil || e.topic != topic {
		e = m.topics[topic]
		m.lastFrame = e
	}
	// The frame's own strings are short on any sane server; a hostile
	// one's are cut, as the frame's bytes are (the rings copy them).
	raw := rawFrame{at: f.Time, dir: Direction(f.Dir), event: clipText(f.Message.Event, maxFrameField),
		joinRef: clipText(f.Message.JoinRef, maxFrameField), ref: clipText(f.Message.Ref, maxFrameField),
		binary: f.Binary, wireSize: len(f.Data)}
	var name Name
	if e != nil {
		if keep {
			e.frames.add(raw, "", f.Data)
		}
		name = e.name
	}
	m.fmu.Unlock()
	if !want {
		return
	}
	if name.IsZero() {
		name, _ = ParseName(clipText(topic, maxFrameField))
	}
	raw.data = f.Data
	// The event (a masked copy of the frame) is made only if a
	// subscriber has room for it.
	m.broker.publishFrame(name, len(f.Data), func() FrameEvent { return m.frameEvent(name, clipText(topic, maxFrameField), raw) })
}

// maxFrameField bounds the topic, event and refs kept of a frame.
const maxFrameField = 512

// frameEvent masks a raw frame into a FrameEvent.
func (m *Manager) frameEvent(name Name, topic string, r rawFrame) FrameEvent {
	fe := FrameEvent{Time: r.at, Direction: r.dir, Channel: name, Topic: topic, Event: r.event,
		JoinRef: r.joinRef, Ref: r.ref, Size: r.wireSize}
	if r.binary {
		fe.Data = append([]byte(nil), MaskBinaryFrame(r.data)...)
	} else {
		fe.Text = m.mask.mask(string(r.data))
	}
	return fe
}

// statsLoop samples rates and publishes StatsEvents every interval.
func (m *Manager) statsLoop() {
	defer m.wg.Done()
	t := m.clk.NewTicker(m.opts.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C():
			m.sample()
		}
	}
}

func (m *Manager) sample() {
	in, out := m.msgsIn.Load(), m.msgsOut.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	secs := m.opts.StatsInterval.Seconds()
	if !m.lastTick.IsZero() {
		secs = now.Sub(m.lastTick).Seconds()
	}
	m.lastTick = now
	if secs <= 0 {
		secs = m.opts.StatsInterval.Seconds()
	}
	m.inHist = pushBounded(m.inHist, float64(in-m.lastIn)/secs, rateHistory)
	m.outHist = pushBounded(m.outHist, float64(out-m.lastOut)/secs, rateHistory)
	m.lastIn, m.lastOut = in, out
	m.errSamples = append(m.errSamples, m.errors-m.lastErrors)
	m.lastErrors = m.errors
	if n := int(time.Minute / m.opts.StatsInterval); len(m.errSamples) > n && n > 0 {
		m.errSamples = append(m.errSamples[:0], m.errSamples[len(m.errSamples)-n:]...)
	}
	m.broker.publish(StatsEvent{Time: now, Stats: m.statsLocked(), Metrics: m.metricsLocked(now)})
	m.reconcileDueLocked(now)
}

func pushBounded(h []float64, v float64, n int) []float64 {
	h = append(h, v)
	if len(h) > n {
		h = append(h[:0], h[len(h)-n:]...)
	}
	return h
}

// Stats returns the channel counts.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statsLocked()
}

func (m *Manager) statsLocked() Stats {
	s := Stats{Total: len(m.entries), Limit: m.opts.MaxChannels, ByKind: map[Kind]int{}, ByStatus: map[Status]int{}, ByEntityType: map[string]int{}}
	if s.Limit < 0 {
		s.Limit = 0
	}
	for n, e := range m.entries {
		s.ByKind[n.Kind]++
		s.ByStatus[e.status]++
		s.ByEntityType[n.EntityType]++
	}
	return s
}

// Metrics returns the running measurements.
func (m *Manager) Metrics() Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.metricsLocked(m.clk.Now())
}

func (m *Manager) metricsLocked(now time.Time) Metrics {
	mt := Metrics{
		StartedAt:       m.started,
		ConnectedTotal:  m.connTotal,
		Reconnects:      m.reconnects,
		SocketAttempts:  m.socketTries,
		ChannelAttempts: m.chanTries,
		Errors:          m.errors,
		MessagesIn:      m.msgsIn.Load(),
		MessagesOut:     m.msgsOut.Load(),
		InHistory:       slices.Clone(m.inHist),
		OutHistory:      slices.Clone(m.outHist),
		QueueDropped:    m.queueDrops,
		EventsDropped:   m.broker.dropped.Load(),
		ClientDropped:   m.sock.Stats().Drops,
	}
	if m.connected {
		mt.ConnectedFor = now.Sub(m.socket.ConnectedAt)
		mt.ConnectedTotal += mt.ConnectedFor
	}
	if n := len(m.inHist); n > 0 {
		mt.InRate, mt.OutRate = m.inHist[n-1], m.outHist[n-1]
	}
	var errs uint64
	for _, v := range m.errSamples {
		errs += v
	}
	if n := len(m.errSamples); n > 0 {
		window := time.Duration(n) * m.opts.StatsInterval
		mt.ErrorRate = float64(errs) / window.Minutes()
	}
	return mt
}

// Snapshot returns a consistent copy of everything the manager knows.
func (m *Manager) Snapshot() State {
	var fs faultnet.State
	if m.tr != nil {
		fs = m.tr.State()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	st := State{
		Time: now,
		Target: TargetInfo{
			URL: m.sock.Endpoint(), Embedded: m.opts.Embedded, ServerFaults: m.opts.Server != nil,
			Serializer: m.vsn.String(), Tenant: m.opts.Tenant,
		},
		Socket:   m.socket,
		Token:    m.tokenInfo,
		Channels: make([]ChannelInfo, 0, len(m.entries)),
		Presence: map[Name][]PresenceUser{},
		Stats:    m.statsLocked(),
		Metrics:  m.metricsLocked(now),
		Policy:   m.policyInfoLocked(now),
		Caps:     Caps{MaxChannels: max(m.opts.MaxChannels, 0), PerEntityType: copyMap(m.opts.EntityCaps)},
		Faults: FaultState{Client: m.tr != nil, Server: m.opts.Server != nil, FrozenUntil: fs.FrozenUntil,
			Latency: fs.Latency, FailConnects: fs.FailConnects, Drops: fs.Drops},
	}
	st.Socket.RTTHistory = slices.Clone(m.rtts)
	for n, e := range m.entries {
		st.Channels = append(st.Channels, m.infoLocked(e))
		if e.presence.len() > 0 || n.Kind == KindPresence {
			st.Presence[n] = e.presence.list(e.trackedKey())
		}
	}
	slices.SortFunc(st.Channels, func(a, b ChannelInfo) int { return a.Name.Compare(b.Name) })
	return st
}

func (m *Manager) policyInfoLocked(now time.Time) PolicyInfo {
	info := m.policy.Info()
	if g, ok := m.policy.(Gate); ok {
		b := g.State(now)
		info.Breaker = &b
	}
	return info
}

func copyMap[K comparable, V any](in map[K]V) map[K]V {
	if in == nil {
		return nil
	}
	out := make(map[K]V, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// Info returns the info of the named channel.
func (m *Manager) Info(name Name) (ChannelInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return ChannelInfo{}, fmt.Errorf("info %s: %w", name, ErrNotFound)
	}
	return m.infoLocked(e), nil
}

// Channels returns the infos of every channel, sorted by name.
func (m *Manager) Channels() []ChannelInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ChannelInfo, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, m.infoLocked(e))
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int { return a.Name.Compare(b.Name) })
	return out
}

// Presence returns the users present on the named channel, sorted by
// user id.
func (m *Manager) Presence(name Name) ([]PresenceUser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return nil, fmt.Errorf("presence %s: %w", name, ErrNotFound)
	}
	return e.presence.list(e.trackedKey()), nil
}

// Messages returns up to the last n messages of the named channel (all
// kept when n <= 0), oldest first.
func (m *Manager) Messages(name Name, n int) ([]MessageEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return nil, fmt.Errorf("messages %s: %w", name, ErrNotFound)
	}
	return e.msgs.messages(name, n), nil
}

// Frames returns up to the last n raw frames of the named channel (all
// kept when n <= 0), oldest first, secrets masked.
func (m *Manager) Frames(name Name, n int) ([]FrameEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return nil, fmt.Errorf("frames %s: %w", name, ErrNotFound)
	}
	m.fmu.Lock()
	raw := frames(&e.frames, n)
	m.fmu.Unlock()
	out := make([]FrameEvent, len(raw))
	for i, r := range raw {
		out[i] = m.frameEvent(e.name, e.topic, r)
	}
	return out, nil
}
