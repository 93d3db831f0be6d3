package realtime

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

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
