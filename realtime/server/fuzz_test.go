package server_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// FuzzServerFrames sends arbitrary frames to a live server over loopback:
// whatever arrives, the server answers or closes that socket with a
// reason, never panics, and keeps serving others.
func FuzzServerFrames(f *testing.F) {
	for _, seed := range []struct {
		kind byte
		data string
	}{
		{0, `["1","1","realtime:room1","phx_join",{"config":{"presence":{"enabled":true}}}]`},
		{0, `["1","2","realtime:room1","presence",{"type":"presence","event":"track","payload":{"a":1}}]`},
		{0, `["1","3","realtime:room1","broadcast",{"type":"broadcast","event":"e","payload":null}]`},
		{0, `["1","4","realtime:room1","access_token",{"access_token":"x.y.z"}]`},
		{0, `[null,"5","phoenix","heartbeat",null]`},
		{0, `["1","6","realtime:","phx_join",{}]`},
		{1, "\x03\x01\x01\x0erealtime:room1\x01\x00\x01" + `1` + `7` + `realtime:room1` + `e` + `{}`},
		{1, "\x03\xff\xff\xff"},
		{2, `{"topic":"realtime:r","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`},
		{2, `{"topic":"realtime:r","event":"broadcast","payload":{"event":"e"},"ref":"2","join_ref":"1"}`},
	} {
		f.Add(seed.kind, []byte(seed.data))
	}
	s := servertest.New(f, servertest.WithLimits(server.Limits{Off: true}))
	bystander, _, err := websocket.DefaultDialer.Dial(s.SocketURL(s.AnonKey(), "2.0.0"), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { bystander.Close() })
	conns := map[byte]*websocket.Conn{}
	f.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		kind %= 3
		vsn, mt := "2.0.0", websocket.TextMessage
		switch kind {
		case 1:
			mt = websocket.BinaryMessage
		case 2:
			vsn = "1.0.0"
		}
		ws := conns[kind]
		if ws == nil {
			var err error
			ws, _, err = websocket.DefaultDialer.Dial(s.SocketURL(s.AnonKey(), vsn), nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			conns[kind] = ws
		}
		hb := `[null,"hb","phoenix","heartbeat",{}]`
		if vsn == "1.0.0" {
			hb = `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}`
		}
		if ws.WriteMessage(mt, data) != nil || ws.WriteMessage(websocket.TextMessage, []byte(hb)) != nil {
			ws.Close()
			delete(conns, kind)
			return
		}
		// Read until the heartbeat reply (the socket lives) or a close.
		_ = ws.SetReadDeadline(time.Now().Add(wait))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); !ok || ce.Code == websocket.CloseAbnormalClosure {
					t.Fatalf("socket ended without a close frame after %q: %v", data, err)
				}
				ws.Close()
				delete(conns, kind)
				break
			}
			if string(msg) == `[null,"hb","phoenix","phx_reply",{"status":"ok","response":{}}]` ||
				string(msg) == `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"hb"}` {
				break
			}
		}
		// The bystander is served as before.
		if err := bystander.WriteMessage(websocket.TextMessage, []byte(`[null,"b","phoenix","heartbeat",{}]`)); err != nil {
			t.Fatalf("bystander: %v", err)
		}
		_ = bystander.SetReadDeadline(time.Now().Add(wait))
		if _, msg, err := bystander.ReadMessage(); err != nil || string(msg) != `[null,"b","phoenix","phx_reply",{"status":"ok","response":{}}]` {
			t.Fatalf("bystander after %q: %s %v", data, msg, err)
		}
	})
}
