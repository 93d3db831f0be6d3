package realtime

import (
	"bytes"
	"fmt"
	"sort"
	"sync"

	"rtm/realtime/protocol"
)

// maxPendingDiffs bounds the presence diffs held until the presence_state
// of the current join arrives; older ones are dropped beyond it.
const maxPendingDiffs = 4096

// Presence is a channel's presence state, key → metas, kept in sync from
// presence_state and presence_diff with the algorithm of phoenix's
// Presence: diffs received before the presence_state of the current join
// are held and applied after it; each state and each diff produce join and
// leave events and then one sync. Diffs are applied in place: only the
// keys they touch change, and the metas slices are never modified once
// stored (a diff replaces a key's slice), so events and readers can keep
// them without copying. It is safe for concurrent use.
type Presence struct {
	mu      sync.RWMutex
	state   map[string][]PresenceMeta
	joinRef string   // join of the last presence_state applied
	synced  bool     // a presence_state was applied for joinRef
	pending [][]byte // diffs held until the state arrives (copies)
}

func newPresence() *Presence {
	return &Presence{state: make(map[string][]PresenceMeta)}
}

// Len returns the number of presence keys.
func (p *Presence) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.state)
}

// Get returns the metas of key (nil when absent). Do not modify them.
func (p *Presence) Get(key string) []PresenceMeta {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state[key]
}

// Range calls fn for each key (in no particular order) until it returns
// false. fn must not call other methods of p.
func (p *Presence) Range(fn func(key string, metas []PresenceMeta) bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for k, m := range p.state {
		if !fn(k, m) {
			return
		}
	}
}

// State returns a copy of the state (the map is new; the metas slices are
// shared and immutable).
func (p *Presence) State() map[string][]PresenceMeta {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make(map[string][]PresenceMeta, len(p.state))
	for k, m := range p.state {
		out[k] = m
	}
	return out
}

// Synced reports whether the presence_state of the channel's current join
// has been applied (until then diffs are held).
func (p *Presence) Synced() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.synced
}

// newJoin marks a (re)join: diffs are held until its presence_state.
func (p *Presence) newJoin() {
	p.mu.Lock()
	p.synced = false
	p.mu.Unlock()
}

func (p *Presence) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = make(map[string][]PresenceMeta)
	p.synced, p.joinRef, p.pending = false, "", nil
}

// presenceSet is an ordered key → metas list parsed from a state or from
// the joins or leaves of a diff.
type presenceSet struct {
	keys  []string
	metas [][]PresenceMeta
}

func (ps *presenceSet) add(key string, metas []PresenceMeta) error {
	if ps.keys == nil {
		ps.keys, ps.metas = make([]string, 0, 4), make([][]PresenceMeta, 0, 4)
	}
	ps.keys = append(ps.keys, key)
	ps.metas = append(ps.metas, metas)
	return nil
}

func parsePresenceSet(data []byte) (presenceSet, error) {
	var ps presenceSet
	err := protocol.ScanPresenceState(data, ps.add)
	return ps, err
}

// applyState applies a presence_state payload received for join joinRef
// and returns the events to deliver.
func (p *Presence) applyState(payload []byte, joinRef string) ([]PresenceEvent, error) {
	data := bytes.Clone(payload) // metas alias it and live in the state
	next, err := parsePresenceSet(data)
	if err != nil {
		return nil, fmt.Errorf("presence_state: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// syncState: compute the joins and leaves between the current state
	// and the new one, then apply them as a diff.
	var joins, leaves presenceSet
	inNext := make(map[string]struct{}, len(next.keys))
	for _, k := range next.keys {
		inNext[k] = struct{}{}
	}
	var gone []string
	for k := range p.state {
		if _, ok := inNext[k]; !ok {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		leaves.keys = append(leaves.keys, k)
		leaves.metas = append(leaves.metas, p.state[k])
	}
	for i, k := range next.keys {
		newMetas := next.metas[i]
		cur, ok := p.state[k]
		if !ok {
			joins.keys = append(joins.keys, k)
			joins.metas = append(joins.metas, newMetas)
			continue
		}
		if joined := metasNotIn(newMetas, cur); len(joined) > 0 {
			joins.keys = append(joins.keys, k)
			joins.metas = append(joins.metas, joined)
		}
		if left := metasNotIn(cur, newMetas); len(left) > 0 {
			leaves.keys = append(leaves.keys, k)
			leaves.metas = append(leaves.metas, left)
		}
	}
	events := p.syncDiffLocked(joins, leaves, nil)
	p.joinRef, p.synced = joinRef, true
	pending := p.pending
	p.pending = nil
	for _, d := range pending {
		var err error
		if events, err = p.applyDiffDataLocked(d, events); err != nil {
			return events, err
		}
	}
	return append(events, PresenceEvent{Kind: PresenceSync}), nil
}

// applyDiff applies a presence_diff payload received while the channel's
// join is joinRef; it is held when that join's state has not arrived yet
// (held reports it).
func (p *Presence) applyDiff(payload []byte, joinRef string) (events []PresenceEvent, held bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.synced || p.joinRef != joinRef {
		if len(p.pending) >= maxPendingDiffs {
			p.pending = p.pending[1:]
			err = fmt.Errorf("presence_diff: more than %d diffs before the presence_state; dropped the oldest", maxPendingDiffs)
		}
		p.pending = append(p.pending, bytes.Clone(payload))
		return nil, true, err
	}
	if events, err = p.applyDiffDataLocked(bytes.Clone(payload), nil); err != nil {
		return events, false, err
	}
	return append(events, PresenceEvent{Kind: PresenceSync}), false, nil
}

func (p *Presence) applyDiffDataLocked(data []byte, events []PresenceEvent) ([]PresenceEvent, error) {
	var joins, leaves presenceSet
	err := protocol.ScanPresenceDiff(data, joins.add, leaves.add)
	if err != nil {
		return events, fmt.Errorf("presence_diff: %w", err)
	}
	if events == nil {
		events = make([]PresenceEvent, 0, len(joins.keys)+len(leaves.keys)+1)
	}
	return p.syncDiffLocked(joins, leaves, events), nil
}

// syncDiffLocked is phoenix's syncDiff: joins first, then leaves.
func (p *Presence) syncDiffLocked(joins, leaves presenceSet, events []PresenceEvent) []PresenceEvent {
	for i, k := range joins.keys {
		joined := joins.metas[i]
		cur := p.state[k]
		merged := make([]PresenceMeta, 0, len(cur)+len(joined))
		merged = append(merged, metasNotIn(cur, joined)...)
		merged = append(merged, joined...)
		p.state[k] = merged
		events = append(events, PresenceEvent{Kind: PresenceJoin, Key: k, Current: cur, Changed: joined})
	}
	for i, k := range leaves.keys {
		cur, ok := p.state[k]
		if !ok {
			continue
		}
		left := leaves.metas[i]
		remaining := metasNotIn(cur, left)
		if len(remaining) == 0 {
			delete(p.state, k)
		} else {
			p.state[k] = remaining
		}
		events = append(events, PresenceEvent{Kind: PresenceLeave, Key: k, Current: remaining, Changed: left})
	}
	return events
}

// metasNotIn returns the metas of a whose ref is not among b's refs, in a
// new slice (nil when none).
func metasNotIn(a, b []PresenceMeta) []PresenceMeta {
	var out []PresenceMeta
	for _, m := range a {
		found := false
		for _, o := range b {
			if o.Ref == m.Ref {
				found = true
				break
			}
		}
		if !found {
			out = append(out, m)
		}
	}
	return out
}
