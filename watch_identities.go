package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"rtm/realtime/server/pgcdc/doctor"
	"rtm/registry/compare"
	"rtm/registry/headless"
	"rtm/registry/target"
)

// identityFlags are `rtm watch`'s identities side by side: with two or
// more identities (--as given twice, --role, or --as with --jwt), watch
// connects once per identity, tags every line with "identity" and
// writes `compare` lines (package registry/compare).
type identityFlags struct {
	Role    []string      `help:"Also watch as this role (anon, authenticated, service_role; repeatable), side by side with the --as identities."`
	Window  time.Duration `name:"compare-window" default:"5s" help:"With several identities: how long a message one received waits for the others before a compare line says who missed it."`
	CmpDB   string        `name:"compare-db" help:"With several identities: the database (rtm serve --db's) whose row-level security explains the postgres changes one identity missed (\"filtered by RLS\")."`
	Private []string      `name:"join-private" help:"Channel to join as a private channel (repeatable; with several identities)."`
}

// identities returns the target flags to open (without the identity
// flags when they make several identities) and the identities, nil for
// the single identity of the target flags.
func (f identityFlags) identities(tf targetFlags) (targetFlags, []headless.Identity, error) {
	var jwts []string
	if tf.JWT != "" {
		jwts = []string{tf.JWT}
	}
	if len(tf.As)+len(f.Role)+len(jwts) < 2 && len(f.Role) == 0 {
		if len(f.Private) > 0 {
			return tf, nil, fmt.Errorf("%w: --join-private is for several identities (use --private)", headless.ErrInvalid)
		}
		return tf, nil, nil
	}
	specs, err := target.ParseIdentities(tf.As, f.Role, jwts)
	if err != nil {
		return tf, nil, fmt.Errorf("%w: %w", headless.ErrInvalid, err)
	}
	ids := make([]headless.Identity, len(specs))
	for i, s := range specs {
		ids[i] = headless.IdentityOf(s)
	}
	tf.As, tf.JWT = nil, ""
	return tf, ids, nil
}

// compareOptions sets o.Compare (window, the RLS verdicts of
// --compare-db) and o.PrivateJoins; the returned func closes the
// database connection.
func (f identityFlags) compareOptions(ctx context.Context, o *headless.StreamOptions) (func(), error) {
	none := func() {}
	names, err := headless.ParseNames("--join-private", f.Private)
	if err != nil {
		return none, err
	}
	o.PrivateJoins = names
	if len(o.Identities) == 0 {
		return none, nil
	}
	o.Compare = &compare.Options{Window: f.Window}
	if f.CmpDB == "" {
		return none, nil
	}
	rows, err := doctor.OpenRows(ctx, f.CmpDB)
	if err != nil {
		return none, fmt.Errorf("%w: --compare-db: %w", headless.ErrInvalid, err)
	}
	o.Compare.Rows = rlsRows{rows}
	return func() { _ = rows.Close() }, nil
}

// rlsRows adapts the postgres_changes doctor's single-row verdict to
// compare.RowChecker.
type rlsRows struct{ r *doctor.Rows }

// RowVerdict implements compare.RowChecker: the identity's claims (its
// token's, or its role and subject) decide.
func (x rlsRows) RowVerdict(ctx context.Context, who compare.Identity, schema, table string, record json.RawMessage) (compare.Verdict, error) {
	role, claims := who.Role, string(who.Claims)
	if role == "" {
		role = "anon"
	}
	if claims == "" {
		b, _ := json.Marshal(map[string]string{"role": role, "sub": who.User})
		claims = string(b)
	}
	v, err := x.r.Verdict(ctx, role, claims, schema, table, record)
	if err != nil {
		return compare.Verdict{}, err
	}
	return compare.Verdict{Visible: v.Visible, Detail: v.Detail}, nil
}
