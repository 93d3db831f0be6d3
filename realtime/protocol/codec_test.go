package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Frames observed from realtime-js 2.119.0.
const (
	observedJoin = `["6","6","realtime:room1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}]`
	observedV1   = `{"topic":"realtime:room1","event":"phx_join","payload":{"config":{}},"ref":"6","join_ref":"6"}`
)

func TestDecodeObservedV2Join(t *testing.T) {
	m, err := V2.DecodeClient([]byte(observedJoin), false)
	if err != nil {
		t.Fatal(err)
	}
	if m.JoinRef != "6" || m.Ref != "6" || m.Topic != "realtime:room1" || m.Event != EventJoin {
		t.Fatalf("envelope = %+v", m)
	}
	var p JoinPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Config.Broadcast.Ack || p.Config.Presence.Enabled || p.Config.Private || len(p.Config.PostgresChanges) != 0 {
		t.Fatalf("config = %+v", p.Config)
	}
	// Re-encoding gives the same bytes.
	out, bin, err := V2.AppendClient(nil, &m)
	if err != nil || bin {
		t.Fatalf("encode: %v binary=%v", err, bin)
	}
	if string(out) != observedJoin {
		t.Fatalf("re-encoded\n got %s\nwant %s", out, observedJoin)
	}
}

func TestDecodeV1(t *testing.T) {
	m, err := V1.DecodeClient([]byte(observedV1), false)
	if err != nil {
		t.Fatal(err)
	}
	if m.JoinRef != "6" || m.Ref != "6" || m.Topic != "realtime:room1" || string(m.Payload) != `{"config":{}}` {
		t.Fatalf("got %+v", m)
	}
	// Heartbeat without join_ref, keys in another order, ref null.
	m, err = V1.DecodeClient([]byte(`{"ref":null,"payload":{},"event":"heartbeat","topic":"phoenix"}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ref != "" || m.JoinRef != "" || m.Event != EventHeartbeat {
		t.Fatalf("got %+v", m)
	}
}

func TestServerV1OmitsJoinRef(t *testing.T) {
	m := Message{JoinRef: "6", Ref: "6", Topic: "realtime:room1", Event: EventReply, Payload: ReplyPayload(StatusOK, nil)}
	out, _, err := V1.AppendServer(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"topic":"realtime:room1","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"6"}`
	if string(out) != want {
		t.Fatalf("got %s\nwant %s", out, want)
	}
	out, _, _ = V1.AppendClient(nil, &m)
	if !strings.HasSuffix(string(out), `"ref":"6","join_ref":"6"}`) {
		t.Fatalf("client V1 frame lacks join_ref: %s", out)
	}
}

func TestV2NullRefsAndEmptyPayload(t *testing.T) {
	m := Message{Topic: "realtime:x", Event: EventPresenceDiff}
	out, _, _ := V2.AppendServer(nil, &m)
	if want := `[null,null,"realtime:x","presence_diff",{}]`; string(out) != want {
		t.Fatalf("got %s want %s", out, want)
	}
	back, err := V2.DecodeServer(out, false)
	if err != nil || back.JoinRef != "" || back.Ref != "" || string(back.Payload) != "{}" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestObservedBinaryPush(t *testing.T) {
	want := append([]byte{0x03, 0x01, 0x01, 0x0e, 0x06, 0x00, 0x01}, `67realtime:room1cursor{"x":1,"s":"é"}`...)
	m := Message{JoinRef: "6", Ref: "7", Topic: "realtime:room1", Event: EventBroadcast,
		Broadcast: &Broadcast{Event: "cursor", Payload: []byte(`{"x":1,"s":"é"}`)}}
	out, bin, err := V2.AppendClient(nil, &m)
	if err != nil || !bin {
		t.Fatalf("encode: %v binary=%v", err, bin)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("got % x\nwant % x", out, want)
	}
	back, err := V2.DecodeClient(out, true)
	if err != nil {
		t.Fatal(err)
	}
	if back.JoinRef != "6" || back.Ref != "7" || back.Topic != "realtime:room1" || back.Event != EventBroadcast ||
		back.Broadcast.Event != "cursor" || string(back.Broadcast.Payload) != `{"x":1,"s":"é"}` || back.Broadcast.Binary {
		t.Fatalf("decoded %+v %+v", back, back.Broadcast)
	}
}

// TestPhoenixBinaryPush: phoenix.js's channel.push("broadcast", buffer)
// with join_ref "1" and ref "2" (its Serializer.binaryEncode), and the
// kind-2 broadcast Phoenix's serializer fans it out as.
func TestPhoenixBinaryPush(t *testing.T) {
	push := append([]byte{0x00, 0x01, 0x01, 0x0e, 0x09}, "12realtime:room1broadcast\x00\x01\xff"...)
	m, err := V2.DecodeClient(push, true)
	if err != nil {
		t.Fatal(err)
	}
	if m.JoinRef != "1" || m.Ref != "2" || m.Topic != "realtime:room1" || m.Event != EventBroadcast ||
		!m.Binary || string(m.Raw) != "\x00\x01\xff" || m.Payload != nil || m.Broadcast != nil {
		t.Fatalf("decoded %+v", m)
	}
	if out, bin, err := V2.AppendClient(nil, &m); err != nil || !bin || !bytes.Equal(out, push) {
		t.Fatalf("re-encoded % x (%v, %v)", out, bin, err)
	}
	if _, err := V1.DecodeClient(push, true); !errors.Is(err, ErrUnsupported) {
		t.Errorf("kind 0 under V1: %v", err)
	}
	empty, err := V2.DecodeClient([]byte("\x00\x00\x00\x01\x01te"), true)
	if err != nil || !empty.Binary || len(empty.Raw) != 0 {
		t.Errorf("empty ArrayBuffer: %+v %v", empty, err)
	}

	out := &Message{Topic: m.Topic, Event: m.Event, Binary: true, Raw: m.Raw}
	want := append([]byte{0x02, 0x0e, 0x09}, "realtime:room1broadcast\x00\x01\xff"...)
	b, bin, err := V2.AppendServer(nil, out)
	if err != nil || !bin || !bytes.Equal(b, want) {
		t.Fatalf("kind 2: % x (%v, %v)\nwant % x", b, bin, err, want)
	}
	back, err := V2.DecodeServer(b, true)
	if err != nil || back.Topic != m.Topic || back.Event != EventBroadcast || !back.Binary || string(back.Raw) != string(m.Raw) {
		t.Fatalf("kind 2 decoded %+v %v", back, err)
	}
	if _, _, err := V1.AppendServer(nil, out); !errors.Is(err, ErrUnsupported) {
		t.Errorf("kind 2 under V1: %v", err)
	}
	for _, bad := range [][]byte{{0x00, 0x01, 0x01, 0x01}, {0x00, 0x05, 0x00, 0x01, 0x00, 't'}, {0x00, 0x00, 0x00, 0x00, 0x01, 'e'}} {
		if _, err := V2.DecodeClient(bad, true); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: %v, want ErrMalformed", bad, err)
		}
	}
}

func TestObservedBinaryBroadcast(t *testing.T) {
	want := append([]byte{0x04, 0x0e, 0x06, 0x00, 0x01}, `realtime:room1cursor{"x":1}`...)
	m := Message{Topic: "realtime:room1", Event: EventBroadcast, Broadcast: &Broadcast{Event: "cursor", Payload: []byte(`{"x":1}`)}}
	out, bin, err := V2.AppendServer(nil, &m)
	if err != nil || !bin || !bytes.Equal(out, want) {
		t.Fatalf("got % x (%v, %v)\nwant % x", out, bin, err, want)
	}
	back, err := V2.DecodeServer(out, true)
	if err != nil || back.Topic != "realtime:room1" || back.Broadcast.Event != "cursor" || string(back.Broadcast.Payload) != `{"x":1}` {
		t.Fatalf("decoded %+v %v", back, err)
	}
	// V1 subscribers get the JSON form.
	out, bin, err = V1.AppendServer(nil, &m)
	if err != nil || bin {
		t.Fatal(err)
	}
	if w := `{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"cursor","payload":{"x":1}},"ref":null}`; string(out) != w {
		t.Fatalf("v1 got %s\nwant %s", out, w)
	}
	// Raw binary payloads cannot go to V1.
	raw := Message{Topic: "realtime:room1", Event: EventBroadcast, Broadcast: &Broadcast{Event: "bin", Payload: []byte{0, 1, 2}, Binary: true}}
	if _, _, err := V1.AppendServer(nil, &raw); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("raw binary to V1: err = %v", err)
	}
	out, _, err = V2.AppendServer(nil, &raw)
	if err != nil || out[4] != 0 {
		t.Fatalf("raw binary encoding byte: % x %v", out, err)
	}
}

func TestBinaryMeta(t *testing.T) {
	m := Message{Topic: "realtime:r", Event: EventBroadcast, Broadcast: &Broadcast{Event: "e", Payload: []byte(`{}`), Meta: []byte(`{"id":"1"}`)}}
	out, _, err := V2.AppendServer(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := V2.DecodeServer(out, true)
	if err != nil || string(back.Broadcast.Meta) != `{"id":"1"}` {
		t.Fatalf("%+v %v", back.Broadcast, err)
	}
}

func TestBinaryFieldTooLong(t *testing.T) {
	m := Message{Topic: "realtime:" + strings.Repeat("a", 300), Event: EventBroadcast, Broadcast: &Broadcast{Event: "e"}}
	if _, _, err := V2.AppendServer(nil, &m); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := V2.AppendClient(nil, &m); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
}

func TestUserBroadcastText(t *testing.T) {
	m, err := V2.DecodeServer([]byte(`[null,null,"realtime:room1","broadcast",{"payload":{"y":2},"event":"x","type":"broadcast"}]`), false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.UserBroadcast()
	if err != nil || b.Event != "x" || string(b.Payload) != `{"y":2}` {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := ParseBroadcast([]byte(`{"payload":{}}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no event: %v", err)
	}
	if _, err := ParseBroadcast([]byte(`{"event":3}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("numeric event: %v", err)
	}
	// Broadcast.AppendJSON round trip.
	js, err := (&Broadcast{Event: "x", Payload: []byte(`{"y":2}`), Meta: []byte(`{"id":"a"}`)}).AppendJSON(nil)
	if err != nil || string(js) != `{"type":"broadcast","event":"x","payload":{"y":2},"meta":{"id":"a"}}` {
		t.Fatalf("%s %v", js, err)
	}
}

func TestStringEscapes(t *testing.T) {
	topic := "realtime:a\"b\\c\n\x01é\U0001F600"
	m := Message{Ref: "1", Topic: topic, Event: "e", Payload: []byte(`{}`)}
	out, _, _ := V2.AppendClient(nil, &m)
	if !json.Valid(out) {
		t.Fatalf("invalid JSON %s", out)
	}
	back, err := V2.DecodeClient(out, false)
	if err != nil || back.Topic != topic {
		t.Fatalf("got %q %v", back.Topic, err)
	}
	// Escapes in input, including a surrogate pair and a lone surrogate.
	back, err = V2.DecodeClient([]byte(`[null,"1","realtime:\u00e9\ud83d\ude00\ud800x","e",{}]`), false)
	if err != nil || back.Topic != "realtime:é\U0001F600\uFFFDx" {
		t.Fatalf("got %q %v", back.Topic, err)
	}
	// Invalid UTF-8 is replaced, so output stays valid.
	m.Topic = "realtime:\xff"
	out, _, _ = V2.AppendServer(nil, &m)
	if !json.Valid(out) || !strings.Contains(string(out), `\ufffd`) {
		t.Fatalf("got %s", out)
	}
}

func TestExtraTrailingElements(t *testing.T) {
	m, err := V2.DecodeClient([]byte(`["1","2","realtime:a","e",{"k":1},"extra",[1,2]]`), false)
	if err != nil || string(m.Payload) != `{"k":1}` {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestMalformedFrames(t *testing.T) {
	text := []string{
		``, `[`, `{}`, `null`, `"x"`, `[1,2,"t","e",{}]`, `[null,null,3,"e",{}]`, `[null,null,"t",null,{}]`,
		`[null,null,"t","e"]`, `[null,null,"t","e",{]`, `[null,null,"t","e",{}] x`, `[null,null,"t","e",{"a":01}]`,
		`[null,null,"t","e",{"a":"\x"}]`, `[null,null,"t","e",{"a":"` + "\x01" + `"}]`, `[null,null,"t","e",tru]`,
		`[null,null,"t","e",` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `]`,
		`[null,null,"t","e",{"a":1.}]`, `[null,null,"t","e",{"a":-}]`, `[null,null,"t","e",{"a":1e}]`,
	}
	for _, f := range text {
		if _, err := V2.DecodeClient([]byte(f), false); !errors.Is(err, ErrMalformed) {
			t.Errorf("V2 %q: err = %v, want ErrMalformed", f, err)
		}
	}
	v1 := []string{``, `[]`, `{"topic":"t","event":"e"}`, `{"topic":1,"event":"e","payload":{}}`, `{"topic":"t","event":"e","payload":{},"ref":5}`}
	for _, f := range v1 {
		if _, err := V1.DecodeClient([]byte(f), false); !errors.Is(err, ErrMalformed) {
			t.Errorf("V1 %q: err = %v, want ErrMalformed", f, err)
		}
	}
	bin := [][]byte{
		{}, {3}, {3, 1, 1, 1, 1, 0, 1}, {4, 1, 1, 0, 1, 'a'}, {9, 0, 0, 0, 0, 0, 0},
		append([]byte{3, 0, 0, 1, 1, 0, 2}, "te{}"...),       // bad encoding
		append([]byte{3, 0, 0, 1, 1, 0, 1}, "te{"...),        // invalid JSON payload
		append([]byte{3, 0, 0, 1, 1, 2, 1}, "te[]{}"...),     // metadata not an object
		append([]byte{3, 0, 0, 0, 1, 0, 1}, "e{}"...),        // no topic
		append([]byte{4, 1, 1, 0, 1}, "te"...),               // kind 4 to the server
		append([]byte{3, 0, 0, 1, 1, 0, 1, 0, 0}, "te{}"...), // header too long
	}
	for i, f := range bin {
		if _, err := V2.DecodeClient(f, true); !errors.Is(err, ErrMalformed) {
			t.Errorf("binary %d: err = %v, want ErrMalformed", i, err)
		}
	}
	if _, err := V1.DecodeClient([]byte{3}, true); !errors.Is(err, ErrUnsupported) {
		t.Errorf("binary under V1: %v", err)
	}
	if _, err := V2.DecodeServer(append([]byte{3, 0, 0, 1, 1, 0, 1}, "te{}"...), true); !errors.Is(err, ErrMalformed) {
		t.Errorf("kind 3 to a client: %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"": V1, "1.0.0": V1, "1.0.3": V1, "2.0.0": V2, "2.0.12": V2} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"3.0.0", "2.1.0", "2", "2.0", "2.0.x", "abc", "1.0.0.0"} {
		if _, err := ParseVersion(in); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: err = %v", in, err)
		}
	}
	if V2.String() != "2.0.0" || V1.String() != "1.0.0" {
		t.Fatal("String")
	}
}
