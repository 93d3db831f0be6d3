package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// presenceFrameSeeds are presence frames for the fuzz targets.
var presenceFrameSeeds = []string{
	`["1",null,"realtime:room1","presence_state",{"a":{"metas":[{"phx_ref":"r1","n":1}]},"b\u00e9":{"metas":[]}}]`,
	`[null,null,"realtime:room1","presence_diff",{"joins":{"b":{"metas":[{"phx_ref":"r2","phx_ref_prev":"r1"}]}},"leaves":{"a":{"metas":[{"phx_ref":"r1"}]}}}]`,
	`[null,null,"realtime:room1","presence_diff",{"joins":{"a":{"metas":1}},"leaves":{}}]`,
	`[null,null,"realtime:room1","presence_diff",[1]]`,
	`{"topic":"realtime:room1","event":"presence_diff","payload":{"joins":{},"leaves":{"a":{"metas":[{"phx_ref":"x"}]}}},"ref":null}`,
}

// checkScanServerPresence asserts that ScanServerPresence accepts what
// ScanServer accepts (errScan, f), with the same frame, and reads a
// presence payload as the standalone span scanners do.
func checkScanServerPresence(t *testing.T, v Version, data []byte, binary bool, f *ServerFrame, errScan error) {
	t.Helper()
	var ps PresenceSpans
	// Leftovers of an earlier scan must not survive.
	var prev ServerFrame
	_ = V2.ScanServerPresence([]byte(presenceFrameSeeds[1]), false, &prev, &ps)
	var g ServerFrame
	err := v.ScanServerPresence(data, binary, &g, &ps)
	if (err == nil) != (errScan == nil) || (err != nil && err.Error() != errScan.Error()) {
		t.Fatalf("%s %q: ScanServerPresence err %v, ScanServer err %v", v, data, err, errScan)
	}
	if err != nil {
		if len(ps.Entries) != 0 || len(ps.Metas) != 0 || ps.Err != nil {
			t.Fatalf("%q: spans left after an error: %+v", data, ps)
		}
		return
	}
	if !reflect.DeepEqual(g, *f) {
		t.Fatalf("%q: frame %+v, ScanServer %+v", data, g, *f)
	}
	var want PresenceSpans
	var werr error
	switch g.Event {
	case EventPresenceDiff:
		werr = ScanPresenceDiffSpans(g.Payload, &want)
	case EventPresenceState:
		werr = ScanPresenceStateSpans(g.Payload, &want)
	}
	if (werr == nil) != (ps.Err == nil) || (werr != nil && !errors.Is(ps.Err, ErrMalformed)) {
		t.Fatalf("%q: presence error %v, standalone %v", data, ps.Err, werr)
	}
	if !sameSpans(&ps, &want) {
		t.Fatalf("%q: spans %+v, standalone %+v", data, ps, want)
	}
}

func sameSpans(a, b *PresenceSpans) bool {
	if len(a.Entries) != len(b.Entries) || len(a.Metas) != len(b.Metas) {
		return false
	}
	for i := range a.Entries {
		x, y := a.Entries[i], b.Entries[i]
		if !bytes.Equal(x.Key, y.Key) || x.Leave != y.Leave || x.First != y.First || x.N != y.N {
			return false
		}
	}
	for i := range a.Metas {
		x, y := a.Metas[i], b.Metas[i]
		if !bytes.Equal(x.Raw, y.Raw) || !bytes.Equal(x.Ref, y.Ref) || !bytes.Equal(x.PrevRef, y.PrevRef) ||
			(x.Ref == nil) != (y.Ref == nil) || (x.PrevRef == nil) != (y.PrevRef == nil) {
			return false
		}
	}
	return true
}

// spansString renders spans as key:leave[ref/prev raw,...] lines.
func spansString(ps *PresenceSpans) string {
	var b bytes.Buffer
	for i := range ps.Entries {
		e := &ps.Entries[i]
		fmt.Fprintf(&b, "%s:%v[", e.Key, e.Leave)
		for _, m := range ps.MetasOf(e) {
			fmt.Fprintf(&b, "%s/%s %s,", m.Ref, m.PrevRef, m.Raw)
		}
		b.WriteString("] ")
	}
	return b.String()
}

