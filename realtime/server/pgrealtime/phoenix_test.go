package pgrealtime

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
)

// The Phoenix framework's own JS client (npm phoenix, run by
// testdata/realtimejs/phoenix.mjs) as a second judge of Realtime
// Authorization: the policy matrix realtimejs_test.go drives with
// realtime-js, spoken as raw Phoenix (config.private and access_token in
// the join payload, pushes by event name).

// phoenixJS starts the phoenix.js driver; the test fails on more
// uncaught exceptions inside it than expected.
func phoenixJS(t *testing.T, expectedUncaught int) *jsharness.Phoenix {
	t.Helper()
	p := jsharness.StartPhoenix(t)
	t.Cleanup(func() {
		if got := p.Events(jsharness.Match{Kind: jsharness.KindUncaught}); len(got) > expectedUncaught {
			for _, ev := range got {
				t.Errorf("uncaught exception in the phoenix driver: %s", ev.Raw)
			}
		}
	})
	return p
}

// privateParams is a phoenix.js join payload for a private channel with
// the user's token, broadcast ack and presence under key.
func privateParams(token, key string, extra map[string]any) map[string]any {
	config := map[string]any{
		"private":   true,
		"broadcast": map[string]any{"ack": true, "self": false},
		"presence":  map[string]any{"key": key, "enabled": true},
	}
	for k, v := range extra {
		config[k] = v
	}
	return map[string]any{"config": config, "access_token": token}
}

// wantJSON compares JSON values.
func wantJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if compact(got) != compact(json.RawMessage(want)) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// isUserBroadcastFrame matches a kind-4 frame (a user broadcast from the
// server), which Phoenix's serializer does not know.
func isUserBroadcastFrame(ev jsharness.Event) bool {
	b := ev.Bytes()
	return ev.Binary && len(b) > 0 && b[0] == protocol.KindUserBroadcast
}

// pushAndSync sends a raw push on s (join_ref joinRef) and syncs.
func pushAndSync(t *testing.T, p *jsharness.Phoenix, s *jsharness.PhoenixSocket, topic, event, joinRef string, payload any) {
	t.Helper()
	s.Push(t, topic, event, joinRef, payload)
	syncSocket(t, p, s)
}

// syncSocket sends a heartbeat on s and waits for its reply: the server
// has handled what s sent before and sent what it sends for it.
func syncSocket(t *testing.T, p *jsharness.Phoenix, s *jsharness.PhoenixSocket) {
	t.Helper()
	ref := s.Push(t, protocol.PhoenixTopic, protocol.EventHeartbeat, "", map[string]any{})
	p.Await(t, wait, jsharness.Match{Kind: jsharness.KindFrame, Client: s.Name, Dir: "in", Desc: "heartbeat reply " + ref,
		Where: func(e jsharness.Event) bool { m, err := e.Message(); return err == nil && m.Ref == ref }})
}

