package realtime

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime/protocol"
)

// fuzzSocket is a socket with channels in several states, not connected:
// frames are fed to its dispatcher directly.
func fuzzSocket(t testing.TB, vsn protocol.Version, consume func(Event)) (*Socket, *conn) {
	s, err := NewSocket("http://127.0.0.1:1", &Options{APIKey: "k", Vsn: vsn})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, cfg ChannelConfig, state ChannelState, ref string) *Channel {
		cfg.OnEvent = consume
		ch, err := s.Channel(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		ch.state, ch.joinRef = state, ref
		s.mu.Unlock()
		return ch
	}
	mk("room1", ChannelConfig{Presence: PresenceConfig{Enabled: true}}, ChannelJoined, "1")
	joining := mk("room2", ChannelConfig{PostgresChanges: []PostgresBinding{{Event: "INSERT", Schema: "public", Table: "todos"}}}, ChannelJoining, "2")
	pg := mk("room3", ChannelConfig{PostgresChanges: []PostgresBinding{{Event: "INSERT", Schema: "public", Table: "todos"}, {Event: "*", Schema: "public"}}}, ChannelJoined, "3")
	s.mu.Lock()
	pg.ids = []int64{11, 22}
	p := &push{ch: joining, ref: "2", event: protocol.EventJoin, done: make(chan struct{}), hook: s.onJoinReply}
	s.pending["2"], joining.joinPush = p, p
	s.pending["4"] = &push{ch: pg, ref: "4", event: protocol.EventPresence, done: make(chan struct{})}
	s.mu.Unlock()
	return s, &conn{s: s, gen: 1, hbReply: make(chan hbReply, 4)}
}

// consumeEvent reads every part of an event, as a consumer would.
func consumeEvent(e Event) {
	switch e.Type {
	case EventBroadcast:
		if !e.Broadcast.Binary {
			_ = json.Valid(e.Broadcast.Payload)
		}
	case EventPresence:
		for _, m := range e.Presence.Changed {
			_ = m.UserFields()
		}
	case EventPostgresChange:
		_, _ = e.Change.New()
		_, _ = e.Change.Old()
	}
	_ = e.Channel.Presence().State()
}

var fuzzSeeds = []string{
	`[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]`,
	`["1",null,"realtime:room1","presence_state",{"a":{"metas":[{"phx_ref":"r1","n":1}]}}]`,
	`[null,null,"realtime:room1","presence_diff",{"joins":{"b":{"metas":[{"phx_ref":"r2"}]}},"leaves":{"a":{"metas":[{"phx_ref":"r1"}]}}}]`,
	`["2","2","realtime:room2","phx_reply",{"status":"ok","response":{"postgres_changes":[{"event":"INSERT","schema":"public","table":"todos","id":7}]}}]`,
	`["2","2","realtime:room2","phx_reply",{"status":"error","response":{"reason":"X: y"}}]`,
	`["3","4","realtime:room3","phx_reply",{"status":"ok","response":{}}]`,
	`[null,null,"realtime:room3","postgres_changes",{"ids":[11,22],"data":{"schema":"public","table":"todos","type":"INSERT","commit_timestamp":"2026-01-01T00:00:00.000Z","columns":[{"name":"id","type":"int8"},{"name":"done","type":"bool"},{"name":"j","type":"jsonb"},{"name":"a","type":"_int4"}],"record":{"id":"1","done":"t","j":"{\"k\":[1]}","a":"{1,2}"},"errors":null}}]`,
	`["3",null,"realtime:room3","system",{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"room3"}]`,
	`["1",null,"realtime:room1","system",{"extension":"system","status":"error","message":"Token has expired 1 seconds ago","channel":"room1"}]`,
	`["1","1","realtime:room1","phx_close",{}]`,
	`["3","3","realtime:room3","phx_error",{}]`,
	`[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]`,
	`{"topic":"realtime:room1","event":"broadcast","payload":{"event":"x","payload":1},"ref":null}`,
}

func FuzzClientDispatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false, false)
	}
	f.Add(append([]byte{4, 14, 6, 0, 1}, `realtime:room1cursor{"x":1}`...), true, false)
	f.Add(append([]byte{4, 14, 1, 10, 0}, `realtime:room1e{"id":"1"}raw`...), true, false)
	f.Add([]byte(fuzzSeeds[12]), false, true)
	f.Fuzz(func(t *testing.T, data []byte, binary, v1 bool) {
		vsn := protocol.V2
		if v1 {
			vsn = protocol.V1
		}
		s, c := fuzzSocket(t, vsn, consumeEvent)
		defer s.Close()
		checkTapFrame(t, c, vsn, data, binary)
		now := time.Now()
		s.handleFrame(c, data, binary, now)
		s.handleFrame(c, data, binary, now) // twice: state after the first matters
		for _, ch := range s.Channels() {
			if st := ch.State(); st > ChannelLeaving {
				t.Fatalf("channel state %v", st)
			}
		}
	})
}

