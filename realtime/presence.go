package realtime

import (
	"sync"
	"unsafe"

	"rtm/realtime/protocol"
)

// presenceEventCost is what a presence event costs in the channel's
// queue besides the metas it keeps alive.
const presenceEventCost = int(unsafe.Sizeof(PresenceEvent{}))

// eventSlab is the number of presence events carved out of one
// allocation (see Presence.eventBuf).
const eventSlab = 64

// indexMin is the number of metas above which a key keeps an index of
// its refs, so that a diff costs what it names, not what the key holds.
const indexMin = 32

// Presence is a channel's presence state, key → metas, kept in sync from
// presence_state and presence_diff with the algorithm of phoenix's
// Presence: diffs received before the presence_state of the current join
// are held and applied after it; each state and each diff produce join and
// leave events and then one sync. Diffs are applied in place: only the
// keys they touch change, and a diff costs what it names, not what the
// keys hold (a key's new metas are appended to an array the state owns,
// beyond what any reader sees; a key of many metas keeps an index of its
// refs). The metas slices handed out (events, Get, Range, State) are
// never modified, so events and readers can keep them without copying.
// What it keeps is bounded by [PresenceLimits]. It is safe for
// concurrent use.
//
// What the state keeps is copied out of the frames (the refs, keys and
// meta objects of a frame in one block each), so a frame's read buffer is
// never kept alive by the state.
type Presence struct {
	mu      sync.RWMutex
	lim     PresenceLimits
	state   map[string]presenceEntry
	bytes   int                // counted against lim.MaxBytes
	longest int                // at least the metas of the longest key
	trunc   PresenceTruncation // since the last state that fit
	logged  uint64             // trunc.total() when last reported (see noteTruncation)
	joinRef string             // join of the last presence_state applied
	synced  bool               // a presence_state was applied for joinRef
	pending [][]byte           // diffs held until the state arrives (copies)
	pendLen int                // their bytes
	pendCut uint64             // held diffs dropped since the last state
	// news is the change of trunc the last apply made worth a log line
	// (see noteTruncation): written by the applies, under mu, and read
	// by the goroutine that made them (the read loop; see
	// Channel.logTruncation).
	news truncNews

	// Scratch, guarded by mu.
	spans  protocol.PresenceSpans // for payloads not scanned by the reader
	evs    []PresenceEvent        // slab of events: handed out, never reused
	kept   []int32                // per entry of a payload: metas kept, -1: key refused
	joined []PresenceMeta         // the metas of one join, copied
	set    map[string]struct{}    // see refSet
	plan   leavePlan

	// syncEvent is the event of every sync (it carries nothing, so all
	// share it); never written after newPresence.
	syncEvent PresenceEvent
}

// presenceEntry is the value of a key: the key itself (so that events
// name it without allocating) and its metas. The backing array of metas
// beyond its length belongs to the state (nothing handed out reaches
// it), so joins append there in place.
type presenceEntry struct {
	key   string
	metas []PresenceMeta
	refs  map[string]int32 // phx_ref → metas with it, when more than indexMin
}

// view returns ms capacity-limited, as it is handed out.
func view(ms []PresenceMeta) []PresenceMeta { return ms[:len(ms):len(ms)] }

// reindex keeps e.refs after e.metas changed: added and removed are the
// metas that came and went (removed nil with rebuild: recount).
func (e *presenceEntry) reindex(added, removed []PresenceMeta, rebuild bool) {
	switch {
	case len(e.metas) <= indexMin/2:
		e.refs = nil
	case e.refs == nil && len(e.metas) <= indexMin:
	case e.refs == nil || rebuild:
		e.refs = make(map[string]int32, len(e.metas))
		for i := range e.metas {
			e.refs[e.metas[i].Ref]++
		}
	default:
		for i := range added {
			e.refs[added[i].Ref]++
		}
		for i := range removed {
			if r := removed[i].Ref; e.refs[r] <= 1 {
				delete(e.refs, r)
			} else {
				e.refs[r]--
			}
		}
	}
}

// countIn counts the metas of e whose ref is in refs.
func (e *presenceEntry) countIn(refs *refSet) int {
	n := 0
	if e.refs != nil {
		refs.each(func(r string) { n += int(e.refs[r]) })
		return n
	}
	for i := range e.metas {
		if refs.has(e.metas[i].Ref) {
			n++
		}
	}
	return n
}

func newPresence(lim PresenceLimits) *Presence {
	return &Presence{lim: lim.normalize(), state: make(map[string]presenceEntry), syncEvent: PresenceEvent{Kind: PresenceSync}}
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
	return view(p.state[key].metas)
}

// Range calls fn for each key (in no particular order) until it returns
// false. fn must not call other methods of p.
func (p *Presence) Range(fn func(key string, metas []PresenceMeta) bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for k, e := range p.state {
		if !fn(k, view(e.metas)) {
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
		out[k] = view(e.metas)
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

// Truncation returns what the state did not keep because of its limits
// since the last presence_state that fit (zero: it is complete).
func (p *Presence) Truncation() PresenceTruncation {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.trunc
}

// Limits returns the state's limits, defaults filled in.
func (p *Presence) Limits() PresenceLimits { return p.lim }

// Bytes returns the bytes the state counts against its MaxBytes.
func (p *Presence) Bytes() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.bytes
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
	p.synced, p.joinRef, p.pending, p.pendLen, p.pendCut = false, "", nil, 0, 0
	p.bytes, p.trunc, p.logged, p.longest, p.news = 0, PresenceTruncation{}, 0, 0, truncNews{}
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

// maxKeptSpans bounds the presence spans (and scratch) kept for reuse.
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

// releaseScratch empties the scratch of one payload, dropping what a
// large one grew.
func (p *Presence) releaseScratch() {
	clear(p.joined)
	p.joined = p.joined[:0]
	if cap(p.kept) > maxKeptSpans {
		p.kept = nil
	}
	if cap(p.joined) > maxKeptSpans {
		p.joined = nil
	}
	if len(p.set) > maxKeptSpans {
		p.set = nil
	}
	p.plan.reset()
}
