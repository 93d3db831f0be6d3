package headless_test

import (
	"io"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
	"rtm/registry/headless"
)

// benchFrames are frames as `rtm record` sees them: a broadcast with no
// secret (the common case), a join carrying the access token, a payload
// with escaped quotes (JSON in a string), and a binary broadcast.
func benchFrames(b *testing.B) map[string]registry.FrameEvent {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYXV0aGVudGljYXRlZCIsImV4cCI6NDEwMjQ0NDgwMH0.eT2n8YVbO2C3hH1lqM5qL3dJb0uQx5R6wYf7mS1kK08"
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ch := registry.MustName(registry.KindBroadcast, "doc", "1", "")
	text := func(s string) registry.FrameEvent {
		return registry.FrameEvent{Time: at, Direction: registry.In, Channel: ch, Topic: ch.Topic(), Event: "broadcast", Text: s, Size: len(s)}
	}
	bin, _, err := protocol.V2.AppendServer(nil, &protocol.Message{Topic: ch.Topic(), Event: "broadcast",
		Broadcast: &protocol.Broadcast{Event: "cursor", Payload: []byte(`{"x":120,"y":48,"user":"ann","color":"#ff8800"}`)}})
	if err != nil {
		b.Fatal(err)
	}
	return map[string]registry.FrameEvent{
		"broadcast": text(`[null,null,"realtime:broadcast:doc:1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":120,"y":48,"user":"ann","color":"#ff8800"}}]`),
		"join":      text(`["1","1","realtime:broadcast:doc:1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false},"access_token":"` + jwt + `"}]`),
		"escaped":   text(`[null,null,"realtime:broadcast:doc:1","broadcast",{"type":"broadcast","event":"note","payload":{"body":"{\"text\":\"she said \\\"hi\\\"\",\"n\":3}"}}]`),
		"binary":    {Time: at, Direction: registry.In, Channel: ch, Topic: ch.Topic(), Event: "broadcast", Data: bin, Size: len(bin)},
	}
}

// BenchmarkWriterFrame is the cost of one frame line of `rtm record`
// (masking included).
func BenchmarkWriterFrame(b *testing.B) {
	for name, f := range benchFrames(b) {
		b.Run(name, func(b *testing.B) {
			w, err := headless.NewWriter(io.Discard, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Write(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMaskFrameText is the masking the manager does on every text
// frame it publishes.
func BenchmarkMaskFrameText(b *testing.B) {
	for name, f := range benchFrames(b) {
		if f.Text == "" {
			continue
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				registry.MaskText(f.Text)
			}
		})
	}
}
