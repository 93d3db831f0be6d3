package registry

import (
	"context"
	"errors"
	"fmt"
)

// Leave leaves the named channel whatever its references and keep-alive
// (handles still held become released). It untracks and unsubscribes.
func (m *Manager) Leave(ctx context.Context, name Name) error {
	m.mu.Lock()
	e := m.entries[name]
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("leave %s: %w", name, ErrNotFound)
	}
	return m.release(ctx, e, true)
}

// CleanupAll leaves every channel (keep-alive ones too), as a logout: the
// server is left with no channel of this client. The socket stays open.
func (m *Manager) CleanupAll(ctx context.Context) error {
	m.mu.Lock()
	all := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		all = append(all, e)
	}
	m.mu.Unlock()
	m.log.Info("Cleaning up all channels", KeyCount, len(all))
	errs := make(chan error, len(all))
	for _, e := range all {
		go func() { errs <- m.release(ctx, e, true) }()
	}
	var out []error
	for range all {
		if err := <-errs; err != nil {
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// release drops a reference of e (all of them with force) and leaves the
// channel when none is left, unless it is kept alive.
func (m *Manager) release(ctx context.Context, e *entry, force bool) error {
	m.mu.Lock()
	if m.entries[e.name] != e {
		m.mu.Unlock()
		return nil
	}
	if e.leaving != nil {
		wait := e.leaving
		m.mu.Unlock()
		select {
		case <-wait:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("leave %s: %w", e.name, ctx.Err())
		}
	}
	if !force {
		e.refs--
		if e.refs > 0 || e.keepAlive {
			refs := e.refs
			m.publishStateLocked(e, "released")
			m.mu.Unlock()
			m.log.Debug("Released channel reference", KeyChannel, e.name.String(), KeyRefs, refs)
			return nil
		}
	}
	e.refs = 0
	e.leaving = make(chan struct{})
	e.gen++
	e.retry.stopTimer()
	for _, d := range e.debounced {
		d.Stop()
	}
	ch := e.ch
	untrack := e.tracked != nil && e.status == StatusConnected
	detach := e.detach
	m.wakeWaitersLocked(e)
	m.mu.Unlock()

	var err error
	if ch != nil {
		if untrack {
			if uerr := ch.Untrack(ctx); uerr != nil {
				m.log.Warn("Untrack failed", KeyChannel, e.name.String(), KeyErr, uerr)
			} else {
				m.log.Info("Untracked presence", KeyChannel, e.name.String())
			}
		}
		err = ch.Leave(ctx)
	}
	if detach != nil {
		select {
		case <-detach:
		case <-ctx.Done():
		}
	}
	m.mu.Lock()
	delete(m.entries, e.name)
	m.fmu.Lock()
	if m.topics[e.topic] == e {
		delete(m.topics, e.topic)
	}
	if m.lastFrame == e {
		m.lastFrame = nil
	}
	m.fmu.Unlock()
	e.presence.reset()
	e.outbox.queue, e.outbox.bytes = nil, 0
	m.broker.publish(ChannelStateEvent{Time: m.clk.Now(), Channel: e.name, Status: e.status, Previous: e.status,
		Reason: "left", Removed: true, Info: m.infoLocked(e)})
	close(e.leaving)
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("Leave did not complete cleanly", KeyChannel, e.name.String(), KeyErr, err)
		return fmt.Errorf("leave %s: %w", e.name, err)
	}
	m.log.Info("Channel left", KeyChannel, e.name.String())
	return nil
}

func (m *Manager) wakeWaitersLocked(e *entry) {
	for _, w := range e.waiters {
		close(w)
	}
	e.waiters = nil
}
