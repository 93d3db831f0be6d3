package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// tenantToken signs a user token of tenant id.
func tenantToken(t *testing.T, s *servertest.Server, id string) string {
	t.Helper()
	return s.UserToken(t, "user-"+id, time.Hour, map[string]any{"tenant_id": id})
}

// dialTenant connects with a user token of tenant id under 2.0.0.
func dialTenant(t *testing.T, s *servertest.Server, id string) *client {
	t.Helper()
	return dial(t, s, tenantToken(t, s, id), "2.0.0")
}

// noSystemError fails t if c received a system error on topic.
func noSystemError(t *testing.T, c *client, topic string) {
	t.Helper()
	c.sync()
	if got := c.find(func(f inFrame) bool { return f.msg.Topic == topic && f.msg.Event == protocol.EventSystem }); len(got) != 0 {
		t.Errorf("%s got a system message: %s", topic, got[0].raw)
	}
}

// adminStats returns GET /admin/stats decoded.
func adminStats(t *testing.T, s *servertest.Server) map[string]any {
	t.Helper()
	status, body := httpDo(t, "GET", s.URL+"/admin/stats", s.ServiceRoleKey(), "", "")
	if status != http.StatusOK {
		t.Fatalf("admin stats: %d %s", status, body)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("admin stats %s: %v", body, err)
	}
	return st
}

// tenantWindows returns the tenant_windows of /admin/stats, -1 when
// absent.
func tenantWindows(t *testing.T, s *servertest.Server) int {
	t.Helper()
	v, ok := adminStats(t, s)["tenant_windows"].(float64)
	if !ok {
		return -1
	}
	return int(v)
}

// TestTenantEventsIsolated: a tenant flooding broadcasts on its own
// channel is shut down; another tenant's channel on the same server keeps
// sending and receiving its whole budget, and so does the default tenant.
func TestTenantEventsIsolated(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxEventsPerSecond: 5}))
	const topA, topB, topD = "realtime:tenant:a:room", "realtime:tenant:b:room", "realtime:room"
	a1, a2 := dialTenant(t, s, "a"), dialTenant(t, s, "a")
	b1, b2 := dialTenant(t, s, "b"), dialTenant(t, s, "b")
	ja1, _ := a1.join(topA, defaultJoin)
	ja2, _ := a2.join(topA, defaultJoin)
	jb, _ := b1.join(topB, defaultJoin)
	b2.join(topB, defaultJoin)
	d1, d2 := dialV2(t, s), dialV2(t, s)
	jd, _ := d1.join(topD, defaultJoin)
	d2.join(topD, defaultJoin)

	// B floods until its channel is shut down: 5 go through, the 6th
	// shuts it, the rest are unmatched.
	for i := range 20 {
		b1.broadcastJSON(jb, topB, fmt.Sprint("b", i), `{}`)
	}
	systemThenClose(t, b1, topB, jb, "Too many messages per second")
	b2.await("B's 5th", isBroadcast(topB, "b4"))
	b2.sync()
	if n := len(b2.find(func(f inFrame) bool { return f.msg.Topic == topB && f.msg.Event == protocol.EventBroadcast })); n != 5 {
		t.Errorf("B's peer received %d broadcasts, want 5", n)
	}

	// A, in the same second, sends its own 5: 4 one way, 1 back.
	for i := range 4 {
		a1.broadcastJSON(ja1, topA, fmt.Sprint("a", i), `{}`)
	}
	a2.await("A's 4th", isBroadcast(topA, "a3"))
	a2.broadcastJSON(ja2, topA, "back", `{}`)
	a1.await("A's reply", isBroadcast(topA, "back"))
	noSystemError(t, a1, topA)
	noSystemError(t, a2, topA)

	// The default tenant has its own budget too.
	for i := range 5 {
		d1.broadcastJSON(jd, topD, fmt.Sprint("d", i), `{}`)
	}
	d2.await("default's 5th", isBroadcast(topD, "d4"))
	noSystemError(t, d1, topD)

	// A's 6th is over A's limit.
	a1.broadcastJSON(ja1, topA, "a6", `{}`)
	systemThenClose(t, a1, topA, ja1, "Too many messages per second")
}

