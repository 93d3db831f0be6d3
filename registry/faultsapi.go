package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"rtm/realtime/protocol"
)

// Faults simulates failures for the UI and for scenarios. Client-side
// faults act on this manager's own connection through the fault
// transport (they work against any server, a hosted project included);
// server-side faults need Options.Server (the embedded server or `rtm
// serve`). Every fault is logged.
type Faults struct {
	m *Manager
}

// Faults returns the fault controls.
func (m *Manager) Faults() *Faults { return &Faults{m: m} }

func (f *Faults) transport() error {
	if f.m.tr == nil {
		return fmt.Errorf("registry: client faults: %w (the manager was built with NoFaults)", ErrUnsupported)
	}
	return nil
}

// Drop closes the connection abruptly (no close frame), as a network
// failure would; the socket then reconnects on its ladder. It returns the
// number of connections dropped.
func (f *Faults) Drop() (int, error) {
	if err := f.transport(); err != nil {
		return 0, err
	}
	n := f.m.tr.Drop()
	f.m.log.Warn("Fault: connection dropped", KeyCount, n)
	return n, nil
}

// Freeze makes the connection half-open for d: nothing passes either
// way, so heartbeats go unanswered and the client times out and
// reconnects (after one heartbeat interval). d <= 0 thaws it.
func (f *Faults) Freeze(d time.Duration) (int, error) {
	if err := f.transport(); err != nil {
		return 0, err
	}
	n := f.m.tr.Freeze(d)
	f.m.log.Warn("Fault: connection frozen", "for", d, KeyCount, n)
	return n, nil
}

// Latency adds d of latency to each direction (0 removes it).
func (f *Faults) Latency(d time.Duration) error {
	if err := f.transport(); err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("registry: latency %v: must not be negative", d)
	}
	f.m.tr.SetLatency(d)
	f.m.log.Warn("Fault: latency set", "latency", d)
	return nil
}

// FailConnects makes the next n connection attempts fail (0 cancels).
func (f *Faults) FailConnects(n int) error {
	if err := f.transport(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("registry: fail connects %d: must not be negative", n)
	}
	f.m.tr.FailConnects(n)
	f.m.log.Warn("Fault: next connects will fail", KeyCount, n)
	return nil
}

// InjectChannelError delivers a phx_error for the named channel's current
// join to the client, as if the server-side channel had crashed: the
// channel errors and the policy rejoins it.
func (f *Faults) InjectChannelError(name Name) error {
	if err := f.transport(); err != nil {
		return err
	}
	m := f.m
	m.mu.Lock()
	e := m.entries[name]
	if e == nil || e.leaving != nil {
		m.mu.Unlock()
		return fmt.Errorf("inject channel error on %s: %w", name, ErrNotFound)
	}
	joinRef := e.joinRef
	status := e.status
	m.mu.Unlock()
	if status != StatusConnected || joinRef == "" {
		return fmt.Errorf("registry: inject channel error on %s: the channel is %s, not connected", name, status)
	}
	frame, binary, err := m.vsn.AppendServer(nil, &protocol.Message{JoinRef: joinRef, Ref: joinRef, Topic: name.Topic(), Event: protocol.EventError, Payload: []byte(`{"reason":"channel_crash"}`)})
	if err != nil {
		return fmt.Errorf("registry: inject channel error: %w", err)
	}
	n := m.tr.Inject(frame, binary)
	if n == 0 {
		return fmt.Errorf("registry: inject channel error on %s: no open connection", name)
	}
	m.log.Warn("Fault: channel error injected", KeyChannel, name.String(), "join_ref", joinRef)
	return nil
}

// ExpireToken replaces the user token by a copy that expired a minute
// ago (signed with Options.MintToken) and pushes it: the server closes
// the joined channels ("Token has expired"), and their rejoins are
// refused until a valid token is set with SetToken. It needs
// Options.MintToken (ErrUnsupported otherwise).
func (f *Faults) ExpireToken(ctx context.Context) error {
	m := f.m
	if m.opts.MintToken == nil {
		return fmt.Errorf("registry: expire token: %w: it needs the JWT secret (embedded server, rtm serve, or --jwt-secret)", ErrUnsupported)
	}
	m.mu.Lock()
	tok := m.token
	m.mu.Unlock()
	if tok == "" {
		tok = m.opts.APIKey
	}
	claims, err := jwtClaims(tok)
	if err != nil || claims == nil {
		claims = map[string]any{"role": "anon"}
	}
	now := m.clk.Now()
	claims["iat"] = now.Add(-2 * time.Minute).Unix()
	claims["exp"] = now.Add(-time.Minute).Unix()
	expired, err := m.opts.MintToken(claims)
	if err != nil {
		return fmt.Errorf("registry: expire token: %w", err)
	}
	m.SetToken(expired)
	m.mu.Lock()
	m.broker.publish(TokenEvent{Time: now, Action: "expired", Token: m.tokenInfo})
	m.mu.Unlock()
	m.log.Warn("Fault: token expired", "exp", now.Add(-time.Minute))
	return nil
}

