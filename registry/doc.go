// Package registry is rtm's channel manager (a RealtimeChannelManager),
// built on the Go client of package realtime. It keeps
// the registry of the channels a client holds (name -> channel info),
// shares channels between their users, retries failed channels under a
// policy, keeps a presence cache, counts what flows, logs every operation,
// simulates faults, and streams all of it as typed events to UIs and
// headless tools. The TUI renders only what the manager knows.
//
// # Names
//
// A channel name is [tenant:TENANT_ID:]TYPE:ENTITY_TYPE:ENTITY_ID with TYPE
// one of subscription (postgres changes), presence or broadcast, for
// example presence:contact:123 or tenant:abc:broadcast:document:789. The
// wire topic is "realtime:" + name. [ParseName] and [NewName] refuse an
// empty part, a part containing ':' (which would make two names
// collide), white space and control characters, and a topic longer than
// 255 bytes (binary frames store its length in a byte); errors are
// [*NameError] wrapping [ErrInvalidName]. Tenant isolation is by name and
// by token: the server lets a token whose tenant_id claim is "abc" join
// only tenant:abc:... topics.
//
// # Joining, sharing, leaving
//
// [Manager.Join] (and [Manager.JoinPresence], [Manager.SubscribeEntity],
// [Manager.JoinBroadcast]) returns a [Handle] once the channel is in the
// registry; the join itself runs in the background and [Handle.Ready]
// waits for its outcome. A second request for a name shares the channel:
// the reference count goes up and no second phx_join goes on the wire,
// even for concurrent requests (they are serialized by the manager's
// lock). The first request's configuration wins; later ones add their
// listeners, and a new postgres_changes filter makes the channel rejoin
// with all its filters. [Handle.Release] gives a reference back; the last
// one untracks the presence and leaves (phx_leave), unless the channel was
// joined with [KeepAlive]. [Manager.Leave] leaves whatever the references;
// [Manager.CleanupAll] leaves every channel (logout): the server is left
// with no channel of this client. A join for a name whose leave is under
// way waits for it.
//
// Caps are checked before anything goes on the wire: at most
// Options.MaxChannels channels (default 100, the server's
// max_channels_per_client) and Options.EntityCaps per entity type; a
// refused join returns a [*CapError] (ErrCapReached).
//
// # Statuses and retries
//
// A channel is connecting (its join is on the wire, or waits for the
// socket), connected, disconnected (the socket is down, or the channel
// failed and an attempt is scheduled: ChannelInfo.NextAttemptAt), or
// error (the policy gave up; it stays there until [Manager.RetryNow] or a
// leave).
//
// The socket reconnects forever on its own ladder (the client's: 1, 2, 5,
// 10 s, then 10 s, jittered). When it reopens, the channels rejoin (the
// client rejoins its errored channels; the manager re-creates those the
// server had closed); those rejoins spend no attempt. While the socket is
// down, scheduled attempts are held (RetryEvent outcome "held") and
// nothing is spent.
//
// When the socket is up, a failed channel — a refused join (the server's
// reason, e.g. "InvalidJWTToken: Token has expired 12 seconds ago"), a
// join timeout, a server phx_error, a server phx_close (a kick, token
// expiry, rate limit) — is rejoined under the retry [Policy]: attempt n
// waits Policy.Delay(n), and after Policy.MaxAttempts failed attempts the
// channel goes to error, the error is logged ("Channel failed, giving
// up") and it stops. A successful join resets the count. RetryNow starts
// a fresh series: the count is reset and a join is made at once (if it
// fails, a new series of up to MaxAttempts follows). Policies:
// [DefaultPolicy] (fixed 3 s, at most 5 attempts), [Fixed],
// [Exponential] (with jitter), [Breaker] (a circuit breaker over all
// channels: after N failures within a window it holds every attempt for
// a cooldown, then lets one probe through; success closes it), and
// [PolicyFunc] for custom strategies; [ParsePolicy] reads "fixed:3s",
// "exp", "breaker" and their options. Attempts, delays and timers run on
// Options.Clock (injectable; package clock has a fake), jitter on
// Options.Rand. Every step of a series is a [RetryEvent]: its number, the
// maximum, the delay, the reason, the outcome (scheduled, started,
// succeeded, failed, exhausted, held, cancelled) and the next attempt
// time; socket reconnects are RetryEvents too (scope "socket").
//
// Listener configurations — broadcast handlers ([OnBroadcast]), presence
// handlers ([OnPresence]), postgres_changes filters with their callbacks
// ([OnChange]), system handlers ([OnSystem]) — belong to the registry
// entry, not to the client channel: they survive rejoins and are
// installed again when the channel is re-created. A tracked presence is
// tracked again after every rejoin. [WithPolicy] gives a channel its own
// retry policy.
//
// # Presence
//
// Presence channels use the user id as the presence key.
// [Manager.JoinPresence] tracks the user with its payload plus user_id,
// name and online_at. [Manager.Track] on a channel joined with another
// key (or none: the server would pick a UUID) rejoins it with the user's
// id as key first, so the user always shows under its id. The presence
// cache (name -> user id -> [PresenceUser]: name, payload, online since,
// number of metas) follows the client's presence sync (phoenix's
// algorithm): it holds the client's own metas (immutable, shared, so it
// costs a small entry per user, not a copy), set from each event. When
// the client dropped events for a slow manager, the cache is reconciled
// with the client's state at a sync — at most once per an eighth of its
// users in events, else at the next stats tick — so it converges even if
// a join or leave event was lost, at a cost proportional to the traffic;
// each change is a [PresenceEvent] (join, leave, sync) and is logged
// ("User joined presence", "User left presence", "Presence synced").
//
// The client bounds each channel's presence (Options.PresenceLimits,
// realtime.PresenceLimits: by default 100,000 users, 1024 metas per user,
// 64 MiB) and the cache holds at most as many users. What does not fit
// is not kept and is reported: ChannelInfo.PresenceTruncated and
// PresenceEvent.Truncated ([PresenceTruncation]: users and metas not
// kept, early diffs dropped) until a presence_state fits again; `rtm
// watch` writes them, the UI's presence pane says how many users are not
// shown.
//
// # Broadcasts
//
// [Manager.Broadcast] sends a JSON payload (validated first:
// [*PayloadError]). While the channel is not connected the broadcast goes
// into the channel's offline queue (Options.OfflineQueue, default 100
// broadcasts, and OfflineQueueBytes, default 4 MiB of event names and
// payloads); beyond it the broadcast is refused with ErrQueueFull, counted
// (ChannelInfo.QueueDropped, Metrics.QueueDropped) and reported (an
// ErrorEvent and a warning). After the rejoin the queue is sent in order,
// and broadcasts made meanwhile wait for it, so the order is the order of
// the calls. Options.BroadcastRate limits all broadcasts with a token
// bucket (calls wait for a token, or their context).
// [Handle.Debounce] sends at most one broadcast per window, the latest
// value winning (cursor positions). [Manager.Throttle] says what these
// brakes hold back now (broadcasts waiting for a token, debounced values
// pending and replaced, offline queues).
//
// # Events
//
// [Manager.Subscribe] returns a [Subscription] to typed events:
// [ChannelStateEvent], [SocketEvent], [PresenceEvent], [MessageEvent],
// [RetryEvent], [LogEvent], [StatsEvent], [TokenEvent], [ErrorEvent],
// [FrameEvent] (only with SubscribeOptions.Frames) and [DroppedEvent].
// Each has a stable JSON form ({"type":"...",...}, durations as "*_ms")
// that [DecodeEvent] reads back; `rtm watch` prints it.
//
// [SubscribeOptions].MessageBatches groups the messages of a channel that
// arrive between two drains into one [MessageBatchEvent], at the place
// of the first: with Drain it costs no allocation per message, which is
// how a UI should take high message rates.
//
// Delivery guarantees: a subscription starts with the current state
// (socket, token, stats, every channel) unless NoInitialState, taken
// atomically with its registration. Events then arrive in the order the
// manager published them. Publishing never blocks the manager: each
// subscriber has a bounded buffer (SubscribeOptions.Buffer stream events,
// default 4096, and BufferBytes, default 32 MiB). State events (channel
// states, socket, stats, token, presence sync) are never dropped: one
// still waiting is replaced by a newer one about the same subject, which
// moves to the end of the queue. A message that does not fit in the bytes
// left is queued truncated (see Memory) if that fits. Stream events
// (messages, frames, logs, presence joins and leaves, retries, errors)
// that do not fit are dropped and counted
// ([Subscription.Dropped], Metrics.EventsDropped); a [DroppedEvent] then
// tells the subscriber how many it lost, before the next event it gets.
// The latest truth is always available from [Manager.Snapshot] (a
// consistent deep copy) and the per-channel rings ([Manager.Messages],
// [Manager.Frames]).
//
// # Logs
//
// The manager logs every operation with log/slog into a [LogHandler]: a
// bounded ring for the UI ([Manager.Logs]), an optional JSONL file
// (Options.LogFile), and the event stream (LogEvents). Messages start
// with a capital letter; attributes use the Key* constants (channel,
// attempt, max, delay, user_id, err, code, reason). The client's logs go
// to the same handler. API keys and tokens are masked everywhere the
// manager writes them: log messages and attributes, kept and streamed
// frames (join payloads carry the access token; binary broadcast frames
// are decoded, masked and encoded again), connection URLs, token infos,
// the export. Masking works on decoded values ([MaskText], [MaskJSON]):
// JSON is decoded, each string masked and the JSON encoded again, still
// valid; other text is checked with its escapes decoded too, so that a
// key spelled "ey\u004ahbGci…", padded with '=' or under any alg is
// found. The message events a subscriber receives carry the users'
// payloads as sent; whatever writes them ([MarshalMasked]: the export,
// `rtm watch`, `rtm record`) or shows them (the UI) masks them.
//
// # Faults
//
// [Manager.Faults] simulates failures. Client side, through the
// fault-injecting transport of package realtime/faultnet under the client's
// dialer (works against any server): drop the connection, freeze it
// half-open, add latency, fail the next N connects, inject a channel
// error (a phx_error for the channel's current join), expire the token
// (with Options.MintToken). Server side, with Options.Server (a
// [ServerControl]: `rtm serve`'s /admin/ HTTP API through package
// registry/serverctl, or the embedded server's Go API, which the rtm
// command wires in; this package never imports the server): kick a channel (phx_error or phx_close), refuse
// joins, drop all sockets, restart.
//
// One vocabulary names them all (fault.go, faultparse.go): a [Fault] is
// a [FaultKind] and its settings; [ParseFault] reads one from the words
// of a command line, [FaultKind.CheckSettings] checks settings given by
// name (as a scenario gives them) against the one table of which fault
// takes and needs what, [Fault.Validate] checks the values,
// [Faults.Apply] injects it and [Fault.Summary] says what was done. The
// TUI and the scenarios use it. Adding a fault: its transport or server
// control, a FaultKind constant and its row in the table, its case in
// Apply and in Summary.
//
// # Memory
//
// Everything the manager keeps or queues is bounded in bytes as well as
// in count, with these defaults, and is a copy: nothing it keeps shares a
// frame buffer (the client's 64 KiB slabs, which a small payload kept as
// it is would keep alive whole).
//
//   - Per channel: the message ring (Options.MessageRing, 200 messages;
//     MessageBytes, 2 MiB of event names and payloads, copied into an
//     arena of the ring), the frame ring (FrameRing, 200 frames;
//     FrameBytes, 64 KiB; a bigger frame is kept cut, FrameEvent.Size
//     saying how big it was) and the offline queue (OfflineQueue, 100;
//     OfflineQueueBytes, 4 MiB).
//   - Per subscriber: SubscribeOptions.Buffer, 4096 stream events, and
//     BufferBytes, 32 MiB. Payloads up to 64 KiB are copied (for a
//     MessageBatches subscriber into an arena of the subscription, whose
//     chunks Drain reuses; otherwise one copy shared by the plain
//     subscribers); bigger ones are shared with the client, which reads
//     each into a buffer of exactly its frame's size. A frame event is
//     built (masked and copied) only if a subscriber has room for it.
//   - The manager: the history of Export (History, 5000 events;
//     HistoryBytes, 8 MiB) and the log ring (LogRing, 5000 records;
//     LogBytes, 4 MiB). Text from the server that the manager keeps and
//     repeats (join errors, system messages, log values) is cut to
//     MaxTextBytes (4 KiB), with "… (N bytes)" at its end.
//
// A message too big for a bound is kept truncated rather than lost when
// a preview fits: [MessageEvent].Truncated is set, Size is still the
// whole payload's size, and its first [PreviewBytes] (16 KiB) are in
// Preview (Binary for a binary payload). The channel rings keep every
// message larger than MessageBytes so; a subscriber gets a message that
// does not fit in its bytes left so. A 30 MiB broadcast (the client takes
// frames up to 32 MiB) thus reaches a subscriber with room whole, and
// the ring as its first 16 KiB.
//
// So the manager holds at most about channels × (MessageBytes +
// FrameBytes + OfflineQueueBytes) + subscribers × 2 × BufferBytes (what a
// Drain gave out is the consumer's while the next events queue) +
// HistoryBytes + LogBytes. Below it, the client's per-channel event queue
// (the manager asks for 65,536 events) and tap queue hold events that
// alias the frames read, bounded by the client (package realtime); the
// manager takes them as they come, in the client's delivery goroutines.
//
// # Cost
//
// The manager takes a channel's events from the client in batches
// (realtime.ChannelConfig.OnEvents): a run of broadcasts takes the
// manager's lock once and reaches each subscriber as one batch. Per
// broadcast received, it adds about 45-50 ns and no allocation with
// MessageBatches subscribers under load (about 100 ns for a lone
// message; 250-400 ns and one allocation with per-message events), see
// BenchmarkManagerDispatch. About 15 ns of it are the copies (see
// Memory): the payload into the channel's ring and into the subscriber's
// arena, both without allocating. BenchmarkEvents100k measures its
// overhead over the bare client at 100,000 messages per second (about
// 8 % of the client's CPU on average with one MessageBatches subscriber;
// 4 % before the copies, in the same runs). The raw
// frame tap costs more: it runs only while the per-channel frame rings
// are on (the default; [Manager.SetFrameCapture] switches them,
// Options.NoFrames removes them) or a subscriber asked for frames.
//
// # Concurrency
//
// All methods are safe for concurrent use. The manager's state is
// guarded by one mutex, never held while waiting for the network or
// calling user code. Listener callbacks run on the channel's delivery
// goroutine (the client's, never its read loop), in order; a slow
// callback delays that channel's events (the client buffers up to 65,536
// events and 64 MiB per channel, then drops and counts:
// ChannelInfo.ClientDropped). Close
// stops every goroutine the manager started and ends every subscription.
//
// # Source files
//
// One concern per file: manager.go (Options, New, Connect, Close,
// Subscribe, Export, the policy in force); channel.go (the registry entry
// of a channel, its state grouped by concern, and its ChannelInfo);
// join.go (the join options, Join and its variants, sharing, attaching
// and re-creating the client channel, tracking); dispatch.go (the client
// channel's events: broadcasts, presence, postgres changes, system
// messages, into the registry, the events and the listeners); retry.go
// (the retry state machine: join outcomes, failures, attempts, holds
// while the socket is down or a breaker open, RetryNow); leave.go (Leave,
// CleanupAll); handle.go (Handle, broadcasts and the offline queue);
// socket.go, token.go, frames.go (the frame tap and rings), stats.go,
// snapshot.go (the queries); broker.go and subscription.go (publishing
// to subscribers); events.go, types.go and json.go (the public types and
// their JSON); policy.go; limit.go and throttle.go (the broadcast rate
// limit, the debouncer, what they hold back); presence.go (the presence cache); faultsapi.go
// and serverfaults.go (Manager.Faults, on the transport of package
// realtime/faultnet and a ServerControl).
package registry
