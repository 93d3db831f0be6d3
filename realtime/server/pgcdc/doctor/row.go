package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Rows answers the select-right check for one row at a time: may this
// subscriber see this row under row-level security, evaluated as
// Realtime does (role and request.jwt.claims set in a transaction)? The
// live comparison of identities (registry/compare, through package
// main) asks it for each postgres change one identity received and
// another did not. It holds one connection; calls are serialized.
type Rows struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// RowVerdict is the answer for one row and subscriber.
type RowVerdict struct {
	// Visible is true when the subscriber may select the row.
	Visible bool
	// Detail says what was checked and, when hidden, the table's
	// policies.
	Detail string
}

// OpenRows connects to the database at url.
func OpenRows(ctx context.Context, url string) (*Rows, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("doctor: connect to %s: %w", maskURL(url), err)
	}
	return &Rows{conn: conn}, nil
}

// Close closes the connection.
func (r *Rows) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn.Close(context.Background())
}

// Verdict tells whether role with claims (a JSON object; [ParseAs]
// makes both from Options.As's forms) may see the row of schema.table
// whose primary key values are in record (a postgres change's record or
// old_record). An error says the question could not be answered: no
// such table, no primary key in record, the row no longer exists.
func (r *Rows) Verdict(ctx context.Context, role, claims, schema, table string, record json.RawMessage) (RowVerdict, error) {
	if schema == "" {
		schema = "public"
	}
	var rec map[string]any
	if err := json.Unmarshal(record, &rec); err != nil || rec == nil {
		return RowVerdict{}, errors.New("doctor: the record is not a JSON object")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &run{who: subject{role: role, claims: claims}, schema: schema, table: table, conn: r.conn}
	err := d.conn.QueryRow(ctx, `select c.oid, c.relrowsecurity, coalesce((
			select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
			from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2[])
			where i.indrelid = c.oid and i.indisprimary), '{}')
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`, schema, table).Scan(&d.relid, &d.rls, &d.pk)
	if errors.Is(err, pgx.ErrNoRows) {
		return RowVerdict{}, fmt.Errorf("doctor: table %s does not exist", d.qualified())
	}
	if err != nil {
		return RowVerdict{}, fmt.Errorf("doctor: table %s: %w", d.qualified(), err)
	}
	if len(d.pk) == 0 {
		return RowVerdict{}, fmt.Errorf("doctor: %s has no primary key: a row cannot be named", d.qualified())
	}
	var conds, desc []string
	var args []any
	for i, c := range d.pk {
		v, ok := rec[c]
		if !ok {
			return RowVerdict{}, fmt.Errorf("doctor: the record has no %s (primary key of %s)", c, d.qualified())
		}
		s := fmt.Sprint(v)
		if f, ok := v.(float64); ok {
			s = fmt.Sprintf("%.0f", f)
			if float64(int64(f)) != f {
				s = fmt.Sprint(f)
			}
		}
		conds = append(conds, fmt.Sprintf("%s::text = $%d", quoteIdent(c), i+1))
		args = append(args, s)
		desc = append(desc, c+"="+s)
	}
	where := strings.Join(conds, " and ")
	row := strings.Join(desc, ", ")
	var exists bool
	if err := d.conn.QueryRow(ctx, fmt.Sprintf("select exists(select 1 from %s where %s)", d.qualified(), where), args...).Scan(&exists); err != nil {
		return RowVerdict{}, fmt.Errorf("doctor: read row %s: %w", row, err)
	}
	if !exists {
		return RowVerdict{}, fmt.Errorf("doctor: row %s of %s no longer exists: its visibility cannot be checked", row, d.qualified())
	}
	var priv bool
	if err := d.conn.QueryRow(ctx, "select has_table_privilege($1, $2::oid, 'SELECT')", role, d.relid).Scan(&priv); err != nil {
		return RowVerdict{}, fmt.Errorf("doctor: role %q: %w", role, err)
	}
	if !priv {
		return RowVerdict{Detail: fmt.Sprintf("role %q may not select from %s", role, d.qualified())}, nil
	}
	var visible bool
	err = d.asRole(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, fmt.Sprintf("select exists(select 1 from %s where %s)", d.qualified(), where), args...).Scan(&visible)
	})
	if err != nil {
		return RowVerdict{}, fmt.Errorf("doctor: check row %s as %q: %w", row, role, err)
	}
	if !visible {
		return RowVerdict{Detail: fmt.Sprintf("row-level security hides row %s of %s from %q with claims %s. Policies: %s",
			row, d.qualified(), role, claims, d.policyList(ctx))}, nil
	}
	return RowVerdict{Visible: true, Detail: fmt.Sprintf("%q with claims %s sees row %s of %s", role, claims, row, d.qualified())}, nil
}
