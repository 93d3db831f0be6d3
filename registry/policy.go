package registry

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Policy decides when a failed channel is rejoined and when to give up.
// A series of attempts starts when a joined channel fails (or a join is
// refused) while the socket is up; attempt n of the series waits
// Delay(n) and the series stops after MaxAttempts failed attempts (the
// channel then stays in StatusError until RetryNow). A successful join
// ends the series and resets the count. Policies must be safe for
// concurrent use; the manager calls them from many goroutines.
//
// Custom strategies implement Policy ([PolicyFunc] makes one from a
// function); a policy that also implements [Gate] can hold attempts of
// all channels, as [Breaker] does.
type Policy interface {
	// Info describes the policy for display; Info().Spec parses back
	// with [ParsePolicy] for the built-in policies.
	Info() PolicyInfo
	// MaxAttempts is the number of attempts per series; 0 is unlimited.
	MaxAttempts() int
	// Delay is the wait before attempt n (from 1). rnd returns uniform
	// numbers in [0, 1) for jitter.
	Delay(n int, rnd func() float64) time.Duration
}

// Gate is implemented by policies that hold attempts across channels.
type Gate interface {
	// Allow reports whether an attempt may start at now. When it may not,
	// retryAt is when to ask again.
	Allow(now time.Time) (ok bool, retryAt time.Time)
	// Record reports the outcome of an attempt that Allow let through,
	// and of every other join failure or success.
	Record(now time.Time, success bool)
	// State describes the gate at now.
	State(now time.Time) BreakerInfo
}

// DefaultMaxAttempts is the default number of attempts per series.
const DefaultMaxAttempts = 5

// DefaultPolicy returns the default policy: a fixed 3 s delay, at most 5
// attempts, as in the original flow.
func DefaultPolicy() Policy { return Fixed{Interval: 3 * time.Second, Max: DefaultMaxAttempts} }

// Fixed waits the same delay before every attempt.
type Fixed struct {
	// Interval is the wait before each attempt (default 3 s).
	Interval time.Duration
	// Max is the attempts per series: 0 means DefaultMaxAttempts, a
	// negative value unlimited.
	Max int
}

// Info implements Policy.
func (p Fixed) Info() PolicyInfo {
	d := p.delay()
	return PolicyInfo{
		Name:        "fixed",
		Spec:        fmt.Sprintf("fixed:%s,max=%d", d, p.MaxAttempts()),
		Description: fmt.Sprintf("fixed delay %s, %s", d, maxText(p.MaxAttempts())),
		MaxAttempts: p.MaxAttempts(),
	}
}

// MaxAttempts implements Policy.
func (p Fixed) MaxAttempts() int { return maxOrDefault(p.Max) }

// Delay implements Policy.
func (p Fixed) Delay(int, func() float64) time.Duration { return p.delay() }

func (p Fixed) delay() time.Duration {
	if p.Interval <= 0 {
		return 3 * time.Second
	}
	return p.Interval
}

// Exponential doubles (by Factor) the delay after each attempt, up to
// Cap, with random jitter of ±Jitter of the delay.
type Exponential struct {
	// Base is the first delay (default 1 s).
	Base time.Duration
	// Factor multiplies the delay per attempt (default 2).
	Factor float64
	// Cap bounds the delay (default 30 s).
	Cap time.Duration
	// Jitter is the fraction of random spread, 0..1 (default 0.2).
	// Negative means none.
	Jitter float64
	// Max is the attempts per series: 0 means DefaultMaxAttempts, a
	// negative value unlimited.
	Max int
}

func (p Exponential) norm() Exponential {
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Factor < 1 {
		p.Factor = 2
	}
	if p.Cap <= 0 {
		p.Cap = 30 * time.Second
	}
	if p.Cap < p.Base {
		p.Cap = p.Base
	}
	switch {
	case p.Jitter == 0:
		p.Jitter = 0.2
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter > 1:
		p.Jitter = 1
	}
	return p
}

// Info implements Policy.
func (p Exponential) Info() PolicyInfo {
	q := p.norm()
	j := q.Jitter
	if j == 0 {
		j = -1
	}
	return PolicyInfo{
		Name: "exponential",
		Spec: fmt.Sprintf("exp:base=%s,factor=%s,cap=%s,jitter=%s,max=%d", q.Base, ftoa(q.Factor), q.Cap, ftoa(j), p.MaxAttempts()),
		Description: fmt.Sprintf("exponential backoff from %s ×%s up to %s, jitter ±%d%%, %s",
			q.Base, ftoa(q.Factor), q.Cap, int(math.Round(q.Jitter*100)), maxText(p.MaxAttempts())),
		MaxAttempts: p.MaxAttempts(),
	}
}

// MaxAttempts implements Policy.
func (p Exponential) MaxAttempts() int { return maxOrDefault(p.Max) }

