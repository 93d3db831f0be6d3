// Package headless runs rtm's channel manager without a UI, for scripts
// and CI: `rtm watch` (every manager event as NDJSON), `rtm record` and
// `rtm replay` (frames and events to a file, and back into a live channel
// or the read-only UI), `rtm diff` (what one recording received that
// another did not), and `rtm swarm` (many simulated clients).
// Scenarios (`rtm run`) are in the sub-package scenario.
//
// Every command takes the same target as the UI (package
// registry/target): a project from flags, the environment or .env files,
// or, with none, rtm's embedded server started in-process. Package main
// owns that server: [Open] starts it through EnvOptions.StartEmbedded and
// gets back an [EmbeddedTarget] (URL, anon key, JWT secret, server-side
// controls), so this package does not import realtime/server.
// Nothing here prints: output goes to the writers the caller gives, and
// logs to its slog handler. Keys and tokens are masked in every line
// written ([Writer], on decoded values: see registry.MarshalMasked) and
// again in every line read back ([ReadRecording]), so a recording from
// elsewhere shows and replays no key either.
//
// # NDJSON
//
// Each line of `rtm watch` and of a recording is one event of package
// registry in its stable JSON form, {"type":"<type>",...}, which
// registry.DecodeEvent reads back. A recording adds a first line
// {"type":"recording","version":1,...} ([Header]) and a last line
// {"type":"recording_end",...} ([End]); [ReadRecording] reads both forms.
//
// With StreamOptions.Limits ([LimitsOptions]; `rtm watch --limits`,
// --plan, --limit), `rtm watch` also writes a `limits` line about once a
// second, which is not a registry event (limits.DecodeReport reads it):
//
//	{"type":"limits","time":"<RFC 3339>","gauges":[<gauge>,...]}
//
// with every gauge of package registry/limits, in a fixed order
// (concurrent_clients, channels_per_connection, joins_per_second,
// messages_per_second, presence_events_per_second, payload_size,
// postgres_change_payload), each
//
//	{"name":"channels_per_connection","kind":"count"|"rate"|"size",
//	 "usage":17,"peak":17,"trend":6.2,"limit":20,"source":"server",
//	 "percent":85,"level":"none"|"ok"|"warning"|"error","hit_in_ms":483.9,
//	 "error":{"time":"…","reason":"ChannelRateLimitReached: Too many channels",
//	          "code":"ChannelRateLimitReached","channel":"broadcast:room:20"}}
//
// usage is the sockets or channels held (count), the events of the last
// second (rate) or the largest payload of the last minute in bytes
// (size); peak the highest usage seen; trend its growth per second over
// the last 10 s; limit the limit in the same unit (0: none known) and
// source where it came from ("server": the embedded server's or `rtm
// serve`'s configured value; "plan free"; "--limit"); level turns to
// warning at 80 % and error at 100 % or when the server sent a limit
// error within the last minute; hit_in_ms (absent when not heading
// there) forecasts when usage reaches limit at the trend; error (absent
// until one came) is the last limit error the server sent for it. After
// the gauges, "throttle" is what the manager's own brakes hold back
// (registry.Throttle: "rate", "burst", "waiting", "debouncers",
// "pending", "replaced", "queued", "queue_dropped"). The
// meter's feed is its own subscription to the manager; --types does not
// filter it.
//
// # Several identities
//
// With StreamOptions.Identities (`rtm watch --as alice --as bob --role
// anon --jwt TOKEN`; specs of target.ParseIdentities), Watch connects
// once per identity — its own manager, socket and token (minted with
// the JWT secret, or the pasted token), so duplicate prevention, caps
// and retries hold per identity — and joins every --join channel as
// each (--join-private ones as private channels; a subscription channel
// gets a postgres_changes binding on its table: every row for
// subscription:TABLE:*, the row id=ID otherwise). Every line gets the
// member "identity" first, the identity's name (the user id, the role,
// the token's subject, or NAME of NAME=SPEC):
//
//	{"identity":"alice","type":"channel_state",...}
//
// With two or more identities, Watch also writes `compare` lines
// ([CompareLine], package registry/compare): a message one identity
// received on a topic that another holding it did not within the
// window (StreamOptions.Compare.Window, --compare-window, default 5 s),
//
//	{"type":"compare","time":"<when A received it>","topic":"subscription:notes:*",
//	 "a":"alice","b":"bob","missing_from":"bob",
//	 "message":{"channel":"subscription:notes:*","event":"postgres_changes INSERT public.notes",
//	            "value":{...normalized, masked...}},"truncated":true,
//	 "reason":"filtered by RLS","detail":"row-level security hides row id=1 ..."}
//
// a received it, b (= missing_from) did not; message is normalized as
// `rtm diff` normalizes (compare.Normalize) and masked, its value cut to
// 4 KiB (then truncated is true); reason is one of "another tenant",
// "refused by a private-channel policy" (detail: the server's reason),
// "dropped by a fault" (detail: the fault and when), "not joined yet",
// "filtered by RLS" (detail: the postgres_changes doctor's verdict for
// the row and b's claims, with Compare.Rows: --compare-db) or "unknown";
// detail is absent when empty. What is still unmatched when Watch ends
// is written then. compare lines carry no "identity". The limits line
// is for one identity and is refused with several.
//
// # App recordings
//
// `rtm proxy --record FILE` writes an app recording ([AppRecorder]): the
// header has "kind":"app" ([KindApp]), "tool":"rtm proxy", the upstream
// (masked) as "target" and "started"; then one line per call the proxy
// made on its Observer, masked, as package registry/apps writes them
// (apps.Input: app_open with the socket's vsn, client info and the
// token's claims — role, subject, expiry, masked form — read before
// masking; app_frame with dir, the masked text or base64 data, the size
// on the wire and the claims of a join's or push's token; app_close;
// app_fault; app_rest, a REST broadcast the app sent, decoded;
// app_tick), "dropped" lines where the bounded queue lost some, and the
// end line (Events counts the input lines). Lines are at
// most [MaxLine]. [ReadRecording] reads it into Recording.Apps, and into
// Events the app model's events those inputs make, as log lines
// ("app_channel joined", attributes socket, topic, ...); app lines and
// client events never mix in one file. The [Player] of an app recording
// gives the app model at its position ([Player.Apps], the UI's Apps
// view), rebuilt from the inputs up to the replay's clock; [Diff]
// compares what the apps of two app recordings received, per topic and
// event, normalized as for client recordings (a message the proxy
// dropped by a drop_message fault left out, a duplicated one twice) ([Comparable] refuses an
// app recording against a client one). Replaying one live is refused.
//
// # Memory
//
// [Watch] and [Record] never wait for their output and hold at most the
// subscription's buffer (StreamOptions.Buffer, 65,536 events, and
// BufferBytes, 32 MiB) and the batch being written: when the output is
// slower than the stream, a message that does not fit whole is written
// truncated (registry.MessageEvent.Truncated, its size and first 16 KiB),
// and other events, frames included (never cut: they are the record),
// are dropped and counted ("dropped" lines, End.Dropped). The [Writer]
// streams a payload, text or bytes over 64 KiB after the rest of its
// line (the member comes last; the line decodes to the same event), so a
// line of a 30 MiB payload costs about one copy of it (to mask it), not
// the half dozen that encoding it whole into the line would.
package headless