// TestTenantJoinsIsolated: a tenant's join flood gets its socket refused
// and closed and its new sockets refused with 429, while another
// tenant's clients, and the default tenant's, still connect and join.
func TestTenantJoinsIsolated(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxJoinsPerSecond: 3}))
	b := dialTenant(t, s, "b")
	for i := range 3 {
		b.join(fmt.Sprintf("realtime:tenant:b:j%d", i), defaultJoin)
	}
	if r := b.joinErr("realtime:tenant:b:j3", defaultJoin); r != "ClientJoinRateLimitReached: Too many joins per second" {
		t.Errorf("B's 4th join: %q", r)
	}
	var ce *websocket.CloseError
	if err := b.awaitClosed(); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("B's socket after the join rate limit: %v, want close 1001", err)
	}
	dialRefused(t, s.SocketURL(tenantToken(t, s, "b"), "2.0.0"), nil, http.StatusTooManyRequests, "Too many joins per second")

	// A connects (no 429) and joins its whole budget, in the same second.
	a := dialTenant(t, s, "a")
	for i := range 3 {
		a.join(fmt.Sprintf("realtime:tenant:a:j%d", i), defaultJoin)
	}
	d := dialV2(t, s)
	for i := range 3 {
		d.join(fmt.Sprintf("realtime:j%d", i), defaultJoin)
	}
	// A second later B may join again.
	clock.Advance(1100 * time.Millisecond)
	dialTenant(t, s, "b").join("realtime:tenant:b:j3", defaultJoin)
}

// TestTenantRefusedJoinsChargeTheSocket: joins refused because the token
// may not use another tenant's topic count against the joining socket's
// tenant, never against the tenant named, so a client cannot exhaust
// another tenant's joins.
func TestTenantRefusedJoinsChargeTheSocket(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxJoinsPerSecond: 3}))
	b, anon := dialTenant(t, s, "b"), dialV2(t, s)
	for i := range 3 {
		topic := fmt.Sprintf("realtime:tenant:a:j%d", i)
		if r := b.joinErr(topic, defaultJoin); !strings.HasPrefix(r, "Unauthorized: ") {
			t.Errorf("B joining A's topic: %q", r)
		}
		if r := anon.joinErr(topic, defaultJoin); !strings.HasPrefix(r, "Unauthorized: ") {
			t.Errorf("anon joining A's topic: %q", r)
		}
	}
	if r := b.joinErr("realtime:tenant:a:j3", defaultJoin); r != "ClientJoinRateLimitReached: Too many joins per second" {
		t.Errorf("B's 4th join: %q", r)
	}
	if r := anon.joinErr("realtime:tenant:a:j3", defaultJoin); r != "ClientJoinRateLimitReached: Too many joins per second" {
		t.Errorf("anon's 4th join: %q", r)
	}
	dialRefused(t, s.SocketURL(tenantToken(t, s, "b"), "2.0.0"), nil, http.StatusTooManyRequests, "Too many joins per second")
	dialRefused(t, s.SocketURL(s.AnonKey(), "2.0.0"), nil, http.StatusTooManyRequests, "Too many joins per second")
	a := dialTenant(t, s, "a")
	for i := range 3 {
		a.join(fmt.Sprintf("realtime:tenant:a:j%d", i), defaultJoin)
	}
}

