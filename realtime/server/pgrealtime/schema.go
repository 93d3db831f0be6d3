package pgrealtime

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// bootstrapLock is the advisory lock key (per database) that serialises
// the bootstrap and the partition maintenance of concurrent rtm servers
// on one database.
const bootstrapLock int64 = 0x72746d5f72746d // "rtm_rtm"

// object is one thing Supabase has in a project's database: how to tell
// it exists, and the SQL that creates it when it does not.
type object struct {
	name   string // as logged: "schema realtime", "function realtime.send(...)"
	exists string // a query returning one boolean
	create string // statements run when it does not exist
}

// role returns the object of a role, created NOLOGIN NOINHERIT (service_role
// with BYPASSRLS) as Supabase's. Roles are cluster-wide: a concurrent
// creation from another database is tolerated.
func role(name, attrs string) object {
	return object{
		name:   "role " + name,
		exists: fmt.Sprintf(`select exists (select 1 from pg_roles where rolname = '%s')`, name),
		create: fmt.Sprintf(`do $$ begin create role %s nologin noinherit%s; `+
			`exception when duplicate_object or unique_violation then null; end $$`, name, attrs),
	}
}

// function returns the object of a function named by its signature
// (regprocedure text), created by def.
func function(signature, def string) object {
	return object{
		name:   "function " + signature,
		exists: fmt.Sprintf(`select to_regprocedure('%s') is not null`, signature),
		create: def,
	}
}

// messagesDDL is realtime.messages as Supabase Realtime v2.129.8 defines
// it (priv/repo/tenant_schema/realtime/tables/messages.sql), with its
// grants, except the owner: it stays the connecting user (Supabase:
// supabase_realtime_admin), whose probe inserts therefore bypass RLS.
const messagesDDL = `
create table "realtime"."messages" (
  "topic"          text                        not null,
  "extension"      text                        not null,
  "payload"        jsonb,
  "event"          text,
  "private"        boolean,
  "updated_at"     timestamp without time zone not null,
  "inserted_at"    timestamp without time zone not null,
  "id"             uuid                        not null,
  "binary_payload" bytea
) partition by range (inserted_at);
alter table "realtime"."messages" enable row level security;
alter table "realtime"."messages" alter column "id" set default gen_random_uuid();
alter table "realtime"."messages" alter column "inserted_at" set default now();
alter table "realtime"."messages" alter column "private" set default false;
alter table "realtime"."messages" alter column "updated_at" set default now();
alter table "realtime"."messages"
  add constraint "messages_payload_exclusive" check (((payload IS NULL) OR (binary_payload IS NULL))) not valid;
alter table "realtime"."messages" add constraint "messages_pkey" primary key (id, inserted_at);
create index messages_inserted_at_topic_index on only realtime.messages using btree (inserted_at desc, topic)
  where ((extension = 'broadcast'::text) AND (private is TRUE));
grant insert, select, update on table "realtime"."messages" to "anon", "authenticated", "service_role";
`

// topicDef is realtime.topic() (functions/topic.sql), owner aside.
const topicDef = `
create or replace function realtime.topic()
  returns text
  language sql
  stable
  AS $function$
select nullif(current_setting('realtime.topic', true), '')::text;
$function$;
`

// sendDef is realtime.send (functions/send.sql, migration
// 20260605120000), owner aside.
const sendDef = `
create or replace function realtime.send (
  payload jsonb,
  event   text,
  topic   text,
  private boolean default true
)
  returns void
  language plpgsql
  AS $function$
DECLARE
  generated_id uuid;
  final_payload jsonb;
BEGIN
  BEGIN
    generated_id := gen_random_uuid();

    -- Check if payload has an 'id' key, if not, add the generated UUID
    IF payload ? 'id' THEN
      final_payload := payload;
    ELSE
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    END IF;

    -- Set the topic configuration
    EXECUTE format('SET LOCAL realtime.topic TO %L', topic);

    INSERT INTO realtime.messages (id, payload, event, topic, private, extension)
    VALUES (generated_id, final_payload, event, topic, private, 'broadcast');
  EXCEPTION
    WHEN OTHERS THEN
      RAISE WARNING 'WarnSendingBroadcastMessage: %', SQLERRM;
  END;
END;
$function$;
`

