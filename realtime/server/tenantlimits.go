package server

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"
)

// The rate limits and the concurrent-users limit count per tenant, so
// that a noisy tenant hits its own limits only (Supabase counts them per
// tenant too). Which tenant a check charges:
//
//   - a broadcast, presence or other push on a channel, a presence_state
//     sync at join and a REST message: the tenant of the topic;
//   - a join: the tenant of the joined topic, unless it is a tenant topic
//     the join's token may not use (refused Unauthorized, or with a bad
//     token), which charges the socket's tenant instead, so that a client
//     cannot spend another tenant's join budget with joins it is refused;
//   - the connect-time checks (HTTP 429 "Too many joins per second" while
//     the tenant's joins are over the limit, "Too many connected users")
//     and the join-time concurrent-users check: the tenant of the socket's
//     token.
//
// A topic "tenant:<ID>:..." belongs to tenant <ID> (an empty <ID> too,
// which only service_role may use); any other topic to the default
// tenant. A token belongs to the tenant of its tenant_id claim, or to the
// default tenant without one, whatever its role: service_role may use
// every tenant's topics, and charges the tenant of each topic it uses.
// The limits on channels per socket and on presence pushes per channel
// count per socket and per channel, as in Supabase.

// maxTenantID is the longest tenant ID the tenant table keys as it is; a
// longer one is keyed by its SHA-256 digest, so that a key holds at most
// this many bytes whatever the topic or token names.
const maxTenantID = 64

// defaultMaxTenantWindows is the default of Config.MaxTenantWindows.
const defaultMaxTenantWindows = 1000

// tenant names the tenant a limit check charges. The zero tenant is the
// default tenant.
type tenant struct {
	named  bool   // false for the default tenant
	digest bool   // id is the SHA-256 digest of an ID over maxTenantID bytes
	id     string // the tenant ID
}

// namedTenant returns the tenant of ID id.
func namedTenant(id string) tenant {
	if len(id) > maxTenantID {
		sum := sha256.Sum256([]byte(id))
		return tenant{named: true, digest: true, id: string(sum[:])}
	}
	return tenant{named: true, id: id}
}

// topicTenant returns the tenant a sub-topic belongs to.
func topicTenant(sub string) tenant {
	if id, ok := tenantOf(sub); ok {
		return namedTenant(id)
	}
	return tenant{}
}

// tokenTenant returns the tenant of a token: its tenant_id claim, or the
// default tenant.
func tokenTenant(cl *Claims) tenant {
	if cl == nil || cl.TenantID == "" {
		return tenant{}
	}
	return namedTenant(cl.TenantID)
}

// joinToken returns the token a join with payload token ("" when absent)
// uses: its own, or the socket's for none or an opaque sb_ key, as in
// Supabase.
func (c *conn) joinToken(token string) string {
	if token == "" || strings.HasPrefix(token, "sb_") {
		return c.apikey
	}
	return token
}

// joinTenant returns the tenant a join of sub with token charges: sub's,
// unless sub is a tenant topic token may not use (see the tenant model
// above). A topic outside every tenant needs no token check: it charges
// the default tenant whoever joins it.
func (c *conn) joinTenant(sub, token string, now time.Time) tenant {
	if _, ok := tenantOf(sub); !ok {
		return tenant{}
	}
	if claims, aerr := verifyToken(token, c.s.cfg.JWTSecret, now); aerr == nil && tenantRefusal(sub, claims) == "" {
		return topicTenant(sub)
	}
	return tokenTenant(c.claims)
}

// rateKind is one of the per-tenant rate limits.
type rateKind int

const (
	rateEvents   rateKind = iota // Limits.MaxEventsPerSecond
	rateJoins                    // Limits.MaxJoinsPerSecond
	ratePresence                 // Limits.MaxPresenceEventsPerSecond
	rateKinds
)

// tenantWindows are one tenant's rate windows.
type tenantWindows struct {
	w [rateKinds]rateWindow
	// last is the latest 100 ms period any window counted in: once it is
	// a second old every window counts 0, and the tenant is idle.
	last int64
}

func (tw *tenantWindows) add(k rateKind, now time.Time, n int) {
	tw.w[k].add(now, int64(n))
	tw.last = max(tw.last, ratePeriod(now))
}

// tenantTable holds the rate windows and socket counts of every tenant.
// It is safe for concurrent use; its mutex is taken last, under any other
// lock of the server.
//
// Bounds: the default tenant's windows are always held. Another tenant's
// are held from the first event charged to it until it is idle (nothing
// charged for a second, so every window counts 0): a sweep, run by the
// first check a second after the last one, drops the idle tenants, which
// loses no count. At most maxNamed tenants are held. A tenant charged
// while that many busy ones are held shares one overflow set of windows
// with every other such tenant, until a sweep (run at once when the
// table is full, at most once per 100 ms period, as a tenant can only
// turn idle when a period begins) frees room; it then starts over with
// empty windows of its own. So a client naming ever new tenants
// (service_role may) grows the table to maxNamed entries, each keyed by
// at most maxTenantID bytes, and never beyond, while the tenants held
// keep their own windows and counts. Socket counts are held per tenant
// while it has sockets, so they are bounded by the open sockets.
type tenantTable struct {
	mu        sync.Mutex
	maxNamed  int
	def       tenantWindows
	overflow  tenantWindows
	named     map[tenant]*tenantWindows
	lastSweep int64 // the period of the last sweep
	conns     map[tenant]int
}

func newTenantTable(maxNamed int) *tenantTable {
	return &tenantTable{maxNamed: maxNamed, named: make(map[tenant]*tenantWindows), conns: make(map[tenant]int)}
}

