package realtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"rtm/realtime/protocol"
)

// modelMeta is a meta of the reference model: its phx_ref (absent: "")
// and its object, compacted.
type modelMeta struct {
	ref string
	raw string
}

// presenceModel is phoenix.js Presence (syncState, syncDiff) written
// plainly, with full copies: the reference the in-place implementation
// is checked against.
type presenceModel struct {
	state   map[string][]modelMeta
	synced  bool
	pending []map[string]map[string][]modelMeta // held diffs: "joins", "leaves"
	events  []string
}

func refsOf(ms []modelMeta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ref
	}
	return out
}

func without(ms []modelMeta, refs []string) []modelMeta {
	var out []modelMeta
	for _, m := range ms {
		if !slices.Contains(refs, m.ref) {
			out = append(out, m)
		}
	}
	return out
}

func modelEvent(kind PresenceEventKind, key string, current, changed []modelMeta) string {
	return fmt.Sprintf("%v %s current=%v changed=%v", kind, key, refsOf(current), refsOf(changed))
}

func (m *presenceModel) syncDiff(joins, leaves map[string][]modelMeta) {
	for key, joined := range joins {
		cur, ok := m.state[key]
		next := slices.Clone(joined)
		if ok {
			next = append(without(cur, refsOf(next)), next...)
		}
		m.state[key] = next
		var curp []modelMeta
		if ok {
			curp = cur
		}
		m.events = append(m.events, modelEvent(PresenceJoin, key, curp, joined))
	}
	for key, left := range leaves {
		cur, ok := m.state[key]
		if !ok {
			continue
		}
		remaining := without(cur, refsOf(left))
		m.events = append(m.events, modelEvent(PresenceLeave, key, remaining, left))
		if len(remaining) == 0 {
			delete(m.state, key)
		} else {
			m.state[key] = remaining
		}
	}
}

func (m *presenceModel) syncState(next map[string][]modelMeta) {
	joins, leaves := map[string][]modelMeta{}, map[string][]modelMeta{}
	for key, cur := range m.state {
		if _, ok := next[key]; !ok {
			leaves[key] = cur
		}
	}
	for key, metas := range next {
		cur, ok := m.state[key]
		if !ok {
			joins[key] = metas
			continue
		}
		if j := without(metas, refsOf(cur)); len(j) > 0 {
			joins[key] = j
		}
		if l := without(cur, refsOf(metas)); len(l) > 0 {
			leaves[key] = l
		}
	}
	m.syncDiff(joins, leaves)
	m.synced = true
	for _, d := range m.pending {
		m.syncDiff(d["joins"], d["leaves"])
	}
	m.pending = nil
}

// genMetas returns 0-3 metas from a small universe of refs, so that
// joins, leaves and states overlap often; some have no phx_ref, some a
// phx_ref_prev, and one ref may come with different objects.
func genMetas(r *rand.Rand) ([]modelMeta, string) {
	n := r.IntN(4)
	if r.IntN(8) == 0 {
		n = 0
	}
	var ms []modelMeta
	var parts []string
	for range n {
		obj := map[string]any{"n": r.IntN(3)}
		ref := ""
		if r.IntN(10) != 0 {
			ref = fmt.Sprintf("r%d", r.IntN(6))
			obj["phx_ref"] = ref
		}
		if r.IntN(4) == 0 {
			obj["phx_ref_prev"] = fmt.Sprintf("r%d", r.IntN(6))
		}
		raw, _ := json.Marshal(obj)
		ms = append(ms, modelMeta{ref: ref, raw: string(raw)})
		parts = append(parts, string(raw))
	}
	return ms, `{"metas":[` + strings.Join(parts, ",") + `]}`
}

// genSet returns a key → metas object over keys a-e (each at most once).
func genSet(r *rand.Rand) (map[string][]modelMeta, string) {
	set := map[string][]modelMeta{}
	var parts []string
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if r.IntN(2) == 0 {
			continue
		}
		ms, js := genMetas(r)
		set[k] = ms
		parts = append(parts, fmt.Sprintf("%q:%s", k, js))
	}
	return set, "{" + strings.Join(parts, ",") + "}"
}

