package headless

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
	"rtm/registry/apps"
)

// RecordingVersion is the version of the recording format written by
// [NewWriter].
const RecordingVersion = 1

// Line types of a recording besides the registry's event types.
const (
	// TypeRecording is the first line of a recording.
	TypeRecording = "recording"
	// TypeRecordingEnd is the last line of a recording that ended in
	// order.
	TypeRecordingEnd = "recording_end"
)

// MaxLine bounds one line of a recording (a frame of the largest
// payload Supabase accepts, JSON-escaped, fits).
const MaxLine = 32 << 20

// Header is the first line of a recording:
// {"type":"recording","version":1,...}.
type Header struct {
	Type    string    `json:"type"`
	Version int       `json:"version"`
	Started time.Time `json:"started"`
	// Target is the server's URL with secrets masked; Embedded is true
	// for rtm's embedded server.
	Target   string `json:"target"`
	Embedded bool   `json:"embedded"`
	// Serializer is the wire serializer of the frames ("2.0.0").
	Serializer string `json:"serializer"`
	// Identity is who recorded: "alice (authenticated)" or "anon".
	Identity string `json:"identity,omitempty"`
	// Channels are the channels joined.
	Channels []registry.Name `json:"channels"`
	// Tool names the program that wrote the file.
	Tool string `json:"tool,omitempty"`
	// Kind is "" for a recording of rtm's client, [KindApp] for one of
	// an app's traffic through the proxy (rtm proxy --record), whose
	// lines are the app model's inputs (apps.Input).
	Kind string `json:"kind,omitempty"`
}

// End is the last line of a recording that ended in order.
type End struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Events and Frames count the lines written (frames included in
	// Events); Dropped counts events the recorder lost because it fell
	// behind (a "dropped" line marks each gap).
	Events  uint64 `json:"events"`
	Frames  uint64 `json:"frames"`
	Dropped uint64 `json:"dropped"`
}

// Recording is a recording read back by [ReadRecording].
type Recording struct {
	// Header is the first line; the zero Header when the file has none
	// (the output of `rtm watch`, which [ReadRecording] also reads).
	Header Header
	// Events are the events in file order (which is time order).
	Events []registry.Event
	// End is the last line, or nil when the recording was cut short
	// (the recorder was killed).
	End *End
	// Apps are the lines of an app recording (see [KindApp]) in order;
	// Events then holds the app model's events they make, as log lines
	// (and the "dropped" lines).
	Apps []apps.Input

	feed    *appFeed // while an app recording is read
	clients int      // client events read
}

// Frames returns the frame events of r, in order.
func (r *Recording) Frames() []registry.FrameEvent {
	var out []registry.FrameEvent
	for _, e := range r.Events {
		if f, ok := e.(registry.FrameEvent); ok {
			out = append(out, f)
		}
	}
	return out
}

// Start returns the time of the first event (the header's Started when
// there is none).
func (r *Recording) Start() time.Time {
	if len(r.Events) > 0 {
		return r.Events[0].EventTime()
	}
	return r.Header.Started
}

// Length returns the time between the first and the last event.
func (r *Recording) Length() time.Duration {
	if len(r.Events) < 2 {
		return 0
	}
	return r.Events[len(r.Events)-1].EventTime().Sub(r.Events[0].EventTime())
}

// Version returns the serializer of the frames (2.0.0 when unknown).
func (r *Recording) Version() protocol.Version {
	if v, err := protocol.ParseVersion(r.Header.Serializer); err == nil && r.Header.Serializer != "" {
		return v
	}
	return protocol.V2
}

// decodeFrame decodes a recorded frame sent by the server: a binary frame
// (kept in Data) under 2.0.0, a text frame under the recording's
// serializer vsn.
func decodeFrame(vsn protocol.Version, f registry.FrameEvent) (protocol.Message, error) {
	if len(f.Data) > 0 {
		return protocol.V2.DecodeServer(f.Data, true)
	}
	return vsn.DecodeServer([]byte(f.Text), false)
}

// LineError is an error in a recording (or a scenario) at a line.
type LineError struct {
	// File names the input ("" when unnamed); Line is 1-based.
	File   string
	Line   int
	Reason string
}

// Error implements error: "file:line: reason".
func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Unwrap returns [ErrInvalid].
func (e *LineError) Unwrap() error { return ErrInvalid }

// ReadRecording reads a recording (or the NDJSON of `rtm watch`): an
// optional header line, one registry event per line, and an optional end
// line. Blank lines are skipped. A bad line is a *[LineError] naming it;
// name names the input in errors. It never panics. Keys and tokens in the
// file are masked as it is read (registry.MaskJSON on each line,
// registry.MaskEvent on each event), whoever wrote it.
func ReadRecording(name string, r io.Reader) (*Recording, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	rec := &Recording{}
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, errLineTooLong) {
				return nil, &LineError{File: name, Line: line, Reason: fmt.Sprintf("line longer than %d bytes", MaxLine)}
			}
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if rec.End != nil {
				return nil, &LineError{File: name, Line: line, Reason: "content after the recording_end line"}
			}
			if err := rec.add(b, line); err != nil {
				rec.finish()
				return nil, &LineError{File: name, Line: line, Reason: err.Error()}
			}
		}
		if errors.Is(err, io.EOF) {
			rec.finish()
			return rec, nil
		}
	}
}

var errLineTooLong = errors.New("line too long")

func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		part, isPrefix, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return buf, io.EOF
			}
			return buf, err
		}
		if len(buf)+len(part) > MaxLine {
			return nil, errLineTooLong
		}
		buf = append(buf, part...)
		if !isPrefix {
			return buf, nil
		}
	}
}

