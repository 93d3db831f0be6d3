package registry

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func payloadOf(n int) []byte { return bytes.Repeat([]byte("x"), n) }

// A subscriber holds at most BufferBytes of stream events: a message
// that does not fit is held truncated (with its size) when that fits,
// else dropped and counted, and so are other stream events.
func TestBrokerBufferBytes(t *testing.T) {
	b := testBroker()
	a := MustName(KindBroadcast, "doc", "a", "")
	const budget = 100 << 10
	plain := b.subscribe(context.Background(), SubscribeOptions{Buffer: 1000, BufferBytes: budget})
	defer plain.Close()
	batched := b.subscribe(context.Background(), SubscribeOptions{Buffer: 1000, BufferBytes: budget, MessageBatches: true})
	defer batched.Close()
	big := MessageEvent{Channel: a, Direction: In, Kind: MessageBroadcast, Event: "e", Payload: payloadOf(60 << 10), Size: 60 << 10}
	bin := MessageEvent{Channel: a, Direction: In, Kind: MessageBroadcast, Event: "b", Binary: payloadOf(60 << 10), Size: 60 << 10}
	b.publishMessages([]MessageEvent{big, big, bin}) // the second and third do not fit whole
	huge := make([]MessageEvent, 10)
	for i := range huge {
		huge[i] = MessageEvent{Channel: a, Event: "h", Payload: payloadOf(1 << 20), Size: 1 << 20}
	}
	b.publishMessages(huge) // truncated until even that does not fit
	b.publish(LogEvent{Record: LogRecord{Message: strings.Repeat("l", 200<<10)}})

	check := func(who string, msgs []MessageEvent, dropped uint64) {
		t.Helper()
		total, whole, cut := 0, 0, 0
		for _, me := range msgs {
			total += eventOverhead + me.Bytes()
			if me.Truncated {
				cut++
				if me.Payload != nil || (len(me.Preview) != PreviewBytes && len(me.Binary) != PreviewBytes) || me.Size < 60<<10 {
					t.Errorf("%s: truncated message: payload %d, preview %d, binary %d, size %d", who, len(me.Payload), len(me.Preview), len(me.Binary), me.Size)
				}
			} else {
				whole++
			}
		}
		if total > budget || whole != 1 || cut < 2 || dropped == 0 || int(dropped)+len(msgs) != 14 {
			t.Errorf("%s: %d messages (%d whole, %d truncated), %d bytes of %d, %d dropped", who, len(msgs), whole, cut, total, budget, dropped)
		}
		if !msgs[2].Truncated || len(msgs[2].Binary) != PreviewBytes || msgs[2].Preview != "" {
			t.Errorf("%s: the binary message: %+v", who, msgs[2].Truncated)
		}
	}
	var msgs []MessageEvent
	for _, ev := range plain.Drain(nil) {
		if me, ok := ev.(MessageEvent); ok {
			msgs = append(msgs, me)
		}
	}
	check("plain", msgs, plain.Dropped())
	msgs = nil
	for _, ev := range batched.Drain(nil) {
		if mb, ok := ev.(MessageBatchEvent); ok {
			msgs = append(msgs, mb.Messages...)
		}
	}
	check("batched", msgs, batched.Dropped())
	// Room again after the Drain.
	b.publishMessages([]MessageEvent{big})
	if evs := plain.Drain(nil); len(evs) != 1 || evs[0].(MessageEvent).Truncated {
		t.Errorf("after the drain: %v", evs)
	}
}

// What a subscriber holds is a copy: the publisher's bytes (the client's
// frame) may be reused; payloads bigger than aliasMax, which never share
// a slab, are shared.
func TestBrokerOwnsPayloads(t *testing.T) {
	b := testBroker()
	a := MustName(KindBroadcast, "doc", "a", "")
	plain := b.subscribe(context.Background(), SubscribeOptions{})
	defer plain.Close()
	batched := b.subscribe(context.Background(), SubscribeOptions{MessageBatches: true})
	defer batched.Close()
	frame := []byte(`{"n":1}`)
	bigFrame := payloadOf(aliasMax + 1)
	b.publishMessages([]MessageEvent{
		{Channel: a, Event: "e", Payload: frame[:len(frame):len(frame)], Size: len(frame)},
		{Channel: a, Event: "e", Binary: frame[:2:2], Size: 2},
		{Channel: a, Event: "big", Payload: bigFrame, Size: len(bigFrame)},
	})
	copy(frame, `{"n":2}`)
	p := plain.Drain(nil)
	bt := batched.Drain(nil)[0].(MessageBatchEvent).Messages
	for who, ms := range map[string][]MessageEvent{"plain": {p[0].(MessageEvent), p[1].(MessageEvent), p[2].(MessageEvent)}, "batched": bt} {
		if string(ms[0].Payload) != `{"n":1}` || string(ms[1].Binary) != `{"` {
			t.Errorf("%s: %s %s: shares the publisher's bytes", who, ms[0].Payload, ms[1].Binary)
		}
		if &ms[2].Payload[0] != &bigFrame[0] {
			t.Errorf("%s: a big payload was copied", who)
		}
	}
}

