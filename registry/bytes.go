package registry

import (
	"strconv"
	"unicode/utf8"
)

// Bytes the manager keeps. Every ring and queue of the manager is bounded
// in bytes as well as in count (see the package documentation, "Memory");
// these are the bounds that are not Options.
const (
	// PreviewBytes is how much of a payload is kept when the whole does
	// not fit in a bound (a channel's message ring, a subscriber's
	// buffer): the message is kept truncated, its first PreviewBytes
	// bytes in MessageEvent.Preview (see [MessageEvent].Truncated).
	PreviewBytes = 16 << 10
	// MaxTextBytes bounds the text the manager takes from the server to
	// keep and repeat: error reasons, system messages, log values.
	// Longer text is cut, with "… (N bytes)" at the end.
	MaxTextBytes = 4 << 10
	// aliasMax is the size up to which a payload the manager keeps or
	// queues is copied: the client reads frames into 64 KiB slabs and
	// payloads alias them, so a small payload kept as it is would keep
	// its whole slab alive; a larger payload is always in a buffer of its
	// own, of about its size (see package realtime, "Bad input and
	// memory"), which it may alias.
	aliasMax = 64 << 10
	// eventOverhead is what an event costs besides its variable-length
	// members, in the byte bounds.
	eventOverhead = 128
)

