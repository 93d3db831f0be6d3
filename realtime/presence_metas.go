package realtime

import (
	"bytes"
	"strings"

	"rtm/realtime/protocol"
)

// refScan is the number of metas of a join or leave up to which their
// refs are compared one by one; above it they go into a map.
const refScan = 8

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
