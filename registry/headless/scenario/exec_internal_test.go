package scenario

import (
	"strings"
	"testing"
)

// TestTail: the output kept is the last max bytes, whatever the writes'
// sizes, and a cut start begins after a character no key holds.
func TestTail(t *testing.T) {
	for _, size := range []int{1, 7, 100, 1000, 5000} {
		tl := &tail{max: 1000}
		var all strings.Builder
		for i := 0; all.Len() < 20000; i++ {
			w := strings.Repeat(string(rune('a'+i%26)), size-1) + " "
			all.WriteString(w)
			tl.Write([]byte(w))
			if cap(tl.buf) > 2*tl.max {
				t.Fatalf("size %d: the buffer grew to %d", size, cap(tl.buf))
			}
		}
		got, total := tl.text()
		want := all.String()[all.Len()-1000:]
		want = want[strings.IndexByte(want, ' '):]
		if total != int64(all.Len()) || got != want {
			t.Fatalf("size %d: %d bytes, kept %q, want %q", size, total, got, want)
		}
	}
	tl := &tail{max: 10}
	tl.Write([]byte("short"))
	if got, _ := tl.text(); got != "short" {
		t.Fatalf("uncut output changed: %q", got)
	}
}
