package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/registry"
	"rtm/registry/serverctl"
)

func TestSubscribeEntityDeliversChanges(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var got []registry.Change
	h, err := e.m.SubscribeEntity(ctx(t), "project", "456", registry.ChangeFilter{}, func(c registry.Change) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	cols := []protocol.Column{{Name: "id", Type: "int8"}, {Name: "done", Type: "bool"}}
	// A change of another row does not match the entity's filter.
	e.srv.EmitChange("", protocol.ChangeData{Schema: "public", Table: "project", Type: "UPDATE", Columns: cols,
		CommitTimestamp: "2026-01-01T00:00:00.000Z", Record: json.RawMessage(`{"id":"457","done":"f"}`)})
	e.srv.EmitChange("", protocol.ChangeData{Schema: "public", Table: "project", Type: "UPDATE", Columns: cols,
		CommitTimestamp: "2026-01-01T00:00:00.000Z", Record: json.RawMessage(`{"id":"456","done":"t"}`)})
	eventually(t, "the change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	c := got[0]
	mu.Unlock()
	row, err := c.New()
	if err != nil || c.Type != "UPDATE" || c.Channel != h.Name() || row["id"] != float64(456) || row["done"] != true {
		t.Fatalf("change %+v row %v err %v", c, row, err)
	}
	// The change, and the server's word that changes flow (the server
	// decides when to send it), are both kept and counted.
	eventually(t, "the readiness message", func() bool { return e.info(h.Name()).Ready })
	msgs, _ := e.m.Messages(h.Name(), 0)
	var kinds []string
	for _, m := range msgs {
		kinds = append(kinds, string(m.Kind)+":"+m.Event)
	}
	slices.Sort(kinds)
	if strings.Join(kinds, ",") != "postgres_changes:UPDATE,system:Subscribed to PostgreSQL" {
		t.Fatalf("messages %v", kinds)
	}
	if i := e.info(h.Name()); i.MessagesIn != 2 {
		t.Fatalf("info %+v", i)
	}
	// A second filter on the same channel rejoins with both bindings.
	h2, err := e.m.SubscribeEntity(ctx(t), "project", "456", registry.ChangeFilter{Event: "DELETE", NoFilter: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejoin with two bindings", func() bool {
		i := e.info(h2.Name())
		return i.Status == registry.StatusConnected && len(i.Bindings) == 2 && i.Bindings[1].ID != 0
	})
	if i := e.info(h.Name()); i.RefCount != 2 {
		t.Fatalf("ref count %d", i.RefCount)
	}
}

func TestEventStream(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) {
		o.StatsInterval = 20 * time.Millisecond
		o.Policy = registry.Fixed{Interval: 10 * time.Millisecond}
	}))
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Frames: true})
	defer sub.Close()
	seen := map[registry.EventType]int{}
	var mu sync.Mutex
	var lines [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.Events() {
			b, err := json.Marshal(ev)
			if err != nil {
				t.Errorf("marshal %T: %v", ev, err)
				continue
			}
			mu.Lock()
			seen[ev.EventType()]++
			lines = append(lines, b)
			mu.Unlock()
		}
	}()
	h, err := e.m.JoinPresence(ctx(t), "contact", "123", registry.PresenceUser{UserID: "alice"},
		registry.OnBroadcast("*", func(registry.Broadcast) {}))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := h.Broadcast(ctx(t), "hello", json.RawMessage(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	e.srv.Broadcast(h.Name().Topic(), "cursor", json.RawMessage(`{"x":1}`))
	if err := e.m.Faults().InjectChannelError(h.Name()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every event type", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, typ := range []registry.EventType{registry.TypeChannelState, registry.TypeSocket, registry.TypePresence,
			registry.TypeMessage, registry.TypeRetry, registry.TypeLog, registry.TypeStats, registry.TypeFrame} {
			if seen[typ] == 0 {
				if testing.Verbose() {
					t.Logf("missing %s (seen %v)", typ, seen)
				}
				return false
			}
		}
		return true
	})
	e.waitStatus(h.Name(), registry.StatusConnected)
	sub.Close()
	<-done
	sub.Wait()
	// Every line decodes back, and no secret leaks into the stream.
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lines {
		if _, err := registry.DecodeEvent(l); err != nil {
			t.Fatalf("decode %s: %v", l, err)
		}
		if bytes.Contains(l, []byte(e.srv.AnonKey())) {
			t.Fatalf("API key in the event stream: %s", l)
		}
	}
	var export bytes.Buffer
	if err := e.m.Export(&export); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&export)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if _, err := registry.DecodeEvent(sc.Bytes()); err != nil {
			t.Fatalf("export line %d: %v", n, err)
		}
		n++
	}
	if n == 0 || strings.Contains(export.String(), e.srv.AnonKey()) {
		t.Fatalf("export: %d lines", n)
	}
}

