package realtime

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// Log attribute keys.
const (
	logURL     = "url"
	logTopic   = "topic"
	logEvent   = "event"
	logRef     = "ref"
	logJoinRef = "join_ref"
	logErr     = "err"
	logAttempt = "attempt"
	logDelay   = "delay"
	logConn    = "conn"
	logCount   = "count"
)

// noticeBuffer and noticeBufferBytes bound the notices waiting for
// OnStatus and OnHeartbeat (few by nature: a socket status change per
// connection attempt, a heartbeat per interval; statuses are forced,
// heartbeats softly, see queue); frameCost and noticeCost are what a
// tapped frame (besides its bytes) and a notice cost in their queues.
const (
	noticeBuffer      = 1024
	noticeBufferBytes = 1 << 20
	frameCost         = int(unsafe.Sizeof(Frame{}))
	noticeCost        = int(unsafe.Sizeof(StatusChange{})) + 64
)

// closeGrace bounds the wait for the writer to send a close frame before
// the connection is torn down regardless.
const closeGrace = time.Second

// Socket is a connection to a Supabase Realtime server that reconnects
// forever until closed. It is safe for concurrent use.
type Socket struct {
	opts       Options
	stampReads bool // no injected clock: stamp frames per read (readClock)
	endpoint   string
	vsn        protocol.Version
	log        *slog.Logger
	now        func() time.Time

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // run loop and connection goroutines
	dwg    sync.WaitGroup // delivery workers (events, notices, tap)

	notices *queue[notice]
	tap     atomic.Pointer[queue[Frame]]
	// tapDrops counts the drops of taps replaced by SetTap.
	tapDrops atomic.Uint64

	mu        sync.Mutex
	started   bool
	closed    bool
	status    Status
	conn      *conn // the open connection; nil when none
	connGen   uint64
	channels  map[string]*Channel
	pending   map[string]*push
	ref       uint64
	token     string
	lastErr   error
	opened    chan struct{} // closed at the next open (or Close), then replaced
	attempted chan struct{} // closed after the first connection attempt
	// attempt is the connection attempt under way (nil when none), for
	// Connect to abandon.
	attempt *attempt

	st counters
}

// counters are the socket's statistics, updated atomically.
type counters struct {
	connects, reconnects, connectFailures, disconnects atomic.Uint64
	framesIn, framesOut, bytesIn, bytesOut             atomic.Uint64
	decodeErrors, hbSent, hbTimeouts                   atomic.Uint64
	drops, sendRejects                                 atomic.Uint64
	rtt, rttAvg                                        atomic.Int64
	connectedAt                                        atomic.Int64 // unix nanos, 0 when not connected
}

// notice is a socket-level notification for OnStatus / OnHeartbeat.
type notice struct {
	status    *StatusChange
	heartbeat *Heartbeat
}

