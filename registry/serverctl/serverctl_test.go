package serverctl_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/limits"
	"rtm/registry/serverctl"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewHTTPValidates(t *testing.T) {
	for _, bad := range []string{"", "ftp://x", "http://", "::"} {
		if _, err := serverctl.NewHTTP(bad, "k", nil); err == nil {
			t.Fatalf("NewHTTP(%q) succeeded", bad)
		}
	}
	if _, err := serverctl.NewHTTP("http://127.0.0.1:1", "", nil); err == nil {
		t.Fatal("NewHTTP without a key succeeded")
	}
	h, err := serverctl.NewHTTP("ws://127.0.0.1:4000/realtime/v1/websocket?apikey=x", "k", nil)
	if err != nil || h.Target() != "rtm serve at http://127.0.0.1:4000" {
		t.Fatalf("target %q, %v", h.Target(), err)
	}
}

func TestHTTPAgainstTheServer(t *testing.T) {
	srv := servertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := serverctl.NewHTTP(srv.URL, srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.Kick(ctx, "realtime:nobody", registry.KickError); err != nil || n != 0 {
		t.Fatalf("kick: %d %v", n, err)
	}
	if err := h.RejectJoins(ctx, registry.Rejection{Count: 1, Reason: "X: y"}); err != nil {
		t.Fatalf("reject: %v", err)
	}
	if n, err := h.DropAll(ctx); err != nil || n != 0 {
		t.Fatalf("drop: %d %v", n, err)
	}
	// The admin API wants the service_role key.
	anon, _ := serverctl.NewHTTP(srv.URL, srv.AnonKey(), nil)
	if _, err := anon.Kick(ctx, "realtime:x", registry.KickClose); !errors.Is(err, serverctl.ErrAdmin) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("anon admin: %v", err)
	}
	conns, err := h.Connections(ctx)
	if err != nil || len(conns) != 0 {
		t.Fatalf("connections %v %v", conns, err)
	}
}

// TestServerLimits: the limits and counters of GET /admin/limits, read
// from the server over loopback, become the meter's limits.
func TestServerLimits(t *testing.T) {
	srv := servertest.New(t, servertest.WithLimits(server.Limits{MaxChannelsPerClient: 9, MaxPayloadSizeKB: 10}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := serverctl.NewHTTP(srv.URL, srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.ServerLimits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lim := r.Limits()
	if v, src := lim.Get(limits.ChannelsPerConnection); v != 9 || src != "server" {
		t.Fatalf("channels: %d %q (%+v)", v, src, r)
	}
	if v, _ := lim.Get(limits.PayloadSize); v != 10_000 {
		t.Fatalf("payload: %d", v)
	}
	if v, _ := lim.Get(limits.ConcurrentClients); v != 200 {
		t.Fatalf("clients: %d", v)
	}
	bad, _ := serverctl.NewHTTP(srv.URL, srv.AnonKey(), nil)
	if _, err := bad.ServerLimits(ctx); !errors.Is(err, serverctl.ErrAdmin) {
		t.Fatalf("anon key: %v", err)
	}
}
