package realtime

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"rtm/realtime/protocol"
)

// Defaults of [PresenceLimits].
const (
	// DefaultPresenceMaxMembers is the default bound on a channel's
	// presence keys: twice the most concurrent clients a Supabase project
	// can be configured for (50,000), so a real channel is never cut,
	// while a server sending a state of 200,000 members is.
	DefaultPresenceMaxMembers = 100_000
	// DefaultPresenceMaxMetas is the default bound on the metas of one
	// key. A key's metas are its tracked connections (tabs, devices):
	// a handful for a user; a thousand is far beyond any real one.
	DefaultPresenceMaxMetas = 1024
	// DefaultPresenceMaxBytes is the default bound on the bytes a
	// channel's presence state keeps (see [PresenceLimits].MaxBytes): room
	// for 100,000 members with metas of about 500 bytes each.
	DefaultPresenceMaxBytes = 64 << 20
)

// maxPendingDiffs bounds the presence diffs held until the presence_state
// of the current join arrives (and PresenceLimits.MaxBytes/4 their
// bytes); older ones are dropped beyond it.
const maxPendingDiffs = 4096

// The costs the state counts against PresenceLimits.MaxBytes besides the
// bytes of keys, refs and meta objects: a meta's struct and its share of
// its key's ref index; a key's map entry.
const (
	metaOverhead = int(unsafe.Sizeof(PresenceMeta{})) + 8
	keyOverhead  = 96
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

// refScan is the number of metas of a join or leave up to which their
// refs are compared one by one; above it they go into a map.
const refScan = 8

// PresenceLimits bound what a channel's presence state keeps, so that a
// server (or a bug) sending endless joins cannot make it grow without
// end. What does not fit is not kept and is counted
// ([Presence.Truncation], [ChannelStats].PresenceTruncated); the channel
// logs it. A zero field gets its default.
type PresenceLimits struct {
	// MaxMembers bounds the keys (default 100,000). The joins of new keys
	// beyond it are not kept.
	MaxMembers int
	// MaxMetas bounds the metas of one key (default 1024). The metas a
	// join adds beyond it are not kept.
	MaxMetas int
	// MaxBytes bounds the bytes the state keeps (default 64 MiB): keys,
	// refs and meta objects as received, plus 64 bytes per meta and 96
	// per key for the structures holding them. It also bounds, at a
	// quarter of it, the diffs held until the presence_state. While a
	// presence_state replaces a large state, the old and new one may be
	// held together for a moment.
	MaxBytes int
}

func (l PresenceLimits) normalize() PresenceLimits {
	if l.MaxMembers <= 0 {
		l.MaxMembers = DefaultPresenceMaxMembers
	}
	if l.MaxMetas <= 0 {
		l.MaxMetas = DefaultPresenceMaxMetas
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultPresenceMaxBytes
	}
	return l
}

// PresenceTruncation counts what a presence state did not keep because
// of its [PresenceLimits], since the last presence_state that fit
// entirely (which resets it to zero). While it is not zero the state is
// known to be incomplete: a key refused then may be present still.
type PresenceTruncation struct {
	// Members counts the joins of new keys that were not kept.
	Members uint64
	// Metas counts the metas that were not kept, those of the keys not
	// kept included.
	Metas uint64
	// Diffs counts the presence_diffs held for a presence_state that
	// were dropped (beyond 4096 of them, or a quarter of MaxBytes).
	Diffs uint64
}

// Truncated reports whether anything was not kept.
func (t PresenceTruncation) Truncated() bool { return t.Members != 0 || t.Metas != 0 || t.Diffs != 0 }

func (t PresenceTruncation) total() uint64 { return t.Members + t.Metas + t.Diffs }

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

func metaCost(m *PresenceMeta) int {
	return metaOverhead + len(m.Ref) + len(m.PrevRef) + len(m.Raw)
}

func spanCost(m *protocol.PresenceMetaSpan) int {
	return metaOverhead + len(m.Ref) + len(m.PrevRef) + len(m.Raw)
}

func keyCost(n int) int { return keyOverhead + n }

func metasCost(ms []PresenceMeta) int {
	n := 0
	for i := range ms {
		n += metaCost(&ms[i])
	}
	return n
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

// refSet tells whether a ref is among the refs of a join's or a leave's
// metas (spans or metas): by comparing them one by one when they are
// few, else through a map (the state's scratch: one refSet at a time).
type refSet struct {
	spans []protocol.PresenceMetaSpan
	metas []PresenceMeta
	m     map[string]struct{}
}

func (p *Presence) spanRefs(spans []protocol.PresenceMetaSpan) refSet {
	s := refSet{spans: spans}
	if len(spans) > refScan {
		s.m = p.scratchSet()
		for i := range spans {
			s.m[string(spans[i].Ref)] = struct{}{}
		}
	}
	return s
}

func (p *Presence) metaRefs(metas []PresenceMeta) refSet {
	s := refSet{metas: metas}
	if len(metas) > refScan {
		s.m = p.scratchSet()
		for i := range metas {
			s.m[metas[i].Ref] = struct{}{}
		}
	}
	return s
}

func (p *Presence) scratchSet() map[string]struct{} {
	if p.set == nil {
		p.set = make(map[string]struct{})
	}
	clear(p.set)
	return p.set
}

func (s *refSet) has(ref string) bool {
	if s.m != nil {
		_, ok := s.m[ref]
		return ok
	}
	for i := range s.spans {
		if string(s.spans[i].Ref) == ref {
			return true
		}
	}
	for i := range s.metas {
		if s.metas[i].Ref == ref {
			return true
		}
	}
	return false
}

// each calls fn with each distinct ref.
func (s *refSet) each(fn func(string)) {
	if s.m != nil {
		for r := range s.m {
			fn(r)
		}
		return
	}
spans:
	for i := range s.spans {
		for j := range i {
			if bytes.Equal(s.spans[j].Ref, s.spans[i].Ref) {
				continue spans
			}
		}
		fn(string(s.spans[i].Ref))
	}
metas:
	for i := range s.metas {
		for j := range i {
			if s.metas[j].Ref == s.metas[i].Ref {
				continue metas
			}
		}
		fn(s.metas[i].Ref)
	}
}

// allIn reports whether every meta of ms has its ref in refs.
func allIn(ms []PresenceMeta, refs *refSet) bool {
	for i := range ms {
		if !refs.has(ms[i].Ref) {
			return false
		}
	}
	return true
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

// truncNews is a change of a state's truncation worth a log line.
type truncNews struct {
	t                PresenceTruncation
	report, complete bool
}

// noteTruncation sets p.news, under p.mu, to the change of the
// truncation worth a log line, if any: it began, it doubled since it was
// last reported, or it cleared (complete).
func (p *Presence) noteTruncation() {
	n := p.trunc.total()
	switch {
	case n == 0 && p.logged != 0:
		p.logged = 0
		p.news = truncNews{t: p.trunc, complete: true}
	case n != 0 && (p.logged == 0 || n >= 2*p.logged):
		p.logged = n
		p.news = truncNews{t: p.trunc, report: true}
	}
}

// takeNews returns and clears the news of the last apply (see news).
func (p *Presence) takeNews() truncNews {
	n := p.news
	p.news = truncNews{}
	return n
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
// payload's joins (or of a state's entries), so that what the state
// keeps does not alias the frame: the strings in one string, the meta
// objects in one byte slice, handed out in the order of the entries.
// Only what the state keeps is copied (kept, see newSpanCopy).
type spanCopy struct {
	strs  string
	off   int
	raws  []byte
	keys  int // entries copied
	metas int // metas copied
}

// newSpanCopy copies the join entries of ps (all but leaves): the key and
// the first kept[k] metas of entry k, nothing of an entry whose kept[k]
// is negative.
func newSpanCopy(ps *protocol.PresenceSpans, kept []int32) spanCopy {
	var c spanCopy
	strLen, rawLen := 0, 0
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave || kept[k] < 0 {
			continue
		}
		c.keys++
		strLen += len(e.Key)
		for _, m := range ps.MetasOf(e)[:kept[k]] {
			strLen += len(m.Ref) + len(m.PrevRef)
			rawLen += len(m.Raw)
			c.metas++
		}
	}
	if strLen > 0 {
		var sb strings.Builder
		sb.Grow(strLen)
		for k := range ps.Entries {
			if e := &ps.Entries[k]; !e.Leave && kept[k] >= 0 {
				sb.Write(e.Key)
				for _, m := range ps.MetasOf(e)[:kept[k]] {
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

// capState decides what the state keeps of a presence_state scanned into
// ps (into p.kept, see newSpanCopy): its keys in order up to MaxMembers,
// the first MaxMetas metas of each, while MaxBytes lasts. It returns what
// it refuses.
func (p *Presence) capState(ps *protocol.PresenceSpans) PresenceTruncation {
	var t PresenceTruncation
	p.kept = p.kept[:0]
	members, bytes := 0, 0
	for k := range ps.Entries {
		e := &ps.Entries[k]
		spans := ps.MetasOf(e)
		n := -1
		if members < p.lim.MaxMembers {
			n = p.fitSpans(spans, false, 0, len(e.Key), p.lim.MaxBytes-bytes)
		}
		p.kept = append(p.kept, int32(n))
		if n < 0 {
			t.Members++
			t.Metas += uint64(len(spans))
			continue
		}
		t.Metas += uint64(len(spans) - n)
		members++
		bytes += keyCost(len(e.Key))
		for i := range spans[:n] {
			bytes += spanCost(&spans[i])
		}
	}
	return t
}

// fitSpans returns how many of spans, joining a key (exists: with
// curLen metas, of which credit leave in the same diff; else new, its key
// keyLen bytes), fit in budget bytes and MaxMetas: a prefix of them, or
// -1 when the key is new and none fits (the key is refused).
func (p *Presence) fitSpans(spans []protocol.PresenceMetaSpan, exists bool, room, keyLen, budget int) int {
	return fitPrefix(p.lim.MaxMetas, spans, spanCost, exists, room, keyLen, budget)
}

// fitMetas is fitSpans of metas already copied.
func (p *Presence) fitMetas(metas []PresenceMeta, exists bool, room, keyLen, budget int) int {
	return fitPrefix(p.lim.MaxMetas, metas, metaCost, exists, room, keyLen, budget)
}

// fitPrefix is fitSpans and fitMetas: maxMetas is the limit of metas per
// key, cost what one item takes.
func fitPrefix[T any](maxMetas int, items []T, cost func(*T) int, exists bool, room, keyLen, budget int) int {
	if !exists {
		room = maxMetas
		budget -= keyCost(keyLen)
		if budget < 0 {
			return -1
		}
	}
	n := min(len(items), max(room, 0))
	for i := range items[:n] {
		if budget -= cost(&items[i]); budget < 0 {
			n = i
			break
		}
	}
	if n == 0 && !exists && len(items) > 0 {
		return -1
	}
	return n
}

// leavePlan is what the leaves of a diff will free, so that its joins may
// use that room before the leaves apply (joins come first, as in
// phoenix): a user updating its meta (a join of the new one and a leave
// of the old one) is not refused when the state is full. It is worked out
// only when a join does not fit.
type leavePlan struct {
	built bool
	keys  int            // keys the leaves remove entirely
	bytes int            // bytes they free
	metas map[string]int // key → metas the leaves remove from it
}

func (pl *leavePlan) reset() {
	pl.built, pl.keys, pl.bytes = false, 0, 0
	if len(pl.metas) > maxKeptSpans {
		pl.metas = nil
	}
	clear(pl.metas)
}

// buildPlan works out the leave plan of the diff scanned into ps on the
// state as it is before the diff (once per diff).
func (p *Presence) buildPlan(ps *protocol.PresenceSpans) {
	pl := &p.plan
	pl.built = true
	var joins map[string]struct{}
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if !e.Leave {
			continue
		}
		cur, ok := p.state[string(e.Key)]
		if !ok {
			continue
		}
		if _, seen := pl.metas[cur.key]; seen {
			continue
		}
		if joins == nil {
			joins = make(map[string]struct{})
			for j := range ps.Entries {
				if !ps.Entries[j].Leave {
					joins[string(ps.Entries[j].Key)] = struct{}{}
				}
			}
		}
		refs := p.spanRefs(ps.MetasOf(e))
		n, b := 0, 0
		for i := range cur.metas {
			if refs.has(cur.metas[i].Ref) {
				n++
				b += metaCost(&cur.metas[i])
			}
		}
		if pl.metas == nil {
			pl.metas = make(map[string]int)
		}
		pl.metas[cur.key] = n
		pl.bytes += b
		if _, joined := joins[cur.key]; n == len(cur.metas) && !joined {
			pl.keys++
			pl.bytes += keyCost(len(cur.key))
		}
	}
}

// keepJoins decides, into p.kept, how many metas of each join of the
// diff scanned into ps the state keeps under its limits (-1: the key is
// refused), as the joins before it in the diff leave the state: only
// those are copied. The joins check the limits again as they apply,
// unless all reports that everything fits anyway.
func (p *Presence) keepJoins(ps *protocol.PresenceSpans) (all bool) {
	p.kept = p.kept[:0]
	if p.fitsAll(ps) {
		for k := range ps.Entries {
			p.kept = append(p.kept, int32(ps.Entries[k].N))
		}
		return true
	}
	members, used := len(p.state), p.bytes
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave {
			p.kept = append(p.kept, 0)
			continue
		}
		spans := ps.MetasOf(e)
		cur, ok := p.state[string(e.Key)]
		n := p.keepJoin(ps, spans, cur, ok, len(e.Key), members, used)
		p.kept = append(p.kept, int32(n))
		if n < 0 {
			continue
		}
		if !ok {
			members++
			used += keyCost(len(e.Key))
		}
		for i := range spans[:n] {
			used += spanCost(&spans[i])
		}
	}
	return false
}

// fitsAll reports whether all the joins of the diff scanned into ps fit
// the limits whatever the keys they name (the usual case: no lookup is
// needed to know it): as many new keys as joins, all their bytes, and all
// their metas added to the longest key.
func (p *Presence) fitsAll(ps *protocol.PresenceSpans) bool {
	keys, metas, cost := 0, 0, 0
	for k := range ps.Entries {
		e := &ps.Entries[k]
		if e.Leave {
			continue
		}
		keys++
		metas += e.N
		cost += keyCost(len(e.Key))
		spans := ps.MetasOf(e)
		for i := range spans {
			cost += spanCost(&spans[i])
		}
	}
	return len(p.state)+keys <= p.lim.MaxMembers && p.bytes+cost <= p.lim.MaxBytes && p.longest+metas <= p.lim.MaxMetas
}

// keepJoin is how many of spans a join keeps (-1: refused) with the state
// at members keys and used bytes, with the room its diff's leaves free
// (worked out the first time a join does not fit).
func (p *Presence) keepJoin(ps *protocol.PresenceSpans, spans []protocol.PresenceMetaSpan, cur presenceEntry, exists bool, keyLen, members, used int) int {
	for {
		credit, freedKeys, freedBytes := 0, 0, 0
		if p.plan.built {
			credit, freedKeys, freedBytes = p.plan.metas[cur.key], p.plan.keys, p.plan.bytes
		}
		n := -1
		if exists || members < p.lim.MaxMembers+freedKeys {
			n = p.fitSpans(spans, exists, p.lim.MaxMetas-len(cur.metas)+credit, keyLen, p.lim.MaxBytes+freedBytes-used)
		}
		if n == len(spans) || p.plan.built {
			return n
		}
		p.buildPlan(ps)
	}
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

// sameMeta reports whether the stored meta m is the meta of span s.
func sameMeta(m *PresenceMeta, s *protocol.PresenceMetaSpan) bool {
	return m.Ref == string(s.Ref) && m.PrevRef == string(s.PrevRef) && bytes.Equal(m.Raw, s.Raw)
}

// sameMetas reports whether the stored metas ms are the metas of spans,
// in order (both empty: false, there is nothing to share).
func sameMetas(ms []PresenceMeta, spans []protocol.PresenceMetaSpan) bool {
	if len(ms) != len(spans) || len(ms) == 0 {
		return false
	}
	for i := range ms {
		if !sameMeta(&ms[i], &spans[i]) {
			return false
		}
	}
	return true
}

// leftMetas returns the metas of a leave (spans) for its event: the
// stored metas themselves when the leave names a run of them unchanged
// (no copy; looked for in a key of a few metas only, so that the cost is
// the leave's), else copies (nil when the leave has none).
func leftMetas(cur []PresenceMeta, spans []protocol.PresenceMetaSpan) []PresenceMeta {
	n := len(spans)
	if n == 0 {
		return nil
	}
	if len(cur) <= indexMin {
	run:
		for j := 0; j+n <= len(cur); j++ {
			for t := range spans {
				if !sameMeta(&cur[j+t], &spans[t]) {
					continue run
				}
			}
			return cur[j : j+n : j+n]
		}
	}
	out := make([]PresenceMeta, n)
spans:
	for t := range spans {
		if len(cur) <= indexMin {
			for j := range cur {
				if sameMeta(&cur[j], &spans[t]) {
					out[t] = cur[j]
					continue spans
				}
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
