// Package registry is rtm's channel manager: the RealtimeChannelManager of
// shared/DESIGN.md on top of the Go client of package realtime.
//
// This file is the package overview; the full guarantees are documented
// with the Manager (work in progress: the value types — [Name], [Kind],
// [Status], [ChannelInfo], [PresenceUser], the [Event] types, [State],
// [Stats], [Metrics], [LogRecord] — are stable and may only grow).
package registry
