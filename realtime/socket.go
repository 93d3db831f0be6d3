package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
