package registry

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestFixedLadder(t *testing.T) {
	p := DefaultPolicy()
	if p.MaxAttempts() != 5 {
		t.Fatalf("default max = %d", p.MaxAttempts())
	}
	for n := 1; n <= 5; n++ {
		if d := p.Delay(n, nil); d != 3*time.Second {
			t.Fatalf("attempt %d delay %v", n, d)
		}
	}
	if got := p.Info().Spec; got != "fixed:3s,max=5" {
		t.Fatalf("spec %q", got)
	}
}

func TestExponentialLadder(t *testing.T) {
	p := Exponential{Base: time.Second, Factor: 2, Cap: 10 * time.Second, Jitter: -1}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		if d := p.Delay(i+1, nil); d != w*time.Second {
			t.Fatalf("attempt %d delay %v, want %v", i+1, d, w*time.Second)
		}
	}
	// With jitter the delay stays within ±20% of the nominal and within
	// the cap, and varies.
	j := Exponential{Base: time.Second, Factor: 2, Cap: 10 * time.Second, Jitter: 0.2}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[time.Duration]bool{}
	for range 200 {
		d := j.Delay(3, r.Float64)
		if d < 3200*time.Millisecond || d > 4800*time.Millisecond {
			t.Fatalf("jittered delay %v out of 4s±20%%", d)
		}
		seen[d] = true
		if c := j.Delay(20, r.Float64); c > 10*time.Second {
			t.Fatalf("capped delay %v", c)
		}
	}
	if len(seen) < 50 {
		t.Fatalf("jitter produced only %d distinct delays", len(seen))
	}
	// Huge attempt numbers do not overflow.
	if d := j.Delay(1<<30, r.Float64); d <= 0 || d > 10*time.Second {
		t.Fatalf("delay for a huge attempt: %v", d)
	}
}

func TestBreakerStates(t *testing.T) {
	b := NewBreaker(BreakerConfig{Threshold: 3, Window: 10 * time.Second, Cooldown: 5 * time.Second})
	t0 := time.Unix(1000, 0)
	// Failures spread wider than the window do not open it.
	b.Record(t0, false)
	b.Record(t0.Add(11*time.Second), false)
	b.Record(t0.Add(12*time.Second), false)
	if s := b.State(t0.Add(12 * time.Second)); s.State != "closed" || s.Failures != 2 {
		t.Fatalf("state %+v, want closed with 2 failures", s)
	}
	now := t0.Add(13 * time.Second)
	b.Record(now, false)
	if s := b.State(now); s.State != "open" || !s.OpenUntil.Equal(now.Add(5*time.Second)) {
		t.Fatalf("state %+v, want open until +5s", s)
	}
	if ok, at := b.Allow(now.Add(time.Second)); ok || !at.Equal(now.Add(5*time.Second)) {
		t.Fatalf("open breaker allowed (%v) or wrong retryAt %v", ok, at)
	}
	// After the cooldown: one probe, the others wait.
	later := now.Add(5 * time.Second)
	if ok, _ := b.Allow(later); !ok {
		t.Fatal("probe not allowed after cooldown")
	}
	if b.State(later).State != "half-open" {
		t.Fatal("not half-open during the probe")
	}
	if ok, _ := b.Allow(later); ok {
		t.Fatal("second attempt allowed while probing")
	}
	// A failed probe opens it again.
	b.Record(later, false)
	if s := b.State(later); s.State != "open" {
		t.Fatalf("state after failed probe %+v", s)
	}
	// A successful probe closes it.
	again := later.Add(5 * time.Second)
	if ok, _ := b.Allow(again); !ok {
		t.Fatal("second probe not allowed")
	}
	b.Record(again, true)
	if s := b.State(again); s.State != "closed" || s.Failures != 0 {
		t.Fatalf("state after good probe %+v", s)
	}
	if ok, _ := b.Allow(again); !ok {
		t.Fatal("closed breaker refused")
	}
}

func TestParsePolicy(t *testing.T) {
	for _, spec := range []string{
		"fixed", "fixed:3s", "fixed:500ms,max=10", "fixed:delay=2s,max=0",
		"exp", "exponential", "exp:base=100ms,factor=1.5,cap=5s,jitter=0.1,max=7", "exp:jitter=-1",
		"breaker", "breaker:threshold=2,window=1m,cooldown=2s,delay=1s,max=3",
	} {
		p, err := ParsePolicy(spec)
		if err != nil {
			t.Fatalf("ParsePolicy(%q): %v", spec, err)
		}
		// The canonical spec parses back to the same canonical spec.
		p2, err := ParsePolicy(p.Info().Spec)
		if err != nil {
			t.Fatalf("ParsePolicy(%q) (canonical of %q): %v", p.Info().Spec, spec, err)
		}
		if p2.Info().Spec != p.Info().Spec {
			t.Fatalf("spec round trip %q -> %q", p.Info().Spec, p2.Info().Spec)
		}
		if p.Info().Description == "" {
			t.Fatalf("%q has no description", spec)
		}
	}
	if p, _ := ParsePolicy("fixed:500ms,max=10"); p.Delay(1, nil) != 500*time.Millisecond || p.MaxAttempts() != 10 {
		t.Fatalf("fixed:500ms,max=10 = %+v", p.Info())
	}
	if p, _ := ParsePolicy("fixed:1s,max=0"); p.MaxAttempts() != 0 || !strings.Contains(p.Info().Description, "unlimited") {
		t.Fatalf("max=0 = %+v", p.Info())
	}
	if p, _ := ParsePolicy("breaker:threshold=2"); p.(*Breaker).Config().Threshold != 2 {
		t.Fatal("breaker threshold not parsed")
	}
	for _, bad := range []string{"", "retry", "fixed:abc", "fixed:-1s", "fixed:1s:2s", "fixed:1s,2s", "exp:base=0s", "exp:factor=0.5", "exp:jitter=2",
		"exp:nope=1", "breaker:threshold=0", "fixed:max=-1", "fixed:max=x", "exp:3s", "fixed:1s,max=1,max=2"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Fatalf("ParsePolicy(%q) succeeded", bad)
		}
	}
}

func TestPolicyFunc(t *testing.T) {
	p := PolicyFunc{Name: "linear", Max: Unlimited, F: func(n int, _ func() float64) time.Duration { return time.Duration(n) * time.Second }}
	if p.Delay(3, nil) != 3*time.Second || p.MaxAttempts() != 0 || p.Info().Name != "linear" {
		t.Fatalf("PolicyFunc: %+v", p.Info())
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"fixed", "fixed:3s,max=5", "exp:base=1s,factor=2,cap=30s,jitter=0.2,max=5",
		"breaker:threshold=5,window=30s,cooldown=10s,delay=3s,max=5", "exp:factor=1e308", "fixed:1ns,max=0", ":", "exp:jitter=NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := ParsePolicy(spec)
		if err != nil {
			return
		}
		info := p.Info()
		p2, err := ParsePolicy(info.Spec)
		if err != nil {
			t.Fatalf("canonical spec %q of %q does not parse: %v", info.Spec, spec, err)
		}
		if p2.Info().Spec != info.Spec {
			t.Fatalf("spec round trip %q -> %q", info.Spec, p2.Info().Spec)
		}
		for n := 1; n <= 70; n += 23 {
			if d := p.Delay(n, func() float64 { return 0.999 }); d < 0 {
				t.Fatalf("negative delay %v", d)
			}
		}
	})
}
