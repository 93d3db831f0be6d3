package apps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
)

// RecorderOptions bounds a [Recorder]; zero values take the defaults.
type RecorderOptions struct {
	// MaxQueue bounds the inputs waiting to be written (65,536), and
	// MaxQueueBytes their bytes (32 MiB): an input that does not fit is
	// dropped and counted, and a "dropped" line marks the gap.
	MaxQueue      int
	MaxQueueBytes int
	// MaxLine bounds a line (32 MiB, a recording's MaxLine): a frame
	// whose line would be longer is written cut (its content left out,
	// its size kept).
	MaxLine int
}

func (o RecorderOptions) withDefaults() RecorderOptions {
	for _, d := range []struct {
		v *int
		d int
	}{{&o.MaxQueue, 65536}, {&o.MaxQueueBytes, 32 << 20}, {&o.MaxLine, 32 << 20}} {
		if *d.v <= 0 {
			*d.v = d.d
		}
	}
	return o
}

// RecorderCounts says what a [Recorder] wrote.
type RecorderCounts struct {
	// Lines counts the input lines written, Frames the frames among
	// them; Dropped counts the inputs lost (queue full).
	Lines, Frames, Dropped uint64
}

// Recorder is a [proxy.Observer] that writes every call it gets, masked,
// as the lines of an app recording (see [Input]) and passes it on to
// the next Observer (a [Model]). It never blocks the relay: the calls
// are queued (bounded, see [RecorderOptions]) and written, masked and
// encoded, by its own goroutine. Close it to write what is queued.
type Recorder struct {
	next proxy.Observer
	opt  RecorderOptions
	w    *bufio.Writer

	mu      sync.Mutex
	queue   []recItem
	qbytes  int
	pending uint64 // dropped since the last queued input
	closed  bool
	counts  RecorderCounts
	wake    chan struct{}
	done    chan struct{}
	err     error // the first write error (after done)
	// vsn is the serializer of each open socket (writer goroutine).
	vsn map[uint64]protocol.Version
}

type recItem struct {
	in  Input
	raw []byte // a frame's content, unmasked
	// rest are a REST broadcast's messages, their payloads unmasked.
	rest []proxy.RESTMessage
	// dropped inputs were lost just before this one (at droppedAt).
	dropped   uint64
	droppedAt time.Time
}

// NewRecorder returns a recorder writing to w that passes every call to
// next (nil: none).
func NewRecorder(next proxy.Observer, w io.Writer, o RecorderOptions) *Recorder {
	r := &Recorder{next: next, opt: o.withDefaults(), w: bufio.NewWriterSize(w, 64<<10),
		wake: make(chan struct{}, 1), done: make(chan struct{}), vsn: map[uint64]protocol.Version{}}
	go r.run()
	return r
}

var (
	_ proxy.FaultObserver = (*Recorder)(nil)
	_ proxy.RESTObserver  = (*Recorder)(nil)
)

// Open implements [proxy.Observer].
func (r *Recorder) Open(ci proxy.ConnInfo) {
	if r.next != nil {
		r.next.Open(ci)
	}
	q, _ := url.ParseQuery(ci.RawQuery)
	tok := tokenInfo(socketToken(q, ci.Header))
	r.enqueue(recItem{in: Input{Type: LineOpen, Time: ci.Opened, Socket: ci.ID, RemoteAddr: clip(ci.RemoteAddr, 256),
		ClientInfo: clip(ci.Header.Get("X-Client-Info"), 256), Vsn: clip(q.Get("vsn"), 16),
		Upstream: clip(ci.Upstream, 512), Claims: &tok}})
}

// Frame implements [proxy.Observer].
func (r *Recorder) Frame(f proxy.Frame) {
	if r.next != nil {
		r.next.Frame(f)
	}
	r.enqueue(recItem{in: Input{Type: LineFrame, Time: f.Time, Socket: f.Conn, Dir: f.Dir.String(), Binary: f.Binary,
		Bytes: len(f.Data)}, raw: bytes.Clone(f.Data)})
}

