package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// tapOut records the frames a socket writes.
func tapOut(r *rec[Frame]) func(*Options) {
	return func(o *Options) { o.Tap = r.add }
}

// waitFrames waits until the tap has seen n frames of event in dir.
func waitFrames(t testing.TB, tap *rec[Frame], dir Direction, event string, n int) []Frame {
	t.Helper()
	return framesOf(tap.wait(t, "tapped "+event+" frames", func(f []Frame) bool { return len(framesOf(f, dir, event)) >= n }), dir, event)
}

func framesOf(frames []Frame, dir Direction, event string) []Frame {
	var out []Frame
	for _, f := range frames {
		if f.Dir == dir && f.Message.Event == event {
			out = append(out, f)
		}
	}
	return out
}

func TestJoinFrameAndBroadcast(t *testing.T) {
	srv := servertest.New(t)
	tap := newRec[Frame]()
	a := dial(t, srv, fast, tapOut(tap))
	b := dial(t, srv, fast)
	ca, ra := channel(t, a, "room1", ChannelConfig{})
	cb, rb := channel(t, b, "room1", ChannelConfig{})
	for _, ch := range []*Channel{ca, cb} {
		if err := ch.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if ch.State() != ChannelJoined {
			t.Fatalf("state %v", ch.State())
		}
	}
	if got := statuses(ra.wait(t, "SUBSCRIBED", func(e []Event) bool { return len(e) > 0 })); len(got) != 1 || got[0] != Subscribed {
		t.Fatalf("statuses %v", got)
	}
	// The join is realtime-js's frame: join_ref == ref, the default config.
	joins := waitFrames(t, tap, Out, protocol.EventJoin, 1)
	if len(joins) != 1 {
		t.Fatalf("%d joins", len(joins))
	}
	j := joins[0].Message
	want := `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}`
	if j.JoinRef == "" || j.JoinRef != j.Ref || j.Topic != "realtime:room1" || string(j.Payload) != want || joins[0].Binary {
		t.Fatalf("join frame %s", joins[0].Data)
	}
	if ca.JoinRef() != j.Ref {
		t.Fatalf("JoinRef %q, frame %q", ca.JoinRef(), j.Ref)
	}

	if err := ca.Send(ctxT(t), "cursor", json.RawMessage(`{"x":1,"s":"é"}`)); err != nil {
		t.Fatal(err)
	}
	got := rb.wait(t, "the broadcast at B", func(e []Event) bool { return len(broadcasts(e)) == 1 })
	bc := broadcasts(got)[0]
	if bc.Event != "cursor" || string(bc.Payload) != `{"x":1,"s":"é"}` || bc.Binary {
		t.Fatalf("B got %+v", bc)
	}
	// A's push was a kind-3 binary frame, exactly as realtime-js encodes it.
	sends := waitFrames(t, tap, Out, protocol.EventBroadcast, 1)
	if len(sends) != 1 || !sends[0].Binary {
		t.Fatalf("send frames %+v", sends)
	}
	m := sends[0].Message
	wantFrame := append([]byte{3, byte(len(m.JoinRef)), byte(len(m.Ref)), 14, 6, 0, 1}, m.JoinRef+m.Ref+"realtime:room1cursor"+`{"x":1,"s":"é"}`...)
	if !bytes.Equal(sends[0].Data, wantFrame) || m.JoinRef != ca.JoinRef() {
		t.Fatalf("kind-3 frame % x, want % x", sends[0].Data, wantFrame)
	}
	// self is false: A gets B's broadcast but never its own.
	if err := cb.Send(ctxT(t), "reply", nil); err != nil {
		t.Fatal(err)
	}
	evs := ra.wait(t, "B's broadcast at A", func(e []Event) bool { return len(broadcasts(e)) >= 1 })
	if bs := broadcasts(evs); len(bs) != 1 || bs[0].Event != "reply" || string(bs[0].Payload) != `{}` {
		t.Fatalf("A got %+v", bs)
	}
	st := ca.Stats()
	if st.MessagesIn < 2 || st.MessagesOut != 2 || st.BytesOut < uint64(len(wantFrame)) || st.BytesIn == 0 || st.LastMessage.IsZero() {
		t.Fatalf("channel stats %+v", st)
	}
}

