package apps_test

import (
	"net/http"
	"testing"
	"time"

	"rtm/realtime/proxy"
	"rtm/registry/apps"
)

// TestNeverLeftOnlyWhenTheAppClosed: a channel still joined when its
// socket ends is flagged never_left only when the app ended the socket
// itself; not when the upstream or the proxy ended it, nor when a fault
// that ends sockets acted on it first (a freeze, whose end is the app's
// heartbeat timeout, included). A fault that does not end sockets keeps
// the flag, and so does a fault on another socket.
func TestNeverLeftOnlyWhenTheAppClosed(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		by    proxy.Direction
		fault *proxy.FaultEvent // applied to socket 1 before the close
		want  bool
	}{
		{name: "app closes", by: proxy.FromApp, want: true},
		{name: "upstream closes", by: proxy.ToApp},
		{name: "proxy closes", by: 0},
		{name: "drop fault", by: 0, fault: &proxy.FaultEvent{Conn: 1, Kind: proxy.FaultDrop}},
		{name: "close fault", by: 0, fault: &proxy.FaultEvent{Conn: 1, Kind: proxy.FaultClose, Detail: "4000 bye"}},
		{name: "expire_token fault", by: 0, fault: &proxy.FaultEvent{Conn: 1, Kind: proxy.FaultExpireToken}},
		{name: "freeze then the app's heartbeat timeout", by: proxy.FromApp, fault: &proxy.FaultEvent{Conn: 1, Kind: proxy.FaultFreeze, Detail: "1m"}},
		{name: "armed freeze counts nothing", by: proxy.FromApp, fault: &proxy.FaultEvent{Conn: 1, Kind: proxy.FaultFreeze, Armed: true}, want: true},
		{name: "drop_message fault", by: proxy.FromApp, fault: &proxy.FaultEvent{Conn: 1, Kind: proxy.FaultDropMessage, Topic: "realtime:room"}, want: true},
		{name: "fault on another socket", by: proxy.FromApp, fault: &proxy.FaultEvent{Conn: 2, Kind: proxy.FaultDrop}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := apps.New(apps.Options{})
			for id := uint64(1); id <= 2; id++ {
				m.Open(proxy.ConnInfo{ID: id, RemoteAddr: "127.0.0.1:50000", Path: "/realtime/v1/websocket", RawQuery: "vsn=2.0.0",
					Header: http.Header{"X-Client-Info": {"supabase-js-web/2.119.0"}}, Opened: at})
				for i, f := range []struct {
					dir  proxy.Direction
					data string
				}{
					{proxy.FromApp, `["1","1","realtime:room","phx_join",{"config":{}}]`},
					{proxy.ToApp, `["1","1","realtime:room","phx_reply",{"status":"ok","response":{}}]`},
				} {
					m.Frame(proxy.Frame{Conn: id, Dir: f.dir, Time: at.Add(time.Duration(i+1) * time.Millisecond), Data: []byte(f.data)})
				}
			}
			if tc.fault != nil {
				ev := *tc.fault
				ev.Time = at.Add(time.Second)
				m.Fault(ev)
			}
			m.Closed(proxy.Closed{Conn: 1, Time: at.Add(2 * time.Second), By: tc.by, Code: 1006})
			snap := m.Snapshot()
			if got := hasFlag(snap, apps.FlagNeverLeft, 1, "realtime:room"); got != tc.want {
				t.Fatalf("never_left %v, want %v: %+v", got, tc.want, snap.Flags)
			}
			// Either way the channel is closed with its socket.
			if c := channelOf(snap, 1, "realtime:room"); c == nil || c.Status != apps.StatusClosed {
				t.Fatalf("channel %+v", c)
			}
		})
	}
}
