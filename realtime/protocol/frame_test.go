package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// checkScanMatchesDecode asserts that ScanServer accepts exactly what
// DecodeServer accepts and returns the same content, and that its
// broadcast matches ParseBroadcast.
func checkScanMatchesDecode(t *testing.T, v Version, data []byte, binary bool) {
	t.Helper()
	var f ServerFrame
	errScan := v.ScanServer(data, binary, &f)
	checkScanServerPresence(t, v, data, binary, &f, errScan)
	m, errDecode := v.DecodeServer(data, binary)
	if (errScan == nil) != (errDecode == nil) {
		t.Fatalf("%s %q: ScanServer err %v, DecodeServer err %v", v, data, errScan, errDecode)
	}
	if errScan != nil {
		if !errors.Is(errScan, ErrMalformed) && !errors.Is(errScan, ErrUnsupported) {
			t.Fatalf("error does not wrap ErrMalformed/ErrUnsupported: %v", errScan)
		}
		return
	}
	if string(f.JoinRef) != m.JoinRef || string(f.Ref) != m.Ref || string(f.Topic) != m.Topic || f.Event != m.Event {
		t.Fatalf("%q: envelope %q %q %q %q, want %+v", data, f.JoinRef, f.Ref, f.Topic, f.Event, m)
	}
	if !bytes.Equal(f.Payload, m.Payload) {
		t.Fatalf("%q: payload %q want %q", data, f.Payload, m.Payload)
	}
	if f.Binary != m.Binary || !bytes.Equal(f.Raw, m.Raw) {
		t.Fatalf("%q: binary %v %q, want %v %q", data, f.Binary, f.Raw, m.Binary, m.Raw)
	}
	if m.Event != EventBroadcast {
		if f.HasBroadcast {
			t.Fatalf("%q: broadcast on event %q", data, m.Event)
		}
		return
	}
	want, errB := m.UserBroadcast()
	got, ok := f.Broadcast()
	if ok != (errB == nil) {
		t.Fatalf("%q: HasBroadcast %v but UserBroadcast err %v", data, ok, errB)
	}
	if !ok {
		return
	}
	if got.Event != want.Event || !bytes.Equal(got.Payload, want.Payload) || got.Binary != want.Binary || !bytes.Equal(got.Meta, want.Meta) {
		t.Fatalf("%q: broadcast %+v want %+v", data, got, want)
	}
}

func TestScanServerFrames(t *testing.T) {
	text := []string{
		string(frame220),
		`[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`,
		`["6","6","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`,
		`[null,null,"realtime:room1","broadcast",{"payload":{"y":2},"event":"x","type":"broadcast"}]`,
		`[null,null,"realtime:room1","broadcast",{"event":"x","meta":null,"payload":1,"meta":{"id":"1"}}]`,
		`[null,null,"realtime:room1","broadcast",{"event":"x","meta":{"id":"1"},"meta":null}]`,
		`[null,null,"realtime:room1","broadcast",{"event":1}]`,
		`[null,null,"realtime:room1","broadcast",{"event":"a","event":2}]`,
		`[null,null,"realtime:room1","broadcast",{"ev\u0065nt":"\u00e9"}]`,
		`[null,null,"realtime:room1","broadcast",{}]`,
		`[null,null,"realtime:room1","broadcast",null]`,
		`[null,null,"realtime:room1","broadcast",[1,2]]`,
		` [ "1" , null , "realtime:r\"x" , "presence_diff" , {"joins":{},"leaves":{}} , 5 , [] ] `,
		`["","","t","e",{}]`,
		`[null,null,"t","custom_event",{"a":[1,2.5e3,-0,true,false,null,"\ud83d\ude00"]}]`,
		`[null,null,"t","e",{"a":01}]`, `[null,null,"t","e",{"a":1.}]`, `[null,null,"t","e",{"a":1e}]`,
		`[null,null,"t","e",{"a":"\x01"}]`, `[null,null,"t","e",{"a" 1}]`, `[null,null,"t","e",{,}]`,
		`[null,null,"t","e",[1,]]`, `[null,null,"t","e",{}`, `[null,null,"t","e"]`, `[null,null,1,"e",{}]`,
		`[null,null,"t","e",{}] x`, `{"topic":"t"}`, `[`, ``, `[nul,null,"t","e",{}]`,
		`[null,null,"t","broadcast",{"event":"x","payload":{"a":tru}}]`,
		`[null,null,"t","broadcast",{"event":"x\q"}]`,
		`[null,null,"t","e","\xff"]`,
	}
	for _, s := range text {
		checkScanMatchesDecode(t, V2, []byte(s), false)
	}
	v1 := []string{
		`{"topic":"realtime:room1","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"6"}`,
		`{"payload":{"event":"cursor","payload":{"x":1},"type":"broadcast"},"event":"broadcast","topic":"realtime:r","ref":null}`,
		`{"topic":"t","event":"broadcast","payload":{"event":3},"ref":null}`,
		`{"topic":"t","event":"e"}`, `[null,null,"t","e",{}]`,
	}
	for _, s := range v1 {
		checkScanMatchesDecode(t, V1, []byte(s), false)
	}
	bin := [][]byte{
		append([]byte{0x04, 0x0e, 0x06, 0x00, 0x01}, `realtime:room1cursor{"x":1}`...),
		append([]byte{0x04, 0x01, 0x01, 0x0a, 0x00}, `te{"id":"1"}raw`...),
		append([]byte{0x04, 0x01, 0x01, 0x04, 0x00}, `te[1]raw`...),
		append([]byte{0x04, 0x01, 0x01, 0x00, 0x01}, `te{"x":`...),
		append([]byte{0x04, 0x00, 0x01, 0x00, 0x01}, `e{}`...),
		append([]byte{0x04, 0x01, 0x01, 0x00, 0x02}, `te{}`...),
		{0x04, 0x05, 0x00, 0x00, 0x01},
		{0x03, 0, 0, 1, 0, 0, 1, 't'},
		{},
		append([]byte{0x04, 0x01, 0x01, 0x00, 0x01}, "t\xff{}"...),
		append([]byte{0x02, 0x0e, 0x09}, "realtime:room1broadcast\x00\xff"...),
		append([]byte{0x02, 0x01, 0x00}, "t"...),
		{0x02, 0x00, 0x00},
		{0x02, 0x05, 0x00, 't'},
		{0x02, 0x01},
		append([]byte{0x02, 0x01, 0x01}, "t\xff"...),
	}
	for _, b := range bin {
		checkScanMatchesDecode(t, V2, b, true)
		checkScanMatchesDecode(t, V1, b, true)
	}
}

