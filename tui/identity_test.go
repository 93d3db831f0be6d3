package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/compare"
	"rtm/theme"
)

// idEnv drives the UI with several identities, each a real manager on
// the embedded server, as the bridges would: pump hands the UI every
// identity's events and state, tagged with its name.
type idEnv struct {
	t   *testing.T
	ctx context.Context
	srv *servertest.Server
	m   *Model
	// observe, when set, is given every event pumped, with its
	// identity (a comparer's Observe, as the bridges do).
	observe func(identity string, e registry.Event)

	mu    sync.Mutex
	order []string
	mgrs  map[string]*registry.Manager
	subs  map[string]*registry.Subscription
}

// newIDEnv starts the server and the first identity (alice, a user
// token), and the UI on it; opts completes the UI's options.
func newIDEnv(t *testing.T, opts ...func(*Options)) *idEnv {
	t.Helper()
	return newIDEnvOn(t, servertest.New(t, servertest.WithConfig(func(c *server.Config) { c.JWTSecret = []byte(idSecret) })), opts...)
}

// idSecret is the JWT secret of newIDEnv's server: the managers mint
// with it (the expire-token fault).
const idSecret = "identities-tui-secret-0123456789abcdef0123"

// newIDEnvOn is newIDEnv on the server given.
func newIDEnvOn(t *testing.T, srv *servertest.Server, opts ...func(*Options)) *idEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := &idEnv{t: t, ctx: ctx, srv: srv, mgrs: map[string]*registry.Manager{}, subs: map[string]*registry.Subscription{}}
	first := e.start("alice", e.srv.UserToken(t, "alice", time.Hour, nil))
	o := Options{Manager: NewRegistryManager(first), Identity: "alice", Identities: e, Context: ctx, Now: time.Now,
		Theme: func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
			return func() tea.Msg { return scheduledMsg{d: d, msg: f(time.Now())} }
		}}
	for _, f := range opts {
		f(&o)
	}
	e.m = New(o)
	e.m.Update(teaSize(120, 40))
	e.pump()
	return e
}

// start builds, subscribes and connects one identity's manager.
func (e *idEnv) start(name, tok string) *registry.Manager {
	e.t.Helper()
	mgr, err := registry.New(registry.Options{URL: e.srv.URL, APIKey: e.srv.AnonKey(), Token: tok,
		Policy: registry.Fixed{Interval: 100 * time.Millisecond, Max: 50}, MintToken: token.Signer([]byte(idSecret))})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = mgr.Close() })
	sub := mgr.Subscribe(e.ctx, registry.SubscribeOptions{Buffer: 1 << 14, Frames: true})
	e.t.Cleanup(sub.Close)
	if err := mgr.Connect(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.order = append(e.order, name)
	e.mgrs[name], e.subs[name] = mgr, sub
	e.mu.Unlock()
	return mgr
}

// Add implements [Identities] for the test: a user id gets a user
// token, "--role anon" the anon key alone.
func (e *idEnv) Add(_ context.Context, spec string) (Identity, error) {
	name, tok := strings.TrimSpace(spec), ""
	switch {
	case name == "--role anon":
		name, tok = "anon", e.srv.AnonKey()
	case strings.HasPrefix(name, "--jwt "):
		name, tok = "jwt", strings.TrimPrefix(name, "--jwt ")
	case strings.HasPrefix(name, "--"):
		return Identity{}, errors.New("test identities: a user id or --role anon")
	default:
		tok = e.srv.UserToken(e.t, name, time.Hour, nil)
	}
	return Identity{Name: name, Manager: NewRegistryManager(e.start(name, tok)), Detail: "minted for " + name}, nil
}

// Drop implements [Identities].
func (e *idEnv) Drop(_ context.Context, name string) error {
	e.mu.Lock()
	mgr, ok := e.mgrs[name]
	sub := e.subs[name]
	delete(e.mgrs, name)
	delete(e.subs, name)
	e.mu.Unlock()
	if !ok {
		return errors.New("no such identity")
	}
	sub.Close()
	return mgr.Close()
}

// pump hands the UI every identity's events and a fresh state.
func (e *idEnv) pump() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, name := range e.order {
		sub, ok := e.subs[name]
		if !ok {
			continue
		}
		st := e.mgrs[name].Snapshot()
		id := name
		if i == 0 {
			id = "" // the default identity's bridge
		}
		evs := sub.Drain(nil)
		if e.observe != nil {
			for _, ev := range evs {
				e.observe(name, ev)
			}
		}
		e.m.Update(EventsBatchMsg{Events: evs, State: &st, Identity: id})
	}
}

