package apps

// ring holds the last messages of a channel, oldest first, in a
// circular buffer that grows up to the bound it is used with.
type ring struct {
	buf      []Message
	start, n int
}

// add appends mm, growing the buffer (up to limit) when it is full;
// the caller made room first when the buffer holds limit messages.
func (r *ring) add(mm Message, limit int) {
	if r.n == len(r.buf) {
		size := min(max(2*len(r.buf), 4), limit)
		buf := make([]Message, size)
		r.copyTo(buf)
		r.buf, r.start = buf, 0
	}
	r.buf[(r.start+r.n)%len(r.buf)] = mm
	r.n++
}

// oldest returns the oldest message; the ring is not empty.
func (r *ring) oldest() *Message { return &r.buf[r.start] }

// drop forgets the oldest message; the ring is not empty.
func (r *ring) drop() {
	r.buf[r.start] = Message{}
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// copyTo copies the messages, oldest first, to dst (len r.n or more).
func (r *ring) copyTo(dst []Message) {
	for i := 0; i < r.n; i++ {
		dst[i] = r.buf[(r.start+i)%len(r.buf)]
	}
}

// items returns a copy of the messages, oldest first.
func (r *ring) items() []Message {
	out := make([]Message, r.n)
	r.copyTo(out)
	return out
}