// ServerAvailable reports whether server-side faults can be used.
func (f *Faults) ServerAvailable() bool { return f.m.opts.Server != nil }

func (f *Faults) server() (ServerControl, error) {
	if f.m.opts.Server == nil {
		return nil, fmt.Errorf("registry: server faults: %w: they need the embedded server or rtm serve (with its service_role key)", ErrUnsupported)
	}
	return f.m.opts.Server, nil
}

// Kick makes the server end the named channel with phx_error
// (KickError: the policy rejoins it) or phx_close (KickClose: a server
// close, also retried under the policy).
func (f *Faults) Kick(ctx context.Context, name Name, mode KickMode) (int, error) {
	s, err := f.server()
	if err != nil {
		return 0, err
	}
	n, err := s.Kick(ctx, name.Topic(), mode)
	if err != nil {
		return 0, fmt.Errorf("registry: kick %s: %w", name, err)
	}
	f.m.log.Warn("Fault: server kicked channel", KeyChannel, name.String(), "mode", mode.String(), KeyCount, n)
	return n, nil
}

// RejectJoins makes the server refuse joins as r says.
func (f *Faults) RejectJoins(ctx context.Context, r Rejection) error {
	s, err := f.server()
	if err != nil {
		return err
	}
	if err := s.RejectJoins(ctx, r); err != nil {
		return fmt.Errorf("registry: reject joins: %w", err)
	}
	f.m.log.Warn("Fault: server rejects joins", KeyCount, r.Count, "for", r.For, KeyReason, r.Reason)
	return nil
}

// DropAll makes the server drop every socket.
func (f *Faults) DropAll(ctx context.Context) (int, error) {
	s, err := f.server()
	if err != nil {
		return 0, err
	}
	n, err := s.DropAll(ctx)
	if err != nil {
		return 0, fmt.Errorf("registry: drop all: %w", err)
	}
	f.m.log.Warn("Fault: server dropped all sockets", KeyCount, n)
	return n, nil
}

// Restart restarts the server with downtime.
func (f *Faults) Restart(ctx context.Context, downtime time.Duration) error {
	s, err := f.server()
	if err != nil {
		return err
	}
	if err := s.Restart(ctx, downtime); err != nil {
		return fmt.Errorf("registry: restart: %w", err)
	}
	f.m.log.Warn("Fault: server restarted", "downtime", downtime)
	return nil
}

// Heal clears the client faults in force: it thaws a frozen connection
// (which then answers heartbeats again), removes the added latency and
// cancels the connection attempts set to fail.
func (f *Faults) Heal() error {
	if err := f.transport(); err != nil {
		return err
	}
	f.m.tr.Freeze(0)
	f.m.tr.SetLatency(0)
	f.m.tr.FailConnects(0)
	f.m.log.Info("Fault: client faults cleared")
	return nil
}

// State returns the client faults in force.
func (f *Faults) State() FaultState {
	return f.m.Snapshot().Faults
}

// AppsAvailable reports whether app faults can be used (Options.Apps).
func (f *Faults) AppsAvailable() bool { return f.m.opts.Apps != nil }

// Apply injects flt: the one dispatch from a [Fault] to the controls
// above, used by the TUI and by scenarios. It validates flt first
// (Fault.Validate) and returns the control's error; flt.Summary says
// what was done once it returns nil.
//
// App faults (flt.App) go to Options.Apps through [ApplyAppFault].
//
// Two outcomes that would otherwise pass silently are errors: a drop
// when no connection is open ("no open connection to drop"), and a kick
// of a channel the server does not hold ("the server holds no channel
// ... to kick").
func (f *Faults) Apply(ctx context.Context, flt Fault) error {
	if err := flt.Validate(); err != nil {
		return err
	}
	if flt.App {
		if err := ApplyAppFault(ctx, f.m.opts.Apps, flt); err != nil {
			return err
		}
		f.m.log.Warn("Fault: "+flt.Summary(), "fault", flt.String())
		return nil
	}
	switch flt.Kind {
	case FaultDrop:
		n, err := f.Drop()
		if err == nil && n == 0 {
			err = errors.New("no open connection to drop")
		}
		return err
	case FaultFreeze:
		_, err := f.Freeze(flt.Duration)
		return err
	case FaultLatency:
		return f.Latency(flt.Delay)
	case FaultFailConnects:
		return f.FailConnects(flt.Count)
	case FaultExpireToken:
		return f.ExpireToken(ctx)
	case FaultChannelError:
		return f.InjectChannelError(flt.Channel)
	case FaultHeal:
		return f.Heal()
	case FaultKick:
		n, err := f.Kick(ctx, flt.Channel, flt.mode())
		if err == nil && n == 0 {
			err = fmt.Errorf("the server holds no channel %s to kick", flt.Channel)
		}
		return err
	case FaultRejectJoins:
		return f.RejectJoins(ctx, Rejection{Count: flt.Count, For: flt.Duration, Reason: flt.Reason})
	case FaultDropAll:
		_, err := f.DropAll(ctx)
		return err
	case FaultRestart:
		return f.Restart(ctx, flt.Duration)
	}
	return fmt.Errorf("unknown fault %v", flt.Kind)
}
