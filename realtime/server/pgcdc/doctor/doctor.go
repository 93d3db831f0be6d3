// Package doctor answers "why do my postgres_changes not arrive?" for one
// table: it checks, against the real database, everything Supabase
// Realtime's change feed needs, and reports one line per check, green or
// red, with the fix.
//
// Checks, in order: the connection and wal_level; the REPLICATION right
// and free slots; the table; publication membership (and the published
// operations); replica identity (what old_record will hold); the filter
// (syntax, operators, columns, value types); the role (exists, the
// server's user may act as it); the role's SELECT right on a sample row
// under row-level security, evaluated as Realtime does (role and
// request.jwt.claims set in a transaction); policies that raise; the lag
// of the database's replication slots; and the readiness message (seen
// by the caller's channel, or proven here through a temporary slot).
package doctor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"rtm/realtime/mask"
	"rtm/realtime/server/pgcdc"
)

// Options say what to check.
type Options struct {
	// URL is the database URL (required).
	URL string
	// Table is "schema.table" or "table" (schema public). Required.
	Table string
	// As is who subscribes: a role name ("anon", "authenticated"), a
	// role and a subject "authenticated:<user id>", or a JWT whose claims
	// are used as they are (not verified). Default "anon".
	As string
	// Filter is the binding's filter ("id=eq.1"), if any.
	Filter string
	// Event is INSERT, UPDATE, DELETE or "*" (default).
	Event string
	// Publication defaults to "supabase_realtime".
	Publication string
	// MaxSlotLag is the retained WAL above which a slot is reported.
	// Default 64 MiB.
	MaxSlotLag int64
	// ReadySeen, when set, is whether the caller's channel received
	// "Subscribed to PostgreSQL"; nil proves the stream here instead.
	ReadySeen *bool
	// Timeout bounds the whole run. Default 20 s.
	Timeout time.Duration
}

// Check is the outcome of one check.
type Check struct {
	// Name is short ("publication"); Detail says what was found; Fix
	// what to do when OK is false (or to get more, when OK).
	Name, Detail, Fix string
	OK                bool
}

