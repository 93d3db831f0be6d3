package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Log keys of the operations log. Every record about a channel carries
// KeyChannel.
const (
	KeyChannel = "channel"
	KeyAttempt = "attempt"
	KeyMax     = "max"
	KeyDelay   = "delay"
	KeyUserID  = "user_id"
	KeyErr     = "err"
	KeyCode    = "code"
	KeyReason  = "reason"
	KeyEvent   = "event"
	KeyStatus  = "status"
	KeyRefs    = "refs"
	KeyPolicy  = "policy"
	KeyCount   = "count"
)

// Defaults of [LogOptions].
const (
	// DefaultLogRing is the number of records a LogHandler keeps, and
	// DefaultLogBytes their bytes.
	DefaultLogRing  = 5000
	DefaultLogBytes = 4 << 20
)

// LogOptions configures a [LogHandler].
type LogOptions struct {
	// Ring is the number of records kept for the UI (default 5000), and
	// Bytes their bytes, messages and attributes (default 4 MiB). A
	// message or attribute value longer than MaxTextBytes is cut (in the
	// ring, the stream and the file), with "… (N bytes)" at the end.
	Ring  int
	Bytes int
	// File, when set, receives every record as one JSON object per line
	// (JSONL), secrets masked. Write errors are counted, never returned
	// to the logger (see [LogHandler.FileErrors]).
	File io.Writer
	// Level is the minimum level recorded (default slog.LevelDebug).
	Level slog.Leveler
	// Now stamps records that have no time (default time.Now).
	Now func() time.Time
}

// LogHandler is a slog.Handler that keeps the last records in a bounded
// ring for the UI, writes them to an optional JSONL file, and passes each
// one to a sink (the manager's event stream). Keys and tokens are masked
// in messages and attribute values before anything is stored or written.
// It is safe for concurrent use; handlers derived with WithAttrs and
// WithGroup share the ring.
type LogHandler struct {
	core   *logCore
	attrs  []LogAttr // rendered attrs of WithAttrs, group-qualified
	prefix string    // group prefix "g1.g2."
	file   slog.Handler
}

type logCore struct {
	mu      sync.Mutex
	ring    boundedRing[LogRecord] // grows to its size as records come
	seq     uint64
	level   slog.Leveler
	now     func() time.Time
	mask    *secretPattern
	sink    func(LogRecord)
	fileErr uint64
}

// NewLogHandler returns a handler with the given options.
func NewLogHandler(opts LogOptions) *LogHandler {
	if opts.Ring <= 0 {
		opts.Ring = DefaultLogRing
	}
	if opts.Bytes <= 0 {
		opts.Bytes = DefaultLogBytes
	}
	if opts.Level == nil {
		opts.Level = slog.LevelDebug
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &logCore{ring: newBoundedRing[LogRecord](opts.Ring, opts.Bytes), level: opts.Level, now: opts.Now, mask: newSecretPattern()}
	h := &LogHandler{core: c}
	if opts.File != nil {
		w := &countingWriter{w: opts.File, core: c}
		h.file = slog.NewJSONHandler(w, &slog.HandlerOptions{
			Level: opts.Level,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Value.Kind() == slog.KindString || a.Value.Kind() == slog.KindAny {
					key := a.Key
					if len(groups) > 0 {
						key = groups[len(groups)-1] + "." + key
					}
					return slog.String(a.Key, c.maskValue(key, a.Value))
				}
				return a
			},
		})
	}
	return h
}

// countingWriter swallows write errors (a log file that fails must not
// break the program) and counts them.
type countingWriter struct {
	w    io.Writer
	core *logCore
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if _, err := w.w.Write(p); err != nil {
		w.core.mu.Lock()
		w.core.fileErr++
		w.core.mu.Unlock()
	}
	return len(p), nil
}

