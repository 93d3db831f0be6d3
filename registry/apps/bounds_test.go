package apps_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/realtime/token"
	"rtm/registry/apps"
)

// small are bounds a test can overflow.
var small = apps.Options{MaxOpenSockets: 3, MaxClosedSockets: 2, MaxChannels: 3, MaxAttempts: 2, MaxMessages: 4,
	MaxMessageBytes: 256, MaxPayloadBytes: 40, MaxMembers: 3, MaxMetas: 2, MaxMetaBytes: 64, MaxPresenceBytes: 512,
	MaxTokenPushes: 2, MaxFlags: 3, EventBuffer: 2, ChannelLimit: 1}

// serverFrame and clientFrame encode m with the real codec.
func serverFrame(t testing.TB, v protocol.Version, m protocol.Message) ([]byte, bool) {
	b, bin, err := v.AppendServer(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b, bin
}

func clientFrame(t testing.TB, v protocol.Version, m protocol.Message) ([]byte, bool) {
	b, bin, err := v.AppendClient(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b, bin
}

// checkBounds fails when a snapshot holds more than opt allows.
func checkBounds(t testing.TB, snap apps.Snapshot, opt apps.Options) {
	t.Helper()
	if len(snap.Flags) > opt.MaxFlags {
		t.Fatalf("%d flags", len(snap.Flags))
	}
	closed := 0
	for _, s := range snap.Sockets {
		if !s.Closed.IsZero() {
			closed++
		}
		if len(s.Channels) > opt.MaxChannels {
			t.Fatalf("%d channels", len(s.Channels))
		}
		for _, c := range s.Channels {
			bytes := 0
			for _, m := range c.Messages {
				bytes += len(m.Payload)
				if len(m.Payload) > opt.MaxPayloadBytes && m.Payload[0] != '(' {
					t.Fatalf("payload of %d bytes", len(m.Payload))
				}
			}
			if len(c.Messages) > opt.MaxMessages || bytes > opt.MaxMessageBytes || len(c.Attempts) > opt.MaxAttempts ||
				len(c.Presence) > opt.MaxMembers || len(c.TokenPushes) > opt.MaxTokenPushes {
				t.Fatalf("channel over its bounds: %+v", c)
			}
			for _, mb := range c.Presence {
				if len(mb.Metas) > opt.MaxMetas {
					t.Fatalf("%d metas", len(mb.Metas))
				}
				for _, mt := range mb.Metas {
					if len(mt.JSON) > opt.MaxMetaBytes {
						t.Fatalf("meta of %d bytes", len(mt.JSON))
					}
				}
			}
		}
	}
	if closed > opt.MaxClosedSockets || len(snap.Sockets)-closed > opt.MaxOpenSockets {
		t.Fatalf("%d sockets, %d closed", len(snap.Sockets), closed)
	}
}

// Every store drops beyond its bound and counts what it dropped.
func TestBounds(t *testing.T) {
	m := apps.New(small)
	sub := m.Subscribe(0)
	defer sub.Close()
	now := time.Now()
	v := protocol.V2
	for id := uint64(1); id <= 4; id++ {
		m.Open(proxy.ConnInfo{ID: id, RawQuery: "vsn=2.0.0", Opened: now})
	}
	m.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=2.0.0", Opened: now}) // a duplicate ID
	feed := func(dir proxy.Direction, b []byte, bin bool) {
		m.Frame(proxy.Frame{Conn: 1, Dir: dir, Time: now, Binary: bin, Data: b})
	}
	for i := 0; i < 5; i++ {
		topic := protocol.Topic(fmt.Sprint("t", i))
		b, bin := clientFrame(t, v, protocol.Message{Topic: topic, Event: protocol.EventJoin, Ref: "1", JoinRef: "1", Payload: json.RawMessage(`{"config":{}}`)})
		feed(proxy.FromApp, b, bin)
		b, bin = serverFrame(t, v, protocol.Message{Topic: topic, Event: protocol.EventReply, Ref: "1", JoinRef: "1", Payload: protocol.ReplyPayload("ok", nil)})
		feed(proxy.ToApp, b, bin)
	}
	// t1 joined again while held.
	b, bin := clientFrame(t, v, protocol.Message{Topic: "realtime:t1", Event: protocol.EventJoin, Ref: "9", JoinRef: "9", Payload: json.RawMessage(`{"config":{}}`)})
	feed(proxy.FromApp, b, bin)
	b, bin = serverFrame(t, v, protocol.Message{Topic: "realtime:t1", Event: protocol.EventReply, Ref: "9", JoinRef: "9", Payload: protocol.ReplyPayload("ok", nil)})
	feed(proxy.ToApp, b, bin)
	t0 := protocol.Topic("t0")
	for i := 0; i < 4; i++ { // four joins refused
		ref := fmt.Sprint("r", i)
		b, bin := clientFrame(t, v, protocol.Message{Topic: t0, Event: protocol.EventJoin, Ref: ref, JoinRef: ref, Payload: json.RawMessage(`{"config":{}}`)})
		feed(proxy.FromApp, b, bin)
		b, bin = serverFrame(t, v, protocol.Message{Topic: t0, Event: protocol.EventReply, Ref: ref, JoinRef: ref, Payload: protocol.ErrorReplyPayload("Unauthorized: no")})
		feed(proxy.ToApp, b, bin)
	}
	for i := 0; i < 10; i++ {
		b, bin := serverFrame(t, v, protocol.Message{Topic: t0, Event: protocol.EventBroadcast,
			Broadcast: &protocol.Broadcast{Event: "e", Payload: []byte(`{"text":"a long enough payload to clip at forty bytes"}`)}})
		feed(proxy.ToApp, b, bin)
		tok := fmt.Sprintf(`{"access_token":"t%d"}`, i)
		b, bin = clientFrame(t, v, protocol.Message{Topic: t0, Event: protocol.EventAccessToken, Ref: "x", JoinRef: "r3", Payload: json.RawMessage(tok)})
		feed(proxy.FromApp, b, bin)
	}
	b, bin = serverFrame(t, v, protocol.Message{Topic: t0, Event: protocol.EventPresenceState, Payload: json.RawMessage(`{"a":{"metas":[{"phx_ref":"1"},{"phx_ref":"2"},{"phx_ref":"3"}]},"b":{"metas":[{"phx_ref":"4","x":"` + fmt.Sprintf("%0100d", 0) + `"}]},"c":{"metas":[{"phx_ref":"6"}]},"d":{"metas":[{"phx_ref":"5"}]}}`)})
	feed(proxy.ToApp, b, bin)
	b, bin = serverFrame(t, v, protocol.Message{Topic: t0, Event: protocol.EventPresenceDiff, Payload: json.RawMessage(`{"joins":{},"leaves":{"a":{"metas":[{"phx_ref":"1"},{"phx_ref":"2"}]},"zz":{"metas":[]}}}`)})
	feed(proxy.ToApp, b, bin)
	snap := m.Snapshot()
	checkBounds(t, snap, small)
	s1 := socketOf(snap, 1)
	c := channelOf(snap, 1, t0)
	if s1.ChannelFramesDropped != 4 || c.AttemptsDropped != 3 || c.MessagesDropped == 0 || c.TokenPushesDropped != 8 || c.PresenceDropped == 0 {
		t.Fatalf("socket %+v", s1)
	}
	if len(c.Attempts) != 2 || c.Attempts[0].Outcome != "error" || c.Attempts[1].Outcome != "error" || c.Attempts[1].Ref != "r3" || c.Status != apps.StatusErrored || c.Reason != "Unauthorized: no" {
		t.Fatalf("attempts %+v", c.Attempts)
	}
	// a lost its two kept metas (the third was over MaxMetas), d was
	// over MaxMembers, b's meta is clipped.
	if len(c.Presence) != 2 || c.Presence[0].Key != "b" || c.Presence[1].Key != "c" || c.PresenceDropped != 2 || len(c.Presence[0].Metas[0].JSON) != small.MaxMetaBytes {
		t.Fatalf("presence %+v", c.Presence)
	}
	if n := len(c.Messages); n != small.MaxMessages || c.Messages[n-2].Event != protocol.EventPresenceState || c.Messages[n-1].Event != protocol.EventPresenceDiff {
		t.Fatalf("the ring is not oldest first: %+v", c.Messages)
	}
	if msg := c.Messages[0]; !msg.Clipped || len(msg.Payload) != small.MaxPayloadBytes || msg.UserEvent != "e" {
		t.Fatalf("message %+v", msg)
	}

	for id := uint64(1); id <= 3; id++ { // the app closes: never_left flags
		m.Closed(proxy.Closed{Conn: id, Time: now, By: proxy.FromApp, Code: 1000})
	}
	m.Closed(proxy.Closed{Conn: 3, Time: now}) // twice
	snap = m.Snapshot()
	checkBounds(t, snap, small)
	st := snap.Stats
	// The duplicate ID and socket 4 were refused, socket 1 evicted.
	if st.SocketsDropped != 3 || st.FlagsDropped == 0 || st.EventsDropped == 0 || sub.Dropped() != st.EventsDropped || st.UnknownSocket != 1 {
		t.Fatalf("stats %+v, subscriber drops %d", st, sub.Dropped())
	}
	if len(snap.Sockets) != 2 || snap.Sockets[0].ID != 2 || snap.Sockets[1].ID != 3 {
		t.Fatalf("sockets %+v", snap.Sockets)
	}
	if evs := drain(sub); len(evs) != small.EventBuffer {
		t.Fatalf("%d events queued", len(evs))
	}
}

func drain(sub *apps.Subscription) []apps.Event {
	var evs []apps.Event
	for {
		select {
		case ev := <-sub.Events():
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// Tick flags a token that expired on a quiet socket; MaxBytes bounds the
// bytes kept over every socket, and an evicted socket gives its bytes
// back.
func TestTickAndMaxBytes(t *testing.T) {
	opt := apps.Options{MaxBytes: 60, MaxClosedSockets: 1}
	m := apps.New(opt)
	now := time.Now()
	tok, err := token.User([]byte("secret"), "dave", now, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.V1
	m.Open(proxy.ConnInfo{ID: 1, Opened: now})
	b, _ := clientFrame(t, v, protocol.Message{Topic: "realtime:r", Event: protocol.EventJoin, Ref: "1", JoinRef: "1", Payload: json.RawMessage(`{"config":{},"access_token":"` + tok + `"}`)})
	m.Frame(proxy.Frame{Conn: 1, Dir: proxy.FromApp, Time: now, Data: b})
	b, _ = serverFrame(t, v, protocol.Message{Topic: "realtime:r", Event: protocol.EventReply, Ref: "1", JoinRef: "1", Payload: protocol.ReplyPayload("ok", nil)})
	m.Frame(proxy.Frame{Conn: 1, Dir: proxy.ToApp, Time: now, Data: b})
	ver := m.Version()
	m.Tick(now.Add(30 * time.Second))
	if len(m.Snapshot().Flags) != 0 {
		t.Fatal("flagged before the expiry")
	}
	if m.Version() != ver {
		t.Fatal("a tick that changed nothing moved the version")
	}
	m.Tick(now.Add(2 * time.Minute))
	if m.Version() == ver {
		t.Fatal("the expiry flag did not move the version")
	}
	ver = m.Version()
	m.Tick(now.Add(3 * time.Minute))
	snap := m.Snapshot()
	if len(snap.Flags) != 1 || !hasFlag(snap, apps.FlagTokenExpired, 1, "realtime:r") {
		t.Fatalf("flags %+v", snap.Flags)
	}
	if m.Version() != ver {
		t.Fatal("a tick that flagged nothing new moved the version")
	}
	for i := 0; i < 3; i++ {
		b, _ = serverFrame(t, v, protocol.Message{Topic: "realtime:r", Event: protocol.EventBroadcast, JoinRef: "1",
			Payload: json.RawMessage(`{"type":"broadcast","event":"e","payload":{"text":"forty bytes of text, or about that"}}`)})
		m.Frame(proxy.Frame{Conn: 1, Dir: proxy.ToApp, Time: now, Data: b})
	}
	if m.Version() == ver {
		t.Fatal("frames did not move the version")
	}
	snap = m.Snapshot()
	if c := channelOf(snap, 1, "realtime:r"); len(c.Messages) != 1 || c.MessagesDropped != 2 || snap.Stats.Bytes > opt.MaxBytes || snap.Stats.Bytes == 0 {
		t.Fatalf("messages %+v, stats %+v", c.Messages, snap.Stats)
	}
	m.Closed(proxy.Closed{Conn: 1, Time: now})
	m.Open(proxy.ConnInfo{ID: 2, Opened: now})
	m.Closed(proxy.Closed{Conn: 2, Time: now})
	if st := m.Stats(); st.Bytes != 0 || st.SocketsDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}
