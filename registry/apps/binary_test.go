package apps_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
	"rtm/registry/apps/appstest"
)

// Binary payloads are messages like any other: a Phoenix binary frame
// (phoenix.js's kind-0 push of an ArrayBuffer, the server's kind-2
// broadcast of it) and a binary user broadcast (kinds 3 and 4 with a raw
// payload) are kept and published with Binary set and their bytes in
// hex, masked and clipped; a JSON-encoded binary user broadcast stays
// JSON. A recording of them rebuilds the model.
func TestBinaryMessages(t *testing.T) {
	srv := servertest.New(t)
	key := srv.ServiceRoleKey()
	const topic = "realtime:room1"
	opt := apps.Options{MaxPayloadBytes: 40}
	m := apps.New(opt)
	sub := m.Subscribe(0)
	defer sub.Close()
	var file bytes.Buffer
	rec := apps.NewRecorder(m, &file, apps.RecorderOptions{})
	rec.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=2.0.0", Opened: time.Now()})
	frame := func(dir proxy.Direction, msg protocol.Message) int {
		t.Helper()
		enc := protocol.V2.AppendServer
		if dir == proxy.FromApp {
			enc = protocol.V2.AppendClient
		}
		b, bin, err := enc(nil, &msg)
		if err != nil || !bin {
			t.Fatalf("encode %+v: binary %v, %v", msg, bin, err)
		}
		rec.Frame(proxy.Frame{Conn: 1, Dir: dir, Time: time.Now(), Binary: true, Data: b})
		return len(b)
	}
	blob := []byte{0, 1, 2, 0xfe, 0xff}
	long := bytes.Repeat([]byte{0xab}, 100)
	secret := append([]byte{0xff, ' '}, key...)
	sizes := []int{
		frame(proxy.FromApp, protocol.Message{JoinRef: "1", Ref: "2", Topic: topic, Event: protocol.EventBroadcast, Binary: true, Raw: blob}),
		frame(proxy.ToApp, protocol.Message{Topic: topic, Event: protocol.EventBroadcast, Binary: true, Raw: blob}),
		frame(proxy.FromApp, protocol.Message{JoinRef: "1", Ref: "3", Topic: topic, Event: protocol.EventBroadcast,
			Broadcast: &protocol.Broadcast{Event: "bin", Payload: long, Binary: true}}),
		frame(proxy.ToApp, protocol.Message{Topic: topic, Event: protocol.EventBroadcast,
			Broadcast: &protocol.Broadcast{Event: "json", Payload: []byte(`{"n":1}`)}}),
		frame(proxy.ToApp, protocol.Message{Topic: topic, Event: protocol.EventBroadcast, Binary: true, Raw: secret}),
		frame(proxy.FromApp, protocol.Message{JoinRef: "1", Ref: "4", Topic: topic, Event: protocol.EventBroadcast, Binary: true}),
	}
	want := []apps.Message{
		{Dir: "app->upstream", Event: "broadcast", Payload: "00 01 02 fe ff", Binary: true},
		{Dir: "upstream->app", Event: "broadcast", Payload: "00 01 02 fe ff", Binary: true},
		// 13 whole bytes fit 40 characters.
		{Dir: "app->upstream", Event: "broadcast", UserEvent: "bin", Payload: strings.TrimSpace(strings.Repeat("ab ", 13)), Binary: true, Clipped: true},
		{Dir: "upstream->app", Event: "broadcast", UserEvent: "json", Payload: `{"n":1}`},
		{Dir: "upstream->app", Event: "broadcast", Binary: true}, // the masked key: checked below
		{Dir: "app->upstream", Event: "broadcast", Payload: "", Binary: true},
	}
	c := channelOf(m.Snapshot(), 1, topic)
	if c == nil || len(c.Messages) != len(want) || c.MessagesFromApp != 3 || c.MessagesToApp != 3 {
		t.Fatalf("channel %+v", c)
	}
	evs := drain(sub)
	if len(evs) != 1+len(want) {
		t.Fatalf("%d events, want %d: %+v", len(evs), 1+len(want), evs)
	}
	for i, w := range want {
		got := c.Messages[i]
		w.Time, w.Bytes = got.Time, sizes[i]
		if i == 4 {
			w.Payload = got.Payload
			if !strings.HasPrefix(got.Payload, "ff 20 ") || len(got.Payload) > 40 {
				t.Errorf("the binary payload with a key: %q", got.Payload)
			}
		}
		if got != w {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, got, w)
		}
		ev := evs[1+i]
		if ev.Type != apps.TypeMessage || ev.Binary != w.Binary || ev.Payload != w.Payload || ev.Bytes != w.Bytes || ev.UserEvent != w.UserEvent {
			t.Errorf("event %d %+v, want the message %+v", i, ev, w)
		}
	}
	// The key, masked as text inside the raw bytes before they are shown
	// in hex, is in the output neither as text nor as hex.
	js, _ := json.Marshal(m.Snapshot())
	var nd bytes.Buffer
	for _, ev := range evs {
		if err := apps.WriteNDJSON(&nd, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, out := range [][]byte{js, nd.Bytes()} {
		if masktest.Holds(out, key) || bytes.Contains(out, fmt.Appendf(nil, "% x", key[len(key)-12:])) {
			t.Errorf("the key is unmasked: %s", out)
		}
	}
	if !bytes.Contains(nd.Bytes(), []byte(`"payload":"00 01 02 fe ff","binary":true`)) {
		t.Errorf("NDJSON %s", nd.Bytes())
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if masktest.Holds(file.Bytes(), key) {
		t.Errorf("the recording holds the key")
	}
	replayed := apps.New(opt)
	for _, line := range bytes.Split(bytes.TrimSpace(file.Bytes()), []byte("\n")) {
		in, err := apps.DecodeInput(line)
		if err != nil {
			t.Fatalf("line %s: %v", line, err)
		}
		if err := replayed.Apply(in); err != nil {
			t.Fatal(err)
		}
	}
	live := m.Snapshot()
	live.Stats.EventsDropped = 0
	appstest.SameSnapshot(t, replayed.Snapshot(), live)
}
