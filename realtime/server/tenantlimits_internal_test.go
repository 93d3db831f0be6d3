package server

import (
	"strings"
	"testing"
	"time"
)

func TestTenantOfTopicsAndTokens(t *testing.T) {
	if got := topicTenant("room1"); got != (tenant{}) {
		t.Errorf("room1: %+v, want the default tenant", got)
	}
	if got := topicTenant("tenant:acme:room"); got != (tenant{named: true, id: "acme"}) {
		t.Errorf("tenant:acme:room: %+v", got)
	}
	if got := topicTenant("tenant::room"); got != (tenant{named: true}) || got == (tenant{}) {
		t.Errorf("tenant::room: %+v, want the named empty tenant, not the default", got)
	}
	if got := tokenTenant(&Claims{TenantID: "acme"}); got != topicTenant("tenant:acme:x") {
		t.Errorf("token of acme: %+v", got)
	}
	if got := tokenTenant(&Claims{Role: RoleServiceRole}); got != (tenant{}) {
		t.Errorf("service_role without tenant_id: %+v, want the default tenant", got)
	}
	long := strings.Repeat("x", maxTenantID+1)
	lt := namedTenant(long)
	if !lt.digest || len(lt.id) != 32 {
		t.Errorf("a %d-byte ID is keyed by %d bytes (digest %v), want a 32-byte digest", len(long), len(lt.id), lt.digest)
	}
	if lt == namedTenant(lt.id) {
		t.Errorf("a long ID's digest equals the tenant named by the digest's bytes")
	}
	if namedTenant(long) != lt || namedTenant(long+"y") == lt {
		t.Errorf("digests are not one per ID")
	}
}

func TestTenantTableBounds(t *testing.T) {
	tt := newTenantTable(2)
	t0 := time.Unix(1000, 0)
	a, b, c, d := namedTenant("a"), namedTenant("b"), namedTenant("c"), namedTenant("d")
	for _, x := range []tenant{a, b} {
		if !tt.allow(x, rateEvents, t0, 3, 2) {
			t.Fatalf("%s refused", x.id)
		}
	}
	if n := tt.windows(); n != 2 {
		t.Fatalf("windows = %d, want 2", n)
	}
	// c and d overflow: they share one budget of 3.
	if !tt.allow(c, rateEvents, t0, 3, 2) || tt.allow(d, rateEvents, t0, 3, 2) || !tt.allow(d, rateEvents, t0, 3, 1) {
		t.Errorf("overflowing tenants do not share one budget")
	}
	if tt.count(c, rateEvents, t0) != 3 || tt.count(d, rateEvents, t0) != 3 {
		t.Errorf("overflow counts %d, %d, want 3", tt.count(c, rateEvents, t0), tt.count(d, rateEvents, t0))
	}
	// a and b keep their own, and the default tenant is always its own.
	if !tt.allow(a, rateEvents, t0, 3, 1) || tt.allow(a, rateEvents, t0, 3, 1) {
		t.Errorf("a's own budget is not 3")
	}
	if !tt.allow(tenant{}, rateEvents, t0, 3, 3) || tt.count(tenant{}, rateEvents, t0) != 3 {
		t.Errorf("the default tenant's budget is not its own")
	}
	if n := tt.windows(); n != 2 {
		t.Errorf("windows = %d after overflow, want 2", n)
	}
	// A refused first charge holds nothing; a fresh tenant counts 0.
	tt2 := newTenantTable(2)
	if tt2.allow(a, rateEvents, t0, 3, 4) || tt2.windows() != 0 || tt2.count(a, rateEvents, t0) != 0 {
		t.Errorf("a refused first charge is held: %d windows", tt2.windows())
	}

	// Half a second later a is still busy; b too.
	t1 := t0.Add(500 * time.Millisecond)
	if !tt.allow(b, rateJoins, t1, 3, 1) {
		t.Fatalf("b's joins refused")
	}
	// A second after t0, a is idle and dropped when a new tenant needs
	// room; b (busy at t1) is kept with its counts.
	t2 := t0.Add(1050 * time.Millisecond)
	if !tt.allow(c, rateEvents, t2, 3, 3) {
		t.Errorf("c refused after a turned idle")
	}
	if n := tt.windows(); n != 2 {
		t.Errorf("windows = %d, want 2 (b and c)", n)
	}
	if got := tt.count(b, rateJoins, t2); got != 1 {
		t.Errorf("b's joins = %d after the sweep, want 1", got)
	}
	// Half a second after that sweep b is idle too: a new tenant finding
	// the table full sweeps again at once, and gets b's room.
	t25 := t0.Add(1550 * time.Millisecond)
	if !tt.allow(d, rateEvents, t25, 3, 3) || tt.windows() != 2 || tt.count(c, rateEvents, t25) != 3 {
		t.Errorf("d did not take idle b's room: %d windows, c counts %d", tt.windows(), tt.count(c, rateEvents, t25))
	}
	if !tt.allow(namedTenant("e"), rateEvents, t25, 3, 3) || tt.allow(namedTenant("f"), rateEvents, t25, 3, 1) || tt.windows() != 2 {
		t.Errorf("e and f do not share the overflow in a full table of busy tenants")
	}
	// Two seconds on, the periodic sweep drops every idle tenant.
	t3 := t0.Add(2600 * time.Millisecond)
	tt.count(tenant{}, rateEvents, t3)
	if n := tt.windows(); n != 0 {
		t.Errorf("windows = %d two seconds on, want 0", n)
	}
}