// phoenix.js joins a private channel the documented policy allows and is
// refused another with Supabase's exact reason after the delay; its
// broadcast without an INSERT policy gets no reply even with ack (the
// push times out) and reaches nobody; its track without INSERT(presence)
// is answered error {}; a member with both policies broadcasts (ack ok)
// and tracks, which the first sees.
func TestPhoenixPrivateChannels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create table public.rooms_users (user_id uuid not null, topic text not null, can_send bool not null default false);
		grant select on public.rooms_users to authenticated;
		insert into public.rooms_users values ('`+alice+`', 'room:`+alice+`', false), ('`+bob+`', 'room:`+alice+`', true);
		create policy "members read" on "realtime"."messages" for select to authenticated
		using ( exists ( select user_id from rooms_users
			where user_id = (select auth.uid()) and topic = (select realtime.topic())
			and realtime.messages.extension in ('broadcast', 'presence') ) );
		create policy "senders write" on "realtime"."messages" for insert to authenticated
		with check ( exists ( select user_id from rooms_users
			where user_id = (select auth.uid()) and topic = (select realtime.topic()) and can_send
			and realtime.messages.extension in ('broadcast', 'presence') ) )`)
	p := phoenixJS(t, 0)
	socket := func(name string) *jsharness.PhoenixSocket {
		return p.NewSocket(t, name, jsharness.Endpoint(e.srv.URL), jsharness.PhoenixOptions{
			APIKey: e.srv.AnonKey(), TimeoutMs: 1000, RejoinAfterMs: []int{60_000}})
	}
	as, bs := socket("alice"), socket("bob")
	aliceTok, bobTok := e.srv.UserToken(t, alice, time.Hour, nil), e.srv.UserToken(t, bob, time.Hour, nil)
	room := "realtime:room:" + alice

	own := as.Channel(t, "own", room, privateParams(aliceTok, "alice", nil), true).On(t, "broadcast")
	mark := p.Mark()
	own.Join(t)
	wantJSON(t, "allowed join", own.AwaitJoin(t, wait, mark, "ok").Payload, `{"postgres_changes":[]}`)

	other := as.Channel(t, "other", "realtime:room:"+bob, privateParams(aliceTok, "alice", nil), false)
	mark = p.Mark()
	start := time.Now()
	other.Join(t)
	st := other.AwaitJoin(t, wait, mark, "error")
	wantJSON(t, "refused join", st.Payload, `{"reason":"Unauthorized: You do not have permissions to read from this Channel topic: room:`+bob+`"}`)
	if took := time.Since(start); took < refusalDelay {
		t.Errorf("refused after %v, before the delay %v", took, refusalDelay)
	}
	if st.State != "errored" {
		t.Errorf("refused channel state %q, want errored", st.State)
	}
	other.Leave(t)

	bobs := bs.Channel(t, "alices", room, privateParams(bobTok, "bob", nil), false)
	mark = p.Mark()
	bobs.Join(t)
	bobs.AwaitJoin(t, wait, mark, "ok")
	bobs.On(t, "broadcast")

	// alice may read but not send: no reply even with ack.
	if r := own.Push(t, "broadcast", map[string]any{"type": "broadcast", "event": "note", "payload": map[string]any{"from": "alice"}}); r.Status != "timeout" {
		t.Errorf("alice's broadcast without an INSERT policy, with ack: %s %s, want timeout", r.Status, r.Response)
	}
	mark = p.Mark()
	if r := bobs.Push(t, "broadcast", map[string]any{"type": "broadcast", "event": "note", "payload": map[string]any{"from": "bob"}}); r.Status != "ok" {
		t.Errorf("bob's broadcast: %s %s", r.Status, r.Response)
	}
	got := own.AwaitMessage(t, wait, mark, "broadcast", nil)
	wantJSON(t, "alice receives bob's broadcast", got.Payload, `{"type":"broadcast","event":"note","payload":{"from":"bob"}}`)
	if n := len(p.Events(jsharness.Match{Kind: jsharness.KindMessage, Where: func(ev jsharness.Event) bool {
		return strings.Contains(string(ev.Payload), `"from":"alice"`)
	}})); n != 0 {
		t.Errorf("alice's dropped broadcast was delivered %d times", n)
	}

	// Presence: alice's track is refused with error {}; bob's is
	// accepted and alice's phoenix Presence sees him join.
	if r := own.Push(t, "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"u": "alice"}}); r.Status != "error" || compact(r.Response) != `{}` {
		t.Errorf("alice's track without INSERT(presence): %s %s, want error {}", r.Status, r.Response)
	}
	mark = p.Mark()
	if r := bobs.Push(t, "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"u": "bob"}}); r.Status != "ok" {
		t.Errorf("bob's track: %s %s", r.Status, r.Response)
	}
	p.Await(t, wait, jsharness.Match{Kind: jsharness.KindPresence, Client: "alice", Channel: "own", After: mark, Desc: "bob joins",
		Where: func(ev jsharness.Event) bool {
			return ev.UserEvent() == "join" && strings.Contains(string(ev.Payload), `"key":"bob"`)
		}})
	if list := string(jsharness.PresenceList(p.Events(jsharness.Match{Kind: jsharness.KindPresence, Client: "alice"})[0])); strings.Contains(list, `"u":"alice"`) {
		t.Errorf("alice's refused track is present: %s", list)
	}
}

// An access_token push re-runs the read check: a token keeping both reads
// leaves the channel alone, one keeping presence only gets "You no longer
// have permission", one reading neither "You do not have permissions",
// each a system error followed by phx_close, which phoenix.js reports as
// the channel's close.
func TestPhoenixTokenRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create policy gold on realtime.messages for select to authenticated using ( auth.jwt() ->> 'level' = 'gold' );
		create policy silver on realtime.messages for select to authenticated
			using ( auth.jwt() ->> 'level' = 'silver' and extension = 'presence' )`)
	p := phoenixJS(t, 0)
	const topic = "realtime:vip"
	for i, tc := range []struct {
		name  string
		level map[string]any
		want  string
	}{
		{"keeps both", map[string]any{"level": "gold", "v": 2}, ""},
		{"keeps presence only", map[string]any{"level": "silver"}, "You no longer have permission to read from this Channel topic: vip"},
		{"reads nothing", map[string]any{"level": "none"}, "You do not have permissions to read from this Channel topic: vip"},
	} {
		s := p.NewSocket(t, fmt.Sprint("s", i), jsharness.Endpoint(e.srv.URL), jsharness.PhoenixOptions{APIKey: e.srv.AnonKey()})
		gold := e.srv.UserToken(t, alice, time.Hour, map[string]any{"level": "gold"})
		ch := s.Channel(t, "vip", topic, privateParams(gold, "a", nil), false).On(t, "system")
		mark := p.Mark()
		ch.Join(t)
		ch.AwaitJoin(t, wait, mark, "ok")
		mark = p.Mark()
		pushAndSync(t, p, s, topic, "access_token", *ch.Info(t).JoinRef,
			map[string]any{"access_token": e.srv.UserToken(t, alice, 2*time.Hour, tc.level)})
		if tc.want == "" {
			if n := len(p.Events(jsharness.Match{Client: s.Name, After: mark, Where: func(ev jsharness.Event) bool {
				return ev.Kind == jsharness.KindMessage || ev.Kind == jsharness.KindChannelClose
			}})); n != 0 {
				t.Errorf("%s: the channel was shut\n%s", tc.name, p.Dump(20))
			}
			if st := ch.Info(t).State; st != "joined" {
				t.Errorf("%s: channel state %q", tc.name, st)
			}
			continue
		}
		sys := ch.AwaitMessage(t, wait, mark, "system", nil)
		wantJSON(t, tc.name, sys.Payload, `{"extension":"system","status":"error","message":"`+tc.want+`","channel":"vip"}`)
		p.Await(t, wait, jsharness.Match{Kind: jsharness.KindChannelClose, Client: s.Name, After: sys.Seq})
		if st := ch.Info(t).State; st != "closed" {
			t.Errorf("%s: channel state %q, want closed", tc.name, st)
		}
	}
}