// TestTenantConcurrentUsersIsolated: the concurrent-users limit counts
// the sockets of the token's tenant: a tenant at its limit gets 429 while
// another tenant, and the default tenant, still connect; a closed socket
// frees its tenant's slot.
func TestTenantConcurrentUsersIsolated(t *testing.T) {
	t.Parallel()
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxConcurrentUsers: 2}))
	b1 := dialTenant(t, s, "b")
	dialTenant(t, s, "b").sync()
	b1.sync()
	dialRefused(t, s.SocketURL(tenantToken(t, s, "b"), "2.0.0"), nil, http.StatusTooManyRequests, "Too many connected users")
	a1, a2 := dialTenant(t, s, "a"), dialTenant(t, s, "a")
	a1.join("realtime:tenant:a:room", defaultJoin)
	a2.join("realtime:tenant:a:room", defaultJoin)
	dialRefused(t, s.SocketURL(tenantToken(t, s, "a"), "2.0.0"), nil, http.StatusTooManyRequests, "Too many connected users")
	// service_role without tenant_id is the default tenant's.
	dial(t, s, s.ServiceRoleKey(), "2.0.0").join("realtime:tenant:b:room", defaultJoin)
	dialV2(t, s).sync()
	dialRefused(t, s.SocketURL(s.AnonKey(), "2.0.0"), nil, http.StatusTooManyRequests, "Too many connected users")
	b1.close()
	eventually(t, "B's slot to free", func() bool { return s.Stats().Connections == 5 })
	dialTenant(t, s, "b").sync()
}

// TestTenantPresenceIsolated: a tenant over its presence events per
// second is shut down; another tenant's presence channels keep syncing
// and tracking.
func TestTenantPresenceIsolated(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{
		MaxPresenceEventsPerSecond: 3, ClientPresenceMaxCalls: 100}))
	presence := joinPayload(`{}`, `{"enabled":true}`, false, "")
	b := dialTenant(t, s, "b")
	var refs []string
	for i := range 3 {
		tp := fmt.Sprintf("realtime:tenant:b:p%d", i)
		j, _ := b.join(tp, presence) // each presence_state is an event
		b.awaitEvent(tp, protocol.EventPresenceState)
		refs = append(refs, j)
	}
	b.send(refs[0], "realtime:tenant:b:p0", protocol.EventPresence, `{"type":"presence","event":"track","payload":{}}`)
	systemThenClose(t, b, "realtime:tenant:b:p0", refs[0], "Too many presence messages per second")

	// A: a sync, a track and another sync, in the same second.
	const topA = "realtime:tenant:a:p"
	a1, a2 := dialTenant(t, s, "a"), dialTenant(t, s, "a")
	ja, _ := a1.join(topA, joinPayload(`{}`, `{"key":"ann","enabled":true}`, false, ""))
	a1.awaitEvent(topA, protocol.EventPresenceState)
	ref := a1.send(ja, topA, protocol.EventPresence, `{"type":"presence","event":"track","payload":{"online":true}}`)
	if _, r := a1.awaitReply(ref); r.Status != protocol.StatusOK {
		t.Fatalf("A's track: %+v", r)
	}
	a2.join(topA, presence)
	st := a2.awaitEvent(topA, protocol.EventPresenceState)
	if !strings.Contains(string(st.msg.Payload), `"ann"`) {
		t.Errorf("A's second client's presence_state %s lacks ann", st.raw)
	}
	noSystemError(t, a1, topA)
	noSystemError(t, a2, topA)
}

