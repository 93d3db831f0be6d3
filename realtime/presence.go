package realtime

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"

	"rtm/realtime/protocol"
)

// maxPendingDiffs bounds the presence diffs held until the presence_state
// of the current join arrives; older ones are dropped beyond it.
const maxPendingDiffs = 4096

// eventSlab is the number of presence events carved out of one
// allocation (see Presence.eventBuf).
const eventSlab = 64

// Presence is a channel's presence state, key → metas, kept in sync from
// presence_state and presence_diff with the algorithm of phoenix's
// Presence: diffs received before the presence_state of the current join
// are held and applied after it; each state and each diff produce join and
// leave events and then one sync. Diffs are applied in place: only the
// keys they touch change, and the metas slices are never modified once
// stored (a diff replaces a key's slice), so events and readers can keep
// them without copying. It is safe for concurrent use.
//
// What the state keeps is copied out of the frames (the refs, keys and
// meta objects of a frame in one block each), so a frame's read buffer is
// never kept alive by the state.
type Presence struct {
	mu      sync.RWMutex
	state   map[string]presenceEntry
	joinRef string   // join of the last presence_state applied
	synced  bool     // a presence_state was applied for joinRef
	pending [][]byte // diffs held until the state arrives (copies)

	// Scratch, guarded by mu.
	spans protocol.PresenceSpans // for payloads not scanned by the reader
	evs   []PresenceEvent        // slab of events: handed out, never reused

	// syncEvent is the event of every sync (it carries nothing, so all
	// share it); never written after newPresence.
	syncEvent PresenceEvent
}

// presenceEntry is the value of a key: the key itself (so that events
// name it without allocating) and its metas.
type presenceEntry struct {
	key   string
	metas []PresenceMeta
}

func newPresence() *Presence {
	return &Presence{state: make(map[string]presenceEntry), syncEvent: PresenceEvent{Kind: PresenceSync}}
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
	return p.state[key].metas
}

