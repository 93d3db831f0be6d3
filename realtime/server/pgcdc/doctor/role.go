package doctor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// subject is who subscribes.
type subject struct {
	role   string
	claims string // JSON
}

// ParseAs reads an --as value as Options.As describes it: the role and
// the claims (a JSON object) the subscriber is checked with. A JWT's
// claims are decoded, not verified.
func ParseAs(as string) (role, claims string, err error) {
	s, err := parseAs(as)
	return s.role, s.claims, err
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
