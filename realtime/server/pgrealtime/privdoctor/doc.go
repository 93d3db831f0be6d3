// Package privdoctor answers "why Unauthorized?" for a private channel:
// it checks, against the real database, what Supabase Realtime's
// Authorization needs for one topic and one identity, and reports one
// line per check, green or red, with the fix (a report of package
// rtm/realtime/server/pgcdc/doctor, printed the same way).
//
// The checks run Supabase's own procedures through package pgrealtime
// (ReadCheck, WriteCheck, ApplySettings: the probe rows, the session
// settings, the select by ids, the savepoint insert, the rollback), as
// the identity, so their verdict is the server's. Nothing is kept:
// every probe and test send is rolled back.
//
// Checks, in order: connection; realtime schema (realtime.messages and
// realtime.topic()); partition (a probe row stamped now finds its daily
// partition, else MissingPartition); row-level security (enabled on
// realtime.messages); identity (the role exists, the connecting user may
// act as it, a JWT's expiry); grants (usage on schema realtime, select
// and insert on realtime.messages); policies (those on realtime.messages
// that apply to the role: name, command, roles, USING and WITH CHECK;
// those for other roles named); read broadcast, read presence and the
// private join's verdict (the read check); write broadcast and write
// presence (the write check); public or private (what private means, a
// role that bypasses RLS, no SELECT policy for any role); and one db
// broadcast line per function outside the realtime schema that calls
// realtime.send, realtime.send_binary or realtime.broadcast_changes
// (its triggers, SECURITY DEFINER or not, its private arguments against
// the private channel, and a rolled-back test realtime.send on the
// topic as the role its INSERT runs as, whose WarnSendingBroadcastMessage
// warning is caught; earlier warnings are only in PostgreSQL's log,
// which the doctor says it cannot read).
//
// A denied probe's fix is the documented policy (Supabase's
// authorization guide) for the topic and role; a policy that raises is
// an RlsPolicyError with its error, and the doctor names the first of
// the role's policies whose expression raises on the probe row. Every
// detail and fix is masked (rtm/realtime/mask): a token never shows.
//
// Source files: privdoctor.go (Options, Run, the identity, the
// connection), checks.go (schema, partition, RLS, identity, grants,
// policies, the policy SQL), probes.go (the read and write checks, the
// raising policy, public or private) and bfd.go (Broadcast from
// Database).
package privdoctor
