package apps_test

import (
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/registry/apps"
)

// BenchmarkFrame weighs Model.Frame on a joined channel's broadcast
// (2.0.0 text and binary, to the app) beside the bare protocol decode
// of the same frame.
func BenchmarkFrame(b *testing.B) {
	v := protocol.V2
	payload := json.RawMessage(`{"user":"alice","x":120,"y":48,"text":"hello there, a cursor moved"}`)
	text, _, err := v.AppendServer(nil, &protocol.Message{Topic: "realtime:room", Event: protocol.EventBroadcast, JoinRef: "1",
		Payload: json.RawMessage(`{"type":"broadcast","event":"cursor","payload":` + string(payload) + `}`)})
	if err != nil {
		b.Fatal(err)
	}
	bin, isBin, err := v.AppendServer(nil, &protocol.Message{Topic: "realtime:room", Event: protocol.EventBroadcast, JoinRef: "1",
		Broadcast: &protocol.Broadcast{Event: "cursor", Payload: payload}})
	if err != nil || !isBin {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		data   []byte
		binary bool
	}{{"text", text, false}, {"binary", bin, true}} {
		b.Run("decode/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if _, err := v.DecodeServer(c.data, c.binary); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("model/"+c.name, func(b *testing.B) {
			m := apps.New(apps.Options{})
			now := time.Now()
			m.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=2.0.0", Opened: now})
			join, _, _ := v.AppendClient(nil, &protocol.Message{Topic: "realtime:room", Event: protocol.EventJoin, Ref: "1", JoinRef: "1", Payload: json.RawMessage(`{"config":{}}`)})
			m.Frame(proxy.Frame{Conn: 1, Dir: proxy.FromApp, Time: now, Data: join})
			f := proxy.Frame{Conn: 1, Dir: proxy.ToApp, Time: now, Binary: c.binary, Data: c.data}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				m.Frame(f)
			}
		})
	}
}
