// Package conformance holds the realtime-js conformance suite of rtm's
// embedded server (package rtm/realtime/server): tests that drive the
// official @supabase/realtime-js 2.119.0, running under Node 22, against
// the server on loopback, and assert both what the client sees (subscribe
// statuses and their error messages, callbacks, presenceState(), results
// of send/track/unsubscribe/httpSend) and the exact frames on the wire.
//
// The package has no non-test code. Its tests run inside plain
// `go test ./...`: package rtm/realtime/jsharness installs the
// npm packages pinned in testdata/realtimejs on first use and runs the
// driver. Without npm or Node the tests skip with instructions; with the
// environment variable CI set they fail instead.
//
// Each test starts its own server (servertest.New) and driver, and may
// add bare Go websocket clients speaking rtm/realtime/protocol. Waits are
// deadlines on the driver's event log, never sleeps; absence is asserted
// with fences (a server broadcast that must arrive after anything the
// server sent before it) or with the client's own heartbeats as a clock.
//
// Scenarios:
//
//  1. TestS01ConnectAndHeartbeat, TestS01BadAPIKeyRefused: upgrade without
//     subprotocol, heartbeat replies within the interval, sent/ok callbacks;
//     HTTP 401 {"error": ...} for each bad-key cause.
//  2. TestS02PlainJoin: the exact join and reply frames; string booleans
//     and the "version" key.
//  3. TestS03JoinRejected: expired access_token, exact reason, rejoins on
//     realtime-js's schedule on the same socket, each answered.
//  4. TestS04BroadcastFanOut: kind-3 bytes from the sender, kind-4 bytes to
//     a 2.0.0 peer, the JSON form to a 1.0.0 peer, nothing back to the
//     sender, ArrayBuffer payloads (encoding 0) not delivered to 1.0.0,
//     1.0.0 senders reaching 2.0.0 peers as JSON.
//  5. TestS05AckAndSelf: ack reply with the binary push's refs, self echo,
//     'timed out' when no ack comes (the server stalls the connection).
//  6. TestS06Presence: presence_state right after the join reply, track,
//     update with phx_ref_prev, server-assigned keys, untrack, leave on
//     socket close, callbacks and presenceState() at every step.
//  7. TestS07PostgresChangesRouting, TestS07PostgresChangesDelivery:
//     bindings echoed in order with integer ids, then the "Subscribed to
//     PostgreSQL" system message; changes (injected with EmitChange) reach
//     only the bindings whose ids the frame lists, converted by column
//     type; filtered-out rows and other events are not delivered.
//  8. TestS08TokenRefreshAndExpiry, TestS08ChannelTokenExpires,
//     TestTokenRefreshOnHeartbeat: access_token pushes without reply, the
//     system error + phx_close on an expired token or at exp, no rejoin.
//  9. TestS09Leave, TestS09ServerError, TestS09ServerClose: leave reply and
//     phx_close; phx_error → rejoin with a new ref; phx_close → no rejoin.
//  10. TestS10Reconnect, TestS10RESTBroadcast: reconnect after a drop with
//     new join refs and the same config and a fresh presence_state; the
//     REST fallback of send() and httpSend(), both 202.
//
// Beyond §12: private channels (TestPrivateChannels), tenant isolation
// (TestTenantIsolation), each limit with its exact reason (TestLimit*),
// joins refused by the fault control and then accepted
// (TestRejectedJoinsThenRecovery), the topic "realtime:"
// (TestTopicNameRequired), heartbeat timeout and recovery
// (TestHeartbeatTimeoutAndRecovery), restart on the same address
// (TestRestartSameAddress), and the interop of realtime-js with a Go
// client of either serializer (TestInteropGoAndRealtimeJS).
//
// The Phoenix framework's own JS client (npm phoenix 1.8.17, driven by
// jsharness.StartPhoenix) judges the server too, as against hosted
// Supabase: TestPhoenixBroadcast (a Go client's broadcast reaches it; its
// JSON broadcast and its ArrayBuffer push, a kind-0 frame, reach the
// others, the latter as Phoenix's kind-2 binary broadcast, both acked),
// TestPhoenixPresence (track, presence_state and presence_diff through
// phoenix's Presence, leave on disconnect), TestPhoenixStaleJoinRef (a push
// with another join_ref than the channel's is delivered),
// TestPhoenixKickError (phx_error {"reason":"channel_crash"} to onError,
// then a rejoin), TestPhoenixReconnect (reconnect and rejoin after the
// server drops the socket) and TestPhoenixTokenRefreshRefused (an
// access_token that reads nothing of a private channel: no reply, the
// system error "You do not have permissions to read from this Channel
// topic: …", phx_close).
//
// Not covered: the binding-mismatch path of §12.7, which needs a server
// that answers with other bindings than it was sent. Changes from a real
// PostgreSQL through logical replication are tested with realtime-js in
// package rtm/realtime/server/pgcdc (TestRealtimeJS*).
//
// A runtime quirk shapes two tests: Node 22.23.3's global WebSocket
// (undici 6.28.1), which realtime-js uses, fires "error" but no "close"
// when a connection attempt fails (refused, or an HTTP error instead of the
// upgrade), so realtime-js never retries it. Tests therefore check refused
// upgrades from Go, and keep a restart's downtime below realtime-js's first
// reconnect delay.
package conformance