func TestScanPresenceSpans(t *testing.T) {
	var ps PresenceSpans
	diff := []byte(`{"leaves":{"a":{"metas":[{"phx_ref":"r\u0031","x":1}]}},"joins":{"b\u00e9":{"metas":[{"phx_ref":"0"}],"x":{},"metas":[{"phx_ref_prev":"1","phx_ref":"2"},{}]}},"joins":null,"x":[1]}`)
	if err := ScanPresenceDiffSpans(diff, &ps); err != nil {
		t.Fatal(err)
	}
	want := `a:true[r1/ {"phx_ref":"r\u0031","x":1},] bé:false[2/1 {"phx_ref_prev":"1","phx_ref":"2"},/ {},] `
	if got := spansString(&ps); got != want {
		t.Fatalf("spans\n%s\nwant\n%s", got, want)
	}
	if ps.Metas[2].Ref != nil || ps.Metas[1].Ref == nil {
		t.Fatalf("absent ref must be nil, present one not: %+v", ps.Metas)
	}
	// Slices are capacity-limited: appending cannot overwrite the payload.
	before := string(diff)
	m := ps.MetasOf(&ps.Entries[1])
	_ = append(m, PresenceMetaSpan{})
	_ = append(m[0].Raw, 'X')
	if string(diff) != before || ps.Metas[len(ps.Metas)-1].Raw == nil {
		t.Fatal("append through a span changed the payload or the spans")
	}
	if c := m[0].Meta(); c.Ref != "2" || c.PrevRef != "1" || string(c.Raw) != `{"phx_ref_prev":"1","phx_ref":"2"}` || &c.Raw[0] == &m[0].Raw[0] {
		t.Fatalf("Meta() = %+v", c)
	}
	// A state, reusing ps: nothing of the diff is left.
	if err := ScanPresenceStateSpans([]byte(` {"c":{"metas":[{"phx_ref":null}]}} `), &ps); err != nil {
		t.Fatal(err)
	}
	if got := spansString(&ps); got != `c:false[/ {"phx_ref":null},] ` || ps.Metas[0].Ref != nil {
		t.Fatalf("state spans %q", got)
	}
	// Malformed payloads leave nothing.
	for _, bad := range []string{`null`, `{"joins":1}`, `{"joins":{"a":{"metas":[1]}}}`, `{"leaves":{"a":{"metas":[{"phx_ref":2}]}}}`, `{} x`, `{"joins":{}`, `{"joins":{"a":{"metas":[{"phx_ref":"1"},]}}}`} {
		if err := ScanPresenceDiffSpans([]byte(bad), &ps); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v", bad, err)
		}
		if len(ps.Entries) != 0 || len(ps.Metas) != 0 {
			t.Errorf("%s: spans left %+v", bad, ps)
		}
	}
	// Reused, a scan of unescaped bytes allocates nothing.
	frame := []byte(presenceFrameSeeds[1])
	var f ServerFrame
	if n := testing.AllocsPerRun(100, func() {
		if err := V2.ScanServerPresence(frame, false, &f, &ps); err != nil || len(ps.Entries) != 2 {
			t.Fatal(err, ps)
		}
	}); n != 0 {
		t.Fatalf("ScanServerPresence allocates %v times per frame", n)
	}
}

func TestScanServerPresence(t *testing.T) {
	var ps PresenceSpans
	var f ServerFrame
	// A diff frame: the spans alias the frame.
	frame := []byte(presenceFrameSeeds[1])
	if err := V2.ScanServerPresence(frame, false, &f, &ps); err != nil || ps.Err != nil {
		t.Fatal(err, ps.Err)
	}
	if got := spansString(&ps); got != `b:false[r2/r1 {"phx_ref":"r2","phx_ref_prev":"r1"},] a:true[r1/ {"phx_ref":"r1"},] ` {
		t.Fatalf("spans %q", got)
	}
	if &ps.Metas[0].Raw[0] != &frame[bytes.Index(frame, []byte(`{"phx_ref":"r2"`))] {
		t.Fatal("Raw does not alias the frame")
	}
	// Valid JSON that is no presence payload: the frame is fine, ps.Err
	// says why.
	for _, s := range []string{presenceFrameSeeds[2], presenceFrameSeeds[3], `[null,null,"t","presence_state",{"a":{"metas":[{"phx_ref":1}]}}]`} {
		if err := V2.ScanServerPresence([]byte(s), false, &f, &ps); err != nil || !errors.Is(ps.Err, ErrMalformed) || len(ps.Entries) != 0 {
			t.Fatalf("%s: err %v, presence err %v, %+v", s, err, ps.Err, ps)
		}
	}
	// Invalid JSON in a presence payload fails the frame.
	for _, s := range []string{`[null,null,"t","presence_diff",{"joins":{"a":{"metas":[}}]`, `[null,null,"t","presence_diff",{"joins":{}} x]`, `[null,null,"t","presence_state",{"a":{"metas":[]}},]`} {
		if err := V2.ScanServerPresence([]byte(s), false, &f, &ps); err == nil || len(ps.Entries) != 0 {
			t.Fatalf("%s accepted", s)
		}
	}
	// Other frames leave ps empty; V1 frames are read too.
	for _, s := range []string{`[null,null,"t","broadcast",{"event":"x","payload":{"joins":{}}}]`, `[null,null,"t","presence",{"a":{"metas":[]}}]`} {
		if err := V2.ScanServerPresence([]byte(s), false, &f, &ps); err != nil || len(ps.Entries) != 0 || ps.Err != nil {
			t.Fatalf("%s: %v %+v", s, err, ps)
		}
	}
	if err := V1.ScanServerPresence([]byte(presenceFrameSeeds[4]), false, &f, &ps); err != nil || spansString(&ps) != `a:true[x/ {"phx_ref":"x"},] ` {
		t.Fatalf("V1: %v %q", err, spansString(&ps))
	}
	bin := append([]byte{0x04, 0x01, 0x0d, 0x00, 0x01}, `tpresence_diff{}`...)
	if err := V2.ScanServerPresence(bin, true, &f, &ps); err != nil || len(ps.Entries) != 0 || ps.Err != nil {
		t.Fatalf("binary: %v %+v", err, ps)
	}
}

func BenchmarkScanServerPresenceDiff(b *testing.B) {
	frame := []byte(`[null,null,"realtime:broadcast:document:789","presence_diff",{"joins":{"newcomer":{"metas":[{"phx_ref":"N1","user_id":"newcomer","name":"New user","status":"online","online_at":1764150000000}]}},"leaves":{}}]`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var f ServerFrame
	var ps PresenceSpans
	for b.Loop() {
		if err := V2.ScanServerPresence(frame, false, &f, &ps); err != nil || len(ps.Entries) != 1 {
			b.Fatal(err)
		}
	}
}