// tick delivers a clock tick and runs what it starts (the comparer's
// reading).
func (e *idEnv) tick() {
	_, cmd := e.m.Update(tickMsg{t: time.Now(), gen: e.m.tickGen})
	feed(e.m, cmd)
}

// command types and runs a command line, then pumps.
func (e *idEnv) command(line string) {
	e.t.Helper()
	keys(e.m, ":")
	typeText(e.m, line)
	for _, c := range keys(e.m, "enter") {
		feed(e.m, c)
	}
	e.pump()
}

// waitFor pumps until cond holds, or fails after a deadline.
func (e *idEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; status %q\n%s", what, e.m.status.text, screen(e.m))
		}
		time.Sleep(20 * time.Millisecond)
		e.pump()
	}
}

// selectAs selects identity id's channel n.
func (e *idEnv) selectAs(id string, n registry.Name) {
	e.t.Helper()
	for i, r := range e.m.chans.rows {
		if r.name == n && r.id == id {
			e.m.channelSelected(e.m.chans.selectRow(i))
			return
		}
	}
	e.t.Fatalf("no row for %s as %s:\n%s", n, id, screen(e.m))
}

// TestIdentitiesSideBySide: ":as bob" adds a second socket, ":join
// --for alice,bob" joins one topic as both; the channels table groups
// the channels by identity and marks the shared topic; the fault menu
// on bob's channel drops only bob's socket; ":drop-identity bob" closes
// it and its rows go.
func TestIdentitiesSideBySide(t *testing.T) {
	e := newIDEnv(t)
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	e.command("as bob")
	mustContain(t, e.m.status.text, "added identity bob")
	e.command("join broadcast room:1 --for alice,bob")
	mustContain(t, e.m.status.text, "joined broadcast:room:1 as alice, bob")
	e.waitFor("both joined", func() bool {
		return len(e.m.holders(room)) == 2 && strings.Count(screen(e.m), "connected") >= 2
	})
	s := screen(e.m)
	mustContain(t, s, "▸ as alice", "▸ as bob", "room:1 ×2")
	if strings.Index(s, "▸ as alice") > strings.Index(s, "▸ as bob") {
		t.Errorf("alice's group should come first:\n%s", s)
	}

	// The fault menu on bob's channel: drop bob's socket only.
	e.selectAs("bob", room)
	mustContain(t, screen(e.m), "bob's socket")
	keys(e.m, "x")
	mustContain(t, screen(e.m), "Faults on bob's socket")
	for _, c := range keys(e.m, "d") {
		feed(e.m, c)
	}
	e.waitFor("bob's reconnect", func() bool { return e.mgrs["bob"].Snapshot().Metrics.Reconnects >= 1 })
	if n := e.mgrs["alice"].Snapshot().Metrics.Reconnects; n != 0 {
		t.Errorf("alice reconnected %d times: the fault went to her socket too", n)
	}

	// The fault menu on alice's channel: expire only alice's token.
	e.selectAs("alice", room)
	keys(e.m, "x")
	mustContain(t, screen(e.m), "Faults on alice's socket")
	for _, c := range keys(e.m, "t") {
		feed(e.m, c)
	}
	mustContain(t, e.m.status.text, "expired the token")
	now := time.Now()
	if exp := e.mgrs["alice"].Snapshot().Token.Expiry; !exp.Before(now) {
		t.Errorf("alice's token expires %v, want expired", exp)
	}
	if exp := e.mgrs["bob"].Snapshot().Token.Expiry; !exp.After(now) {
		t.Errorf("bob's token expires %v: the fault went to his socket too", exp)
	}

	// J on alice's channel with an identity missing joins it as that one.
	e.command("as carol")
	e.selectAs("alice", room)
	for _, c := range keys(e.m, "J") {
		feed(e.m, c)
	}
	mustContain(t, e.m.status.text, "joined broadcast:room:1 as carol")
	e.waitFor("carol holds it", func() bool { return len(e.m.holders(room)) == 3 })
	mustContain(t, screen(e.m), "room:1 ×3")

	e.command("drop-identity bob")
	mustContain(t, e.m.status.text, "dropped identity bob")
	mustNotContain(t, screen(e.m), "▸ as bob")
	mustContain(t, screen(e.m), "room:1 ×2")
	e.command("drop-identity alice")
	mustContain(t, e.m.status.text, "the first identity is rtm's own")
	e.command("join broadcast room:2 --for dave")
	mustContain(t, e.m.status.text, `no identity "dave"`, ":as dave")
}

