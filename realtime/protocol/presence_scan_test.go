package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

type scannedEntry struct {
	key   string
	metas []PresenceMeta
}

func scanAll(data []byte) ([]scannedEntry, error) {
	var out []scannedEntry
	err := ScanPresenceState(data, func(key string, metas []PresenceMeta) error {
		out = append(out, scannedEntry{key, metas})
		return nil
	})
	return out, err
}

func TestScanPresenceState(t *testing.T) {
	data := []byte(` {"b":{"metas":[{"phx_ref":"r1","name":"x"},{"phx_ref_prev":"r1","phx_ref":"r2"}]}, "a\u00e9":{"x":1,"metas":[]}, "c":{} } `)
	got, err := scanAll(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].key != "b" || got[1].key != "aé" || got[2].key != "c" {
		t.Fatalf("keys in order: %+v", got)
	}
	m := got[0].metas
	if len(m) != 2 || m[0].Ref != "r1" || string(m[0].Raw) != `{"phx_ref":"r1","name":"x"}` || m[1].Ref != "r2" || m[1].PrevRef != "r1" {
		t.Fatalf("metas %+v", m)
	}
	if len(got[1].metas) != 0 || len(got[2].metas) != 0 {
		t.Fatalf("empty metas: %+v", got)
	}
	for _, bad := range []string{``, `[]`, `{"a":1}`, `{"a":{"metas":{}}}`, `{"a":{"metas":[1]}}`, `{"a":{"metas":[{"phx_ref":1}]}}`, `{"a":{"metas":[{}]} x`, `{"a":{"metas":[{},]}}`} {
		if _, err := scanAll([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	stop := fmt.Errorf("stop")
	if err := ScanPresenceState(data, func(string, []PresenceMeta) error { return stop }); err != stop {
		t.Fatalf("fn error not returned: %v", err)
	}
}

func TestSplitPresenceDiff(t *testing.T) {
	j, l, err := SplitPresenceDiff([]byte(`{"leaves":{"a":{"metas":[]}},"joins":{}}`))
	if err != nil || string(j) != `{}` || string(l) != `{"a":{"metas":[]}}` {
		t.Fatalf("%q %q %v", j, l, err)
	}
	j, l, err = SplitPresenceDiff([]byte(`{"joins":null}`))
	if err != nil || j != nil || l != nil {
		t.Fatalf("%q %q %v", j, l, err)
	}
	for _, bad := range []string{`null`, `{"joins":}`, `{} {}`} {
		if _, _, err := SplitPresenceDiff([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// checkDiffMatchesSplit asserts that ScanPresenceDiff reads exactly what
// SplitPresenceDiff and ScanPresenceState read.
func checkDiffMatchesSplit(t *testing.T, data []byte) {
	t.Helper()
	var gotJ, gotL []scannedEntry
	errDiff := ScanPresenceDiff(data,
		func(k string, m []PresenceMeta) error { gotJ = append(gotJ, scannedEntry{k, m}); return nil },
		func(k string, m []PresenceMeta) error { gotL = append(gotL, scannedEntry{k, m}); return nil })
	j, l, err := SplitPresenceDiff(data)
	var wantJ, wantL []scannedEntry
	if err == nil && j != nil {
		wantJ, err = scanAll(j)
	}
	if err == nil && l != nil {
		wantL, err = scanAll(l)
	}
	if errDiff != nil {
		return // stricter (nesting) is fine
	}
	if err != nil {
		t.Fatalf("%q: ScanPresenceDiff accepted what Split+Scan refuse: %v", data, err)
	}
	// Split keeps the last "joins"/"leaves"; the one-pass scan reports all.
	last := func(all []scannedEntry, part []byte) []scannedEntry {
		if part == nil {
			return nil
		}
		n := 0
		_ = ScanPresenceState(part, func(string, []PresenceMeta) error { n++; return nil })
		return all[len(all)-n:]
	}
	for _, c := range []struct {
		got, want []scannedEntry
		part      []byte
	}{{gotJ, wantJ, j}, {gotL, wantL, l}} {
		g := last(c.got, c.part)
		if len(g) != len(c.want) {
			t.Fatalf("%q: %d entries, want %d", data, len(g), len(c.want))
		}
		for i := range g {
			if g[i].key != c.want[i].key || len(g[i].metas) != len(c.want[i].metas) {
				t.Fatalf("%q: entry %d %+v want %+v", data, i, g[i], c.want[i])
			}
			for k := range g[i].metas {
				if g[i].metas[k].Ref != c.want[i].metas[k].Ref || !bytes.Equal(g[i].metas[k].Raw, c.want[i].metas[k].Raw) {
					t.Fatalf("%q: meta differs", data)
				}
			}
		}
	}
}

func TestScanPresenceDiff(t *testing.T) {
	for _, d := range []string{
		`{"joins":{"a":{"metas":[{"phx_ref":"1"}]}},"leaves":{"b":{"metas":[{"phx_ref":"2","x":[1,{"y":null}]}]}}}`,
		`{"leaves":{},"joins":null,"other":[1]}`, `{}`, `{"joins":{"a":{"metas":[]}},"joins":{"b":{"metas":[]}}}`,
	} {
		checkDiffMatchesSplit(t, []byte(d))
		if err := ScanPresenceDiff([]byte(d), func(string, []PresenceMeta) error { return nil }, func(string, []PresenceMeta) error { return nil }); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	for _, bad := range []string{`null`, `{"joins":1}`, `{"joins":{"a":{"metas":[1]}}}`, `{"leaves":{"a":{"metas":[{"phx_ref":2}]}}}`, `{} x`, `{"joins":{}`} {
		if err := ScanPresenceDiff([]byte(bad), func(string, []PresenceMeta) error { return nil }, func(string, []PresenceMeta) error { return nil }); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func BenchmarkScanPresenceState10k(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := range 10000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"user-%d":{"metas":[{"phx_ref":"F%08d","user_id":"user-%d","name":"User %d","status":"online","online_at":"2026-11-26T09:00:00Z"}]}`, i, i, i, i)
	}
	sb.WriteByte('}')
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := ScanPresenceState(data, func(string, []PresenceMeta) error { n++; return nil }); err != nil || n != 10000 {
			b.Fatal(err, n)
		}
	}
}

func FuzzScanPresenceState(f *testing.F) {
	f.Add([]byte(`{"b":{"metas":[{"phx_ref":"r1","name":"x"},{"phx_ref_prev":"r1","phx_ref":"r2"}]},"a":{"metas":[]}}`))
	f.Add([]byte(`{"joins":{"a":{"metas":[{"phx_ref":"1"}]}},"leaves":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := scanAll(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		// Same content as encoding/json reading the object with exact
		// (case-sensitive) member names, as JavaScript does. Keys may
		// repeat in JSON; the map keeps the last.
		var raw map[string]map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("encoding/json refused %q: %v", data, err)
		}
		last := map[string][]PresenceMeta{}
		for _, e := range got {
			last[e.key] = e.metas
		}
		if len(last) != len(raw) {
			t.Fatalf("%q: %d keys, encoding/json %d", data, len(last), len(raw))
		}
		for k, entry := range raw {
			var w []PresenceMeta
			if m, ok := entry["metas"]; ok {
				if err := json.Unmarshal(m, &w); err != nil {
					t.Fatalf("%q key %q: encoding/json: %v", data, k, err)
				}
			}
			g := last[k]
			if len(g) != len(w) {
				t.Fatalf("%q key %q: %d metas, want %d", data, k, len(g), len(w))
			}
			for i := range g {
				if g[i].Ref != w[i].Ref || g[i].PrevRef != w[i].PrevRef || !bytes.Equal(g[i].Raw, w[i].Raw) {
					t.Fatalf("%q key %q meta %d: %+v want %+v", data, k, i, g[i], w[i])
				}
			}
		}
		checkDiffMatchesSplit(t, data)
	})
}