func TestBroadcastAckSelfBinaryAndV1(t *testing.T) {
	srv := servertest.New(t)
	a := dial(t, srv, fast)
	v1 := dial(t, srv, fast, func(o *Options) { o.Vsn = protocol.V1 })
	ca, ra := channel(t, a, "room1", ChannelConfig{Broadcast: BroadcastConfig{Ack: true, Self: true}})
	c1, r1 := channel(t, v1, "room1", ChannelConfig{})
	for _, ch := range []*Channel{ca, c1} {
		if err := ch.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	// With ack, Send returns after the server's reply; self echoes it.
	if err := ca.Send(ctxT(t), "e1", json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := ca.SendBinary(ctxT(t), "bin", []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	evs := ra.wait(t, "the echoes", func(e []Event) bool { return len(broadcasts(e)) == 2 })
	bs := broadcasts(evs)
	if bs[0].Event != "e1" || string(bs[0].Payload) != `{"n":1}` || bs[1].Event != "bin" || !bs[1].Binary || !bytes.Equal(bs[1].Payload, []byte{0, 1, 2, 255}) {
		t.Fatalf("echoes %+v", bs)
	}
	// The 1.0.0 client gets the JSON broadcast (and not the raw binary one).
	evs = r1.wait(t, "the broadcast at the 1.0.0 client", func(e []Event) bool { return len(broadcasts(e)) >= 1 })
	if b := broadcasts(evs)[0]; b.Event != "e1" || string(b.Payload) != `{"n":1}` || b.Binary {
		t.Fatalf("1.0.0 client got %+v", b)
	}
	// The 1.0.0 client sends JSON; ack waits.
	if err := c1.Send(ctxT(t), "from-v1", json.RawMessage(`[1,2]`)); err != nil {
		t.Fatal(err)
	}
	ra.wait(t, "the 1.0.0 broadcast at A", func(e []Event) bool {
		bs := broadcasts(e)
		return len(bs) == 3 && bs[2].Event == "from-v1" && string(bs[2].Payload) == `[1,2]`
	})
	if err := c1.SendBinary(ctxT(t), "x", []byte{1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("binary under 1.0.0: %v", err)
	}
	if err := ca.Send(ctxT(t), "bad", json.RawMessage(`{`)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("invalid JSON payload: %v", err)
	}
	if err := ca.Send(ctxT(t), strings.Repeat("e", 300), nil); !errors.Is(err, protocol.ErrUnsupported) {
		t.Fatalf("event of 300 bytes: %v", err)
	}
}

func TestNotJoinedAndLeave(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if same, _ := s.Channel("realtime:room1", ChannelConfig{Private: true}); same != ch {
		t.Fatal("a second Channel for the topic made a new channel")
	}
	if err := ch.Send(ctxT(t), "x", nil); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("Send before joining: %v", err)
	}
	if err := ch.Track(ctxT(t), json.RawMessage(`{}`)); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("Track before joining: %v", err)
	}
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctxT(t)); err != nil { // joined: nil at once
		t.Fatal(err)
	}
	if err := ch.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if ch.State() != ChannelClosed || len(s.Channels()) != 0 {
		t.Fatalf("after Leave: state %v, %d channels", ch.State(), len(s.Channels()))
	}
	evs := r.wait(t, "CLOSED", func(e []Event) bool { return countStatus(e, Closed) == 1 })
	if last := evs[len(evs)-1]; last.Status != Closed || last.Err != nil {
		t.Fatalf("last event %+v", last)
	}
	eventually(t, "the server to drop the channel", func() bool { return srv.Stats().Channels == 0 })
	if err := ch.Subscribe(ctxT(t)); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("Subscribe after Leave: %v", err)
	}
	if err := ch.Send(ctxT(t), "x", nil); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("Send after Leave: %v", err)
	}
	if err := ch.Leave(ctxT(t)); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	// A new channel for the topic joins again.
	ch2, _ := channel(t, s, "room1", ChannelConfig{})
	if ch2 == ch {
		t.Fatal("closed channel reused")
	}
	if err := ch2.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestKickErrorRejoins(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ref := ch.JoinRef()
	if n := srv.Kick("room1", server.KickError); n != 1 {
		t.Fatalf("kicked %d", n)
	}
	evs := r.wait(t, "CHANNEL_ERROR then SUBSCRIBED", func(e []Event) bool { return countStatus(e, Subscribed) == 2 })
	if got := statuses(evs); len(got) != 3 || got[1] != ChannelError || !errors.Is(evs[1].Err, ErrChannelError) {
		t.Fatalf("events %s", describe(evs))
	}
	if ch.JoinRef() == ref || !errors.Is(ch.LastError(), ErrChannelError) {
		t.Fatalf("join ref %s, last error %v", ch.JoinRef(), ch.LastError())
	}
}

