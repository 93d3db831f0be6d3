package pgcdc

import (
	"context"
	"strings"
	"time"
)

// Insert is one inserted row of a feed opened with [Config].Inserts.
// Its values alias the feed's buffers only for the call: copy what is
// kept.
type Insert struct {
	// Schema and Table name the relation as the stream names it (a
	// partition of a partitioned table: "messages_2026_12_07").
	Schema, Table string
	// CommitTime is the transaction's commit time.
	CommitTime time.Time

	ri  *relInfo
	row []value
}

// Value returns the column's value as PostgreSQL prints it (jsonb as
// JSON text, bytea as \x hex, boolean as t or f), and false when the
// column is NULL or absent.
func (in Insert) Value(column string) ([]byte, bool) {
	if in.ri == nil {
		return nil, false
	}
	i, ok := in.ri.colIdx[column]
	if !ok || i >= len(in.row) || in.row[i].kind != valText {
		return nil, false
	}
	return in.row[i].data, true
}

// insert hands an INSERT to Config.Inserts.
func (d *dispatcher) insert(ch *change) {
	if ch.typ != "INSERT" {
		return
	}
	ri := d.rels[ch.rel.id]
	if ri == nil {
		d.f.log.Error("Insert for an unknown relation", "relid", ch.rel.id)
		return
	}
	d.f.stats.deliveries.Add(1)
	d.f.cfg.Inserts(Insert{Schema: ri.rel.namespace, Table: ri.rel.name, CommitTime: ch.commitTime, ri: ri, row: ch.newRow})
}

// checkPublicationTable warns when an existing publication does not
// publish Config.Table: its rows would never arrive.
func (f *Feed) checkPublicationTable(ctx context.Context) {
	if f.cfg.Table == "" {
		return
	}
	var ok bool
	err := f.pool.QueryRow(ctx, `select p.puballtables or exists (select 1 from pg_publication_rel r
		where r.prpubid = p.oid and r.prrelid = to_regclass($2))
		from pg_publication p where p.pubname = $1`, f.cfg.Publication, f.cfg.Table).Scan(&ok)
	if err == nil && !ok {
		f.log.Warn("The publication does not publish the table: its rows are not streamed",
			"publication", f.cfg.Publication, "table", f.cfg.Table,
			"fix", "ALTER PUBLICATION "+quoteIdent(f.cfg.Publication)+" ADD TABLE "+quoteQualified(f.cfg.Table))
	}
}

// quoteQualified quotes a "schema.name" (or "name") identifier.
func quoteQualified(name string) string {
	schema, rel, ok := strings.Cut(name, ".")
	if !ok {
		return quoteIdent(name)
	}
	return quoteIdent(schema) + "." + quoteIdent(rel)
}
