// Package scenario parses and runs scenarios: the YAML files `rtm run`
// takes to check, step by step, how clients of a Realtime target behave
// under faults (testdata/scenarios/ holds examples; every-step.yaml uses
// every step, fault and expectation).
//
// # A scenario
//
// A scenario is a YAML mapping: a few settings (name, description,
// timeout for the whole run (default 2m), policy (the clients' retry
// policy, registry.ParsePolicy), reconnect_after, heartbeat,
// push_timeout, continue_on_failure) and steps, a list in which each
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
//     (the target's own identity); client, policy, timeout. It waits
//     for the socket to open.
//   - join: channel; track, presence_key, private, self, ack.
//   - leave, untrack: channel.
//   - track: a presence channel; user, name, payload.
//   - broadcast: channel, event; payload, count (each payload then gets
//     a seq), interval.
//   - fault: kind and its settings (below).
//   - wait: a duration (wait: 2s or wait: {for: 2s}).
//   - refresh_token: a fresh token for the client's identity.
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
// # Where things are
//
// scenario.go holds the types and Parse; parse.go the file's structure
// and values.go the values (durations, names, payloads); parse_step.go
// and parse_expect.go one parser per step and per expectation. run.go
// runs the steps, run_expect.go checks the expectations, payload.go
// compares payloads. A new step is a constant in StepKinds, its keys in
// stepKeys, its parser, and its case in runner.step; a new expectation
// likewise (ExpectKinds, expectKeys, its parser, its check).
package scenario