func TestKickCloseNoRejoin(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	ch, r := channel(t, s, "room1", ChannelConfig{})
	other, _ := channel(t, s, "room2", ChannelConfig{})
	for _, c := range []*Channel{ch, other} {
		if err := c.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Kick("room1", server.KickClose)
	r.wait(t, "CLOSED", func(e []Event) bool { return countStatus(e, Closed) == 1 })
	if ch.State() != ChannelClosed || len(s.Channels()) != 1 {
		t.Fatalf("state %v, channels %d", ch.State(), len(s.Channels()))
	}
	// A round trip on the same socket after the close (the rejoin ladder
	// is 20 ms): the server still has no room1 channel for us.
	time.Sleep(100 * time.Millisecond) // give a (wrong) rejoin timer the chance to fire
	if err := other.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The server handles our frames in order: once room2 is gone, a
	// rejoin of room1 (sent before the leave) would be there.
	eventually(t, "the server to drop room2", func() bool {
		return srv.Stats().Channels == 0 || len(srv.Conns()[0].Channels) != 1 || srv.Conns()[0].Channels[0].Topic != "realtime:room2"
	})
	if conns := srv.Conns(); len(conns) != 1 || len(conns[0].Channels) != 0 {
		t.Fatalf("server channels after phx_close and leave: %+v", conns)
	}
	if got := statuses(r.all()); len(got) != 2 {
		t.Fatalf("statuses after close %v", got)
	}
}

func TestRefusedJoin(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	srv.RejectJoins(server.Rejection{Count: 2})
	ch, r := channel(t, s, "room1", ChannelConfig{})
	err := ch.Subscribe(ctxT(t))
	var je *JoinError
	if !errors.As(err, &je) || je.Code != "RealtimeRestarting" || je.Message != "Realtime is restarting, please standby" ||
		je.Reason != server.DefaultRejectReason || je.Topic != "realtime:room1" {
		t.Fatalf("Subscribe: %v", err)
	}
	// It retries on the rejoin ladder and joins once the server accepts.
	evs := r.wait(t, "SUBSCRIBED after two refusals", func(e []Event) bool { return countStatus(e, Subscribed) == 1 })
	if got := statuses(evs); len(got) != 3 || got[0] != ChannelError || got[1] != ChannelError {
		t.Fatalf("statuses %v", got)
	}
	if !errors.As(evs[1].Err, &je) {
		t.Fatalf("second error %v", evs[1].Err)
	}
}

// With RejoinAfter negative, a failed channel waits for a manual
// Subscribe; a socket reconnect still rejoins it.
func TestRejoinDisabledManualRetry(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast, func(o *Options) { o.RejoinAfter = func(int) time.Duration { return -1 } })
	srv.RejectJoins(server.Rejection{Count: 1, Reason: "Custom: no"})
	ch, r := channel(t, s, "room1", ChannelConfig{})
	var je *JoinError
	if err := ch.Subscribe(ctxT(t)); !errors.As(err, &je) || je.Code != "Custom" || je.Message != "no" {
		t.Fatalf("Subscribe: %v", err)
	}
	// Nothing retries: a round trip on another channel, then still errored.
	other, _ := channel(t, s, "room2", ChannelConfig{})
	if err := other.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "CHANNEL_ERROR", func(e []Event) bool { return countStatus(e, ChannelError) == 1 })
	if ch.State() != ChannelErrored || countStatus(r.all(), Subscribed) != 0 {
		t.Fatalf("state %v, statuses %v", ch.State(), statuses(r.all()))
	}
	if err := ch.Subscribe(ctxT(t)); err != nil { // the manual retry
		t.Fatal(err)
	}
	// A kick with phx_error leaves it errored until the socket reopens.
	srv.Kick("room1", server.KickError)
	r.wait(t, "CHANNEL_ERROR", func(e []Event) bool { return countStatus(e, ChannelError) == 2 })
	srv.Drop()
	r.wait(t, "the rejoin at reconnect", func(e []Event) bool { return countStatus(e, Subscribed) == 2 })
}

