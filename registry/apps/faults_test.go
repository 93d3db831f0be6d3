package apps_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/mask/masktest"
	"rtm/realtime/proxy"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
)

// A kicked channel (phx_error) is errored, then rejoined by the client
// after its delay: attempt 2 with the delay observed.
func TestKickRejoin(t *testing.T) {
	srv := servertest.New(t)
	m := apps.New(apps.Options{})
	fd := newFeeder(m, 0, srv.AnonKey(), "2.0.0", "app")
	a := dialFed(t, srv, fd, nil)
	ch, err := a.Channel("room", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sub := m.Subscribe(16)
	defer sub.Close()
	if n := srv.Kick("realtime:room", server.KickError); n != 1 {
		t.Fatalf("kicked %d", n)
	}
	snap := eventually(t, m, "the rejoin", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:room")
		return c != nil && len(c.Attempts) == 2 && c.Status == apps.StatusJoined
	})
	c := channelOf(snap, 1, "realtime:room")
	if d := c.Attempts[1].Delay; d < 100*time.Millisecond || d > 5*time.Second || c.Attempts[1].Outcome != "ok" {
		t.Fatalf("attempts %+v", c.Attempts)
	}
	var statuses []apps.Status
	for len(statuses) < 3 {
		select {
		case ev := <-sub.Events():
			// The tap may deliver the first join's reply after Subscribe.
			if ev.Type == apps.TypeChannel && (len(statuses) > 0 || ev.Status == apps.StatusErrored) {
				statuses = append(statuses, ev.Status)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("statuses %v", statuses)
		}
	}
	if statuses[0] != apps.StatusErrored || statuses[1] != apps.StatusJoining || statuses[2] != apps.StatusJoined {
		t.Fatalf("statuses %v", statuses)
	}

	// phx_close: closed, with no rejoin.
	if n := srv.Kick("realtime:room", server.KickClose); n != 1 {
		t.Fatalf("kicked %d", n)
	}
	eventually(t, m, "closed", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:room")
		return c.Status == apps.StatusClosed && c.Reason == "phx_close"
	})
}

// A dropped socket reconnects: the new socket is attempt 2 of the same
// app connection, with the delay; the channel never left is flagged, and
// the rejoin that fell back to the anon key is flagged too.
func TestDropReconnect(t *testing.T) {
	srv := servertest.New(t)
	m := apps.New(apps.Options{})
	sub := m.Subscribe(0)
	var out bytes.Buffer
	streamed := make(chan error, 1)
	go func() { streamed <- sub.Stream(context.Background(), &out) }()
	fd := newFeeder(m, 0, srv.AnonKey(), "2.0.0", "supabase-js-web/2.119.0")
	user := srv.UserToken(t, "alice", time.Hour, nil)
	a := dialFed(t, srv, fd, func(o *realtime.Options) { o.AccessToken = user })
	ch, err := a.Channel("room", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The app loses its user session: it pushes the anon key and later
	// joins with it.
	a.SetAuth(srv.AnonKey())
	eventually(t, m, "the token push", func(s apps.Snapshot) bool {
		c := channelOf(s, 1, "realtime:room")
		return c != nil && len(c.TokenPushes) == 1
	})
	var ids []string
	for _, c := range srv.Conns() {
		ids = append(ids, c.ID)
	}
	if srv.Drop(ids...) != 1 {
		t.Fatal("no socket dropped")
	}
	snap := eventually(t, m, "the rejoin on socket 2", func(s apps.Snapshot) bool {
		c := channelOf(s, 2, "realtime:room")
		return c != nil && c.Status == apps.StatusJoined
	})
	s1, s2 := socketOf(snap, 1), socketOf(snap, 2)
	if s1.Closed.IsZero() || s1.CloseCode != 1006 || s1.ClosedBy != "upstream" {
		t.Fatalf("socket 1 %+v", s1)
	}
	if s2.Connection != 1 || s2.Attempt != 2 || s2.Previous != 1 || s2.ReconnectDelay < 150*time.Millisecond || s2.ReconnectDelay > 10*time.Second {
		t.Fatalf("socket 2 link %+v", s2)
	}
	if c := channelOf(snap, 1, "realtime:room"); c.Status != apps.StatusClosed || c.TokenPushes[0].Token.Role != "anon" {
		t.Fatalf("channel on socket 1 %+v", c)
	}
	// The upstream ended the socket: the app had no chance to leave.
	if hasFlag(snap, apps.FlagNeverLeft, 1, "realtime:room") {
		t.Fatalf("never_left on a socket the upstream dropped: %+v", snap.Flags)
	}
	if !hasFlag(snap, apps.FlagIdentityChanged, 2, "realtime:room") {
		t.Fatalf("no identity_changed flag: %+v", snap.Flags)
	}
	sub.Close()
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type":"app_flag"`, `"flag":"identity_changed"`, `"action":"token"`, `"attempt":2`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %s in the NDJSON", want)
		}
	}
	if masktest.Holds(out.Bytes(), user) || masktest.Holds(out.Bytes(), srv.AnonKey()) {
		t.Fatal("a key is unmasked in the NDJSON")
	}
	if st := m.Stats(); st.Frames == 0 || st.SocketsDropped != 0 || st.UnknownSocket != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A token that expires with no refresh is flagged; one refreshed in
