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

// modelFrame is one payload of a random sequence: a presence_state (set)
// or a presence_diff (joins, leaves).
type modelFrame struct {
	event, payload     string
	set, joins, leaves map[string][]modelMeta
}

// genSmallFrame is a frame over keys a-e of 0-3 metas each (genSet).
func genSmallFrame(r *rand.Rand, _ *presenceModel, step int) modelFrame {
	if step == 0 && r.IntN(3) != 0 || r.IntN(6) == 0 {
		set, payload := genSet(r)
		return modelFrame{event: protocol.EventPresenceState, payload: payload, set: set}
	}
	joins, js := genSet(r)
	leaves, ls := genSet(r)
	return modelFrame{event: protocol.EventPresenceDiff, payload: fmt.Sprintf(`{"joins":%s,"leaves":%s}`, js, ls), joins: joins, leaves: leaves}
}

// genBigFrame is a frame over keys a-c that grow beyond indexMin metas
// (joins of up to 14 metas from 60 refs, states rarely): leaves name the
// oldest or newest metas of a key as stored (a run at either end), or
// random refs, so that every way of a join and a leave is taken.
func genBigFrame(r *rand.Rand, m *presenceModel, step int) modelFrame {
	metas := func(n int) ([]modelMeta, string) {
		var ms []modelMeta
		var parts []string
		for range n {
			ref := fmt.Sprintf("r%d", r.IntN(60))
			raw := fmt.Sprintf(`{"n":%d,"phx_ref":%q}`, r.IntN(2), ref)
			if r.IntN(20) == 0 {
				ref, raw = "", fmt.Sprintf(`{"n":%d}`, r.IntN(2))
			}
			ms = append(ms, modelMeta{ref: ref, raw: raw})
			parts = append(parts, raw)
		}
		return ms, `{"metas":[` + strings.Join(parts, ",") + `]}`
	}
	encode := func(ms []modelMeta) string {
		var parts []string
		for _, mm := range ms {
			parts = append(parts, mm.raw)
		}
		return `{"metas":[` + strings.Join(parts, ",") + `]}`
	}
	keys := []string{"a", "b", "c"}
	if step == 0 || r.IntN(25) == 0 {
		set := map[string][]modelMeta{}
		var parts []string
		for _, k := range keys {
			if r.IntN(3) == 0 {
				continue
			}
			ms, js := metas(r.IntN(40))
			set[k] = ms
			parts = append(parts, fmt.Sprintf("%q:%s", k, js))
		}
		return modelFrame{event: protocol.EventPresenceState, payload: "{" + strings.Join(parts, ",") + "}", set: set}
	}
	joins, leaves := map[string][]modelMeta{}, map[string][]modelMeta{}
	var js, ls []string
	for _, k := range keys {
		if r.IntN(2) == 0 {
			ms, j := metas(r.IntN(15))
			joins[k] = ms
			js = append(js, fmt.Sprintf("%q:%s", k, j))
		}
		if r.IntN(2) == 0 {
			cur := m.state[k]
			var ms []modelMeta
			switch n := min(len(cur), 1+r.IntN(12)); r.IntN(3) {
			case 0:
				ms = slices.Clone(cur[:n])
			case 1:
				ms = slices.Clone(cur[len(cur)-n:])
			default:
				ms, _ = metas(r.IntN(12))
			}
			leaves[k] = ms
			ls = append(ls, fmt.Sprintf("%q:%s", k, encode(ms)))
		}
	}
	return modelFrame{event: protocol.EventPresenceDiff, joins: joins, leaves: leaves,
		payload: fmt.Sprintf(`{"joins":{%s},"leaves":{%s}}`, strings.Join(js, ","), strings.Join(ls, ","))}
}

// stateCost recomputes what p counts against MaxBytes, from its state.
func stateCost(p *Presence) int {
	n := 0
	p.Range(func(key string, metas []PresenceMeta) bool {
		n += keyCost(len(key)) + metasCost(metas)
		return true
	})
	return n
}