// Range calls fn for each key (in no particular order) until it returns
// false. fn must not call other methods of p.
func (p *Presence) Range(fn func(key string, metas []PresenceMeta) bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for k, e := range p.state {
		if !fn(k, e.metas) {
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
	for k, e := range p.state {
		out[k] = e.metas
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
	p.state = make(map[string]presenceEntry)
	p.synced, p.joinRef, p.pending = false, "", nil
}

// eventBuf returns an empty slice with room for n events: carved out of
// the slab when they fit (commit them with commitEvents), else new.
// Events are never written again once handed out, so consumers may keep
// them.
func (p *Presence) eventBuf(n int) []PresenceEvent {
	if cap(p.evs)-len(p.evs) < n {
		if n > eventSlab/4 {
			return make([]PresenceEvent, 0, n)
		}
		p.evs = make([]PresenceEvent, 0, eventSlab)
	}
	l := len(p.evs)
	return p.evs[l : l : l+n]
}

// commitEvents marks the events of evs, returned by eventBuf, as used.
func (p *Presence) commitEvents(evs []PresenceEvent) {
	l := len(p.evs)
	if len(evs) > 0 && cap(p.evs) > l && &p.evs[:l+1][l] == &evs[0] {
		p.evs = p.evs[:l+len(evs)]
	}
}

// maxKeptSpans bounds the presence spans kept for reuse.
const maxKeptSpans = 1024

// releaseSpans empties ps for its next use, or drops its slices after a
// large presence_state.
func releaseSpans(ps *protocol.PresenceSpans) {
	if cap(ps.Entries) > maxKeptSpans || cap(ps.Metas) > maxKeptSpans {
		*ps = protocol.PresenceSpans{}
		return
	}
	ps.Reset()
}

// presenceSet is an ordered key → metas list: a state, or the joins or
// leaves computed from one.
type presenceSet struct {
	keys  []string
	metas [][]PresenceMeta
}

func (ps *presenceSet) add(key string, metas []PresenceMeta) {
	ps.keys = append(ps.keys, key)
	ps.metas = append(ps.metas, metas)
}

// spanCopy holds copies of the keys, refs and meta objects of a scanned
// payload's entries (the joins, or the leaves), so that what the state
// keeps does not alias the frame: the strings in one string, the meta
// objects in one byte slice, handed out in the order of the entries.
type spanCopy struct {
	strs  string
	off   int
	raws  []byte
	keys  int // entries copied
	metas int // metas copied
}

// newSpanCopy copies the entries of ps with Leave == leave.
func newSpanCopy(ps *protocol.PresenceSpans, leave bool) spanCopy {
	var c spanCopy
	strLen, rawLen := 0, 0
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave != leave {
			continue
		}
		c.keys++
		strLen += len(e.Key)
		for _, m := range ps.MetasOf(e) {
			strLen += len(m.Ref) + len(m.PrevRef)
			rawLen += len(m.Raw)
			c.metas++
		}
	}
	if strLen > 0 {
		var sb strings.Builder
		sb.Grow(strLen)
		for k := range ps.Entries {
			if e := &ps.Entries[k]; e.Leave == leave {
				sb.Write(e.Key)
				for _, m := range ps.MetasOf(e) {
					sb.Write(m.Ref)
					sb.Write(m.PrevRef)
				}
			}
		}
		c.strs = sb.String()
	}
	if rawLen > 0 {
		c.raws = make([]byte, 0, rawLen)
	}
	return c
}

// key returns the copy of the next entry's key (e is that entry).
func (c *spanCopy) key(e *protocol.PresenceEntrySpan) string {
	return c.cut(len(e.Key))
}

// meta returns the copy of the next meta (m is that meta).
func (c *spanCopy) meta(m *protocol.PresenceMetaSpan) PresenceMeta {
	r := len(c.raws)
	c.raws = append(c.raws, m.Raw...)
	return PresenceMeta{Ref: c.cut(len(m.Ref)), PrevRef: c.cut(len(m.PrevRef)), Raw: c.raws[r:len(c.raws):len(c.raws)]}
}

func (c *spanCopy) cut(n int) string {
	s := c.strs[c.off : c.off+n]
	c.off += n
	return s
}

// copyMetas copies the entries of ps (those with Leave == leave) out of
// the scanned bytes (see spanCopy), their metas into one slice (each
// entry's part capacity-limited). An entry without metas gets nil.
func copyMetas(ps *protocol.PresenceSpans, leave bool) presenceSet {
	c := newSpanCopy(ps, leave)
	metas := make([]PresenceMeta, 0, c.metas)
	set := presenceSet{keys: make([]string, 0, c.keys), metas: make([][]PresenceMeta, 0, c.keys)}
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave != leave {
			continue
		}
		key := c.key(e)
		first := len(metas)
		for _, m := range ps.MetasOf(e) {
			metas = append(metas, c.meta(&m))
		}
		var em []PresenceMeta
		if len(metas) > first {
			em = metas[first:len(metas):len(metas)]
		}
		set.add(key, em)
	}
	return set
}

// applyState applies a presence_state payload received for join joinRef
// and returns the events to deliver, the sync included.
func (p *Presence) applyState(payload []byte, joinRef string) ([]PresenceEvent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spans.Err = protocol.ScanPresenceStateSpans(payload, &p.spans)
	defer releaseSpans(&p.spans)
	events, sync, err := p.applyStateLocked(&p.spans, joinRef)
	if sync {
		events = append(events, p.syncEvent)
	}
	return events, err
}

// applyStateSpans is applyState of a payload the reader has scanned into
// ps; sync reports the sync that follows the events (see syncEvent).
func (p *Presence) applyStateSpans(ps *protocol.PresenceSpans, joinRef string) (events []PresenceEvent, sync bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applyStateLocked(ps, joinRef)
}

func (p *Presence) applyStateLocked(ps *protocol.PresenceSpans, joinRef string) (events []PresenceEvent, sync bool, err error) {
	if ps.Err != nil {
		return nil, false, fmt.Errorf("presence_state: %w", ps.Err)
	}
	next := copyMetas(ps, false)
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
		leaves.add(k, p.state[k].metas)
	}
	for i, k := range next.keys {
		newMetas := next.metas[i]
		cur, ok := p.state[k]
		if !ok {
			joins.add(k, newMetas)
			continue
		}
		if joined := metasNotIn(newMetas, cur.metas); len(joined) > 0 {
			joins.add(k, joined)
		}
		if left := metasNotIn(cur.metas, newMetas); len(left) > 0 {
			leaves.add(k, left)
		}
	}
	events = p.syncDiffLocked(joins, leaves, make([]PresenceEvent, 0, len(joins.keys)+len(leaves.keys)))
	p.joinRef, p.synced = joinRef, true
	pending := p.pending
	p.pending = nil
	for _, d := range pending {
		// Held diffs were checked when they arrived.
		if perr := protocol.ScanPresenceDiffSpans(d, &p.spans); perr != nil {
			err = fmt.Errorf("presence_diff: %w", perr)
			continue
		}
		events = p.applyDiffLocked(&p.spans, events)
	}
	releaseSpans(&p.spans)
	return events, true, err
}

