// Package pgcdc is the change feed of rtm's embedded Realtime server:
// postgres_changes from a real PostgreSQL through logical replication,
// with Supabase Realtime's semantics.
//
// A [Feed] streams a publication ("supabase_realtime" by default, created
// when missing) through the pgoutput plugin on a replication slot
// (temporary by default) with github.com/jackc/pglogrepl on pgx v5,
// decodes INSERT, UPDATE and DELETE into the "data" of postgres_changes
// messages (schema, table, type, commit_timestamp, columns with their
// PostgreSQL type names, record and old_record as the replica identity
// allows, errors), and delivers each change to the [Subscription]s whose
// bindings it matches:
//
//   - filters (eq, neq, lt, lte, gt, gte, in) are evaluated by column
//     type, against the values PostgreSQL itself printed for the filter
//     values at subscribe time;
//   - row visibility is evaluated as the subscriber, as Supabase does: on
//     a table with row-level security, in a transaction that sets the
//     subscriber's role and request.jwt.claims and selects the row by
//     primary key; only columns the role may select are sent. Each
//     distinct (role, claims) is checked in its own implicit transaction
//     of one pipelined round trip per batch, so a policy that raises for
//     one subscriber does not stop delivery to the others; the error is
//     reported to that subscriber ([Status]). PostgreSQL writes a commit
//     to the WAL a moment before other sessions see it, so the checks of
//     a batch first wait (bounded) until its transactions are visible to
//     a new snapshot; without that wait a check in that moment finds no
//     row and drops the change for everyone ([Stats].VisibilityWaits);
//   - errors the user can act on (a table that does not exist or is not
//     in the publication, a filter on a column that does not exist, an
//     unsupported operator, a value that does not read as the column's
//     type, a role that does not exist) fail [Feed.Subscribe] with a
//     *[SubscribeError] carrying a reason and a fix.
//
// Readiness: a subscription reports [StatusReady] only once the feed has
// seen, in the replication stream, a logical decoding message it emitted
// after registering the subscription; every change committed after that
// point reaches it. This is the moment Supabase's "Subscribed to
// PostgreSQL" system message is meant to mark.
//
// The feed acknowledges processed positions to the server (standby status
// updates every StatusInterval and when asked), reconnects with backoff
// when the replication connection drops (a temporary slot loses the
// changes committed meanwhile; a named slot resumes), and reports each
// outage to the subscriptions.
//
// Inserts. A feed opened with [Config].Inserts is a plain stream of the
// rows inserted into the publication's tables (package pgrealtime's
// Broadcast from Database reads realtime.messages this way, on its own
// publication and temporary slot): the same connection handling,
// acknowledgements and reconnection, each INSERT handed over as an
// [Insert] in commit order instead of being matched against
// subscriptions.
//
// Source files, by concern: feed.go (Config, Open, Close, Stats),
// stream.go (the replication reader: slot, WAL messages, fences),
// pgoutput.go (decoding pgoutput messages), values.go (column values and
// their JSON), dispatch.go (the dispatcher goroutine and its batches),
// catalog.go (relation, type, table and role metadata it caches),
// match.go (which subscriptions a change reaches), filter.go (filter
// operators), visibility.go (row-level security checks),
// deliver.go (encoding and delivering a change), subscribe.go
// (Subscribe, validation, the subscription index), source.go (the
// ChangeSource of package server), inserts.go (Config.Inserts) and
// probe.go (Probe).
package pgcdc