// Closed implements [proxy.Observer].
func (r *Recorder) Closed(c proxy.Closed) {
	if r.next != nil {
		r.next.Closed(c)
	}
	r.enqueue(recItem{in: Input{Type: LineClose, Time: c.Time, Socket: c.Conn, By: byName(c.By), Code: c.Code,
		Reason: clip(c.Reason, 256)}})
}

// Fault implements [proxy.FaultObserver]: it records the fault and
// passes it on when the next Observer is told of faults.
func (r *Recorder) Fault(ev proxy.FaultEvent) {
	if fo, ok := r.next.(proxy.FaultObserver); ok {
		fo.Fault(ev)
	}
	r.enqueue(recItem{in: Input{Type: LineFault, Time: ev.Time, Socket: ev.Conn, Kind: clip(ev.Kind, 64), Armed: ev.Armed,
		Topic: clip(ev.Topic, 256), Detail: clip(ev.Detail, 512)}})
}

// REST implements [proxy.RESTObserver]: it records the request (the
// token's claims, not the token) and passes it on when the next
// Observer takes REST broadcasts.
func (r *Recorder) REST(rb proxy.RESTBroadcast) {
	if ro, ok := r.next.(proxy.RESTObserver); ok {
		ro.REST(rb)
	}
	q, _ := url.ParseQuery(rb.RawQuery)
	tok := tokenInfo(restToken(q, rb.Header))
	msgs := make([]proxy.RESTMessage, len(rb.Messages))
	for i, rm := range rb.Messages {
		rm.Payload = bytes.Clone(rm.Payload)
		msgs[i] = rm
	}
	r.enqueue(recItem{in: Input{Type: LineREST, Time: rb.Time, Answered: rb.Answered, RemoteAddr: clip(rb.RemoteAddr, 256),
		ClientInfo: clip(rb.Header.Get("X-Client-Info"), 256), Path: clip(rb.Path, 256), Claims: &tok,
		Status: rb.Status, Bytes: int(rb.Bytes), Decoded: rb.Decoded, Clipped: rb.Clipped, Error: clip(rb.Error, 512)}, rest: msgs})
}

// Tick calls the next Observer's Tick (a [Model]'s) and records it when
// it changed the model (a token flagged expired), so that a replay
// flags it at the same point.
func (r *Recorder) Tick(now time.Time) {
	m, ok := r.next.(*Model)
	if !ok {
		return
	}
	m.mu.Lock()
	before := len(m.flags) + int(m.stats.FlagsDropped)
	m.mu.Unlock()
	m.Tick(now)
	m.mu.Lock()
	after := len(m.flags) + int(m.stats.FlagsDropped)
	m.mu.Unlock()
	if after != before {
		r.enqueue(recItem{in: Input{Type: LineTick, Time: now}})
	}
}

// itemCost is what an input weighs against MaxQueueBytes.
func itemCost(it *recItem) int {
	n := len(it.raw) + 256
	for _, rm := range it.rest {
		n += len(rm.Payload) + len(rm.Topic) + len(rm.Event) + 64
	}
	return n
}

func (r *Recorder) enqueue(it recItem) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if len(r.queue) >= r.opt.MaxQueue || r.qbytes+itemCost(&it) > r.opt.MaxQueueBytes {
		r.pending++
		r.counts.Dropped++
		r.mu.Unlock()
		return
	}
	if r.pending > 0 {
		it.dropped, it.droppedAt, r.pending = r.pending, it.in.Time, 0
	}
	r.queue = append(r.queue, it)
	r.qbytes += itemCost(&it)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Counts returns what was written so far (all of it after Close).
func (r *Recorder) Counts() RecorderCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

// Close stops recording: the queued inputs are written (and a last
// "dropped" line for inputs lost after them) and flushed; it returns
// the first write error. Calls after Close are not recorded (they are
// still passed on).
func (r *Recorder) Close() error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if !already {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	<-r.done
	return r.err
}

