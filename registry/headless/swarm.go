package headless

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"rtm/registry"
)

// SwarmOptions configures [Swarm].
type SwarmOptions struct {
	// Clients is the number of simulated clients (at least 1).
	Clients int
	// Channel is the channel every client joins.
	Channel registry.Name
	// Presence makes every client track itself (its user id is the
	// presence key); the channel must be a presence channel.
	Presence bool
	// Rate is the broadcasts each client sends per second during the
	// load phase (0: none).
	Rate float64
	// Duration is the length of the load phase (default 10 s).
	Duration time.Duration
	// JoinTimeout bounds the connect and join phase, and the wait for
	// presence to converge (default 30 s). A client not connected by then
	// gives up its attempt under way, whatever step it is stuck in, and
	// counts "connect: no connection within <JoinTimeout>: ..." in the
	// report's errors.
	JoinTimeout time.Duration
	// Concurrency bounds the clients connecting at once (default 16).
	Concurrency int
	// UserPrefix names the clients' users: prefix + number (default
	// "swarm-"). Each gets its own token when the JWT secret is known.
	UserPrefix string
	// Progress, when set, is called about four times a second.
	Progress func(SwarmProgress)
	// Event is the broadcast event of the load (default "swarm").
	Event string
}

// SwarmProgress is a live view of a swarm.
type SwarmProgress struct {
	Phase                      string // "connecting", "converging", "load", "done"
	Clients, Connected, Joined int
	Present                    int // users the slowest client sees (presence)
	Sent, Received             uint64
	LimitErrors, Errors        int
	Elapsed                    time.Duration
	ReceiveRate                float64 // per second, over the last report
}

// Dist summarizes durations in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p*float64(len(s)-1) + 0.5)
		return msf(s[i])
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Dist{N: len(s), Min: msf(s[0]), P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: msf(s[len(s)-1]),
		Mean: msf(sum / time.Duration(len(s)))}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// SwarmReport is the JSON summary of a swarm.
type SwarmReport struct {
	Channel   string `json:"channel"`
	Clients   int    `json:"clients"`
	Connected int    `json:"connected"`
	Joined    int    `json:"joined"`
	// OwnTokens is true when every client had its own minted token.
	OwnTokens bool `json:"own_tokens"`
	// ConnectLatency is from the start of a client's connection to the
	// open socket; JoinLatency from its join to the server's ok.
	ConnectLatency Dist `json:"connect_latency"`
	JoinLatency    Dist `json:"join_latency"`
	// PresenceConverged is true when every joined client saw every
	// joined client present; PresenceConvergenceMS is how long that took
	// after the last join.
	Presence              bool     `json:"presence"`
	PresenceConverged     bool     `json:"presence_converged"`
	PresenceConvergenceMS *float64 `json:"presence_convergence_ms,omitempty"`
	// Sent counts broadcasts sent in the load phase, Received the
	// deliveries of them to the other clients, Expected what a lossless
	// fan-out delivers (Sent × (Joined − 1)); FanoutRate is Received per
	// second and SendRate Sent per second over the load phase.
	LoadMS       float64 `json:"load_ms"`
	Sent         uint64  `json:"sent"`
	SendFailures uint64  `json:"send_failures"`
	Received     uint64  `json:"received"`
	Expected     uint64  `json:"expected"`
	Delivery     float64 `json:"delivery_ratio"`
	SendRate     float64 `json:"send_rate"`
	FanoutRate   float64 `json:"fanout_rate"`
	// LimitErrors counts the limit errors met (too many channels, joins,
	// connections, messages, presence events), by reason; Errors the
	// other errors.
	LimitErrors map[string]int `json:"limit_errors"`
	Errors      map[string]int `json:"errors"`
	DurationMS  float64        `json:"duration_ms"`
}