func (r *Recording) add(b []byte, line int) error {
	// A file from elsewhere (or from an older rtm) may hold secrets:
	// masked on the way in too, so that none reaches a screen or a live
	// channel.
	b = registry.MaskJSON(b)
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	switch head.Type {
	case TypeRecording:
		if line != 1 || len(r.Events) > 0 {
			return errors.New("a recording header must be the first line")
		}
		var h Header
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("header: %v", err)
		}
		if h.Version != RecordingVersion {
			return fmt.Errorf("recording version %d: this rtm reads version %d", h.Version, RecordingVersion)
		}
		if h.Serializer != "" {
			if _, err := protocol.ParseVersion(h.Serializer); err != nil {
				return fmt.Errorf("header: serializer %q: %v", h.Serializer, err)
			}
		}
		r.Header = h
		return nil
	case TypeRecordingEnd:
		var e End
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("end: %v", err)
		}
		r.End = &e
		return nil
	}
	if isAppLine(head.Type) {
		return r.addApp(b)
	}
	ev, err := registry.DecodeEvent(b)
	if err != nil {
		return err
	}
	ev = registry.MaskEvent(ev)
	if _, dropped := ev.(registry.DroppedEvent); !dropped {
		if r.IsApp() {
			return fmt.Errorf("a %s event of rtm's client in an app recording", ev.EventType())
		}
		r.clients++
	}
	if f, ok := ev.(registry.FrameEvent); ok {
		if f.Direction != registry.In && f.Direction != registry.Out {
			return errors.New("frame without a direction")
		}
		if f.Text != "" && len(f.Data) > 0 {
			return errors.New("frame with both text and data")
		}
	}
	r.Events = append(r.Events, ev)
	return nil
}

// Writer writes events as NDJSON, one registry event per line in its
// stable JSON form, secrets masked: the format of `rtm watch` and, with a
// header, of `rtm record`. It is not safe for concurrent use.
type Writer struct {
	w      *bufio.Writer
	header bool
	end    End
	tag    []byte // `"identity":"NAME",` while WriteAs writes, or nil
}

// NewWriter returns a writer to w; with h it first writes h as the
// recording header (Type and Version are filled in).
func NewWriter(w io.Writer, h *Header) (*Writer, error) {
	wr := &Writer{w: bufio.NewWriterSize(w, 64<<10)}
	if h != nil {
		hh := *h
		hh.Type, hh.Version = TypeRecording, RecordingVersion
		hh.Target = registry.MaskURL(hh.Target)
		hh.Identity = registry.MaskText(hh.Identity)
		b, err := json.Marshal(hh)
		if err != nil {
			return nil, err
		}
		if err := wr.line(b); err != nil {
			return nil, err
		}
		wr.header = true
	}
	return wr, nil
}

// Write writes one event. Secrets are masked: the registry masks the
// frames it emits, and the writer masks every event again
// (registry.MaskEvent, then registry.MaskJSON on the line, or on its big
// field written after it: see bigField) — every string of the line decoded (a frame's
// text, a message's payload, reasons), every binary frame and binary
// message — so that no file ever holds a usable key or token, however
// the payload spelled it. The line stays valid JSON.
func (w *Writer) Write(e registry.Event) error {
	e = registry.MaskEvent(e)
	if big, err := w.writeBig(e); big {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", e.EventType(), err)
	}
	b = registry.MaskJSON(b)
	w.count(e)
	return w.line(b)
}

// count counts e in the end line.
func (w *Writer) count(e registry.Event) {
	w.end.Events++
	switch e := e.(type) {
	case registry.FrameEvent:
		w.end.Frames++
	case registry.DroppedEvent:
		w.end.Dropped += e.Count
	}
}

// line writes b and a newline (not into a buffer of the Writer's: a big
// line would keep it big).
func (w *Writer) line(b []byte) error {
	if err := w.object(b); err != nil {
		return err
	}
	return w.w.WriteByte('\n')
}

// object writes the JSON object b, with the identity member first while
// WriteAs writes.
func (w *Writer) object(b []byte) error {
	if len(w.tag) > 0 && len(b) > 1 && b[0] == '{' {
		if _, err := w.w.Write(w.tag[:len(w.tag)-1]); err != nil {
			return err
		}
		if b[1] != '}' {
			if err := w.w.WriteByte(','); err != nil {
				return err
			}
		}
		b = b[1:]
	}
	_, err := w.w.Write(b)
	return err
}

// WriteAs writes one event of identity's manager, as [Writer.Write]
// does, with "identity":identity as the line's first member (`rtm
// watch --as A --as B`).
func (w *Writer) WriteAs(identity string, e registry.Event) error {
	t, _ := json.Marshal(identity)
	w.tag = append(append(append(w.tag[:0], `{"identity":`...), t...), '}')
	defer func() { w.tag = w.tag[:0] }()
	return w.Write(e)
}

// Flush writes buffered lines to the underlying writer.
func (w *Writer) Flush() error { return w.w.Flush() }

// Counts returns what was written so far.
func (w *Writer) Counts() End { return w.end }

// Close writes the end line (when the writer wrote a header) and
// flushes.
func (w *Writer) Close(at time.Time) error {
	if w.header {
		end := w.end
		end.Type, end.Time = TypeRecordingEnd, at
		b, err := json.Marshal(end)
		if err != nil {
			return err
		}
		if err := w.line(b); err != nil {
			return err
		}
	}
	return w.w.Flush()
}
