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
//
// Source files: doctor.go (Options, Run, Report), server.go (the checks
// of the server: connection, replication, slots, readiness), table.go
// (table, publication, replica identity, filter), role.go (the
// subscriber: role, SELECT right, policies) and row.go ([Rows]: the
// SELECT right for one given row, which the live comparison of
// identities asks for each postgres change one identity missed).
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// maskURL hides a URL's password and any other secret in it (a
// password= parameter, a key).
func maskURL(s string) string { return mask.URL(s) }
