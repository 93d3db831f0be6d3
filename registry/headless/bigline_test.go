package headless_test

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
	"rtm/registry/headless"
)

const bigJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"

// Events with a big payload, text or bytes are written with the big
// member streamed after the rest: the line reads back as the same event,
// secrets masked, one line each.
func TestWriterBigFields(t *testing.T) {
	ch := registry.MustName(registry.KindBroadcast, "room", "1", "")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pad := strings.Repeat("é<x>&\"\\\u2028", 20<<10)
	payload := json.RawMessage("{\n  \"token\": \"" + bigJWT + "\",\n  \"pad\": " + mustMarshal(t, pad) + "\n}")
	text := `["1","2","realtime:room:1","broadcast",{"event":"e","payload":{"jwt":"` + bigJWT + `","pad":` + mustMarshal(t, pad) + `}}]`
	frame, _, err := protocol.V2.AppendServer(nil, &protocol.Message{Topic: "realtime:room:1", Event: "broadcast",
		Broadcast: &protocol.Broadcast{Event: "e", Payload: json.RawMessage(`{"pad":` + mustMarshal(t, strings.Repeat("b", 100<<10)) + `}`)}})
	if err != nil {
		t.Fatal(err)
	}
	evs := []registry.Event{
		registry.MessageEvent{Time: t0, Channel: ch, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "e", Payload: payload, Size: len(payload)},
		registry.FrameEvent{Time: t0, Direction: registry.In, Channel: ch, Topic: ch.Topic(), Event: "broadcast", Text: text, Size: len(text)},
		registry.FrameEvent{Time: t0, Direction: registry.In, Channel: ch, Topic: ch.Topic(), Event: "broadcast", Data: frame, Size: len(frame)},
	}
	var out bytes.Buffer
	w, err := headless.NewWriter(&out, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), bigJWT[40:]) {
		t.Fatal("a JWT was written unmasked")
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Fatalf("%d lines", n)
	}
	rec, err := headless.ReadRecording("big", &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Events) != 3 || w.Counts().Frames != 2 {
		t.Fatalf("%d events read, %d frames counted", len(rec.Events), w.Counts().Frames)
	}
	me := rec.Events[0].(registry.MessageEvent)
	var got, want map[string]string
	if err := json.Unmarshal(me.Payload, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(payload, &want)
	if got["pad"] != want["pad"] || got["token"] == want["token"] || me.Size != len(payload) || me.Event != "e" || me.Channel != ch {
		t.Fatalf("message read back: pad equal %v, token %q", got["pad"] == want["pad"], got["token"])
	}
	f := rec.Events[1].(registry.FrameEvent)
	if f.Text != registry.MaskText(text) || f.Size != len(text) || f.Topic != ch.Topic() {
		t.Fatalf("text frame read back: %d bytes, want %d", len(f.Text), len(registry.MaskText(text)))
	}
	if b := rec.Events[2].(registry.FrameEvent); !bytes.Equal(b.Data, frame) || b.Text != "" {
		t.Fatalf("binary frame read back: %d bytes, want %d", len(b.Data), len(frame))
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Writing the line of a 30 MiB message or frame allocates about a copy
// or two of it, not the half dozen copies of encoding it whole (its
// JSON, the event's, the line's, the masking's, the writer's).
func TestWriterBigLineAllocations(t *testing.T) {
	const size = 30 << 20
	ch := registry.MustName(registry.KindBroadcast, "room", "1", "")
	p := make([]byte, size)
	copy(p, `{"data":"`)
	for i := 9; i < size-2; i++ {
		p[i] = 'x'
	}
	copy(p[size-2:], `"}`)
	w, err := headless.NewWriter(discard{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []registry.Event{
		registry.MessageEvent{Channel: ch, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "e", Payload: p, Size: size},
		registry.FrameEvent{Channel: ch, Direction: registry.In, Event: "broadcast", Text: string(p), Size: size},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s of 30 MiB: %d MiB allocated", e.EventType(), alloc>>20)
		if alloc > 2*size+size/2 {
			t.Errorf("writing a %s of 30 MiB allocated %d MiB", e.EventType(), alloc>>20)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
