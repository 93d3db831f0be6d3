package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"rtm/realtime/protocol"
)

// TestServeDBAuthorizesPrivateChannels: with --db, rtm serve creates the
// realtime schema and the database's RLS policies decide private joins
// (the role rule would refuse anon everywhere), refusals waiting
// --authorization-error-delay.
func TestServeDBAuthorizesPrivateChannels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := startPG(ctx, t)
	const delay = 200 * time.Millisecond
	ws, stop, wait := serveAndDial(t, "--db", cl.URL("postgres"), "--authorization-error-delay", delay.String())
	join := func(ref, topic string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		frame := `["` + ref + `","` + ref + `","` + topic + `","phx_join",{"config":{"private":true}}]`
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if m, err := protocol.V2.DecodeServer(data, false); err == nil && m.Event == protocol.EventReply && m.Ref == ref {
				return string(m.Payload), time.Since(start)
			}
		}
	}
	reply, took := join("1", "realtime:open")
	if reply != `{"status":"error","response":{"reason":"Unauthorized: You do not have permissions to read from this Channel topic: open"}}` || took < delay {
		t.Errorf("anon without a policy: %s after %v", reply, took)
	}
	conn, err := pgx.Connect(ctx, cl.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `create policy anon_open on realtime.messages for select to anon using (realtime.topic() = 'open')`); err != nil {
		t.Fatalf("the realtime schema was not created: %v", err)
	}
	if reply, _ := join("2", "realtime:open"); !strings.Contains(reply, `"status":"ok"`) {
		t.Errorf("anon with a policy: %s", reply)
	}
	stop()
	if code, stderr := wait(); code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr)
	}
}
