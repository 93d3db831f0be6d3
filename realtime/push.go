package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"rtm/realtime/protocol"
)

// push is a message that waits for its phx_reply (or its timeout).
type push struct {
	ch    *Channel
	ref   string
	event string
	timer *time.Timer
	done  chan struct{}
	// Set once, under the socket lock, before done is closed.
	completed bool
	status    string // "ok", "error", "timeout", or "" when abandoned
	response  json.RawMessage
	err       error
	// hook runs under the socket lock when the push completes.
	hook func(*push)
}

// pushLocked encodes and queues m for ch. With reply it registers the push
// and starts its timeout; the returned push is then non-nil.
func (s *Socket) pushLocked(ch *Channel, m *protocol.Message, user, reply bool, hook func(*push)) (*push, error) {
	if s.conn == nil {
		return nil, ErrNotJoined
	}
	size, err := s.conn.enqueue(m, user)
	if err != nil {
		return nil, err
	}
	ch.msgsOut++
	ch.bytesOut += uint64(size)
	if !reply {
		return nil, nil
	}
	p := &push{ch: ch, ref: m.Ref, event: m.Event, done: make(chan struct{}), hook: hook}
	s.pending[p.ref] = p
	p.timer = time.AfterFunc(ch.timeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pending[p.ref] == p {
			s.completeLocked(p, "timeout", nil, fmt.Errorf("%s on %s: %w", p.event, ch.topic, ErrTimeout))
		}
	})
	return p, nil
}

// completeLocked settles p: status "ok" gives no error, "error" (or any
// other reply status) a *ReplyError unless err is set, "timeout" and ""
// (abandoned) the given err.
func (s *Socket) completeLocked(p *push, status string, resp json.RawMessage, err error) {
	if p.completed {
		return
	}
	p.completed = true
	if s.pending[p.ref] == p {
		delete(s.pending, p.ref)
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	if err == nil && status != protocol.StatusOK && status != "timeout" && status != "" {
		err = &ReplyError{Topic: p.ch.topic, Event: p.event, Status: status, Response: resp}
	}
	p.status, p.response, p.err = status, resp, err
	close(p.done)
	if p.hook != nil {
		p.hook(p)
	}
}

// wait waits for the push's outcome or ctx.
func (p *push) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s on %s: %w", p.event, p.ch.topic, ctx.Err())
	}
}
