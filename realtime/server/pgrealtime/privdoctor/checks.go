package privdoctor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"rtm/realtime/server/pgrealtime"
)

// bootstrapFix says how to get Supabase's realtime schema.
const bootstrapFix = "run `rtm serve --db <url>` once: it creates what Supabase has (the realtime schema, realtime.messages partitioned by day, " +
	"realtime.topic(), realtime.send(), the roles anon, authenticated, service_role and their grants); on Supabase it is always there"

func (d *run) schema(ctx context.Context) bool {
	var kind string
	var topicFn bool
	err := d.conn.QueryRow(ctx, `select coalesce((select relkind::text from pg_class where oid = to_regclass('realtime.messages')), ''),
		to_regprocedure('realtime.topic()') is not null`).Scan(&kind, &topicFn)
	switch {
	case err != nil:
		d.add("realtime schema", false, err.Error(), "")
		return false
	case kind == "":
		d.add("realtime schema", false, "realtime.messages does not exist: Realtime cannot check a private channel (every private join fails)", bootstrapFix)
		return false
	case kind != "p" && kind != "r":
		d.add("realtime schema", false, fmt.Sprintf("realtime.messages is not a table (relkind %s)", kind), bootstrapFix)
		return false
	case !topicFn:
		d.add("realtime schema", false, "realtime.messages exists, but realtime.topic() does not: policies cannot see the channel's topic", bootstrapFix)
		return true
	}
	d.partition = kind == "p"
	d.add("realtime schema", true, "realtime.messages and realtime.topic() exist", "")
	return true
}

// partitionCheck inserts a probe row stamped now, as Realtime's own
// user does first in its read check, and rolls it back.
func (d *run) partitionCheck(ctx context.Context) {
	today := pgrealtime.PartitionName(d.now)
	if !d.partition {
		d.add("partition", true, "realtime.messages is not partitioned: no daily partition is needed", "")
		return
	}
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		d.add("partition", false, err.Error(), "")
		return
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, `INSERT INTO "realtime"."messages" ("id","topic","extension","updated_at","inserted_at") VALUES (gen_random_uuid(),$1,'broadcast',$2,$2)`,
		d.o.Topic, d.now)
	switch sqlState(err) {
	case "":
		d.add("partition", true, fmt.Sprintf("a partition of realtime.messages holds today's rows (Supabase names it realtime.%s)", today), "")
	case "23514":
		d.add("partition", false, fmt.Sprintf("no partition of realtime.messages holds today's rows (realtime.%s is missing): private joins fail with "+
			"\"MissingPartition: Realtime was unable to find the expected messages partition\" and realtime.send loses its messages (WarnSendingBroadcastMessage)", today),
			pgrealtime.PartitionSQL(d.now)+" — or run `rtm serve --db <url>`, which creates yesterday's to three days ahead and keeps them fresh")
	case "42501":
		d.add("partition", false, fmt.Sprintf("user %q may not insert the probe rows into realtime.messages (%s): Realtime's own user inserts them bypassing row-level security",
			d.user, errText(err)), "connect as a superuser (postgres), the table's owner or a role WITH BYPASSRLS")
	default:
		d.add("partition", false, "inserting a probe row failed: "+errText(err), "")
	}
}

func (d *run) rls(ctx context.Context) {
	var on bool
	if err := d.conn.QueryRow(ctx, `select relrowsecurity from pg_class where oid = 'realtime.messages'::regclass`).Scan(&on); err != nil {
		d.add("row-level security", false, err.Error(), "")
		return
	}
	if !on {
		d.add("row-level security", false, "row-level security is off on realtime.messages: no policy runs, so every role with the table's grants "+
			"may read and write every private channel (on Supabase it is on)", "alter table realtime.messages enable row level security")
		return
	}
	d.add("row-level security", true, "enabled on realtime.messages: the policies decide", "")
}