// refSetsOf returns the distinct refs of each key with metas, sorted. (A
// key without metas is left out: phoenix keeps such a key of a state
// when it was absent and removes it when it was present, so after a
// truncation the state and the model may differ on it.)
func refSetsOf(state map[string][]modelMeta) map[string][]string {
	out := map[string][]string{}
	for k, ms := range state {
		if len(ms) == 0 {
			continue
		}
		refs := refsOf(ms)
		slices.Sort(refs)
		out[k] = slices.Compact(refs)
	}
	return out
}

// runPresenceModel drives seeds random sequences of steps frames from gen
// through both ways the client applies them, the reader's spans (what
// the read loop uses) and the payload functions, into states with the
// limits lim gives, and checks them after every frame against the
// reference model (which has no limits):
//   - the two ways agree exactly (state, events, truncation, bytes), and
//     the bytes counted are those of the state;
//   - while nothing was ever truncated, the state and the join/leave
//     events are the model's;
//   - with truncation, the limits hold (members; metas of a key without
//     repeated refs; bytes, up to what the frame names); the state is a
//     part of the model's (each key and ref of it is in the model),
//     unless held diffs were dropped; and once a presence_state fit
//     (Truncation zero again), it has the model's keys and refs.
//
// The frame bytes are overwritten after each apply: the state must not
// alias them.
func runPresenceModel(t *testing.T, seeds uint64, steps int, lim func(*rand.Rand) PresenceLimits, gen func(*rand.Rand, *presenceModel, int) modelFrame) (truncated int) {
	t.Helper()
	for seed := range seeds {
		r := rand.New(rand.NewPCG(seed, 7))
		l := lim(r)
		model := &presenceModel{state: map[string][]modelMeta{}}
		viaSpans, viaPayload := newPresence(l), newPresence(l)
		var ps protocol.PresenceSpans
		var trace []string
		everTruncated := false
		for step := range steps {
			fr := gen(r, model, step)
			trace = append(trace, fr.event+" "+fr.payload)
			model.events = nil
			if fr.event == protocol.EventPresenceState {
				model.syncState(fr.set)
			} else if !model.synced {
				model.pending = append(model.pending, map[string]map[string][]modelMeta{"joins": fr.joins, "leaves": fr.leaves})
			} else {
				model.syncDiff(fr.joins, fr.leaves)
			}

			frame := []byte(fmt.Sprintf(`["1",null,"realtime:room1",%q,%s]`, fr.event, fr.payload))
			var f protocol.ServerFrame
			if err := protocol.V2.ScanServerPresence(frame, false, &f, &ps); err != nil || ps.Err != nil {
				t.Fatalf("seed %d: scan %s: %v %v", seed, frame, err, ps.Err)
			}
			slack := 0
			for i := range ps.Metas {
				slack += spanCost(&ps.Metas[i])
			}
			var evSpans, evPayload []PresenceEvent
			var err error
			if fr.event == protocol.EventPresenceState {
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
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d step %d (limits %+v): %s\ntrace:\n%s", seed, step, l, fmt.Sprintf(format, args...), strings.Join(trace, "\n"))
			}

			got, other := stateOf(t, viaSpans), stateOf(t, viaPayload)
			if fmt.Sprint(got) != fmt.Sprint(other) || fmt.Sprint(eventStrings(evSpans)) != fmt.Sprint(eventStrings(evPayload)) ||
				viaSpans.Truncation() != viaPayload.Truncation() || viaSpans.Bytes() != viaPayload.Bytes() {
				fail("spans and payload disagree:\n %v %v %+v\n %v %v %+v", got, eventStrings(evSpans), viaSpans.Truncation(),
					other, eventStrings(evPayload), viaPayload.Truncation())
			}
			// The last event of a key has the key's metas as the state does.
			last := map[string]PresenceEvent{}
			for _, e := range evSpans {
				if e.Kind != PresenceSync {
					last[e.Key] = e
				}
			}
			for k, e := range last {
				if g, w := refsOfMetas(e.Metas), refsOfMetas(viaSpans.Get(k)); fmt.Sprint(g) != fmt.Sprint(w) {
					fail("last event %v %s: Metas %v, state %v", e.Kind, k, g, w)
				}
			}
			if b := stateCost(viaSpans); b != viaSpans.Bytes() {
				fail("bytes counted %d, the state's %d", viaSpans.Bytes(), b)
			}
			tr := viaSpans.Truncation()
			want := modelState(model)
			if tr.Truncated() {
				everTruncated = true
				truncated++
			}
			if !everTruncated {
				wantEvents := slices.Clone(model.events)
				slices.Sort(wantEvents)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					fail("state\n got %v\nwant %v", got, want)
				}
				if g := eventStrings(evSpans); fmt.Sprint(g) != fmt.Sprint(wantEvents) {
					fail("events\n got %q\nwant %q", g, wantEvents)
				}
				continue
			}
			if viaSpans.Len() > l.MaxMembers {
				fail("%d members, limit %d", viaSpans.Len(), l.MaxMembers)
			}
			for k, ms := range got {
				refs := refsOf(ms)
				slices.Sort(refs)
				if len(ms) > l.MaxMetas && len(slices.Compact(refs)) == len(ms) {
					fail("key %s has %d metas, limit %d", k, len(ms), l.MaxMetas)
				}
			}
			if b := viaSpans.Bytes(); b > l.MaxBytes+slack {
				fail("%d bytes, limit %d (+%d named by the frame)", b, l.MaxBytes, slack)
			}
			gotRefs, wantRefs := refSetsOf(got), refSetsOf(want)
			switch {
			case !tr.Truncated():
				if fmt.Sprint(gotRefs) != fmt.Sprint(wantRefs) {
					fail("not truncated, but the refs differ from the model's:\n got %v\nwant %v", gotRefs, wantRefs)
				}
			case tr.Diffs == 0:
				for k, refs := range gotRefs {
					w, ok := wantRefs[k]
					if !ok {
						fail("key %s is not in the model's state %v", k, wantRefs)
					}
					for _, ref := range refs {
						if !slices.Contains(w, ref) {
							fail("key %s ref %q is not in the model's %v", k, ref, w)
						}
					}
				}
			}
		}
	}
	return truncated
}

