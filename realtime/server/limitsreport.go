package server

import (
	"net/http"
)

// LimitsReport is the server's configured [Limits] and its own counters
// of one tenant: the answer of GET /admin/limits, which rtm's limits
// meter reads (package registry/limits, ServerReport, has the same JSON).
type LimitsReport struct {
	// Off is true when no limit is enforced (Limits.Off).
	Off    bool             `json:"off"`
	Limits LimitsConfigured `json:"limits"`
	Usage  LimitsUsage      `json:"usage"`
}

// LimitsConfigured are the limits in force, by Supabase's setting names;
// 0 means not enforced.
type LimitsConfigured struct {
	MaxConcurrentUsers         int `json:"max_concurrent_users"`
	MaxChannelsPerClient       int `json:"max_channels_per_client"`
	MaxJoinsPerSecond          int `json:"max_joins_per_second"`
	MaxEventsPerSecond         int `json:"max_events_per_second"`
	MaxPresenceEventsPerSecond int `json:"max_presence_events_per_second"`
	MaxPayloadSizeInKB         int `json:"max_payload_size_in_kb"`
	// The per-channel presence window: ClientPresenceMaxCalls pushes per
	// ClientPresenceWindowMS.
	ClientPresenceMaxCalls int   `json:"client_presence_max_calls"`
	ClientPresenceWindowMS int64 `json:"client_presence_window_ms"`
}

// LimitsUsage are the tenant's counters now: its sockets (open or
// upgrading), the most channels one of its sockets holds, and the
// events charged to it in the last second (the sliding windows the
// limits are checked against).
type LimitsUsage struct {
	Connections              int   `json:"connections"`
	MaxChannelsPerConnection int   `json:"max_channels_per_connection"`
	JoinsPerSecond           int64 `json:"joins_per_second"`
	EventsPerSecond          int64 `json:"events_per_second"`
	PresenceEventsPerSecond  int64 `json:"presence_events_per_second"`
}

// LimitsReport returns the limits in force and the counters of tenant
// tenantID ("": the default tenant, whose topics have no tenant: prefix
// and whose tokens have no tenant_id claim). Its cost is one pass over
// the open sockets.
func (s *Server) LimitsReport(tenantID string) LimitsReport {
	l := s.cfg.Limits
	t := tenant{}
	if tenantID != "" {
		t = namedTenant(tenantID)
	}
	now := s.now()
	r := LimitsReport{Off: l.Off, Limits: LimitsConfigured{
		MaxConcurrentUsers: l.MaxConcurrentUsers, MaxChannelsPerClient: l.MaxChannelsPerClient,
		MaxJoinsPerSecond: l.MaxJoinsPerSecond, MaxEventsPerSecond: l.MaxEventsPerSecond,
		MaxPresenceEventsPerSecond: l.MaxPresenceEventsPerSecond, MaxPayloadSizeInKB: l.MaxPayloadSizeKB,
		ClientPresenceMaxCalls: l.ClientPresenceMaxCalls, ClientPresenceWindowMS: l.ClientPresenceWindow.Milliseconds(),
	}, Usage: LimitsUsage{
		Connections:             s.tenants.connCount(t),
		JoinsPerSecond:          s.tenants.count(t, rateJoins, now),
		EventsPerSecond:         s.tenants.count(t, rateEvents, now),
		PresenceEventsPerSecond: s.tenants.count(t, ratePresence, now),
	}}
	for _, c := range s.connList() {
		if tokenTenant(c.claims) != t {
			continue
		}
		c.mu.Lock()
		r.Usage.MaxChannelsPerConnection = max(r.Usage.MaxChannelsPerConnection, len(c.channels))
		c.mu.Unlock()
	}
	return r
}

// adminLimits answers GET /admin/limits[?tenant=ID].
func (s *Server) adminLimits(w http.ResponseWriter, r *http.Request, _ *Claims) {
	id := r.URL.Query().Get("tenant")
	if len(id) > 1024 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "tenant: at most 1024 bytes"})
		return
	}
	writeJSON(w, http.StatusOK, s.LimitsReport(id))
}
