package registry

import (
	"encoding/json"
	"time"
)

// arenaRing keeps the last entries of a channel (frames, messages)
// without allocating per entry: their bytes go into a circular arena,
// their metadata M into a ring. Both start small and grow up to their
// bounds (count and bytes), so that idle channels cost little, and what
// is kept is a copy: it shares nothing with the frame it came from. An
// entry whose bytes were overwritten is forgotten. The caller cuts what
// is larger than the arena's bound (add keeps at most maxBytes).
type arenaRing[M any] struct {
	arena    []byte
	maxBytes int
	head     int // next write position in arena
	slots    []arenaSlot[M]
	maxN     int
	start    int
	n        int
}

type arenaSlot[M any] struct {
	meta     M
	off, len int // bytes in the arena
}

func newArenaRing[M any](n, bytes int) arenaRing[M] {
	if n <= 0 || bytes <= 0 {
		return arenaRing[M]{}
	}
	return arenaRing[M]{maxBytes: bytes, maxN: n}
}

// add keeps meta with a copy of s followed by b (cut to maxBytes in
// all).
func (r *arenaRing[M]) add(meta M, s string, b []byte) {
	if r.maxN == 0 {
		return
	}
	if len(s) > r.maxBytes {
		s, b = s[:r.maxBytes], nil
	}
	if len(s)+len(b) > r.maxBytes {
		b = b[:r.maxBytes-len(s)]
	}
	size := len(s) + len(b)
	if r.head+size > len(r.arena) && len(r.arena) < r.maxBytes {
		// Grow the arena; offsets stay valid.
		grown := min(r.maxBytes, max(2*len(r.arena), r.head+size, 1024))
		arena := make([]byte, grown)
		copy(arena, r.arena[:r.head])
		r.arena = arena
	}
	if r.n == len(r.slots) && len(r.slots) < r.maxN {
		slots := make([]arenaSlot[M], min(r.maxN, max(2*len(r.slots), 8)))
		for i := range r.n {
			slots[i] = r.slots[(r.start+i)%len(r.slots)]
		}
		r.slots, r.start = slots, 0
	}
	if r.head+size > len(r.arena) {
		// Wrap. The entries after head (written before those at the
		// start) are the oldest; forget them so that the entries
		// overwritten next are always the oldest ones.
		old := r.head
		r.head = 0
		for r.n > 0 && r.slots[r.start].off >= old {
			r.drop()
		}
	}
	off := r.head
	copy(r.arena[off:], s)
	copy(r.arena[off+len(s):], b)
	end := off + size
	r.head = end
	// Forget older entries whose bytes were overwritten.
	for r.n > 0 && overwritten(r.slots[r.start].off, r.slots[r.start].len, off, end) {
		r.drop()
	}
	i := (r.start + r.n) % len(r.slots)
	if r.n == len(r.slots) {
		r.slots[r.start] = arenaSlot[M]{}
		r.start = (r.start + 1) % len(r.slots)
	} else {
		r.n++
	}
	r.slots[i] = arenaSlot[M]{meta: meta, off: off, len: size}
}

// drop forgets the oldest entry.
func (r *arenaRing[M]) drop() {
	r.slots[r.start] = arenaSlot[M]{}
	r.start = (r.start + 1) % len(r.slots)
	r.n--
}

// each calls fn with the last n entries (all when n <= 0), oldest first;
// data is in the arena: copy what you keep.
func (r *arenaRing[M]) each(n int, fn func(meta *M, data []byte)) {
	if n <= 0 || n > r.n {
		n = r.n
	}
	for i := range n {
		s := &r.slots[(r.start+r.n-n+i)%len(r.slots)]
		fn(&s.meta, r.arena[s.off:s.off+s.len])
	}
}

// len returns the number of entries kept.
func (r *arenaRing[M]) len() int { return r.n }

// bytes returns the bytes of the entries kept.
func (r *arenaRing[M]) bytes() int {
	n := 0
	r.each(0, func(_ *M, data []byte) { n += len(data) })
	return n
}

// rawFrame is a kept frame; data is set when read back.
type rawFrame struct {
	at       time.Time
	dir      Direction
	event    string
	joinRef  string
	ref      string
	binary   bool
	wireSize int
	data     []byte
}

// frames returns copies of up to the last n frames of r (all when
// n <= 0), oldest first.
func frames(r *arenaRing[rawFrame], n int) []rawFrame {
	out := make([]rawFrame, 0, min(max(n, 0), r.len()))
	if n <= 0 {
		out = make([]rawFrame, 0, r.len())
	}
	r.each(n, func(f *rawFrame, data []byte) {
		c := *f
		c.data = append([]byte(nil), data...)
		out = append(out, c)
	})
	return out
}

// msgRec is a message as a channel's ring keeps it: a MessageEvent
// without the channel (the ring's), its event name and payload in the
// arena (evLen bytes of name, then the payload), written for every
// message received.
type msgRec struct {
	time      time.Time
	kind      MessageKind
	size      int
	evLen     int
	dir       Direction
	binary    bool
	queued    bool
	truncated bool
}

// msgRing is a channel's ring of messages, bounded by count and bytes,
// as arenaRing (whose logic it repeats, without its generality: it runs
// for every message received). A message that does not fit in the bytes
// at all is kept truncated to its first PreviewBytes (see
// MessageEvent.Truncated).
type msgRing struct {
	arena    []byte
	maxBytes int
	head     int
	slots    []msgSlot
	maxN     int
	start, n int
}

type msgSlot struct {
	rec      msgRec
	off, len int
}

func newMsgRing(n, bytes int) msgRing {
	if n <= 0 || bytes <= 0 {
		return msgRing{}
	}
	return msgRing{maxBytes: bytes, maxN: n}
}

