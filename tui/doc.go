// Package tui is rtm's terminal UI: a Bubble Tea v2 root model with a
// header, the channels table, a tabbed main pane (messages, presence,
// retries, info), the log stream, a status line and key hints, plus the
// command line, forms, the confirm dialog and the fault menu.
//
// Components. The root [Model] (model.go) holds the data the panes show
// and routes messages and lays out; every pane and dialog is its own
// type owning its state:
//
//   - panes: channelsPane (channels.go: rows grouped by identity and
//     tenant, selection, scroll, filter; channels_cols.go: its
//     columns), mainPane (mainpane.go) with one mainTab per tab
//     (tab_messages.go, tab_presence.go, tab_retries.go, tab_info.go,
//     tab_compare.go:
//     each owns its scroll, filter or toggle), logPane (logpane.go: its
//     ring, cursor, wrap, filter). Each has setSize, its keys, its
//     footer help and view, which renders again only when its cache key
//     changed ([paneCache] in pane.go): the versions of the data it
//     shows (a ring's Seq and Len, the model's chansGen and stateGen,
//     bumped in batch.go where the data changes), its own state, its
//     size, focus and styles, and the model's epoch and clock (key
//     presses and ticks redraw everything, as before).
//   - navigation: nav.go decodes the navigation keys once (navKey) for
//     every list, with the two cursors lists use: scroll (an offset the
//     view clamps) and cursor (a numbered entry, or the newest while
//     following).
//   - dialogs: the dialog interface (dialog.go: update, view, help) and
//     a stack in the root model; the top dialog gets every key, paste
//     and blink. One file each: dialog_help.go, dialog_confirm.go,
//     dialog_form.go (with dialog_track.go and dialog_broadcast.go),
//     dialog_faults.go (the fault menu and the fault commands, on
//     registry's fault vocabulary: registry.Fault, ParseFault, Apply),
//     dialog_appfaults.go (the Apps view's fault menu and forms, on an
//     app socket or channel), dialog_doctor.go, dialog_apps.go (the Apps
//     view), dialog_limits.go (the Limits view and the header's
//     gauge), dialog_filter.go, and cmdline.go (the command line, which
//     owns its history; the commands are in commands.go).
//   - the root: route.go routes keys (top dialog, global keys, the open
//     tab's keys, replay, channel actions, the focused pane), actions.go
//     turns actions into Cmds, batch.go applies batches, view.go draws
//     the header, status line and footer and composes the screen,
//     status.go keeps the status line.
//
// Adding a tab: a file tab_<name>.go with a type implementing mainTab,
// and in mainpane.go a tab constant, its title (tab.String) and its
// entry in newMainPane; its number key follows. Adding a dialog: a file dialog_<name>.go with a
// type implementing dialog, opened with Model.openDialog from the key
// (route.go) or command (commands.go) that shows it. Adding a command:
// its commandSpec and runCommand case in commands.go (and completions
// there). A fault needs nothing here but its menu row (newFaultMenu in
// dialog_faults.go): its command, help line and parsing come from
// registry.FaultKinds. An app fault needs nothing here at all: the
// Apps view's menu (dialog_appfaults.go) has a row per
// registry.AppFaultKinds (one per kick mode for a fault that takes a
// mode), its AppDoc as the label, and a form for the settings it takes
// (read from registry's table through FaultKind.CheckSettings) that the
// selection does not give; only a new kind of setting needs its field
// in settingFields there.
// Adding a pane: a file with its type (setSize, keys, help, a cached
// view), its rect in layout.go, a focus value and field in model.go,
// its case in route.go and in view.go (Render, ShortHelp).
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
// hint. View renders only visible rows and keeps rendered panes and rows
// cached until what they show changes. Layout is computed on
// WindowSizeMsg.
//
// Everything that came from the network is shown masked: the text of
// every row goes through sanitize, which masks keys and tokens on the
// decoded text (registry.MaskText) before it strips control characters,
// and JSON payloads and binary dumps are masked before they are laid
// out. The UI does not rely on what feeds it (a recording, any
// [Manager]) having masked them.
//
// Apps view: the monitor runs rtm's app proxy and hands its model of
// the apps' traffic to the UI as [Options.Apps] (an [Apps]: Snapshot, a
// deep copy of registry/apps value types) with the proxy's URL
// (Options.AppsURL, shown in the header). The A key and :apps open the
// Apps view (dialog_apps.go): the app sockets, and the selected one's
// channels (status with the server's reason, join attempts with the
// app's delays, presence and message counts) and flags; with no app
// yet, the SUPABASE_URL names to set in the app, and, when the upstream
// is the embedded server (Options.AppsAnonKey, which the header shows
// too when it fits), its SUPABASE_ANON_KEY names, the key masked. c
// copies those lines with the key in full to the clipboard (OSC 52,
// tea.SetClipboard) and w writes them to Options.AppsEnvFile
// (.env.rtm; mode 0600; a file rtm did not write is never
// overwritten); the status line says what, the key masked
// (appenv.go). It is a dialog, not a
// main-pane tab, because the tabs follow the selected channel of rtm's
// own client and an app socket is none of them. ↑/↓ select a socket;
// tab (or enter) moves the selection into its channels (↑/↓ there, tab
// or esc back), and the selected channel's last messages show, those
// the app sent by the REST broadcast API marked "via REST" with the
// upstream's HTTP status; the REST broadcasts no socket of the app took
// have a section of their own (dialog_apps_messages.go); x opens the fault menu of the selected socket (drop,
// close, freeze, latency, fail-connects, expire-token, heal) or channel
// (kick, reject-joins, drop-messages, duplicate-messages, then the
// socket's). A fault with settings opens a form, prefilled (a close
// code and Supabase's own reasons offered with ctrl+n); the fault goes
// the way of ":app" (Model.fault, the manager's Faults.Apply with
// Fault.App, Socket and Topic set) and its outcome shows in the status
// line and, failed, in the log. The snapshot is read on open and on the
// clock's tick while the view is open (never in View), numbered by
// Model.appsGen when it changed; the view is cached on that number, its
// selection (socket, and channel while in the channels), the size and
// the clock.
//
// Limits view: the monitor runs the budget meter of package
// registry/limits (fed by its manager and the app proxy's model,
// refreshed from the target's limits) and hands it to the UI as
// [Options.Limits] (a [Limits]: Report). The L key and :limits open the
// Limits view (dialog_limits.go): a row per Supabase limit with its
// usage, peak, a bar of the share used, the limit and where it came
// from (server, plan, --limit) and the forecast at the current trend,
// in the level's colour (warning from 80 %, error at 100 % or after a
// server error); under a gauge the server's last limit error with its
// reason; under messages per second what the manager's own brakes hold
// back. The header shows the worst gauge ("limits 85%
// channels/sock"). The report is read at start and on the clock's
// tick (never in View), numbered by Model.limitsGen; the view is cached
// on that number, the size and the clock.
//
// Identities side by side (identity.go, identity_cmds.go): the UI
// holds several identities, each its own socket ([Identity]: a name
// and its own [Manager]), Options.Manager's first (Options.Identity,
// default "default"), those of Options.Others from the start, and those
// Options.Identities adds and drops at run time (:as USER, :as --role
// anon|authenticated|service_role, :as --jwt TOKEN, :drop-identity
// [NAME]). Each identity's [Bridge] tags its batches with its name
// (BridgeOptions.Identity, EventsBatchMsg.Identity); the model keeps
// one identity's data in its working fields (state, chData, retries,
// frames), the active one's, and swaps them (activate, withIdentity),
// so every pane, action and fault works on one identity as before. The
// active identity is the selected channel's: the channels table groups
// its rows by identity ("as bob · tenant abc") and marks a topic that
// several hold (×2), and the keys, the fault menu ("Faults on bob's
// socket") and the commands go to the selected channel's socket.
// ":join ... --for a,b" and J (join the selected topic as the others)
// join one topic as several. A token typed or pasted on the command
// line is echoed masked and kept masked in the history (maskLine).
// The Compare tab (tab_compare.go, compare.go; key 5, shown with
// several identities) reads Options.Compare (*compare.Comparer of
// registry/compare, fed by the bridges' BridgeOptions.Observe) in a
// Cmd on the clock's tick: for the selected topic one column per
// identity (status, messages by kind and event, broadcasts sent
// beside the messages, presence members, misses), then the live
// differences, newest first, with the reason the comparer gives
// (private-channel refusal, RLS verdict, another tenant, not joined
// yet, a fault).
//
// The package uses the manager only through [Manager] and [Source]
// (declared here) and registry value types; it never touches the
// network. [NewRegistryManager] adapts *registry.Manager.
package tui