// run writes the queue until Close.
func (r *Recorder) run() {
	defer close(r.done)
	var err error
	for {
		<-r.wake
		r.mu.Lock()
		batch := r.queue
		r.queue, r.qbytes = nil, 0
		closed := r.closed
		pending := r.pending
		r.mu.Unlock()
		for i := range batch {
			if err == nil {
				err = r.write(&batch[i])
			}
		}
		if closed {
			if pending > 0 && err == nil {
				err = r.dropLine(pending, time.Now())
			}
			if err == nil {
				err = r.w.Flush()
			}
			r.err = err
			return
		}
		if err == nil {
			err = r.w.Flush()
		}
	}
}

// write writes one input (and the "dropped" line before it).
func (r *Recorder) write(it *recItem) error {
	if it.dropped > 0 {
		if err := r.dropLine(it.dropped, it.droppedAt); err != nil {
			return err
		}
	}
	in := it.in
	switch in.Type {
	case LineOpen:
		v, err := protocol.ParseVersion(in.Vsn)
		if err != nil {
			v = protocol.V1
		}
		r.vsn[in.Socket] = v
	case LineClose:
		delete(r.vsn, in.Socket)
	case LineFrame:
		if in.Dir == proxy.FromApp.String() && !in.Binary && bytes.Contains(it.raw, []byte("access_token")) {
			in.Claims = r.frameClaims(in.Socket, it.raw)
		}
		in.Text, in.Data = maskContent(in.Binary, it.raw)
	case LineREST:
		for _, rm := range it.rest {
			in.Messages = append(in.Messages, maskMessage(InputMessage{Topic: rm.Topic, Event: rm.Event,
				Bytes: len(rm.Payload), Binary: rm.Binary, Private: rm.Private}, rm.Payload))
		}
		in.Path, in.Error = mask.Text(in.Path), mask.Text(in.Error)
	}
	if in.Claims != nil {
		c := *in.Claims
		in.Claims = &c
	}
	in.RemoteAddr, in.ClientInfo = mask.Text(in.RemoteAddr), mask.Text(in.ClientInfo)
	in.Upstream, in.Reason = mask.URL(in.Upstream), mask.Text(in.Reason)
	in.Topic, in.Detail = mask.Text(in.Topic), mask.Text(in.Detail)
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("apps: record %s: %w", in.Type, err)
	}
	if len(b) >= r.opt.MaxLine {
		in.Text, in.Data, in.Messages, in.Cut = "", nil, nil, true
		if b, err = json.Marshal(in); err != nil {
			return fmt.Errorf("apps: record %s: %w", in.Type, err)
		}
	}
	r.mu.Lock()
	r.counts.Lines++
	if in.Type == LineFrame {
		r.counts.Frames++
	}
	r.mu.Unlock()
	return r.line(b)
}

// frameClaims reads the token of the app's phx_join or access_token
// push in raw (nil for any other frame).
func (r *Recorder) frameClaims(socket uint64, raw []byte) *TokenInfo {
	v, ok := r.vsn[socket]
	if !ok {
		return nil
	}
	msg, err := v.DecodeClient(raw, false)
	if err != nil {
		return nil
	}
	var tok string
	switch msg.Event {
	case protocol.EventJoin:
		var jp protocol.JoinPayload
		if json.Unmarshal(msg.Payload, &jp) != nil {
			return nil
		}
		tok = jp.Token()
	case protocol.EventAccessToken:
		var p protocol.AccessTokenPayload
		if json.Unmarshal(msg.Payload, &p) != nil {
			return nil
		}
		tok = p.AccessToken
	}
	if tok == "" {
		return nil
	}
	info := tokenInfo(tok)
	return &info
}

func (r *Recorder) dropLine(n uint64, at time.Time) error {
	b, err := json.Marshal(struct {
		Type  string    `json:"type"`
		Time  time.Time `json:"time"`
		Count uint64    `json:"count"`
	}{LineDropped, at, n})
	if err != nil {
		return err
	}
	return r.line(b)
}

func (r *Recorder) line(b []byte) error {
	if _, err := r.w.Write(b); err != nil {
		return fmt.Errorf("apps: record: %w", err)
	}
	if err := r.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("apps: record: %w", err)
	}
	return nil
}
