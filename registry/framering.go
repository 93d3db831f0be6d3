package registry

import "time"

// frameRing keeps the last frames of a channel without allocating per
// frame: the bytes go into a circular arena, the metadata into a ring.
// Both start small and grow up to their bounds, so that idle channels
// cost little. A frame whose bytes were overwritten is forgotten; a frame
// larger than the arena's bound is kept truncated (Size still says how
// big it was).
type frameRing struct {
	arena     []byte
	maxBytes  int
	head      int // next write position in arena
	metas     []rawFrame
	maxFrames int
	start     int
	n         int
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
	off, len int // bytes in the arena
	gen      uint64
	data     []byte
}

func newFrameRing(frames, bytes int) frameRing {
	if frames <= 0 || bytes <= 0 {
		return frameRing{}
	}
	return frameRing{maxBytes: bytes, maxFrames: frames}
}

// add keeps a copy of f's bytes.
func (r *frameRing) add(f rawFrame, data []byte) {
	if r.maxFrames == 0 {
		return
	}
	if len(data) > r.maxBytes {
		data = data[:r.maxBytes]
	}
	if r.head+len(data) > len(r.arena) && len(r.arena) < r.maxBytes {
		// Grow the arena; offsets stay valid.
		size := min(r.maxBytes, max(2*len(r.arena), r.head+len(data), 1024))
		arena := make([]byte, size)
		copy(arena, r.arena[:r.head])
		r.arena = arena
	}
	if r.n == len(r.metas) && len(r.metas) < r.maxFrames {
		metas := make([]rawFrame, min(r.maxFrames, max(2*len(r.metas), 8)))
		for i := range r.n {
			metas[i] = r.metas[(r.start+i)%len(r.metas)]
		}
		r.metas, r.start = metas, 0
	}
	if r.head+len(data) > len(r.arena) {
		// Wrap. The frames after head (written before those at the
		// start) are the oldest; forget them so that the frames
		// overwritten next are always the oldest ones.
		old := r.head
		r.head = 0
		for r.n > 0 && r.metas[r.start].off >= old {
			r.start = (r.start + 1) % len(r.metas)
			r.n--
		}
	}
	f.off, f.len = r.head, len(data)
	copy(r.arena[r.head:], data)
	end := r.head + len(data)
	r.head = end
	// Forget older frames whose bytes were overwritten.
	for r.n > 0 {
		o := &r.metas[r.start]
		// (An empty frame at the front goes too: it holds nothing.)
		if o.len == 0 || (o.off < end && f.off < o.off+o.len) {
			r.start = (r.start + 1) % len(r.metas)
			r.n--
			continue
		}
		break
	}
	i := (r.start + r.n) % len(r.metas)
	if r.n == len(r.metas) {
		r.start = (r.start + 1) % len(r.metas)
	} else {
		r.n++
	}
	r.metas[i] = f
}

// last returns copies of up to the last n frames (all when n <= 0),
// oldest first.
func (r *frameRing) last(n int) []rawFrame {
	if n <= 0 || n > r.n {
		n = r.n
	}
	out := make([]rawFrame, n)
	for i := range n {
		f := r.metas[(r.start+r.n-n+i)%len(r.metas)]
		f.data = append([]byte(nil), r.arena[f.off:f.off+f.len]...)
		out[i] = f
	}
	return out
}