func TestTenantTableAllowAll(t *testing.T) {
	tt := newTenantTable(2)
	t0 := time.Unix(1000, 0)
	a, x, y, z := namedTenant("a"), namedTenant("x"), namedTenant("y"), namedTenant("z")
	tt.allow(a, rateEvents, t0, 5, 4)
	// a's share of 2 does not fit: nothing is charged.
	if n, count, ok := tt.allowAll(rateEvents, t0, 5, sharesOf(x, a, x, a)); ok || n != 2 || count != 4 {
		t.Errorf("allowAll = %d, %d, %v; want 2, 4, false", n, count, ok)
	}
	if tt.windows() != 1 || tt.count(x, rateEvents, t0) != 0 {
		t.Errorf("a refused batch charged something")
	}
	// x takes the last room; y and z overflow and share 3 + 3 > 5.
	if n, _, ok := tt.allowAll(rateEvents, t0, 5, sharesOf(x, y, y, y, z, z, z)); ok || n != 6 {
		t.Errorf("allowAll with 6 overflowing = %d, %v; want 6, false", n, ok)
	}
	if _, _, ok := tt.allowAll(rateEvents, t0, 5, sharesOf(x, y, y, z, z, z, tenant{})); !ok {
		t.Errorf("allowAll within every budget refused")
	}
	if tt.windows() != 2 || tt.count(x, rateEvents, t0) != 1 || tt.count(y, rateEvents, t0) != 5 || tt.count(tenant{}, rateEvents, t0) != 1 {
		t.Errorf("after the batch: windows %d, x %d, overflow %d, default %d", tt.windows(),
			tt.count(x, rateEvents, t0), tt.count(y, rateEvents, t0), tt.count(tenant{}, rateEvents, t0))
	}
}

func TestTenantTableConns(t *testing.T) {
	tt := newTenantTable(2)
	a := namedTenant("a")
	for range 2 {
		if !tt.reserveConn(a, 2) {
			t.Fatalf("reserve refused under the limit")
		}
	}
	if tt.reserveConn(a, 2) || !tt.reserveConn(tenant{}, 2) || !tt.reserveConn(namedTenant("b"), 0) {
		t.Errorf("socket counts are not per tenant")
	}
	tt.releaseConn(a)
	if tt.connCount(a) != 1 || !tt.reserveConn(a, 2) {
		t.Errorf("a released socket does not free a slot")
	}
	for _, x := range []tenant{a, a, {}, namedTenant("b")} {
		tt.releaseConn(x)
	}
	if len(tt.conns) != 0 {
		t.Errorf("tenants without sockets are held: %v", tt.conns)
	}
}

// sharesOf charges one event to each tenant listed.
func sharesOf(ts ...tenant) []tenantShare {
	out := make([]tenantShare, len(ts))
	for i, t := range ts {
		out[i] = tenantShare{t: t, n: 1}
	}
	return out
}