// checkTapFrame asserts that the tap's view of a frame, built from the
// scan, is what DecodeServer decodes.
func checkTapFrame(t *testing.T, c *conn, vsn protocol.Version, data []byte, binary bool) {
	t.Helper()
	var f protocol.ServerFrame
	if vsn.ScanServer(data, binary, &f) != nil {
		return
	}
	want, err := vsn.DecodeServer(data, binary)
	if err != nil {
		t.Fatalf("ScanServer accepted %q, DecodeServer refused: %v", data, err)
	}
	got := tapFrame(c, data, binary, time.Now(), &f, "", "").Message
	if got.JoinRef != want.JoinRef || got.Ref != want.Ref || got.Topic != want.Topic || got.Event != want.Event ||
		!bytes.Equal(got.Payload, want.Payload) || (got.Broadcast == nil) != (want.Broadcast == nil) {
		t.Fatalf("tap message %+v, DecodeServer %+v", got, want)
	}
	if got.Broadcast != nil && (got.Broadcast.Event != want.Broadcast.Event || !bytes.Equal(got.Broadcast.Payload, want.Broadcast.Payload) ||
		got.Broadcast.Binary != want.Broadcast.Binary || !bytes.Equal(got.Broadcast.Meta, want.Broadcast.Meta)) {
		t.Fatalf("tap broadcast %+v, DecodeServer %+v", got.Broadcast, want.Broadcast)
	}
}

// TestDispatchSeeds runs the seeds through a recording consumer and checks
// the routing they imply.
func TestDispatchSeeds(t *testing.T) {
	r := newRec[Event]()
	s, c := fuzzSocket(t, protocol.V2, r.add)
	defer s.Close()
	for _, f := range fuzzSeeds[:8] {
		s.handleFrame(c, []byte(f), false, time.Now())
	}
	evs := r.wait(t, "the change", func(e []Event) bool {
		for _, ev := range e {
			if ev.Type == EventPostgresChange {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Type != EventPostgresChange {
			continue
		}
		if len(e.Change.Bindings) != 2 || e.Change.Bindings[0] != 0 || e.Change.Bindings[1] != 1 {
			t.Fatalf("bindings %v", e.Change.Bindings)
		}
		nu, err := e.Change.New()
		if err != nil || nu["id"] != 1.0 || nu["done"] != true || nu["j"].(map[string]any)["k"].([]any)[0] != 1.0 || nu["a"].([]any)[1] != 2.0 {
			t.Fatalf("New() = %#v, %v", nu, err)
		}
		if old, _ := e.Change.Old(); len(old) != 0 {
			t.Fatalf("Old() of an insert = %v", old)
		}
	}
	// room2 joined from its reply, with the server id.
	s.mu.Lock()
	room2 := s.channels["realtime:room2"]
	s.mu.Unlock()
	if room2.State() != ChannelJoined || room2.ServerIDs()[0] != 7 {
		t.Fatalf("room2 %v %v", room2.State(), room2.ServerIDs())
	}
}

// FuzzPresenceLimits applies a sequence of presence payloads (lines;
// one starting with "s" is a presence_state, others diffs) to states
// under small limits and to one under the defaults: nothing panics, the
// bytes counted are the state's, the limits hold after every diff, and
// a state bounded by its limits never holds more than an unbounded one.
func FuzzPresenceLimits(f *testing.F) {
	f.Add([]byte("s{\"a\":{\"metas\":[{\"phx_ref\":\"1\"}]}}\n{\"joins\":{\"b\":{\"metas\":[{\"phx_ref\":\"2\"},{\"phx_ref\":\"3\"}]}},\"leaves\":{\"a\":{\"metas\":[{\"phx_ref\":\"1\"}]}}}"), uint8(1), uint8(1))
	f.Add([]byte("{\"joins\":{\"x\":{\"metas\":[{\"phx_ref\":\"9\",\"pad\":\"xxxxxxxxxxxxxxxx\"}]}},\"leaves\":{}}\ns{}\n{\"joins\":{\"x\":{\"metas\":[{\"phx_ref\":\"8\"}]},\"y\":{\"metas\":[]}},\"leaves\":{\"x\":{\"metas\":[{\"phx_ref\":\"9\"}]}}}"), uint8(2), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, members, metas uint8) {
		lim := PresenceLimits{MaxMembers: 1 + int(members%8), MaxMetas: 1 + int(metas%8), MaxBytes: 200 + 37*int(members)}
		small, full := newPresence(lim), newPresence(PresenceLimits{})
		for _, line := range bytes.Split(data, []byte("\n")) {
			for _, p := range []*Presence{small, full} {
				if s, ok := bytes.CutPrefix(line, []byte("s")); ok {
					_, _ = p.applyState(s, "1")
				} else {
					_, _, _ = p.applyDiff(line, "1")
				}
				if b := stateCost(p); b != p.Bytes() {
					t.Fatalf("bytes counted %d, the state's %d", p.Bytes(), b)
				}
			}
			if small.Len() > lim.MaxMembers {
				t.Fatalf("%d members, limit %d", small.Len(), lim.MaxMembers)
			}
			if !small.Truncation().Truncated() && full.Truncation().Truncated() {
				t.Fatalf("the unbounded state truncated (%+v), the bounded one not", full.Truncation())
			}
		}
	})
}