// Swarm runs o.Clients simulated clients on the target: each connects
// with its own token, joins o.Channel (tracking itself with o.Presence),
// then broadcasts at o.Rate for o.Duration. It measures connect and join
// latency, presence convergence and fan-out, and counts the limit errors
// met. It returns an error only when it cannot start (bad options, no
// way to make a manager); failures of clients are in the report.
//
// The phases are methods of the unexported swarm type, in order:
// connectAndJoin, converge (with Presence), load and settle (with a
// Rate), finish; runProgress reports beside them.
func Swarm(ctx context.Context, env *Env, o SwarmOptions) (SwarmReport, error) {
	rep := SwarmReport{Channel: o.Channel.String(), Clients: o.Clients, Presence: o.Presence,
		LimitErrors: map[string]int{}, Errors: map[string]int{}}
	o, err := o.withDefaults()
	if err != nil {
		return rep, err
	}
	rep.OwnTokens = len(env.Target.JWTSecret) > 0
	sw := &swarm{o: o, rep: rep, start: time.Now(), clients: make([]*swarmClient, o.Clients)}
	sw.phase.Store("connecting")
	defer sw.close()

	jctx, cancel := context.WithTimeout(ctx, o.JoinTimeout)
	defer cancel()
	if err := sw.makeClients(ctx, env); err != nil {
		return sw.rep, err
	}
	stopProgress := sw.runProgress(ctx)
	defer stopProgress()

	sw.connectAndJoin(ctx, jctx)
	if o.Presence && sw.rep.Joined > 0 {
		sw.phase.Store("converging")
		sw.converge(ctx)
	}
	base := sw.received()
	loadStart := time.Now()
	if o.Rate > 0 && sw.rep.Joined > 0 && ctx.Err() == nil {
		sw.phase.Store("load")
		sw.load(ctx)
		sw.settle(ctx)
	}
	sw.finish(base, time.Since(loadStart))
	return sw.rep, nil
}

// withDefaults checks o and fills in its defaults.
func (o SwarmOptions) withDefaults() (SwarmOptions, error) {
	if o.Clients < 1 {
		return o, fmt.Errorf("%w: --clients %d: want at least 1", ErrInvalid, o.Clients)
	}
	if o.Channel.IsZero() {
		return o, fmt.Errorf("%w: a swarm needs a channel (--join)", ErrInvalid)
	}
	if o.Presence && o.Channel.Kind != registry.KindPresence {
		return o, fmt.Errorf("%w: --presence needs a presence channel, not %s", ErrInvalid, o.Channel)
	}
	if o.Rate < 0 {
		return o, fmt.Errorf("%w: --rate %v: must not be negative", ErrInvalid, o.Rate)
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.UserPrefix == "" {
		o.UserPrefix = "swarm-"
	}
	if o.Event == "" {
		o.Event = "swarm"
	}
	return o, nil
}

// swarm is one run of [Swarm]: its clients, its counters and the report
// its phases fill in.
type swarm struct {
	o       SwarmOptions
	rep     SwarmReport
	start   time.Time
	clients []*swarmClient // nil entries: not made (NewManager failed)
	phase   atomic.Value   // string: SwarmProgress.Phase

	connected, joined atomic.Int64
	sent, sendFail    atomic.Uint64

	mu               sync.Mutex // guards the latencies and lastJoin
	connLat, joinLat []time.Duration
	lastJoin         time.Time
}

// makeClients makes one manager per client (not connected yet), each
// with a subscription to the events that carry its errors.
func (sw *swarm) makeClients(ctx context.Context, env *Env) error {
	for i := range sw.clients {
		user := fmt.Sprintf("%s%d", sw.o.UserPrefix, i+1)
		id := Identity{User: user}
		if !sw.rep.OwnTokens {
			id = Identity{}
		}
		m, err := env.NewManager(id, ManagerOptions{Tune: func(opts *registry.Options) {
			opts.NoFrames = true
			opts.MessageRing = -1
			opts.FrameRing = -1
			opts.History = 1
			opts.LogRing = 64
		}})
		if err != nil {
			return err
		}
		c := &swarmClient{m: m, user: user}
		c.sub = m.Subscribe(ctx, registry.SubscribeOptions{Buffer: 1024, BufferBytes: 256 << 10, NoInitialState: true,
			Types: []registry.EventType{registry.TypeError, registry.TypeRetry, registry.TypeSocket, registry.TypeChannelState}})
		sw.clients[i] = c
	}
	return nil
}

// close leaves every client's channels and closes its manager, all at
// once.
func (sw *swarm) close() {
	var wg sync.WaitGroup
	for _, c := range sw.clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = c.m.CleanupAll(lctx)
			cancel()
			_ = c.m.Close()
			c.sub.Close()
		}()
	}
	wg.Wait()
}

