package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// TestServePresenceBudgetFlags: rtm serve's presence budget flags reach
// the server: a track over --max-presence-bytes-per-conn gets the error
// reply naming that budget.
func TestServePresenceBudgetFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	var out lockedBuf
	wait := background(sctx, &out, "serve", "--addr", "127.0.0.1:0", "--log-level", "error",
		"--max-presence-bytes-per-conn", "5000", "--max-presence-bytes", "1000000")
	banner := regexp.MustCompile(`Realtime URL: (ws://\S+)\n(?s:.*)anon key: (\S+)\n`)
	waitFor(t, "the banner", func() bool { return banner.MatchString(out.String()) })
	m := banner.FindStringSubmatch(out.String())
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, m[1]+"?vsn=2.0.0&apikey="+m[2], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	push := func(frame string) map[string]any {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			msg, err := protocol.V2.DecodeServer(data, false)
			if err == nil && msg.Event == protocol.EventReply {
				var r map[string]any
				if err := json.Unmarshal(msg.Payload, &r); err != nil {
					t.Fatal(err)
				}
				return r
			}
		}
	}
	if r := push(`["1","1","realtime:room","phx_join",{"config":{"presence":{"key":"k"}}}]`); r["status"] != "ok" {
		t.Fatalf("join: %v", r)
	}
	r := push(`["1","2","realtime:room","presence",{"type":"presence","event":"track","payload":{"s":"` + strings.Repeat("s", 6000) + `"}}]`)
	resp, _ := r["response"].(map[string]any)
	reason, _ := resp["reason"].(string)
	if r["status"] != "error" || !strings.HasPrefix(reason, "PresenceBudgetExceeded: ") || !strings.HasSuffix(reason, "over its budget of 5000") {
		t.Errorf("track over the flag's budget: %v", r)
	}
	ws.Close()
	stop()
	if code, stderr := wait(); code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr)
	}
}
