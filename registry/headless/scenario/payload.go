package scenario

import (
	"bytes"
	"encoding/json"
	"rtm/registry"
	"strings"
	"unicode/utf8"
)

func payloadList(msgs []registry.MessageEvent, n int) string {
	var parts []string
	for i, m := range msgs {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, clip(string(m.Payload)))
	}
	return strings.Join(parts, ", ")
}

// clip shortens a received payload for a report, its secrets masked.
func clip(s string) string {
	s = registry.MaskText(s)
	if len(s) > 200 {
		n := 200
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n] + "…"
	}
	return s
}

// subset reports whether every member of the object want is in got with
// an equal value (objects compared recursively, other values exactly).
func subset(want, got []byte) bool {
	var w, g any
	if decode(want, &w) != nil || decode(got, &g) != nil {
		return false
	}
	return subsetValue(w, g)
}

func decode(b []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func subsetValue(w, g any) bool {
	switch w := w.(type) {
	case map[string]any:
		gm, ok := g.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			gv, ok := gm[k]
			if !ok || !subsetValue(v, gv) {
				return false
			}
		}
		return true
	case json.Number:
		gn, ok := g.(json.Number)
		if !ok {
			return false
		}
		wf, e1 := w.Float64()
		gf, e2 := gn.Float64()
		return e1 == nil && e2 == nil && wf == gf
	case []any:
		ga, ok := g.([]any)
		if !ok || len(ga) != len(w) {
			return false
		}
		for i := range w {
			if !subsetValue(w[i], ga[i]) {
				return false
			}
		}
		return true
	default:
		return w == g
	}
}

func member(payload []byte, key string) (json.Number, bool) {
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if d.Decode(&obj) != nil {
		return "", false
	}
	n, ok := obj[key].(json.Number)
	return n, ok
}

func less(a, b json.Number) bool {
	af, e1 := a.Float64()
	bf, e2 := b.Float64()
	return e1 == nil && e2 == nil && af < bf
}
