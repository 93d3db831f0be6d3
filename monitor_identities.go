package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/server/pgcdc/doctor"
	"rtm/registry"
	"rtm/registry/compare"
	"rtm/registry/target"
	"rtm/tui"
)

// The terminal UI's identities side by side (`rtm --as alice --as bob
// --role anon --jwt TOKEN`, `:as`, `:drop-identity`): the first identity
// is the monitor's own manager, as before; each other one is a manager
// of its own (its own socket and token, the same target and settings),
// fed to the UI by a bridge of its own that tags its batches with the
// identity's name, and every identity's events feed one comparer (the
// Compare tab).

// identitySpecs returns the identities of --as, --role and --jwt when
// they make several (or name a role), nil for the single identity of
// before (one --as or one --jwt, or none).
func (c monitorCmd) identitySpecs() ([]target.IdentitySpec, error) {
	if len(c.As)+len(c.Role)+len(c.JWT) < 2 && len(c.Role) == 0 {
		return nil, nil
	}
	specs, err := target.ParseIdentities(c.As, c.Role, c.JWT)
	if err != nil {
		return nil, err
	}
	return specs, nil
}

// firstInput completes the target's input with the first identity: its
// user (--as) or pasted token (--jwt); a role's token is minted once the
// target is resolved (defaultToken).
func firstInput(in target.Input, specs []target.IdentitySpec, as, jwt []string) target.Input {
	if specs == nil {
		if len(as) > 0 {
			in.As = as[0]
		}
		if len(jwt) > 0 {
			in.JWT = jwt[0]
		}
		return in
	}
	in.As, in.JWT = specs[0].User, specs[0].JWT
	return in
}

// monitorIdentities holds the UI's identities other than the first:
// their managers, subscriptions and bridges. It implements
// tui.Identities.
type monitorIdentities struct {
	ctx  context.Context
	tg   *target.Target
	base registry.Options
	cmp  *compare.Comparer
	log  *slog.Logger

	mu    sync.Mutex
	send  func(tea.Msg) // nil until the UI runs
	ids   map[string]*monitorIdentity
	order []string
	wg    sync.WaitGroup
}

// monitorIdentity is one identity's manager and its bridge.
type monitorIdentity struct {
	name   string
	mgr    *registry.Manager
	sub    *registry.Subscription
	stop   context.CancelFunc // the bridge's
	done   chan struct{}      // closed when the bridge returned
	joins  []registry.Name    // joined once connected
	detail string
}

// newMonitorIdentities returns the identities of tg, their managers made
// with base (the first identity's options, its token and app proxy
// aside).
func newMonitorIdentities(ctx context.Context, tg *target.Target, base registry.Options, cmp *compare.Comparer, log *slog.Logger) *monitorIdentities {
	base.Apps = nil // the app proxy is the first identity's
	return &monitorIdentities{ctx: ctx, tg: tg, base: base, cmp: cmp, log: log, ids: map[string]*monitorIdentity{}}
}

// compareIdentity describes an identity to the comparer from its token's
// claims.
func compareIdentity(name string, c target.Claims) compare.Identity {
	role := c.Role
	if role == "" {
		role = "anon"
	}
	return compare.Identity{Name: name, User: c.Subject, Role: role, Tenant: c.Tenant}
}

// parseAsSpec reads the spec of ":as": "USER", "--role ROLE", "--jwt
// TOKEN" (or --role=ROLE, --jwt=TOKEN), or any form of
// target.ParseIdentity ("role:anon", "NAME=SPEC").
func parseAsSpec(s string) (target.IdentitySpec, error) {
	f := strings.Fields(s)
	switch {
	case len(f) == 2 && (f[0] == "--role" || f[0] == "--jwt"):
		return target.ParseIdentity(strings.TrimPrefix(f[0], "--") + ":" + f[1])
	case len(f) == 1 && (strings.HasPrefix(f[0], "--role=") || strings.HasPrefix(f[0], "--jwt=")):
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		return target.ParseIdentity(k + ":" + v)
	case len(f) == 1 && !strings.HasPrefix(f[0], "--"):
		return target.ParseIdentity(f[0])
	}
	return target.IdentitySpec{}, fmt.Errorf("%w: :as USER, :as --role anon|authenticated|service_role or :as --jwt TOKEN", target.ErrConfig)
}

// Add implements tui.Identities: it builds the identity of spec and
// starts its manager and bridge.
func (x *monitorIdentities) Add(ctx context.Context, spec string) (tui.Identity, error) {
	sp, err := parseAsSpec(spec)
	if err != nil {
		return tui.Identity{}, err
	}
	id, err := x.add(sp, nil)
	if err != nil {
		return tui.Identity{}, err
	}
	return id, nil
}