// sweepLocked drops idle tenants (tt.mu held).
func (tt *tenantTable) sweepLocked(cur int64) {
	tt.lastSweep = cur
	for t, tw := range tt.named {
		if tw.last <= cur-rateSlots {
			delete(tt.named, t)
		}
	}
}

// sweepDueLocked sweeps when the last sweep is a second old, and when
// want more tenants would not fit and there was no sweep in this period
// yet: a tenant can only turn idle in a new period (tt.mu held).
func (tt *tenantTable) sweepDueLocked(cur int64, want int) {
	if cur >= tt.lastSweep+rateSlots || (len(tt.named)+want > tt.maxNamed && cur > tt.lastSweep) {
		tt.sweepLocked(cur)
	}
}

// getLocked returns t's windows: the default tenant's, t's own, the
// overflow when t has none and the table is full, or nil when t has none
// and there is room for them (tt.mu held).
func (tt *tenantTable) getLocked(t tenant) *tenantWindows {
	if !t.named {
		return &tt.def
	}
	if tw := tt.named[t]; tw != nil {
		return tw
	}
	if len(tt.named) >= tt.maxNamed {
		return &tt.overflow
	}
	return nil
}

// lookupLocked is getLocked after the sweeps due (tt.mu held).
func (tt *tenantTable) lookupLocked(t tenant, now time.Time) *tenantWindows {
	want := 0
	if t.named && tt.named[t] == nil {
		want = 1
	}
	tt.sweepDueLocked(ratePeriod(now), want)
	return tt.getLocked(t)
}

// insertLocked gives t windows of its own; lookupLocked returned nil for
// it (tt.mu held).
func (tt *tenantTable) insertLocked(t tenant) *tenantWindows {
	t.id = strings.Clone(t.id) // do not keep the topic or token it was cut from
	tw := &tenantWindows{}
	tt.named[t] = tw
	return tw
}

// allow charges n events of kind k to t and reports true if that keeps
// t's last second at or under limit; otherwise it charges nothing and
// reports false. A limit of 0 allows everything.
func (tt *tenantTable) allow(t tenant, k rateKind, now time.Time, limit, n int) bool {
	if limit <= 0 {
		return true
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tw := tt.lookupLocked(t, now)
	if tw == nil {
		if n > limit {
			return false
		}
		tw = tt.insertLocked(t)
	} else if !tw.w[k].fits(now, limit, n) {
		return false
	}
	tw.add(k, now, n)
	return true
}

// count returns the events of kind k charged to t in the last second.
func (tt *tenantTable) count(t tenant, k rateKind, now time.Time) int64 {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tw := tt.lookupLocked(t, now); tw != nil {
		return tw.w[k].count(now)
	}
	return 0
}

// tenantShare is how many events of one request a tenant pays for.
type tenantShare struct {
	t tenant
	n int
}

// allowAll charges the events of one request, sh.n to tenant sh.t for
// each share (a tenant may appear in several), all or none: when one
// tenant's window has no room for its share, nothing is charged and
// allowAll returns false with that share n and that window's count. A
// limit of 0 allows everything.
func (tt *tenantTable) allowAll(k rateKind, now time.Time, limit int, req []tenantShare) (n int, count int64, ok bool) {
	if limit <= 0 {
		return 0, 0, true
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	// Each tenant's windows, in order of first appearance; nil for one to
	// be inserted. Tenants that overflow share the overflow's share.
	type share struct {
		t  tenant
		tw *tenantWindows
		n  int
	}
	var shares []share
	index := make(map[tenant]int)
	overflow := -1
	fresh := 0
	tt.sweepDueLocked(ratePeriod(now), len(req)) // before taking any windows
	for _, r := range req {
		t := r.t
		if i, ok := index[t]; ok {
			shares[i].n += r.n
			continue
		}
		tw := tt.getLocked(t)
		if tw == nil && len(tt.named)+fresh >= tt.maxNamed {
			tw = &tt.overflow
		}
		if tw == &tt.overflow {
			if overflow < 0 {
				overflow = len(shares)
				shares = append(shares, share{tw: tw})
			}
			index[t] = overflow
			shares[overflow].n += r.n
			continue
		}
		if tw == nil {
			fresh++
		}
		index[t] = len(shares)
		shares = append(shares, share{t: t, tw: tw, n: r.n})
	}
	for _, sh := range shares {
		if sh.tw == nil {
			if sh.n > limit {
				return sh.n, 0, false
			}
		} else if !sh.tw.w[k].fits(now, limit, sh.n) {
			return sh.n, sh.tw.w[k].count(now), false
		}
	}
	for _, sh := range shares {
		if sh.tw == nil {
			sh.tw = tt.insertLocked(sh.t)
		}
		sh.tw.add(k, now, sh.n)
	}
	return 0, 0, true
}

// resetWindows forgets every tenant's events (Restart).
func (tt *tenantTable) resetWindows() {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.def, tt.overflow = tenantWindows{}, tenantWindows{}
	clear(tt.named)
}

// windows returns how many named tenants have windows of their own.
func (tt *tenantTable) windows() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.named)
}

// reserveConn counts one more socket of t and reports true, unless t
// already has limit sockets (0: no limit).
func (tt *tenantTable) reserveConn(t tenant, limit int) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if limit > 0 && tt.conns[t] >= limit {
		return false
	}
	if _, ok := tt.conns[t]; !ok {
		t.id = strings.Clone(t.id)
	}
	tt.conns[t]++
	return true
}

// releaseConn counts one socket of t less.
func (tt *tenantTable) releaseConn(t tenant) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.conns[t] <= 1 {
		delete(tt.conns, t)
		return
	}
	tt.conns[t]--
}

// connCount returns the sockets of t, open or upgrading.
func (tt *tenantTable) connCount(t tenant) int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.conns[t]
}
