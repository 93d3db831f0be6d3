package conformance

import (
	"encoding/json"
	"regexp"
	"testing"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

// presenceCallback is the argument of a presence callback.
type presenceCallback struct {
	Event            string               `json:"event"`
	Key              string               `json:"key"`
	CurrentPresences []jsharness.Presence `json:"currentPresences"`
	NewPresences     []jsharness.Presence `json:"newPresences"`
	LeftPresences    []jsharness.Presence `json:"leftPresences"`
}

// presenceEvents returns the presence callbacks of ch after mark.
func presenceEvents(t *testing.T, d *jsharness.Driver, ch *jsharness.Channel, after int) []presenceCallback {
	t.Helper()
	var out []presenceCallback
	for _, ev := range d.Events(match{Kind: kPresence, Client: ch.Client.Name, Channel: ch.Name, After: after}) {
		var p presenceCallback
		if err := ev.Decode(&p); err != nil {
			t.Fatalf("presence callback %s: %v", ev.Payload, err)
		}
		out = append(out, p)
	}
	return out
}

// diffOf waits for the next presence_diff frame of client after mark.
func (e *env) diffOf(client string, after int) (jsharness.Event, protocol.PresenceDiff) {
	e.t.Helper()
	ev, m := e.frame(quick, match{Client: client, Dir: "in", Event: protocol.EventPresenceDiff, After: after})
	if m.JoinRef != "" || m.Ref != "" {
		e.t.Errorf("presence_diff with refs %q %q, want null null: %s", m.JoinRef, m.Ref, ev)
	}
	var diff protocol.PresenceDiff
	if err := json.Unmarshal(m.Payload, &diff); err != nil {
		e.t.Fatalf("presence_diff %s: %v", m.Payload, err)
	}
	return ev, diff
}

// wantPresenceState fails unless ch.presenceState() is want (JSON).
func wantPresenceState(t *testing.T, ch *jsharness.Channel, want string) {
	t.Helper()
	got, err := json.Marshal(ch.PresenceState(t))
	if err != nil {
		t.Fatal(err)
	}
	wantJSON(t, "presenceState() of "+ch.Client.Name, got, want)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Scenario 6: presence state, track, update, untrack and leave on close.
func TestS06Presence(t *testing.T) {
	e := newEnv(t)
	topic := "realtime:room1"
	ca := e.client("a", jsharness.ClientOptions{})
	a := ca.Channel(t, "room", "room1", map[string]any{"presence": map[string]any{"key": "alice"}}).
		On(t, "presence", map[string]any{"event": "*"})
	cb := e.client("b", jsharness.ClientOptions{})
	b := cb.Channel(t, "room", "room1", nil).On(t, "presence", map[string]any{"event": "*"})

	for _, ch := range []*jsharness.Channel{a, b} {
		mark := e.d.Mark()
		j := e.subscribe(ch)
		join, _ := e.frame(quick, match{Client: ch.Client.Name, Dir: "out", Event: protocol.EventJoin, After: mark})
		jm, _ := join.Message()
		var jp protocol.JoinPayload
		if err := json.Unmarshal(jm.Payload, &jp); err != nil || !bool(jp.Config.Presence.Enabled) {
			t.Errorf("join of %s does not enable presence: %s", ch.Client.Name, jm.Payload)
		}
		reply, _ := e.frame(quick, match{Client: ch.Client.Name, Dir: "in", Where: isMsg(protocol.EventReply, j), After: mark})
		next, _ := e.frame(quick, match{Client: ch.Client.Name, Dir: "in", Topic: topic, After: reply.Seq})
		wantText(t, next, `[`+q(j)+`,null,"realtime:room1","presence_state",{}]`)
		ch.Await(t, quick, match{Kind: kPresence, Event: "sync", After: mark})
	}

	// A tracks: ok reply, then a diff to both.
	mark := e.d.Mark()
	ja := *a.Info(t).JoinRef
	if res := a.Track(t, map[string]any{"status": "online"}); res != "ok" {
		t.Errorf("track: %s", res)
	}
	push, pm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventPresence, After: mark})
	wantText(t, push, `[`+q(ja)+`,`+q(pm.Ref)+`,"realtime:room1","presence",{"type":"presence","event":"track","payload":{"status":"online"}}]`)
	reply, _ := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, pm.Ref), After: mark})
	wantText(t, reply, `[`+q(ja)+`,`+q(pm.Ref)+`,"realtime:room1","phx_reply",{"status":"ok","response":{}}]`)
	var ref1 string
	for _, cl := range []string{"a", "b"} {
		ev, diff := e.diffOf(cl, mark)
		metas := diff.Joins["alice"].Metas
		if len(diff.Joins) != 1 || len(metas) != 1 || len(diff.Leaves) != 0 || metas[0].Ref == "" {
			t.Fatalf("%s: diff %s", cl, ev.Text)
		}
		if ref1 == "" {
			ref1 = metas[0].Ref
		}
		m, _ := ev.Message()
		wantJSON(t, cl+" presence_diff", m.Payload, `{"joins":{"alice":{"metas":[{"status":"online","phx_ref":`+q(ref1)+`}]}},"leaves":{}}`)
	}
	for _, ch := range []*jsharness.Channel{a, b} {
		ch.Await(t, quick, match{Kind: kPresence, Event: "sync", After: mark})
		evs := presenceEvents(t, e.d, ch, mark)
		if len(evs) != 2 || evs[0].Event != "join" || evs[1].Event != "sync" {
			t.Fatalf("%s: presence callbacks %+v, want join then sync", ch.Client.Name, evs)
		}
		j := evs[0]
		if j.Key != "alice" || len(j.CurrentPresences) != 0 || len(j.NewPresences) != 1 ||
			j.NewPresences[0].Ref() != ref1 || j.NewPresences[0]["status"] != "online" || len(j.NewPresences[0]) != 2 {
			t.Errorf("%s: join callback %+v", ch.Client.Name, j)
		}
		wantPresenceState(t, ch, `{"alice":[{"status":"online","presence_ref":`+q(ref1)+`}]}`)
	}

	// A tracks a new meta: the diff replaces the old meta.
	mark = e.d.Mark()
	if res := a.Track(t, map[string]any{"status": "away"}); res != "ok" {
		t.Errorf("re-track: %s", res)
	}
	ev, diff := e.diffOf("b", mark)
	joins, leaves := diff.Joins["alice"].Metas, diff.Leaves["alice"].Metas
	if len(joins) != 1 || len(leaves) != 1 || joins[0].Ref == ref1 || joins[0].PrevRef != ref1 || leaves[0].Ref != ref1 {
		t.Fatalf("update diff %s", ev.Text)
	}
	ref2 := joins[0].Ref
	m, _ := ev.Message()
	wantJSON(t, "update diff", m.Payload, `{"joins":{"alice":{"metas":[{"status":"away","phx_ref":`+q(ref2)+`,"phx_ref_prev":`+q(ref1)+`}]}},"leaves":{"alice":{"metas":[{"status":"online","phx_ref":`+q(ref1)+`}]}}}`)
	b.Await(t, quick, match{Kind: kPresence, Event: "sync", After: mark})
	evs := presenceEvents(t, e.d, b, mark)
	if len(evs) != 3 || evs[0].Event != "join" || evs[1].Event != "leave" || evs[2].Event != "sync" ||
		evs[0].NewPresences[0].Ref() != ref2 || evs[1].LeftPresences[0].Ref() != ref1 {
		t.Errorf("update callbacks %+v, want join(new) leave(old) sync", evs)
	}
	wantPresenceState(t, b, `{"alice":[{"status":"away","presence_ref":`+q(ref2)+`}]}`)

	// B tracks without a key: the server assigns one.
	mark = e.d.Mark()
	if res := b.Track(t, map[string]any{"status": "b"}); res != "ok" {
		t.Errorf("B track: %s", res)
	}
	_, diff = e.diffOf("a", mark)
	var keyB string
	for k := range diff.Joins {
		keyB = k
	}
	if len(diff.Joins) != 1 || !uuidRE.MatchString(keyB) {
		t.Errorf("server-assigned key %q, want a UUID", keyB)
	}
	a.Await(t, quick, match{Kind: kPresence, Event: "sync", After: mark})
	if st := a.PresenceState(t); len(st) != 2 || len(st[keyB]) != 1 || st[keyB][0]["status"] != "b" {
		t.Errorf("A's presenceState %v", st)
	}

	// A untracks: B sees alice leave.
	mark = e.d.Mark()
	if res := a.Untrack(t); res != "ok" {
		t.Errorf("untrack: %s", res)
	}
	push, pm = e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventPresence, After: mark})
	wantText(t, push, `[`+q(ja)+`,`+q(pm.Ref)+`,"realtime:room1","presence",{"type":"presence","event":"untrack"}]`)
	ev, diff = e.diffOf("b", mark)
	if len(diff.Joins) != 0 || len(diff.Leaves) != 1 || len(diff.Leaves["alice"].Metas) != 1 || diff.Leaves["alice"].Metas[0].Ref != ref2 {
		t.Errorf("untrack diff %s", ev.Text)
	}
	b.Await(t, quick, match{Kind: kPresence, Event: "sync", After: mark})
	evs = presenceEvents(t, e.d, b, mark)
	if len(evs) != 2 || evs[0].Event != "leave" || evs[0].Key != "alice" || len(evs[0].CurrentPresences) != 0 {
		t.Errorf("untrack callbacks %+v", evs)
	}
	if st := b.PresenceState(t); len(st) != 1 || st["alice"] != nil {
		t.Errorf("B's presenceState after untrack %v", st)
	}

	// B's socket closes: A sees B's presence leave and ends with {}.
	mark = e.d.Mark()
	cb.Disconnect(t, 0, "")
	ev, diff = e.diffOf("a", mark)
	if len(diff.Joins) != 0 || len(diff.Leaves[keyB].Metas) != 1 {
		t.Errorf("leave-on-close diff %s", ev.Text)
	}
	a.Await(t, quick, match{Kind: kPresence, Event: "leave", After: mark})
	a.Await(t, quick, match{Kind: kPresence, Event: "sync", After: mark})
	wantPresenceState(t, a, `{}`)
}
