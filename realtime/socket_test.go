package realtime

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

func TestEndpointURL(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		vsn      protocol.Version
		level    string
	}{
		{"https://abc.supabase.co", "wss://abc.supabase.co/realtime/v1/websocket?apikey=K&vsn=2.0.0", protocol.V2, ""},
		{"http://127.0.0.1:54321/", "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=K&vsn=2.0.0", protocol.V2, ""},
		{"http://127.0.0.1:54321/realtime/v1", "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=K&log_level=info&vsn=1.0.0", protocol.V1, "info"},
		{"ws://h/realtime/v1/websocket?apikey=old&vsn=1.0.0&x=1", "ws://h/realtime/v1/websocket?x=1&apikey=K&vsn=2.0.0", protocol.V2, ""},
		{"wss://h/socket", "wss://h/socket/websocket?apikey=K&vsn=2.0.0", protocol.V2, ""},
		{"ws://h", "ws://h/realtime/v1/websocket?apikey=K&vsn=2.0.0", protocol.V2, ""},
	} {
		got, err := EndpointURL(tt.in, "K", tt.vsn, tt.level)
		if err != nil || got != tt.want {
			t.Errorf("EndpointURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"ftp://h", "/relative", "http://", "::"} {
		if _, err := EndpointURL(bad, "K", protocol.V2, ""); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("EndpointURL(%q) err = %v, want ErrInvalidConfig", bad, err)
		}
	}
	if _, err := NewSocket("http://h", &Options{}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "API key is required") {
		t.Errorf("no API key: %v", err)
	}
	if got := maskURL("ws://h/realtime/v1/websocket?apikey=eyJhbGciOiJIUzI1NiJ9.secret&vsn=2.0.0"); strings.Contains(got, "secret") {
		t.Errorf("maskURL leaks the key: %s", got)
	}
}

func TestDefaultLadders(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := DefaultReconnectAfter(i + 1); got != w {
			t.Errorf("DefaultReconnectAfter(%d) = %v, want %v", i+1, got, w)
		}
	}
	want = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := DefaultRejoinAfter(i + 1); got != w {
			t.Errorf("DefaultRejoinAfter(%d) = %v, want %v", i+1, got, w)
		}
	}
	// The default reconnect delay is jittered within ±20% by Rand.
	for _, r := range []float64{0, 0.5, 0.999} {
		o, err := (&Options{APIKey: "k", Rand: func() float64 { return r }}).normalize()
		if err != nil {
			t.Fatal(err)
		}
		d := o.ReconnectAfter(3)
		if lo, hi := 4*time.Second, 6*time.Second; d < lo || d >= hi || d != time.Duration(float64(5*time.Second)*(0.8+0.4*r)) {
			t.Errorf("jittered delay for rand %v = %v", r, d)
		}
	}
}