// TestTenantRESTEvents: REST broadcasts to a tenant topic count against
// that tenant only, and a batch spanning tenants is charged all or none.
func TestTenantRESTEvents(t *testing.T) {
	t.Parallel()
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxEventsPerSecond: 5}))
	const topA, topB, topC = "realtime:tenant:a:room", "realtime:tenant:b:room", "realtime:tenant:c:room"
	batch := func(sub string, n int) string {
		return `{"messages":[` + strings.TrimSuffix(strings.Repeat(`{"topic":"`+sub+`","event":"r","payload":{}},`, n), ",") + `]}`
	}
	post := func(token, body string) (int, string) {
		return httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", token, "application/json", body)
	}
	ta, tb := tenantToken(t, s, "a"), tenantToken(t, s, "b")
	a1, a2 := dialTenant(t, s, "a"), dialTenant(t, s, "a")
	b1, b2 := dialTenant(t, s, "b"), dialTenant(t, s, "b")
	c1 := dial(t, s, s.ServiceRoleKey(), "2.0.0")
	ja, _ := a1.join(topA, defaultJoin)
	a2.join(topA, defaultJoin)
	jb, _ := b1.join(topB, defaultJoin)
	b2.join(topB, defaultJoin)
	c1.join(topC, defaultJoin)

	// B spends its budget over REST: its WebSocket push is then over.
	if status, body := post(tb, batch("tenant:b:room", 5)); status != http.StatusAccepted {
		t.Fatalf("B's REST batch: %d %s", status, body)
	}
	eventually(t, "B's 5 REST messages", func() bool { return len(b2.find(isBroadcast(topB, "r"))) == 5 })
	b1.broadcastJSON(jb, topB, "ws", `{}`)
	systemThenClose(t, b1, topB, jb, "Too many messages per second")
	if status, body := post(tb, batch("tenant:b:room", 1)); status != http.StatusTooManyRequests || !strings.Contains(body, "You have exceeded your rate limit") {
		t.Errorf("B's REST over its limit: %d %s", status, body)
	}

	// A, the same second: 4 over REST, 1 over the WebSocket.
	if status, body := post(ta, batch("tenant:a:room", 4)); status != http.StatusAccepted {
		t.Fatalf("A's REST batch: %d %s", status, body)
	}
	a1.broadcastJSON(ja, topA, "ws", `{}`)
	a2.await("A's push", isBroadcast(topA, "ws"))
	noSystemError(t, a1, topA)
	if n := len(a2.find(isBroadcast(topA, "r"))); n != 4 {
		t.Errorf("A's peer got %d REST messages, want 4", n)
	}
	// The default tenant's REST budget is whole.
	if status, body := post(s.AnonKey(), batch("room1", 5)); status != http.StatusAccepted {
		t.Errorf("default tenant's REST batch: %d %s", status, body)
	}

	// A service_role batch for C and the exhausted B is refused whole:
	// C is charged nothing and gets nothing.
	mixed := `{"messages":[{"topic":"tenant:c:room","event":"mixed","payload":{}},{"topic":"tenant:b:room","event":"mixed","payload":{}}]}`
	if status, body := post(s.ServiceRoleKey(), mixed); status != http.StatusTooManyRequests || !strings.Contains(body, "You have exceeded your rate limit") {
		t.Errorf("mixed batch: %d %s", status, body)
	}
	if status, body := post(s.ServiceRoleKey(), batch("tenant:c:room", 5)); status != http.StatusAccepted {
		t.Errorf("C's batch after the refused mixed one: %d %s", status, body)
	}
	eventually(t, "C's 5 REST messages", func() bool { return len(c1.find(isBroadcast(topC, "r"))) == 5 })
	c1.sync()
	if len(c1.find(isBroadcast(topC, "mixed"))) != 0 {
		t.Errorf("the refused mixed batch was delivered to C")
	}
	// A batch bigger than a tenant's whole budget gets the batch message.
	if status, body := post(s.ServiceRoleKey(), batch("tenant:d:room", 6)); status != http.StatusTooManyRequests || !strings.Contains(body, "Too many messages to broadcast, please reduce the batch size") {
		t.Errorf("oversize batch for a fresh tenant: %d %s", status, body)
	}
}