// Delay implements Policy: min(Cap, Base·Factor^(n-1)), then ±Jitter,
// never below 0 nor above Cap.
func (p Exponential) Delay(n int, rnd func() float64) time.Duration {
	q := p.norm()
	if n < 1 {
		n = 1
	}
	d := float64(q.Base) * math.Pow(q.Factor, float64(n-1))
	if d > float64(q.Cap) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(q.Cap)
	}
	if q.Jitter > 0 && rnd != nil {
		d += d * q.Jitter * (2*rnd() - 1)
	}
	d = math.Max(0, math.Min(d, float64(q.Cap)))
	return time.Duration(d)
}

// Breaker is a circuit breaker over all channels of a manager: after
// Threshold failures within Window it opens and holds every attempt for
// Cooldown; then it lets one probe attempt through (half-open). A
// successful probe closes it, a failed one opens it again. Between
// attempts it waits as Base says. Use [NewBreaker]; a Breaker must not be
// copied after use.
type Breaker struct {
	cfg BreakerConfig

	mu       sync.Mutex
	failures []time.Time // within the window, oldest first
	state    string
	until    time.Time // end of the open period
	probing  bool
}

// BreakerConfig configures a [Breaker]. Zero fields get the defaults.
type BreakerConfig struct {
	// Threshold is the failures within Window that open it (default 5).
	Threshold int
	// Window is the failure-counting window (default 30 s).
	Window time.Duration
	// Cooldown is how long it stays open before a probe (default 10 s).
	Cooldown time.Duration
	// Delay is the wait between attempts while closed (default 3 s).
	Delay time.Duration
	// Max is the attempts per series: 0 means DefaultMaxAttempts, a
	// negative value unlimited.
	Max int
}

// NewBreaker returns a closed circuit breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.Threshold <= 0 {
		cfg.Threshold = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Second
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 10 * time.Second
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 3 * time.Second
	}
	return &Breaker{cfg: cfg, state: "closed"}
}

// Config returns the breaker's configuration with defaults applied.
func (b *Breaker) Config() BreakerConfig { return b.cfg }

// Info implements Policy.
func (b *Breaker) Info() PolicyInfo {
	c := b.cfg
	return PolicyInfo{
		Name: "breaker",
		Spec: fmt.Sprintf("breaker:threshold=%d,window=%s,cooldown=%s,delay=%s,max=%d", c.Threshold, c.Window, c.Cooldown, c.Delay, b.MaxAttempts()),
		Description: fmt.Sprintf("circuit breaker: opens after %d failures within %s, probes after %s; delay %s, %s",
			c.Threshold, c.Window, c.Cooldown, c.Delay, maxText(b.MaxAttempts())),
		MaxAttempts: b.MaxAttempts(),
	}
}

// MaxAttempts implements Policy.
func (b *Breaker) MaxAttempts() int { return maxOrDefault(b.cfg.Max) }

// Delay implements Policy.
func (b *Breaker) Delay(int, func() float64) time.Duration { return b.cfg.Delay }

// Allow implements Gate.
func (b *Breaker) Allow(now time.Time) (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case "open":
		if now.Before(b.until) {
			return false, b.until
		}
		b.state = "half-open"
		b.probing = true
		return true, time.Time{}
	case "half-open":
		if b.probing {
			return false, now.Add(b.cfg.Cooldown)
		}
		b.probing = true
		return true, time.Time{}
	}
	return true, time.Time{}
}

// Record implements Gate.
func (b *Breaker) Record(now time.Time, success bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if success {
		if b.state != "closed" {
			b.state = "closed"
			b.failures = b.failures[:0]
		}
		b.probing = false
		return
	}
	switch b.state {
	case "half-open":
		b.state = "open"
		b.until = now.Add(b.cfg.Cooldown)
		b.probing = false
		return
	case "open":
		return
	}
	b.prune(now)
	b.failures = append(b.failures, now)
	if len(b.failures) >= b.cfg.Threshold {
		b.state = "open"
		b.until = now.Add(b.cfg.Cooldown)
		b.failures = b.failures[:0]
	}
}

func (b *Breaker) prune(now time.Time) {
	cut := now.Add(-b.cfg.Window)
	i := 0
	for i < len(b.failures) && !b.failures[i].After(cut) {
		i++
	}
	b.failures = append(b.failures[:0], b.failures[i:]...)
}

// State implements Gate.
func (b *Breaker) State(now time.Time) BreakerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == "closed" {
		b.prune(now)
	}
	info := BreakerInfo{State: b.state, Failures: len(b.failures)}
	if b.state == "open" {
		info.OpenUntil = b.until
	}
	return info
}

// PolicyFunc is a custom policy made of a function.
type PolicyFunc struct {
	// Name names the policy for display.
	Name string
	// Max is the attempts per series: 0 means DefaultMaxAttempts, a
	// negative value unlimited.
	Max int
	// F returns the delay before attempt n.
	F func(n int, rnd func() float64) time.Duration
}

// Info implements Policy.
func (p PolicyFunc) Info() PolicyInfo {
	return PolicyInfo{Name: p.Name, Spec: p.Name, Description: fmt.Sprintf("custom policy %q, %s", p.Name, maxText(p.MaxAttempts())), MaxAttempts: p.MaxAttempts()}
}

// MaxAttempts implements Policy.
func (p PolicyFunc) MaxAttempts() int { return maxOrDefault(p.Max) }

