package tui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"rtm/registry"
)

// readyWait bounds how long a join action waits for the server's answer
// before it reports the channel as joining (the join goes on in the
// background, under the retry policy).
const readyWait = 5 * time.Second

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
// (public.<entity_type> where id = <entity_id>), others join plainly. It
// waits a little for the server's answer so a refused join reports its
// reason.
func (r *RegistryManager) Join(ctx context.Context, req JoinRequest) error {
	n := req.Name
	tenant := registry.WithTenant(n.Tenant)
	var (
		h   *registry.Handle
		err error
	)
	switch {
	case n.Kind == registry.KindPresence && req.As != "":
		u := registry.PresenceUser{UserID: req.As, Name: req.UserName, Payload: req.Payload}
		h, err = r.m.JoinPresence(ctx, n.EntityType, n.EntityID, u, tenant)
	case n.Kind == registry.KindSubscription:
		h, err = r.m.SubscribeEntity(ctx, n.EntityType, n.EntityID, registry.ChangeFilter{}, nil, tenant)
	default:
		h, err = r.m.Join(ctx, n)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.handles[n] = append(r.handles[n], h)
	r.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	if err := h.Ready(wctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
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