// A MessageBatches subscriber read with Drain copies payloads into an
// arena whose chunks come back: no allocation per message.
func TestBrokerArenaReused(t *testing.T) {
	b := testBroker()
	a := MustName(KindBroadcast, "doc", "a", "")
	s := b.subscribe(context.Background(), SubscribeOptions{Buffer: 1000, MessageBatches: true})
	defer s.Close()
	run := make([]MessageEvent, 50)
	for i := range run {
		run[i] = MessageEvent{Channel: a, Event: "e", Payload: payloadOf(3000), Size: 3000}
	}
	var got []Event
	for range 3 {
		b.publishMessages(run)
		got = s.Drain(got[:0])
	}
	allocs := testing.AllocsPerRun(50, func() {
		b.publishMessages(run)
		got = s.Drain(got[:0])
	})
	if allocs > 1 { // the boxed MessageBatchEvent
		t.Errorf("%v allocations per run of 50 messages", allocs)
	}
	if ms := got[0].(MessageBatchEvent).Messages; len(ms) != 50 || len(ms[49].Payload) != 3000 {
		t.Errorf("batch of %d", len(ms))
	}
	if n := len(s.arena.free) + len(s.arena.lent); n > maxFreeChunks+3 {
		t.Errorf("the arena keeps %d chunks", n)
	}
}

// A frame event is built (masked, copied) only when a subscriber has
// room for it; otherwise the drop is counted.
func TestBrokerFrameBuiltOnlyWithRoom(t *testing.T) {
	b := testBroker()
	s := b.subscribe(context.Background(), SubscribeOptions{Frames: true, BufferBytes: 10 << 10})
	defer s.Close()
	built := 0
	build := func(n int) func() FrameEvent {
		return func() FrameEvent { built++; return FrameEvent{Text: strings.Repeat("f", n), Size: n} }
	}
	b.publishFrame(Name{}, 1000, build(1000))
	b.publishFrame(Name{}, 20<<10, build(20<<10))
	if built != 1 || s.Dropped() != 1 {
		t.Errorf("built %d, dropped %d", built, s.Dropped())
	}
	if evs := s.Drain(nil); len(evs) != 2 { // the frame, the drop notice
		t.Errorf("got %v", evs)
	}
}

// The message ring keeps copies within its bytes; a message bigger than
// them is kept truncated, its size and kind known.
func TestMessageRingBytes(t *testing.T) {
	n := MustName(KindBroadcast, "doc", "a", "")
	r := newMsgRing(100, 10<<10)
	src := []byte(`{"v":"` + strings.Repeat("é", 20) + `"}`)
	for i := range 300 {
		r.putEvent(&MessageEvent{Kind: MessageBroadcast, Size: len(src), Direction: In, Event: "ev", Payload: src})
		if i == 0 {
			copy(src, `{"w"`) // the client's buffer, reused
		}
	}
	ms := r.messages(n, 0)
	if total := messageBytesOf(ms); total > 10<<10 || len(ms) > 100 || len(ms) < 50 {
		t.Fatalf("ring of %d messages, %d bytes", len(ms), total)
	}
	if string(ms[len(ms)-1].Payload) != string(src) || ms[0].Event != "ev" || ms[0].Channel != n {
		t.Fatalf("kept %q %q", ms[len(ms)-1].Payload, ms[0].Event)
	}
	huge := []byte(`{"v":"` + strings.Repeat("é", 10<<10) + `"}`)
	r.putEvent(&MessageEvent{Kind: MessageBroadcast, Size: len(huge), Direction: In, Event: "huge", Payload: huge})
	last := r.messages(n, 1)[0]
	if !last.Truncated || last.Size != len(huge) || last.Payload != nil || len(last.Preview) > 10<<10-4 ||
		!utf8.ValidString(last.Preview) || !strings.HasPrefix(string(huge), last.Preview) || last.Event != "huge" {
		t.Fatalf("huge: truncated %v size %d preview %d bytes (valid %v)", last.Truncated, last.Size, len(last.Preview), utf8.ValidString(last.Preview))
	}
	bin := MessageEvent{Event: "bin", Binary: payloadOf(20 << 10), Size: 20 << 10, Direction: In, Kind: MessageBroadcast}
	r.putEvent(&bin)
	if last := r.messages(n, 1)[0]; !last.Truncated || len(last.Binary) == 0 || len(last.Binary) > 10<<10 || last.Preview != "" {
		t.Fatalf("binary: %+v", last.Truncated)
	}
	if r.bytes() > 10<<10 {
		t.Fatalf("%d bytes kept", r.bytes())
	}
}

