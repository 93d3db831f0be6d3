package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"rtm/realtime/server/pgcdc"
)

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
