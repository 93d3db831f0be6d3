package headless

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"rtm/registry"
)

// swarmClient is one simulated client of a swarm: its manager, its
// channel, the broadcasts it received and the errors it met.
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