func refsOfMetas(ms []PresenceMeta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Ref
	}
	return out
}

func defaultLimits(*rand.Rand) PresenceLimits { return PresenceLimits{}.normalize() }

// TestPresenceMatchesModel drives random sequences of presence_state and
// presence_diff payloads (held diffs, resyncs, multi-meta keys, repeated
// and missing refs) through the client and compares it with the
// reference model after every frame (see runPresenceModel).
func TestPresenceMatchesModel(t *testing.T) {
	if n := runPresenceModel(t, 400, 30, defaultLimits, genSmallFrame); n != 0 {
		t.Fatalf("truncated %d times under the default limits", n)
	}
}

// TestPresenceMatchesModelBigKeys is the model check on keys of tens of
// metas: the ref index, joins appended in place or replacing metas,
// leaves of runs at either end or in the middle.
func TestPresenceMatchesModelBigKeys(t *testing.T) {
	if n := runPresenceModel(t, 100, 60, defaultLimits, genBigFrame); n != 0 {
		t.Fatalf("truncated %d times under the default limits", n)
	}
}

// TestPresenceLimitsMatchModel is the model check under small limits
// (a few members, metas per key, hundreds of bytes): what is kept
// stays within them and is a part of the model's state, and a state that
// fits makes it whole again.
func TestPresenceLimitsMatchModel(t *testing.T) {
	small := func(r *rand.Rand) PresenceLimits {
		return PresenceLimits{MaxMembers: 1 + r.IntN(4), MaxMetas: 1 + r.IntN(3), MaxBytes: 300 + r.IntN(2000)}
	}
	big := func(r *rand.Rand) PresenceLimits {
		return PresenceLimits{MaxMembers: 1 + r.IntN(3), MaxMetas: 5 + r.IntN(40), MaxBytes: 1000 + r.IntN(8000)}
	}
	if n := runPresenceModel(t, 400, 30, small, genSmallFrame); n == 0 {
		t.Fatal("the small limits never truncated")
	}
	if n := runPresenceModel(t, 100, 60, big, genBigFrame); n == 0 {
		t.Fatal("the limits never truncated big keys")
	}
}
