package pgrealtime

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Partition retention, as Supabase Realtime's (lib/realtime/tenants.ex
// create_messages_partitions/1, Realtime.Messages.delete_old_messages/1).
const (
	// partitionsBehind and partitionsAhead: daily partitions from
	// yesterday to three days ahead (UTC).
	partitionsBehind = 1
	partitionsAhead  = 3
	// retention: partitions of days before (now − 72 h)::date are dropped.
	retention = 72 * time.Hour
)

// PartitionName is the name of the daily partition of realtime.messages
// that holds the rows of day (UTC): messages_YYYY_MM_DD.
func PartitionName(day time.Time) string {
	return "messages_" + day.UTC().Format("2006_01_02")
}

// PartitionSQL is the statement that creates the daily partition of day
// (UTC) when it is missing, as Supabase's create_messages_partitions/1.
func PartitionSQL(day time.Time) string {
	day = day.UTC().Truncate(24 * time.Hour)
	return fmt.Sprintf(`create table if not exists realtime.%s partition of realtime.messages for values from ('%s') to ('%s')`,
		PartitionName(day), day.Format(time.DateOnly), day.AddDate(0, 0, 1).Format(time.DateOnly))
}

// partitionDay reads a partition name back; ok is false for any other
// name (a user's own partition, which maintenance never touches).
func partitionDay(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, "messages_")
	if !ok || len(rest) != len("2006_01_02") {
		return time.Time{}, false
	}
	d, err := time.Parse("2006_01_02", rest)
	return d, err == nil
}

// Maintenance is what one partition run did.
type Maintenance struct {
	// Created and Dropped are partition names (realtime.messages_…).
	Created, Dropped []string
	// Skipped, when not "", is why nothing was done (realtime.messages
	// is missing or not partitioned: a user's own table).
	Skipped string
}

// MaintainPartitions creates the daily partitions of realtime.messages
// from yesterday to three days ahead of now (UTC) that are missing, and
// drops the daily partitions (named messages_YYYY_MM_DD) of days before
// (now − 72 h)::date, as Supabase's janitor does, under the bootstrap's
// advisory lock. Other partitions are left alone.
func MaintainPartitions(ctx context.Context, conn *pgx.Conn, now time.Time) (Maintenance, error) {
	var m Maintenance
	tx, err := conn.Begin(ctx)
	if err != nil {
		return m, fmt.Errorf("pgrealtime: partitions: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, bootstrapLock); err != nil {
		return m, fmt.Errorf("pgrealtime: partitions lock: %w", err)
	}
	var kind string
	err = tx.QueryRow(ctx, `select coalesce((select relkind::text from pg_class where oid = to_regclass('realtime.messages')), '')`).Scan(&kind)
	if err != nil {
		return m, fmt.Errorf("pgrealtime: partitions: %w", err)
	}
	switch kind {
	case "p":
	case "":
		m.Skipped = "realtime.messages does not exist"
		return m, nil
	default:
		m.Skipped = "realtime.messages is not a partitioned table"
		return m, nil
	}
	rows, err := tx.Query(ctx, `select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
		where i.inhparent = 'realtime.messages'::regclass`)
	if err != nil {
		return m, fmt.Errorf("pgrealtime: listing partitions: %w", err)
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return m, fmt.Errorf("pgrealtime: listing partitions: %w", err)
	}
	have := make(map[string]bool, len(existing))
	for _, n := range existing {
		have[n] = true
	}
	today := now.UTC().Truncate(24 * time.Hour)
	for d := -partitionsBehind; d <= partitionsAhead; d++ {
		day := today.AddDate(0, 0, d)
		name := PartitionName(day)
		if have[name] {
			continue
		}
		if _, err := tx.Exec(ctx, PartitionSQL(day)); err != nil {
			return m, fmt.Errorf("pgrealtime: creating partition %s: %w", name, err)
		}
		m.Created = append(m.Created, "realtime."+name)
	}
	cutoff := now.UTC().Add(-retention).Truncate(24 * time.Hour)
	sort.Strings(existing)
	for _, name := range existing {
		if day, ok := partitionDay(name); ok && day.Before(cutoff) {
			if _, err := tx.Exec(ctx, `drop table if exists realtime.`+pgx.Identifier{name}.Sanitize()); err != nil {
				return m, fmt.Errorf("pgrealtime: dropping partition %s: %w", name, err)
			}
			m.Dropped = append(m.Dropped, "realtime."+name)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return m, fmt.Errorf("pgrealtime: partitions commit: %w", err)
	}
	return m, nil
}
