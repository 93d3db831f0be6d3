// Package server is rtm's embedded Supabase-compatible Realtime server: a
// WebSocket endpoint speaking the protocol of Supabase Realtime (serializers
// 1.0.0 and 2.0.0, as used by @supabase/realtime-js 2.119.0), the REST
// broadcast API, Supabase's tenant limits with their exact reasons, and
// fault controls (drop, kick, reject joins, pause, restart) for testing
// clients, as a Go API and under /admin/ over HTTP.
//
// postgres_changes: without a database, bindings are echoed with their ids
// and answered "Subscribed to PostgreSQL" at once, and changes come only
// from [Server.EmitChange]. With [Config].Changes (a [ChangeSource], e.g.
// package rtm/realtime/server/pgcdc reading PostgreSQL logical
// replication), each channel subscribes as its token's role and claims,
// the readiness message is sent when the source proves the subscription
// live, and refusals come back as postgres_changes system errors.
//
// Private channels: with [Config].Authorizer (package
// rtm/realtime/server/pgrealtime, for `--db`), joins, broadcasts, tracks,
// token refreshes and private REST broadcasts are decided by the
// database's RLS policies on realtime.messages with Supabase's probes and
// refusals (see [Authorizer]); without one, authenticated and
// service_role may use private channels and other roles may not.
//
// Broadcast from Database: with [Config].Broadcasts (package pgrealtime
// streams realtime.messages), inserted rows reach the channels of their
// topic as user broadcasts with meta {"id"}, and private joins may ask
// for config.broadcast.replay (see [DatabaseBroadcasts]).
//
// Limits count per tenant, as in Supabase, so that a tenant over a limit
// never holds back another: a topic "tenant:<ID>:..." belongs to tenant
// <ID>, any other topic to the default tenant, and a socket to the tenant
// of its token's tenant_id claim, or to the default tenant. Events,
// presence events and joins are charged to the topic's tenant (a join
// refused because its token may not use the tenant topic, to the
// socket's); the HTTP 429s at connect and the concurrent-users limit to
// the socket's tenant; channels are counted per socket and presence
// pushes per channel. At most [Config].MaxTenantWindows tenants' rate
// windows are held at once, idle ones are dropped; see [Limits].
//
// Phoenix-level behaviour follows the Phoenix that Supabase Realtime pins
// (a fork of Phoenix 1.8.11), so that Phoenix's own JS client (npm
// phoenix) behaves as against hosted Supabase:
//   - A Phoenix binary push (2.0.0 binary frame kind 0: kind, join_ref,
//     ref, topic and event lengths, the strings, then the payload bytes;
//     what phoenix.js sends for an ArrayBuffer payload) is a push with a
//     binary payload. Event "broadcast" is fanned out as a Phoenix binary
//     broadcast (kind 2: topic, event "broadcast", the bytes) to 2.0.0
//     subscribers, the sender too with self, and answered ok with ack;
//     1.0.0 subscribers do not receive it, and neither can realtime-js,
//     which decodes only kind 4 (as against Supabase). A binary presence
//     push is answered ok and changes nothing, a binary join is refused
//     with "join crashed", other binary events are ignored.
//   - Messages on a joined topic reach its channel whatever their
//     join_ref (Supabase's Phoenix reverted "drop incoming messages with
//     stale join refs"); replies carry the channel's join_ref. A
//     phx_leave with another join_ref than the channel's gets no reply and
//     leaves the channel alone (a channel joined without join_ref is left
//     by any leave); a push to a topic without a channel gets
//     {"reason":"unmatched topic"}.
//   - A channel kicked in error mode ([Server.Kick], KickError) gets
//     phx_error {"reason":"channel_crash"}, Phoenix's payload for a
//     crashed channel (realtime-js hands it to the app as the error's
//     cause); phx_close carries {}.
//   - An undecodable frame closes the socket with 1007 (1003 for a frame
//     the serializer cannot carry) and the reason "malformed frame: ..."
//     (or "unsupported frame: ...") with the decoding error, said once.
//
// Endpoints of [Server.Handler]:
//
//	GET  /realtime/v1/websocket, /socket/websocket         WebSocket (apikey, vsn)
//	POST /realtime/v1/api/broadcast, /api/broadcast         batch broadcast (202)
//	POST /realtime/v1/api/broadcast/{topic}/events/{event}  single broadcast (202)
//	     /admin/...                                         fault controls (service_role)
//	GET  /admin/limits[?tenant=ID]                          limits in force, the tenant's counters
//
// A batch broadcast is checked in one pass over its body, with no map or
// list per message, so its memory is a small multiple of the body's; a
// 422 lists the errors of at most 100 messages (Supabase's list, one entry
// per message, for a batch of up to 100; beyond, the first 100 failing
// messages with their "index", and the counts "failed" and "total"). An
// error message quotes at most 200 bytes of a topic, path or header.
//
// Slow and idle HTTP clients are bounded in time: every request gets read
// and write deadlines from the end of its headers ([Config].HTTPReadTimeout,
// HTTPWriteTimeout, set per request so that they hold under Handler in any
// http.Server too), and the server's own listener closes connections
// whose headers are late (HTTPReadHeaderTimeout) or that idle between
// requests (HTTPIdleTimeout), and answers 503 at once to connections
// beyond MaxHTTPConnections. A WebSocket sheds the HTTP deadlines when it
// upgrades, and leaves the HTTP count for Limits.MaxConcurrentUsers.
//
// Delivery and concurrency: each connection has one reader goroutine,
// which handles its frames in order, and one writer goroutine fed by a
// bounded queue. A broadcast is encoded once per serializer and the same
// bytes are queued on every subscriber; a subscriber whose queue is full
// is disconnected (counted in [Stats].SlowConsumerDrops) and never slows
// the others. Within a topic, every subscriber receives presence_state
// before the presence_diffs that follow it. All methods of Server are
// safe for concurrent use.
//
// Hostile input: presence has byte budgets, per connection and
// server-wide ([Config].MaxPresenceBytesPerConn, 16 MiB, and
// MaxPresenceBytes, 256 MiB). Each meta is kept once, charged to both, and
// given back on untrack, leave and close; a track over a budget is
// answered {"status":"error","response":{"reason":"PresenceBudgetExceeded:
// …"}} and changes nothing. A presence_state holds one topic's metas and a
// joiner whose state could never fit its outbound queue is dropped before
// it is encoded. Topics, event names, presence keys and join refs are
// capped at 255 bytes ([MaxTopicBytes] and its siblings), the caps of the
// 2.0.0 binary frames, for text frames and REST too; longer ones are
// refused with TopicTooLong, EventTooLong, PresenceKeyTooLong or
// RefTooLong and never kept.
//
// Source files, by concern: server.go (Server, New, keys, ids),
// lifecycle.go (Start, Restart, Shutdown, Close, the goroutines Close waits
// for), upgrade.go (the WebSocket handshake and the socket registry),
// stats.go (Stats), config.go, conn.go (a socket's reader and writer),
// frame.go (server frames), channel.go (join, leave, broadcast, presence
// messages), join.go (parsing a join), topic.go (fan-out and presence
// state), presence.go (presence budgets), caps.go (length caps), limits.go
// (rate windows, rejected joins), tenantlimits.go (limits per tenant),
// auth.go (JWTs), authorizer.go (private channels by an Authorizer),
// dbbroadcast.go (Broadcast from Database and replay),
// rest.go (the REST broadcast API), batch.go (scanning a
// batch body) and batchcheck.go (checking its messages, the 422 answer),
// httpconn.go (HTTP timeouts and connection limit), changes.go and
// pgchanges.go (postgres_changes with and without a [ChangeSource]),
// faults.go and admin.go (fault controls and /admin/), limitsreport.go
// (the limits in force and their counters, GET /admin/limits).
package server