// A channel subscribed before the socket connects joins when it opens.
func TestSubscribeBeforeConnect(t *testing.T) {
	srv := servertest.New(t)
	s, err := NewSocket(srv.URL, &Options{APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, r := channel(t, s, "room1", ChannelConfig{})
	done := make(chan error, 1)
	go func() { done <- ch.Subscribe(ctxT(t)) }()
	eventually(t, "the channel to wait for the socket", func() bool { return ch.State() == ChannelJoining })
	if err := s.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs := r.wait(t, "SUBSCRIBED", func(e []Event) bool { return len(e) > 0 })
	if got := statuses(evs); len(got) != 1 || got[0] != Subscribed {
		t.Fatalf("statuses %v", got)
	}
}

func TestExpiredTokenJoin(t *testing.T) {
	srv := servertest.New(t)
	expired := srv.UserToken(t, "user-1", -30*time.Second, nil)
	s := dial(t, srv, fast, func(o *Options) {
		o.AccessToken = expired
		o.RejoinAfter = func(int) time.Duration { return -1 }
	})
	ch, _ := channel(t, s, "room1", ChannelConfig{})
	err := ch.Subscribe(ctxT(t))
	var je *JoinError
	if !errors.As(err, &je) || je.Code != "InvalidJWTToken" || !strings.HasPrefix(je.Message, "Token has expired ") || !strings.HasSuffix(je.Message, " seconds ago") {
		t.Fatalf("Subscribe with an expired token: %v", err)
	}
	if strings.Contains(err.Error(), expired) {
		t.Fatal("the error shows the token")
	}
	exp, ok := s.TokenExpiry()
	if !ok || time.Until(exp) > -20*time.Second {
		t.Fatalf("TokenExpiry %v %v", exp, ok)
	}
	// A fresh token and a manual retry.
	s.SetAuth(srv.UserToken(t, "user-1", time.Hour, nil))
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if exp, ok := s.TokenExpiry(); !ok || time.Until(exp) < 50*time.Minute {
		t.Fatalf("TokenExpiry after SetAuth %v %v", exp, ok)
	}
}

func TestTokenRefreshAndExpiry(t *testing.T) {
	srv := servertest.New(t)
	tap := newRec[Frame]()
	tok1 := srv.UserToken(t, "user-1", time.Hour, nil)
	s := dial(t, srv, fast, tapOut(tap), func(o *Options) { o.AccessToken = tok1 })
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var p protocol.JoinPayload
	if err := json.Unmarshal(waitFrames(t, tap, Out, protocol.EventJoin, 1)[0].Message.Payload, &p); err != nil || p.AccessToken != tok1 {
		t.Fatalf("join payload token %v", err)
	}
	serverExpiry := func() time.Time {
		for _, c := range srv.Conns() {
			for _, sc := range c.Channels {
				return sc.TokenExpires
			}
		}
		return time.Time{}
	}
	exp1 := serverExpiry()
	tok2 := srv.UserToken(t, "user-1", 2*time.Hour, nil)
	s.SetAuth(tok2)
	s.SetAuth(tok2) // unchanged: not pushed again
	eventually(t, "the server to take the new token", func() bool { return serverExpiry().After(exp1.Add(30 * time.Minute)) })
	pushes := waitFrames(t, tap, Out, protocol.EventAccessToken, 1)
	if pushes[0].Message.JoinRef != ch.JoinRef() || string(pushes[0].Message.Payload) != `{"access_token":"`+tok2+`"}` {
		t.Fatalf("access_token push %s", pushes[0].Message.Payload)
	}
	// The channel keeps working; a rejoin uses the new token.
	srv.Drop()
	r.wait(t, "the rejoin", func(e []Event) bool { return countStatus(e, Subscribed) == 2 })
	joins := waitFrames(t, tap, Out, protocol.EventJoin, 2)
	if n := len(framesOf(tap.all(), Out, protocol.EventAccessToken)); n != 1 {
		t.Fatalf("%d access_token pushes for one change of token", n)
	}
	if err := json.Unmarshal(joins[len(joins)-1].Message.Payload, &p); err != nil || p.AccessToken != tok2 {
		t.Fatalf("rejoin token %v", err)
	}
	// An expired token: the server sends a system error then phx_close.
	s.SetAuth(srv.UserToken(t, "user-1", -time.Minute, nil))
	evs := r.wait(t, "CLOSED", func(e []Event) bool { return countStatus(e, Closed) == 1 })
	var sys *protocol.System
	for _, e := range evs {
		if e.Type == EventSystem {
			sys = e.System
		}
	}
	last := evs[len(evs)-1]
	var se *SystemError
	if sys == nil || sys.Status != "error" || !strings.HasPrefix(sys.Message, "Token has expired") ||
		last.Status != Closed || !errors.As(last.Err, &se) || se.Message != sys.Message {
		t.Fatalf("events %s (system %+v)", describe(evs), sys)
	}
	if ch.State() != ChannelClosed || len(s.Channels()) != 0 {
		t.Fatalf("after expiry: %v", ch.State())
	}
}

func TestPostgresBindingsIDs(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	cfg := ChannelConfig{PostgresChanges: []PostgresBinding{
		{Event: "INSERT", Schema: "public", Table: "todos", Filter: "id=eq.1"},
		{Event: "*", Schema: "public", Table: "other"},
	}}
	ch, r := channel(t, s, "room1", cfg)
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ids := ch.ServerIDs()
	var serverIDs []int64
	for _, c := range srv.Conns() {
		for _, b := range c.Channels[0].PostgresChanges {
			var v struct{ ID int64 }
			json.Unmarshal(b, &v)
			serverIDs = append(serverIDs, v.ID)
		}
	}
	if len(ids) != 2 || ids[0] == 0 || ids[1] == 0 || ids[0] == ids[1] || len(serverIDs) != 2 || ids[0] != serverIDs[0] || ids[1] != serverIDs[1] {
		t.Fatalf("ids %v, server %v", ids, serverIDs)
	}
	evs := r.wait(t, "Subscribed to PostgreSQL", func(e []Event) bool {
		for _, ev := range e {
			if ev.Type == EventSystem && ev.System.Extension == "postgres_changes" && ev.System.Status == "ok" && ev.System.Message == "Subscribed to PostgreSQL" {
				return true
			}
		}
		return false
	})
	if evs[0].Status != Subscribed {
		t.Fatalf("first event %s", describe(evs))
	}
	if _, err := s.Channel("dup", ChannelConfig{PostgresChanges: []PostgresBinding{cfg.PostgresChanges[0], cfg.PostgresChanges[0]}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("duplicate bindings: %v", err)
	}
	if _, err := s.Channel("pub", ChannelConfig{Broadcast: BroadcastConfig{Replay: &Replay{Since: time.Now()}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("replay on a public channel: %v", err)
	}
	_ = context.Background
}

// A token set while the channel's join is under way reaches the server
// once the join is accepted (the join carried the old one).
func TestTokenChangedDuringJoin(t *testing.T) {
	srv := servertest.New(t)
	tap := newRec[Frame]()
	tok1 := srv.UserToken(t, "user-1", time.Hour, nil)
	s := dial(t, srv, fast, tapOut(tap), func(o *Options) { o.AccessToken = tok1 })
	// The server registers the socket a moment after the client sees it
	// open.
	var conns []server.ConnInfo
	eventually(t, "the server to list the socket", func() bool { conns = srv.Conns(); return len(conns) == 1 })
	// The server holds the join unread while the token changes.
	if err := srv.Pause(conns[0].ID, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ch, _ := channel(t, s, "room1", ChannelConfig{})
	done := make(chan error, 1)
	go func() { done <- ch.Subscribe(ctxT(t)) }()
	waitFrames(t, tap, Out, protocol.EventJoin, 1)
	tok2 := srv.UserToken(t, "user-1", 2*time.Hour, nil)
	s.SetAuth(tok2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pushes := waitFrames(t, tap, Out, protocol.EventAccessToken, 1)
	if pushes[0].Message.JoinRef != ch.JoinRef() || string(pushes[0].Message.Payload) != `{"access_token":"`+tok2+`"}` {
		t.Fatalf("access_token push %s", pushes[0].Message.Payload)
	}
	exp2, err := TokenExpiry(tok2)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to hold the new token", func() bool {
		for _, c := range srv.Conns() {
			for _, sc := range c.Channels {
				return sc.TokenExpires.Equal(exp2)
			}
		}
		return false
	})
}
