// Package scenario parses and runs scenarios: the YAML files `rtm run`
// takes to check, step by step, how clients of a Realtime target behave
// under faults, rtm's own clients or an app under test behind rtm's
// proxy (testdata/scenarios/ holds examples; every-step.yaml uses every
// step, fault and expectation but same_messages, which same-messages.yaml
// shows; app-reconnect.yaml runs a supabase-js app).
//
// # A scenario
//
// A scenario is a YAML mapping: a few settings (name, description,
// timeout for the whole run (default 2m), policy (the clients' retry
// policy, registry.ParsePolicy), reconnect_after, heartbeat,
// push_timeout, continue_on_failure, proxy (below), plan and limits
// (the limits of the limits expectation, below)) and steps, a list
// in which each
// step is a one-key mapping, its kind and its settings:
//
//	name: recovery after a drop
//	reconnect_after: 200ms
//	steps:
//	  - connect: {user: alice}
//	  - join: {client: alice, channel: presence:room:1}
//	  - fault: {client: alice, kind: drop}
//	  - expect:
//	      status: {client: alice, channel: presence:room:1, is: connected, within: 10s}
//
// [Parse] checks the whole file before anything runs: every error is a
// *headless.LineError naming the line and the reason (unknown keys list
// the keys allowed; a YAML syntax error names the line that breaks it;
// anchors and aliases are refused). [Run] runs the steps in order
// against a headless.Env, one registry.Manager per connected client,
// and returns a [Report]: each step passed, failed (with what was
// expected and observed) or skipped after a failure.
//
// # Steps
//
// Every step but connect and wait acts on a client (client:, which may
// be left out while only one client is connected):
//
//   - connect: user (a token minted for the user) or role, or neither
//     (the target's own identity); client, policy, timeout; proxy: true
//     connects through the scenario's proxy, so that rtm's own client
//     plays the app (every-step.yaml tests the app faults so). It waits
//     for the socket to open.
//   - join: channel; track, presence_key, private, self, ack.
//   - leave, untrack: channel.
//   - track: a presence channel; user, name, payload.
//   - broadcast: channel, event; payload, count (each payload then gets
//     a seq), interval.
//   - fault: kind and its settings (below).
//   - wait: a duration (wait: 2s or wait: {for: 2s}).
//   - refresh_token: a fresh token for the client's identity.
//   - exec: runs a command, the app under test (below).
//   - expect: one expectation (below).
//
// # Expectations
//
// Each polls until it holds or its time (within, default 5s) runs out:
//
//   - status: the channel is, or passed through since the previous step
//     began, a status (is: connecting, connected, disconnected, error).
//   - attempts: the channel's rejoin attempts are at_least, at_most or
//     exactly a number (for: how long an upper bound keeps holding).
//   - presence: the client's presence cache contains or lacks a user,
//     or holds count users.
//   - messages: the client received count (or at_least) messages of a
//     kind and event, with payloads in order, order_by a member that
//     increases.
//   - error: an error matching reason was met (since: start or
//     last_step).
//   - no_error: no error (for: how long to keep watching).
//   - limits: the client's gauge of a limit (name: a name of package
//     registry/limits, such as channels_per_connection, or Supabase's
//     setting name, such as max_channels_per_client) is under a
//     percentage of the limit (under: 80%; with for: throughout that
//     time, else as soon as it is) or reaches one (over: 85%, within).
//     The gauge is the client's own usage, and the server's counters
//     when the target reports them (the embedded server, rtm serve with
//     --service-key); the limit is the setting plan: (free, pro,
//     pro-no-cap, team, enterprise), the server's configured value over
//     it, and the setting limits: (NAME: N, N in the limit's unit, KB
//     for sizes, or off) over both. With no limit known it fails.
//   - same_messages: two clients (clients: [alice, bob]) received the
//     same messages on channel since they connected, normalized as `rtm
//     diff` normalizes them (package registry/compare; presence, system
//     messages and replies are never compared, and a client's own
//     broadcast, with self off, counts as received by it), but for the
//     events starting with one of except (a text or a list: "broadcast
//     typing", postgres_changes); it fails with the first difference,
//     who missed what, and the reason (refused by a private-channel
//     policy, another tenant, not joined yet, dropped by a fault, ...).
//     Put it after an expectation that the messages came: with none
//     received yet, both received the same.
//   - exit: a background exec (exec: its name) exited with code
//     (default 0) within its time; a command still running or ended by
//     a signal fails it.
//
// and, on the app behind the proxy (below), app_status, app_attempts,
// app_delays, app_presence, app_messages and app_no_duplicates.
//
// # Faults
//
// A fault step names a registry fault (registry.FaultKinds, by
// registry.FaultKind.String) and the settings of registry.Fault it
// takes, by their scenario names (registry.FaultSettings: channel, for,
// delay, count, mode, reason): drop; freeze for; latency delay (0s
// removes it); fail-connects count; expire-token; channel-error
// channel; heal (clears freeze, latency and failing connects); and,
// server side, kick channel [mode: error|close];
// reject-joins count and/or for [reason]; drop-all; restart [for]. The
// registry's table (registry.FaultKind.CheckSettings) decides which
// settings a fault takes and needs, and registry.Faults.Apply injects
// it: a new registry fault is a scenario fault with no change here.
// Rejections still in force are cleared when the run ends.
//
// # An app behind rtm's proxy
//
// With the setting proxy: true (or proxy: {listen: 127.0.0.1:PORT}, a
// loopback address; default 127.0.0.1:0, a free port) the run starts a
// realtime/proxy.Proxy in front of the target (its upstream the
// target's project URL), with a registry/apps.Model of the app's traffic
// as its Observer, and closes both when the run ends. The report's proxy
// is its URL. Without proxy:, an exec step, an app fault, an app
// expectation or a connect through the proxy is an error of the file.
//
//	proxy: true
//	steps:
//	  - exec: {name: app, command: node apps/reconnect.mjs, dir: ../realtimejs, background: true}
//	  - expect:
//	      app_status: {topic: room1, is: joined, within: 30s}
//	  - fault: {app: all, kind: drop}
//	  - expect:
//	      app_attempts: {topic: room1, at_least: 1, within: 10s}
//
// An exec step runs a command: a text is run as sh -c TEXT, a list
// ([node, app.mjs]) as the program and its arguments. Its settings:
// name (in the report and for expect exit; default exec-LINE), env (a
// mapping added to rtm's environment), dir (the working directory,
// relative to the scenario's directory, Options.Dir; default that
// directory), timeout (default 1m in the foreground, the rest of the
// run in the background), background (start it and go on). rtm adds
// to the environment SUPABASE_URL, NEXT_PUBLIC_SUPABASE_URL,
// VITE_SUPABASE_URL and EXPO_PUBLIC_SUPABASE_URL set to the proxy, and
// SUPABASE_ANON_KEY and its NEXT_PUBLIC_, VITE_ and EXPO_PUBLIC_ names
// set to the target's key (env: overrides them). A foreground exec
// fails its step unless it exits 0 (the reason quotes the end of its
// output); a background one is checked by expect exit. The command runs
// in a process group of its own: at its timeout, at the scenario's, and
// at the end of the run for a background command still running, the
// group gets SIGTERM, then SIGKILL 2 s later. The report's execs hold
// each command's exit code (or signal), why rtm stopped it, and the end
// of its stdout and stderr (the last MaxExecOutput, 64 KiB, starting at
// a character no key holds; keys and tokens masked by realtime/mask,
// the target's key and token wherever they appear).
//
// The example app (testdata/realtimejs/apps/reconnect.mjs) needs Node
// 22 on PATH and `npm ci` run in testdata/realtimejs (its
// @supabase/supabase-js); apps live under testdata/realtimejs so that
// Node finds its node_modules.
//
// An app fault is a fault step with app: all (or true: every app
// socket) or app: N (the proxy's socket N; sockets are numbered from 1
// in the order the app opened them during the run), acting on the
// app's traffic through the proxy with registry.ApplyAppFault. The
// kinds and settings are registry's app faults (registry.AppFaultKinds,
// FaultKind.AppArgs): drop; close code [reason]; freeze for; latency
// delay [jitter]; fail-connects count; expire-token; kick topic
// [mode]; reject-joins topic count [reason]; heal; drop-messages topic
// count; duplicate-messages topic count. A topic is the app's channel,
// room1 or realtime:room1.
//
// The app expectations poll the model's Snapshot (registry/apps types).
// Each takes topic (all but app_delays and app_no_duplicates need it)
// and socket (the proxy's socket N; default every socket, and for
// app_status and app_presence the latest socket holding the topic):
//
//   - app_status: the channel is (is:) joining, joined, errored,
//     closed or left. After a fault, expect app_attempts first: until
//     the relay has seen the socket end, the old channel still reads
//     joined.
//   - app_attempts: the app's rejoins of the topic (its phx_joins after
//     the first, over every socket) are at_least, at_most or exactly N
//     (for: how long an upper bound keeps holding).
//   - app_delays: every delay the app waited before trying again (a
//     rejoin after a failed attempt, Attempt.Delay, and a reconnect of
//     a socket that held the topic, Socket.ReconnectDelay) is at least
//     min and at most max, and at_least (default 1) were seen.
//   - app_presence: the presence the app received contains or lacks a
//     key, or holds count keys.
//   - app_messages: the app received count (or at_least) messages of
//     event (a broadcast's event, or the frame's: presence_diff, ...)
//     on the topic, among those the model keeps (64 per channel).
//   - app_no_duplicates: no socket joined a topic it held (the model's
//     duplicate_topic flag; for: how long to keep watching).
//
// A failed app expectation also names the background execs that have
// exited, with the end of their output (an app that could not start).
//
// # Where things are
//
// scenario.go holds the types and Parse; parse.go the file's structure
// and values.go the values (durations, names, payloads); parse_step.go
// and parse_expect.go one parser per step and per expectation,
// parse_app.go those of the proxy setting, exec, app faults and the app
// and exit expectations. run.go runs the steps, run_expect.go checks the
// expectations, payload.go compares payloads; app.go runs the proxy and
// applies app faults, run_app.go checks the app expectations, exec.go
// (with exec_unix.go, exec_other.go) runs the commands. A new step is a constant in StepKinds, its keys in
// stepKeys, its parser, and its case in runner.step; a new expectation
// likewise (ExpectKinds, expectKeys, its parser, its check).
package scenario