func TestConnectHeartbeatStats(t *testing.T) {
	srv := servertest.New(t)
	hb := newRec[Heartbeat]()
	st := newRec[StatusChange]()
	s := dial(t, srv, func(o *Options) {
		o.HeartbeatInterval = 30 * time.Millisecond
		o.OnHeartbeat = hb.add
		o.OnStatus = st.add
	})
	if s.Status() != StatusOpen {
		t.Fatalf("status %v after Dial", s.Status())
	}
	hb.wait(t, "3 heartbeat replies", func(h []Heartbeat) bool {
		n := 0
		for _, e := range h {
			if e.Status == HeartbeatOK {
				n++
				if e.RTT <= 0 {
					t.Fatalf("heartbeat ok with RTT %v", e.RTT)
				}
			}
		}
		return n >= 3
	})
	// Sent and ok alternate with matching refs.
	evs := hb.all()
	for i := 0; i+1 < len(evs); i += 2 {
		if evs[i].Status != HeartbeatSent || evs[i+1].Status != HeartbeatOK || evs[i].Ref != evs[i+1].Ref {
			t.Fatalf("heartbeats out of order: %+v", evs[:i+2])
		}
	}
	stats := s.Stats()
	if stats.HeartbeatsSent < 3 || stats.RTT <= 0 || stats.RTTAvg <= 0 || stats.FramesIn < 3 || stats.FramesOut < 3 ||
		stats.BytesIn == 0 || stats.BytesOut == 0 || stats.Connects != 1 || stats.Reconnects != 0 || stats.ConnectedAt.IsZero() {
		t.Fatalf("stats %+v", stats)
	}
	sts := st.all()
	if len(sts) < 2 || sts[0].Status != StatusConnecting || sts[1].Status != StatusOpen {
		t.Fatalf("status changes %+v", sts)
	}
	if strings.Contains(s.Endpoint(), srv.AnonKey()) {
		t.Fatal("Endpoint shows the key")
	}
	s.Close()
	if s.Status() != StatusClosed {
		t.Fatalf("status %v after Close", s.Status())
	}
	st.wait(t, "closed status", func(c []StatusChange) bool { return c[len(c)-1].Status == StatusClosed })
	if _, err := s.Channel("x", ChannelConfig{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Channel after Close: %v", err)
	}
}

func TestDialRefused(t *testing.T) {
	srv := servertest.New(t)
	expired := srv.Token(t, map[string]any{"role": "anon", "exp": time.Now().Add(-time.Hour).Unix()})
	for _, tt := range []struct{ key, msg string }{
		{expired, "Token has expired"},
		{"not-a-jwt", "not a valid JWT"},
	} {
		_, err := Dial(ctxT(t), srv.URL, &Options{APIKey: tt.key})
		var he *HandshakeError
		if !errors.As(err, &he) || he.StatusCode != 401 || !strings.Contains(he.Message, tt.msg) {
			t.Errorf("Dial with key %q: %v (want HTTP 401 %q)", tt.key[:4], err, tt.msg)
		}
		if strings.Contains(err.Error(), tt.key) && len(tt.key) > 12 {
			t.Errorf("error shows the key: %v", err)
		}
	}
	// Nothing listens: Dial keeps trying until ctx ends.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var attempts atomic.Int32
	_, err := Dial(ctx, "http://"+addr, &Options{APIKey: "k", ReconnectAfter: func(int) time.Duration { attempts.Add(1); return 10 * time.Millisecond }})
	if !errors.Is(err, context.DeadlineExceeded) || attempts.Load() < 2 {
		t.Fatalf("Dial to a closed port: %v after %d retries", err, attempts.Load())
	}
}

// The connection is dropped (no close frame): the socket reconnects after
// ReconnectAfter(1) and every channel rejoins with a new join ref.
func TestDropReconnectRejoin(t *testing.T) {
	srv := servertest.New(t)
	st := newRec[StatusChange]()
	tries := newRec[int]()
	s := dial(t, srv, fast, func(o *Options) {
		o.OnStatus = st.add
		o.ReconnectAfter = func(n int) time.Duration { tries.add(n); return 20 * time.Millisecond }
	})
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ref1 := ch.JoinRef()
	if n := srv.Drop(); n != 1 {
		t.Fatalf("Drop dropped %d", n)
	}
	evs := r.wait(t, "CHANNEL_ERROR then SUBSCRIBED", func(e []Event) bool { return countStatus(e, Subscribed) >= 2 })
	if got := statuses(evs); len(got) != 3 || got[1] != ChannelError {
		t.Fatalf("statuses %v", got)
	}
	if err := evs[1].Err; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("CHANNEL_ERROR reason %v", err)
	}
	if ch.JoinRef() == ref1 || ch.State() != ChannelJoined {
		t.Fatalf("join ref %s -> %s, state %v", ref1, ch.JoinRef(), ch.State())
	}
	sts := st.wait(t, "reopen", func(c []StatusChange) bool { return c[len(c)-1].Status == StatusOpen && len(c) >= 4 })
	var lost StatusChange
	for _, c := range sts {
		if c.Status == StatusReconnecting {
			lost = c
		}
	}
	if !errors.Is(lost.Err, ErrDisconnected) && lost.Err == nil || lost.Delay != 20*time.Millisecond || lost.Attempt != 1 {
		t.Fatalf("reconnecting change %+v", lost)
	}
	if tr := tries.all(); len(tr) == 0 || tr[0] != 1 {
		t.Fatalf("reconnect ladder tries %v, want to start at 1", tr)
	}
	if stats := s.Stats(); stats.Reconnects != 1 || stats.Disconnects != 1 {
		t.Fatalf("stats %+v", stats)
	}
	// The server sees the new join.
	eventually(t, "the server to see the rejoin", func() bool {
		for _, c := range srv.Conns() {
			for _, sc := range c.Channels {
				if sc.Topic == "realtime:room1" && sc.JoinRef == ch.JoinRef() {
					return true
				}
			}
		}
		return false
	})
}

// The server restarts on the same address: the socket retries on its
// ladder until the listener is back, then rejoins.
func TestServerRestart(t *testing.T) {
	srv := servertest.New(t)
	st := newRec[StatusChange]()
	s := dial(t, srv, fast, func(o *Options) { o.OnStatus = st.add })
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctxT(t), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "SUBSCRIBED after the restart", func(e []Event) bool { return countStatus(e, Subscribed) >= 2 })
	// Failed attempts while the listener was down.
	st.wait(t, "a failed attempt during the downtime", func(cs []StatusChange) bool {
		for _, c := range cs {
			if c.Status == StatusReconnecting && c.Err != nil && !errors.Is(c.Err, ErrDisconnected) {
				return true
			}
		}
		return false
	})
	if s.Stats().ConnectFailures == 0 {
		t.Fatal("no failed attempt counted")
	}
	// Broadcasts flow again.
	other := dial(t, srv)
	och, _ := channel(t, other, "room1", ChannelConfig{})
	if err := och.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := och.Send(ctxT(t), "after", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "a broadcast after the restart", func(e []Event) bool { return len(broadcasts(e)) == 1 })
}

