package apps_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/proxy"
	"rtm/realtime/server/servertest"
	"rtm/registry/apps"
)

// rawApp is an app written by hand over a gorilla connection to the
// real server, each frame fed to the model as the proxy would.
type rawApp struct {
	t    *testing.T
	m    *apps.Model
	id   uint64
	conn *websocket.Conn
}

func dialRaw(t *testing.T, srv *servertest.Server, m *apps.Model, id uint64, vsn string, h http.Header) *rawApp {
	t.Helper()
	u := srv.SocketURL(srv.AnonKey(), vsn)
	c, _, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	pu, _ := url.Parse(u)
	m.Open(proxy.ConnInfo{ID: id, RemoteAddr: c.LocalAddr().String(), Path: pu.Path, RawQuery: pu.RawQuery, Header: h, Opened: time.Now()})
	return &rawApp{t: t, m: m, id: id, conn: c}
}

// send writes a text frame from the app.
func (r *rawApp) send(frame string) {
	r.t.Helper()
	if err := r.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		r.t.Fatal(err)
	}
	r.m.Frame(proxy.Frame{Conn: r.id, Dir: proxy.FromApp, Time: time.Now(), Data: []byte(frame)})
}

// readUntil reads the server's frames, feeding them, until one holds s.
func (r *rawApp) readUntil(s string) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		typ, data, err := r.conn.ReadMessage()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", s, err)
		}
		r.m.Frame(proxy.Frame{Conn: r.id, Dir: proxy.ToApp, Time: time.Now(), Binary: typ == websocket.BinaryMessage, Data: data})
		if bytes.Contains(data, []byte(s)) {
			return
		}
	}
}

func join(topic, ref, extra string) string {
	return `{"topic":"realtime:` + topic + `","event":"phx_join","payload":{"config":{"broadcast":{"self":"true"},"presence":{"key":""}}` + extra + `},"ref":"` + ref + `","join_ref":"` + ref + `"}`
}

// The same topic joined twice on one socket, and a socket over the
// channel limit, are flagged; garbage is counted; the Authorization
// header's token is read and masked.
func TestRawDuplicateAndLimit(t *testing.T) {
	srv := servertest.New(t)
	m := apps.New(apps.Options{ChannelLimit: 2})
	user := srv.UserToken(t, "carol", time.Hour, nil)
	h := http.Header{"X-Client-Info": {"hand-written/1"}}
	r := dialRaw(t, srv, m, 7, "1.0.0", h)
	r.send(join("dup", "1", `,"access_token":"`+user+`"`))
	r.readUntil(`"ref":"1"`)
	r.send(join("dup", "2", `,"access_token":"`+user+`"`))
	r.readUntil(`"ref":"2"`)
	r.send(join("b", "3", ""))
	r.readUntil(`"ref":"3"`)
	r.send(join("c", "4", ""))
	r.readUntil(`"ref":"4"`)
	r.send(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}`)
	r.readUntil(`"ref":"5"`)
	r.m.Frame(proxy.Frame{Conn: 7, Dir: proxy.FromApp, Time: time.Now(), Data: []byte("not json")})
	r.m.Frame(proxy.Frame{Conn: 7, Dir: proxy.ToApp, Time: time.Now(), Binary: true, Data: []byte{4, 200}})
	r.m.Frame(proxy.Frame{Conn: 99, Dir: proxy.ToApp, Time: time.Now(), Data: []byte("{}")})

	snap := m.Snapshot()
	if !hasFlag(snap, apps.FlagDuplicateTopic, 7, "realtime:dup") || !hasFlag(snap, apps.FlagChannelLimit, 7, "") {
		t.Fatalf("flags %+v", snap.Flags)
	}
	for _, f := range snap.Flags {
		if f.Kind == apps.FlagIdentityChanged {
			t.Fatalf("same token flagged as a change: %+v", f)
		}
		if f.Text == "" || f.Time.IsZero() {
			t.Fatalf("flag %+v", f)
		}
	}
	s := socketOf(snap, 7)
	if s.Undecodable != 2 || snap.Stats.Undecodable != 2 || snap.Stats.UnknownSocket != 1 || s.Vsn != "1.0.0" || s.ClientInfo != "hand-written/1" || s.HeartbeatRTT <= 0 {
		t.Fatalf("socket %+v stats %+v", s, snap.Stats)
	}
	d := channelOf(snap, 7, "realtime:dup")
	if len(d.Attempts) != 2 || d.Attempts[1].Subject != "carol" || !d.Config.BroadcastSelf {
		t.Fatalf("dup %+v", d)
	}
	js, _ := json.Marshal(snap)
	if masktest.Holds(js, user) || masktest.Holds(js, srv.AnonKey()) {
		t.Fatal("a key is unmasked in the snapshot")
	}

	// The Authorization header carries the token when the query has none.
	m.Open(proxy.ConnInfo{ID: 8, RawQuery: "vsn=2.0.0", Header: http.Header{"Authorization": {"Bearer " + user}}, Opened: time.Now()})
	if s := socketOf(m.Snapshot(), 8); s.Token.Subject != "carol" || s.Token.Role != "authenticated" || s.Vsn != "2.0.0" || strings.Contains(s.Token.Masked, user) {
		t.Fatalf("socket 8 %+v", s)
	}
}
