package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// adminLimits returns GET /admin/limits (with query q) decoded.
func adminLimits(t *testing.T, s *servertest.Server, q string) server.LimitsReport {
	t.Helper()
	status, body := httpDo(t, "GET", s.URL+"/admin/limits"+q, s.ServiceRoleKey(), "", "")
	if status != http.StatusOK {
		t.Fatalf("admin limits: %d %s", status, body)
	}
	var r server.LimitsReport
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("admin limits %s: %v", body, err)
	}
	return r
}

// TestAdminLimits: GET /admin/limits answers the configured limits and
// the tenant's counters, over a real socket, and only to service_role.
func TestAdminLimits(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxChannelsPerClient: 7, MaxJoinsPerSecond: 20, MaxPayloadSizeKB: 64}))
	r := adminLimits(t, s, "")
	want := server.LimitsConfigured{MaxConcurrentUsers: 200, MaxChannelsPerClient: 7, MaxJoinsPerSecond: 20, MaxEventsPerSecond: 100,
		MaxPresenceEventsPerSecond: 1000, MaxPayloadSizeInKB: 64, ClientPresenceMaxCalls: 5, ClientPresenceWindowMS: 30000}
	if r.Off || r.Limits != want || r.Usage != (server.LimitsUsage{}) {
		t.Fatalf("idle: %+v", r)
	}

	c1, c2 := dialV2(t, s), dialV2(t, s)
	for i := range 3 {
		c1.join(fmt.Sprintf("realtime:room%d", i), defaultJoin)
	}
	ref, _ := c2.join("realtime:room0", defaultJoin)
	c2.broadcastJSON(ref, "realtime:room0", "e", `{}`)
	c1.awaitEvent("realtime:room0", "broadcast")
	b := dialTenant(t, s, "b")
	b.join("realtime:tenant:b:x", defaultJoin)

	r = adminLimits(t, s, "")
	if u := r.Usage; u.Connections != 2 || u.MaxChannelsPerConnection != 3 || u.JoinsPerSecond != 4 || u.EventsPerSecond != 1 {
		t.Fatalf("default tenant: %+v", u)
	}
	if u := adminLimits(t, s, "?tenant=b").Usage; u.Connections != 1 || u.MaxChannelsPerConnection != 1 || u.JoinsPerSecond != 1 || u.EventsPerSecond != 0 {
		t.Fatalf("tenant b: %+v", u)
	}
	clock.Advance(1100 * time.Millisecond)
	if u := adminLimits(t, s, "").Usage; u.JoinsPerSecond != 0 || u.Connections != 2 {
		t.Fatalf("a second later: %+v", u)
	}

	if status, body := httpDo(t, "GET", s.URL+"/admin/limits", s.AnonKey(), "", ""); status != http.StatusForbidden {
		t.Fatalf("anon: %d %s", status, body)
	}
	off := servertest.New(t, servertest.WithLimits(server.Limits{Off: true}))
	if r := adminLimits(t, off, ""); !r.Off || r.Limits.MaxChannelsPerClient != 0 {
		t.Fatalf("off: %+v", r)
	}
}