// add builds one identity: its token, its manager (connecting in the
// background, then joining joins), the comparer's column, and its
// bridge once the UI runs.
func (x *monitorIdentities) add(sp target.IdentitySpec, joins []registry.Name) (tui.Identity, error) {
	x.mu.Lock()
	_, taken := x.ids[sp.Name]
	x.mu.Unlock()
	if taken {
		return tui.Identity{}, fmt.Errorf("identity %q exists already", sp.Name)
	}
	tok, claims, err := x.tg.IdentityToken(sp)
	if err != nil {
		return tui.Identity{}, fmt.Errorf("identity %s: %w", sp.Name, err)
	}
	o := x.base
	o.Token = tok
	mgr, err := registry.New(o)
	if err != nil {
		return tui.Identity{}, fmt.Errorf("identity %s: %w", sp.Name, err)
	}
	mi := &monitorIdentity{name: sp.Name, mgr: mgr, joins: joins, detail: identityDetail(sp, claims),
		sub: mgr.Subscribe(x.ctx, registry.SubscribeOptions{Frames: true, Buffer: 8192})}
	x.cmp.AddIdentity(compareIdentity(sp.Name, claims))
	x.mu.Lock()
	x.ids[sp.Name] = mi
	x.order = append(x.order, sp.Name)
	if x.send != nil {
		x.startLocked(mi)
	}
	x.mu.Unlock()
	return tui.Identity{Name: sp.Name, Manager: tui.NewRegistryManager(mgr), Detail: mi.detail}, nil
}

// identityDetail says how an identity's token was made, masked.
func identityDetail(sp target.IdentitySpec, c target.Claims) string {
	switch {
	case sp.User != "":
		return "token minted for " + sp.User
	case sp.Role == "anon":
		return "the API key alone (anon)"
	case sp.Role != "":
		return "token minted with role " + sp.Role
	}
	return "pasted token " + registry.MaskSecret(sp.JWT) + " (sub " + c.Subject + ", role " + c.Role + ")"
}

// run starts the bridges of the identities added so far and of those
// added later: send is tea.Program.Send.
func (x *monitorIdentities) run(send func(tea.Msg)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.send = send
	for _, name := range x.order {
		x.startLocked(x.ids[name])
	}
}

// startLocked connects an identity and starts its bridge (x.mu held).
func (x *monitorIdentities) startLocked(mi *monitorIdentity) {
	bctx, stop := context.WithCancel(x.ctx)
	mi.stop, mi.done = stop, make(chan struct{})
	send, cmp, name := x.send, x.cmp, mi.name
	x.wg.Add(2)
	go func() {
		defer x.wg.Done()
		defer close(mi.done)
		tui.NewBridge(mi.sub, mi.mgr.Snapshot, tui.BridgeOptions{Identity: name,
			Observe: func(e registry.Event) { cmp.Observe(name, e) }}).Run(bctx, send)
	}()
	go func() {
		defer x.wg.Done()
		if err := mi.mgr.Connect(bctx); err != nil && bctx.Err() == nil {
			x.log.Warn("Connect", "identity", name, "err", err)
			return
		}
		adapter := tui.NewRegistryManager(mi.mgr)
		for _, n := range mi.joins {
			if err := adapter.Join(bctx, tui.JoinRequest{Name: n}); err != nil && bctx.Err() == nil {
				x.log.Warn("Join", "identity", name, "channel", n.String(), "err", err)
			}
		}
	}()
}

// others returns the identities added so far, for tui.Options.Others.
func (x *monitorIdentities) others() []tui.Identity {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]tui.Identity, 0, len(x.order))
	for _, name := range x.order {
		mi := x.ids[name]
		out = append(out, tui.Identity{Name: name, Manager: tui.NewRegistryManager(mi.mgr), Detail: mi.detail})
	}
	return out
}

// Drop implements tui.Identities: it stops the identity's bridge and
// closes its manager (its socket).
func (x *monitorIdentities) Drop(ctx context.Context, name string) error {
	x.mu.Lock()
	mi, ok := x.ids[name]
	if ok {
		delete(x.ids, name)
		for i, n := range x.order {
			if n == name {
				x.order = append(x.order[:i:i], x.order[i+1:]...)
				break
			}
		}
	}
	x.mu.Unlock()
	if !ok {
		return fmt.Errorf("no identity %q", name)
	}
	st := mi.mgr.Snapshot()
	err := mi.close(ctx)
	// Its channels are gone: the comparer no longer expects it to
	// receive their messages (and the Compare tab drops its column).
	now := time.Now()
	for _, c := range st.Channels {
		x.cmp.Channel(name, c.Name.String(), registry.StatusDisconnected, "", c.Config.Private, true, now)
	}
	return err
}

// close stops the bridge and closes the manager.
func (mi *monitorIdentity) close(ctx context.Context) error {
	if mi.stop != nil {
		mi.stop()
		select {
		case <-mi.done:
		case <-ctx.Done():
			return fmt.Errorf("drop %s: %w", mi.name, ctx.Err())
		}
	}
	mi.sub.Close()
	if err := mi.mgr.Close(); err != nil && !errors.Is(err, registry.ErrClosed) {
		return fmt.Errorf("drop %s: %w", mi.name, err)
	}
	return nil
}

// close drops every identity and waits for their goroutines.
func (x *monitorIdentities) close() {
	x.mu.Lock()
	ids := x.ids
	x.ids, x.order = map[string]*monitorIdentity{}, nil
	x.mu.Unlock()
	for _, mi := range ids {
		_ = mi.close(context.Background())
	}
	x.wg.Wait()
}

// openRowChecker opens the RLS verdicts of the comparer on the database
// the doctor checks ("" when there is none): nil and a no-op close
// when it cannot be opened (the comparer then never says "filtered by
// RLS"; the log says why).
func openRowChecker(ctx context.Context, url string, log *slog.Logger) (compare.RowChecker, func()) {
	if url == "" {
		return nil, func() {}
	}
	rows, err := doctor.OpenRows(ctx, url)
	if err != nil {
		log.Warn("compare: no RLS verdicts", "err", err)
		return nil, func() {}
	}
	return rlsRows{rows}, func() { _ = rows.Close() }
}