// clipText returns s cut to about n bytes (at a UTF-8 boundary) with
// "… (N bytes)" appended when it is longer than n.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:utf8Prefix(s, n)] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// utf8Prefix returns the length of the longest prefix of s of at most n
// bytes that does not end inside a UTF-8 sequence.
func utf8Prefix[T ~string | ~[]byte](s T, n int) int {
	if n >= len(s) {
		return len(s)
	}
	// Back off at most 3 continuation bytes to the start of the rune
	// that straddles n (not valid UTF-8 if there is none).
	for i := n; i > n-utf8.UTFMax; i-- {
		if i <= 0 {
			return 0
		}
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n
}

// Bytes returns what the message costs in a byte bound: its event name
// and payload (or preview).
func (e *MessageEvent) Bytes() int {
	return len(e.Event) + len(e.Payload) + len(e.Binary) + len(e.Preview)
}

// Truncate returns e with its payload cut to its first n bytes when it is
// longer (a JSON payload moves to Preview, cut at a UTF-8 boundary; a
// binary one keeps its first bytes in Binary), Truncated set and Size
// unchanged; the returned bytes are new. A payload of n bytes or less is
// returned as it is (sharing its bytes).
func (e MessageEvent) Truncate(n int) MessageEvent {
	n = max(n, 0)
	switch {
	case len(e.Binary) > n:
		e.Binary = append([]byte(nil), e.Binary[:n]...)
		e.Truncated = true
	case len(e.Payload) > n:
		e.Preview = string(e.Payload[:utf8Prefix(e.Payload, n)])
		e.Payload = nil
		e.Truncated = true
	case len(e.Preview) > n:
		e.Preview = e.Preview[:utf8Prefix(e.Preview, n)]
	}
	return e
}

// own returns e with a payload that shares nothing with a frame's slab:
// payloads up to aliasMax are copied, bigger ones (in buffers of their
// own) shared. Small payloads are copied into g, a buffer shared by the
// messages of a run (at most groupMax bytes, so that what one kept
// message keeps alive is small), which saves an allocation per message.
func (e MessageEvent) own(g *copyGroup) MessageEvent {
	e.Payload = ownBytes(e.Payload, g)
	e.Binary = ownBytes(e.Binary, g)
	return e
}

// groupMax bounds the buffers shared by the copies of a run's payloads,
// and groupItem the payloads copied into them.
const (
	groupMax  = 4 << 10
	groupItem = 1 << 10
)

// copyGroup is the buffer of the copies of a run's small payloads.
type copyGroup struct {
	buf  []byte
	need int // the bytes of the run's small payloads not copied yet
}

func newCopyGroup(ms []MessageEvent) copyGroup {
	need := 0
	for i := range ms {
		if n := len(ms[i].Payload) + len(ms[i].Binary); n <= groupItem {
			need += n
		}
	}
	return copyGroup{need: need}
}

func ownBytes[T ~[]byte](p T, g *copyGroup) T {
	n := len(p)
	switch {
	case n == 0 || n > aliasMax:
		return p
	case n > groupItem:
		return append(make(T, 0, n), p...)
	}
	if cap(g.buf)-len(g.buf) < n {
		g.buf = make([]byte, 0, min(max(g.need, n), groupMax))
	}
	off := len(g.buf)
	g.buf = append(g.buf, p...)
	g.need -= n
	return T(g.buf[off:len(g.buf):len(g.buf)])
}

// eventBytes returns what ev costs in a byte bound: a fixed overhead and
// its variable-length members.
func eventBytes(ev Event) int {
	n := eventOverhead
	switch e := ev.(type) {
	case MessageEvent:
		n += e.Bytes()
	case MessageBatchEvent:
		for i := range e.Messages {
			n += eventOverhead + e.Messages[i].Bytes()
		}
	case FrameEvent:
		n += len(e.Text) + len(e.Data) + len(e.Topic) + len(e.Event) + len(e.JoinRef) + len(e.Ref)
	case LogEvent:
		n += logRecordBytes(&e.Record)
	case PresenceEvent:
		n += len(e.User.UserID) + len(e.User.Name) + len(e.User.Payload)
	case ErrorEvent:
		n += len(e.Op) + len(e.Code) + len(e.Message) + len(e.Hint)
	case RetryEvent:
		n += len(e.Reason) + len(e.Err) + len(e.Policy)
	case ChannelStateEvent:
		n += len(e.Reason) + infoBytes(&e.Info)
	case SocketEvent:
		n += len(e.Reason)
	}
	return n
}

func infoBytes(c *ChannelInfo) int {
	n := len(c.Reason) + len(c.LastError) + len(c.LastErrorCode) + len(c.RetryReason) + len(c.Policy) + len(c.JoinRef)
	for _, b := range c.Bindings {
		n += 64 + len(b.Event) + len(b.Schema) + len(b.Table) + len(b.Filter)
	}
	return n
}

func logRecordBytes(r *LogRecord) int {
	n := eventOverhead + len(r.Message) + len(r.Channel)
	for _, a := range r.Attrs {
		n += 32 + len(a.Key) + len(a.Value)
	}
	return n
}

// boundedRing is a FIFO of values bounded by count and by bytes (the
// sizes the caller gives), the oldest dropped first. Its storage grows
// with use up to its count.
type boundedRing[T any] struct {
	vals     []T
	sizes    []int
	start, n int
	maxN     int
	bytes    int
	maxBytes int
}

func newBoundedRing[T any](n, bytes int) boundedRing[T] {
	return boundedRing[T]{maxN: n, maxBytes: bytes}
}

// add appends v of size bytes, dropping the oldest values as needed. A
// value larger than the whole byte bound is not kept (false).
func (r *boundedRing[T]) add(v T, size int) bool {
	if r.maxN <= 0 || size > r.maxBytes {
		return false
	}
	for r.n > 0 && (r.n == r.maxN || r.bytes+size > r.maxBytes) {
		r.pop()
	}
	if r.n == len(r.vals) {
		r.grow()
	}
	i := r.start + r.n
	if i >= len(r.vals) {
		i -= len(r.vals)
	}
	r.vals[i], r.sizes[i] = v, size
	r.n++
	r.bytes += size
	return true
}

// pop drops the oldest value.
func (r *boundedRing[T]) pop() {
	var zero T
	r.vals[r.start] = zero // release what it references
	r.bytes -= r.sizes[r.start]
	if r.start++; r.start == len(r.vals) {
		r.start = 0
	}
	r.n--
}

// grow makes room for one more value: the storage doubles, up to maxN.
func (r *boundedRing[T]) grow() {
	size := min(max(2*len(r.vals), 8), r.maxN)
	vals, sizes := make([]T, size), make([]int, size)
	for i := range r.n {
		j := (r.start + i) % len(r.vals)
		vals[i], sizes[i] = r.vals[j], r.sizes[j]
	}
	r.vals, r.sizes, r.start = vals, sizes, 0
}

// each calls fn with every value, oldest first.
func (r *boundedRing[T]) each(fn func(*T)) {
	for i := range r.n {
		j := r.start + i
		if j >= len(r.vals) {
			j -= len(r.vals)
		}
		fn(&r.vals[j])
	}
}

// last returns copies of up to the last n values (all when n <= 0),
// oldest first.
func (r *boundedRing[T]) last(n int) []T {
	if n <= 0 || n > r.n {
		n = r.n
	}
	out := make([]T, n)
	for i := range n {
		out[i] = r.vals[(r.start+r.n-n+i)%len(r.vals)]
	}
	return out
}