// Delay implements Policy.
func (p PolicyFunc) Delay(n int, rnd func() float64) time.Duration {
	if p.F == nil {
		return 0
	}
	return max(0, p.F(n, rnd))
}

// ParsePolicy parses a policy spec:
//
//	fixed[:DELAY][,max=N]                 fixed:3s  fixed:500ms,max=10
//	exp[:base=D,factor=F,cap=D,jitter=J,max=N]   (also "exponential")
//	breaker[:threshold=N,window=D,cooldown=D,delay=D,max=N]
//
// max=0 means unlimited. Unknown keys and bad values are errors.
func ParsePolicy(spec string) (Policy, error) {
	kind, args, _ := strings.Cut(strings.TrimSpace(spec), ":")
	kv := map[string]string{}
	var positional []string
	if args != "" {
		for _, part := range strings.Split(args, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				positional = append(positional, k)
				continue
			}
			if _, dup := kv[k]; dup {
				return nil, fmt.Errorf("registry: policy %q: %s given twice", spec, k)
			}
			kv[k] = v
		}
	}
	p := policyParser{spec: spec, kv: kv}
	maxN := p.int("max", DefaultMaxAttempts)
	if maxN == 0 {
		maxN = Unlimited
	}
	switch kind {
	case "fixed":
		f := Fixed{Interval: 3 * time.Second, Max: maxN}
		if len(positional) > 1 {
			return nil, fmt.Errorf("registry: policy %q: want fixed:DELAY[,max=N]", spec)
		}
		if len(positional) == 1 {
			kv["delay"] = positional[0]
		}
		f.Interval = p.dur("delay", f.Interval)
		if err := p.done(); err != nil {
			return nil, err
		}
		return f, nil
	case "exp", "exponential":
		if len(positional) > 0 {
			return nil, fmt.Errorf("registry: policy %q: want exp:base=D,factor=F,cap=D,jitter=J,max=N", spec)
		}
		e := Exponential{Max: maxN}
		e.Base = p.dur("base", time.Second)
		e.Factor = p.float("factor", 2)
		e.Cap = p.dur("cap", 30*time.Second)
		e.Jitter = p.float("jitter", 0.2)
		if err := p.done(); err != nil {
			return nil, err
		}
		if e.Factor < 1 {
			return nil, fmt.Errorf("registry: policy %q: factor must be >= 1", spec)
		}
		if e.Jitter > 1 {
			return nil, fmt.Errorf("registry: policy %q: jitter must be <= 1", spec)
		}
		return e, nil
	case "breaker":
		if len(positional) > 0 {
			return nil, fmt.Errorf("registry: policy %q: want breaker:threshold=N,window=D,cooldown=D,delay=D,max=N", spec)
		}
		c := BreakerConfig{Max: maxN}
		c.Threshold = p.int("threshold", 5)
		c.Window = p.dur("window", 30*time.Second)
		c.Cooldown = p.dur("cooldown", 10*time.Second)
		c.Delay = p.dur("delay", 3*time.Second)
		if err := p.done(); err != nil {
			return nil, err
		}
		if c.Threshold < 1 {
			return nil, fmt.Errorf("registry: policy %q: threshold must be >= 1", spec)
		}
		return NewBreaker(c), nil
	}
	return nil, fmt.Errorf("registry: unknown policy %q (want fixed[:3s], exp or breaker, with ,key=value options)", spec)
}

type policyParser struct {
	spec string
	kv   map[string]string
	err  error
}

func (p *policyParser) take(k string) (string, bool) {
	v, ok := p.kv[k]
	delete(p.kv, k)
	return v, ok
}

func (p *policyParser) dur(k string, def time.Duration) time.Duration {
	v, ok := p.take(k)
	if !ok || p.err != nil {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.err = fmt.Errorf("registry: policy %q: %s=%q is not a positive duration", p.spec, k, v)
		return def
	}
	return d
}

func (p *policyParser) int(k string, def int) int {
	v, ok := p.take(k)
	if !ok || p.err != nil {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		p.err = fmt.Errorf("registry: policy %q: %s=%q is not a non-negative integer", p.spec, k, v)
		return def
	}
	return n
}

func (p *policyParser) float(k string, def float64) float64 {
	v, ok := p.take(k)
	if !ok || p.err != nil {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.err = fmt.Errorf("registry: policy %q: %s=%q is not a number", p.spec, k, v)
		return def
	}
	return f
}

func (p *policyParser) done() error {
	if p.err != nil {
		return p.err
	}
	for k := range p.kv {
		return fmt.Errorf("registry: policy %q: unknown option %q", p.spec, k)
	}
	return nil
}

// Unlimited as a policy's Max removes the limit on attempts.
const Unlimited = -1

// maxOrDefault maps a Max field to MaxAttempts: 0 is the default,
// negative is unlimited (0).
func maxOrDefault(n int) int {
	switch {
	case n == 0:
		return DefaultMaxAttempts
	case n < 0:
		return 0
	}
	return n
}

func maxText(n int) string {
	if n == 0 {
		return "unlimited attempts"
	}
	if n == 1 {
		return "at most 1 attempt"
	}
	return fmt.Sprintf("at most %d attempts", n)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
