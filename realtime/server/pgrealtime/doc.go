// Package pgrealtime is what rtm's embedded Realtime server needs inside
// a project's PostgreSQL to authorise private channels as Supabase
// Realtime (v2.129.8) does: by the user's own row-level security
// policies on realtime.messages.
//
// Bootstrap. [Open] (and [Bootstrap]) creates, when missing and only
// then, what Supabase has in the database: the roles anon, authenticated
// and service_role (NOLOGIN NOINHERIT; service_role BYPASSRLS), the
// realtime schema (usage granted to the three roles), realtime.messages
// with Supabase's current DDL (partitioned by day on inserted_at, RLS
// enabled, the payload/binary_payload exclusivity check, the primary key
// (id, inserted_at), the replay index; insert, select, update granted to
// the three roles), and the functions realtime.topic(), realtime.send(),
// realtime.send_binary() and realtime.broadcast_changes() with Supabase's
// verbatim definitions. A plain PostgreSQL has no Supabase Auth, and the
// documented policies call auth.uid(), so the auth schema and
// auth.uid() (uuid), auth.role() and auth.jwt() are created too when
// missing, with Supabase Auth's definitions (reading
// request.jwt.claim.sub / .role, then request.jwt.claims).
//
// Nothing that exists is altered or dropped: an object is created only
// when its name (a function: its signature) is not there, so a user's
// own policies, functions and grants stay as they are, and a second start
// creates nothing. One difference from Supabase: the objects are owned by
// the connecting user, not supabase_realtime_admin. The whole bootstrap
// is one transaction under a per-database advisory lock, so concurrent
// starts are safe (roles are cluster-wide: a role another database's
// bootstrap created meanwhile is tolerated). What was created is logged.
//
// Partitions. [MaintainPartitions] creates the daily partitions
// realtime.messages_YYYY_MM_DD from yesterday to three days ahead (UTC)
// and drops the daily partitions of days before (now − 72 h)::date, as
// Supabase's janitor does; partitions of other names are never touched,
// nor is a realtime.messages that is not partitioned. Open runs it at
// start and every [Config].MaintainEvery (an hour by default) on an
// injectable clock and ticker.
//
// Checks. [DB.AuthorizeRead] and [DB.AuthorizeWrite] implement
// server.Authorizer with Supabase's exact procedures
// (Realtime.Tenants.Authorization): the read check inserts one probe row
// per extension as the connecting user (id, topic, extension,
// updated_at, inserted_at only: private false, event and payload NULL),
// applies the session settings role, realtime.topic, request.jwt.claims,
// request.jwt.claim.sub, request.jwt.claim.role and request.headers,
// selects the probe ids as the token's role and rolls back; the write
// check applies the settings first and inserts per extension under a
// savepoint without RETURNING, 42501 meaning "no write". A missing
// partition gives MissingPartition, a policy that raises RlsPolicyError
// (refused as Unauthorized, logged with the policy's error). Policies
// therefore see realtime.topic() (the sub-topic), extension, the JWT
// (auth.uid(), auth.jwt(), current_setting('request.jwt.claims')) and
// the request headers. [ReadCheck] and [WriteCheck] run the same checks
// on any connection without Open's bootstrap, and [ApplySettings] the
// session settings alone: the private-channel doctor (package
// privdoctor) uses them.
//
// The connecting user must be able to create what is missing, bypass RLS
// on realtime.messages for the probe inserts (a superuser, the table's
// owner, or BYPASSRLS) and switch to the tokens' roles: Supabase's
// postgres user, or any superuser, can.
//
// Broadcast from Database. [DB.OpenBroadcasts] streams realtime.messages
// as Supabase's replication connection does: the publication
// supabase_realtime_messages_publication (created FOR TABLE
// realtime.messages when missing), a temporary slot
// supabase_realtime_messages_replication_slot_<id>, on a feed of package
// pgcdc (its connection handling, reconnection and logs). Every insert —
// from realtime.send, realtime.send_binary, realtime.broadcast_changes in
// a trigger, or a plain INSERT — with inserted_at, event, id, topic,
// private and a payload or binary_payload goes to the server
// ([Broadcasts] is a server.DatabaseBroadcasts), which delivers it to
// the channels of its topic: private rows to private channels with
// broadcast read, public rows to public channels, with meta {"id"}.
// Rows committed while the stream is not up are never delivered live
// (the slot is temporary, as Supabase's); replay still finds them.
// [Broadcasts.Replay] runs Supabase's replay query as the connecting
// user: the join's broadcast read is its only gate.
// [Broadcasts.Ready] applies pgcdc's readiness rule to
// config.broadcast.replication_ready: ready once the stream carried a
// logical decoding message emitted after the join.
//
// A failed realtime.send is a warning, as in Supabase: the function
// catches every error of its INSERT (an INSERT policy that refuses the
// calling role, a missing partition, a NULL topic) and raises WARNING
// 'WarnSendingBroadcastMessage: <error>' in the calling session, whose
// transaction goes on; the message is lost and never reaches the server.
// The warning shows in the client that called it (psql prints it) and
// in PostgreSQL's log (log_min_messages is warning by default); this is
// why trigger functions that call it are SECURITY DEFINER.
//
// Source files: schema.go (the objects and Bootstrap), partitions.go
// (MaintainPartitions), realtime.go (Open, the maintenance loop, Close),
// authz.go (the checks), broadcast.go (Broadcast from Database and
// replay).
package pgrealtime
