package apps_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/registry/apps"
)

// FuzzFrames feeds arbitrary frames, both ways, to a 1.0.0 and a 2.0.0
// socket: the model never panics and keeps its bounds. The input is
// split on newlines into frames; a frame's first byte picks its socket,
// direction and opcode, and whether the proxy freezes the socket.
func FuzzFrames(f *testing.F) {
	seeds := []protocol.Message{
		{Topic: "realtime:r", Event: protocol.EventJoin, Ref: "1", JoinRef: "1", Payload: json.RawMessage(`{"config":{"broadcast":{"self":true,"ack":"true"},"presence":{"key":"k","enabled":true},"postgres_changes":[{"event":"*","schema":"public","table":"t"}],"private":true},"access_token":"a.eyJyb2xlIjoiYW5vbiIsImV4cCI6MX0.c"}`)},
		{Topic: "realtime:r", Event: protocol.EventReply, Ref: "1", JoinRef: "1", Payload: json.RawMessage(`{"status":"ok","response":{"postgres_changes":[{"id":7,"event":"*","schema":"public","table":"t"}]}}`)},
		{Topic: "realtime:r", Event: protocol.EventPresenceState, JoinRef: "1", Payload: json.RawMessage(`{"k":{"metas":[{"phx_ref":"x","n":1}]}}`)},
		{Topic: "realtime:r", Event: protocol.EventPresenceDiff, JoinRef: "1", Payload: json.RawMessage(`{"joins":{"j":{"metas":[{"phx_ref":"y"}]}},"leaves":{"k":{"metas":[{"phx_ref":"x"}]}}}`)},
		{Topic: "realtime:r", Event: protocol.EventBroadcast, JoinRef: "1", Broadcast: &protocol.Broadcast{Event: "e", Payload: []byte(`{"a":1}`)}},
		{Topic: "realtime:r", Event: protocol.EventBroadcast, Broadcast: &protocol.Broadcast{Event: "b", Payload: []byte{0, 0xff}, Binary: true}},
		{Topic: "realtime:r", Event: protocol.EventBroadcast, Binary: true, Raw: []byte{0, 1, 0xfe}}, // Phoenix's kind 2
		{Topic: "realtime:r", Event: protocol.EventAccessToken, Ref: "2", JoinRef: "1", Payload: json.RawMessage(`{"access_token":"t"}`)},
		{Topic: "phoenix", Event: protocol.EventHeartbeat, Ref: "3", Payload: json.RawMessage(`{}`)},
		{Topic: "realtime:r", Event: protocol.EventSystem, JoinRef: "1", Payload: json.RawMessage(`{"extension":"system","status":"error","message":"Token has expired"}`)},
		{Topic: "realtime:r", Event: protocol.EventError, JoinRef: "1", Payload: json.RawMessage(`{}`)},
		{Topic: "realtime:r", Event: protocol.EventLeave, Ref: "4", JoinRef: "1", Payload: json.RawMessage(`{}`)},
		{Topic: "realtime:r", Event: protocol.EventClose, Ref: "4", JoinRef: "1", Payload: json.RawMessage(`{}`)},
	}
	for _, v := range []protocol.Version{protocol.V1, protocol.V2} {
		var all [][]byte
		for _, m := range seeds {
			b, bin, err := v.AppendServer(nil, &m)
			if err != nil {
				continue
			}
			op := byte(2 * (v - 1))
			if bin {
				op |= 4
			}
			all = append(all, append([]byte{op}, b...), append([]byte{op | 1}, b...))
		}
		f.Add(bytes.Join(all, []byte("\n")))
	}
	f.Add([]byte("\x00not json\n\x05\x04\x00\x01\n\x07\x03"))
	opt := small
	opt.MaxOpenSockets = 4
	f.Fuzz(func(t *testing.T, data []byte) {
		m := apps.New(opt)
		sub := m.Subscribe(1)
		now := time.Unix(1, 0)
		m.Open(proxy.ConnInfo{ID: 1, RawQuery: "vsn=1.0.0", Opened: now})
		m.Open(proxy.ConnInfo{ID: 2, RawQuery: "vsn=2.0.0&apikey=a.b.c", Opened: now})
		for i, fr := range bytes.Split(data, []byte("\n")) {
			if i == 256 || len(fr) == 0 {
				break
			}
			op := fr[0]
			dir := proxy.ToApp
			if op&1 == 1 {
				dir = proxy.FromApp
			}
			now = now.Add(time.Duration(op) * time.Second)
			m.Frame(proxy.Frame{Conn: 1 + uint64(op>>1&1), Dir: dir, Time: now, Binary: op&4 != 0, Data: fr[1:]})
			if op&0xf0 == 0xe0 {
				m.Fault(proxy.FaultEvent{Conn: 1 + uint64(op>>1&1), Time: now, Kind: proxy.FaultFreeze, Detail: (time.Duration(op&8) * time.Second).String()})
			}
			if op&0xf0 == 0xf0 {
				m.Closed(proxy.Closed{Conn: 1 + uint64(op>>1&1), Time: now})
				m.Open(proxy.ConnInfo{ID: uint64(10 + i), RawQuery: "vsn=2.0.0", Opened: now})
			}
		}
		checkBounds(t, m.Snapshot(), opt)
		sub.Close()
	})
}
