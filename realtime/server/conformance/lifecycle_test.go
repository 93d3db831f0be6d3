package conformance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
)

// Scenario 9: unsubscribe → leave reply, then phx_close.
func TestS09Leave(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil)
	j := e.subscribe(ch)
	mark := e.d.Mark()
	if res := ch.Unsubscribe(t); res != "ok" {
		t.Errorf("unsubscribe: %s, want ok", res)
	}
	leave, lm := e.frame(quick, match{Client: "a", Dir: "out", Event: protocol.EventLeave, After: mark})
	wantText(t, leave, `[`+q(j)+`,`+q(lm.Ref)+`,"realtime:room1","phx_leave",{}]`)
	reply, _ := e.frame(quick, match{Client: "a", Dir: "in", Where: isMsg(protocol.EventReply, lm.Ref), After: mark})
	wantText(t, reply, `[`+q(j)+`,`+q(lm.Ref)+`,"realtime:room1","phx_reply",{"status":"ok","response":{}}]`)
	closeFrame, _ := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventClose, After: reply.Seq})
	wantText(t, closeFrame, `[`+q(j)+`,`+q(j)+`,"realtime:room1","phx_close",{}]`)
	ch.AwaitStatus(t, quick, mark, "CLOSED")

	// The app pattern of removing a channel and creating it again.
	if res := c.RemoveChannel(t, ch); res != "ok" {
		t.Errorf("removeChannel: %s", res)
	}
	again := c.Channel(t, "room-again", "room1", nil).On(t, "broadcast", map[string]any{"event": "x"})
	j2 := e.subscribe(again)
	if j2 == j {
		t.Errorf("second join reused join_ref %s", j)
	}
	e.fence(c, again.Topic)
}

// Scenario 9: a server phx_error errors the channel, which rejoins with a
// new ref about a second later and is accepted.
func TestS09ServerError(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil).On(t, "broadcast", map[string]any{"event": "*"})
	j := e.subscribe(ch)
	mark := e.d.Mark()
	if n := e.srv.Kick(ch.Topic, server.KickError); n != 1 {
		t.Errorf("Kick = %d channels, want 1", n)
	}
	errFrame, _ := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventError, After: mark})
	wantText(t, errFrame, `[`+q(j)+`,`+q(j)+`,"realtime:room1","phx_error",{"reason":"channel_crash"}]`)
	st := ch.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if st.Error != "channel error: transport failure" {
		t.Errorf("CHANNEL_ERROR message %q", st.Error)
	}
	// realtime-js hands the payload to the app as the error's cause.
	wantJSON(t, "CHANNEL_ERROR cause", st.Cause, `{"reason":"channel_crash"}`)
	rejoin, rm := e.frame(slow, match{Client: "a", Dir: "out", Event: protocol.EventJoin, After: mark})
	if rm.Ref == j || rm.JoinRef != rm.Ref {
		t.Errorf("rejoin refs %q/%q, old join_ref %q", rm.JoinRef, rm.Ref, j)
	}
	if gap := rejoin.Time.Sub(errFrame.Time); gap < 800*time.Millisecond || gap > 3*time.Second {
		t.Errorf("rejoin %v after phx_error, want ~1 s", gap)
	}
	ch.AwaitStatus(t, quick, st.Seq, "SUBSCRIBED")
	if info := ch.Info(t); info.JoinRef == nil || *info.JoinRef != rm.Ref || info.State != "joined" {
		t.Errorf("after rejoin %+v", info)
	}
	e.fence(c, ch.Topic)
	ch.Await(t, quick, match{Kind: kBroadcast, After: mark})
}

// Scenario 9: a server phx_close closes the channel for good.
func TestS09ServerClose(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{DisconnectOnEmptyChannelsAfterMs: keepSocket()})
	ch := c.Channel(t, "room", "room1", nil)
	j := e.subscribe(ch)
	mark := e.d.Mark()
	if n := e.srv.Kick(ch.Topic, server.KickClose); n != 1 {
		t.Errorf("Kick = %d channels, want 1", n)
	}
	closeFrame, _ := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventClose, After: mark})
	wantText(t, closeFrame, `[`+q(j)+`,`+q(j)+`,"realtime:room1","phx_close",{}]`)
	ch.AwaitStatus(t, quick, mark, "CLOSED")
	e.noRejoin(c, ch.Topic, mark)
}

