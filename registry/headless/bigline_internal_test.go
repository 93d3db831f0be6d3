package headless

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzWriteJSONString: a string written a chunk at a time is the JSON
// string json.Marshal makes of it, whatever the chunk size cuts.
func FuzzWriteJSONString(f *testing.F) {
	f.Add("plain", uint8(3))
	f.Add("é\u2028<>&\"\\\x00\xff\xfe", uint8(1))
	f.Add("日本語のテキスト", uint8(2))
	f.Fuzz(func(t *testing.T, s string, size uint8) {
		var b bytes.Buffer
		if err := writeJSONStringBy(&b, s, int(size%16)+1); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s)
		if b.String() != string(want) {
			t.Fatalf("%q by %d: %s, want %s", s, int(size%16)+1, b.String(), want)
		}
	})
}