// on reports whether the ring keeps anything.
func (r *msgRing) on() bool { return r.maxN > 0 }

// len returns the number of messages kept.
func (r *msgRing) len() int { return r.n }

// reserve keeps a copy of a message's event name and payload (binary or
// JSON, to know where to cut it) and returns its record, in which only
// evLen and truncated are set: the caller fills in the rest (field by
// field: this runs for every message received).
func (r *msgRing) reserve(event string, payload []byte, binary bool) *msgRec {
	size := len(event) + len(payload)
	truncated := false
	if size > r.maxBytes {
		if half := r.maxBytes / 2; len(event) > half {
			event = event[:utf8Prefix(event, half)] // a name no server sends
		}
		keep := min(PreviewBytes, r.maxBytes-len(event), len(payload))
		if !binary {
			keep = utf8Prefix(payload, keep)
		}
		payload = payload[:keep]
		truncated = true
		size = len(event) + keep
	}
	if r.head+size > len(r.arena) || (r.n == len(r.slots) && r.n < r.maxN) {
		r.makeRoom(size)
	}
	off := r.head
	copy(r.arena[off:], event)
	copy(r.arena[off+len(event):], payload)
	end := off + size
	r.head = end
	// Forget older messages whose bytes were overwritten.
	for r.n > 0 && overwritten(r.slots[r.start].off, r.slots[r.start].len, off, end) {
		r.drop()
	}
	i := r.start + r.n
	if i >= len(r.slots) {
		i -= len(r.slots)
	}
	if r.n == len(r.slots) {
		r.drop()
	}
	r.n++
	sl := &r.slots[i]
	sl.off, sl.len = off, size
	sl.rec.evLen, sl.rec.truncated = len(event), truncated
	return &sl.rec
}

// makeRoom grows the arena and the slots toward their bounds, or wraps
// the arena, before size bytes are written at head.
func (r *msgRing) makeRoom(size int) {
	// The arena grows only when the bytes at its start are still held
	// (by more than the count keeps, as when messages are many and
	// small, it could grow to maxBytes holding a few KiB).
	fitsAtStart := size <= len(r.arena) &&
		(r.n == 0 || (r.slots[r.start].off < r.head && r.slots[r.start].off >= size))
	if r.head+size > len(r.arena) && !fitsAtStart && len(r.arena) < r.maxBytes {
		// Grow the arena; offsets stay valid.
		arena := make([]byte, min(r.maxBytes, max(2*len(r.arena), r.head+size, 1024)))
		copy(arena, r.arena[:r.head])
		r.arena = arena
	}
	if r.n == len(r.slots) && len(r.slots) < r.maxN {
		slots := make([]msgSlot, min(r.maxN, max(2*len(r.slots), 8)))
		for i := range r.n {
			slots[i] = r.slots[(r.start+i)%len(r.slots)]
		}
		r.slots, r.start = slots, 0
	}
	if r.head+size > len(r.arena) {
		// Wrap. The messages after head (written before those at the
		// start) are the oldest; forget them so that the messages
		// overwritten next are always the oldest ones.
		old := r.head
		r.head = 0
		for r.n > 0 && r.slots[r.start].off >= old {
			r.drop()
		}
	}
}

// drop forgets the oldest message.
func (r *msgRing) drop() {
	if r.start++; r.start == len(r.slots) {
		r.start = 0
	}
	r.n--
}

// each calls fn with the last n messages (all when n <= 0), oldest
// first; data (the event name, then the payload) is in the arena.
func (r *msgRing) each(n int, fn func(rec *msgRec, data []byte)) {
	if n <= 0 || n > r.n {
		n = r.n
	}
	for i := range n {
		s := &r.slots[(r.start+r.n-n+i)%len(r.slots)]
		fn(&s.rec, r.arena[s.off:s.off+s.len])
	}
}

// bytes returns the bytes of the messages kept.
func (r *msgRing) bytes() int {
	n := 0
	r.each(0, func(_ *msgRec, data []byte) { n += len(data) })
	return n
}

// putEvent keeps a copy of me.
func (r *msgRing) putEvent(me *MessageEvent) {
	if r.maxN == 0 {
		return
	}
	payload, binary := []byte(me.Payload), me.Binary != nil
	if binary {
		payload = me.Binary
	}
	rec := r.reserve(me.Event, payload, binary)
	rec.time, rec.kind, rec.size, rec.dir, rec.binary, rec.queued = me.Time, me.Kind, me.Size, me.Direction, binary, me.Queued
}

// messages returns copies of up to the last n messages (all when n <= 0)
// of the named channel, oldest first.
func (r *msgRing) messages(name Name, n int) []MessageEvent {
	out := make([]MessageEvent, 0, r.len())
	r.each(n, func(rec *msgRec, data []byte) {
		me := MessageEvent{Time: rec.time, Channel: name, Direction: rec.dir, Kind: rec.kind,
			Event: string(data[:rec.evLen]), Size: rec.size, Queued: rec.queued, Truncated: rec.truncated}
		payload := data[rec.evLen:]
		switch {
		case rec.binary:
			me.Binary = append([]byte{}, payload...)
		case rec.truncated:
			me.Preview = string(payload)
		case len(payload) > 0:
			me.Payload = append(json.RawMessage(nil), payload...)
		}
		out = append(out, me)
	})
	return out
}

// overwritten reports whether the entry of n bytes at at lies in the
// bytes [off, end) just written over (an empty entry counts as
// overwritten when its place was: entries go in order).
func overwritten(at, n, off, end int) bool {
	return at < end && (off < at+n || (n == 0 && at >= off))
}
