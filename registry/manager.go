package registry

import (
	"context"
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
	// Server, when set, offers the server-side faults (see
	// [ServerControl]); Embedded tells the UI the target is the embedded server.
	Server   ServerControl
	Embedded bool
	// Apps, when set, offers the app faults (Fault.App): the control of
	// rtm's proxy, through which an app's Realtime traffic is relayed.
	Apps AppControl
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