func TestSlowSubscriberDoesNotBlockAndSeesDrops(t *testing.T) {
	e := newEnv(t)
	slow := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Buffer: 10, Types: []registry.EventType{registry.TypeMessage, registry.TypeChannelState}})
	defer slow.Close()
	var mu sync.Mutex
	n := 0
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1", registry.OnBroadcast("*", func(registry.Broadcast) {
		mu.Lock()
		n++
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		e.srv.Broadcast(h.Name().Topic(), "tick", json.RawMessage(`{"i":`+itoa(i%10)+`}`))
	}
	// The manager keeps up although the subscriber reads nothing.
	eventually(t, "all broadcasts at the listener", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return n == 300
	})
	if slow.Dropped() != 290 || e.m.EventsDropped() < 290 {
		t.Fatalf("dropped %d (manager %d), want 290", slow.Dropped(), e.m.EventsDropped())
	}
	evs := slow.Drain(nil)
	var last registry.Event
	states := 0
	for _, ev := range evs {
		if _, ok := ev.(registry.ChannelStateEvent); ok {
			states++
		}
		last = ev
	}
	if d, ok := last.(registry.DroppedEvent); !ok || d.Total != 290 {
		t.Fatalf("last event %#v, want the drop notice", last)
	}
	if states == 0 {
		t.Fatal("state events were dropped")
	}
	if e.info(h.Name()).MessagesIn != 300 {
		t.Fatal("messages not counted")
	}
}

func TestFreezeHeartbeatTimeoutAndRecovery(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.HeartbeatInterval = 150 * time.Millisecond }))
	h, err := e.m.JoinPresence(ctx(t), "contact", "1", registry.PresenceUser{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an RTT sample", func() bool { return len(e.m.Snapshot().Socket.RTTHistory) > 0 })
	if n, err := e.m.Faults().Freeze(time.Hour); err != nil || n != 1 {
		t.Fatalf("freeze %d %v", n, err)
	}
	if st := e.m.Snapshot().Faults; st.FrozenUntil.IsZero() {
		t.Fatal("freeze not reported")
	}
	// The heartbeat goes unanswered; the client reconnects (a new
	// connection, not frozen) and the channel rejoins with its presence.
	eventually(t, "the reconnect", func() bool { return e.m.Snapshot().Socket.Reconnects >= 1 })
	e.waitStatus(h.Name(), registry.StatusConnected)
	eventually(t, "alice tracked again", func() bool {
		us, _ := e.m.Presence(h.Name())
		return len(us) == 1 && us[0].UserID == "alice"
	})
	found := false
	for _, r := range e.m.Logs(0) {
		if r.Message == "Heartbeat timeout" {
			found = true
		}
	}
	if !found {
		t.Fatal("heartbeat timeout not logged")
	}
}

func TestInjectedChannelErrorIsRetried(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.Policy = registry.Fixed{Interval: 10 * time.Millisecond} }))
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Faults().InjectChannelError(h.Name()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejoin after the error", func() bool {
		i := e.info(h.Name())
		return i.Joins == 2 && i.Status == registry.StatusConnected && i.LastErrorCode == "CHANNEL_ERROR"
	})
	if m := e.m.Metrics(); m.ChannelAttempts != 1 || m.Errors == 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestExpireTokenThenRefresh(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.Policy = registry.Fixed{Interval: 10 * time.Millisecond, Max: 2} }))
	tok := e.srv.UserToken(t, "u1", time.Hour, nil)
	e.m.SetToken(tok)
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if i := e.info(h.Name()); i.TokenExpiry.IsZero() {
		t.Fatal("token expiry unknown")
	}
	if err := e.m.Faults().ExpireToken(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// The server closes the channel; rejoins carry the expired token and
	// are refused; the policy gives up.
	info := e.waitStatus(h.Name(), registry.StatusError)
	if info.LastErrorCode != "InvalidJWTToken" || !strings.Contains(info.LastError, "expired") {
		t.Fatalf("info %+v", info)
	}
	if tk := e.m.Token(); tk.Subject != "u1" || !tk.Expiry.Before(time.Now()) {
		t.Fatalf("token %+v", tk)
	}
	// A fresh token and a manual retry recover it.
	e.m.SetToken(e.srv.UserToken(t, "u1", time.Hour, nil))
	if err := e.m.RetryNow(ctx(t), h.Name()); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(h.Name(), registry.StatusConnected)
	for _, r := range e.m.Logs(0) {
		if strings.Contains(r.Message, tok) {
			t.Fatal("token in a log message")
		}
		for _, a := range r.Attrs {
			if strings.Contains(a.Value, tok[len(tok)-20:]) {
				t.Fatalf("token in log attr %s=%s", a.Key, a.Value)
			}
		}
	}
	frames, _ := e.m.Frames(h.Name(), 0)
	if len(frames) == 0 {
		t.Fatal("no frames kept")
	}
	for _, f := range frames {
		if strings.Contains(f.Text, tok[len(tok)-20:]) {
			t.Fatalf("token in a kept frame: %s", f.Text)
		}
	}
}