// TestIdentityTokenMasked: a token given to ":as --jwt" never shows in
// clear: not while it is typed (the command line's echo), not in the
// status line or the log, not in the command history.
func TestIdentityTokenMasked(t *testing.T) {
	e := newIDEnv(t)
	tok := e.srv.UserToken(t, "eve", time.Hour, nil)
	keys(e.m, ":")
	typeText(e.m, "as --jwt "+tok)
	typing := screen(e.m)
	mustContain(t, typing, ":as --jwt "+registry.MaskSecret(tok))
	for _, c := range keys(e.m, "enter") {
		feed(e.m, c)
	}
	mustContain(t, e.m.status.text, "added identity jwt")
	for _, s := range []string{typing, screen(e.m), e.m.status.text, strings.Join(e.m.cmd.history, "\n")} {
		if strings.Contains(s, tok) || strings.Contains(s, tok[20:40]) {
			t.Fatalf("the token shows in clear:\n%s", s)
		}
	}
	if got := e.m.cmd.history[len(e.m.cmd.history)-1]; got != "as --jwt "+registry.MaskSecret(tok) {
		t.Errorf("history keeps %q", got)
	}
	if got := maskSpec("--jwt=" + tok); strings.Contains(got, tok) {
		t.Errorf("maskSpec(--jwt=...) = %q", got)
	}
}

// TestIdentityTokensMaskedEverywhere: the tokens of identities side by
// side (pasted with ":as --jwt", minted for a user, the anon key of a
// role) never show, however spelled or cut, on any screen at any size:
// the command line while typing, the status line, the channels table,
// the header, the Info tab of each identity's channel (its token), the
// fault menu, the Compare tab, the help and the log; nor in the
// command history.
func TestIdentityTokensMaskedEverywhere(t *testing.T) {
	for _, sz := range append(goldenSizes, [2]int{250, 70}) {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			e := newIDEnv(t, func(o *Options) { o.Compare = compare.New(compare.Options{}) })
			e.m.Update(teaSize(sz[0], sz[1]))
			pasted := e.srv.UserToken(t, "eve", time.Hour, map[string]any{"note": "pasted"})
			secrets := []string{pasted, e.srv.AnonKey(), e.srv.UserToken(t, "bob", time.Hour, nil)}
			var screens []string
			keys(e.m, ":")
			typeText(e.m, "as --jwt "+pasted)
			screens = append(screens, screen(e.m))
			for _, c := range keys(e.m, "enter") {
				feed(e.m, c)
			}
			e.command("as bob")
			e.command("as --role anon")
			e.command("join broadcast room:1 --for alice,jwt,bob,anon")
			room := registry.MustName(registry.KindBroadcast, "room", "1", "")
			e.waitFor("four holders", func() bool { return len(e.m.holders(room)) == 4 })
			screens = append(screens, screen(e.m), e.m.status.text)
			for _, id := range []string{"jwt", "bob", "anon"} {
				e.selectAs(id, room)
				keys(e.m, "4")
				screens = append(screens, screen(e.m))
				keys(e.m, "x")
				screens = append(screens, screen(e.m))
				keys(e.m, "esc")
				for _, c := range keys(e.m, "5") {
					feed(e.m, c)
				}
				screens = append(screens, screen(e.m))
			}
			keys(e.m, "?")
			screens = append(screens, screen(e.m))
			keys(e.m, "esc", "tab", "tab", "z")
			screens = append(screens, screen(e.m), strings.Join(e.m.cmd.history, "\n"))
			if !strings.Contains(strings.Join(screens, "\n"), registry.MaskSecret(pasted)) {
				t.Fatalf("the masked token is not shown:\n%s", screens[0])
			}
			for i, s := range screens {
				for _, k := range secrets {
					if masktest.Holds([]byte(s), k) || showsPart(s, k) {
						t.Fatalf("screen %d shows a token (%s):\n%s", i, registry.MaskSecret(k), s)
					}
				}
			}
		})
	}
}
