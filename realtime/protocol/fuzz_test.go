package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkRoundTrip re-encodes a decoded message and decodes it again: the
// result must equal the first decode, and text output must be valid JSON.
func checkRoundTrip(t *testing.T, v Version, m Message, fromClient bool) {
	t.Helper()
	var out []byte
	var bin bool
	var err error
	if fromClient {
		out, bin, err = v.AppendClient(nil, &m)
	} else {
		out, bin, err = v.AppendServer(nil, &m)
	}
	if err != nil {
		return // e.g. a raw binary broadcast under V1
	}
	if !bin && !json.Valid(out) {
		t.Fatalf("encoded invalid JSON: %q", out)
	}
	var back Message
	if fromClient {
		back, err = v.DecodeClient(out, bin)
	} else {
		back, err = v.DecodeServer(out, bin)
	}
	if err != nil {
		t.Fatalf("re-decode of %q: %v", out, err)
	}
	if back.Topic != m.Topic || back.Event != m.Event || back.Ref != m.Ref {
		t.Fatalf("round trip changed the envelope: %+v -> %+v", m, back)
	}
	if back.Binary != m.Binary || !bytes.Equal(back.Raw, m.Raw) {
		t.Fatalf("round trip changed the binary payload: %+v -> %+v", m, back)
	}
	if m.Broadcast == nil && !bytes.Equal(back.Payload, m.Payload) && len(m.Payload) > 0 {
		t.Fatalf("round trip changed the payload: %q -> %q", m.Payload, back.Payload)
	}
}

func addTextSeeds(f *testing.F) {
	for _, s := range []string{
		observedJoin, observedV1,
		`[null,"7","phoenix","heartbeat",{}]`,
		`[null,null,"realtime:room1","broadcast",{"payload":{"y":2},"event":"x","type":"broadcast"}]`,
		`["1","2","realtime:r","presence",{"type":"presence","event":"track","payload":{"s":"\u00e9"}}]`,
		`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}`,
		`[`, `{}`, `[null,null,"t","e",{"a":[1,2,{"b":null}]}, 5]`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzDecodeV2Text(f *testing.F) {
	addTextSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := V2.DecodeClient(data, false)
		if err != nil {
			return
		}
		if !json.Valid(m.Payload) {
			t.Fatalf("accepted invalid payload %q", m.Payload)
		}
		checkRoundTrip(t, V2, m, true)
		checkRoundTrip(t, V2, m, false)
	})
}

func FuzzDecodeV1Text(f *testing.F) {
	addTextSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := V1.DecodeClient(data, false)
		if err != nil {
			return
		}
		if !json.Valid(m.Payload) {
			t.Fatalf("accepted invalid payload %q", m.Payload)
		}
		checkRoundTrip(t, V1, m, true)
	})
}

func FuzzDecodeV2Binary(f *testing.F) {
	f.Add(append([]byte{0x03, 0x01, 0x01, 0x0e, 0x06, 0x00, 0x01}, `67realtime:room1cursor{"x":1,"s":"é"}`...))
	f.Add(append([]byte{0x04, 0x0e, 0x06, 0x00, 0x01}, `realtime:room1cursor{"x":1}`...))
	f.Add(append([]byte{0x04, 0x01, 0x01, 0x0a, 0x00}, `te{"id":"1"}`...))
	f.Add([]byte{3, 255, 255, 255, 255, 255, 1})
	f.Add(append([]byte{0x00, 0x01, 0x01, 0x0e, 0x09}, "12realtime:room1broadcast\x00\xff"...))
	f.Add(append([]byte{0x02, 0x0e, 0x09}, "realtime:room1broadcast\x00\xff"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := V2.DecodeClient(data, true); err == nil {
			if m.Binary {
				if m.Broadcast != nil || m.Payload != nil || data[0] != KindPush {
					t.Fatalf("Phoenix push decoded as %+v", m)
				}
				if !bytes.Equal(m.Raw, data[5+len(m.JoinRef)+len(m.Ref)+len(m.Topic)+len(m.Event):]) {
					t.Fatalf("Phoenix push payload %q of %q", m.Raw, data)
				}
			} else if m.Broadcast == nil || m.Event != EventBroadcast {
				t.Fatalf("binary push decoded without broadcast: %+v", m)
			}
			checkRoundTrip(t, V2, m, true)
			checkRoundTrip(t, V1, m, false) // V1 conversion must stay valid JSON
		}
		if m, err := V2.DecodeServer(data, true); err == nil {
			if m.Broadcast == nil && !m.Binary {
				t.Fatalf("binary broadcast decoded without broadcast: %+v", m)
			}
			checkRoundTrip(t, V2, m, false)
			checkScanMatchesDecode(t, V2, data, true)
		}
	})
}

func FuzzParseBroadcast(f *testing.F) {
	f.Add([]byte(`{"type":"broadcast","event":"x","payload":{"y":2},"meta":{"id":"1"}}`))
	f.Add([]byte(`{"event":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBroadcast(data)
		if err != nil {
			return
		}
		out, err := b.AppendJSON(nil)
		if err != nil || !json.Valid(out) {
			t.Fatalf("AppendJSON of %q gave %q, %v", data, out, err)
		}
	})
}

func FuzzPresenceMeta(f *testing.F) {
	f.Add([]byte(`{"status":"online","phx_ref":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := NewPresenceMeta(data, "R", "P")
		if err != nil {
			return
		}
		if !json.Valid(m.Raw) {
			t.Fatalf("invalid meta %q from %q", m.Raw, data)
		}
		var back PresenceMeta
		if err := json.Unmarshal(m.Raw, &back); err != nil || back.Ref != "R" || back.PrevRef != "P" {
			t.Fatalf("meta %q: %+v %v", m.Raw, back, err)
		}
		if !json.Valid(back.UserFields()) {
			t.Fatalf("user fields invalid %q", back.UserFields())
		}
	})
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{}`, `[1,"a",null]`, `-1.5e3`, `"\ud800"`, `{"a":}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if Valid(data) && !json.Valid(data) {
			t.Fatalf("Valid accepted %q that encoding/json rejects", data)
		}
	})
}

func FuzzSetMember(f *testing.F) {
	f.Add([]byte(`{"event":"INSERT","schema":"public","table":"todos"}`), []byte(`31`))
	f.Add([]byte(`{"id":1}`), []byte(`"x"`))
	f.Add([]byte(`[`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, obj, val []byte) {
		out, err := SetMember(obj, "id", val)
		if err != nil {
			return
		}
		if !IsObject(out) {
			t.Fatalf("SetMember(%q, %q) = %q, not an object", obj, val, out)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("SetMember output %q: %v", out, err)
		}
		if !json.Valid(m["id"]) {
			t.Fatalf("SetMember output %q lost the member", out)
		}
	})
}