// Report is the outcome of a run.
type Report struct {
	Checks []Check
}

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Find returns the check named name.
func (r Report) Find(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Write prints one line per check: a green ✓ or a red ✗, the name, the
// detail and, for failures, the fix. color false prints no escape codes.
func (r Report) Write(w io.Writer, color bool) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	for _, c := range r.Checks {
		mark, on, off := "✓", "", ""
		if !c.OK {
			mark = "✗"
		}
		if color {
			on, off = "\x1b[32m", "\x1b[0m"
			if !c.OK {
				on = "\x1b[31m"
			}
		}
		line := fmt.Sprintf("%s%s%s %-*s  %s", on, mark, off, width, c.Name, c.Detail)
		if c.Fix != "" && !c.OK {
			line += " — fix: " + c.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// subject is who subscribes.
type subject struct {
	role   string
	claims string // JSON
}

// parseAs reads Options.As.
func parseAs(as string) (subject, error) {
	as = strings.TrimSpace(as)
	if as == "" {
		as = "anon"
	}
	if parts := strings.Split(as, "."); len(parts) == 3 && strings.HasPrefix(as, "eyJ") {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err != nil {
			return subject{}, fmt.Errorf("--as: the token's claims are not base64url: %w", err)
		}
		var claims map[string]any
		if err := json.Unmarshal(raw, &claims); err != nil {
			return subject{}, fmt.Errorf("--as: the token's claims are not a JSON object: %w", err)
		}
		role, _ := claims["role"].(string)
		if role == "" {
			return subject{}, errors.New("--as: the token has no role claim")
		}
		return subject{role: role, claims: string(raw)}, nil
	}
	role, sub, hasSub := strings.Cut(as, ":")
	claims := map[string]any{"role": role}
	if hasSub {
		claims["sub"] = sub
	}
	b, _ := json.Marshal(claims)
	return subject{role: role, claims: string(b)}, nil
}

// Run runs every check. It returns an error only for bad options; a
// database that cannot be reached is a red check.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.URL == "" || o.Table == "" {
		return Report{}, errors.New("doctor: a database URL and a table are required")
	}
	who, err := parseAs(o.As)
	if err != nil {
		return Report{}, err
	}
	if o.Publication == "" {
		o.Publication = pgcdc.DefaultPublication
	}
	if o.MaxSlotLag <= 0 {
		o.MaxSlotLag = 64 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	schema, table, ok := strings.Cut(o.Table, ".")
	if !ok {
		schema, table = "public", o.Table
	}
	d := &run{o: o, who: who, schema: schema, table: table}
	d.all(ctx)
	return Report{Checks: d.checks}, nil
}

type run struct {
	o             Options
	who           subject
	schema, table string
	conn          *pgx.Conn
	checks        []Check
	relid         uint32
	pk            []string
	rls           bool
}

func (d *run) add(name string, ok bool, detail, fix string) {
	d.checks = append(d.checks, Check{Name: name, OK: ok, Detail: detail, Fix: fix})
}

func (d *run) qualified() string { return quoteIdent(d.schema) + "." + quoteIdent(d.table) }

func (d *run) all(ctx context.Context) {
	if !d.connect(ctx) {
		return
	}
	defer d.conn.Close(context.Background())
	d.replication(ctx)
	if !d.tableCheck(ctx) {
		return
	}
	d.publication(ctx)
	d.replicaIdentity(ctx)
	d.filter(ctx)
	if d.role(ctx) {
		d.selectRight(ctx)
		d.policies(ctx)
	}
	d.slots(ctx)
	d.readiness(ctx)
}

func (d *run) connect(ctx context.Context) bool {
	cfg, err := pgx.ParseConfig(d.o.URL)
	if err != nil {
		d.add("connection", false, "the database URL does not parse: "+err.Error(), "give a URL like postgres://user:password@host:5432/db")
		return false
	}
	cfg.RuntimeParams["application_name"] = "rtm doctor"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	d.conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		d.add("connection", false, fmt.Sprintf("cannot connect to %s: %v", maskURL(d.o.URL), err), "check the URL, the password and that the server accepts connections")
		return false
	}
	var version, wal string
	if err := d.conn.QueryRow(ctx, "select current_setting('server_version'), current_setting('wal_level')").Scan(&version, &wal); err != nil {
		d.add("connection", false, err.Error(), "")
		return false
	}
	if wal != "logical" {
		d.add("connection", false, fmt.Sprintf("PostgreSQL %s with wal_level=%s: logical replication is off", version, wal),
			"ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
		return true
	}
	d.add("connection", true, fmt.Sprintf("PostgreSQL %s, wal_level=logical", version), "")
	return true
}

func (d *run) replication(ctx context.Context) {
	var user string
	var repl bool
	var free, max int
	err := d.conn.QueryRow(ctx, `select current_user, (select rolreplication or rolsuper from pg_roles where rolname = current_user),
		current_setting('max_replication_slots')::int - (select count(*) from pg_replication_slots),
		current_setting('max_replication_slots')::int`).Scan(&user, &repl, &free, &max)
	switch {
	case err != nil:
		d.add("replication", false, err.Error(), "")
	case !repl:
		d.add("replication", false, fmt.Sprintf("user %q may not start replication", user), fmt.Sprintf("ALTER ROLE %s WITH REPLICATION", quoteIdent(user)))
	case free <= 0:
		d.add("replication", false, fmt.Sprintf("all %d replication slots are taken", max),
			"drop unused slots (select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active) or raise max_replication_slots")
	default:
		d.add("replication", true, fmt.Sprintf("user %q may replicate; %d of %d slots free", user, free, max), "")
	}
}

func (d *run) tableCheck(ctx context.Context) bool {
	err := d.conn.QueryRow(ctx, `select c.oid, c.relrowsecurity, coalesce((
			select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
			from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2[])
			where i.indrelid = c.oid and i.indisprimary), '{}')
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`, d.schema, d.table).Scan(&d.relid, &d.rls, &d.pk)
	if errors.Is(err, pgx.ErrNoRows) {
		d.add("table", false, fmt.Sprintf("table %s does not exist", d.qualified()), "check the schema and table names (case-sensitive)")
		return false
	}
	if err != nil {
		d.add("table", false, err.Error(), "")
		return false
	}
	detail := fmt.Sprintf("%s exists", d.qualified())
	if d.rls {
		detail += ", row-level security on"
	}
	d.add("table", true, detail, "")
	return true
}

func (d *run) publication(ctx context.Context) {
	pub := d.o.Publication
	var ins, upd, del bool
	err := d.conn.QueryRow(ctx, "select pubinsert, pubupdate, pubdelete from pg_publication where pubname = $1", pub).Scan(&ins, &upd, &del)
	if errors.Is(err, pgx.ErrNoRows) {
		d.add("publication", false, fmt.Sprintf("publication %q does not exist", pub),
			fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", quoteIdent(pub), d.qualified()))
		return
	}
	if err != nil {
		d.add("publication", false, err.Error(), "")
		return
	}
	var in bool
	if err := d.conn.QueryRow(ctx, "select exists(select 1 from pg_publication_tables where pubname = $1 and schemaname = $2 and tablename = $3)",
		pub, d.schema, d.table).Scan(&in); err != nil {
		d.add("publication", false, err.Error(), "")
		return
	}
	if !in {
		d.add("publication", false, fmt.Sprintf("%s is not in publication %q: no change of it is streamed", d.qualified(), pub),
			fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", quoteIdent(pub), d.qualified()))
		return
	}
	var missing []string
	for _, op := range []struct {
		on   bool
		name string
	}{{ins, "insert"}, {upd, "update"}, {del, "delete"}} {
		if !op.on {
			missing = append(missing, op.name)
		}
	}
	if len(missing) > 0 {
		d.add("publication", false, fmt.Sprintf("%s is in %q, which does not publish %s", d.qualified(), pub, strings.Join(missing, ", ")),
			fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete')", quoteIdent(pub)))
		return
	}
	d.add("publication", true, fmt.Sprintf("%s is in %q (insert, update, delete)", d.qualified(), pub), "")
}

func (d *run) replicaIdentity(ctx context.Context) {
	var ident string
	if err := d.conn.QueryRow(ctx, "select relreplident::text from pg_class where oid = $1", d.relid).Scan(&ident); err != nil {
		d.add("replica identity", false, err.Error(), "")
		return
	}
	full := fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", d.qualified())
	switch {
	case ident == "f":
		d.add("replica identity", true, "FULL: old_record holds the whole old row", "")
	case ident == "n":
		d.add("replica identity", false, "NOTHING: UPDATE and DELETE on the table fail while it is published, and old_record is empty", full)
	case ident == "d" && len(d.pk) == 0:
		d.add("replica identity", false, "DEFAULT without a primary key: UPDATE and DELETE fail while the table is published, and Realtime sends \"Error 400: Bad Request, no primary key\"",
			fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (...), or %s", d.qualified(), full))
	case ident == "i":
		d.add("replica identity", true, "USING INDEX: old_record holds the index's columns", "for whole old rows: "+full)
	default:
		d.add("replica identity", true, fmt.Sprintf("DEFAULT: old_record holds the primary key only (%s)", strings.Join(d.pk, ", ")),
			"for old values in UPDATE and DELETE: "+full)
	}
}

func (d *run) filter(ctx context.Context) {
	if strings.TrimSpace(d.o.Filter) == "" {
		d.add("filter", true, "no filter: every row of the table", "")
		return
	}
	p, err := pgcdc.ValidateBinding(ctx, d.conn, d.o.Publication, pgcdc.Binding{Event: d.o.Event, Schema: d.schema, Table: d.table, Filter: d.o.Filter})
	switch {
	case err != nil:
		d.add("filter", false, err.Error(), "")
		return
	case p != nil && strings.Contains(p.Reason, "publication"):
		// Reported by the publication check; the filter itself may be fine.
	case p != nil:
		d.add("filter", false, p.Reason, p.Fix)
		return
	}
	conds, _ := pgcdc.ParseFilter(d.o.Filter)
	ev := strings.ToUpper(d.o.Event)
	if ev == "DELETE" || ev == "*" || ev == "" {
		var ident string
		_ = d.conn.QueryRow(ctx, "select relreplident::text from pg_class where oid = $1", d.relid).Scan(&ident)
		if ident != "f" {
			var outside []string
			for _, c := range conds {
				if !slices.Contains(d.pk, c.Column) {
					outside = append(outside, c.Column)
				}
			}
			if len(outside) > 0 {
				ok := ev != "DELETE"
				d.add("filter", ok, fmt.Sprintf("%q is valid, but DELETEs are filtered on the old row, which only has the primary key: a filter on %s never matches a DELETE",
					d.o.Filter, strings.Join(outside, ", ")), fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", d.qualified()))
				return
			}
		}
	}
	d.add("filter", true, fmt.Sprintf("%q is valid for %s", d.o.Filter, d.qualified()), "")
}

func (d *run) role(ctx context.Context) bool {
	var exists, member bool
	err := d.conn.QueryRow(ctx, `select r.oid is not null, r.oid is not null and pg_has_role(current_user, r.oid, 'MEMBER')
		from (select (select oid from pg_roles where rolname = $1) as oid) r`, d.who.role).Scan(&exists, &member)
	switch {
	case err != nil:
		d.add("role", false, err.Error(), "")
		return false
	case !exists:
		d.add("role", false, fmt.Sprintf("role %q does not exist: every change is refused to its subscribers", d.who.role),
			fmt.Sprintf("CREATE ROLE %s NOLOGIN; GRANT SELECT ON %s TO %s", quoteIdent(d.who.role), d.qualified(), quoteIdent(d.who.role)))
		return false
	case !member:
		d.add("role", false, fmt.Sprintf("the connecting user may not act as %q, so row-level security cannot be checked as it", d.who.role),
			fmt.Sprintf("GRANT %s TO <the server's user>", quoteIdent(d.who.role)))
		return false
	}
	d.add("role", true, fmt.Sprintf("%q with claims %s", d.who.role, d.who.claims), "")
	return true
}

// asRole runs fn in a transaction acting as the subscriber, as Realtime
// checks visibility, and rolls it back.
func (d *run) asRole(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)", d.who.role, d.who.claims); err != nil {
		return err
	}
	return fn(tx)
}

func (d *run) selectRight(ctx context.Context) {
	var tablePriv bool
	if err := d.conn.QueryRow(ctx, "select has_table_privilege($1, $2::oid, 'SELECT')", d.who.role, d.relid).Scan(&tablePriv); err != nil {
		d.add("select right", false, err.Error(), "")
		return
	}
	var pkOK = true
	for _, c := range d.pk {
		var ok bool
		if err := d.conn.QueryRow(ctx, "select has_column_privilege($1, $2::oid, $3, 'SELECT')", d.who.role, d.relid, c).Scan(&ok); err == nil && !ok {
			pkOK = false
		}
	}
	grant := fmt.Sprintf("GRANT SELECT ON %s TO %s", d.qualified(), quoteIdent(d.who.role))
	if !tablePriv && !pkOK {
		d.add("select right", false, fmt.Sprintf("role %q may not select from %s: its subscribers get \"Error 401: Unauthorized\" and no row", d.who.role, d.qualified()), grant)
		return
	}
	if len(d.pk) == 0 {
		d.add("select right", true, "no primary key: a row cannot be sampled (see replica identity)", "")
		return
	}
	// A sample row, read as the server's user: the first matching the
	// filter when it can be written in SQL, else the first.
	cols := make([]string, len(d.pk))
	for i, c := range d.pk {
		cols[i] = quoteIdent(c) + "::text"
	}
	where, args := filterSQL(d.o.Filter)
	var key []*string
	q := fmt.Sprintf("select array[%s] from %s%s limit 1", strings.Join(cols, ", "), d.qualified(), where)
	err := d.conn.QueryRow(ctx, q, args...).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) && where != "" {
		err = d.conn.QueryRow(ctx, fmt.Sprintf("select array[%s] from %s limit 1", strings.Join(cols, ", "), d.qualified())).Scan(&key)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		d.add("select right", true, fmt.Sprintf("role %q may select from %s; the table is empty, so no row was sampled", d.who.role, d.qualified()), "")
		return
	}
	if err != nil {
		d.add("select right", false, "cannot read a sample row: "+err.Error(), "")
		return
	}
	var conds []string
	var keyArgs []any
	var desc []string
	for i, c := range d.pk {
		conds = append(conds, fmt.Sprintf("%s::text = $%d", quoteIdent(c), i+1))
		v := "NULL"
		if key[i] != nil {
			v = *key[i]
		}
		keyArgs = append(keyArgs, v)
		desc = append(desc, c+"="+v)
	}
	var visible bool
	err = d.asRole(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, fmt.Sprintf("select exists(select 1 from %s where %s)", d.qualified(), strings.Join(conds, " and ")), keyArgs...).Scan(&visible)
	})
	row := strings.Join(desc, ", ")
	if err != nil {
		d.add("select right", false, fmt.Sprintf("checking row %s as %q failed: %v", row, d.who.role, err), "see the policies check")
		return
	}
	if !visible {
		d.add("select right", false, fmt.Sprintf("row-level security hides row %s from %q with claims %s: changes of such rows are not delivered to it. Policies: %s",
			row, d.who.role, d.who.claims, d.policyList(ctx)),
			fmt.Sprintf("add or fix a SELECT policy for %s (CREATE POLICY ... ON %s FOR SELECT TO %s USING (...))", quoteIdent(d.who.role), d.qualified(), quoteIdent(d.who.role)))
		return
	}
	d.add("select right", true, fmt.Sprintf("%q sees sample row %s", d.who.role, row), "")
}

// filterSQL turns a filter into a WHERE clause and its arguments, to run
// with the simple protocol (the values become untyped literals that
// PostgreSQL reads as the columns' types), or "" when it does not parse.
func filterSQL(filter string) (string, []any) {
	conds, err := pgcdc.ParseFilter(filter)
	if err != nil || len(conds) == 0 {
		return "", nil
	}
	ops := map[string]string{"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
	var parts []string
	var args []any
	for _, c := range conds {
		col := quoteIdent(c.Column)
		if c.Op == "in" {
			var ph []string
			for _, v := range c.Values {
				args = append(args, v)
				ph = append(ph, fmt.Sprintf("$%d", len(args)))
			}
			parts = append(parts, fmt.Sprintf("%s in (%s)", col, strings.Join(ph, ", ")))
			continue
		}
		args = append(args, c.Values[0])
		parts = append(parts, fmt.Sprintf("%s %s $%d", col, ops[c.Op], len(args)))
	}
	return " where " + strings.Join(parts, " and "), append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
}

func (d *run) policyList(ctx context.Context) string {
	rows, err := d.conn.Query(ctx, `select policyname, cmd, roles::text, coalesce(qual, 'true') from pg_policies
		where schemaname = $1 and tablename = $2 order by policyname`, d.schema, d.table)
	if err != nil {
		return "(cannot list: " + err.Error() + ")"
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, cmd, roles, qual string
		if rows.Scan(&name, &cmd, &roles, &qual) == nil {
			out = append(out, fmt.Sprintf("%s (%s to %s: %s)", name, cmd, roles, qual))
		}
	}
	if len(out) == 0 {
		return "none (with row-level security on and no policy, nobody but the owner sees a row)"
	}
	return strings.Join(out, "; ")
}

func (d *run) policies(ctx context.Context) {
	if !d.rls {
		d.add("policies", true, "row-level security is off: no policy runs", "")
		return
	}
	var n int
	err := d.asRole(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, fmt.Sprintf("select count(*) from (select * from %s limit 1000) x", d.qualified())).Scan(&n)
	})
	if err != nil {
		msg := err.Error()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			msg = pgErr.Message
			if pgErr.Code == "42501" {
				d.add("policies", true, "not evaluated: the role may not select (see select right)", "")
				return
			}
		}
		d.add("policies", false, fmt.Sprintf("a policy raised when %q read the table: %s. In Supabase Realtime a raising policy stops the change feed for every subscriber of the table; rtm reports it to that subscriber only. Policies: %s",
			d.who.role, msg, d.policyList(ctx)), "make the policy return false instead of raising for such rows and claims")
		return
	}
	d.add("policies", true, fmt.Sprintf("no policy raised for %q (%d visible rows read)", d.who.role, n), "")
}

