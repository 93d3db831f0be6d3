package protocol

import (
	"encoding/json"
	"testing"
)

// frame220 is a ~220 byte V2 broadcast frame, the size used by the
// performance targets.
var frame220 = []byte(`[null,null,"realtime:broadcast:document:789","broadcast",{"type":"broadcast","event":"cursor","payload":{"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"selection":[12,48]}}]`)

func BenchmarkDecodeV2Text(b *testing.B) {
	b.SetBytes(int64(len(frame220)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := V2.DecodeServer(frame220, false)
		if err != nil || m.Event != EventBroadcast {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeV2TextStdlib is the baseline: encoding/json decoding the
// same envelope with the payload kept raw.
func BenchmarkDecodeV2TextStdlib(b *testing.B) {
	b.SetBytes(int64(len(frame220)))
	b.ReportAllocs()
	for b.Loop() {
		var arr [5]json.RawMessage
		if err := json.Unmarshal(frame220, &arr); err != nil {
			b.Fatal(err)
		}
		var topic, event string
		if err := json.Unmarshal(arr[2], &topic); err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(arr[3], &event); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV2TextWithBroadcast(b *testing.B) {
	b.SetBytes(int64(len(frame220)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := V2.DecodeServer(frame220, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.UserBroadcast(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeV2Text(b *testing.B) {
	m, _ := V2.DecodeServer(frame220, false)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = V2.AppendServer(buf[:0], &m)
	}
}