// Scenario 10: the server drops the connection; realtime-js reconnects
// after ~1 s, rejoins every channel with a new join_ref and the same
// config, and gets a fresh presence_state.
func TestS10Reconnect(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{APIKey: e.userToken("alice", time.Hour, nil)})
	pres := c.Channel(t, "lobby", "lobby", map[string]any{"presence": map[string]any{"key": "alice"}}).
		On(t, "presence", map[string]any{"event": "*"})
	room := c.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"self": true}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	chans := []*jsharness.Channel{pres, room}
	oldRefs := map[string]string{}
	oldJoins := map[string]json.RawMessage{}
	for _, ch := range chans {
		oldRefs[ch.Topic] = e.subscribe(ch)
		_, jm := e.frame(quick, match{Client: "a", Dir: "out", Topic: ch.Topic, Event: protocol.EventJoin})
		oldJoins[ch.Topic] = jm.Payload
	}
	if res := pres.Track(t, map[string]any{"n": 1}); res != "ok" {
		t.Errorf("track: %s", res)
	}
	firstOpen := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "open"})

	mark := e.d.Mark()
	if n := e.srv.Drop(e.connID("alice")); n != 1 {
		t.Errorf("Drop = %d, want 1", n)
	}
	closed := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "close", After: mark})
	errSeq := map[string]int{}
	for _, ch := range chans {
		st := ch.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
		if !strings.HasPrefix(st.Error, "socket closed: ") && st.Error != "channel error: transport failure" {
			t.Errorf("%s: CHANNEL_ERROR %q, want a transport error", ch.Name, st.Error)
		}
		errSeq[ch.Name] = st.Seq
	}
	reconnect := e.d.Await(t, slow, match{Kind: kSocket, Client: "a", State: "connecting", After: mark})
	if gap := reconnect.Time.Sub(closed.Time); gap < 800*time.Millisecond || gap > 3*time.Second {
		t.Errorf("reconnect %v after close, want ~1 s", gap)
	}
	if first := e.d.Events(match{Kind: kSocket, Client: "a", State: "connecting"})[0]; reconnect.URL != first.URL {
		t.Errorf("reconnect URL %s, want %s", reconnect.URL, first.URL)
	}
	open := e.d.Await(t, quick, match{Kind: kSocket, Client: "a", State: "open", After: mark})
	if open.Conn == firstOpen.Conn {
		t.Errorf("no new connection")
	}
	for _, ch := range chans {
		ch.AwaitStatus(t, slow, errSeq[ch.Name], "SUBSCRIBED")
		_, jm := e.frame(quick, match{Client: "a", Dir: "out", Topic: ch.Topic, Event: protocol.EventJoin, After: mark})
		if jm.Ref == oldRefs[ch.Topic] || jm.JoinRef != jm.Ref {
			t.Errorf("%s: rejoin refs %q/%q, old %q", ch.Name, jm.JoinRef, jm.Ref, oldRefs[ch.Topic])
		}
		wantJSON(t, ch.Name+" rejoin payload", jm.Payload, string(oldJoins[ch.Topic]))
		info := ch.Info(t)
		if info.JoinRef == nil || *info.JoinRef != jm.Ref {
			t.Errorf("%s: join ref %v, want %s", ch.Name, info.JoinRef, jm.Ref)
		}
	}
	nj := *pres.Info(t).JoinRef
	state, _ := e.frame(quick, match{Client: "a", Dir: "in", Topic: pres.Topic, Event: protocol.EventPresenceState, After: mark})
	wantText(t, state, `[`+q(nj)+`,null,"realtime:lobby","presence_state",{}]`)
	pres.Await(t, quick, match{Kind: kPresence, Event: "sync", After: state.Seq})
	// Channels work again.
	mark = e.d.Mark()
	if res := room.Broadcast(t, "after", map[string]any{"ok": true}); res != "ok" {
		t.Errorf("send after reconnect: %s", res)
	}
	room.Await(t, quick, match{Kind: kBroadcast, Event: "after", After: mark})
}