// NewSocket returns a socket for the project or WebSocket URL rawURL (see
// [EndpointURL]) without connecting; call [Socket.Connect]. Channels may
// be created before that.
func NewSocket(rawURL string, opts *Options) (*Socket, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	endpoint, err := EndpointURL(rawURL, o.APIKey, o.Vsn, o.LogLevel)
	if err != nil {
		return nil, err
	}
	s := &Socket{
		opts:       o,
		stampReads: opts == nil || opts.Now == nil,
		endpoint:   endpoint,
		vsn:        o.Vsn,
		log:        o.Logger,
		now:        o.Now,
		status:     StatusConnecting,
		channels:   make(map[string]*Channel),
		pending:    make(map[string]*push),
		token:      o.AccessToken,
		opened:     make(chan struct{}),
		attempted:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if o.OnStatus != nil || o.OnHeartbeat != nil {
		s.notices = newQueue(s.deliverNotice, queueLimits{count: noticeBuffer, bytes: noticeBufferBytes}, &s.dwg)
	}
	if o.Tap != nil {
		s.tap.Store(newQueue(o.Tap, s.tapLimits(), &s.dwg))
	}
	return s, nil
}

// Dial connects to rawURL (see [EndpointURL]) and returns the open socket.
// It keeps trying on the reconnect ladder until ctx is done (the attempt
// under way then ends too, as with [Socket.Connect]), except when the
// server refuses the upgrade with an HTTP status (a *HandshakeError, e.g.
// 401 for a bad key), which is returned at once. On error the socket is
// closed.
func Dial(ctx context.Context, rawURL string, opts *Options) (*Socket, error) {
	s, err := NewSocket(rawURL, opts)
	if err != nil {
		return nil, err
	}
	s.start()
	select {
	case <-s.attempted:
	case <-ctx.Done():
	}
	s.mu.Lock()
	var he *HandshakeError
	refused := s.status != StatusOpen && errors.As(s.lastErr, &he)
	err = s.lastErr
	s.mu.Unlock()
	if refused {
		s.Close()
		return nil, fmt.Errorf("realtime: dial %s: %w", maskURL(s.endpoint), err)
	}
	if err := s.Connect(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect starts the connection loop if it is not running and waits until
// the socket is open or ctx is done. When ctx is done first, the
// connection attempt under way is abandoned at once, whatever step it is
// in (DNS and TCP, TLS handshake, upgrade request and response: its
// connection is closed), and Connect returns an error wrapping ctx's
// error that names that step: the first attempt ends no later than ctx's
// deadline, even when [Options].HandshakeTimeout is longer. The loop
// keeps reconnecting after Connect returns, whatever the outcome, until
// [Socket.Close]; its later attempts are bounded by HandshakeTimeout
// alone.
func (s *Socket) Connect(ctx context.Context) error {
	s.start()
	for {
		s.mu.Lock()
		closed, open, opened, last := s.closed, s.status == StatusOpen, s.opened, s.lastErr
		s.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case open:
			return nil
		}
		select {
		case <-opened:
		case <-ctx.Done():
			s.mu.Lock()
			a := s.attempt
			s.mu.Unlock()
			if a != nil {
				step := a.step()
				a.cancel(context.Cause(ctx))
				return fmt.Errorf("realtime: connect %s: %w %s", maskURL(s.endpoint), ctx.Err(), step)
			}
			if last != nil {
				return fmt.Errorf("realtime: connect %s: %w (last attempt: %w)", maskURL(s.endpoint), ctx.Err(), last)
			}
			return fmt.Errorf("realtime: connect %s: %w", maskURL(s.endpoint), ctx.Err())
		}
	}
}

func (s *Socket) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	s.wg.Add(1)
	go s.run()
}

// Close closes the connection (1000) and every channel, stops
// reconnecting, and waits for the client's goroutines, including the
// delivery of the events already queued. It must not be called from an
// event, status or tap callback (it would wait for itself).
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		s.dwg.Wait()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()

	s.mu.Lock()
	s.conn = nil
	s.st.connectedAt.Store(0)
	for _, ch := range s.channels {
		s.closeChannelLocked(ch, ErrClosed, ErrClosed)
	}
	for _, p := range s.pending {
		s.completeLocked(p, "", nil, ErrClosed)
	}
	prev := s.status
	s.status = StatusClosed
	close(s.opened)
	s.opened = make(chan struct{})
	s.mu.Unlock()
	s.notifyStatus(StatusChange{Status: StatusClosed, Prev: prev, At: s.now(), Err: ErrClosed})
	s.dwg.Wait()
	return nil
}

// SetTap installs fn as the frame tap (see [Options].Tap), replacing the
// current one, or removes the tap when fn is nil. Frames already queued
// for the previous tap are still delivered to it.
func (s *Socket) SetTap(fn func(Frame)) {
	var q *queue[Frame]
	if fn != nil {
		q = newQueue(fn, s.tapLimits(), &s.dwg)
	}
	if old := s.tap.Swap(q); old != nil {
		s.tapDrops.Add(old.dropped.Load())
	}
}

func (s *Socket) tapLimits() queueLimits {
	return queueLimits{count: s.opts.TapBuffer, bytes: s.opts.TapBufferBytes}
}

// Status returns the current connection status.
func (s *Socket) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Endpoint returns the WebSocket URL with the API key masked.
func (s *Socket) Endpoint() string { return maskURL(s.endpoint) }

// Vsn returns the serializer version in use.
func (s *Socket) Vsn() protocol.Version { return s.vsn }

// Stats returns the socket's counters.
func (s *Socket) Stats() Stats {
	s.mu.Lock()
	st := Stats{Status: s.status, Channels: len(s.channels)}
	s.mu.Unlock()
	c := &s.st
	if at := c.connectedAt.Load(); at != 0 {
		st.ConnectedAt = time.Unix(0, at)
	}
	st.Connects, st.Reconnects = c.connects.Load(), c.reconnects.Load()
	st.ConnectFailures, st.Disconnects = c.connectFailures.Load(), c.disconnects.Load()
	st.FramesIn, st.FramesOut = c.framesIn.Load(), c.framesOut.Load()
	st.BytesIn, st.BytesOut = c.bytesIn.Load(), c.bytesOut.Load()
	st.DecodeErrors = c.decodeErrors.Load()
	st.HeartbeatsSent, st.HeartbeatTimeouts = c.hbSent.Load(), c.hbTimeouts.Load()
	st.RTT, st.RTTAvg = time.Duration(c.rtt.Load()), time.Duration(c.rttAvg.Load())
	st.Drops, st.SendRejects = c.drops.Load(), c.sendRejects.Load()
	st.TapDrops = s.tapDrops.Load()
	if s.notices != nil {
		st.NoticeDrops = s.notices.dropped.Load()
	}
	if q := s.tap.Load(); q != nil {
		st.TapDrops += q.dropped.Load()
	}
	return st
}

