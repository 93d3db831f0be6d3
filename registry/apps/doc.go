// Package apps is the model of an app's Realtime traffic as the proxy
// (package realtime/proxy) relays it: the app's sockets, their channels,
// what the app joined and how it retried, the presence and messages it
// received, the tokens it sent, and findings about its behaviour. It is
// not the channel manager's registry (package registry), which drives
// rtm's own client: this one only watches someone else's.
//
// A [Model] is a [proxy.Observer]: the relay calls Open, Frame and Closed
// on its goroutines. Every frame is decoded with realtime/protocol in the
// serializer of its socket (the vsn query parameter; none is 1.0.0),
// 1.0.0 and 2.0.0 text, 2.0.0 binary user broadcasts and Phoenix's own
// binary frames (phoenix.js's push of an ArrayBuffer, kind 0, and the
// server's kind-2 broadcast of it); a frame that
// does not decode is counted (Socket.Undecodable, Stats.Undecodable) and
// otherwise ignored. The calls take one lock, do bounded work, copy what
// they keep (masked), and never wait: events go to subscribers' bounded
// queues or are dropped and counted.
//
// # What is modelled
//
// A socket has the app's remote address, x-client-info, vsn, the role,
// subject and expiry of its token (the apikey query parameter, else the
// Authorization bearer, else the apikey header; read without verifying,
// kept only masked by realtime/mask), when it opened and closed, by whom
// and with which code and reason, the round trip of the app's heartbeats
// (push to the server's phx_reply of the same ref), and frames and bytes
// each way. A socket opened at most Options.ReconnectWindow after another
// closed, with the same x-client-info and token subject, is the next
// attempt of one app connection (Socket.Connection, Attempt, Previous,
// ReconnectDelay); so is a socket opened while the proxy holds such a
// socket frozen (its Freeze fault: the app gave up on it before the
// freeze ended), the delay counted from the freeze's start.
//
// A channel (one topic of a socket) has its last join's config
// (private, broadcast self and ack, presence key and enabled, the
// postgres_changes bindings with the ids of the server's join reply),
// a status derived from the wire — joining (phx_join sent), joined (an
// ok reply), errored (an error reply, with its reason, or phx_error),
// closed (phx_close, or the socket ended), left (the reply to phx_leave,
// or the phx_close that follows it; a phx_error or phx_close whose
// join_ref is not the current join's is ignored, as the app ignores it)
// — its join attempts (time, the delay the app waited since the
// previous attempt failed, outcome ok, error with the reason, or timeout
// when the app joined again without an answer, and the role and subject
// of the token the join carried: the app's retry ladder as observed),
// its presence as the app received it (presence_state replaces it,
// presence_diff applies joins then leaves by phx_ref), its last messages
// each way (every frame of the topic other than join, join reply,
// leave, phx_error, phx_close and access_token; masked and clipped), and
// the app's access_token pushes with the new token's expiry.
//
// # REST broadcasts
//
// A Model is also a [proxy.RESTObserver]: each Realtime REST broadcast
// the app sent through the proxy (the batch endpoint, or the single one)
// is a [RESTRequest] in Snapshot.REST (the last MaxRESTRequests, 64),
// with the request's address, x-client-info, the role, subject and
// expiry of its token (the Authorization bearer, else the apikey
// header, else the apikey query parameter, as the server reads it; the
// token only masked), the upstream's HTTP status and the body's size.
// Each message of a decoded body is an app message from the app with
// Via "rest" and the status, counted in Stats.RESTMessages. It goes to
// the app's socket when one is open: the open socket with the same
// x-client-info whose token, or the token of one of its joins, has the
// request token's role and subject — of those, the latest that holds
// the first message's topic, else the latest opened. There it is a
// message of the topic's channel (realtime:TOPIC, added without a
// status when the socket has none; MessagesFromApp and BytesFromApp
// count it), and the request's Socket names the socket. When no socket
// matches (a server-side sender, a browser socket that sends no
// x-client-info), the request keeps its messages itself (Messages, the
// first MaxRESTMessages, 16). A body the proxy did not decode (over its
// copy bound: Clipped; not a batch: Error) has no messages; it is
// published as one app_message with action "undecoded".
//
// # Flags
//
// Each [Flag] is typed ([FlagKind]) with a short text:
//
//   - duplicate_topic: a socket joined a topic it held (joined, and
//     neither left by the app, its phx_leave sent, nor errored nor
//     closed).
//   - never_left: a channel was joined when the app closed its socket
//     (the app ended it without a phx_leave). A socket the upstream or
//     the proxy ended, or that a fault of the proxy ended (drop, close,
//     expire_token, and freeze, whose end is usually the app's
//     heartbeat timeout), raises none: the app had no chance to leave.
//   - channel_limit: a socket held more than Options.ChannelLimit
//     channels (once per socket).
//   - token_expired: a held channel's token expired with no
//     access_token push since the join, seen by the first frame of its
//     socket after the expiry or by [Model.Tick] (which a proxy calls
//     periodically, for sockets that went quiet).
//   - identity_changed: a join carried another role or subject than the
//     join of the topic before it, on the same socket or on the socket it
//     replaced (an app that fell back to the anon key after a reconnect).
//
// # Output
//
// [Model.Snapshot] is a deep copy for a UI; its JSON holds no key or
// token unmasked. [Model.Subscribe] gives a bounded queue of [Event]s;
// [Subscription.Stream] writes them as NDJSON and [WriteNDJSON] writes
// one.
//
// # NDJSON schema
//
// One JSON object per line. Every event has "type" (first), "time"
// (RFC 3339, nanoseconds) and "socket" (the proxy's socket ID); channel
// events have "topic". Members whose value is empty are left out.
//
//	app_socket   action "open":  remote_addr, client_info, vsn, token
//	                             (masked), role, subject, expiry,
//	                             connection, attempt, delay_ms (from the
//	                             previous socket's close, attempt > 1)
//	             action "close": code, reason, closed_by ("app",
//	                             "upstream", "proxy"), connection, attempt
//	app_channel  action "join":  status "joining", ref, attempt, delay_ms,
//	                             role, subject, private
//	             action "joined", "errored", "closed", "left": status,
//	                             reason (the server's)
//	             action "leave": ref (the app sent phx_leave)
//	             action "token": token (masked), role, subject, expiry
//	app_message  action "message": dir ("app->upstream",
//	                             "upstream->app"), event, user_event (a
//	                             broadcast's), bytes (the frame's),
//	                             payload (masked, clipped; in hex,
//	                             "00 01 fe", with binary true for a
//	                             binary payload); a REST
//	                             broadcast's also via "rest",
//	                             http_status (the upstream's), role,
//	                             subject, private, and socket 0 when no
//	                             socket of the app took it
//	             action "undecoded": a REST broadcast not decoded: via
//	                             "rest", http_status, bytes (the
//	                             body's), reason, text "clipped" when
//	                             it was over the proxy's copy bound
//	app_presence action "state": members; action "join" or "leave": key,
//	                             metas (how many)
//	app_flag     flag (a FlagKind), text
//	app_fault    action (the proxy's fault kind: drop, close, freeze,
//	                             latency, fail_connect, reject_join, kick,
//	                             expire_token, drop_message,
//	                             duplicate_message), reason (its detail,
//	                             masked), text "armed" when it was armed
//	                             rather than applied; socket 0 for the
//	                             proxy as a whole
//
// # Recording
//
// A [Recorder] is an Observer in front of a Model: it passes every call
// on and writes it, masked, as one line of an app recording ([Input]:
// app_open, app_frame, app_close, app_fault, app_tick, app_rest), keeping beside
// the masked token what the model reads from it (role, subject, expiry:
// Input.Claims) and a frame's size on the wire. It never blocks the
// relay: the calls wait in a bounded queue (65,536 and 32 MiB, see
// [RecorderOptions]) for its writer goroutine, which masks and encodes
// them; what does not fit is dropped, counted and marked by a "dropped"
// line. [DecodeInput] reads a line back (masking it again) and
// [Model.Apply] feeds it to a model: applied in order to a new Model,
// the inputs of a recording rebuild the model that watched the traffic
// (durations aside: the live model measures them on the monotonic
// clock). Package registry/headless adds the header and end lines and
// reads the file for rtm replay and rtm diff.
//
// # Bounds
//
// Every store is bounded in count and bytes (see [Options] for the
// defaults) and counts what it dropped. The messages and presence kept
// weigh at most 64 MiB over every socket (MaxBytes; Stats.Bytes), and
// per store: open sockets (10,000) and
// closed ones kept (256, oldest evicted; Stats.SocketsDropped), channels
// per socket (512; Socket.ChannelFramesDropped counts the frames of
// the topics not kept), attempts per channel (32;
// AttemptsDropped), messages per channel (64 and 64 KiB, each payload
// clipped to 1 KiB and a payload over 64 KiB not kept;
// MessagesDropped), presence per channel (1024 keys, 16 metas a key,
// 512 bytes a meta, 256 KiB in all; PresenceDropped), token pushes per
// channel (16; TokenPushesDropped), REST requests (64;
// Stats.RESTDropped) and the messages a request keeps (16), flags (1024; Stats.FlagsDropped),
// and a subscriber's queue (1024 events; Subscription.Dropped,
// Stats.EventsDropped). Strings from the wire are clipped (topics and
// keys to 256 bytes).
package apps