// syncDiffLocked is phoenix's syncDiff of a state: joins first, then
// leaves. The metas of joins are owned (copied out of the frame).
func (p *Presence) syncDiffLocked(joins, leaves presenceSet, events []PresenceEvent) []PresenceEvent {
	for i, k := range joins.keys {
		joined := joins.metas[i]
		cur := p.state[k]
		merged := joined
		if kept := metasNotIn(cur.metas, joined); len(kept) > 0 || merged == nil {
			merged = make([]PresenceMeta, 0, len(kept)+len(joined))
			merged = append(append(merged, kept...), joined...)
		}
		key := k
		if cur.key != "" {
			key = cur.key
		}
		p.state[key] = presenceEntry{key: key, metas: merged}
		events = append(events, PresenceEvent{Kind: PresenceJoin, Key: key, Current: cur.metas, Changed: joined})
	}
	for i, k := range leaves.keys {
		cur, ok := p.state[k]
		if !ok {
			continue
		}
		left := leaves.metas[i]
		remaining := metasNotIn(cur.metas, left)
		if len(remaining) == 0 {
			delete(p.state, k)
		} else {
			p.state[cur.key] = presenceEntry{key: cur.key, metas: remaining}
		}
		events = append(events, PresenceEvent{Kind: PresenceLeave, Key: cur.key, Current: remaining, Changed: left})
	}
	return events
}

// applyDiff applies a presence_diff payload received while the channel's
// join is joinRef and returns the events to deliver, the sync included; it
// is held when that join's state has not arrived yet (held reports it). A
// malformed diff is refused (and not held).
func (p *Presence) applyDiff(payload []byte, joinRef string) (events []PresenceEvent, held bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spans.Err = protocol.ScanPresenceDiffSpans(payload, &p.spans)
	defer releaseSpans(&p.spans)
	events, held, err = p.applyDiffSpansLocked(&p.spans, payload, joinRef)
	if !held && err == nil {
		events = append(events, p.syncEvent)
	}
	return events, held, err
}

// applyDiffSpans is applyDiff of a payload the reader has scanned into ps;
// the events do not include the sync that follows them when the diff was
// applied (!held, err == nil; see syncEvent).
func (p *Presence) applyDiffSpans(ps *protocol.PresenceSpans, payload []byte, joinRef string) (events []PresenceEvent, held bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applyDiffSpansLocked(ps, payload, joinRef)
}

func (p *Presence) applyDiffSpansLocked(ps *protocol.PresenceSpans, payload []byte, joinRef string) (events []PresenceEvent, held bool, err error) {
	if ps.Err != nil {
		return nil, false, fmt.Errorf("presence_diff: %w", ps.Err)
	}
	if !p.synced || p.joinRef != joinRef {
		if len(p.pending) >= maxPendingDiffs {
			p.pending = p.pending[1:]
			err = fmt.Errorf("presence_diff: more than %d diffs before the presence_state; dropped the oldest", maxPendingDiffs)
		}
		p.pending = append(p.pending, bytes.Clone(payload))
		return nil, true, err
	}
	events = p.eventBuf(len(ps.Entries))
	events = p.applyDiffLocked(ps, events)
	p.commitEvents(events)
	return events, false, nil
}

