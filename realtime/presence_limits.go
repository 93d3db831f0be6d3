package realtime

import (
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