// Scenario 10: REST broadcasts, the implicit fallback of send() and
// httpSend(), both answered 202.
func TestS10RESTBroadcast(t *testing.T) {
	e := newEnv(t)
	cb := e.client("b", jsharness.ClientOptions{})
	sub := cb.Channel(t, "room", "room1", nil).On(t, "broadcast", map[string]any{"event": "*"})
	e.subscribe(sub)

	ca := e.client("a", jsharness.ClientOptions{})
	a := ca.Channel(t, "room", "room1", nil)
	base := e.srv.URL + "/realtime/v1/api/broadcast"
	query := "?apikey=" + e.srv.AnonKey() + "&vsn=2.0.0"

	mark := e.d.Mark()
	if res := a.Broadcast(t, "x", map[string]any{"y": 2}); res != "ok" {
		t.Errorf("send while not joined: %s, want ok", res)
	}
	req := e.d.Await(t, quick, match{Kind: kHTTP, Client: "a", After: mark})
	if req.Method != "POST" || req.URL != base+query || req.HTTPStatus != 202 {
		t.Errorf("fallback request %s", req)
	}
	if req.Headers["apikey"] != e.srv.AnonKey() || req.Headers["Content-Type"] != "application/json" {
		t.Errorf("fallback headers %v", req.Headers)
	}
	wantJSON(t, "fallback body", []byte(req.Body), `{"messages":[{"topic":"room1","event":"x","payload":{"y":2},"private":false}]}`)
	got, _ := e.frame(quick, match{Client: "b", Dir: "in", Event: protocol.EventBroadcast, After: mark})
	wantText(t, got, `[null,null,"realtime:room1","broadcast",{"payload":{"y":2},"event":"x","type":"broadcast"}]`)
	cbEv := sub.Await(t, quick, match{Kind: kBroadcast, After: mark})
	wantJSON(t, "callback", cbEv.Payload, `{"type":"broadcast","event":"x","payload":{"y":2}}`)

	mark = e.d.Mark()
	res, err := a.HTTPSend(t.Context(), "x", map[string]any{"y": 3})
	if err != nil {
		t.Fatalf("httpSend: %v", err)
	}
	wantJSON(t, "httpSend result", res, `{"success":true}`)
	req = e.d.Await(t, quick, match{Kind: kHTTP, Client: "a", After: mark})
	if req.Method != "POST" || req.URL != base+"/room1/events/x"+query || req.HTTPStatus != 202 {
		t.Errorf("httpSend request %s", req)
	}
	got, _ = e.frame(quick, match{Client: "b", Dir: "in", Event: protocol.EventBroadcast, After: mark})
	if want := kind4("realtime:room1", "x", false, []byte(`{"y":3}`)); string(got.Bytes()) != string(want) {
		t.Errorf("httpSend delivery %s, want kind-4 %x", got, want)
	}
	cbEv = sub.Await(t, quick, match{Kind: kBroadcast, After: mark})
	wantJSON(t, "callback", cbEv.Payload, `{"type":"broadcast","event":"x","payload":{"y":3}}`)

	mark = e.d.Mark()
	raw := []byte{9, 8, 7, 0}
	if _, err := a.HTTPSend(t.Context(), "bin", jsharness.Base64(raw)); err != nil {
		t.Fatalf("binary httpSend: %v", err)
	}
	req = e.d.Await(t, quick, match{Kind: kHTTP, Client: "a", After: mark})
	if req.HTTPStatus != 202 || req.Headers["Content-Type"] != "application/octet-stream" {
		t.Errorf("binary httpSend request %s %v", req, req.Headers)
	}
	got, _ = e.frame(quick, match{Client: "b", Dir: "in", Event: protocol.EventBroadcast, After: mark})
	if want := kind4("realtime:room1", "bin", true, raw); string(got.Bytes()) != string(want) {
		t.Errorf("binary httpSend delivery %s, want kind-4 %x", got, want)
	}
	if evs := e.d.Events(match{Kind: kSocket, Client: "a"}); len(evs) > 0 {
		t.Errorf("REST-only client opened a socket: %v", evs)
	}
}

// Joins the server refuses for a while (fault control): realtime-js shows
// each reason as CHANNEL_ERROR and keeps rejoining until one succeeds.
func TestRejectedJoinsThenRecovery(t *testing.T) {
	e := newEnv(t)
	e.srv.RejectJoins(server.Rejection{Count: 2})
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "room", "room1", nil)
	mark := e.d.Mark()
	ch.Subscribe(t, 0)
	errs := e.d.AwaitN(t, slow, match{Kind: kStatus, Client: "a", Channel: "room", After: mark}, 2)
	for _, st := range errs {
		if st.Status != "CHANNEL_ERROR" || st.Error != "RealtimeRestarting: Realtime is restarting, please standby" {
			t.Errorf("refused join: %s %q", st.Status, st.Error)
		}
	}
	ch.AwaitStatus(t, slow, errs[1].Seq, "SUBSCRIBED")
	if n := len(e.d.Events(match{Kind: kFrame, Client: "a", Dir: "out", Event: protocol.EventJoin})); n != 3 {
		t.Errorf("%d joins, want 3", n)
	}

	// A custom reason reaches the callback verbatim.
	e.srv.RejectJoins(server.Rejection{Count: 1, Reason: "UnableToConnectToProject: Realtime was unable to connect to the project database"})
	other := c.Channel(t, "other", "room2", nil)
	mark = e.d.Mark()
	other.Subscribe(t, 0)
	st := other.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if st.Error != "UnableToConnectToProject: Realtime was unable to connect to the project database" {
		t.Errorf("custom reason %q", st.Error)
	}
	other.AwaitStatus(t, slow, st.Seq, "SUBSCRIBED")
}

// A channel named "" is the topic "realtime:", which the server refuses.
func TestTopicNameRequired(t *testing.T) {
	e := newEnv(t)
	c := e.client("a", jsharness.ClientOptions{})
	ch := c.Channel(t, "empty", "", nil)
	mark := e.d.Mark()
	ch.Subscribe(t, 0)
	st := ch.AwaitStatus(t, quick, mark, "CHANNEL_ERROR")
	if st.Error != "TopicNameRequired: You must provide a topic name" {
		t.Errorf("join of realtime: %q", st.Error)
	}
	_, rm := e.frame(quick, match{Client: "a", Dir: "in", Event: protocol.EventReply, Topic: "realtime:"})
	wantJSON(t, "reply", rm.Payload, `{"status":"error","response":{"reason":"TopicNameRequired: You must provide a topic name"}}`)
}
