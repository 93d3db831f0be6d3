// Package headless runs rtm's channel manager without a UI, for scripts
// and CI: `rtm watch` (every manager event as NDJSON), `rtm record` and
// `rtm replay` (frames and events to a file, and back into a live channel
// or the read-only UI), `rtm diff` (what one recording received that
// another did not), and `rtm swarm` (many simulated clients).
// Scenarios (`rtm run`) are in the sub-package scenario.
//
// Every command takes the same target as the UI (package
// registry/target): a project from flags, the environment or .env files,
// or, with none, rtm's embedded server started in-process ([Open]).
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
package headless