// received is the broadcasts all clients received so far.
func (sw *swarm) received() uint64 {
	var n uint64
	for _, c := range sw.clients {
		if c != nil {
			n += c.received.Load()
		}
	}
	return n
}

// progress is the live view of the swarm now.
func (sw *swarm) progress() SwarmProgress {
	p := SwarmProgress{Phase: sw.phase.Load().(string), Clients: sw.o.Clients, Connected: int(sw.connected.Load()),
		Joined: int(sw.joined.Load()), Sent: sw.sent.Load(), Elapsed: time.Since(sw.start), Received: sw.received()}
	lim, other := classifyAll(sw.clients)
	p.LimitErrors, p.Errors = sum(lim), sum(other)
	return p
}

// runProgress calls o.Progress about four times a second until stop.
func (sw *swarm) runProgress(ctx context.Context) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if sw.o.Progress == nil {
			return
		}
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var (
			last   SwarmProgress
			lastAt time.Time
		)
		for {
			select {
			case <-pctx.Done():
				return
			case now := <-t.C:
				p := sw.progress()
				if !lastAt.IsZero() {
					if d := now.Sub(lastAt).Seconds(); d > 0 {
						p.ReceiveRate = float64(p.Received-last.Received) / d
					}
				}
				lastAt = now
				sw.o.Progress(p)
				last = p
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// connectAndJoin connects and joins every client, o.Concurrency at a
// time, within jctx (the join timeout), and records the latencies.
func (sw *swarm) connectAndJoin(ctx, jctx context.Context) {
	sem := make(chan struct{}, sw.o.Concurrency)
	var wg sync.WaitGroup
	for _, c := range sw.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-jctx.Done():
				if ctx.Err() == nil {
					c.note(fmt.Sprintf("connect: not started within %s (--concurrency %d busy)", sw.o.JoinTimeout, sw.o.Concurrency))
				}
				return
			}
			defer func() { <-sem }()
			sw.joinOne(ctx, jctx, c)
		}()
	}
	wg.Wait()
	sw.rep.Connected, sw.rep.Joined = int(sw.connected.Load()), int(sw.joined.Load())
	sw.rep.ConnectLatency, sw.rep.JoinLatency = distOf(sw.connLat), distOf(sw.joinLat)
}

// joinOne connects c and joins the channel (tracking c's user with
// o.Presence), counting a broadcast of o.Event it receives.
func (sw *swarm) joinOne(ctx, jctx context.Context, c *swarmClient) {
	t0 := time.Now()
	if err := c.m.Connect(jctx); err != nil {
		if ctx.Err() == nil {
			c.note(connectFailure(err, sw.o.JoinTimeout))
		}
		return
	}
	sw.connected.Add(1)
	t1 := time.Now()
	onB := registry.OnBroadcast(sw.o.Event, func(registry.Broadcast) { c.received.Add(1) })
	var (
		h   *registry.Handle
		err error
	)
	ch := sw.o.Channel
	if sw.o.Presence {
		h, err = c.m.JoinPresence(jctx, ch.EntityType, ch.EntityID, registry.PresenceUser{UserID: c.user, Name: c.user},
			registry.WithTenant(ch.Tenant), onB)
	} else {
		h, err = c.m.Join(jctx, ch, onB)
	}
	if err != nil {
		return
	}
	if err := h.Ready(jctx); err != nil {
		return
	}
	t2 := time.Now()
	c.h, c.joined = h, true
	sw.joined.Add(1)
	sw.mu.Lock()
	sw.connLat = append(sw.connLat, t1.Sub(t0))
	sw.joinLat = append(sw.joinLat, t2.Sub(t1))
	if t2.After(sw.lastJoin) {
		sw.lastJoin = t2
	}
	sw.mu.Unlock()
}

