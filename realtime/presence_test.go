package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"rtm/realtime/server/servertest"
)

func presenceEvents(evs []Event, kind PresenceEventKind) []*PresenceEvent {
	var out []*PresenceEvent
	for _, e := range evs {
		if e.Type == EventPresence && e.Presence.Kind == kind {
			out = append(out, e.Presence)
		}
	}
	return out
}

func keysOf(p *Presence) string {
	var ks []string
	p.Range(func(k string, _ []PresenceMeta) bool { ks = append(ks, k); return true })
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestPresenceThreeClients(t *testing.T) {
	srv := servertest.New(t)
	names := []string{"alice", "bob", "carol"}
	socks := make([]*Socket, 3)
	chans := make([]*Channel, 3)
	recs := make([]*rec[Event], 3)
	for i, n := range names {
		socks[i] = dial(t, srv, fast)
		chans[i], recs[i] = channel(t, socks[i], "room1", ChannelConfig{Presence: PresenceConfig{Key: n, Enabled: true}})
		if err := chans[i].Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if err := chans[i].Track(ctxT(t), json.RawMessage(fmt.Sprintf(`{"name":%q,"status":"online"}`, n))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range names {
		eventually(t, names[i]+" to see three keys", func() bool { return keysOf(chans[i].Presence()) == "alice,bob,carol" })
		if !chans[i].Presence().Synced() {
			t.Fatalf("%s not synced", names[i])
		}
	}
	// Everyone sees each key with one meta carrying the tracked payload.
	for i := range names {
		for _, n := range names {
			metas := chans[i].Presence().Get(n)
			if len(metas) != 1 || metas[0].Ref == "" || string(metas[0].UserFields()) != fmt.Sprintf(`{"name":%q,"status":"online"}`, n) {
				t.Fatalf("%s sees %s as %+v", names[i], n, metas)
			}
		}
	}
	// alice saw a join event for each key, then syncs.
	evs := recs[0].wait(t, "alice's joins", func(e []Event) bool { return len(presenceEvents(e, PresenceJoin)) >= 3 })
	if len(presenceEvents(evs, PresenceSync)) < 3 {
		t.Fatalf("alice's syncs: %s", describe(evs))
	}

	// bob re-tracks: the update is a leave of the old meta and a join of the
	// new one (phx_ref_prev), in one diff.
	old := chans[0].Presence().Get("bob")[0]
	if err := chans[1].Track(ctxT(t), json.RawMessage(`{"name":"bob","status":"away"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice to see bob away", func() bool {
		m := chans[0].Presence().Get("bob")
		return len(m) == 1 && strings.Contains(string(m[0].Raw), "away")
	})
	nu := chans[0].Presence().Get("bob")[0]
	if nu.Ref == old.Ref || nu.PrevRef != old.Ref {
		t.Fatalf("update refs: old %s new %s prev %s", old.Ref, nu.Ref, nu.PrevRef)
	}
	// The join event of the update carries the old meta as current.
	recs[0].wait(t, "bob's update join", func(e []Event) bool {
		for _, p := range presenceEvents(e, PresenceJoin) {
			if p.Key == "bob" && len(p.Changed) == 1 && p.Changed[0].Ref == nu.Ref {
				return len(p.Current) == 1 && p.Current[0].Ref == old.Ref
			}
		}
		return false
	})

	// carol untracks; bob's socket closes: the others see them leave.
	if err := chans[2].Untrack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	socks[1].Close()
	for _, i := range []int{0, 2} {
		eventually(t, names[i]+" to see only alice", func() bool { return keysOf(chans[i].Presence()) == "alice" })
	}
	recs[0].wait(t, "leave events", func(e []Event) bool {
		left := map[string]bool{}
		for _, p := range presenceEvents(e, PresenceLeave) {
			if len(p.Current) == 0 {
				left[p.Key] = true
			}
		}
		return left["bob"] && left["carol"]
	})
	// A late joiner gets the state in presence_state.
	d := dial(t, srv, fast)
	dch, drec := channel(t, d, "room1", ChannelConfig{Presence: PresenceConfig{Enabled: true}})
	if err := dch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the late joiner's state", func() bool { return keysOf(dch.Presence()) == "alice" })
	drec.wait(t, "the late joiner's join and sync", func(e []Event) bool {
		return len(presenceEvents(e, PresenceJoin)) == 1 && len(presenceEvents(e, PresenceSync)) >= 1
	})
	if err := chans[0].Track(ctxT(t), json.RawMessage(`[1]`)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Track with an array: %v", err)
	}
}

// The phoenix algorithm on hand-made payloads: diffs wait for the state of
// the current join; a new state is synced against the old one.
func TestPresenceSyncAlgorithm(t *testing.T) {
	p := newPresence(PresenceLimits{})
	meta := func(ref string) string { return fmt.Sprintf(`{"phx_ref":%q}`, ref) }
	diff := func(joins, leaves string) []byte {
		return []byte(fmt.Sprintf(`{"joins":{%s},"leaves":{%s}}`, joins, leaves))
	}
	// A diff before any state is held.
	evs, held, err := p.applyDiff(diff(`"b":{"metas":[`+meta("b1")+`]}`, ``), "1")
	if err != nil || !held || len(evs) != 0 || p.Len() != 0 {
		t.Fatalf("early diff: %v %v %v", evs, held, err)
	}
	// The state arrives: a joins, then the held diff adds b, then one sync.
	evs, err = p.applyState([]byte(`{"a":{"metas":[`+meta("a1")+`]}}`), "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].Kind != PresenceJoin || evs[0].Key != "a" || evs[1].Key != "b" || evs[2].Kind != PresenceSync {
		t.Fatalf("state events %+v", evs)
	}
	// Another meta for a: current holds a1, the state a1 then a2.
	evs, _, _ = p.applyDiff(diff(`"a":{"metas":[`+meta("a2")+`]}`, ``), "1")
	if len(evs) != 2 || len(evs[0].Current) != 1 || evs[0].Current[0].Ref != "a1" || len(p.Get("a")) != 2 || p.Get("a")[1].Ref != "a2" {
		t.Fatalf("second meta: %+v, state %+v", evs, p.Get("a"))
	}
	before := p.Get("a")
	// a1 leaves: a keeps a2; the old slice is untouched (immutable).
	evs, _, _ = p.applyDiff(diff(``, `"a":{"metas":[`+meta("a1")+`]}`), "1")
	if len(evs) != 2 || evs[0].Kind != PresenceLeave || len(evs[0].Current) != 1 || evs[0].Current[0].Ref != "a2" || len(before) != 2 || before[0].Ref != "a1" {
		t.Fatalf("leave: %+v", evs)
	}
	// A leave of an unknown key does nothing but sync.
	evs, _, _ = p.applyDiff(diff(``, `"zz":{"metas":[`+meta("z")+`]}`), "1")
	if len(evs) != 1 || evs[0].Kind != PresenceSync {
		t.Fatalf("unknown leave: %+v", evs)
	}
	// Rejoin (join ref 2): diffs are held again until the new state, which
	// is synced against the old one: b left, a2 replaced by a3, c joined.
	p.newJoin()
	if p.Synced() {
		t.Fatal("synced after a new join")
	}
	_, held, _ = p.applyDiff(diff(`"d":{"metas":[`+meta("d1")+`]}`, ``), "2")
	if !held {
		t.Fatal("diff of the new join not held")
	}
	evs, err = p.applyState([]byte(`{"a":{"metas":[`+meta("a3")+`]},"c":{"metas":[`+meta("c1")+`]}}`), "2")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%v:%s", e.Kind, e.Key))
	}
	if want := "join:a join:c leave:b leave:a join:d sync:"; strings.Join(got, " ") != want {
		t.Fatalf("resync events %q, want %q", strings.Join(got, " "), want)
	}
	if keysOf(p) != "a,c,d" || p.Get("a")[0].Ref != "a3" || len(p.Get("a")) != 1 {
		t.Fatalf("state after resync %s %+v", keysOf(p), p.Get("a"))
	}
	// Malformed payloads are refused without touching the state.
	if _, err := p.applyState([]byte(`{"a":1}`), "2"); err == nil {
		t.Fatal("bad state accepted")
	}
	if _, _, err := p.applyDiff([]byte(`null`), "2"); err == nil {
		t.Fatal("null diff accepted")
	}
	if keysOf(p) != "a,c,d" {
		t.Fatalf("state changed by bad input: %s", keysOf(p))
	}
}