func (d *run) slots(ctx context.Context) {
	rows, err := d.conn.Query(ctx, `select slot_name, active, temporary,
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn)), 0)::int8
		from pg_replication_slots where database = current_database() order by 4 desc`)
	if err != nil {
		d.add("replication slots", false, err.Error(), "")
		return
	}
	defer rows.Close()
	var lagging, all []string
	for rows.Next() {
		var name string
		var active, temp bool
		var lag int64
		if err := rows.Scan(&name, &active, &temp, &lag); err != nil {
			d.add("replication slots", false, err.Error(), "")
			return
		}
		state := "active"
		if !active {
			state = "inactive"
		}
		s := fmt.Sprintf("%s (%s, %s behind)", name, state, bytesText(lag))
		all = append(all, s)
		if lag > d.o.MaxSlotLag {
			lagging = append(lagging, s)
		}
	}
	if err := rows.Err(); err != nil {
		d.add("replication slots", false, err.Error(), "")
		return
	}
	switch {
	case len(lagging) > 0:
		d.add("replication slots", false, fmt.Sprintf("slots retain more than %s of WAL: %s (a lagging consumer delivers late; an abandoned slot fills the disk)",
			bytesText(d.o.MaxSlotLag), strings.Join(lagging, ", ")),
			"if a slot is abandoned: select pg_drop_replication_slot('<name>')")
	case len(all) == 0:
		d.add("replication slots", true, "no slot in this database (Realtime creates its own)", "")
	default:
		d.add("replication slots", true, "within "+bytesText(d.o.MaxSlotLag)+": "+strings.Join(all, ", "), "")
	}
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (d *run) readiness(ctx context.Context) {
	if d.o.ReadySeen != nil {
		if *d.o.ReadySeen {
			d.add("readiness", true, "the channel received \"Subscribed to PostgreSQL\": changes committed since then are delivered", "")
		} else {
			d.add("readiness", false, "the channel has not received \"Subscribed to PostgreSQL\": changes committed before it are lost (SUBSCRIBED alone is not enough)",
				"wait for the system message before writing, and see the checks above")
		}
		return
	}
	took, err := pgcdc.Probe(ctx, d.o.URL, d.o.Publication)
	if err != nil {
		d.add("readiness", false, "a test stream through a temporary slot failed: "+err.Error(), "see the checks above")
		return
	}
	d.add("readiness", true, fmt.Sprintf("a readiness message went through a temporary slot and publication %q in %v", d.o.Publication, took.Round(time.Millisecond)), "")
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// maskURL hides a URL's password and any other secret in it (a
// password= parameter, a key).
func maskURL(s string) string { return mask.URL(s) }
