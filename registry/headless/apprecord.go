package headless

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/compare"
)

// KindApp is Header.Kind of an app recording (`rtm proxy --record`):
// its lines are the inputs of the app model (package registry/apps,
// apps.Input), not registry events.
const KindApp = "app"

// AppRecorder writes an app recording: the header, the lines of an
// apps.Recorder (the proxy's Observer calls, masked), and the end line.
// It is the proxy's Observer (it passes every call on to the next one,
// the app model) and never blocks the relay.
type AppRecorder struct {
	*apps.Recorder
	w io.Writer
}

var (
	_ proxy.Observer      = (*AppRecorder)(nil)
	_ proxy.FaultObserver = (*AppRecorder)(nil)
)

// NewAppRecorder writes h (Kind app; Target, the upstream, masked) to w
// and returns the recorder of the calls passed on to next.
func NewAppRecorder(w io.Writer, h Header, next proxy.Observer, o apps.RecorderOptions) (*AppRecorder, error) {
	h.Type, h.Version, h.Kind = TypeRecording, RecordingVersion, KindApp
	h.Target, h.Identity = registry.MaskURL(h.Target), registry.MaskText(h.Identity)
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("app recording header: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("app recording header: %w", err)
	}
	if o.MaxLine <= 0 {
		o.MaxLine = MaxLine
	}
	return &AppRecorder{Recorder: apps.NewRecorder(next, w, o), w: w}, nil
}

// Close writes what is queued and the end line at time at; it returns
// what was written.
func (r *AppRecorder) Close(at time.Time) (End, error) {
	err := r.Recorder.Close()
	c := r.Counts()
	end := End{Type: TypeRecordingEnd, Time: at, Events: c.Lines, Frames: c.Frames, Dropped: c.Dropped}
	if err != nil {
		return end, err
	}
	b, err := json.Marshal(end)
	if err != nil {
		return end, err
	}
	if _, err := r.w.Write(append(b, '\n')); err != nil {
		return end, fmt.Errorf("app recording end: %w", err)
	}
	return end, nil
}

// IsApp reports whether r is an app recording (rtm proxy --record).
func (r *Recording) IsApp() bool { return r.Header.Kind == KindApp || len(r.Apps) > 0 }

// appFeed rebuilds, while an app recording is read, the model's events
// as the recording's Events (log lines for the UI's log pane).
type appFeed struct {
	model *apps.Model
	sub   *apps.Subscription
}

// appEventBuffer is the feed's queue, drained after every input (an
// input makes a few events; a socket closing with all its channels, at
// most a thousand or so).
const appEventBuffer = 8192

// addApp reads one line of an app recording (type app_*).
func (r *Recording) addApp(b []byte) error {
	if r.clients > 0 {
		return errors.New("an app recording line in a recording of rtm's client")
	}
	in, err := apps.DecodeInput(b)
	if err != nil {
		return err
	}
	if r.feed == nil {
		m := apps.New(apps.Options{})
		r.feed = &appFeed{model: m, sub: m.Subscribe(appEventBuffer)}
	}
	r.Apps = append(r.Apps, in)
	_ = r.feed.model.Apply(in)
	for {
		select {
		case ev := <-r.feed.sub.Events():
			r.Events = append(r.Events, appLogEvent(ev))
			continue
		default:
		}
		return nil
	}
}

// finish ends the feed of an app recording.
func (r *Recording) finish() {
	if r.feed != nil {
		r.feed.sub.Close()
		r.feed = nil
	}
}

// appLogEvent turns an event of the app model into a log line: message
// "app_channel joined", the event's members as attributes (masked, as
// the model's events are).
func appLogEvent(ev apps.Event) registry.Event {
	msg := string(ev.Type)
	switch {
	case ev.Flag != "":
		msg += " " + string(ev.Flag)
	case ev.Action != "":
		msg += " " + ev.Action
	}
	level := slog.LevelInfo
	switch {
	case ev.Type == apps.TypeFlag, ev.Status == apps.StatusErrored,
		ev.Type == apps.TypeSocket && ev.Action == "close" && ev.Code != 1000:
		level = slog.LevelWarn
	}
	rec := registry.LogRecord{Time: ev.Time, Level: level, Message: msg}
	b, _ := json.Marshal(ev)
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return registry.LogEvent{Record: rec}
	}
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			break
		}
		k, _ := kt.(string)
		switch k {
		case "type", "time", "action", "flag":
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v)
		}
		rec.Attrs = append(rec.Attrs, registry.LogAttr{Key: k, Value: s})
	}
	return registry.LogEvent{Record: rec}
}

