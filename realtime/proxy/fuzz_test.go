package proxy_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/gorilla/websocket"

	"rtm/realtime/proxy"
)

// FuzzRelay sends arbitrary messages through the proxy to an echoing
// upstream: each comes back with its type and bytes, and the Observer saw
// it both ways as sent.
func FuzzRelay(f *testing.F) {
	f.Add([]byte(`["1","1","realtime:a","phx_join",{}]`), false)
	f.Add([]byte{3, 1, 1, 1, 1, 0, 1, 'a', 'b', 'c', 'd'}, true)
	f.Add([]byte{}, true)
	f.Add([]byte{0xff, 0xfe}, false)
	up := newEchoUpstream(f, false)
	rec := newRecorder()
	_, hs := startProxy(f, proxy.Config{Upstream: up.URL, Observer: rec, MaxFrameSize: 1 << 16, Logger: slog.New(slog.DiscardHandler)})
	c := dial(f, wsURL(hs.URL, "/realtime/v1/websocket?vsn=2.0.0"), nil)
	<-up.conns
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		if len(data) > 1<<16 {
			return
		}
		typ := websocket.TextMessage
		if binary {
			typ = websocket.BinaryMessage
		}
		if err := c.WriteMessage(typ, data); err != nil {
			t.Fatal(err)
		}
		gt, got, err := c.ReadMessage()
		if err != nil || gt != typ || !bytes.Equal(got, data) {
			t.Fatalf("echo: %d %q %v, want %d %q", gt, got, err, typ, data)
		}
		for _, d := range []proxy.Direction{proxy.FromApp, proxy.ToApp} {
			fs := rec.framesOf(d)
			if last := fs[len(fs)-1]; last.Binary != binary || !bytes.Equal(last.Data, data) {
				t.Fatalf("%s: observed %+v, want %q", d, last, data)
			}
		}
	})
}
