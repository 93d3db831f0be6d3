package tui

import (
	"context"

	"rtm/registry"
)

// This file holds the identities the UI shows side by side: each is its
// own socket (its own [Manager], fed by its own [Bridge] whose batches
// carry the identity's name), with its own state, channels and buffers.
// The model works on one at a time, the active identity: its data sit in
// the model's fields (state, chData, retries, frames, dropped), the
// others' in their identity; activate swaps them. The active identity is
// the selected channel's, so every action, fault and tab of a channel
// goes to the socket that holds it.

// DefaultIdentity is the name of the identity of Options.Manager when
// Options.Identity is empty.
const DefaultIdentity = "default"

// maxIdentities bounds the identities the UI holds at once (each is a
// socket to the server).
const maxIdentities = 8

// Identity is one identity the UI holds: a name (a user id, a role, or
// the name given with a pasted token) and the manager of its socket.
type Identity struct {
	// Name names the identity in the channels table and in ":join
	// --for"; it is unique among the UI's identities.
	Name string
	// Manager runs the identity's actions.
	Manager Manager
	// Detail says how its token was made ("minted for alice, role
	// authenticated", "pasted token ey…xxxxx"), masked.
	Detail string
}

// Identities adds and drops identities at run time (":as",
// ":drop-identity"). Add builds the identity spec describes (a user id;
// "--role anon|authenticated|service_role"; "--jwt TOKEN"), connects its
// socket and starts feeding its events to the UI as [EventsBatchMsg]
// with Identity set to its name (a [Bridge] with BridgeOptions.Identity);
// Drop closes the identity's socket and stops its feed. Both are called
// from Cmds only.
type Identities interface {
	Add(ctx context.Context, spec string) (Identity, error)
	Drop(ctx context.Context, name string) error
}

// identity is what the UI keeps of one identity while another is
// active: its state as last reported, the buffers of its channels and
// its retry events and raw frames.
type identity struct {
	Identity
	state     registry.State
	haveState bool
	chData    map[registry.Name]*chanData
	retries   *Ring[registry.RetryEvent]
	frames    *Ring[registry.FrameEvent]
	dropped   uint64
}

// newIdentity returns an identity with empty buffers.
func (m *Model) newIdentity(id Identity) *identity {
	return &identity{
		Identity: id,
		chData:   map[registry.Name]*chanData{},
		retries:  NewSizedRing(m.opts.RetryRing, m.opts.RetryBytes, retryBytes),
		frames:   NewSizedRing(m.opts.FrameRing, m.opts.FrameBytes, frameBytes),
	}
}

// identityIndex returns the index of the named identity, or -1.
func (m *Model) identityIndex(name string) int {
	for i, id := range m.ids {
		if id.Name == name {
			return i
		}
	}
	return -1
}

// activeName returns the active identity's name.
func (m *Model) activeName() string { return m.ids[m.active].Name }

// multi reports whether the UI holds more than one identity (the
// channels table then groups by identity).
func (m *Model) multi() bool { return len(m.ids) > 1 }

// store saves the model's working fields into the active identity.
func (m *Model) store() {
	id := m.ids[m.active]
	id.state, id.haveState, id.chData = m.state, m.haveState, m.chData
	id.retries, id.frames, id.dropped = m.retries, m.frames, m.dropped
}

// load makes identity i the active one, its data the model's working
// fields. The panes' caches are keyed on the generations, which move.
func (m *Model) load(i int) {
	id := m.ids[i]
	m.active = i
	m.state, m.haveState, m.chData = id.state, id.haveState, id.chData
	m.retries, m.frames, m.dropped = id.retries, id.frames, id.dropped
	m.stateGen++
	m.chansGen++
}

// activate makes identity i the active one (a no-op when it is).
func (m *Model) activate(i int) {
	if i == m.active || i < 0 || i >= len(m.ids) {
		return
	}
	m.store()
	m.load(i)
	m.invalidate()
}

// withIdentity runs f with identity i active, then restores the active
// one (for a batch of an identity that is not shown).
func (m *Model) withIdentity(i int, f func()) {
	if i == m.active || i < 0 {
		f()
		return
	}
	prev := m.active
	m.store()
	m.load(i)
	f()
	m.store()
	m.load(prev)
}

// identitiesChanged shows the Compare tab and its key while the UI
// holds several identities.
func (m *Model) identitiesChanged() {
	m.main.setShown(m.multi())
	m.keys.setCompare(m.multi())
}

// holders returns the names of the identities holding a channel on
// topic n, in the order of the UI's identities.
func (m *Model) holders(n registry.Name) []string {
	var out []string
	for i, id := range m.ids {
		chans := id.state.Channels
		if i == m.active {
			chans = m.state.Channels
		}
		for _, c := range chans {
			if c.Name == n {
				out = append(out, id.Name)
				break
			}
		}
	}
	return out
}
