package apps_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/mask/masktest"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
)

// A session of rtm's client through the model: broadcast with self and
// ack (text and, in 2.0.0, binary), presence as the app receives it, a
// postgres_changes join the server refuses (and the client's rejoin
// ladder), heartbeats, a leave; every key stays masked.
func TestSession(t *testing.T) {
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		t.Run(vsn, func(t *testing.T) { testSession(t, vsn) })
	}
}

func testSession(t *testing.T, vsn string) {
	srv := servertest.New(t)
	m := apps.New(apps.Options{})
	sub := m.Subscribe(0)
	var ndjson bytes.Buffer
	streamDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { streamDone <- sub.Stream(ctx, &ndjson) }()

	user := srv.UserToken(t, "alice", time.Hour, nil)
	fd := newFeeder(m, 0, srv.AnonKey(), vsn, "supabase-js-node/2.119.0")
	v, _ := protocol.ParseVersion(vsn)
	a := dialFed(t, srv, fd, func(o *realtime.Options) {
		o.Vsn, o.AccessToken = v, user
		o.HeartbeatInterval, o.HeartbeatOnOpen = 100*time.Millisecond, true
	})
	b := dialFed(t, srv, newFeeder(apps.New(apps.Options{}), 0, srv.AnonKey(), vsn, "peer"), nil)

	ch, bch, padded := session(t, srv, m, vsn, a, b)
	const topic = "realtime:room1"
	if err := bch.Untrack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, m, "bob's leave", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, topic)
		return c != nil && len(c.Presence) == 1 && c.PresenceLeaves >= 1
	})

	pg, err := a.Channel("pg", realtime.ChannelConfig{PostgresChanges: []realtime.PostgresBinding{{Event: "INSERT", Schema: "public", Table: "todos"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The next two joins are refused: the client's ladder rejoins.
	srv.RejectJoins(server.Rejection{Count: 2, Reason: "Unauthorized: not now"})
	guarded, err := a.Channel("guarded", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_ = guarded.Subscribe(ctxT(t)) // refused; the client keeps rejoining
	eventually(t, m, "two refused joins, then joined, and a heartbeat", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:guarded")
		return c != nil && len(c.Attempts) == 3 && c.Status == apps.StatusJoined && socketOf(s, 1).Heartbeats > 0
	})
	if err := guarded.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	snap := eventually(t, m, "room1 left", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, topic)
		return c.Status == apps.StatusLeft
	})

	s := socketOf(snap, 1)
	if s.RemoteAddr != "127.0.0.1:5555" || s.ClientInfo != "supabase-js-node/2.119.0" || s.Vsn != vsn || s.Token.Role != "anon" || s.Token.Masked == "" {
		t.Fatalf("socket %+v", s)
	}
	if s.Attempt != 1 || s.Connection != 1 || s.Opened.IsZero() || !s.Closed.IsZero() {
		t.Fatalf("socket link %+v", s)
	}
	if s.HeartbeatRTT <= 0 || s.HeartbeatRTT > 5*time.Second {
		t.Fatalf("heartbeat rtt %v", s.HeartbeatRTT)
	}
	if s.FramesFromApp == 0 || s.FramesToApp == 0 || s.BytesFromApp == 0 || s.BytesToApp == 0 || s.Undecodable != 0 {
		t.Fatalf("counters %+v", s)
	}
	c := channelOf(snap, 1, topic)
	if !c.Config.BroadcastSelf || !c.Config.BroadcastAck || c.Config.PresenceKey != "alice" || !c.Config.PresenceEnabled || c.Private {
		t.Fatalf("config %+v", c.Config)
	}
	if len(c.Attempts) != 1 || c.Attempts[0].Outcome != "ok" || c.Attempts[0].Role != "authenticated" || c.Attempts[0].Subject != "alice" || c.Attempts[0].Delay != 0 {
		t.Fatalf("attempts %+v", c.Attempts)
	}
	if c.Token.Subject != "alice" || c.Token.Expiry.IsZero() {
		t.Fatalf("channel token %+v", c.Token)
	}
	if len(c.Presence) != 1 || c.Presence[0].Key != "alice" || len(c.Presence[0].Metas) != 1 || !strings.Contains(c.Presence[0].Metas[0].JSON, `"name":"alice"`) || c.Presence[0].Metas[0].Ref == "" {
		t.Fatalf("presence %+v", c.Presence)
	}
	want := map[string]bool{"app->upstream hello": false, "upstream->app hello": false, "upstream->app from-bob": false}
	if vsn == "2.0.0" {
		want["app->upstream bin"], want["upstream->app bin"] = false, false
	}
	for _, msg := range c.Messages {
		if msg.Event == protocol.EventBroadcast {
			want[msg.Dir+" "+msg.UserEvent] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("broadcast %q not in the messages %+v", k, c.Messages)
		}
	}
	if c.MessagesFromApp == 0 || c.MessagesToApp == 0 || c.BytesFromApp == 0 || c.BytesToApp == 0 {
		t.Fatalf("message counters %+v", c)
	}
	p := channelOf(snap, 1, "realtime:pg")
	if b := p.Config.PostgresChanges; len(b) != 1 || b[0].Table != "todos" || b[0].Event != "INSERT" || b[0].ID == 0 || int64(b[0].ID) != pg.ServerIDs()[0] {
		t.Fatalf("pg bindings %+v, server ids %v", p.Config.PostgresChanges, pg.ServerIDs())
	}
	g := channelOf(snap, 1, "realtime:guarded")
	for i, at := range g.Attempts[:2] {
		if at.Outcome != "error" || at.Reason != "Unauthorized: not now" {
			t.Fatalf("attempt %d %+v", i, at)
		}
	}
	if g.Attempts[2].Outcome != "ok" || g.Status != apps.StatusLeft {
		t.Fatalf("guarded %+v", g)
	}
	for _, at := range g.Attempts[1:] {
		if at.Delay < 100*time.Millisecond || at.Delay > 5*time.Second {
			t.Fatalf("rejoin delay %v, the client waits 150 ms", at.Delay)
		}
	}
	if len(snap.Flags) != 0 {
		t.Fatalf("flags %+v", snap.Flags)
	}

	fd.close(1000, "bye")
	_ = eventually(t, m, "closed", func(s apps.Snapshot) bool { return !socketOf(s, 1).Closed.IsZero() })
	cancel()
	<-streamDone
	sub.Close()
	sub.Close()
	if sub.Dropped() != 0 {
		t.Fatalf("%d events dropped", sub.Dropped())
	}
	types := map[apps.EventType]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(ndjson.Bytes()), []byte("\n")) {
		if !bytes.HasPrefix(line, []byte(`{"type":"`)) || bytes.Contains(line, []byte(`\u003e`)) {
			t.Fatalf("line %s", line)
		}
		var ev apps.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		types[ev.Type]++
	}
	for _, ty := range []apps.EventType{apps.TypeSocket, apps.TypeChannel, apps.TypeMessage, apps.TypePresence} {
		if types[ty] == 0 {
			t.Errorf("no %s event in %v", ty, types)
		}
	}
	js, err := json.Marshal(m.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{srv.AnonKey(), user, srv.ServiceRoleKey(), srv.SecretKey(), padded} {
		if masktest.Holds(js, key) || masktest.Holds(ndjson.Bytes(), key) {
			t.Errorf("a key is unmasked in the snapshot or the NDJSON")
		}
	}
	if !bytes.Contains(js, []byte(`"subject":"alice"`)) {
		t.Fatal("the snapshot lost the subject")
	}
}

// session joins room1 on a (alice: broadcast self and ack, presence)
// and b (bob, presence), tracks both, waits until m sees both present,
// then sends from each (payloads holding secrets, which m must mask)
// and, under 2.0.0, a binary broadcast from a. padded is the
// masktest.PaddedJWT bob sent, for the masking checks.
func session(t *testing.T, srv *servertest.Server, m *apps.Model, vsn string, a, b *realtime.Socket) (ch, bch *realtime.Channel, padded string) {
	t.Helper()
	ch, err := a.Channel("room1", realtime.ChannelConfig{Broadcast: realtime.BroadcastConfig{Self: true, Ack: true},
		Presence: realtime.PresenceConfig{Key: "alice", Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	bch, err = b.Channel("room1", realtime.ChannelConfig{Presence: realtime.PresenceConfig{Key: "bob", Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*realtime.Channel{ch, bch} {
		if err := c.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Track(ctxT(t), json.RawMessage(`{"name":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	if err := bch.Track(ctxT(t), json.RawMessage(`{"name":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, m, "bob's presence", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:room1")
		return c != nil && len(c.Presence) == 2
	})
	if err := ch.Send(ctxT(t), "hello", json.RawMessage(`{"n":1,"apikey":"`+srv.ServiceRoleKey()+`"}`)); err != nil {
		t.Fatal(err)
	}
	padded = masktest.PaddedJWT(srv.Secret(), map[string]any{"role": "service_role"})
	if err := bch.Send(ctxT(t), "from-bob", masktest.Payload(srv.ServiceRoleKey(), srv.SecretKey(), padded)); err != nil {
		t.Fatal(err)
	}
	if vsn == "2.0.0" {
		if err := ch.SendBinary(ctxT(t), "bin", []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	return ch, bch, padded
}