// identityCheck resolves a user of auth.users and checks that the role
// exists and that the connecting user may act as it.
func (d *run) identityCheck(ctx context.Context) bool {
	if d.who.from == "auth.users" {
		if err := d.lookupUser(ctx); err != nil {
			d.add("identity", false, err.Error(), "give --as authenticated:<user id>, or --jwt with the user's token")
			return false
		}
	}
	var exists, member bool
	err := d.conn.QueryRow(ctx, `select r.oid is not null, coalesce((select rolbypassrls or rolsuper from pg_roles where oid = r.oid), false),
			r.oid is not null and pg_has_role(current_user, r.oid, 'MEMBER')
		from (select (select oid from pg_roles where rolname = $1) as oid) r`, d.who.role).Scan(&exists, &d.bypass, &member)
	who := fmt.Sprintf("role %q, sub %q, claims %s, from %s", d.who.role, d.who.sub, d.who.claims, d.who.from)
	switch {
	case err != nil:
		d.add("identity", false, err.Error(), "")
		return false
	case !exists:
		d.add("identity", false, fmt.Sprintf("role %q does not exist: Realtime's set_config('role') fails and every check of its channels errors (%s)", d.who.role, who),
			fmt.Sprintf("create role %s nologin; grant usage on schema realtime to %[1]s; grant select, insert, update on realtime.messages to %[1]s", quoteIdent(d.who.role)))
		return false
	case !member:
		d.add("identity", false, fmt.Sprintf("user %q may not act as %q, so its policies cannot be checked (%s)", d.user, d.who.role, who),
			fmt.Sprintf("grant %s to %s (Supabase's postgres user may act as every API role)", quoteIdent(d.who.role), quoteIdent(d.user)))
		return false
	}
	d.roleOK = true
	if d.who.expired != "" {
		d.add("identity", false, d.who.expired+" ("+who+")", "refresh the token (supabase.realtime.setAuth) before joining; the checks below use its claims anyway")
		return true
	}
	d.add("identity", true, who, "")
	return true
}

func (d *run) grants(ctx context.Context) {
	var usage, sel, ins bool
	err := d.conn.QueryRow(ctx, `select has_schema_privilege($1, 'realtime', 'USAGE'), has_table_privilege($1, 'realtime.messages', 'SELECT'),
		has_table_privilege($1, 'realtime.messages', 'INSERT')`, d.who.role).Scan(&usage, &sel, &ins)
	if err != nil {
		d.add("grants", false, err.Error(), "")
		return
	}
	var missing []string
	if !usage {
		missing = append(missing, "usage on schema realtime")
	}
	if !sel {
		missing = append(missing, "select on realtime.messages")
	}
	if !ins {
		missing = append(missing, "insert on realtime.messages")
	}
	if len(missing) > 0 {
		d.add("grants", false, fmt.Sprintf("%q lacks %s: its checks fail with \"permission denied\" whatever the policies say", d.who.role, strings.Join(missing, ", ")),
			fmt.Sprintf("grant usage on schema realtime to %s; grant select, insert, update on realtime.messages to %[1]s", quoteIdent(d.who.role)))
		return
	}
	d.add("grants", true, fmt.Sprintf("%q has usage on schema realtime, select and insert on realtime.messages", d.who.role), "")
}

// policy is a row of pg_policies on realtime.messages.
type policy struct {
	name, cmd, permissive string
	roles                 []string
	using, check          string
	// applies is set when the policy is for the identity's role (one of
	// its roles is public or a role the identity is a member of).
	applies bool
}

func (p policy) String() string {
	s := fmt.Sprintf("%q (%s to %s", p.name, p.cmd, strings.Join(p.roles, ", "))
	if p.permissive == "RESTRICTIVE" {
		s += ", RESTRICTIVE"
	}
	if p.using != "" {
		s += " USING " + p.using
	}
	if p.check != "" {
		s += " WITH CHECK " + p.check
	}
	return s + ")"
}