// Channels returns the socket's channels (one per topic).
func (s *Socket) Channels() []*Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Channel, 0, len(s.channels))
	for _, ch := range s.channels {
		out = append(out, ch)
	}
	return out
}

// makeRefLocked returns the next ref: one counter per socket, never reset.
func (s *Socket) makeRefLocked() string {
	s.ref++
	return strconv.FormatUint(s.ref, 10)
}

func (s *Socket) notifyStatus(c StatusChange) {
	// The attempt is StatusChange.Attempt: the reconnect's number, none
	// for the first connection.
	switch {
	case c.Err != nil:
		s.log.Info("Socket "+c.Status.String(), logErr, c.Err, logAttempt, c.Attempt, logDelay, c.Delay)
	case c.Attempt > 0:
		s.log.Info("Socket "+c.Status.String(), logAttempt, c.Attempt)
	default:
		s.log.Info("Socket " + c.Status.String())
	}
	if s.notices != nil && s.opts.OnStatus != nil && !s.notices.push(notice{status: &c}, noticeCost, pushHard) {
		s.noticeDropped()
	}
}

func (s *Socket) notifyHeartbeat(h Heartbeat) {
	if s.notices != nil && s.opts.OnHeartbeat != nil && !s.notices.push(notice{heartbeat: &h}, noticeCost, pushSoft) {
		s.noticeDropped()
	}
}

// noticeDropped logs a notice dropped because OnStatus or OnHeartbeat
// does not return (at powers of two; counted in Stats.NoticeDrops).
func (s *Socket) noticeDropped() {
	if n := s.notices.dropped.Load(); n&(n-1) == 0 {
		s.log.Warn("OnStatus or OnHeartbeat too slow, dropping notices", logCount, n)
	}
}

func (s *Socket) deliverNotice(n notice) {
	switch {
	case n.status != nil && s.opts.OnStatus != nil:
		s.opts.OnStatus(*n.status)
	case n.heartbeat != nil && s.opts.OnHeartbeat != nil:
		s.opts.OnHeartbeat(*n.heartbeat)
	}
}

// setStatusLocked changes the status and returns the change to report
// once the lock is released.
func (s *Socket) setStatusLocked(st Status, err error, attempt int, delay time.Duration) StatusChange {
	c := StatusChange{Status: st, Prev: s.status, At: s.now(), Err: err, Attempt: attempt, Delay: delay}
	s.status = st
	return c
}

// run is the connection loop: connect, serve, reconnect on the ladder.
func (s *Socket) run() {
	defer s.wg.Done()
	tries := 0 // failed attempts or losses since the last open
	first := true
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		change := s.setStatusLocked(StatusConnecting, nil, tries, 0)
		s.mu.Unlock()
		s.notifyStatus(change)

		c, err := s.dial()
		if err != nil {
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
		}
		if first {
			first = false
			close(s.attempted)
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.st.connectFailures.Add(1)
			tries++
			if !s.wait(s.connectionLost(nil, err, tries)) {
				return
			}
			continue
		}
		tries = 0
		s.serve(c)
		if s.ctx.Err() != nil {
			return
		}
		tries = 1
		if !s.wait(s.connectionLost(c, c.err, tries)) {
			return
		}
	}
}

