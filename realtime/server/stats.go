package server

import (
	"sync/atomic"
)

// counters are the server's statistics.
type counters struct {
	connectionsTotal, connectErrors               atomic.Uint64
	framesIn, framesOut, bytesIn, bytesOut        atomic.Uint64
	joins, joinErrors, rejectedJoins, shutdowns   atomic.Uint64
	channels, presences                           atomic.Uint64
	broadcasts, deliveries, restBroadcasts        atomic.Uint64
	slowDrops, badFrames, idleCloses, rateLimited atomic.Uint64
	drops, kicks, restarts                        atomic.Uint64
	presenceRefused                               atomic.Uint64
	presenceBytes                                 atomic.Int64 // held to Config.MaxPresenceBytes
}

// Stats are counters of the server since New.
type Stats struct {
	// Connections and Channels are open now; Presences are tracked now.
	Connections int    `json:"connections"`
	Channels    int    `json:"channels"`
	Topics      int    `json:"topics"`
	Presences   uint64 `json:"presences"`
	// PresenceBytes is what the tracked presence costs the server now
	// (held to Config.MaxPresenceBytes); PresenceRefused counts tracks
	// refused because they would exceed a presence budget.
	PresenceBytes   int64  `json:"presence_bytes"`
	PresenceRefused uint64 `json:"presence_refused"`

	ConnectionsTotal uint64 `json:"connections_total"`
	ConnectErrors    uint64 `json:"connect_errors"`
	FramesIn         uint64 `json:"frames_in"`
	FramesOut        uint64 `json:"frames_out"`
	BytesIn          uint64 `json:"bytes_in"`
	BytesOut         uint64 `json:"bytes_out"`
	Joins            uint64 `json:"joins"`
	JoinErrors       uint64 `json:"join_errors"`
	RejectedJoins    uint64 `json:"rejected_joins"`
	Shutdowns        uint64 `json:"channel_shutdowns"`
	// Broadcasts are accepted broadcasts (WebSocket, REST, Go API);
	// Deliveries are the frames they fanned out to.
	Broadcasts     uint64 `json:"broadcasts"`
	RESTBroadcasts uint64 `json:"rest_broadcasts"`
	Deliveries     uint64 `json:"deliveries"`
	// SlowConsumerDrops are connections dropped because their outbound
	// queue was full.
	SlowConsumerDrops uint64 `json:"slow_consumer_drops"`
	BadFrames         uint64 `json:"bad_frames"`
	IdleCloses        uint64 `json:"idle_closes"`
	RateLimited       uint64 `json:"rate_limited"`
	Drops             uint64 `json:"drops"`
	Kicks             uint64 `json:"kicks"`
	Restarts          uint64 `json:"restarts"`

	// TenantWindows are the tenants whose rate windows the server holds
	// now, the default tenant's not counted; at most
	// [Config].MaxTenantWindows.
	TenantWindows int `json:"tenant_windows"`

	// HTTPConnections are the listener's connections speaking HTTP now
	// (not those upgraded to WebSockets); HTTPConnectionsRefused were
	// refused over Config.MaxHTTPConnections.
	HTTPConnections        int    `json:"http_connections"`
	HTTPConnectionsRefused uint64 `json:"http_connections_refused"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	s.regMu.Lock()
	topics := len(s.topics)
	s.regMu.Unlock()
	return Stats{
		Connections: s.connCount(), Channels: int(c.channels.Load()), Topics: topics, Presences: c.presences.Load(),
		ConnectionsTotal: c.connectionsTotal.Load(), ConnectErrors: c.connectErrors.Load(),
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Joins: c.joins.Load(), JoinErrors: c.joinErrors.Load(), RejectedJoins: c.rejectedJoins.Load(), Shutdowns: c.shutdowns.Load(),
		Broadcasts: c.broadcasts.Load(), RESTBroadcasts: c.restBroadcasts.Load(), Deliveries: c.deliveries.Load(),
		SlowConsumerDrops: c.slowDrops.Load(), BadFrames: c.badFrames.Load(), IdleCloses: c.idleCloses.Load(),
		RateLimited: c.rateLimited.Load(), Drops: c.drops.Load(), Kicks: c.kicks.Load(), Restarts: c.restarts.Load(),
		TenantWindows:   s.tenants.windows(),
		HTTPConnections: int(s.httpConns.open.Load()), HTTPConnectionsRefused: s.httpConns.refused.Load(),
		PresenceBytes: c.presenceBytes.Load(), PresenceRefused: c.presenceRefused.Load(),
	}
}
