package apps_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"rtm/realtime"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
)

const waitTimeout = 15 * time.Second

// feeder turns a realtime client's tap into the Observer calls a proxy
// makes: each connection of the client is a socket (IDs base+1, ...),
// opened at its first frame and closed at its last one when the next
// connection starts.
type feeder struct {
	m      *apps.Model
	base   uint64
	query  string
	header http.Header

	mu   sync.Mutex
	conn uint64
	last time.Time
}

func newFeeder(m *apps.Model, base uint64, apikey, vsn, clientInfo string) *feeder {
	q := url.Values{"apikey": {apikey}}
	if vsn != "" {
		q.Set("vsn", vsn)
	}
	h := http.Header{}
	h.Set("X-Client-Info", clientInfo)
	return &feeder{m: m, base: base, query: q.Encode(), header: h}
}

func (fd *feeder) tap(f realtime.Frame) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if f.Conn != fd.conn {
		if fd.conn != 0 {
			fd.m.Closed(proxy.Closed{Conn: fd.base + fd.conn, Time: fd.last, By: proxy.ToApp, Code: 1006})
		}
		fd.conn = f.Conn
		fd.m.Open(proxy.ConnInfo{ID: fd.base + f.Conn, RemoteAddr: "127.0.0.1:5555", Path: "/realtime/v1/websocket",
			RawQuery: fd.query, Header: fd.header.Clone(), Upstream: "ws://upstream/realtime/v1/websocket", Opened: f.Time})
	}
	dir := proxy.ToApp
	if f.Dir == realtime.Out {
		dir = proxy.FromApp
	}
	fd.m.Frame(proxy.Frame{Conn: fd.base + f.Conn, Dir: dir, Time: f.Time, Binary: f.Binary, Data: f.Data})
	fd.last = f.Time
}

// close reports the end of the current connection.
func (fd *feeder) close(code int, reason string) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.m.Closed(proxy.Closed{Conn: fd.base + fd.conn, Time: time.Now(), By: proxy.FromApp, Code: code, Reason: reason})
}

// dialFed connects a client whose frames feed fd.
func dialFed(t *testing.T, srv *servertest.Server, fd *feeder, mod func(*realtime.Options)) *realtime.Socket {
	t.Helper()
	o := &realtime.Options{APIKey: srv.AnonKey(), Header: fd.header.Clone(), Tap: fd.tap,
		RejoinAfter:    func(int) time.Duration { return 150 * time.Millisecond },
		ReconnectAfter: func(int) time.Duration { return 200 * time.Millisecond }}
	if mod != nil {
		mod(o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := realtime.Dial(ctx, srv.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits until cond holds on a snapshot of m.
func eventually(t *testing.T, m *apps.Model, what string, cond func(apps.Snapshot) bool) apps.Snapshot {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		snap := m.Snapshot()
		if cond(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; snapshot %+v", what, snap)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func socketOf(snap apps.Snapshot, id uint64) *apps.Socket {
	for i := range snap.Sockets {
		if snap.Sockets[i].ID == id {
			return &snap.Sockets[i]
		}
	}
	return nil
}

func channelOf(snap apps.Snapshot, id uint64, topic string) *apps.Channel {
	s := socketOf(snap, id)
	if s == nil {
		return nil
	}
	for i := range s.Channels {
		if s.Channels[i].Topic == topic {
			return &s.Channels[i]
		}
	}
	return nil
}

func hasFlag(snap apps.Snapshot, kind apps.FlagKind, socket uint64, topic string) bool {
	for _, f := range snap.Flags {
		if f.Kind == kind && f.Socket == socket && (topic == "" || f.Topic == topic) {
			return true
		}
	}
	return false
}
