package headless

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
	Phase                          string // "connecting", "converging", "load", "done"
	Clients, Connected, Joined     int
	Present                        int // users the slowest client sees (presence)
	Sent, Received                 uint64
	LimitErrors, Errors            int
	Elapsed                        time.Duration
	ReceiveRate                    float64 // per second, over the last report
	sentAt, receivedAt, lastReport time.Time
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

type swarmClient struct {
	m        *registry.Manager
	sub      *registry.Subscription
	h        *registry.Handle
	user     string
	received atomic.Uint64
	joined   bool

	errMu   sync.Mutex
	errSeen map[string]bool
	errList []string
}

// Swarm runs o.Clients simulated clients on the target: each connects
// with its own token, joins o.Channel (tracking itself with o.Presence),
// then broadcasts at o.Rate for o.Duration. It measures connect and join
// latency, presence convergence and fan-out, and counts the limit errors
// met. It returns an error only when it cannot start (bad options, no
// way to make a manager); failures of clients are in the report.
func Swarm(ctx context.Context, env *Env, o SwarmOptions) (SwarmReport, error) {
	rep := SwarmReport{Channel: o.Channel.String(), Clients: o.Clients, Presence: o.Presence,
		LimitErrors: map[string]int{}, Errors: map[string]int{}}
	if o.Clients < 1 {
		return rep, fmt.Errorf("%w: --clients %d: want at least 1", ErrInvalid, o.Clients)
	}
	if o.Channel.IsZero() {
		return rep, fmt.Errorf("%w: a swarm needs a channel (--join)", ErrInvalid)
	}
	if o.Presence && o.Channel.Kind != registry.KindPresence {
		return rep, fmt.Errorf("%w: --presence needs a presence channel, not %s", ErrInvalid, o.Channel)
	}
	if o.Rate < 0 {
		return rep, fmt.Errorf("%w: --rate %v: must not be negative", ErrInvalid, o.Rate)
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
	rep.OwnTokens = len(env.Target.JWTSecret) > 0
	start := time.Now()

	clients := make([]*swarmClient, o.Clients)
	var (
		mu                 sync.Mutex
		connLat, joinLat   []time.Duration
		connected, joinedN atomic.Int64
		sent, sendFail     atomic.Uint64
		lastJoin           time.Time
		phase              atomic.Value
	)
	phase.Store("connecting")
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
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
	}()

	// Connect and join, Concurrency at a time.
	jctx, cancel := context.WithTimeout(ctx, o.JoinTimeout)
	defer cancel()
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i := range clients {
		user := fmt.Sprintf("%s%d", o.UserPrefix, i+1)
		id := Identity{User: user}
		if !rep.OwnTokens {
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
			return rep, err
		}
		c := &swarmClient{m: m, user: user}
		c.sub = m.Subscribe(ctx, registry.SubscribeOptions{Buffer: 1024, BufferBytes: 256 << 10, NoInitialState: true,
			Types: []registry.EventType{registry.TypeError, registry.TypeRetry, registry.TypeSocket, registry.TypeChannelState}})
		clients[i] = c
	}
	// Progress reports.
	progress := func() SwarmProgress {
		p := SwarmProgress{Phase: phase.Load().(string), Clients: o.Clients, Connected: int(connected.Load()),
			Joined: int(joinedN.Load()), Sent: sent.Load(), Elapsed: time.Since(start)}
		for _, c := range clients {
			if c != nil {
				p.Received += c.received.Load()
			}
		}
		lim, other := classifyAll(clients)
		p.LimitErrors, p.Errors = sum(lim), sum(other)
		return p
	}
	pctx, stopProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if o.Progress == nil {
			return
		}
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var last SwarmProgress
		for {
			select {
			case <-pctx.Done():
				return
			case now := <-t.C:
				p := progress()
				if !last.lastReport.IsZero() {
					if d := now.Sub(last.lastReport).Seconds(); d > 0 {
						p.ReceiveRate = float64(p.Received-last.Received) / d
					}
				}
				p.lastReport = now
				o.Progress(p)
				last = p
			}
		}
	}()
	defer func() {
		stopProgress()
		<-progressDone
	}()

	for _, c := range clients {
		user := c.user
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-jctx.Done():
				if ctx.Err() == nil {
					c.note(fmt.Sprintf("connect: not started within %s (--concurrency %d busy)", o.JoinTimeout, o.Concurrency))
				}
				return
			}
			defer func() { <-sem }()
			t0 := time.Now()
			if err := c.m.Connect(jctx); err != nil {
				if ctx.Err() == nil {
					c.note(connectFailure(err, o.JoinTimeout))
				}
				return
			}
			connected.Add(1)
			t1 := time.Now()
			onB := registry.OnBroadcast(o.Event, func(registry.Broadcast) { c.received.Add(1) })
			var (
				h   *registry.Handle
				err error
			)
			if o.Presence {
				h, err = c.m.JoinPresence(jctx, o.Channel.EntityType, o.Channel.EntityID, registry.PresenceUser{UserID: user, Name: user},
					registry.WithTenant(o.Channel.Tenant), onB)
			} else {
				h, err = c.m.Join(jctx, o.Channel, onB)
			}
			if err != nil {
				return
			}
			if err := h.Ready(jctx); err != nil {
				return
			}
			t2 := time.Now()
			c.h, c.joined = h, true
			joinedN.Add(1)
			mu.Lock()
			connLat = append(connLat, t1.Sub(t0))
			joinLat = append(joinLat, t2.Sub(t1))
			if t2.After(lastJoin) {
				lastJoin = t2
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Connected, rep.Joined = int(connected.Load()), int(joinedN.Load())
	rep.ConnectLatency, rep.JoinLatency = distOf(connLat), distOf(joinLat)

	// Presence convergence: every joined client sees every joined user.
	if o.Presence && rep.Joined > 0 {
		phase.Store("converging")
		want := map[string]bool{}
		for _, c := range clients {
			if c != nil && c.joined {
				want[c.user] = true
			}
		}
		converged := func() bool {
			for _, c := range clients {
				if c == nil || !c.joined {
					continue
				}
				users, err := c.m.Presence(o.Channel)
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
		cctx, ccancel := context.WithTimeout(ctx, o.JoinTimeout)
		ok := pollUntil(cctx, 10*time.Millisecond, converged)
		ccancel()
		if ok {
			d := msf(time.Since(lastJoin))
			rep.PresenceConverged, rep.PresenceConvergenceMS = true, &d
		}
	}

	// Load: each joined client broadcasts at Rate.
	var base uint64
	for _, c := range clients {
		if c != nil {
			base += c.received.Load()
		}
	}
	loadStart := time.Now()
	if o.Rate > 0 && rep.Joined > 0 && ctx.Err() == nil {
		phase.Store("load")
		lctx, lcancel := context.WithTimeout(ctx, o.Duration)
		var lwg sync.WaitGroup
		every := time.Duration(float64(time.Second) / o.Rate)
		for i, c := range clients {
			if c == nil || !c.joined {
				continue
			}
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				// Spread the clients over one period.
				if err := sleepCtx(lctx, every*time.Duration(i)/time.Duration(len(clients))); err != nil {
					return
				}
				t := time.NewTicker(every)
				defer t.Stop()
				for n := 1; ; n++ {
					payload, _ := json.Marshal(map[string]any{"from": c.user, "n": n})
					if err := c.h.Broadcast(lctx, o.Event, payload); err != nil {
						if lctx.Err() != nil {
							return
						}
						sendFail.Add(1)
					} else {
						sent.Add(1)
					}
					select {
					case <-lctx.Done():
						return
					case <-t.C:
					}
				}
			}()
		}
		lwg.Wait()
		lcancel()
		// Let the last deliveries arrive: wait until the count stops
		// moving (bounded).
		var last uint64
		stable := 0
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		pollUntil(dctx, 50*time.Millisecond, func() bool {
			var n uint64
			for _, c := range clients {
				if c != nil {
					n += c.received.Load()
				}
			}
			if n == last {
				stable++
			} else {
				stable = 0
			}
			last = n
			return stable >= 4
		})
		dcancel()
	}
	load := time.Since(loadStart)
	phase.Store("done")
	rep.LoadMS = msf(load)
	rep.Sent, rep.SendFailures = sent.Load(), sendFail.Load()
	for _, c := range clients {
		if c != nil {
			rep.Received += c.received.Load()
		}
	}
	rep.Received -= base
	if rep.Joined > 1 {
		rep.Expected = rep.Sent * uint64(rep.Joined-1)
	}
	if rep.Expected > 0 {
		rep.Delivery = float64(rep.Received) / float64(rep.Expected)
	}
	if s := load.Seconds(); s > 0 && o.Rate > 0 {
		rep.SendRate = float64(rep.Sent) / s
		rep.FanoutRate = float64(rep.Received) / s
	}
	rep.LimitErrors, rep.Errors = classifyAll(clients)
	rep.DurationMS = msf(time.Since(start))
	if o.Progress != nil {
		p := progress()
		p.Phase = "done"
		o.Progress(p)
	}
	return rep, nil
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

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// limitWords mark an error as a limit error (Supabase's limit reasons
// and HTTP 429).
var limitWords = []string{"ratelimit", "rate limit", "too many", "429", "limit reached", "limit exceeded", "payload_size_exceeded", "capreached", "cap reached"}

// IsLimitError reports whether an error text is about a limit.
func IsLimitError(s string) bool {
	l := strings.ToLower(s)
	for _, w := range limitWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// classifyAll counts the errors each client met so far (without
// consuming them twice: the events stay in the subscriptions until
// drained here, and are kept per client).
func classifyAll(clients []*swarmClient) (limits, others map[string]int) {
	limits, others = map[string]int{}, map[string]int{}
	for _, c := range clients {
		if c == nil {
			continue
		}
		for _, e := range c.errors() {
			if IsLimitError(e) {
				limits[e]++
			} else {
				others[e]++
			}
		}
	}
	return limits, others
}

// connectFailure is the error a client that could not connect within
// the join timeout counts: the timeout and the end of Connect's error
// (the step the attempt was stuck in), without the URL.
func connectFailure(err error, timeout time.Duration) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return fmt.Sprintf("connect: no connection within %s: %s", timeout, s)
}

// abandoned reports an attempt's error that is the end of a Connect's
// context, not a failure of its own.
func abandoned(reason string) bool {
	return strings.HasPrefix(reason, context.DeadlineExceeded.Error()) || strings.HasPrefix(reason, context.Canceled.Error())
}

// note counts an error the client met outside its events.
func (c *swarmClient) note(s string) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	c.addLocked(s)
}

func (c *swarmClient) addLocked(s string) {
	if c.errSeen == nil {
		c.errSeen = map[string]bool{}
	}
	s = errorKey(s)
	if s != "" && !c.errSeen[s] {
		c.errSeen[s] = true
		c.errList = append(c.errList, s)
	}
}

// errors drains the client's subscription and returns the distinct
// errors it met (each counted once per client).
func (c *swarmClient) errors() []string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	add := c.addLocked
	for _, e := range c.sub.Drain(nil) {
		switch e := e.(type) {
		case registry.ErrorEvent:
			add(firstOf(e.Code+": "+e.Message, e.Message, e.Code == ""))
		case registry.RetryEvent:
			if e.Outcome == registry.RetryFailed || e.Outcome == registry.RetryExhausted {
				add(e.Err)
			}
		case registry.SocketEvent:
			// An attempt abandoned when the join timeout passed (or the
			// swarm was interrupted) is counted once, by the connect
			// failure noted.
			if e.Status == registry.SocketDisconnected && !abandoned(e.Reason) {
				add(e.Reason)
			}
		case registry.ChannelStateEvent:
			if e.Status == registry.StatusError || e.Status == registry.StatusDisconnected {
				add(e.Info.LastError)
			}
		}
	}
	return slices.Clone(c.errList)
}

func firstOf(a, b string, useB bool) string {
	if useB {
		return b
	}
	return a
}

// errorKey trims an error text for counting.
func errorKey(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 160 {
		s = s[:160]
	}
	return s
}
