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
		if j, l, err := SplitPresenceDiff(data); err == nil {
			for _, part := range [][]byte{j, l} {
				if part != nil && !json.Valid(part) {
					t.Fatalf("invalid part %q", part)
				}
			}
		}
	})
}
