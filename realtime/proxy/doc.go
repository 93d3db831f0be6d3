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
// dropped after use), so an idle socket costs about 23 KB (BenchmarkIdleMemory: both
// connections and both goroutines). At most one
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
// # What an Observer gets
//
// For each relayed socket, on its relay goroutines and in order: Open
// with the app's request ([ConnInfo]: remote address, path, query,
// headers, credentials unmasked); a Frame for each data message, each
// way, with its exact bytes, before it is written on (the relay waits
// for the call: an Observer returns quickly); and Closed once, with the
// side that ended it and the close code and reason. Control frames
// (ping, pong, close) are not Frames. The proxy's own log (Config.Logger:
// opens, closes, failures) masks keys and tokens with package
// realtime/mask.
//
// [Proxy.Close] cuts every socket and forwarded request at once;
// [Proxy.Shutdown] first sends both sides of each socket a close frame
// (1001). Both return once every goroutine of the proxy has ended.
package proxy