// stateOf renders a Presence as the model's state, for comparison.
func stateOf(t *testing.T, p *Presence) map[string][]modelMeta {
	t.Helper()
	out := map[string][]modelMeta{}
	p.Range(func(key string, metas []PresenceMeta) bool {
		ms := []modelMeta{}
		for _, m := range metas {
			var buf bytes.Buffer
			if err := json.Compact(&buf, m.Raw); err != nil {
				t.Fatalf("meta of %q: %v", key, err)
			}
			ms = append(ms, modelMeta{ref: m.Ref, raw: buf.String()})
		}
		out[key] = ms
		return true
	})
	return out
}

func modelState(m *presenceModel) map[string][]modelMeta {
	out := map[string][]modelMeta{}
	for k, ms := range m.state {
		out[k] = append([]modelMeta{}, ms...)
	}
	return out
}

func eventStrings(evs []PresenceEvent) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == PresenceSync {
			continue
		}
		var cur, ch []modelMeta
		for _, m := range e.Current {
			cur = append(cur, modelMeta{ref: m.Ref})
		}
		for _, m := range e.Changed {
			ch = append(ch, modelMeta{ref: m.Ref})
		}
		out = append(out, modelEvent(e.Kind, e.Key, cur, ch))
	}
	slices.Sort(out)
	return out
}

// TestPresenceMatchesModel drives random sequences of presence_state and
// presence_diff payloads (held diffs, resyncs, multi-meta keys, repeated
// and missing refs) through both ways the client applies them, the
// reader's spans (what the read loop uses) and the payload functions,
// and compares the state and the join/leave events with the reference
// model after every frame. The frame bytes are overwritten after each
// apply: the state must not alias them.
func TestPresenceMatchesModel(t *testing.T) {
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 7))
		model := &presenceModel{state: map[string][]modelMeta{}}
		viaSpans, viaPayload := newPresence(), newPresence()
		var ps protocol.PresenceSpans
		var trace []string
		for step := range 30 {
			var payload, event string
			var set map[string][]modelMeta
			var joins, leaves map[string][]modelMeta
			if step == 0 && r.IntN(3) != 0 || r.IntN(6) == 0 {
				event = protocol.EventPresenceState
				set, payload = genSet(r)
			} else {
				event = protocol.EventPresenceDiff
				var js, ls string
				joins, js = genSet(r)
				leaves, ls = genSet(r)
				payload = fmt.Sprintf(`{"joins":%s,"leaves":%s}`, js, ls)
			}
			trace = append(trace, event+" "+payload)
			model.events = nil
			if event == protocol.EventPresenceState {
				model.syncState(set)
			} else if !model.synced {
				model.pending = append(model.pending, map[string]map[string][]modelMeta{"joins": joins, "leaves": leaves})
			} else {
				model.syncDiff(joins, leaves)
			}

			frame := []byte(fmt.Sprintf(`["1",null,"realtime:room1",%q,%s]`, event, payload))
			var f protocol.ServerFrame
			if err := protocol.V2.ScanServerPresence(frame, false, &f, &ps); err != nil || ps.Err != nil {
				t.Fatalf("seed %d: scan %s: %v %v", seed, frame, err, ps.Err)
			}
			var evSpans, evPayload []PresenceEvent
			var err error
			if event == protocol.EventPresenceState {
				evSpans, _, err = viaSpans.applyStateSpans(&ps, "1")
				if err == nil {
					evPayload, err = viaPayload.applyState(f.Payload, "1")
				}
			} else {
				evSpans, _, err = viaSpans.applyDiffSpans(&ps, f.Payload, "1")
				if err == nil {
					evPayload, _, err = viaPayload.applyDiff(f.Payload, "1")
				}
			}
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			releaseSpans(&ps)
			for i := range frame {
				frame[i] = 'X'
			}

			want := modelState(model)
			wantEvents := slices.Clone(model.events)
			slices.Sort(wantEvents)
			for name, got := range map[string]*Presence{"spans": viaSpans, "payload": viaPayload} {
				if g := stateOf(t, got); fmt.Sprint(g) != fmt.Sprint(want) {
					t.Fatalf("seed %d step %d (%s): state\n got %v\nwant %v\ntrace:\n%s", seed, step, name, g, want, strings.Join(trace, "\n"))
				}
			}
			for name, evs := range map[string][]PresenceEvent{"spans": evSpans, "payload": evPayload} {
				if g := eventStrings(evs); fmt.Sprint(g) != fmt.Sprint(wantEvents) {
					t.Fatalf("seed %d step %d (%s): events\n got %q\nwant %q\ntrace:\n%s", seed, step, name, g, wantEvents, strings.Join(trace, "\n"))
				}
			}
		}
	}
}
