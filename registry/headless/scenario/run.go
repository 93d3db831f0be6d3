package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"rtm/registry"
	"rtm/registry/compare"
	"rtm/registry/headless"
	"rtm/registry/limits"
	"slices"
	"strings"
	"sync"
	"time"
)

// The results of a step.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// StepResult is the outcome of one step.
type StepResult struct {
	// Line is the step's line in the file; Step its kind ("connect",
	// "fault drop", "expect status"); Text the step as written.
	Line   int    `json:"line"`
	Step   string `json:"step"`
	Text   string `json:"text"`
	Client string `json:"client,omitempty"`
	// Result is passed, failed or skipped.
	Result string  `json:"result"`
	TookMS float64 `json:"took_ms"`
	// Expected and Observed describe an expectation; Reason says why a
	// step failed.
	Expected string `json:"expected,omitempty"`
	Observed string `json:"observed,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Report is the JSON report of a run.
type Report struct {
	Scenario string    `json:"scenario"`
	File     string    `json:"file,omitempty"`
	Target   string    `json:"target"`
	Started  time.Time `json:"started"`
	// OK is true when every step passed.
	OK         bool    `json:"ok"`
	DurationMS float64 `json:"duration_ms"`
	Passed     int     `json:"passed"`
	Failed     int     `json:"failed"`
	Skipped    int     `json:"skipped"`
	// FirstFailure is the first step that failed.
	FirstFailure *StepResult  `json:"first_failure,omitempty"`
	Steps        []StepResult `json:"steps"`
	// Warnings are things that may make results doubtful (events lost).
	Warnings []string `json:"warnings,omitempty"`
	// Proxy is the app's URL of the scenario's proxy (proxy: true).
	Proxy string `json:"proxy,omitempty"`
	// Execs are the commands of the exec steps, in the order started.
	Execs []ExecResult `json:"execs,omitempty"`
}

// Options configures [Run].
type Options struct {
	// Env is the target.
	Env *headless.Env
	// Logger receives the runner's logs (nil: discarded).
	Logger *slog.Logger
	// Poll is the period of expectation checks (default 10 ms).
	Poll time.Duration
	// OnStep is called after each step (progress output).
	OnStep func(StepResult)
	// Dir is the directory exec steps' relative dir settings are
	// resolved against, and their default working directory ("": the
	// directory of Scenario.File).
	Dir string
}

// client is one connected manager of a run.
type client struct {
	name string
	id   headless.Identity
	m    *registry.Manager
	sub  *registry.Subscription
	done chan struct{}
	// feed meters the client's usage of the limits (expect limits).
	feed *limits.Feed

	// cmp, when the scenario compares clients (same_messages), is fed
	// every event; the frames and logs it alone needs are not kept.
	cmp *compare.Comparer

	mu      sync.Mutex
	events  []registry.Event
	dropped uint64
}

func (c *client) collect() {
	defer close(c.done)
	for e := range c.sub.Events() {
		if c.cmp != nil {
			c.cmp.Observe(c.name, e)
			switch e.(type) {
			case registry.FrameEvent, registry.LogEvent:
				continue
			}
		}
		c.feed.Manager(e)
		c.mu.Lock()
		if d, ok := e.(registry.DroppedEvent); ok {
			c.dropped += d.Count
		}
		c.events = append(c.events, e)
		c.mu.Unlock()
	}
}

// since returns the events collected from t on.
func (c *client) since(t time.Time) []registry.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, _ := slices.BinarySearchFunc(c.events, t, func(e registry.Event, t time.Time) int {
		return e.EventTime().Compare(t)
	})
	// Event times are close to monotone; step back over ties.
	for i > 0 && !c.events[i-1].EventTime().Before(t) {
		i--
	}
	return slices.Clone(c.events[i:])
}

type runner struct {
	sc        *Scenario
	o         Options
	log       *slog.Logger
	clients   map[string]*client
	order     []*client
	start     time.Time
	stepStart time.Time // start of the previous step
	rejected  bool      // a reject-joins fault is in force
	// app is the scenario's proxy (nil: none); execs the exec steps'
	// commands by name and in the order started.
	app       *appProxy
	execs     map[string]*process
	execOrder []*process
	// cmp compares what the clients receive (nil: no same_messages
	// expectation in the scenario).
	cmp *compare.Comparer
}

// Run runs the scenario against o.Env and returns its report. It never
// returns early on a failed step unless the scenario says so; every
// client it connected is closed when it returns.
func Run(ctx context.Context, sc *Scenario, o Options) Report {
	if o.Poll <= 0 {
		o.Poll = 10 * time.Millisecond
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{sc: sc, o: o, log: log, clients: map[string]*client{}, execs: map[string]*process{}, start: time.Now()}
	r.stepStart = r.start
	for _, st := range sc.Steps {
		if st.Expect == ExpectSameMessages {
			r.cmp = compare.New(compare.Options{})
			break
		}
	}
	rep := Report{Scenario: sc.Name, File: sc.File, Started: r.start, OK: true, Steps: []StepResult{}}
	if d := o.Env.Target.Describe(); len(d) > 0 {
		rep.Target = strings.Join(d, "; ")
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()
	defer r.close()
	stop := false
	if sc.Proxy != nil {
		var err error
		if r.app, err = startProxy(sc.Proxy, o.Env.Target.URL.Value, log); err != nil {
			res := StepResult{Line: sc.Proxy.Line, Step: "proxy", Text: "proxy: " + sc.Proxy.Listen, Result: Failed, Reason: registry.MaskText(err.Error())}
			rep.OK, rep.Failed, rep.FirstFailure = false, 1, &res
			rep.Steps = append(rep.Steps, res)
			stop = true
		} else {
			rep.Proxy = r.app.url
		}
	}
	for _, st := range sc.Steps {
		res := StepResult{Line: st.Line, Step: stepName(st), Text: registry.MaskText(st.Text), Client: st.Client}
		if stop {
			res.Result = Skipped
			rep.Skipped++
			rep.Steps = append(rep.Steps, res)
			continue
		}
		t0 := time.Now()
		expected, observed, err := r.step(ctx, st)
		r.stepStart = t0
		res.TookMS = ms(time.Since(t0))
		res.Expected, res.Observed = registry.MaskText(expected), registry.MaskText(observed)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("the scenario's timeout (%s) ran out: %w", sc.Timeout, err)
			}
			res.Result, res.Reason = Failed, registry.MaskText(err.Error())
			rep.Failed++
			rep.OK = false
			if rep.FirstFailure == nil {
				f := res
				rep.FirstFailure = &f
			}
			stop = !sc.ContinueOnFailure || ctx.Err() != nil
		} else {
			res.Result = Passed
			rep.Passed++
		}
		r.log.Info("Step", "line", st.Line, "step", res.Step, "result", res.Result, "reason", res.Reason)
		if o.OnStep != nil {
			o.OnStep(res)
		}
		rep.Steps = append(rep.Steps, res)
	}
	r.stopExecs()
	for _, p := range r.execOrder {
		rep.Execs = append(rep.Execs, p.result(r.secrets()))
	}
	for _, c := range r.order {
		c.mu.Lock()
		if c.dropped > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("client %s: %d events were lost by the runner (it fell behind); expectations on messages may be wrong", c.name, c.dropped))
		}
		c.mu.Unlock()
	}
	rep.DurationMS = ms(time.Since(r.start))
	return rep
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func stepName(st Step) string {
	switch st.Kind {
	case StepExpect:
		return "expect " + st.Expect
	case StepFault:
		if st.Fault.App {
			return "fault app " + st.Fault.Kind.String()
		}
		return "fault " + st.Fault.Kind.String()
	}
	return st.Kind
}

func (r *runner) close() {
	r.stopExecs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if r.rejected && len(r.order) > 0 {
		// Leave the server as found: stop refusing joins.
		_ = r.order[0].m.Faults().RejectJoins(ctx, registry.Rejection{})
	}
	for _, c := range r.order {
		_ = c.m.CleanupAll(ctx)
		c.sub.Close()
		_ = c.m.Close()
		<-c.done
	}
	if r.app != nil {
		r.app.close(r.log)
	}
}

// step runs one step; for expectations it returns what was expected and
// observed.
func (r *runner) step(ctx context.Context, st Step) (expected, observed string, err error) {
	switch st.Kind {
	case StepConnect:
		return "", "", r.connect(ctx, st)
	case StepWait:
		return "", "", sleep(ctx, st.For)
	case StepExec:
		obs, err := r.exec(ctx, st)
		return "", obs, err
	case StepFault:
		if st.Fault.App {
			return "", "", r.appFault(ctx, st)
		}
	case StepExpect:
		switch {
		case st.Expect == ExpectExit:
			return r.expectExit(ctx, st)
		case isApp(st.Expect):
			return r.expectApp(ctx, st)
		}
	}
	c := r.clients[st.Client]
	if c == nil {
		return "", "", fmt.Errorf("client %q is not connected", st.Client)
	}
	switch st.Kind {
	case StepJoin:
		return "", "", r.join(ctx, c, st)
	case StepLeave:
		return "", "", c.m.Leave(ctx, st.Channel)
	case StepTrack:
		user := firstNonEmpty(st.User, c.id.User)
		if user == "" {
			return "", "", fmt.Errorf("track: no user: give user: or connect the client as a user")
		}
		return "", "", c.m.Track(ctx, st.Channel, registry.PresenceUser{UserID: user, Name: firstNonEmpty(st.UserName, user), Payload: st.Payload})
	case StepUntrack:
		return "", "", c.m.Untrack(ctx, st.Channel)
	case StepBroadcast:
		return "", "", r.broadcast(ctx, c, st)
	case StepFault:
		return "", "", r.fault(ctx, c, st)
	case StepRefreshToken:
		tok, err := r.o.Env.Token(c.id)
		if err != nil {
			return "", "", err
		}
		c.m.SetToken(tok)
		return "", "", nil
	case StepExpect:
		return r.expect(ctx, c, st)
	}
	return "", "", fmt.Errorf("unknown step %q", st.Kind)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *runner) connect(ctx context.Context, st Step) error {
	id := headless.Identity{User: st.User, Role: st.Role}
	pol := st.Policy
	if pol == nil {
		pol = r.sc.Policy
	}
	sc := r.sc
	if st.ViaProxy && r.app == nil {
		return fmt.Errorf("connect through the proxy: the scenario's proxy is not running")
	}
	m, err := r.o.Env.NewManager(id, headless.ManagerOptions{Policy: pol, Tune: func(o *registry.Options) {
		if st.ViaProxy {
			o.URL = r.app.url
		}
		if sc.ReconnectAfter > 0 {
			d := sc.ReconnectAfter
			o.ReconnectAfter = func(int) time.Duration { return d }
		}
		if sc.Heartbeat > 0 {
			o.HeartbeatInterval = sc.Heartbeat
		}
		if sc.PushTimeout > 0 {
			o.PushTimeout = sc.PushTimeout
		}
	}})
	if err != nil {
		return err
	}
	c := &client{name: st.Client, id: id, m: m, done: make(chan struct{}),
		feed: limits.NewFeed(limits.New(sc.Limits.Merge(sc.Overrides), nil))}
	so := registry.SubscribeOptions{Buffer: 1 << 16,
		Types: []registry.EventType{registry.TypeChannelState, registry.TypeSocket, registry.TypeRetry, registry.TypeError,
			registry.TypeMessage, registry.TypePresence, registry.TypeToken}}
	if r.cmp != nil {
		tok, err := r.o.Env.Token(id)
		if err != nil {
			_ = m.Close()
			return err
		}
		id.Name = st.Client
		r.cmp.AddIdentity(headless.CompareIdentity(id, tok))
		c.cmp = r.cmp
		so.Frames = true
		so.Types = append(so.Types, registry.TypeFrame, registry.TypeLog)
	}
	c.sub = m.Subscribe(context.Background(), so)
	go c.collect()
	r.clients[c.name] = c
	r.order = append(r.order, c)
	timeout := st.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.Connect(cctx); err != nil {
		s := m.Snapshot().Socket
		if reason := firstNonEmpty(s.LastError, s.Reason); reason != "" && !strings.Contains(err.Error(), reason) {
			return fmt.Errorf("connect as %s: no connection within %s (%s): %w", id, timeout, reason, err)
		}
		return fmt.Errorf("connect as %s: no connection within %s: %w", id, timeout, err)
	}
	return nil
}

func (r *runner) join(ctx context.Context, c *client, st Step) error {
	var opts []registry.JoinOption
	if st.PresenceKey != "" {
		opts = append(opts, registry.WithPresenceKey(st.PresenceKey))
	}
	if st.Private {
		opts = append(opts, registry.Private())
	}
	if st.Self || st.Ack {
		opts = append(opts, registry.WithBroadcastConfig(st.Ack, st.Self))
	}
	track := st.Channel.Kind == registry.KindPresence && c.id.User != "" && st.PresenceKey == ""
	if st.Track != nil {
		track = *st.Track
	}
	if track {
		if st.Channel.Kind != registry.KindPresence {
			return fmt.Errorf("join %s: track needs a presence channel", st.Channel)
		}
		if c.id.User == "" {
			return fmt.Errorf("join %s with track: the client is not connected as a user (connect with user:)", st.Channel)
		}
		opts = append(opts, registry.WithTenant(st.Channel.Tenant))
		_, err := c.m.JoinPresence(ctx, st.Channel.EntityType, st.Channel.EntityID, registry.PresenceUser{UserID: c.id.User, Name: c.id.User}, opts...)
		return err
	}
	_, err := c.m.Join(ctx, st.Channel, opts...)
	return err
}

func (r *runner) broadcast(ctx context.Context, c *client, st Step) error {
	for i := 1; i <= st.Count; i++ {
		payload := st.Payload
		if st.Count > 1 {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(payload, &obj); err != nil {
				return fmt.Errorf("broadcast: payload: %w", err)
			}
			if _, ok := obj["seq"]; !ok {
				obj["seq"] = json.RawMessage(fmt.Sprint(i))
			}
			var err error
			if payload, err = json.Marshal(obj); err != nil {
				return err
			}
		}
		if err := c.m.Broadcast(ctx, st.Channel, st.Event, payload); err != nil {
			return fmt.Errorf("broadcast %d/%d: %w", i, st.Count, err)
		}
		if st.Interval > 0 && i < st.Count {
			if err := sleep(ctx, st.Interval); err != nil {
				return err
			}
		}
	}
	return nil
}

// fault injects the step's fault through the client's manager.
func (r *runner) fault(ctx context.Context, c *client, st Step) error {
	f := c.m.Faults()
	err := f.Apply(ctx, st.Fault)
	if st.Fault.Kind == registry.FaultRejectJoins {
		r.rejected = err == nil
	}
	if err != nil {
		if errors.Is(err, registry.ErrUnsupported) && !f.ServerAvailable() {
			return fmt.Errorf("fault %s: %w (server faults need the embedded server, or rtm serve with --service-key)", st.Fault.Kind, err)
		}
		return fmt.Errorf("fault %s: %w", st.Fault.Kind, err)
	}
	return nil
}