func TestFailConnectsAndLatency(t *testing.T) {
	e := newEnv(t)
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f := e.m.Faults()
	if err := f.FailConnects(3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reconnect", func() bool {
		s := e.m.Snapshot().Socket
		return s.Status == registry.SocketConnected && s.Reconnects == 1
	})
	eventually(t, "the rejoin", func() bool { i := e.info(h.Name()); return i.Joins == 2 && i.Status == registry.StatusConnected })
	if m := e.m.Metrics(); m.Reconnects != 1 || m.SocketAttempts < 5 {
		t.Fatalf("metrics %+v (3 failed attempts, then one that worked)", m)
	}
	if err := f.Latency(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if e.m.Snapshot().Faults.Latency != 50*time.Millisecond {
		t.Fatal("latency not reported")
	}
	peerGot := make(chan struct{}, 1)
	peer := newPeer(t, e.srv)
	ph, err := peer.JoinBroadcast(ctx(t), "document", "1", registry.OnBroadcast("*", func(registry.Broadcast) {
		select {
		case peerGot <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.Broadcast(ctx(t), "x", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-peerGot:
	case <-time.After(10 * time.Second):
		t.Fatal("broadcast not delivered")
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("delivered in %v despite 50ms latency", el)
	}
	if err := f.Latency(-1); err == nil {
		t.Fatal("negative latency accepted")
	}
	if err := f.FailConnects(-1); err == nil {
		t.Fatal("negative fail count accepted")
	}
}

func TestServerFaultsOverHTTPAdmin(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.Policy = registry.Fixed{Interval: 10 * time.Millisecond} }))
	admin, err := serverctl.NewHTTP(e.srv.URL, e.srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := newPeer(t, e.srv, func(o *registry.Options) {
		o.Server = admin
		o.Policy = registry.Fixed{Interval: 10 * time.Millisecond}
	})
	h, err := peer.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f := peer.Faults()
	if !f.ServerAvailable() || !peer.Snapshot().Target.ServerFaults {
		t.Fatal("server faults not available")
	}
	// Kick with phx_error: the policy rejoins.
	if n, err := f.Kick(ctx(t), h.Name(), registry.KickError); err != nil || n != 1 {
		t.Fatalf("kick %d %v", n, err)
	}
	eventually(t, "the rejoin after the kick", func() bool {
		i, _ := peer.Info(h.Name())
		return i.Joins == 2 && i.Status == registry.StatusConnected
	})
	// Reject the next 2 joins, then kick: two refused attempts, then back.
	if err := f.RejectJoins(ctx(t), registry.Rejection{Count: 2, Reason: "TestCode: refused for the test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kick(ctx(t), h.Name(), registry.KickClose); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recovery after refused joins", func() bool {
		i, _ := peer.Info(h.Name())
		return i.Joins == 3 && i.Status == registry.StatusConnected && i.LastErrorCode == "TestCode"
	})
	// Drop all sockets: both managers reconnect.
	if n, err := f.DropAll(ctx(t)); err != nil || n != 2 {
		t.Fatalf("drop all %d %v", n, err)
	}
	eventually(t, "both reconnect", func() bool {
		return peer.Snapshot().Socket.Reconnects == 1 && e.m.Snapshot().Socket.Reconnects == 1
	})
	conns, err := admin.Connections(ctx(t))
	if err != nil || len(conns) != 2 {
		t.Fatalf("connections %d %v", len(conns), err)
	}
	// Without server controls, server faults say why.
	if _, err := e.m.Faults().Kick(ctx(t), h.Name(), registry.KickError); err != nil {
		t.Fatalf("embedded kick: %v", err)
	}
	bare := newPeer(t, e.srv)
	if _, err := bare.Faults().DropAll(ctx(t)); !errors.Is(err, registry.ErrUnsupported) {
		t.Fatalf("no server controls: %v", err)
	}
	if err := bare.Faults().ExpireToken(ctx(t)); !errors.Is(err, registry.ErrUnsupported) {
		t.Fatalf("no mint: %v", err)
	}
	bad, _ := serverctl.NewHTTP(e.srv.URL, e.srv.AnonKey(), nil)
	if _, err := bad.DropAll(ctx(t)); !errors.Is(err, serverctl.ErrAdmin) {
		t.Fatalf("admin with the anon key: %v", err)
	}
}

func TestDebounceAndRateLimit(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.BroadcastRate = 50; o.BroadcastBurst = 1 }))
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// Rate limit: 11 broadcasts at 50/s with burst 1 take >= 200ms.
	start := time.Now()
	for range 11 {
		if err := h.Broadcast(ctx(t), "r", nil); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 190*time.Millisecond {
		t.Fatalf("11 broadcasts at 50/s took %v", el)
	}
	d, err := h.Debounce("cursor", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		d.Send(json.RawMessage(`{"x":` + itoa(i%10) + `}`))
	}
	eventually(t, "the trailing send", func() bool { s, _ := d.Counts(); return s == 2 })
	sent, replaced := d.Counts()
	if sent != 2 || replaced != 18 {
		t.Fatalf("debouncer sent %d replaced %d", sent, replaced)
	}
	eventually(t, "both cursor messages out", func() bool {
		ms, _ := e.m.Messages(h.Name(), 0)
		n := 0
		last := ""
		for _, m := range ms {
			if m.Event == "cursor" && m.Direction == registry.Out {
				n++
				last = string(m.Payload)
			}
		}
		return n == 2 && last == `{"x":9}`
	})
	_ = context.Background
	_ = server.Rejection{}
}

func TestServerRestartRecoversChannelsAndRates(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.StatsInterval = 20 * time.Millisecond }))
	h, err := e.m.JoinPresence(ctx(t), "contact", "7", registry.PresenceUser{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		e.srv.Broadcast(h.Name().Topic(), "tick", json.RawMessage(`{"i":`+itoa(i%10)+`}`))
	}
	eventually(t, "an incoming rate", func() bool {
		for _, r := range e.m.Metrics().InHistory {
			if r > 0 {
				return true
			}
		}
		return false
	})
	if err := e.m.Faults().Restart(ctx(t), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reconnect after the restart", func() bool { return e.m.Snapshot().Socket.Reconnects >= 1 })
	e.waitStatus(h.Name(), registry.StatusConnected)
	eventually(t, "alice tracked again", func() bool {
		us, _ := e.m.Presence(h.Name())
		return len(us) == 1 && us[0].UserID == "alice"
	})
	m := e.m.Metrics()
	if m.MessagesIn < 50 || m.ConnectedTotal <= 0 || m.Errors == 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestSocketRetryEvents(t *testing.T) {
	e := newEnv(t)
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Types: []registry.EventType{registry.TypeRetry}})
	defer sub.Close()
	if err := e.m.Faults().FailConnects(2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Faults().Drop(); err != nil {
		t.Fatal(err)
	}
	var got []string
	eventually(t, "the socket's retry events", func() bool {
		for _, ev := range sub.Drain(nil) {
			if r, ok := ev.(registry.RetryEvent); ok && r.Scope == registry.ScopeSocket {
				got = append(got, string(r.Outcome)+itoa(r.Attempt))
			}
		}
		return len(got) > 0 && got[len(got)-1] == "succeeded3"
	})
	// Attempt 1 and 2 fail (injected), 3 connects; each is scheduled,
	// started, and ends.
	if want := "scheduled1 started1 failed1 scheduled2 started2 failed2 scheduled3 started3 succeeded3"; join(got) != want {
		t.Fatalf("socket retry events:\n got %s\nwant %s", join(got), want)
	}
}

func TestFrameCaptureOnDemand(t *testing.T) {
	e := newEnv(t, withOpts(func(o *registry.Options) { o.FrameRing = -1 }))
	h, err := e.m.JoinBroadcast(ctx(t), "document", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if fr, _ := e.m.Frames(h.Name(), 0); len(fr) != 0 {
		t.Fatalf("frames kept with FrameRing -1: %d", len(fr))
	}
	// A frame subscriber turns the tap on, and off when it leaves.
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Frames: true, Types: []registry.EventType{registry.TypeFrame}})
	if err := h.Broadcast(ctx(t), "x", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broadcast frame", func() bool {
		for _, ev := range sub.Drain(nil) {
			if f, ok := ev.(registry.FrameEvent); ok && f.Direction == registry.Out && f.Event == "broadcast" && f.Channel == h.Name() {
				return true
			}
		}
		return false
	})
	sub.Close()

	// The rings can be turned on at run time.
	e2 := newEnv(t, withOpts(func(o *registry.Options) { o.NoFrames = false }))
	e2.m.SetFrameCapture(false)
	h2, err := e2.m.JoinBroadcast(ctx(t), "document", "2")
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if fr, _ := e2.m.Frames(h2.Name(), 0); len(fr) != 0 {
		t.Fatalf("frames kept while capture is off: %d", len(fr))
	}
	e2.m.SetFrameCapture(true)
	if err := h2.Broadcast(ctx(t), "y", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a kept frame", func() bool {
		fr, _ := e2.m.Frames(h2.Name(), 0)
		return len(fr) == 1 && fr[0].Event == "broadcast" && fr[0].Direction == registry.Out && len(fr[0].Data) == fr[0].Size
	})
}