// converge waits (up to the join timeout) until every joined client sees
// every joined user present, and records how long that took after the
// last join.
func (sw *swarm) converge(ctx context.Context) {
	want := map[string]bool{}
	for _, c := range sw.clients {
		if c != nil && c.joined {
			want[c.user] = true
		}
	}
	converged := func() bool {
		for _, c := range sw.clients {
			if c == nil || !c.joined {
				continue
			}
			users, err := c.m.Presence(sw.o.Channel)
			if err != nil {
				return false
			}
			seen := 0
			for _, u := range users {
				if want[u.UserID] {
					seen++
				}
			}
			if seen < len(want) {
				return false
			}
		}
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, sw.o.JoinTimeout)
	ok := pollUntil(cctx, 10*time.Millisecond, converged)
	cancel()
	if ok {
		d := msf(time.Since(sw.lastJoin))
		sw.rep.PresenceConverged, sw.rep.PresenceConvergenceMS = true, &d
	}
}

// load has each joined client broadcast at o.Rate for o.Duration, the
// clients spread over one period.
func (sw *swarm) load(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, sw.o.Duration)
	defer cancel()
	var wg sync.WaitGroup
	every := time.Duration(float64(time.Second) / sw.o.Rate)
	for i, c := range sw.clients {
		if c == nil || !c.joined {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sleepCtx(lctx, every*time.Duration(i)/time.Duration(len(sw.clients))); err != nil {
				return
			}
			sw.broadcastLoop(lctx, c, every)
		}()
	}
	wg.Wait()
}

// broadcastLoop sends c's broadcasts, one every period, until ctx ends.
func (sw *swarm) broadcastLoop(ctx context.Context, c *swarmClient, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		payload, _ := json.Marshal(map[string]any{"from": c.user, "n": n})
		if err := c.h.Broadcast(ctx, sw.o.Event, payload); err != nil {
			if ctx.Err() != nil {
				return
			}
			sw.sendFail.Add(1)
		} else {
			sw.sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// settle lets the last deliveries arrive: it waits until the count of
// received broadcasts stops moving (at most 2 s).
func (sw *swarm) settle(ctx context.Context) {
	var last uint64
	stable := 0
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pollUntil(dctx, 50*time.Millisecond, func() bool {
		n := sw.received()
		if n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		return stable >= 4
	})
}

// finish completes the report: what the load phase (of length load)
// sent and delivered beyond base (the broadcasts received before it),
// the errors, and the last progress report.
func (sw *swarm) finish(base uint64, load time.Duration) {
	sw.phase.Store("done")
	rep := &sw.rep
	rep.LoadMS = msf(load)
	rep.Sent, rep.SendFailures = sw.sent.Load(), sw.sendFail.Load()
	rep.Received = sw.received() - base
	if rep.Joined > 1 {
		rep.Expected = rep.Sent * uint64(rep.Joined-1)
	}
	if rep.Expected > 0 {
		rep.Delivery = float64(rep.Received) / float64(rep.Expected)
	}
	if s := load.Seconds(); s > 0 && sw.o.Rate > 0 {
		rep.SendRate = float64(rep.Sent) / s
		rep.FanoutRate = float64(rep.Received) / s
	}
	rep.LimitErrors, rep.Errors = classifyAll(sw.clients)
	rep.DurationMS = msf(time.Since(sw.start))
	if sw.o.Progress != nil {
		p := sw.progress()
		p.Phase = "done"
		sw.o.Progress(p)
	}
}

func pollUntil(ctx context.Context, every time.Duration, cond func() bool) bool {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