func TestScanServerNesting(t *testing.T) {
	for _, n := range []int{510, 511, 512, 513, 514} {
		nest := strings.Repeat("[", n) + strings.Repeat("]", n)
		checkScanMatchesDecode(t, V2, []byte(`[null,null,"t","e",`+nest+`]`), false)
		checkScanMatchesDecode(t, V2, []byte(`[null,null,"t","broadcast",{"event":"x","payload":`+nest+`}]`), false)
		obj := strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
		checkScanMatchesDecode(t, V2, []byte(`[null,null,"t","e",`+obj+`]`), false)
		checkScanMatchesDecode(t, V2, []byte(`[null,null,"t","broadcast",{"event":"x","payload":`+obj+`}]`), false)
	}
}

func TestScanServerBroadcastAliases(t *testing.T) {
	var f ServerFrame
	if err := V2.ScanServer(frame220, false, &f); err != nil {
		t.Fatal(err)
	}
	if !f.HasBroadcast || string(f.BroadcastEvent) != "cursor" || f.Event != EventBroadcast {
		t.Fatalf("got %+v", f)
	}
	if want := `{"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"selection":[12,48]}`; string(f.BroadcastPayload) != want {
		t.Fatalf("payload %s", f.BroadcastPayload)
	}
	// Appending to a returned slice must not overwrite the frame.
	before := string(frame220)
	_ = append(f.BroadcastPayload, 'X')
	_ = append(f.Topic, 'X')
	if string(frame220) != before {
		t.Fatal("append through a returned slice changed the frame")
	}
	if n := testing.AllocsPerRun(100, func() { _ = V2.ScanServer(frame220, false, &f) }); n != 0 {
		t.Fatalf("ScanServer allocates %v times per frame", n)
	}
}

func FuzzScanServer(f *testing.F) {
	addTextSeeds(f)
	f.Add(frame220)
	f.Add([]byte(`[null,null,"realtime:room1","broadcast",{"event":"x","meta":null,"payload":1,"meta":{"id":"1"}}]`))
	f.Add(append([]byte{0x04, 0x0e, 0x06, 0x00, 0x01}, `realtime:room1cursor{"x":1}`...))
	f.Add(append([]byte{0x04, 0x01, 0x01, 0x0a, 0x00}, `te{"id":"1"}raw`...))
	for _, s := range presenceFrameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScanMatchesDecode(t, V2, data, false)
		checkScanMatchesDecode(t, V1, data, false)
		checkScanMatchesDecode(t, V2, data, true)
	})
}

func BenchmarkScanServerV2Text(b *testing.B) {
	b.SetBytes(int64(len(frame220)))
	b.ReportAllocs()
	var f ServerFrame
	for b.Loop() {
		if err := V2.ScanServer(frame220, false, &f); err != nil || !f.HasBroadcast {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanServerV2Binary(b *testing.B) {
	topic := "realtime:broadcast:document:789"
	frame := append([]byte{0x04, byte(len(topic)), 6, 0, 1}, topic+"cursor"...)
	frame = append(frame, `{"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"selection":[12,48]}`...)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var f ServerFrame
	for b.Loop() {
		if err := V2.ScanServer(frame, true, &f); err != nil || !f.HasBroadcast {
			b.Fatal(err)
		}
	}
}