func messageBytesOf(ms []MessageEvent) int {
	n := 0
	for i := range ms {
		n += ms[i].Bytes()
	}
	return n
}

func TestClipText(t *testing.T) {
	if s := clipText("short", 10); s != "short" {
		t.Errorf("clip short: %q", s)
	}
	s := clipText(strings.Repeat("é", 100), 51)
	if !strings.HasPrefix(s, strings.Repeat("é", 25)+"… (200 bytes)") || !utf8.ValidString(s) {
		t.Errorf("clip: %q", s)
	}
	me := MessageEvent{Payload: []byte(`"` + strings.Repeat("é", 10) + `"`), Size: 22}
	if c := me.Truncate(4); !c.Truncated || c.Preview != `"é` || c.Payload != nil || c.Size != 22 {
		t.Errorf("truncate: %+v", c)
	}
	if c := me.Truncate(100); c.Truncated || string(c.Payload) != string(me.Payload) {
		t.Errorf("truncate, short: %+v", c)
	}
}

// FuzzTruncate: a truncated message holds at most n bytes of its
// payload, a prefix, valid UTF-8 when the payload was.
func FuzzTruncate(f *testing.F) {
	f.Add([]byte(`{"a":"é"}`), 3, false)
	f.Add([]byte{0xff, 0xfe, 0}, 1, true)
	f.Fuzz(func(t *testing.T, p []byte, n int, binary bool) {
		me := MessageEvent{Payload: p, Size: len(p)}
		if binary {
			me = MessageEvent{Binary: p, Size: len(p)}
		}
		c := me.Truncate(n)
		kept := string(c.Payload) + string(c.Binary) + c.Preview
		if len(kept) > max(n, 0) && c.Truncated || !strings.HasPrefix(string(p), kept) || c.Size != len(p) {
			t.Fatalf("Truncate(%d) of %q: %+v", n, p, c)
		}
		if c.Truncated != (len(p) > max(n, 0)) {
			t.Fatalf("Truncate(%d) of %d bytes: truncated %v", n, len(p), c.Truncated)
		}
		if !binary && utf8.Valid(p) && !utf8.ValidString(c.Preview) {
			t.Fatalf("Truncate(%d) of %q: preview %q not UTF-8", n, p, c.Preview)
		}
	})
}

// The log ring holds at most its bytes, and a value or message longer
// than MaxTextBytes is cut (after masking) in the ring, the sink and the
// file.
func TestLogHandlerBytes(t *testing.T) {
	var file bytes.Buffer
	h := NewLogHandler(LogOptions{Ring: 1000, Bytes: 256 << 10, File: &file})
	var sunk []LogRecord
	h.SetSink(func(r LogRecord) { sunk = append(sunk, r) })
	log := slog.New(h)
	big := strings.Repeat("r", 1<<20)
	for range 200 {
		log.Warn("Channel error "+big, KeyErr, big, KeyChannel, "broadcast:a:b")
	}
	recs := h.Records(0)
	total := 0
	for i := range recs {
		total += logRecordBytes(&recs[i])
	}
	if total > 256<<10 || len(recs) < 10 {
		t.Errorf("the ring holds %d records, %d bytes", len(recs), total)
	}
	r := sunk[len(sunk)-1]
	v, _ := r.Attr(KeyErr)
	if len(v) > MaxTextBytes+32 || !strings.HasSuffix(v, "… (1048576 bytes)") || len(r.Message) > MaxTextBytes+32 {
		t.Errorf("a record: message %d bytes, err %d bytes (%q...)", len(r.Message), len(v), v[len(v)-30:])
	}
	if line, _, _ := bytes.Cut(file.Bytes(), []byte("\n")); len(line) > 3*MaxTextBytes {
		t.Errorf("a file line of %d bytes", len(line))
	}
	// A secret at the cut is masked before it is cut.
	log.Info("x", "v", strings.Repeat("a", MaxTextBytes-20)+" "+testJWT)
	if v, _ := h.Records(1)[0].Attr("v"); strings.Contains(v, testJWT[:30]) {
		t.Errorf("a JWT at the cut is kept: %q", v[len(v)-60:])
	}
}

// The history keeps at most its bytes; an event larger than them is not
// kept.
func TestHistoryBytes(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBroker(func() time.Time { return t0 }, 1000, 64<<10)
	for i := range 100 {
		b.publish(ErrorEvent{Op: "join", Message: strings.Repeat("e", 4<<10) + fmt.Sprint(i)})
	}
	b.publish(ErrorEvent{Op: "join", Message: strings.Repeat("h", 100<<10)})
	evs := b.hist.all()
	total := 0
	for _, ev := range evs {
		total += eventBytes(ev)
	}
	if total > 64<<10 || len(evs) < 10 || !strings.HasSuffix(evs[len(evs)-1].(ErrorEvent).Message, "99") {
		t.Errorf("history of %d events, %d bytes", len(evs), total)
	}
}