// applyDiffLocked is phoenix's syncDiff of a diff scanned into ps: all
// joins, then all leaves, in place. It copies what the state keeps (the
// joined metas, a new key) out of the scanned bytes.
func (p *Presence) applyDiffLocked(ps *protocol.PresenceSpans, events []PresenceEvent) []PresenceEvent {
	// The strings (new keys, refs) and meta objects of all joins, in one
	// allocation each.
	c := newSpanCopy(ps, false)
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave {
			continue
		}
		key := c.key(e)
		cur, ok := p.state[key]
		if ok {
			key = cur.key
		}
		spans := ps.MetasOf(e)
		kept := 0
		for _, m := range cur.metas {
			if !refIn(m.Ref, spans) {
				kept++
			}
		}
		merged := make([]PresenceMeta, 0, kept+len(spans))
		for _, m := range cur.metas {
			if !refIn(m.Ref, spans) {
				merged = append(merged, m)
			}
		}
		for i := range spans {
			merged = append(merged, c.meta(&spans[i]))
		}
		var joined []PresenceMeta
		if len(spans) > 0 {
			joined = merged[kept:len(merged):len(merged)]
		}
		p.state[key] = presenceEntry{key: key, metas: merged}
		events = append(events, PresenceEvent{Kind: PresenceJoin, Key: key, Current: cur.metas, Changed: joined})
	}
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if !e.Leave {
			continue
		}
		cur, ok := p.state[string(e.Key)]
		if !ok {
			continue
		}
		spans := ps.MetasOf(e)
		left := leftMetas(cur.metas, spans)
		remaining := cur.metas
		if removed := len(cur.metas) - countNotIn(cur.metas, spans); removed > 0 {
			remaining = nil
			if n := len(cur.metas) - removed; n > 0 {
				remaining = make([]PresenceMeta, 0, n)
				for _, m := range cur.metas {
					if !refIn(m.Ref, spans) {
						remaining = append(remaining, m)
					}
				}
			}
		}
		if len(remaining) == 0 {
			remaining = nil
			delete(p.state, cur.key)
		} else {
			p.state[cur.key] = presenceEntry{key: cur.key, metas: remaining}
		}
		events = append(events, PresenceEvent{Kind: PresenceLeave, Key: cur.key, Current: remaining, Changed: left})
	}
	return events
}

// refIn reports whether ref is the phx_ref of one of spans.
func refIn(ref string, spans []protocol.PresenceMetaSpan) bool {
	for i := range spans {
		if string(spans[i].Ref) == ref {
			return true
		}
	}
	return false
}

// countNotIn counts the metas whose ref is not among spans' refs.
func countNotIn(metas []PresenceMeta, spans []protocol.PresenceMetaSpan) int {
	n := 0
	for _, m := range metas {
		if !refIn(m.Ref, spans) {
			n++
		}
	}
	return n
}

// sameMeta reports whether the stored meta m is the meta of span s.
func sameMeta(m *PresenceMeta, s *protocol.PresenceMetaSpan) bool {
	return m.Ref == string(s.Ref) && m.PrevRef == string(s.PrevRef) && bytes.Equal(m.Raw, s.Raw)
}

// leftMetas returns the metas of a leave (spans) for its event: the
// stored metas themselves when the leave names a run of them unchanged
// (no copy), else copies (nil when the leave has none).
func leftMetas(cur []PresenceMeta, spans []protocol.PresenceMetaSpan) []PresenceMeta {
	n := len(spans)
	if n == 0 {
		return nil
	}
run:
	for j := 0; j+n <= len(cur); j++ {
		for t := range spans {
			if !sameMeta(&cur[j+t], &spans[t]) {
				continue run
			}
		}
		return cur[j : j+n : j+n]
	}
	out := make([]PresenceMeta, n)
spans:
	for t := range spans {
		for j := range cur {
			if sameMeta(&cur[j], &spans[t]) {
				out[t] = cur[j]
				continue spans
			}
		}
		out[t] = spans[t].Meta()
	}
	return out
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
