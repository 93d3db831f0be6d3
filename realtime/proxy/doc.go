// Package proxy relays an app's Supabase traffic to its upstream project
// and lets an [Observer] watch the Realtime websocket frame by frame.
//
// A [Proxy] (from [New]) is an http.Handler. The app points its Supabase
// URL at it; the proxy forwards to [Config.Upstream], the project URL
// (https://<ref>.supabase.co, the Supabase CLI's http://127.0.0.1:54321,
// `rtm serve` or the embedded server):
//
//   - The Realtime websocket (an upgrade of /realtime/v1/websocket or
//     /socket/websocket, any vsn) is relayed message by message. The
//     upstream is dialled first, with the app's path, query and headers
//     (x-client-info, Authorization, apikey, cookies, subprotocols; not
//     the hop-by-hop and handshake headers): when it refuses the upgrade,
//     the app gets the upstream's status, headers and body (its first
//     1024 bytes), as a direct connection would; when it cannot be
//     reached, 502. Then the app is upgraded (any origin, as Supabase)
//     and each message goes on whole, its type and bytes unchanged. Close
//     frames are passed on with their code and reason, pings and pongs
//     too; a side whose connection breaks (mid-frame or between frames)
//     has the other side's connection cut, so the app sees an abnormal
//     close (1006) as it would directly. Whatever the app sends is relayed
//     (the upstream decides what is garbage); a message over MaxFrameSize
//     closes both sides with 1009, "message exceeds N bytes", like the
//     embedded server.
//   - Every other request is forwarded unchanged by an
//     httputil.ReverseProxy: method, path, query, headers and body to the
//     upstream (its Host header the upstream's, no X-Forwarded headers
//     added); status, headers and body back, streamed as they arrive
//     (FlushInterval -1); redirects returned to the app, not followed;
//     other websocket upgrades relayed as bytes.
//   - The Realtime REST broadcasts (POST /realtime/v1/api/broadcast, a
//     batch {"messages":[{"topic","event","payload","private"}...]}, and
//     POST /realtime/v1/api/broadcast/{topic}/events/{event}, one
//     message whose payload is the body; /api/broadcast... too) are
//     forwarded so as well, and also reported to an Observer that
//     implements [RESTObserver] (rest.go). Their body is teed as the
//     upstream reads it: nothing is held back, changed or re-chunked, and
//     the copy is bounded, MaxRESTBody (default 1 MiB) per request and
//     MaxRESTBytes (default 16 MiB) for all requests in flight; a body
//     over either is forwarded whole and reported Clipped, not decoded.
//     Once the upstream has answered (its status, or 502 when it could
//     not be reached), the copy is decoded on a goroutine of its own (the
//     app's answer does not wait for it) into a [RESTBroadcast]: the
//     request's address, path, query and headers (credentials unmasked,
//     as in ConnInfo), the status, the body's size and its messages; a
//     body that is no batch, or that the upstream did not read to its
//     end, is reported with Decoded false and the Error.
//
// TLS to the upstream is verified with the system roots, or
// [Config.RootCAs]; [Config.CACertFile] adds a PEM file's roots, and
// [Config.Insecure] turns verification off.
//
// # Bounds
//
// Every queue is bounded. A relayed socket holds two connections, each
// with a read buffer of BufferSize (default 4096 bytes), and two
// goroutines; write buffers (BufferSize) are shared by all sockets
// through a websocket.BufferPool and held only while a message is
// written, and message buffers come from a pool (those over 64 KiB are
// dropped after use), so an idle socket costs about 26 KB (BenchmarkIdleMemory: both
// connections and both goroutines). The shared write buffers cost one
// 24-byte allocation per message (gorilla boxes the buffer it returns to
// the pool); own buffers would save it for 8 KB more per idle socket. At most one
// message per direction is in flight per socket: it is read whole (up to
// MaxFrameSize, default 5,000,000 bytes, each way), shown to the
// Observer, written, and only then is the next one read, so a slow side
// slows its peer (TCP backpressure) instead of queueing. MaxSockets
// (default 10,000) bounds the sockets relayed at once (beyond: 503);
// HandshakeTimeout (default 10 s) bounds the upstream's upgrade answer
// and TLS handshake; CloseTimeout (default 5 s) is how long a side has
// to answer a relayed close frame before its connection is cut.
//
// Writes are coalesced: the messages a pump has already read (those that
// arrived together) are written to the other side in one system call,
// held at most until the pump is about to read again, so no message
// waits for later input (batch.go; at most 32 KiB held per connection,
// from a pool).
//
// # Performance
//
// bench_test.go measures, in one run, direct against proxied (client,
// proxy and the embedded server share the process and its cores, so the
// figures are upper bounds): BenchmarkLatency, the latency of one frame
// from a sender socket to a receiver socket at a paced 10,000 messages
// a second with one leg through the proxy (from-app: the sender's;
// to-app: the receiver's), added p50 and p99 as the median over
// rotating rounds, for the bare proxy, the apps model as Observer on the
// relay's path (observed-) and through the observer queue (queued-),
// while a UI reads the models' snapshots 20 times a second;
// BenchmarkThroughput, one socket's self broadcasts as fast as they go
// (ratio proxied/direct, CPU, allocations and bytes per relayed frame);
// BenchmarkIdleMemory, 1,000 idle sockets. On 2 shared cores (load 1 to
// 5): added p50 per frame 20–28 µs bare, 30–38 µs observed or queued;
// added p99 is within the machine's noise (the direct p99 itself moves
// between 210 and 900 µs from run to run), its medians 55–250 µs bare;
// throughput ratio 1.05–1.10 (write coalescing), 2.5 allocations (about
// 65 bytes) per relayed frame bare, 9 with the apps model; 26 KB and 2
// goroutines per idle socket.
//
// # What an Observer gets
//
// For each relayed socket, on its relay goroutines and in order: Open
// with the app's request ([ConnInfo]: remote address, path, query,
// headers, credentials unmasked); a Frame for each data message, each
// way (see Faults for the messages a fault changes), with its exact
// bytes, before it is written on (the relay waits
// for the call: an Observer returns quickly); and Closed once, with the
// side that ended it and the close code and reason.
//
// With Config.ObserverQueue (DefaultObserverQueue, 65,536 calls, is
// what rtm proxy wants), the same calls, in the same order, are made on
// one goroutine of the proxy instead, so that decoding and the
// Observer's lock are off the relay's path: the pump copies the frame
// into a pooled buffer, queues it (bounded by ObserverQueue calls and
// ObserverQueueBytes, default 16 MiB, of frame data) and writes it on
// at once. The goroutine gathers the calls for a millisecond after it
// is woken, so a stream costs one wake-up per millisecond; a frame that
// finds the queue full is not shown (counted by
// [Proxy.ObserverDropped]), Open, Closed and Fault have an eighth more
// room. Close returns once every queued call has been made. Control frames
// (ping, pong, close) are not Frames. The proxy's own log (Config.Logger:
// opens, closes, failures) masks keys and tokens with package
// realtime/mask.
//
// # Faults
//
// The proxy can break what the app sees, as a real network or a real
// Supabase would (faults.go). A fault aimed at a socket takes its
// ConnInfo.ID, 0 meaning every open socket, and returns an error wrapping
// [ErrNoSocket] when none is open; topics are "realtime:room1" or just
// "room1". Each fault is logged (masked) and, when Config.Observer also
// implements [FaultObserver], reported as a [FaultEvent]: once when a
// counter or the latency is set (Armed), and each time a fault acts on a
// socket or an upgrade. The Frames to the app are what the app gets, so
// that an Observer (the apps model) derives the app's state from them as
// from any traffic: a message the proxy dropped (or swallowed: the
// upstream's answers to a kick's leave) is no Frame, a duplicated one is
// two, and the messages the proxy sends the app of its own (a rejection
// reply, phx_error, phx_close, the system message) are Frames, reported
// when written. The Frames from the app are what the app sent, a join
// the proxy answered itself included; the leave the proxy sends upstream
// is not the app's, so it is no Frame. On the wire:
//
//   - [Proxy.Drop]: both connections are cut, no close frame; the app
//     sees 1006, the socket's Closed has By 0 and Code 1006.
//   - [Proxy.CloseSocket](id, code, reason): a close frame with code and
//     reason to the app, a close frame 1000 to the upstream; each has
//     CloseTimeout to answer before its connection is cut. Closed has By
//     0 and the code and reason.
//   - [Proxy.Freeze](id, d): for d nothing is relayed either way: each
//     pump holds the one message it may have read and reads no more (so
//     nothing queues: TCP backpressure holds the rest), pings and pongs
//     are not passed on. The app's heartbeat (on topic phoenix) goes
//     unanswered: at its next heartbeat realtime-js reports CHANNEL_ERROR
//     "heartbeat timeout" and closes with 1000; that close reaches the
//     upstream, and its answer the app, once the freeze is over, and
//     realtime-js reconnects on a new (unfrozen) socket. A later Freeze
//     replaces the deadline (Freeze(id, 0) thaws); Close ends a frozen
//     socket at once.
//   - [Proxy.SetLatency](d, jitter): each message, each way, waits d
//     plus jitter times a number in [0, 1) from Config.Rand before it is
//     written on (per socket direction, in order; pumps read nothing
//     while they wait).
//   - [Proxy.FailConnects](n): the next n Realtime upgrades (any socket)
//     are answered 503 "rtm proxy fault: connect refused" before the
//     upstream is dialled (as MaxSockets refuses). Node 22's WebSocket
//     fires an error but no close event after a refused upgrade, so
//     realtime-js under Node stays "connecting" until the app makes a new
//     connection (the runtime's behaviour, as with a closed port).
//   - [Proxy.RejectJoins](topic, n, reason): the app's next n phx_join of
//     topic (any socket) are not forwarded; the proxy answers each with
//     phx_reply {"status":"error","response":{"reason":REASON}} with the
//     join's join_ref and ref, in the socket's serializer (vsn 1.0.0
//     when the query has none). realtime-js reports CHANNEL_ERROR with
//     the reason and rejoins after its rejoin delay.
//   - [Proxy.Kick](id, topic, close): to the app, phx_error with payload
//     {"reason":"channel_crash"} as Phoenix sends for a crashed channel
//     (phx_close with {} when close is set), with join_ref and ref the
//     channel's current join_ref (the last phx_join of the app not
//     followed by its phx_leave); to the upstream, phx_leave with that
//     join_ref and a ref "rtm-N" of the proxy's. The upstream's answers to
//     that leave (its reply to rtm-N, its phx_close of the join_ref) are
//     not relayed, so the app's rejoin is not undone. realtime-js reports
//     CHANNEL_ERROR and rejoins after phx_error, CLOSED after phx_close.
//   - [Proxy.ExpireToken](id): for each joined channel of the socket,
//     what the embedded server (and Supabase) sends at token expiry:
//     system {"extension":"system","status":"error","message":"Token has
//     expired 0 seconds ago","channel":SUBTOPIC} with the join_ref, then
//     phx_close as Kick does (realtime-js: CLOSED); phx_leave upstream.
//     The socket stays open.
//   - [Proxy.DropMessages](topic, n) / [Proxy.DuplicateMessages](topic,
//     n): the next n messages the upstream sends to the app on topic (any
//     event: broadcasts, presence, replies; any socket) are not written,
//     or written twice back to back. A dropped join reply makes the
//     app's join time out (TIMED_OUT).
//
// Frames are decoded only for these faults: an app text frame naming
// phx_join or phx_leave (to track joins and reject), and upstream frames
// while a counter is armed or a kicked channel's answers are awaited.
//
// [Proxy.Close] cuts every socket and forwarded request at once;
// [Proxy.Shutdown] first sends both sides of each socket a close frame
// (1001). Both return once every goroutine of the proxy has ended.
package proxy