// The server freezes the socket: the heartbeat goes unanswered, the
// client closes with 1000 "heartbeat timeout", reconnects and rejoins.
func TestPauseHeartbeatTimeout(t *testing.T) {
	srv := servertest.New(t)
	st := newRec[StatusChange]()
	hb := newRec[Heartbeat]()
	s := dial(t, srv, fast, func(o *Options) {
		o.HeartbeatInterval = 100 * time.Millisecond
		o.OnStatus = st.add
		o.OnHeartbeat = hb.add
	})
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	conns := srv.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d conns", len(conns))
	}
	if err := srv.Pause(conns[0].ID, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	evs := r.wait(t, "rejoin after the heartbeat timeout", func(e []Event) bool { return countStatus(e, Subscribed) >= 2 })
	if evs[1].Status != ChannelError || !errors.Is(evs[1].Err, ErrHeartbeatTimeout) {
		t.Fatalf("second event %v %v", evs[1].Status, evs[1].Err)
	}
	st.wait(t, "a reconnect for the heartbeat timeout", func(cs []StatusChange) bool {
		for _, c := range cs {
			if c.Status == StatusReconnecting && errors.Is(c.Err, ErrHeartbeatTimeout) {
				return true
			}
		}
		return false
	})
	hb.wait(t, "the heartbeat timeout", func(hs []Heartbeat) bool {
		for _, h := range hs {
			if h.Status == HeartbeatTimeout {
				return true
			}
		}
		return false
	})
	if n := s.Stats().HeartbeatTimeouts; n != 1 {
		t.Fatalf("%d heartbeat timeouts", n)
	}
	// A new, unpaused connection holds the rejoined channel (the frozen
	// one lingers on the server until its pause ends).
	eventually(t, "a new connection with the channel", func() bool {
		for _, c := range srv.Conns() {
			if c.ID != conns[0].ID && !c.Paused && len(c.Channels) == 1 && c.Channels[0].JoinRef == ch.JoinRef() {
				return true
			}
		}
		return false
	})
}

// Options.Dial makes every connection: failing the first attempts delays
// the open; closing the net.Conn underneath is a drop.
func TestDialHook(t *testing.T) {
	srv := servertest.New(t)
	var dials atomic.Int32
	var last atomic.Pointer[net.Conn]
	st := newRec[StatusChange]()
	s := dial(t, srv, fast, func(o *Options) {
		o.OnStatus = st.add
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) <= 2 {
				return nil, errors.New("injected connect failure")
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				last.Store(&c)
			}
			return c, err
		}
	})
	if dials.Load() != 3 || s.Stats().ConnectFailures != 2 {
		t.Fatalf("%d dials, %d failures", dials.Load(), s.Stats().ConnectFailures)
	}
	st.wait(t, "the injected failures", func(cs []StatusChange) bool {
		n := 0
		for _, c := range cs {
			if c.Status == StatusReconnecting && c.Err != nil && strings.Contains(c.Err.Error(), "injected connect failure") {
				n++
			}
		}
		return n == 2
	})
	ch, r := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	(*last.Load()).Close() // the transport drops
	r.wait(t, "the rejoin after the drop", func(e []Event) bool { return countStatus(e, Subscribed) == 2 })
	if dials.Load() != 4 {
		t.Fatalf("%d dials", dials.Load())
	}
}

// HeartbeatOnOpen measures the round trip right after the socket opens,
// long before the first interval.
func TestHeartbeatOnOpen(t *testing.T) {
	srv := servertest.New(t)
	hb := newRec[Heartbeat]()
	s := dial(t, srv, func(o *Options) {
		o.HeartbeatInterval = time.Hour
		o.HeartbeatOnOpen = true
		o.OnHeartbeat = hb.add
	})
	hb.wait(t, "a heartbeat reply right after open", func(h []Heartbeat) bool {
		for _, e := range h {
			if e.Status == HeartbeatOK {
				return true
			}
		}
		return false
	})
	if st := s.Stats(); st.RTT <= 0 || st.HeartbeatsSent != 1 {
		t.Fatalf("stats after the first heartbeat: RTT %v, sent %d", st.RTT, st.HeartbeatsSent)
	}
}
