// Package limits is rtm's budget meter of Supabase Realtime's limits:
// for each limit the server enforces, how much of it is in use, how fast
// that grows, when it will be hit at that pace, and the last error the
// server sent about it.
//
// # Gauges
//
// A [Meter] holds one gauge per limit ([Names]; a fixed number,
// [NumNames]):
//
//	concurrent_clients          count  sockets open (max_concurrent_users)
//	channels_per_connection     count  channels one socket holds (max_channels_per_client)
//	joins_per_second            rate   channel joins (max_joins_per_second)
//	messages_per_second         rate   messages sent (max_events_per_second)
//	presence_events_per_second  rate   presence pushes and syncs (max_presence_events_per_second)
//	payload_size                size   largest broadcast or presence payload (max_payload_size_in_kb)
//	postgres_change_payload     size   largest postgres change
//
// A count gauge's usage is what is held now; a rate gauge's the events
// of the last second (a sliding window of ten 100 ms slots, as the
// embedded server counts); a size gauge's the largest payload of the
// last minute, in bytes. Each gauge also keeps one slot per second of
// the last [HistorySeconds] (fixed arrays: a meter's memory does not
// grow). From them a [Gauge] gives the peak (the highest usage since the
// meter started: for a rate gauge, the peak rate), the trend (growth
// per second over the last [TrendSeconds], least squares), the
// percentage of the limit and a level: ok, warning from [WarnPercent]
// (80 %), error at 100 % or when the server reported the limit within
// the last minute. HitIn forecasts, at the trend, when usage reaches the
// limit (0 once it has; none when it is not heading there, or not
// within [MaxForecast]). The clock is
// injectable (package registry/clock).
//
// The server's own counters ([ServerUsage], from [Source]) count every
// client of the tenant: for a few seconds after each reading, a gauge's
// usage is the larger of what rtm saw and the server's.
//
// # Limit errors
//
// [Meter.ServerError] attaches a server error to the gauge of the limit
// it reports ([MatchReason]): the join errors
// "ChannelRateLimitReached: Too many channels",
// "ClientJoinRateLimitReached: Too many joins per second",
// "ConnectionRateLimitReached: Too many connected users"; the channel
// shutdowns "Too many messages per second", "Too many presence messages
// per second", "Client presence rate limit exceeded", "Track message
// size exceeded"; the HTTP 429 answers at connect ("Too many joins per
// second", "Too many connected users") and to REST broadcasts ("You
// have exceeded your rate limit", "Too many messages to broadcast");
// the broadcast ack "payload_size_exceeded"; a postgres change's
// "Error 413: Payload Too Large"; and the server's internal names
// (too_many_channels, too_many_joins, too_many_connections,
// tenant_events, PresenceRateLimitReached). The error keeps the
// server's reason (cut to 512 bytes), its code and the channel.
//
// # Where the limits come from
//
// [Limits] hold one value per gauge with its source, merged in this
// order, later over earlier:
//
//   - a plan ([Plan]: free, pro, pro-no-cap, team, enterprise);
//   - the server's configured values ([ServerReport.Limits]), for the
//     embedded server and `rtm serve` (GET /admin/limits);
//   - NAME=N overrides ([ParseOverride], [Override]; N in the limit's
//     unit, KB of 1000 bytes for the sizes, or "off").
//
// Supabase states its defaults three ways, and they disagree: the
// server's code defaults (200 clients, 100 events/s, 100 joins/s, 100
// channels, 1000 presence events/s, 3000 KB), the dashboard's fallbacks
// (the same but 100 presence events/s and 100 KB), and the documented
// plan limits. The plan table is the documented plan limits, because a
// hosted project is held to its plan: free 200 clients, 100
// messages/s, 100 joins/s, 100 channels, 20 presence events/s, 256 KB
// payloads; pro 500, 500, 500, 100, 50, 3000 KB; pro-no-cap, team and
// enterprise 10,000, 2,500, 2,500, 100, 1,000, 3,000 KB (enterprise's
// are documented as minimums: give its custom figures with overrides);
// postgres changes 1,024 KB on every plan. For the embedded server and
// `rtm serve` the server's own configured values win over any plan,
// since they are what it enforces.
//
// # Feeding
//
// A [Feed] turns rtm's own traffic into usage: the events of its
// channel manager ([Feed.Manager]: its socket, the channels it holds,
// joins, messages sent, presence, payload sizes, errors) and, when the
// proxy is on, the events of the app model of package registry/apps
// ([Feed.App]: the app's sockets, their channels, their sends).
// [Meter.Refresh] reads a [Source] (about once a second is enough) and
// takes the server's limits and counters ([Meter.ServerUsage] takes
// counters alone). What reads the meter
// ([Meter.Report], a [Report]) is `rtm watch`'s `limits` line, once a
// second (see package registry/headless), and a scenario's limits
// expectation.
//
// # JSON
//
// A Report is one NDJSON line:
//
//	{"type":"limits","time":"…","gauges":[{"name":"channels_per_connection",
//	 "kind":"count","usage":85,"peak":85,"trend":8.5,"limit":100,
//	 "source":"server","percent":85,"level":"warning","hit_in_ms":1764.7,
//	 "error":{"time":"…","reason":"ChannelRateLimitReached: Too many channels",
//	 "code":"ChannelRateLimitReached","channel":"broadcast:room:101"}},…]}
//
// Every gauge is listed, in [Names] order; hit_in_ms and error are
// absent when there is none. After the gauges, "throttle" (once set,
// [Meter.SetThrottle]) is what rtm's own brakes on broadcasts hold back
// (registry.Throttle: its rate limit's rate, burst and waiting
// broadcasts, its debouncers' pending and replaced values, its offline
// queues), beside the messages-per-second gauge. [DecodeReport] reads a
// line back.
package limits