// wait sleeps for the reconnect delay; false when the socket was closed.
func (s *Socket) wait(delay time.Duration) bool {
	if delay <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// attempt is a connection attempt under way.
type attempt struct {
	// cancel ends the attempt with a cause (Connect's context ended).
	cancel context.CancelCauseFunc
	stage  atomic.Int32 // the connectStage it is in
}

// connectStage is a step of a connection attempt.
type connectStage int32

const (
	stageConnecting connectStage = iota // DNS and TCP (and a proxy's CONNECT)
	stageTLS                            // the TLS handshake (wss)
	stageUpgrade                        // the HTTP upgrade request and its response
)

// step names the stage the attempt is in, for errors.
func (a *attempt) step() string {
	switch connectStage(a.stage.Load()) {
	case stageTLS:
		return "during the TLS handshake"
	case stageUpgrade:
		return "awaiting the WebSocket upgrade response"
	}
	return "while connecting (DNS, TCP)"
}

// dial makes one connection attempt. Every step of it ends when the
// attempt's context does: at HandshakeTimeout, at Close, or when Connect
// abandons it. gorilla/websocket watches the context only while dialing
// TCP and during the TLS handshake (it turns the deadline into a
// connection deadline, but not a cancellation), so the connection under
// way is also closed when the context ends.
func (s *Socket) dial() (*conn, error) {
	a := &attempt{}
	ctx, abandon := context.WithCancelCause(s.ctx)
	defer abandon(nil)
	a.cancel = abandon
	timeout := s.opts.HandshakeTimeout
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("handshake timeout %s: %w", timeout, context.DeadlineExceeded))
	defer cancel()
	s.mu.Lock()
	s.attempt = a
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.attempt = nil
		s.mu.Unlock()
	}()
	wss := strings.HasPrefix(s.endpoint, "wss:")
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			if wss {
				a.stage.Store(int32(stageTLS))
			} else {
				a.stage.Store(int32(stageUpgrade))
			}
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err == nil {
				a.stage.Store(int32(stageUpgrade))
			}
		},
	})

	netDial := s.opts.Dial
	if netDial == nil {
		nd := &net.Dialer{}
		netDial = nd.DialContext
	}
	var (
		rc      *readClock
		stop    func() bool   // stops the closing of the connection
		stopped chan struct{} // closed once the connection is closed
	)
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := netDial(ctx, network, addr)
			if err != nil {
				return c, err
			}
			stopped = make(chan struct{})
			stop = context.AfterFunc(ctx, func() {
				defer close(stopped)
				// A past deadline first: blocked reads and writes return
				// at once, and a fault transport's Close does not wait
				// to flush.
				_ = c.SetDeadline(time.Unix(1, 0))
				_ = c.Close()
			})
			// Without an injected clock, frames are stamped with the
			// time of the read that completed them (one clock reading
			// per read, not per frame: many frames arrive in one read
			// under load).
			if s.stampReads {
				rc = &readClock{Conn: c}
				return rc, nil
			}
			return c, nil
		},
		TLSClientConfig: s.opts.TLSConfig,
		ReadBufferSize:  s.opts.ReadBufferSize,
		WriteBufferSize: s.opts.WriteBufferSize,
		Proxy:           http.ProxyFromEnvironment,
	}
	ws, resp, err := d.DialContext(ctx, s.endpoint, s.opts.Header)
	if stop != nil && !stop() {
		<-stopped // the context ended: the connection is closed
		if err == nil {
			ws, err = nil, net.ErrClosed
		}
	}
	if err != nil {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			// The connection deadline gorilla set from it may have
			// fired first.
			<-ctx.Done()
		}
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("%w %s", context.Cause(ctx), a.step())
		case resp != nil && resp.StatusCode != http.StatusSwitchingProtocols:
			err = handshakeError(resp)
		}
		s.log.Warn("Connection attempt failed", logURL, maskURL(s.endpoint), logErr, err)
		return nil, err
	}
	ws.SetReadLimit(s.opts.ReadLimit)
	s.mu.Lock()
	s.connGen++
	c := &conn{
		s:          s,
		ws:         ws,
		clock:      rc,
		gen:        s.connGen,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		hbReply:    make(chan hbReply, 4),
	}
	s.mu.Unlock()
	return c, nil
}

func handshakeError(resp *http.Response) error {
	he := &HandshakeError{StatusCode: resp.StatusCode}
	if resp.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var m struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &m) == nil && (m.Error != "" || m.Message != "") {
			he.Message = m.Error
			if he.Message == "" {
				he.Message = m.Message
			}
		} else {
			he.Message = string(body)
		}
	}
	return he
}