// sendBinaryDef is realtime.send_binary (functions/send_binary.sql,
// migration 20260603120000): send's body for a bytea payload, which gets
// no injected id.
const sendBinaryDef = `
create or replace function realtime.send_binary (
  payload bytea,
  event   text,
  topic   text,
  private boolean default true
)
  returns void
  language plpgsql
  AS $function$
DECLARE
  generated_id uuid;
BEGIN
  BEGIN
    generated_id := gen_random_uuid();

    -- Set the topic configuration
    EXECUTE format('SET LOCAL realtime.topic TO %L', topic);

    INSERT INTO realtime.messages (id, binary_payload, event, topic, private, extension)
    VALUES (generated_id, payload, event, topic, private, 'broadcast');
  EXCEPTION
    WHEN OTHERS THEN
      RAISE WARNING 'WarnSendingBroadcastMessage: %', SQLERRM;
  END;
END;
$function$;
`

// broadcastChangesDef is realtime.broadcast_changes
// (functions/broadcast_changes.sql, unchanged since 20240919163303).
const broadcastChangesDef = `
create or replace function realtime.broadcast_changes (
  topic_name   text,
  event_name   text,
  operation    text,
  table_name   text,
  table_schema text,
  new          record,
  old          record,
  level        text   default 'ROW'::text
)
  returns void
  language plpgsql
  AS $function$
DECLARE
    -- Declare a variable to hold the JSONB representation of the row
    row_data jsonb := '{}'::jsonb;
BEGIN
    IF level = 'STATEMENT' THEN
        RAISE EXCEPTION 'function can only be triggered for each row, not for each statement';
    END IF;
    -- Check the operation type and handle accordingly
    IF operation = 'INSERT' OR operation = 'UPDATE' OR operation = 'DELETE' THEN
        row_data := jsonb_build_object('old_record', OLD, 'record', NEW, 'operation', operation, 'table', table_name, 'schema', table_schema);
        PERFORM realtime.send (row_data, event_name, topic_name);
    ELSE
        RAISE EXCEPTION 'Unexpected operation type: %', operation;
    END IF;
EXCEPTION
    WHEN OTHERS THEN
        RAISE EXCEPTION 'Failed to process the row: %', SQLERRM;
END;

$function$;
`

// The auth helpers policies call (Supabase Auth's definitions: the
// request.jwt.claim.* settings first, then request.jwt.claims), created
// only when a database has none: a plain PostgreSQL has no auth schema,
// and the documented policies use auth.uid().
const (
	authUIDDef = `
create or replace function auth.uid() returns uuid language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;`
	authRoleDef = `
create or replace function auth.role() returns text language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;`
	authJWTDef = `
create or replace function auth.jwt() returns jsonb language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;`
)

// objects are what the bootstrap creates when missing, in order (roles
// before the grants that name them, the schema before its contents).
func objects() []object {
	return []object{
		role("anon", ""),
		role("authenticated", ""),
		role("service_role", " bypassrls"),
		{
			name:   "schema realtime",
			exists: `select exists (select 1 from pg_namespace where nspname = 'realtime')`,
			create: `create schema realtime; grant usage on schema "realtime" to "anon", "authenticated", "service_role"`,
		},
		{
			name:   "table realtime.messages",
			exists: `select to_regclass('realtime.messages') is not null`,
			create: messagesDDL,
		},
		function("realtime.topic()", topicDef),
		function("realtime.send(jsonb,text,text,boolean)", sendDef),
		function("realtime.send_binary(bytea,text,text,boolean)", sendBinaryDef),
		function("realtime.broadcast_changes(text,text,text,text,text,record,record,text)", broadcastChangesDef),
		{
			name:   "schema auth",
			exists: `select exists (select 1 from pg_namespace where nspname = 'auth')`,
			create: `create schema auth; grant usage on schema auth to anon, authenticated, service_role`,
		},
		function("auth.uid()", authUIDDef),
		function("auth.role()", authRoleDef),
		function("auth.jwt()", authJWTDef),
	}
}

// Bootstrap creates, in one transaction under an advisory lock, what of
// Supabase's realtime schema the database lacks (see the package doc),
// and returns the names of what it created, in order. Existing objects
// are never altered, so a second run creates nothing.
func Bootstrap(ctx context.Context, conn *pgx.Conn) (created []string, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgrealtime: bootstrap: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, bootstrapLock); err != nil {
		return nil, fmt.Errorf("pgrealtime: bootstrap lock: %w", err)
	}
	for _, o := range objects() {
		var ok bool
		if err := tx.QueryRow(ctx, o.exists).Scan(&ok); err != nil {
			return nil, fmt.Errorf("pgrealtime: looking for %s: %w", o.name, err)
		}
		if ok {
			continue
		}
		// Simple protocol: several statements, no parameters.
		if _, err := tx.Conn().PgConn().Exec(ctx, o.create).ReadAll(); err != nil {
			return nil, fmt.Errorf("pgrealtime: creating %s: %w", o.name, err)
		}
		created = append(created, o.name)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pgrealtime: bootstrap commit: %w", err)
	}
	return created, nil
}
