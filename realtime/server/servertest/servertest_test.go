package servertest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/realtime/token"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewServesAndCleansUp(t *testing.T) {
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxChannelsPerClient: 1}))
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || s.WSURL != "ws://"+s.Addr()+"/realtime/v1/websocket" {
		t.Errorf("URLs %q %q", s.URL, s.WSURL)
	}
	tok := s.UserToken(t, "u1", time.Minute, map[string]any{"tenant_id": "t1"})
	ws, _, err := websocket.DefaultDialer.Dial(s.SocketURL(tok, "2.0.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`[null,"1","phoenix","heartbeat",{}]`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"status":"ok"`) {
		t.Fatalf("heartbeat reply %s %v", msg, err)
	}
	conns := s.Conns()
	if len(conns) != 1 || conns[0].Sub != "u1" || conns[0].TenantID != "t1" || conns[0].Role != "authenticated" {
		t.Errorf("Conns() = %+v", conns)
	}
	// A token signed with another secret is refused.
	other, _ := token.Sign([]byte("other"), map[string]any{"role": "anon", "exp": time.Now().Unix() + 60})
	if _, resp, err := websocket.DefaultDialer.Dial(s.SocketURL(other, "2.0.0"), nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("foreign token: %v", err)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := servertest.NewClock(start)
	var got []string
	c.AfterFunc(3*time.Second, func() { got = append(got, "3s@"+c.Now().Sub(start).String()) })
	stop := c.AfterFunc(2*time.Second, func() { got = append(got, "cancelled") })
	c.AfterFunc(time.Second, func() {
		got = append(got, "1s")
		c.AfterFunc(time.Second, func() { got = append(got, "chained@"+c.Now().Sub(start).String()) })
	})
	if !stop() || stop() {
		t.Errorf("stop() should report true once")
	}
	if c.Pending() != 2 {
		t.Errorf("Pending = %d, want 2", c.Pending())
	}
	c.Advance(2500 * time.Millisecond)
	if strings.Join(got, ",") != "1s,chained@2s" || c.Now() != start.Add(2500*time.Millisecond) {
		t.Errorf("after 2.5s: %v at %v", got, c.Now())
	}
	c.Advance(time.Second)
	if strings.Join(got, ",") != "1s,chained@2s,3s@3s" || c.Pending() != 0 {
		t.Errorf("after 3.5s: %v (%s)", got, c)
	}
}
