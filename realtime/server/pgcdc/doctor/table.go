package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"rtm/realtime/server/pgcdc"
)

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