// appReceived returns what the app of an app recording received
// (frames upstream->app, each decoded in its socket's serializer),
// normalized as [ReceivedMessages] does. A message the proxy dropped
// (a drop_message fault, reported right after its frame) is left out,
// one it duplicated counts twice.
func appReceived(r *Recording) []Received {
	vsn := map[uint64]protocol.Version{}
	var groups [][]Received
	last := map[uint64]int{} // socket -> its last group
	for i := range r.Apps {
		in := &r.Apps[i]
		switch in.Type {
		case apps.LineOpen:
			v, err := protocol.ParseVersion(in.Vsn)
			if err != nil {
				v = protocol.V1
			}
			vsn[in.Socket] = v
			continue
		case apps.LineFault:
			g, ok := last[in.Socket]
			if !ok || in.Armed || len(groups[g]) == 0 || groups[g][0].Channel != protocol.SubTopic(in.Topic) {
				continue
			}
			switch in.Kind {
			case proxy.FaultDropMessage:
				groups[g] = nil
			case proxy.FaultDuplicateMessage:
				groups = append(groups, slices.Clone(groups[g]))
			}
			delete(last, in.Socket)
			continue
		case apps.LineFrame:
		default:
			continue
		}
		if in.Dir != proxy.ToApp.String() {
			continue
		}
		v, ok := vsn[in.Socket]
		if !ok {
			v = protocol.V1
		}
		m, err := v.DecodeServer(in.Content(), in.Binary)
		if err != nil {
			groups = append(groups, []Received{{Event: "undecodable", Value: compare.JSON(string(in.Content()))}})
			delete(last, in.Socket)
			continue
		}
		if m.Topic == protocol.PhoenixTopic {
			continue
		}
		last[in.Socket] = len(groups)
		groups = append(groups, compare.Normalize(protocol.SubTopic(m.Topic), &m))
	}
	var out []Received
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// Comparable says whether [Diff] can compare a and b: two client
// recordings, or two app recordings.
func Comparable(nameA string, a *Recording, nameB string, b *Recording) error {
	if a.IsApp() == b.IsApp() {
		return nil
	}
	app, client := nameA, nameB
	if b.IsApp() {
		app, client = nameB, nameA
	}
	return fmt.Errorf("%w: %s is an app recording (rtm proxy --record) and %s a recording of rtm's client (rtm record): compare two of a kind", ErrInvalid, app, client)
}

// AppsView is the app model of an app recording at a [Player]'s
// position, for the UI's Apps view (tui.Apps): the recorded inputs up to
// the replay's clock applied to a model, rebuilt from the start after a
// seek back.
type AppsView struct{ p *Player }

// appReplay is the state behind an AppsView (under the player's lock).
type appReplay struct {
	inputs  []apps.Input
	times   []time.Time // monotone
	model   *apps.Model
	next    int
	version uint64
}

func newAppReplay(in []apps.Input) *appReplay {
	a := &appReplay{inputs: in, model: apps.New(apps.Options{})}
	var last time.Time
	for _, x := range in {
		t := x.Time
		if t.Before(last) {
			t = last
		}
		last = t
		a.times = append(a.times, t)
	}
	return a
}

// advance applies the inputs up to clk (after rebuilding from the start
// when the clock went back).
func (a *appReplay) advance(clk time.Time) {
	if a.next > 0 && a.times[a.next-1].After(clk) {
		a.model, a.next = apps.New(apps.Options{}), 0
		a.version++
	}
	for a.next < len(a.inputs) && !a.times[a.next].After(clk) {
		_ = a.model.Apply(a.inputs[a.next])
		a.next++
		a.version++
	}
}

// Apps returns the app model view of an app recording (nil for a
// client recording).
func (p *Player) Apps() *AppsView {
	if p.apps == nil {
		return nil
	}
	return &AppsView{p: p}
}

func (v *AppsView) at() *appReplay {
	a := v.p.apps
	a.advance(v.p.clockLocked(v.p.now()))
	return a
}

// Version changes whenever Snapshot would return something else.
func (v *AppsView) Version() uint64 {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	return v.at().version
}

// Snapshot returns the app model at the replay's position.
func (v *AppsView) Snapshot() apps.Snapshot {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	return v.at().model.Snapshot()
}

// appSpan widens [start, end] to the inputs of an app recording.
func appSpan(in []apps.Input, start, end time.Time) (time.Time, time.Time) {
	for _, x := range in {
		if x.Time.IsZero() {
			continue
		}
		if start.IsZero() || x.Time.Before(start) {
			start = x.Time
		}
		if x.Time.After(end) {
			end = x.Time
		}
	}
	return start, end
}

func isAppLine(typ string) bool { return strings.HasPrefix(typ, "app_") }