// TestTenantWindowsBounded: service_role broadcasting to ever new tenant
// names (long ones too) within one second grows the server's tenant
// windows to their bound (Config.MaxTenantWindows, default 1000) and no
// further, in entries and in heap; the tenants beyond it share one
// overflow budget, a tenant held before keeps its own, and idle tenants
// are dropped a second later. Not parallel: it measures the heap.
func TestTenantWindowsBounded(t *testing.T) {
	clock := servertest.NewClock(time.Now())
	s := servertest.New(t, servertest.WithClock(clock), servertest.WithLimits(server.Limits{MaxEventsPerSecond: 5}))
	const topA = "realtime:tenant:a:room"
	const bound = 1000
	a1, a2 := dialTenant(t, s, "a"), dialTenant(t, s, "a")
	ja, _ := a1.join(topA, defaultJoin)
	a2.join(topA, defaultJoin)
	a1.broadcastJSON(ja, topA, "a0", `{}`)
	a2.await("A's first", isBroadcast(topA, "a0"))
	if n := tenantWindows(t, s); n != 1 {
		t.Errorf("tenant_windows = %d with one tenant, want 1", n)
	}

	// flood posts one message to each of n new tenants; ids 60 bytes
	// long (kept as they are), every other one 200 (kept as a digest; a
	// topic holds at most 246 bytes).
	round := 0
	flood := func(n int) (int, string) {
		round++
		var b strings.Builder
		b.WriteString(`{"messages":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			id := fmt.Sprintf("flood-%d-%d-", round, i)
			id += strings.Repeat("x", 60+140*(i%2)-len(id))
			fmt.Fprintf(&b, `{"topic":"tenant:%s:room","event":"f","payload":{}}`, id)
		}
		b.WriteString(`]}`)
		return httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.ServiceRoleKey(), "application/json", b.String())
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	// 999 tenants fit with A; the 1000th overflows and shares the
	// overflow's budget of 5.
	if status, body := flood(500); status != http.StatusAccepted {
		t.Fatalf("flood of 500 tenants: %d %s", status, body)
	}
	if status, body := flood(500); status != http.StatusAccepted {
		t.Fatalf("flood to 1000 tenants: %d %s", status, body)
	}
	if n := tenantWindows(t, s); n != bound {
		t.Errorf("tenant_windows = %d after 1001 tenants, want %d", n, bound)
	}
	const beyond = 10
	for range beyond {
		// Every new tenant now overflows: a batch of 500 is refused whole.
		if status, body := flood(500); status != http.StatusTooManyRequests || !strings.Contains(body, "Too many messages to broadcast, please reduce the batch size") {
			t.Errorf("flood beyond the bound: %d %s", status, body)
		}
	}
	// 4 single messages to new tenants still fit the overflow's 5; the
	// next does not.
	for i := range 5 {
		want := http.StatusAccepted
		if i == 4 {
			want = http.StatusTooManyRequests
		}
		if status, body := flood(1); status != want {
			t.Errorf("overflow message %d: %d %s, want %d", i, status, body, want)
		}
	}
	grown := int64(heap()) - int64(before)
	if n := tenantWindows(t, s); n != bound {
		t.Errorf("tenant_windows = %d after the flood, want %d", n, bound)
	}
	t.Logf("heap growth after %d rounds naming %d tenants: %d bytes", round, 1000+beyond*500+5, grown)
	// 1000 windows of ~600 bytes, keys of at most 64 bytes, map buckets.
	if grown > 2<<20 {
		t.Errorf("heap grew %d bytes, want at most 2 MiB for %d tenant windows", grown, bound)
	}

	// A, held before the flood, keeps its own budget: 4 more this second.
	for i := 1; i < 5; i++ {
		a1.broadcastJSON(ja, topA, fmt.Sprint("a", i), `{}`)
	}
	a2.await("A's 5th", isBroadcast(topA, "a4"))
	noSystemError(t, a1, topA)

	// A second later every tenant is idle: the next check drops them all.
	clock.Advance(1100 * time.Millisecond)
	if status, body := httpDo(t, "POST", s.URL+"/realtime/v1/api/broadcast", s.AnonKey(), "application/json",
		`{"messages":[{"topic":"room1","event":"r","payload":{}}]}`); status != http.StatusAccepted {
		t.Fatalf("default tenant's REST: %d %s", status, body)
	}
	if n := tenantWindows(t, s); n != 0 {
		t.Errorf("tenant_windows = %d a second after the flood, want 0", n)
	}
	if status, body := flood(500); status != http.StatusAccepted {
		t.Errorf("flood a second later: %d %s", status, body)
	}
	if n := tenantWindows(t, s); n != 500 {
		t.Errorf("tenant_windows = %d, want 500", n)
	}
}