// Broadcast from Database from a real trigger (the docs' SECURITY
// DEFINER function calling realtime.broadcast_changes) reaches a
// phoenix.js channel: under 1.0.0 (Phoenix's V1 JSON codec) as
// {event, payload (with its id), type, meta: {id}}. Under 2.0.0 the row
// comes, as from Supabase, as a kind-4 user broadcast frame, a kind
// Phoenix's serializer does not know (0, 1, 2 only): phoenix.js throws
// decoding it and the app never sees the row.
func TestPhoenixBroadcastFromDatabase(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, readAll+";"+itemsTrigger("insert or update"), nil)
	p := phoenixJS(t, 2)
	const topic = "realtime:items"
	tok := e.srv.UserToken(t, alice, time.Hour, nil)
	join := func(name, vsn string) *jsharness.PhoenixChannel {
		s := p.NewSocket(t, name, jsharness.Endpoint(e.srv.URL), jsharness.PhoenixOptions{APIKey: e.srv.AnonKey(), Vsn: vsn})
		ch := s.Channel(t, "items", topic, privateParams(tok, name, nil), false).On(t, "broadcast")
		mark := p.Mark()
		ch.Join(t)
		ch.AwaitJoin(t, wait, mark, "ok")
		return ch
	}
	v1, _ := join("v1", "1.0.0"), join("v2", "2.0.0")
	mark := p.Mark()
	e.pg.Exec(t, `insert into public.items values (1, 'x')`)
	e.pg.Exec(t, `update public.items set details = 'y' where id = 1`)
	for _, tc := range []struct{ op, record, old string }{
		{"INSERT", `{"details":"x","id":1}`, `null`},
		{"UPDATE", `{"details":"y","id":1}`, `{"details":"x","id":1}`},
	} {
		ev := v1.AwaitMessage(t, wait, mark, "broadcast", func(ev jsharness.Event) bool { return ev.UserEvent() == tc.op })
		id := e.rowWhere(t, "event = $1", tc.op)
		wantJSON(t, tc.op, ev.Payload, `{"event":"`+tc.op+`","type":"broadcast","meta":{"id":"`+id+`"},"payload":{"schema":"public","table":"items","operation":"`+
			tc.op+`","record":`+tc.record+`,"old_record":`+tc.old+`,"id":"`+id+`"}}`)
	}
	// 2.0.0: two kind-4 frames arrived, phoenix.js could not decode them.
	frames := p.AwaitN(t, wait, jsharness.Match{Kind: jsharness.KindFrame, Client: "v2", Dir: "in", After: mark, Desc: "kind 4",
		Where: isUserBroadcastFrame}, 2)
	if m, err := frames[0].Message(); err != nil || m.Broadcast == nil || m.Broadcast.Event != "INSERT" {
		t.Errorf("the 2.0.0 frame: %+v (%v)", m, err)
	}
	uncaught := p.AwaitN(t, wait, jsharness.Match{Kind: jsharness.KindUncaught, After: mark}, 2)
	for _, ev := range uncaught {
		if !strings.Contains(ev.Error, "destructure") {
			t.Errorf("phoenix.js on a kind-4 frame: %s", ev.Error)
		}
	}
	if n := len(p.Events(jsharness.Match{Kind: jsharness.KindMessage, Client: "v2"})); n != 0 {
		t.Errorf("phoenix.js at 2.0.0 delivered %d rows", n)
	}
}

