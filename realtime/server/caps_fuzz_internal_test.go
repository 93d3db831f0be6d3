package server

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

func FuzzLongBroadcastEvent(f *testing.F) {
	long := strings.Repeat("e", MaxEventBytes+1)
	for _, s := range []string{
		`{"type":"broadcast","event":"cursor","payload":{}}`,
		`{"type":"broadcast","event":"` + long + `","payload":{}}`,
		`{"event":"` + strings.Repeat(`\u00e9`, 128) + `","payload":{"x":"` + long + `"}}`,
		`{"event":1,"payload":"` + long + `"}`,
		`{"event":"a","event":"` + long + `"}`,
		`{"payload":"` + long + `"}`, `{`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := longBroadcastEvent(data)
		b, err := protocol.ParseBroadcast(data)
		switch {
		case err != nil || len(b.Event) <= MaxEventBytes:
			if n != 0 {
				t.Fatalf("longBroadcastEvent(%q) = %d for event %q (%v)", data, n, b.Event, err)
			}
		case n != len(b.Event):
			t.Fatalf("longBroadcastEvent(%q) = %d, want %d", data, n, len(b.Event))
		}
	})
}

func FuzzClipLog(f *testing.F) {
	for _, s := range []string{"", "short", strings.Repeat("é", 100), strings.Repeat("x", 63) + "\xff\xfe", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := clipLog(s)
		if len(s) <= 64 {
			if out != s {
				t.Fatalf("clipLog(%q) = %q, want it unchanged", s, out)
			}
			return
		}
		if !utf8.ValidString(out) || len(out) > 100 || !strings.HasSuffix(out, fmt.Sprintf("…(%d bytes)", len(s))) {
			t.Fatalf("clipLog(%q) = %q", s, out)
		}
	})
}
