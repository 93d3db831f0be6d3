package server

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Start listens on addr ("127.0.0.1:0" picks a port) and serves in the
// background until Close.
func (s *Server) Start(addr string) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if s.httpSrv != nil {
		return fmt.Errorf("server: already started on %s", s.addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	return s.serveLocked(ln)
}

// serveLocked serves ln with the server-wide HTTP bounds: the header and
// idle timeouts and the connection limit (the read and write deadlines are
// per request, see withHTTPDeadlines).
func (s *Server) serveLocked(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HTTPReadHeaderTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ConnState:         s.connState,
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
	}
	ln = limitListener{Listener: ln, s: s}
	if !s.spawn(func() { _ = srv.Serve(ln) }) {
		_ = ln.Close()
		return ErrClosed
	}
	s.httpSrv = srv
	s.log.Info("Listening", "addr", s.addr)
	return nil
}

// Restart simulates a server restart: every connection is dropped
// abruptly, all state is cleared (channels, presence, rate windows,
// rejections), the listener stays down for downtime, then listens again
// on the same address. When ctx ends during the downtime the server
// listens again at once and Restart returns ctx's error.
func (s *Server) Restart(ctx context.Context, downtime time.Duration) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if s.httpSrv == nil {
		return ErrNotStarted
	}
	s.log.Info("Restarting", "downtime", downtime)
	_ = s.httpSrv.Close()
	s.httpSrv = nil
	s.Drop()
	if err := s.waitNoConns(ctx); err != nil {
		return err
	}
	s.rejections.set(Rejection{}, s.now())
	s.tenants.resetWindows()
	s.refMu.Lock()
	s.refPrefix = s.randomHex(4)
	s.refMu.Unlock()
	s.stats.restarts.Add(1)

	var ctxErr error
	if downtime > 0 {
		t := time.NewTimer(downtime)
		select {
		case <-t.C:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		case <-s.closing:
			t.Stop()
			return ErrClosed
		}
		t.Stop()
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("server: restart: listen again on %s: %w", s.addr, err)
	}
	if err := s.serveLocked(ln); err != nil {
		return err
	}
	return ctxErr
}

// waitNoConns waits until every connection, those still upgrading
// included, is torn down.
func (s *Server) waitNoConns(ctx context.Context) error {
	for {
		s.connMu.Lock()
		n := s.reserved
		s.connMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-s.connGone:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
}

// Shutdown closes the server gracefully: every socket gets a close frame
// (1001, "server shutting down") and a moment to flush, bounded by ctx,
// then Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("Shutting down", "connections", s.connCount())
	s.closeListener()
	s.connMu.Lock()
	s.draining = true
	s.connMu.Unlock()
	for _, c := range s.connList() {
		c.sendClose(websocket.CloseGoingAway, "server shutting down")
	}
	err := s.waitNoConns(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops the server: it closes the listener and every connection
// (abruptly) and waits for every goroutine it started.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		if s.stopBroadcasts != nil {
			s.stopBroadcasts()
		}
	})
	s.closeListener()
	s.httpConns.closeRefusing()
	s.connMu.Lock()
	s.connClosed = true
	s.connMu.Unlock()
	s.Drop()
	s.wgMu.Lock()
	s.wgClosed = true
	s.wgMu.Unlock()
	s.wg.Wait()
	return nil
}

// closeListener stops accepting connections (hijacked sockets stay).
func (s *Server) closeListener() {
	s.lifeMu.Lock()
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
		s.httpSrv = nil
	}
	s.lifeMu.Unlock()
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// spawn runs f in a goroutine that Close waits for. It reports false when
// the server is closed.
func (s *Server) spawn(f func()) bool {
	s.wgMu.Lock()
	if s.wgClosed {
		s.wgMu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.wgMu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// afterFunc runs f after d on the server's clock; Close waits for a
// running f and cancels pending ones.
func (s *Server) afterFunc(d time.Duration, f func()) func() bool {
	return s.cfg.AfterFunc(d, func() {
		s.wgMu.Lock()
		if s.wgClosed {
			s.wgMu.Unlock()
			return
		}
		s.wg.Add(1)
		s.wgMu.Unlock()
		defer s.wg.Done()
		f()
	})
}

// logWriter sends net/http's error log to slog.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug("HTTP server", "msg", string(p))
	return len(p), nil
}