// Replay after a rejoin: a phoenix.js channel (2.0.0) with
// config.broadcast.replay gets the stored rows after its join reply,
// oldest first, with meta.replayed (text frames, which phoenix.js
// decodes); a row sent while it is joined comes live as a kind-4 frame
// it cannot decode; after the server drops the socket, phoenix.js
// reconnects and rejoins with the same join payload, and every stored
// row is replayed again, the live one included (nothing updates since
// on rejoin, as in Supabase: clients dedupe by meta.id).
func TestPhoenixReplayAfterRejoin(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, readAll, nil)
	for n := 1; n <= 2; n++ { // one transaction each: distinct inserted_at
		e.pg.Exec(t, fmt.Sprintf(`select realtime.send('{"n":%d}'::jsonb, 'stored', 'phx-room', true)`, n))
	}
	p := phoenixJS(t, 1)
	s := p.NewSocket(t, "p", jsharness.Endpoint(e.srv.URL), jsharness.PhoenixOptions{APIKey: e.srv.AnonKey(),
		ReconnectAfterMs: []int{50}, RejoinAfterMs: []int{50}})
	replay := map[string]any{"broadcast": map[string]any{"replay": map[string]any{"since": time.Now().Add(-time.Hour).UnixMilli(), "limit": 10}}}
	ch := s.Channel(t, "room", "realtime:phx-room", privateParams(e.srv.UserToken(t, alice, time.Hour, nil), "a", replay), false).On(t, "broadcast")
	type msg struct {
		Type, Event string
		Payload     struct {
			N  int
			ID string
		}
		Meta struct {
			Replayed bool
			ID       string
		}
	}
	// replayed awaits the replay of rows 1..n after the join at mark.
	replayed := func(mark, n int) string {
		t.Helper()
		joined := ch.AwaitJoin(t, wait, mark, "ok")
		evs := p.AwaitN(t, wait, jsharness.Match{Kind: jsharness.KindMessage, Client: "p", After: joined.Seq}, n)
		for i, ev := range evs {
			var m msg
			if err := ev.Decode(&m); err != nil {
				t.Fatalf("message %s: %v", ev.Payload, err)
			}
			id := e.rowWhere(t, "payload->>'n' = $1", fmt.Sprint(i+1))
			if m.Type != "broadcast" || m.Event != "stored" || m.Payload.N != i+1 || !m.Meta.Replayed || m.Meta.ID != id || m.Payload.ID != id {
				t.Errorf("replayed %d: %s (row id %s)", i+1, ev.Payload, id)
			}
		}
		syncSocket(t, p, s)
		if got := p.Events(jsharness.Match{Kind: jsharness.KindMessage, Client: "p", After: joined.Seq}); len(got) != n {
			t.Errorf("%d rows replayed, want %d", len(got), n)
		}
		return *ch.Info(t).JoinRef
	}
	mark := p.Mark()
	ch.Join(t)
	j1 := replayed(mark, 2)

	mark = p.Mark()
	e.pg.Exec(t, `select realtime.send('{"n":3}'::jsonb, 'stored', 'phx-room', true)`)
	p.Await(t, wait, jsharness.Match{Kind: jsharness.KindFrame, Client: "p", Dir: "in", After: mark, Desc: "the live row, kind 4",
		Where: isUserBroadcastFrame})
	p.Await(t, wait, jsharness.Match{Kind: jsharness.KindUncaught, After: mark})

	mark = p.Mark()
	if n := e.srv.Drop(); n != 1 {
		t.Fatalf("Drop = %d, want 1", n)
	}
	p.Await(t, wait, jsharness.Match{Kind: jsharness.KindSocket, Client: "p", State: "open", After: mark})
	if j2 := replayed(mark, 3); j2 == j1 {
		t.Errorf("the rejoin kept join ref %s", j1)
	}
}
