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
	sl, dst := r.reserve(len(s) + len(b))
	copy(dst[copy(dst, s):], b)
	sl.meta = meta
}

// reserve makes a new newest entry of size bytes (at most maxBytes; the
// ring keeps something) and returns its slot, whose meta the caller
// sets, and its bytes in the arena, which the caller writes. Older
// entries whose bytes it takes, and the oldest when the ring is full,
// are forgotten.
func (r *arenaRing[M]) reserve(size int) (*arenaSlot[M], []byte) {
	if r.head+size > len(r.arena) || (r.n == len(r.slots) && r.n < r.maxN) {
		r.makeRoom(size)
	}
	off := r.head
	end := off + size
	r.head = end
	// Forget older entries whose bytes are overwritten.
	for r.n > 0 && overwritten(r.slots[r.start].off, r.slots[r.start].len, off, end) {
		r.drop()
	}
	if r.n == len(r.slots) {
		r.drop()
	}
	i := r.start + r.n
	if i >= len(r.slots) {
		i -= len(r.slots)
	}
	r.n++
	sl := &r.slots[i]
	sl.off, sl.len = off, size
	return sl, r.arena[off:end:end]
}

// makeRoom grows the arena and the slots toward their bounds, or wraps
// the arena, before size bytes are written at head.
func (r *arenaRing[M]) makeRoom(size int) {
	// The arena grows only when the bytes at its start are still held
	// (by more than the count keeps, as when entries are many and
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

// msgRing is a channel's ring of messages, bounded by count and bytes:
// an arenaRing of msgRec. A message that does not fit in the bytes at all
// is kept truncated to its first PreviewBytes (see
// MessageEvent.Truncated).
type msgRing struct {
	arenaRing[msgRec]
}

func newMsgRing(n, bytes int) msgRing { return msgRing{newArenaRing[msgRec](n, bytes)} }

// on reports whether the ring keeps anything.
func (r *msgRing) on() bool { return r.maxN > 0 }

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
	sl, dst := r.arenaRing.reserve(size)
	copy(dst[copy(dst, event):], payload)
	sl.meta.evLen, sl.meta.truncated = len(event), truncated
	return &sl.meta
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