// SetSink sets the function that receives every record after it is
// stored (nil for none). It is called synchronously by the logging
// goroutine, without locks held, so it must not block.
func (h *LogHandler) SetSink(f func(LogRecord)) {
	h.core.mu.Lock()
	h.core.sink = f
	h.core.mu.Unlock()
}

// Enabled implements slog.Handler.
func (h *LogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.core.level.Level()
}

// Handle implements slog.Handler.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	c := h.core
	rec := LogRecord{Time: r.Time, Level: r.Level, Message: clipText(c.mask.mask(r.Message), MaxTextBytes)}
	if rec.Time.IsZero() {
		rec.Time = c.now()
	}
	if n := len(h.attrs) + r.NumAttrs(); n > 0 {
		rec.Attrs = make([]LogAttr, 0, n)
		rec.Attrs = append(rec.Attrs, h.attrs...)
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs = c.appendAttr(rec.Attrs, h.prefix, a)
		return true
	})
	for _, a := range rec.Attrs {
		switch a.Key {
		case KeyChannel:
			rec.Channel = a.Value
		case "topic": // the client's records name the wire topic
			if rec.Channel == "" && strings.HasPrefix(a.Value, TopicPrefix) {
				rec.Channel = a.Value[len(TopicPrefix):]
			}
		}
	}
	size := logRecordBytes(&rec)
	c.mu.Lock()
	c.seq++
	rec.Seq = c.seq
	c.ring.add(rec, size)
	sink := c.sink
	c.mu.Unlock()
	var err error
	if h.file != nil {
		err = h.file.Handle(ctx, r)
	}
	if sink != nil {
		sink(rec)
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = append([]LogAttr(nil), h.attrs...)
	for _, a := range attrs {
		h2.attrs = h.core.appendAttr(h2.attrs, h.prefix, a)
	}
	if h.file != nil {
		h2.file = h.file.WithAttrs(attrs)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	if h.file != nil {
		h2.file = h.file.WithGroup(name)
	}
	return &h2
}

// Records returns up to the last n records (all when n <= 0), oldest
// first.
func (h *LogHandler) Records(n int) []LogRecord {
	c := h.core
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ring.last(n)
}

// Since returns the records with Seq > seq still in the ring, oldest
// first.
func (h *LogHandler) Since(seq uint64) []LogRecord {
	c := h.core
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []LogRecord
	c.ring.each(func(r *LogRecord) {
		if r.Seq > seq {
			out = append(out, *r)
		}
	})
	return out
}

// Total returns the number of records handled so far.
func (h *LogHandler) Total() uint64 {
	h.core.mu.Lock()
	defer h.core.mu.Unlock()
	return h.core.seq
}

// FileErrors returns the number of failed writes to the JSONL file.
func (h *LogHandler) FileErrors() uint64 {
	h.core.mu.Lock()
	defer h.core.mu.Unlock()
	return h.core.fileErr
}

func (c *logCore) appendAttr(dst []LogAttr, prefix string, a slog.Attr) []LogAttr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range a.Value.Group() {
			dst = c.appendAttr(dst, p, g)
		}
		return dst
	}
	key := prefix + a.Key
	return append(dst, LogAttr{Key: key, Value: c.maskValue(key, a.Value)})
}

// maskValue renders v as text with secrets masked.
func (c *logCore) maskValue(key string, v slog.Value) string {
	var s string
	switch v.Kind() {
	case slog.KindString:
		s = v.String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindInt64:
		return strconv.FormatInt(v.Int64(), 10)
	case slog.KindUint64:
		return strconv.FormatUint(v.Uint64(), 10)
	case slog.KindBool:
		return strconv.FormatBool(v.Bool())
	case slog.KindFloat64:
		return strconv.FormatFloat(v.Float64(), 'g', -1, 64)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			s = fmt.Sprint(x)
		}
	default:
		s = v.String()
	}
	if sensitiveKey(key) {
		return MaskSecret(s)
	}
	// Masked before it is cut: a secret cut in two might not be
	// recognised.
	return clipText(c.mask.mask(s), MaxTextBytes)
}
