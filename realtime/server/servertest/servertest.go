// Package servertest starts rtm's embedded Realtime server for tests, on a
// loopback port, closed by t.Cleanup (which waits for all of its
// goroutines). It also provides a fake clock for token expiry and rate
// windows.
package servertest

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/server"
	"rtm/realtime/token"
)

// Server is a started server with its URLs and secret.
type Server struct {
	*server.Server
	// URL is the project URL, http://127.0.0.1:<port>.
	URL string
	// WSURL is ws://127.0.0.1:<port>/realtime/v1/websocket.
	WSURL string
	// Clock is the fake clock when WithClock was given, else nil.
	Clock *Clock
}

type options struct {
	cfg   server.Config
	clock *Clock
}

// Option configures New.
type Option func(*options)

// WithLimits sets the server's limits (server.Limits{Off: true} disables
// them).
func WithLimits(l server.Limits) Option { return func(o *options) { o.cfg.Limits = l } }

// WithConfig lets f adjust the configuration.
func WithConfig(f func(*server.Config)) Option {
	return func(o *options) { f(&o.cfg) }
}

// WithClock runs the server on a fake clock: token expiry, rate windows,
// pauses and join rejections follow c.
func WithClock(c *Clock) Option { return func(o *options) { o.clock = c } }

// New starts a server on 127.0.0.1:0 with a random secret; t.Cleanup
// closes it.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := &options{}
	o.cfg.JWTSecret = []byte(rand.Text())
	for _, opt := range opts {
		opt(o)
	}
	if o.clock != nil {
		o.cfg.Now = o.clock.Now
		o.cfg.AfterFunc = o.clock.AfterFunc
	}
	logs := &LogWriter{t: t}
	if o.cfg.Logger == nil && os.Getenv("RTM_TEST_LOG") != "" {
		o.cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := server.New(o.cfg)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("servertest: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		logs.Stop()
	})
	return &Server{
		Server: s,
		URL:    s.URL(),
		WSURL:  "ws://" + s.Addr() + "/realtime/v1/websocket",
		Clock:  o.clock,
	}
}

// SocketURL returns the WebSocket URL with apikey and vsn ("1.0.0",
// "2.0.0", or "" to leave it out).
func (s *Server) SocketURL(apikey, vsn string) string {
	q := url.Values{}
	q.Set("apikey", apikey)
	if vsn != "" {
		q.Set("vsn", vsn)
	}
	return s.WSURL + "?" + q.Encode()
}

func (s *Server) now() time.Time {
	if s.Clock != nil {
		return s.Clock.Now()
	}
	return time.Now()
}

// UserToken signs a token with role "authenticated", sub, exp now+ttl
// (on the server's clock) and extra claims.
func (s *Server) UserToken(t testing.TB, sub string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{
		"role": server.RoleAuthenticated, "sub": sub,
		"iat": s.now().Unix(), "exp": s.now().Add(ttl).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	return s.Token(t, claims)
}

// Token signs arbitrary claims with the server's secret.
func (s *Server) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := token.Sign(s.Secret(), claims)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	return tok
}

// LogWriter is an io.Writer that passes each write to t.Log (shown when
// the test fails, or with -v) until Stop; writes after Stop are dropped,
// so goroutines that log until they are shut down cannot log after the
// test has ended.
type LogWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

// NewLogWriter returns a LogWriter for t, stopped by t's cleanup (call
// it before registering the cleanups of what logs to it, so that it
// stops after them).
func NewLogWriter(t testing.TB) *LogWriter {
	l := &LogWriter{t: t}
	t.Cleanup(l.Stop)
	return l
}

// Write passes p, without its final newline, to t.Log.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Stop drops every later write.
func (l *LogWriter) Stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// Clock is a fake clock for server.Config.Now and AfterFunc. Time moves
// only by Advance, which runs the callbacks that fall due, in order, on
// the caller's goroutine.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers map[int]*timer
}

type timer struct {
	id   int
	when time.Time
	f    func()
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, timers: make(map[int]*timer)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d; the returned function cancels it.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	id := c.seq
	c.timers[id] = &timer{id: id, when: c.now.Add(d), f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[id]
		delete(c.timers, id)
		return ok
	}
}

// Pending returns how many callbacks are scheduled.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the clock forward by d, running every callback that falls
// due (including ones scheduled by those callbacks), in time order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due []*timer
		for _, t := range c.timers {
			if !t.when.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			c.now = end
			c.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool {
			if !due[i].when.Equal(due[j].when) {
				return due[i].when.Before(due[j].when)
			}
			return due[i].id < due[j].id
		})
		next := due[0]
		delete(c.timers, next.id)
		if next.when.After(c.now) {
			c.now = next.when
		}
		c.mu.Unlock()
		next.f()
	}
}

// String describes the clock, for failure messages.
func (c *Clock) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("fake clock at %s with %d timers", c.now.Format(time.RFC3339Nano), len(c.timers))
}