// serve runs an open connection until it ends.
func (s *Socket) serve(c *conn) {
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()

	s.mu.Lock()
	s.conn = c
	s.lastErr = nil
	s.st.connects.Add(1)
	if c.gen > 1 {
		s.st.reconnects.Add(1)
	}
	s.st.connectedAt.Store(s.now().UnixNano())
	change := s.setStatusLocked(StatusOpen, nil, 0, 0)
	close(s.opened)
	s.opened = make(chan struct{})
	// Like phoenix on socket open: reset every rejoin timer and rejoin the
	// channels that are errored (or waiting to join).
	for _, ch := range s.channels {
		ch.stopRejoinTimerLocked()
		ch.rejoinTries = 0
		if ch.state == ChannelErrored || ch.state == ChannelJoining {
			s.sendJoinLocked(ch)
		}
	}
	s.mu.Unlock()
	s.log.Info("Connected", logURL, maskURL(s.endpoint), logConn, c.gen)
	s.notifyStatus(change)

	select {
	case <-c.done:
	case <-s.ctx.Done():
		c.fail(ErrClosed, websocket.CloseNormalClosure, "")
	}
	// The writer sends the close frame, if any, and closes the
	// connection. When it is stuck in a write (a frozen transport), close
	// the connection from here so that both goroutines end.
	t := time.NewTimer(closeGrace + closeGrace/4)
	select {
	case <-c.writerDone:
	case <-t.C:
		s.log.Warn("Writer stuck, closing the connection", logConn, c.gen)
		_ = c.ws.Close()
	}
	t.Stop()
	c.wg.Wait()
}

// connectionLost handles the end of connection c (nil: a failed
// attempt) and returns the delay before the next attempt.
func (s *Socket) connectionLost(c *conn, cause error, tries int) time.Duration {
	delay := s.opts.ReconnectAfter(tries)
	s.mu.Lock()
	if c != nil {
		s.conn = nil
		s.st.disconnects.Add(1)
		s.st.connectedAt.Store(0)
	}
	s.lastErr = cause
	chanErr := channelErrorReason(cause)
	// Like phoenix on transport close or error: every joined or joining
	// channel is errored; rejoin timers stop (the socket is not
	// connected); leaving channels close.
	for _, ch := range s.channels {
		ch.stopRejoinTimerLocked()
		ch.rejoinTries = 0
		switch ch.state {
		case ChannelJoined, ChannelJoining:
			if ch.joinPush != nil {
				s.completeLocked(ch.joinPush, "", nil, chanErr)
			}
			s.errorChannelLocked(ch, chanErr)
		case ChannelLeaving:
			s.closeChannelLocked(ch, nil, nil)
		}
	}
	for _, p := range s.pending {
		s.completeLocked(p, "", nil, chanErr)
	}
	change := s.setStatusLocked(StatusReconnecting, cause, tries, delay)
	s.mu.Unlock()
	s.notifyStatus(change)
	return delay
}

// channelErrorReason is the error channels report when the connection
// ends: realtime-js's "socket closed: <code> (<reason>)" or the cause.
func channelErrorReason(cause error) error {
	var ce *websocket.CloseError
	switch {
	case errors.Is(cause, ErrHeartbeatTimeout), errors.Is(cause, ErrClosed):
		return cause
	case errors.As(cause, &ce):
		if ce.Text != "" {
			return fmt.Errorf("%w: socket closed: %d (%s)", ErrDisconnected, ce.Code, ce.Text)
		}
		return fmt.Errorf("%w: socket closed: %d", ErrDisconnected, ce.Code)
	case cause == nil:
		return ErrDisconnected
	default:
		return fmt.Errorf("%w: %w", ErrDisconnected, cause)
	}
}

// SetAuth sets the access token used by joins and pushes it
// (access_token) to every joined channel, as realtime-js's setAuth does:
// only when it differs from the current one. An empty token makes later
// joins use the API key.
func (s *Socket) SetAuth(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token == s.token {
		return
	}
	s.token = token
	if s.conn == nil {
		return
	}
	for _, ch := range s.channels {
		if ch.state == ChannelJoined {
			s.pushTokenLocked(ch)
		}
	}
}

// pushTokenLocked pushes the current token to the joined channel ch
// (access_token). A channel whose join was under way when the token
// changed gets it once joined (onJoinReply): the server keeps the token
// of the join until told otherwise.
func (s *Socket) pushTokenLocked(ch *Channel) {
	ch.joinToken = s.token
	payload := append(protocol.AppendString([]byte(`{"access_token":`), s.token), '}')
	m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventAccessToken, Payload: payload}
	if _, err := s.conn.enqueue(&m, false); err != nil {
		s.log.Warn("Cannot push access_token", logTopic, ch.topic, logErr, err)
	}
}

// AccessToken returns the token joins use (empty: the API key).
func (s *Socket) AccessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// TokenExpiry returns the exp of the access token in use (of the API key
// when no token is set); ok is false when it has none or is not a JWT.
func (s *Socket) TokenExpiry() (exp time.Time, ok bool) {
	s.mu.Lock()
	tok := s.token
	s.mu.Unlock()
	if tok == "" {
		tok = s.opts.APIKey
	}
	exp, err := TokenExpiry(tok)
	return exp, err == nil
}
