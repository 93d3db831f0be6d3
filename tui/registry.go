package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"rtm/registry"
)

// readyWait bounds how long a join action waits for the server's answer
// before it reports the channel as joining (the join goes on in the
// background, under the retry policy). It outlasts Supabase's 5 s
// backoff before the join errors of private channels (which rtm serve
// --db and the embedded server reproduce), so a join the RLS policies
// refuse reports its reason.
const readyWait = 7 * time.Second

// RegistryManager adapts a *registry.Manager to [Manager]. It keeps the
// handles of the channels the UI joined (one reference per join), so they
// are held until the UI leaves them.
type RegistryManager struct {
	m *registry.Manager

	mu      sync.Mutex
	handles map[registry.Name][]*registry.Handle
}

// NewRegistryManager returns the adapter for m.
func NewRegistryManager(m *registry.Manager) *RegistryManager {
	return &RegistryManager{m: m, handles: map[registry.Name][]*registry.Handle{}}
}

// Join implements [Manager]: presence channels with As join as that user
// (tracked), subscription channels bind the entity's table and row
// (public.<entity_type> where id = <entity_id>), others join plainly;
// Private makes it a private channel. It waits a little for the server's
// answer so a refused join reports its reason (see awaitAnswer).
func (r *RegistryManager) Join(ctx context.Context, req JoinRequest) error {
	n := req.Name
	var before time.Time // the channel's last error before this join
	if info, err := r.m.Info(n); err == nil {
		before = info.LastErrorAt
	}
	var opts []registry.JoinOption
	if req.Private {
		opts = append(opts, registry.Private())
	}
	withTenant := append(opts, registry.WithTenant(n.Tenant))
	var (
		h   *registry.Handle
		err error
	)
	switch {
	case n.Kind == registry.KindPresence && req.As != "":
		u := registry.PresenceUser{UserID: req.As, Name: req.UserName, Payload: req.Payload}
		h, err = r.m.JoinPresence(ctx, n.EntityType, n.EntityID, u, withTenant...)
	case n.Kind == registry.KindSubscription:
		h, err = r.m.SubscribeEntity(ctx, n.EntityType, n.EntityID, registry.ChangeFilter{}, nil, withTenant...)
	default:
		h, err = r.m.Join(ctx, n, opts...)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.handles[n] = append(r.handles[n], h)
	r.mu.Unlock()
	return r.awaitAnswer(ctx, n, before)
}

// awaitAnswer waits up to readyWait for the server's answer to the join
// of n: nil once the channel is connected (or still joining at the
// deadline), its failure once it failed for good, and the server's
// refusal (its code and reason: a private channel the RLS policies
// refuse, a rate limit) as soon as one comes, although the retry policy
// goes on trying. before is the channel's last error time before the
// join: an older error is not this join's answer.
func (r *RegistryManager) awaitAnswer(ctx context.Context, n registry.Name, before time.Time) error {
	wctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	sub := r.m.Subscribe(wctx, registry.SubscribeOptions{Types: []registry.EventType{registry.TypeChannelState},
		Channels: []registry.Name{n}, Buffer: 64})
	defer sub.Close()
	var buf []registry.Event
	for {
		buf = sub.Drain(buf[:0])
		for _, ev := range buf {
			cs, ok := ev.(registry.ChannelStateEvent)
			switch {
			case !ok:
			case cs.Removed:
				return fmt.Errorf("%s: %w", n, registry.ErrReleased)
			case cs.Status == registry.StatusConnected:
				return nil
			case cs.Status == registry.StatusError:
				return &registry.ChannelError{Channel: n, Code: cs.Info.LastErrorCode, Reason: cs.Reason}
			case cs.Info.LastError != "" && !cs.Info.LastErrorAt.Equal(before):
				return &registry.ChannelError{Channel: n, Code: cs.Info.LastErrorCode, Reason: cs.Info.LastError}
			}
		}
		select {
		case <-sub.Ready():
		case <-sub.Done():
			return nil
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("wait for %s: %w", n, err)
			}
			return nil // still joining: the policy goes on
		}
	}
}

// Leave implements [Manager].
func (r *RegistryManager) Leave(ctx context.Context, name registry.Name) error {
	err := r.m.Leave(ctx, name)
	r.mu.Lock()
	delete(r.handles, name)
	r.mu.Unlock()
	return err
}

// Track implements [Manager].
func (r *RegistryManager) Track(ctx context.Context, name registry.Name, user registry.PresenceUser) error {
	return r.m.Track(ctx, name, user)
}

// Untrack implements [Manager].
func (r *RegistryManager) Untrack(ctx context.Context, name registry.Name) error {
	return r.m.Untrack(ctx, name)
}

// Broadcast implements [Manager].
func (r *RegistryManager) Broadcast(ctx context.Context, name registry.Name, event string, payload json.RawMessage) error {
	return r.m.Broadcast(ctx, name, event, payload)
}

// RetryNow implements [Manager].
func (r *RegistryManager) RetryNow(ctx context.Context, name registry.Name) error {
	return r.m.RetryNow(ctx, name)
}

// SetPolicy implements [Manager].
func (r *RegistryManager) SetPolicy(_ context.Context, spec string) error {
	p, err := registry.ParsePolicy(spec)
	if err != nil {
		return err
	}
	r.m.SetPolicy(p)
	return nil
}

// Cleanup implements [Manager].
func (r *RegistryManager) Cleanup(ctx context.Context) error {
	err := r.m.CleanupAll(ctx)
	r.mu.Lock()
	clear(r.handles)
	r.mu.Unlock()
	return err
}

// Fault implements [Manager]: one call to the registry's dispatch
// (registry.Faults.Apply), so the TUI injects exactly what scenarios do.
func (r *RegistryManager) Fault(ctx context.Context, f registry.Fault) error {
	return r.m.Faults().Apply(ctx, f)
}

// Export implements [Manager].
func (r *RegistryManager) Export(_ context.Context, w io.Writer) error {
	return r.m.Export(w)
}
