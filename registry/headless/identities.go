package headless

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"rtm/registry"
	"rtm/registry/compare"
)

// TypeCompare is the type of the `compare` lines of `rtm watch` with
// several identities.
const TypeCompare = "compare"

// CompareLine is one `compare` line: a message identity A received on
// topic and B (missing_from) did not, within the comparison's window,
// with the reason where rtm can tell it (see package registry/compare).
type CompareLine struct {
	Type string `json:"type"`
	compare.Difference
}

// WriteCompare writes a `compare` line, masked like every other line.
func (w *Writer) WriteCompare(d compare.Difference) error {
	b, err := json.Marshal(CompareLine{Type: TypeCompare, Difference: d})
	if err != nil {
		return err
	}
	w.end.Events++
	return w.line(registry.MaskJSON(b))
}

// identity is one manager of watchIdentities.
type identity struct {
	id  Identity
	m   *registry.Manager
	sub *registry.Subscription
}

type batch struct {
	who    int
	events []registry.Event
}

// watchIdentities is Watch with o.Identities: one manager per identity,
// every line tagged, and compare lines.
func watchIdentities(ctx context.Context, env *Env, w io.Writer, o StreamOptions) (sum Summary, err error) {
	if o.Limits != nil {
		return sum, fmt.Errorf("%w: the limits line is for one identity; drop --limits or the extra identities", ErrInvalid)
	}
	copts := compare.Options{}
	if o.Compare != nil {
		copts = *o.Compare
	}
	cmp := compare.New(copts)
	window := copts.Window
	if window <= 0 {
		window = compare.DefaultWindow
	}
	var ids []*identity
	closeAll := func() {
		for _, x := range ids {
			x.sub.Close()
			_ = x.m.Close()
		}
	}
	for _, id := range o.Identities {
		tok, err := env.Token(id)
		if err != nil {
			closeAll()
			return sum, fmt.Errorf("identity %s: %w", id.Name, err)
		}
		m, err := env.NewManager(id, ManagerOptions{Policy: o.Policy})
		if err != nil {
			closeAll()
			return sum, fmt.Errorf("identity %s: %w", id.Name, err)
		}
		sub := m.Subscribe(context.Background(), registry.SubscribeOptions{Buffer: o.Buffer, BufferBytes: o.BufferBytes, Frames: true})
		ids = append(ids, &identity{id: id, m: m, sub: sub})
		cmp.AddIdentity(CompareIdentity(id, tok))
	}
	wr, err := NewWriter(w, nil)
	if err != nil {
		closeAll()
		return sum, err
	}
	types := map[registry.EventType]bool{}
	for _, t := range o.Types {
		types[t] = true
	}
	keep := func(e registry.Event) bool {
		t := e.EventType()
		switch {
		case t == registry.TypeDropped:
			return true
		case t == registry.TypeFrame && !o.Frames:
			return false
		case len(types) > 0:
			return types[t]
		}
		return true
	}

	// One reader per subscription hands batches to the writer loop,
	// which feeds the comparer and writes; the subscriptions hold the
	// backlog (bounded), the hand-over one batch per identity.
	batches := make(chan batch)
	stop := make(chan struct{})
	readersDone := make(chan struct{}, len(ids))
	for i, x := range ids {
		go func() {
			defer func() { readersDone <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				case <-x.sub.Done():
					return
				case <-x.sub.Ready():
				}
				evs := x.sub.Drain(nil)
				select {
				case batches <- batch{who: i, events: evs}:
				case <-stop:
					return
				}
			}
		}()
	}
	write := func(b batch) error {
		name := ids[b.who].id.Name
		for _, e := range b.events {
			cmp.Observe(name, e)
			if keep(e) {
				if err := wr.WriteAs(name, e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	writeDiffs := func(ds []compare.Difference) error {
		for _, d := range ds {
			if err := wr.WriteCompare(d); err != nil {
				return err
			}
		}
		return wr.Flush()
	}
	loopDone := make(chan error, 1)
	loopStop := make(chan struct{})
	go func() {
		tick := time.NewTicker(max(window/4, 50*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-loopStop:
				loopDone <- nil
				return
			case b := <-batches:
				if err := write(b); err != nil {
					loopDone <- err
					return
				}
				if err := wr.Flush(); err != nil {
					loopDone <- err
					return
				}
			case <-tick.C:
				// Not ctx: the RLS checks of the last ticks run while
				// the watch ends.
				tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				ds := cmp.Tick(tctx)
				cancel()
				if err := writeDiffs(ds); err != nil {
					loopDone <- err
					return
				}
			}
		}
	}()
	finish := func(runErr error) (Summary, error) {
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, x := range ids {
			_ = x.m.CleanupAll(lctx)
			sum.Channels = append(sum.Channels, x.m.Channels()...)
		}
		cancel()
		close(loopStop)
		lerr := <-loopDone
		close(stop)
		for range ids {
			<-readersDone
		}
		for _, x := range ids {
			_ = x.m.Close()
		}
		if lerr == nil {
			for i, x := range ids {
				if lerr = write(batch{who: i, events: x.sub.Drain(nil)}); lerr != nil {
					break
				}
			}
		}
		if lerr == nil {
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			lerr = writeDiffs(cmp.Flush(fctx))
			cancel()
		}
		for _, x := range ids {
			x.sub.Close()
		}
		if cerr := wr.Close(time.Now()); lerr == nil {
			lerr = cerr
		}
		sum.End = wr.Counts()
		return sum, errors.Join(runErr, lerr)
	}

	for _, x := range ids {
		cctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
		err := x.m.Connect(cctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return finish(nil)
			}
			return finish(fmt.Errorf("identity %s: connect to %s: no connection within %s: %w", x.id.Name, registry.MaskURL(env.Target.URL.Value), o.ConnectTimeout, err))
		}
	}
	type join struct {
		n       registry.Name
		private bool
	}
	var joins []join
	for _, n := range o.Joins {
		joins = append(joins, join{n, o.Private})
	}
	for _, n := range o.PrivateJoins {
		joins = append(joins, join{n, true})
	}
	for _, j := range joins {
		n := j.n
		for _, x := range ids {
			var opts []registry.JoinOption
			if j.private {
				opts = append(opts, registry.Private())
			}
			if n.Kind == registry.KindSubscription {
				opts = append(opts, registry.OnChange(registry.ChangeFilter{NoFilter: n.EntityID == AllRows}, func(registry.Change) {}))
			}
			user := ""
			if n.Kind == registry.KindPresence {
				user = presenceUser(x.id)
			}
			if _, err := joinAs(ctx, x.m, n, user, opts...); err != nil {
				if ctx.Err() != nil {
					return finish(nil)
				}
				return finish(fmt.Errorf("identity %s: join %s: %w", x.id.Name, n, err))
			}
		}
	}
	if o.OnReady != nil {
		for _, x := range ids {
			o.OnReady(x.m)
		}
	}
	waitEnd(ctx, o.Duration, loopDone)
	return finish(nil)
}

// AllRows is the entity id of a subscription channel that receives the
// changes of every row of its table (subscription:notes:*), with several
// identities; any other id is the row whose id it is.
const AllRows = "*"

func presenceUser(id Identity) string {
	if id.User != "" {
		return id.User
	}
	return id.Name
}

// CompareIdentity describes id, connected with token tok ("" for the
// API key alone), for package registry/compare: its name, the token's
// subject, role, tenant and claims (decoded, not verified).
func CompareIdentity(id Identity, tok string) compare.Identity {
	ci := compare.Identity{Name: id.Name, User: id.User, Role: id.Role}
	if tok == "" {
		ci.Role = "anon"
		ci.Claims = json.RawMessage(`{"role":"anon"}`)
		return ci
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ci
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ci
	}
	var c struct {
		Sub    string `json:"sub"`
		Role   string `json:"role"`
		Tenant string `json:"tenant_id"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ci
	}
	ci.User, ci.Role, ci.Tenant, ci.Claims = c.Sub, c.Role, c.Tenant, raw
	return ci
}
