package apps_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"rtm/realtime/proxy"
	"rtm/registry/apps"
)

// A proxy hands the model its sockets and frames; a headless run
// streams the events as NDJSON, a UI reads snapshots.
func Example() {
	m := apps.New(apps.Options{})
	sub := m.Subscribe(0)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.Open(proxy.ConnInfo{ID: 1, RemoteAddr: "127.0.0.1:50000", Path: "/realtime/v1/websocket", RawQuery: "vsn=2.0.0",
		Header: http.Header{"X-Client-Info": {"supabase-js-web/2.119.0"}}, Opened: at})
	frames := []struct {
		dir  proxy.Direction
		data string
	}{
		{proxy.FromApp, `["1","1","realtime:room","phx_join",{"config":{"broadcast":{"self":true},"presence":{"key":"ann","enabled":true}}}]`},
		{proxy.ToApp, `["1","1","realtime:room","phx_reply",{"status":"ok","response":{}}]`},
		{proxy.ToApp, `["1",null,"realtime:room","presence_diff",{"joins":{"ann":{"metas":[{"phx_ref":"F1"}]}},"leaves":{}}]`},
		{proxy.ToApp, `[null,null,"realtime:room","broadcast",{"type":"broadcast","event":"hi","payload":{"n":1}}]`},
	}
	for i, f := range frames {
		m.Frame(proxy.Frame{Conn: 1, Dir: f.dir, Time: at.Add(time.Duration(i+1) * time.Millisecond), Data: []byte(f.data)})
	}
	m.Closed(proxy.Closed{Conn: 1, Time: at.Add(time.Second), By: proxy.FromApp, Code: 1000})
	sub.Close()
	if err := sub.Stream(context.Background(), os.Stdout); err != nil {
		fmt.Println(err)
	}
	c := m.Snapshot().Sockets[0].Channels[0]
	fmt.Println(c.Topic, c.Status, c.Reason, len(c.Presence), c.Messages[1].UserEvent)
	// Output:
	// {"type":"app_socket","time":"2026-01-02T03:04:05Z","socket":1,"action":"open","remote_addr":"127.0.0.1:50000","client_info":"supabase-js-web/2.119.0","vsn":"2.0.0","connection":1,"attempt":1}
	// {"type":"app_channel","time":"2026-01-02T03:04:05.001Z","socket":1,"topic":"realtime:room","action":"join","attempt":1,"status":"joining","ref":"1"}
	// {"type":"app_channel","time":"2026-01-02T03:04:05.002Z","socket":1,"topic":"realtime:room","action":"joined","status":"joined"}
	// {"type":"app_presence","time":"2026-01-02T03:04:05.003Z","socket":1,"topic":"realtime:room","action":"join","key":"ann","metas":1}
	// {"type":"app_message","time":"2026-01-02T03:04:05.003Z","socket":1,"topic":"realtime:room","action":"message","dir":"upstream->app","event":"presence_diff","bytes":101,"payload":"{\"joins\":{\"ann\":{\"metas\":[{\"phx_ref\":\"F1\"}]}},\"leaves\":{}}"}
	// {"type":"app_message","time":"2026-01-02T03:04:05.004Z","socket":1,"topic":"realtime:room","action":"message","dir":"upstream->app","event":"broadcast","user_event":"hi","bytes":91,"payload":"{\"n\":1}"}
	// {"type":"app_flag","time":"2026-01-02T03:04:06Z","socket":1,"topic":"realtime:room","flag":"never_left","text":"realtime:room was joined and never left when socket 1 closed"}
	// {"type":"app_channel","time":"2026-01-02T03:04:06Z","socket":1,"topic":"realtime:room","action":"closed","status":"closed","reason":"socket closed"}
	// {"type":"app_socket","time":"2026-01-02T03:04:06Z","socket":1,"action":"close","connection":1,"attempt":1,"code":1000,"closed_by":"app"}
	// realtime:room closed socket closed 1 hi
}
