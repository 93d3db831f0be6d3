package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"rtm/registry"
	"rtm/registry/headless"
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
}

// client is one connected manager of a run.
type client struct {
	name string
	id   headless.Identity
	m    *registry.Manager
	sub  *registry.Subscription
	done chan struct{}

	mu      sync.Mutex
	events  []registry.Event
	dropped uint64
}

func (c *client) collect() {
	defer close(c.done)
	for e := range c.sub.Events() {
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
	r := &runner{sc: sc, o: o, log: log, clients: map[string]*client{}, start: time.Now()}
	r.stepStart = r.start
	rep := Report{Scenario: sc.Name, File: sc.File, Started: r.start, OK: true, Steps: []StepResult{}}
	if d := o.Env.Target.Describe(); len(d) > 0 {
		rep.Target = strings.Join(d, "; ")
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()
	defer r.close()
	stop := false
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
		return "fault " + st.Fault
	}
	return st.Kind
}

func (r *runner) close() {
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
}

// step runs one step; for expectations it returns what was expected and
// observed.
func (r *runner) step(ctx context.Context, st Step) (expected, observed string, err error) {
	switch st.Kind {
	case StepConnect:
		return "", "", r.connect(ctx, st)
	case StepWait:
		return "", "", sleep(ctx, st.For)
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
	m, err := r.o.Env.NewManager(id, headless.ManagerOptions{Policy: pol, Tune: func(o *registry.Options) {
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
	c := &client{name: st.Client, id: id, m: m, done: make(chan struct{})}
	c.sub = m.Subscribe(context.Background(), registry.SubscribeOptions{Buffer: 1 << 16,
		Types: []registry.EventType{registry.TypeChannelState, registry.TypeSocket, registry.TypeRetry, registry.TypeError,
			registry.TypeMessage, registry.TypePresence, registry.TypeToken}})
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

func (r *runner) fault(ctx context.Context, c *client, st Step) error {
	f := c.m.Faults()
	var err error
	switch st.Fault {
	case FaultDrop:
		var n int
		if n, err = f.Drop(); err == nil && n == 0 {
			err = errors.New("no open connection to drop")
		}
	case FaultFreeze:
		_, err = f.Freeze(st.For)
	case FaultLatency:
		err = f.Latency(st.Delay)
	case FaultFailConnects:
		err = f.FailConnects(st.Count)
	case FaultKick:
		var n int
		if n, err = f.Kick(ctx, st.Channel, st.Mode); err == nil && n == 0 {
			err = fmt.Errorf("the server holds no channel %s to kick", st.Channel)
		}
	case FaultRejectJoins:
		count := max(st.Count, 0)
		err = f.RejectJoins(ctx, registry.Rejection{Count: count, For: st.For, Reason: st.Reason})
		r.rejected = err == nil
	case FaultExpireToken:
		err = f.ExpireToken(ctx)
	case FaultChannelError:
		err = f.InjectChannelError(st.Channel)
	case FaultDropAll:
		_, err = f.DropAll(ctx)
	case FaultRestart:
		err = f.Restart(ctx, st.For)
	default:
		err = fmt.Errorf("unknown fault %q", st.Fault)
	}
	if err != nil {
		if errors.Is(err, registry.ErrUnsupported) && !f.ServerAvailable() {
			return fmt.Errorf("fault %s: %w (server faults need the embedded server, or rtm serve with --service-key)", st.Fault, err)
		}
		return fmt.Errorf("fault %s: %w", st.Fault, err)
	}
	return nil
}

// poll calls check every Poll until it reports done or d passes (at
// least one check is made); it returns the last check's result.
func (r *runner) poll(ctx context.Context, d time.Duration, check func() (done, ok bool, observed string)) (bool, string, error) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(r.o.Poll)
	defer t.Stop()
	for {
		done, ok, obs := check()
		if done || !time.Now().Before(deadline) {
			return ok, obs, nil
		}
		select {
		case <-ctx.Done():
			_, ok, obs = check()
			return ok, obs, ctx.Err()
		case <-t.C:
		}
	}
}

func (r *runner) expect(ctx context.Context, c *client, st Step) (string, string, error) {
	var (
		expected string
		check    func() (done, ok bool, observed string)
		wait     = st.Within
	)
	switch st.Expect {
	case ExpectStatus:
		expected = fmt.Sprintf("%s %s within %s", st.Channel, st.Status, st.Within)
		from := r.stepStart
		check = func() (bool, bool, string) {
			info, err := c.m.Info(st.Channel)
			if err != nil {
				return false, false, "not in the registry"
			}
			if info.Status == st.Status {
				return true, true, describeChannel(info)
			}
			// A join completed since then passed through connecting, even
			// when the state events of a lagging subscriber were merged
			// down to the latest one (the broker coalesces state).
			if st.Status == registry.StatusConnecting && !info.JoinedAt.Before(from) {
				return true, true, fmt.Sprintf("connecting, then joined at %s (now %s)", info.JoinedAt.Format("15:04:05.000"), describeChannel(info))
			}
			// A status the channel passed through since the previous
			// step began counts too (it may have lasted less than a
			// poll).
			for _, e := range c.since(from) {
				if cs, ok := e.(registry.ChannelStateEvent); ok && cs.Channel == st.Channel && cs.Status == st.Status && !cs.Removed {
					return true, true, fmt.Sprintf("%s at %s (now %s)", st.Status, cs.Time.Format("15:04:05.000"), describeChannel(info))
				}
			}
			return false, false, describeChannel(info)
		}
	case ExpectAttempts:
		return r.expectAttempts(ctx, c, st)
	case ExpectPresence:
		switch {
		case st.Contains != "":
			expected = fmt.Sprintf("%s has %s present within %s", st.Channel, st.Contains, st.Within)
		case st.Lacks != "":
			expected = fmt.Sprintf("%s lacks %s within %s", st.Channel, st.Lacks, st.Within)
		default:
			expected = fmt.Sprintf("%s has %d users present within %s", st.Channel, st.Count, st.Within)
		}
		check = func() (bool, bool, string) {
			users, err := c.m.Presence(st.Channel)
			if err != nil {
				return false, false, "not in the registry"
			}
			ids := make([]string, 0, len(users))
			has := map[string]bool{}
			for _, u := range users {
				ids = append(ids, u.UserID)
				has[u.UserID] = true
			}
			var ok bool
			switch {
			case st.Contains != "":
				ok = has[st.Contains]
			case st.Lacks != "":
				ok = !has[st.Lacks]
			default:
				ok = len(users) == st.Count
			}
			return ok, ok, fmt.Sprintf("%d present: [%s]", len(ids), strings.Join(ids, ", "))
		}
	case ExpectMessages:
		return r.expectMessages(ctx, c, st)
	case ExpectError:
		from := r.window(st)
		expected = fmt.Sprintf("an error matching %q within %s", st.Reason, st.Within)
		check = func() (bool, bool, string) {
			errs := errorsOf(c.since(from), st.Channel, from)
			for _, e := range errs {
				if strings.Contains(strings.ToLower(e), strings.ToLower(st.Reason)) {
					return true, true, e
				}
			}
			return false, false, summarizeErrors(errs)
		}
	case ExpectNoError:
		from := r.window(st)
		expected = "no error"
		if st.For > 0 {
			expected += " for " + st.For.String()
		}
		wait = st.For
		check = func() (bool, bool, string) {
			errs := errorsOf(c.since(from), st.Channel, from)
			if len(errs) > 0 {
				return true, false, summarizeErrors(errs)
			}
			return false, true, "no error"
		}
	}
	ok, observed, err := r.poll(ctx, wait, check)
	if err != nil {
		return expected, observed, err
	}
	if !ok {
		return expected, observed, fmt.Errorf("expected %s; observed %s", expected, observed)
	}
	return expected, observed, nil
}

func (r *runner) window(st Step) time.Time {
	if st.Since == "last_step" {
		return r.stepStart
	}
	return r.start
}

func describeChannel(i registry.ChannelInfo) string {
	s := i.Status.String()
	if i.Reason != "" {
		s += " (" + i.Reason + ")"
	}
	if i.Attempts > 0 || i.Status == registry.StatusError {
		s += fmt.Sprintf(", attempt %d/%d", i.Attempts, i.MaxAttempts)
	}
	if i.LastError != "" {
		s += ", last error: " + i.LastError
	}
	return s
}

// attempts counts the channel's started rejoin attempts among evs.
func attempts(evs []registry.Event, ch registry.Name) int {
	n := 0
	for _, e := range evs {
		if re, ok := e.(registry.RetryEvent); ok && re.Scope == registry.ScopeChannel && re.Channel == ch && re.Outcome == registry.RetryStarted {
			n++
		}
	}
	return n
}

func (r *runner) expectAttempts(ctx context.Context, c *client, st Step) (string, string, error) {
	lo, hi := st.AtLeast, st.AtMost
	if st.Exactly >= 0 {
		lo, hi = st.Exactly, st.Exactly
	}
	var parts []string
	switch {
	case lo >= 0 && lo == hi:
		parts = append(parts, fmt.Sprintf("exactly %d attempts on %s", lo, st.Channel))
	case lo >= 0 && hi >= 0:
		parts = append(parts, fmt.Sprintf("%d to %d attempts on %s", lo, hi, st.Channel))
	case lo >= 0:
		parts = append(parts, fmt.Sprintf("at least %d attempts on %s", lo, st.Channel))
	default:
		parts = append(parts, fmt.Sprintf("at most %d attempts on %s", hi, st.Channel))
	}
	if lo >= 0 {
		parts = append(parts, "within "+st.Within.String())
	}
	if hi >= 0 && st.For > 0 {
		parts = append(parts, "and no more for "+st.For.String())
	}
	expected := strings.Join(parts, " ")
	observe := func() (int, string) {
		n := attempts(c.since(r.start), st.Channel)
		obs := fmt.Sprintf("%d attempts", n)
		if info, err := c.m.Info(st.Channel); err == nil {
			obs += "; channel " + describeChannel(info)
		}
		return n, obs
	}
	var obs string
	if lo >= 0 {
		ok, o, err := r.poll(ctx, st.Within, func() (bool, bool, string) {
			n, o := observe()
			if hi >= 0 && n > hi {
				return true, false, o
			}
			return n >= lo, n >= lo, o
		})
		obs = o
		if err != nil {
			return expected, obs, err
		}
		if !ok {
			return expected, obs, fmt.Errorf("expected %s; observed %s", expected, obs)
		}
	}
	if hi >= 0 {
		ok, o, err := r.poll(ctx, st.For, func() (bool, bool, string) {
			n, o := observe()
			if n > hi {
				return true, false, o
			}
			return false, true, o
		})
		obs = o
		if err != nil {
			return expected, obs, err
		}
		if !ok {
			return expected, obs, fmt.Errorf("expected %s; observed %s", expected, obs)
		}
	}
	return expected, obs, nil
}

// received returns the payloads of the messages c received on the
// channel that match st (kind, event).
func received(c *client, st Step, from time.Time) []registry.MessageEvent {
	var out []registry.MessageEvent
	for _, e := range c.since(from) {
		me, ok := e.(registry.MessageEvent)
		if !ok || me.Direction != registry.In || me.Channel != st.Channel || me.Kind != st.MessageKind {
			continue
		}
		if st.Event != "" && !strings.EqualFold(me.Event, st.Event) {
			continue
		}
		out = append(out, me)
	}
	return out
}

func (r *runner) expectMessages(ctx context.Context, c *client, st Step) (string, string, error) {
	what := string(st.MessageKind)
	if st.Event != "" {
		what += " " + st.Event
	}
	var expected string
	if st.Count >= 0 {
		expected = fmt.Sprintf("%d %s messages on %s within %s", st.Count, what, st.Channel, st.Within)
	} else {
		expected = fmt.Sprintf("at least %d %s messages on %s within %s", st.AtLeast, what, st.Channel, st.Within)
	}
	if len(st.Payloads) > 0 {
		expected += ", payloads in the order listed"
	}
	if st.OrderBy != "" {
		expected += fmt.Sprintf(", %q increasing", st.OrderBy)
	}
	want := st.Count
	if want < 0 {
		want = st.AtLeast
	}
	ok, obs, err := r.poll(ctx, st.Within, func() (bool, bool, string) {
		msgs := received(c, st, r.start)
		obs := fmt.Sprintf("%d messages", len(msgs))
		if len(msgs) < want {
			return false, false, obs
		}
		if st.Count >= 0 && len(msgs) > st.Count {
			return true, false, obs + " (more than expected): " + payloadList(msgs, 5)
		}
		for i, p := range st.Payloads {
			if !subset(p, msgs[i].Payload) {
				return true, false, fmt.Sprintf("%s; message %d is %s, expected it to contain %s", obs, i+1, clip(string(msgs[i].Payload)), p)
			}
		}
		if st.OrderBy != "" {
			var prev json.Number
			for i, m := range msgs {
				v, ok := member(m.Payload, st.OrderBy)
				if !ok {
					return true, false, fmt.Sprintf("%s; message %d has no number %q: %s", obs, i+1, st.OrderBy, clip(string(m.Payload)))
				}
				if i > 0 && !less(prev, v) {
					return true, false, fmt.Sprintf("%s; out of order at message %d: %s %s after %s", obs, i+1, st.OrderBy, v, prev)
				}
				prev = v
			}
		}
		return true, true, obs
	})
	if err != nil {
		return expected, obs, err
	}
	if !ok {
		return expected, obs, fmt.Errorf("expected %s; observed %s", expected, obs)
	}
	return expected, obs, nil
}

func payloadList(msgs []registry.MessageEvent, n int) string {
	var parts []string
	for i, m := range msgs {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, clip(string(m.Payload)))
	}
	return strings.Join(parts, ", ")
}

// clip shortens a received payload for a report, its secrets masked.
func clip(s string) string {
	s = registry.MaskText(s)
	if len(s) > 200 {
		n := 200
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n] + "…"
	}
	return s
}

// subset reports whether every member of the object want is in got with
// an equal value (objects compared recursively, other values exactly).
func subset(want, got []byte) bool {
	var w, g any
	if decode(want, &w) != nil || decode(got, &g) != nil {
		return false
	}
	return subsetValue(w, g)
}

func decode(b []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func subsetValue(w, g any) bool {
	switch w := w.(type) {
	case map[string]any:
		gm, ok := g.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			gv, ok := gm[k]
			if !ok || !subsetValue(v, gv) {
				return false
			}
		}
		return true
	case json.Number:
		gn, ok := g.(json.Number)
		if !ok {
			return false
		}
		wf, e1 := w.Float64()
		gf, e2 := gn.Float64()
		return e1 == nil && e2 == nil && wf == gf
	case []any:
		ga, ok := g.([]any)
		if !ok || len(ga) != len(w) {
			return false
		}
		for i := range w {
			if !subsetValue(w[i], ga[i]) {
				return false
			}
		}
		return true
	default:
		return w == g
	}
}

func member(payload []byte, key string) (json.Number, bool) {
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if d.Decode(&obj) != nil {
		return "", false
	}
	n, ok := obj[key].(json.Number)
	return n, ok
}

func less(a, b json.Number) bool {
	af, e1 := a.Float64()
	bf, e2 := b.Float64()
	return e1 == nil && e2 == nil && af < bf
}

// errorsOf lists the errors among evs (about ch when it is set): error
// events, failed and exhausted attempts, channels gone to error.
func errorsOf(evs []registry.Event, ch registry.Name, from time.Time) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, e := range evs {
		switch e := e.(type) {
		case registry.ErrorEvent:
			if ch.IsZero() || e.Channel == ch {
				if e.Code != "" {
					add(e.Code + ": " + e.Message)
				} else {
					add(e.Message)
				}
			}
		case registry.RetryEvent:
			if e.Scope == registry.ScopeChannel && (ch.IsZero() || e.Channel == ch) &&
				(e.Outcome == registry.RetryFailed || e.Outcome == registry.RetryExhausted) {
				add(e.Err)
			}
		case registry.ChannelStateEvent:
			if !ch.IsZero() && e.Channel != ch {
				continue
			}
			switch {
			case e.Status == registry.StatusError:
				add(firstNonEmpty(errorText(e.Info), e.Reason, "channel error"))
			case e.Info.LastError != "" && !e.Info.LastErrorAt.Before(from):
				add(errorText(e.Info))
			}
		}
	}
	return out
}

func summarizeErrors(errs []string) string {
	if len(errs) == 0 {
		return "no error"
	}
	if len(errs) > 5 {
		return fmt.Sprintf("%d errors: %s, …", len(errs), strings.Join(errs[:5], "; "))
	}
	return fmt.Sprintf("%d errors: %s", len(errs), strings.Join(errs, "; "))
}

// Clients lists the client names a scenario connects, in order.
func (sc *Scenario) Clients() []string {
	seen := map[string]bool{}
	var out []string
	for _, st := range sc.Steps {
		if st.Kind == StepConnect && !seen[st.Client] {
			seen[st.Client] = true
			out = append(out, st.Client)
		}
	}
	return out
}

func errorText(i registry.ChannelInfo) string {
	if i.LastErrorCode != "" && !strings.HasPrefix(i.LastError, i.LastErrorCode) {
		return i.LastErrorCode + ": " + i.LastError
	}
	return i.LastError
}
