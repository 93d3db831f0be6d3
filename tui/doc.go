// Package tui is rtm's terminal UI: a Bubble Tea v2 root model with a
// header, the channels table, a tabbed main pane (messages, presence,
// retries, info), the log stream, a status line and key hints, plus the
// command line, forms, the confirm dialog and the fault menu.
//
// Data flow: a [Bridge] goroutine reads the channel manager's event
// subscription and sends at most one [EventsBatchMsg] per frame (40 ms by
// default), with a fresh registry.State snapshot when state changed.
// [Model.Update] appends the batch to bounded ring buffers (the log,
// messages per channel, raw frames, retry events, presence feeds), so its
// cost follows the batch, not the history. Each ring is bounded by a
// count and by bytes (Options: LogBytes 8 MiB, MessageBytes 1 MiB per
// channel, FrameBytes 8 MiB, RetryBytes 2 MiB, FeedBytes 512 KiB per
// channel), and what it keeps is a copy cut to Options.Preview (16 KiB):
// a 30 MiB payload is kept and shown as its first 16 KiB, marked
// truncated with its size, and a View never renders more than that of
// it. Update does no I/O: every
// action (join, leave, track, broadcast, retry, faults, export) is a
// tea.Cmd that calls the [Manager] interface with a context and returns a
// result message; errors show in the status line and in the log with a
// hint. View renders only visible rows and keeps rendered areas and rows
// cached until they change. Layout is computed on WindowSizeMsg.
//
// Everything that came from the network is shown masked: the text of
// every row goes through sanitize, which masks keys and tokens on the
// decoded text (registry.MaskText) before it strips control characters,
// and JSON payloads and binary dumps are masked before they are laid
// out. The UI does not rely on what feeds it (a recording, any
// [Manager]) having masked them.
//
// The package uses the manager only through [Manager] and [Source]
// (declared here) and registry value types; it never touches the
// network. [NewRegistryManager] adapts *registry.Manager.
package tui