// reads reports whether the policy takes part in cmd's check.
func (p policy) covers(cmd string) bool { return p.cmd == cmd || p.cmd == "ALL" }

// maxPolicies bounds the policies listed.
const maxPolicies = 100

func (d *run) policyList(ctx context.Context) {
	rows, err := d.conn.Query(ctx, `select policyname::text, cmd, permissive, roles::text[], coalesce(qual, ''), coalesce(with_check, ''),
			exists (select 1 from unnest(roles) r where case when r = 'public' then true else pg_has_role($1, r, 'MEMBER') end)
		from pg_policies where schemaname = 'realtime' and tablename = 'messages' order by policyname limit $2`, d.who.role, maxPolicies)
	if err != nil {
		d.add("policies", false, err.Error(), "")
		return
	}
	d.policies, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy, error) {
		var p policy
		err := r.Scan(&p.name, &p.cmd, &p.permissive, &p.roles, &p.using, &p.check, &p.applies)
		return p, err
	})
	if err != nil {
		d.add("policies", false, err.Error(), "")
		return
	}
	var mine, others []string
	for _, p := range d.policies {
		if p.covers("SELECT") && p.permissive == "PERMISSIVE" {
			d.anySelect = true
		}
		if p.applies {
			mine = append(mine, p.String())
		} else {
			others = append(others, fmt.Sprintf("%q (%s to %s)", p.name, p.cmd, strings.Join(p.roles, ", ")))
		}
	}
	other := ""
	if len(others) > 0 {
		other = fmt.Sprintf("; for other roles, not %q: %s", d.who.role, strings.Join(others, "; "))
	}
	switch {
	case len(mine) > 0:
		d.add("policies", true, fmt.Sprintf("%d for %q: %s%s", len(mine), d.who.role, strings.Join(mine, "; "), other), "")
	case d.bypass:
		d.add("policies", true, fmt.Sprintf("none for %q, which bypasses row-level security%s", d.who.role, other), "")
	default:
		d.add("policies", false, fmt.Sprintf("no policy on realtime.messages is for %q: every check of its private channels is refused%s", d.who.role, other),
			readSQL(d.who.role, d.o.Topic, d.extensions())+" "+writeSQL(d.who.role, d.o.Topic, d.extensions()))
	}
}

// extensions are the extensions the fixes cover.
func (d *run) extensions() []string {
	if d.o.NoPresence {
		return []string{"broadcast"}
	}
	return []string{"broadcast", "presence"}
}

// policyCond is the documented policies' condition for the topic.
func policyCond(topic string, exts []string) string {
	q := make([]string, len(exts))
	for i, e := range exts {
		q[i] = quoteLiteral(e)
	}
	return fmt.Sprintf("(select realtime.topic()) = %s and realtime.messages.extension in (%s)", quoteLiteral(topic), strings.Join(q, ", "))
}

// readSQL is the documented SELECT policy, for role on topic.
func readSQL(role, topic string, exts []string) string {
	name := fmt.Sprintf("%s can read %s on %s", role, strings.Join(exts, " and "), topic)
	return fmt.Sprintf(`create policy %s on "realtime"."messages" for select to %s using ( %s );`,
		pgx.Identifier{name}.Sanitize(), quoteIdent(role), policyCond(topic, exts))
}

// writeSQL is the documented INSERT policy, for role on topic.
func writeSQL(role, topic string, exts []string) string {
	name := fmt.Sprintf("%s can send %s on %s", role, strings.Join(exts, " and "), topic)
	return fmt.Sprintf(`create policy %s on "realtime"."messages" for insert to %s with check ( %s );`,
		pgx.Identifier{name}.Sanitize(), quoteIdent(role), policyCond(topic, exts))
}

// errText is a PostgreSQL error's message and SQLSTATE, or err's text.
func errText(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	return err.Error()
}

// sqlState is a PostgreSQL error's SQLSTATE, "" for nil or another error.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "other"
	}
	return ""
}