// time is not.
func TestTokenExpiry(t *testing.T) {
	srv := servertest.New(t)
	m := apps.New(apps.Options{})
	hb := func(o *realtime.Options) { o.HeartbeatInterval = 100 * time.Millisecond }
	stale := dialFed(t, srv, newFeeder(m, 0, srv.AnonKey(), "2.0.0", "stale"), func(o *realtime.Options) {
		hb(o)
		o.AccessToken = srv.UserToken(t, "stale", 2*time.Second, nil)
	})
	fresh := dialFed(t, srv, newFeeder(m, 100, srv.AnonKey(), "2.0.0", "fresh"), func(o *realtime.Options) {
		hb(o)
		o.AccessToken = srv.UserToken(t, "fresh", 2*time.Second, nil)
	})
	for _, s := range []*realtime.Socket{stale, fresh} {
		ch, err := s.Channel("room", realtime.ChannelConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	fresh.SetAuth(srv.UserToken(t, "fresh", time.Hour, nil))
	eventually(t, m, "the expiry flag", func(s apps.Snapshot) bool { return hasFlag(s, apps.FlagTokenExpired, 1, "realtime:room") })
	time.Sleep(300 * time.Millisecond) // heartbeats of the fresh socket after the first expiry
	snap := m.Snapshot()
	if hasFlag(snap, apps.FlagTokenExpired, 101, "") {
		t.Fatalf("the refreshed token was flagged: %+v", snap.Flags)
	}
	c := channelOf(snap, 101, "realtime:room")
	if len(c.TokenPushes) != 1 || time.Until(c.TokenPushes[0].Token.Expiry) < 30*time.Minute || c.Token.Subject != "fresh" {
		t.Fatalf("fresh channel %+v", c)
	}
}

// TestFaultEvents: the proxy's faults reach the model's subscribers as
// app_fault events, masked.
func TestFaultEvents(t *testing.T) {
	m := apps.New(apps.Options{})
	sub := m.Subscribe(8)
	defer sub.Close()
	now := time.Now()
	m.Fault(proxy.FaultEvent{Conn: 2, Time: now, Kind: proxy.FaultKick, Topic: "realtime:room1", Detail: "phx_error"})
	m.Fault(proxy.FaultEvent{Time: now, Kind: proxy.FaultRejectJoin, Armed: true, Topic: "realtime:room1", Detail: "2 Unauthorized: eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlc2lnbmF0dXJl"})
	var got []apps.Event
	for len(got) < 2 {
		select {
		case ev := <-sub.Events():
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("events %+v", got)
		}
	}
	if e := got[0]; e.Type != apps.TypeFault || e.Socket != 2 || e.Action != proxy.FaultKick || e.Topic != "realtime:room1" || e.Reason != "phx_error" || e.Text != "" {
		t.Fatalf("kick event %+v", e)
	}
	if e := got[1]; e.Type != apps.TypeFault || e.Text != "armed" || strings.Contains(e.Reason, "c2lnbmF0dXJl") {
		t.Fatalf("reject event (must be masked) %+v", e)
	}
}

// A socket the app opens while the proxy holds its previous one frozen
// (the app gave up on it, its close not relayed yet) is that one's next
// attempt, from the freeze's start; not so once the freeze is over or
// thawed.
func TestFrozenSocketReplaced(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	m := apps.New(apps.Options{})
	h := http.Header{"X-Client-Info": {"phoenix-app"}}
	open := func(id uint64, d time.Duration) {
		m.Open(proxy.ConnInfo{ID: id, RawQuery: "vsn=2.0.0", Header: h, Opened: at(d)})
	}
	freeze := func(id uint64, d time.Duration, dur string) {
		m.Fault(proxy.FaultEvent{Conn: id, Time: at(d), Kind: proxy.FaultFreeze, Detail: dur})
	}
	open(1, 0)
	freeze(1, time.Second, "5s")
	freeze(1, 2*time.Second, "4s") // extended: frozen from 1 s to 6 s
	open(2, 3*time.Second)         // the app's reconnect, 2 s after the freeze began
	m.Closed(proxy.Closed{Conn: 1, Time: at(6 * time.Second), By: proxy.FromApp, Code: 1000, Reason: "heartbeat timeout"})
	// Frozen and thawed, or frozen and over: a socket opened then is
	// another app's (or tab's), not a reconnect.
	open(3, 7*time.Second)
	freeze(3, 8*time.Second, "5s")
	freeze(3, 9*time.Second, "0s")
	open(4, 10*time.Second)
	freeze(4, 11*time.Second, "1s")
	open(5, 13*time.Second)

	snap := m.Snapshot()
	if s := socketOf(snap, 2); s.Connection != 1 || s.Attempt != 2 || s.Previous != 1 || s.ReconnectDelay != 2*time.Second {
		t.Errorf("socket 2: connection %d attempt %d previous %d delay %v; want 1, 2, 1, 2s", s.Connection, s.Attempt, s.Previous, s.ReconnectDelay)
	}
	for _, id := range []uint64{3, 4, 5} {
		if s := socketOf(snap, id); s.Attempt != 1 || s.Previous != 0 {
			t.Errorf("socket %d linked: attempt %d previous %d", id, s.Attempt, s.Previous)
		}
	}
}
