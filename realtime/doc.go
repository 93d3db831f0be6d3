// Package realtime is rtm's Go client for Supabase Realtime. On the wire it
// behaves like @supabase/realtime-js 2.119.0 with @supabase/phoenix 0.4.5;
// frames are those of package realtime/protocol.
//
// # Socket
//
// [Dial] (or [NewSocket] then [Socket.Connect]) takes a project URL
// (https://<ref>.supabase.co, http://127.0.0.1:54321) or a ws(s) URL and
// connects to .../realtime/v1/websocket?apikey=...&vsn=2.0.0 (see
// [EndpointURL]; serializer 1.0.0 with [Options].Vsn). A socket has one
// reader and one writer goroutine per connection. The writer sends a
// heartbeat every [Options].HeartbeatInterval (25 s) and measures its
// round trip; a heartbeat not answered within one interval closes the
// connection with 1000 "heartbeat timeout". Any loss of the connection
// (or failed attempt) is followed by a new attempt after
// [Options].ReconnectAfter(tries): 1, 2, 5, 10 s, then 10 s forever,
// jittered, the count reset when a connection opens. Only [Socket.Close]
// stops it. The [Status] (connecting, open, reconnecting, closed) and
// every transition with its reason, attempt and delay go to
// [Options].OnStatus; heartbeats to [Options].OnHeartbeat; counters are in
// [Socket.Stats]. [Options].Dial makes the TCP connections, so a
// fault-injecting net.Conn can sit under the WebSocket.
//
// Every step of a connection attempt — DNS and TCP, the TLS handshake,
// the upgrade request and its response — ends at the attempt's bound: the
// connection under way is closed then, so a server that accepts and
// never answers holds nothing longer. The bound is
// [Options].HandshakeTimeout (10 s), the context of the [Socket.Connect]
// or [Dial] waiting for it when that ends sooner (deadline or
// cancellation: the first attempt ends no later than the caller's
// deadline), and [Socket.Close]. The error says which step was cut short
// ("context deadline exceeded awaiting the WebSocket upgrade response").
//
// # Channels
//
// [Socket.Channel] returns the channel of a topic (one per topic per
// socket, as realtime-js), configured by [ChannelConfig]: broadcast ack
// and self, presence key and enabled, postgres_changes bindings, private.
// [Channel.Subscribe] joins and returns the outcome of that join: nil for
// SUBSCRIBED, a *[JoinError] carrying the server's reason for a refused
// join (errors.As), an error wrapping [ErrTimeout] (TIMED_OUT),
// [ErrDisconnected], [ErrBindingMismatch] or [ErrChannelClosed]. As in
// realtime-js, a channel then keeps itself joined: after phx_error, a
// refused join or a join timeout it rejoins on [Options].RejoinAfter (1,
// 2, 5, then 10 s) while the socket is connected, and every errored
// channel rejoins, with a new join ref and the current token, when the
// socket reconnects. A RejoinAfter returning a negative duration turns
// the timed rejoins off: the channel stays [ChannelErrored] until
// Subscribe is called again (a manual retry), so that a channel manager
// can spend its own bounded attempts only while the socket is connected.
// phx_close from the server closes the channel for good (no rejoin); so
// does [Channel.Leave], which closes at once, without a round trip, when
// the channel cannot push. A closed channel is removed from the socket.
//
// [Channel.Send] broadcasts (a binary kind-3 frame under 2.0.0, waiting
// for the server's reply when Broadcast.Ack is set), [Channel.SendBinary]
// sends raw bytes, [Channel.Track] and [Channel.Untrack] manage our
// presence. They need a joined channel ([ErrNotJoined]); user pushes
// waiting for the writer are bounded by [Options].SendBuffer
// ([ErrSendBufferFull]). [Socket.SetAuth] pushes a new access token to
// every joined channel when it changes and uses it for every later join;
// [Socket.TokenExpiry] reads its exp.
//
// # Events, order and slow consumers
//
// A channel delivers [Event] values to [ChannelConfig].OnEvent (or, in
// batches of at most 64, to OnEvents): status
// changes (SUBSCRIBED, TIMED_OUT, CLOSED, CHANNEL_ERROR with their
// reason), broadcasts (payload kept raw, never re-encoded), presence
// joins, leaves and syncs, postgres changes routed by the server ids of
// the join reply to the bindings they match, and system messages
// (including "Subscribed to PostgreSQL"). Events of a channel are
// delivered in order on a goroutine of that channel, never on the read
// loop; the goroutine exists only while events are waiting.
//
// A consumer that falls behind never blocks the reader, and nothing it
// does not take grows without bound. Each channel holds at most
// EventBuffer (default 4096) stream events and EventBufferBytes (default
// 32 MiB) of them waiting for its consumer (plus the batch of at most 64
// being delivered; one event larger than the bytes still goes through
// when nothing waits). An event costs its frame's size and about 200
// bytes; a presence join or leave costs the metas it keeps alive. Beyond
// that new broadcasts, postgres changes and presence join/leave events
// are dropped and counted ([ChannelStats].Dropped, [Stats].Drops, and a
// warning logged at powers of two). Status events and system messages
// are forced: they go beyond the bounds into a reserve of an eighth of
// them (system messages, which a server may send at will, into half of
// it, so that statuses always find room), and only a consumer that stops
// for good can fill that — then they too are dropped and counted.
// Presence syncs are never dropped but coalesced: a sync carries nothing
// (the state is read from [Channel.Presence]), so at most one waits, after
// the last join or leave queued. The channel's state ([Channel.State],
// [Channel.Presence]) is maintained by the client, so it is complete
// whatever the consumer does. [Options].OnStatus and OnHeartbeat run on a
// goroutine of the socket; their notices are few (a status per
// connection attempt, a heartbeat per interval) and bounded like forced
// events (1024 and 1 MiB, then a reserve; drops in [Stats].NoticeDrops).
// The frame tap ([Options].Tap: every frame in and out with direction,
// time, raw bytes and decoded envelope) has its own goroutine and is
// bounded like a channel (TapBuffer frames, default 8192, and
// TapBufferBytes, default 64 MiB; drops in [Stats].TapDrops).
//
// # Presence
//
// [Presence] applies presence_state and presence_diff in place with the
// algorithm of phoenix's Presence (diffs wait for the state of the current
// join; a new state is synced against the old one). A diff touches only
// the keys it names; metas slices are immutable once stored, so events
// and readers share them without copies. The reader locates a presence
// payload's keys and metas in the same pass that validates the frame
// ([protocol.Version.ScanServerPresence]); what the state keeps (keys,
// refs, meta objects) is copied out of the frame in one block each, so
// the state never keeps a read slab alive. A diff costs what it names,
// not what the keys hold: a key's new metas are appended in place to an
// array the state owns, beyond the length of any slice handed out (those
// are never modified), and a key of more than 32 metas keeps an index of
// its refs; a leave of the oldest or newest metas of a key is a view of
// the same array (BenchmarkPresenceDiffOneKey: flat from 1 to 1000 metas
// per key). About 1.2-1.4 µs per diff into a 10k-member state, 11-14x
// realtime-js (BenchmarkPresenceVsRealtimeJS).
//
// The state is bounded by [ChannelConfig].PresenceLimits: at most
// MaxMembers keys (default 100,000: twice the most concurrent clients a
// Supabase project allows, so a real channel is never cut), MaxMetas
// metas per key (default 1024) and MaxBytes (default 64 MiB: keys, refs
// and meta objects, plus 64 bytes per meta and 96 per key). What does
// not fit is not kept: the join of a new key beyond them is left out
// whole (no event), a join to a present key keeps the metas that fit
// (its event has those). The keys and metas not kept are counted
// ([Presence.Truncation], [ChannelStats].PresenceTruncated) and the
// channel logs it when it begins, each time the count doubles and when
// it ends; it ends when a later presence_state fits entirely. The room a diff's leaves free is counted
// for its joins (which apply first), so a user updating its meta in a
// full state keeps it. Diffs held for the presence_state are bounded too
// (4096 of them and MaxBytes/4), the oldest dropped and counted.
//
// # Bad input and memory
//
// Frames are decoded by [protocol.Version.ScanServer], one validating pass
// without allocation. A malformed frame, a frame for an unknown topic or
// with a stale join_ref, a reply for an unknown ref, a null payload or an
// unknown event is logged and dropped (malformed ones are counted in
// [Stats].DecodeErrors); the client never panics on input. A Phoenix
// binary broadcast (2.0.0 kind 2, what Supabase fans a phoenix.js
// ArrayBuffer push out as) is decoded but carries no user broadcast, so
// it is dropped as a broadcast without a user event. Frames are
// read into 64 KiB slabs and event payloads alias them: a payload a
// consumer keeps keeps its slab alive; copy payloads kept for long. A
// frame that does not fit in its slab's free space (every frame, and so
// every payload, larger than 64 KiB) gets a buffer of its own of exactly
// its size, so keeping a part of a big frame costs the frame's size, no
// more; reading it holds about twice its size for the time of one copy
// (its length is not known before it is read).
//
// What a server sends can make the client hold only bounded memory per
// channel: its presence state (PresenceLimits, 64 MiB by default), its
// event queue (EventBuffer and EventBufferBytes, with the reserve of
// forced events and one coalesced sync) and the frame tap's queue
// (TapBuffer, TapBufferBytes). A server sending endless presence diffs,
// a presence_state of 200,000 members, diffs without ever the state, or a
// flood of system messages is tested against these bounds (package
// realtime/hostile).
//
// # Concurrency and shutdown
//
// Sockets, channels and presence are safe for concurrent use. Blocking
// calls take a context first. [Socket.Close] closes the connection, closes
// every channel (a final CLOSED event) and waits for all of the client's
// goroutines, including the delivery of queued events: do not call it from
// an OnEvent, OnStatus or Tap callback. Logs go to [Options].Logger
// (log/slog); keys and tokens are never logged unmasked.
//
// # Source files
//
// socket.go holds the [Socket] type, its construction, Connect, Close
// and accessors; socket_connect.go the connection loop (dial with its
// bounded steps, serve, reconnect, connection loss); socket_notify.go
// the OnStatus/OnHeartbeat notices; socket_auth.go SetAuth and the
// token in use. conn.go is one connection (read loop, write loop with
// the write queue and heartbeats), framebuf.go its slab reader and
// dispatch.go the routing of inbound frames to channels, replies and
// presence. channel.go holds the [Channel] type, its creation,
// accessors, Subscribe, Leave and event delivery; channel_config.go
// [ChannelConfig], the join payload and the binding check of the join
// reply; channel_send.go Send, SendBinary, Track and Untrack;
// channel_join.go the join lifecycle (join reply, rejoin timer, errored
// and closed channels); push.go pushes awaiting their phx_reply.
// presence.go holds the [Presence] state and its accessors;
// presence_sync.go applies presence_state and presence_diff (the
// phoenix algorithm); presence_limits.go [PresenceLimits], byte costs,
// truncation and what fits; presence_metas.go ref sets, the copies of a
// frame's metas and meta comparisons. queue.go is the bounded delivery
// queue, options.go [Options], types.go the public value types,
// errors.go the errors, postgres.go postgres_changes conversion and
// token.go [TokenExpiry].
package realtime
