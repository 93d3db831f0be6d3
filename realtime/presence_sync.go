package realtime

import (
	"bytes"
	"fmt"
	"sort"

	"rtm/realtime/protocol"
)

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
	defer p.noteTruncation()
	return p.applyStateLocked(ps, joinRef)
}

func (p *Presence) applyStateLocked(ps *protocol.PresenceSpans, joinRef string) (events []PresenceEvent, sync bool, err error) {
	if ps.Err != nil {
		return nil, false, fmt.Errorf("presence_state: %w", ps.Err)
	}
	defer p.releaseScratch()
	refused := p.capState(ps)
	next := p.copyState(ps)
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
		leaves.add(k, view(p.state[k].metas))
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
	p.longest = 0
	for _, e := range p.state {
		p.longest = max(p.longest, len(e.metas))
	}
	p.joinRef, p.synced = joinRef, true
	// A state that fits clears the truncation, but for the held diffs
	// that were dropped before it.
	p.trunc = refused
	p.trunc.Diffs, p.pendCut = p.pendCut, 0
	pending := p.pending
	p.pending, p.pendLen = nil, 0
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

// copyState copies the entries of a presence_state scanned into ps, as
// capState decided (p.kept), out of the scanned bytes (see spanCopy),
// their metas into one slice (each entry's part capacity-limited). An
// entry without metas gets nil.
func (p *Presence) copyState(ps *protocol.PresenceSpans) presenceSet {
	c := newSpanCopy(ps, p.kept)
	metas := make([]PresenceMeta, 0, c.metas)
	set := presenceSet{keys: make([]string, 0, c.keys), metas: make([][]PresenceMeta, 0, c.keys)}
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if p.kept[k] < 0 {
			continue
		}
		key := c.key(e)
		first := len(metas)
		for _, m := range ps.MetasOf(e)[:p.kept[k]] {
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

// syncDiffLocked is phoenix's syncDiff of a state: joins first, then
// leaves. The metas of joins are owned (copied out of the frame); those
// of leaves are metas of the state.
func (p *Presence) syncDiffLocked(joins, leaves presenceSet, events []PresenceEvent) []PresenceEvent {
	for i, k := range joins.keys {
		cur, ok := p.state[k]
		key := k
		if ok {
			key = cur.key
		}
		events = p.joinLocked(events, key, cur, ok, joins.metas[i], true)
	}
	for i, k := range leaves.keys {
		cur, ok := p.state[k]
		if !ok {
			continue
		}
		left := leaves.metas[i]
		refs := p.metaRefs(left)
		remaining, _, size := p.leaveLocked(cur, &refs)
		events = append(events, PresenceEvent{Kind: PresenceLeave, Key: cur.key, Current: remaining, Changed: left, Metas: remaining,
			size: presenceEventCost + size})
	}
	return events
}

// joinLocked applies a join of joined to key (cur, when ok: its entry),
// as phoenix's syncDiff does, and appends its event to events: the key's
// metas whose ref is not among joined's, then joined. joined is owned by the state from now on when
// owned, else it is copied. When no meta of the key has a ref of joined
// (a new connection, the usual case) they are appended in place: the
// cost is that of joined.
func (p *Presence) joinLocked(events []PresenceEvent, key string, cur presenceEntry, ok bool, joined []PresenceMeta, owned bool) []PresenceEvent {
	e := cur
	if !ok {
		e = presenceEntry{key: key}
		p.bytes += keyCost(len(key))
	}
	l, n := len(cur.metas), len(joined)
	added := metasCost(joined)
	size := presenceEventCost + added
	replaced := 0
	var refs refSet
	if l > 0 && n > 0 {
		refs = p.metaRefs(joined)
		replaced = e.countIn(&refs)
	}
	switch {
	case l == 0 && n == 0:
		e.metas = nil
	case l == 0 && owned:
		e.metas = joined
		e.reindex(nil, nil, true)
	case l == 0:
		e.metas = append(make([]PresenceMeta, 0, n), joined...)
		e.reindex(nil, nil, true)
	case replaced == 0:
		old := e.metas
		e.metas = append(e.metas, joined...)
		if &e.metas[0] != &old[0] {
			size += l * metaOverhead // the old array lives on in readers
		}
		e.reindex(e.metas[l:], nil, false)
	default:
		merged := make([]PresenceMeta, 0, l-replaced+n)
		for i := range cur.metas {
			if m := &cur.metas[i]; refs.has(m.Ref) {
				added -= metaCost(m)
				size += metaCost(m)
			} else {
				merged = append(merged, *m)
			}
		}
		e.metas = append(merged, joined...)
		size += l * metaOverhead
		e.reindex(nil, nil, true)
	}
	p.bytes += added
	p.state[key] = e
	p.longest = max(p.longest, len(e.metas))
	var changed []PresenceMeta
	if n > 0 {
		changed = view(e.metas[len(e.metas)-n:])
	}
	return append(events, PresenceEvent{Kind: PresenceJoin, Key: key, Current: view(cur.metas), Changed: changed, Metas: view(e.metas), size: size})
}

// leaveLocked removes the metas of cur whose ref is in refs (phoenix's
// syncDiff leave; the key goes when none remains) and returns the metas
// that remain, the removed ones when they were a run at either end
// (else nil) and what the event keeps alive in bytes. Removing a run at
// either end costs the run (it is a view of the same array); other
// removals copy what remains.
func (p *Presence) leaveLocked(cur presenceEntry, refs *refSet) (remaining, run []PresenceMeta, size int) {
	e := cur
	l := len(cur.metas)
	removed := 0
	if l > 0 {
		removed = e.countIn(refs)
	}
	if removed > 0 {
		ms := cur.metas
		gone := 0
		switch {
		case removed == l || allIn(ms[:removed], refs):
			run, e.metas = view(ms[:removed]), ms[removed:]
			gone = metasCost(run)
			e.reindex(nil, run, false)
		case allIn(ms[l-removed:], refs):
			run, e.metas = view(ms[l-removed:]), view(ms[:l-removed])
			gone = metasCost(run)
			e.reindex(nil, run, false)
		default:
			kept := make([]PresenceMeta, 0, l-removed)
			for i := range ms {
				if m := &ms[i]; refs.has(m.Ref) {
					gone += metaCost(m)
				} else {
					kept = append(kept, *m)
				}
			}
			e.metas = kept
			size += l * metaOverhead // the old array lives on in readers
			e.reindex(nil, nil, true)
		}
		p.bytes -= gone
		size += gone
	}
	if len(e.metas) == 0 {
		delete(p.state, e.key)
		p.bytes -= keyCost(len(e.key))
		return nil, run, size
	}
	if removed > 0 {
		p.state[e.key] = e
	}
	return view(e.metas), run, size
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
	defer p.noteTruncation()
	return p.applyDiffSpansLocked(ps, payload, joinRef)
}

func (p *Presence) applyDiffSpansLocked(ps *protocol.PresenceSpans, payload []byte, joinRef string) (events []PresenceEvent, held bool, err error) {
	if ps.Err != nil {
		return nil, false, fmt.Errorf("presence_diff: %w", ps.Err)
	}
	if !p.synced || p.joinRef != joinRef {
		p.holdLocked(payload)
		return nil, true, nil
	}
	events = p.eventBuf(len(ps.Entries))
	events = p.applyDiffLocked(ps, events)
	p.commitEvents(events)
	p.releaseScratch()
	return events, false, nil
}

// holdLocked keeps a copy of a diff until the state arrives, dropping the
// oldest held ones beyond maxPendingDiffs or MaxBytes/4 (counted as
// truncation: Diffs).
func (p *Presence) holdLocked(payload []byte) {
	limit := p.lim.MaxBytes / 4
	if len(payload) > limit {
		p.trunc.Diffs++
		p.pendCut++
		return
	}
	for len(p.pending) > 0 && (len(p.pending) >= maxPendingDiffs || p.pendLen+len(payload) > limit) {
		p.pendLen -= len(p.pending[0])
		p.pending[0] = nil
		p.pending = p.pending[1:]
		p.trunc.Diffs++
		p.pendCut++
	}
	p.pending = append(p.pending, bytes.Clone(payload))
	p.pendLen += len(payload)
}

// applyDiffLocked is phoenix's syncDiff of a diff scanned into ps: all
// joins, then all leaves, in place, within the state's limits. It copies
// what the state keeps (the joined metas, a new key) out of the scanned
// bytes.
func (p *Presence) applyDiffLocked(ps *protocol.PresenceSpans, events []PresenceEvent) []PresenceEvent {
	p.plan.reset()
	all := p.keepJoins(ps)
	// The strings (new keys, refs) and meta objects of the joins kept, in
	// one allocation each.
	c := newSpanCopy(ps, p.kept)
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave {
			continue
		}
		spans := ps.MetasOf(e)
		n := int(p.kept[k])
		if n >= 0 {
			key := c.key(e)
			p.joined = p.joined[:0]
			for i := range spans[:n] {
				p.joined = append(p.joined, c.meta(&spans[i]))
			}
			cur, ok := p.state[key]
			if ok {
				key = cur.key
			}
			// The limits again, on the state as the joins before this one
			// left it (they only ever keep less than keepJoins allowed).
			switch {
			case all:
			case !ok && len(p.state) >= p.lim.MaxMembers+p.plan.keys:
				n = -1
			default:
				n = min(n, p.fitMetas(p.joined, ok, p.lim.MaxMetas-len(cur.metas)+p.plan.metas[cur.key], len(key), p.lim.MaxBytes+p.plan.bytes-p.bytes))
			}
			if n > 0 || n == 0 && len(spans) == 0 {
				events = p.joinLocked(events, key, cur, ok, p.joined[:n], false)
			} // else: nothing of the join is kept, nor told
			if n == 0 && !ok && len(spans) > 0 {
				n = -1
			}
		}
		if n < 0 {
			p.trunc.Members++
			n = 0
		}
		p.trunc.Metas += uint64(len(spans) - n)
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
		refs := p.spanRefs(spans)
		remaining, run, size := p.leaveLocked(cur, &refs)
		left := run
		if !sameMetas(run, spans) {
			left = leftMetas(cur.metas, spans)
			size += metasCost(left)
		}
		events = append(events, PresenceEvent{Kind: PresenceLeave, Key: cur.key, Current: remaining, Changed: left, Metas: remaining,
			size: presenceEventCost + size})
	}
	return events
}
