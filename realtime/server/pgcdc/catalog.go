package pgcdc

import (
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

type tableMeta struct {
	at  time.Time
	rls bool
	pk  []string
	err error
}

type roleKey struct {
	role  string
	relid uint32
}

type roleMeta struct {
	at   time.Time
	cols map[string]bool // selectable columns
	err  error
}

// addRelation records a relation and resolves its column types.
func (d *dispatcher) addRelation(rel *relation) {
	ri := &relInfo{rel: rel, colIdx: make(map[string]int, len(rel.columns)), types: make([]*pgType, len(rel.columns))}
	for i, c := range rel.columns {
		ri.colIdx[c.name] = i
	}
	var missing []uint32
	for _, c := range rel.columns {
		if d.types[c.typeOID] == nil {
			missing = append(missing, c.typeOID)
		}
	}
	if len(missing) > 0 {
		if err := d.loadTypes(missing); err != nil {
			d.f.log.Warn("Cannot resolve column types", "table", rel.namespace+"."+rel.name, "err", err)
		}
	}
	for i, c := range rel.columns {
		ri.types[i] = d.types[c.typeOID]
		if ri.types[i] == nil {
			ri.types[i] = &pgType{oid: c.typeOID, name: "unknown"}
		}
	}
	d.rels[rel.id] = ri
	delete(d.tables, rel.id) // DDL may have changed it
}

// loadTypes reads pg_type rows (and array element types).
func (d *dispatcher) loadTypes(oids []uint32) error {
	conn, err := d.db()
	if err != nil {
		return err
	}
	type row struct {
		oid, elem uint32
		name      string
		delim     string
	}
	var rows []row
	for round := 0; round < 2 && len(oids) > 0; round++ {
		ctx, cancel := d.ctx()
		rs, err := conn.Query(ctx, "select oid, typname, typelem, typdelim::text from pg_type where oid = any($1)", oids)
		if err != nil {
			cancel()
			return err
		}
		oids = nil
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.oid, &r.name, &r.elem, &r.delim); err != nil {
				rs.Close()
				cancel()
				return err
			}
			rows = append(rows, r)
			if r.elem != 0 && strings.HasPrefix(r.name, "_") && d.types[r.elem] == nil {
				oids = append(oids, r.elem)
			}
		}
		rs.Close()
		cancel()
		if err := rs.Err(); err != nil {
			return err
		}
	}
	// Elements first, then arrays that point at them.
	for _, r := range rows {
		if !(r.elem != 0 && strings.HasPrefix(r.name, "_")) {
			d.types[r.oid] = &pgType{oid: r.oid, name: r.name, kind: kindOf(r.name)}
		}
	}
	for _, r := range rows {
		if r.elem != 0 && strings.HasPrefix(r.name, "_") {
			t := &pgType{oid: r.oid, name: r.name, kind: kindArray, elem: d.types[r.elem], delim: ','}
			if len(r.delim) == 1 {
				t.delim = r.delim[0]
			}
			d.types[r.oid] = t
		}
	}
	return nil
}

// table returns the row-level security flag and primary key of a table.
func (d *dispatcher) table(relid uint32) *tableMeta {
	now := d.f.cfg.Now()
	if m := d.tables[relid]; m != nil && now.Sub(m.at) < d.f.cfg.MetadataTTL {
		return m
	}
	m := &tableMeta{at: now}
	conn, err := d.db()
	if err == nil {
		ctx, cancel := d.ctx()
		err = conn.QueryRow(ctx, `select c.relrowsecurity, coalesce((
				select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
				from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2[])
				where i.indrelid = c.oid and i.indisprimary), '{}')
			from pg_class c where c.oid = $1`, relid).Scan(&m.rls, &m.pk)
		cancel()
	}
	m.err = err
	d.tables[relid] = m
	return m
}

// roleCols returns the columns of a table the role may select.
func (d *dispatcher) roleCols(role string, relid uint32) *roleMeta {
	now := d.f.cfg.Now()
	k := roleKey{role, relid}
	if m := d.roles[k]; m != nil && now.Sub(m.at) < d.f.cfg.MetadataTTL {
		return m
	}
	m := &roleMeta{at: now, cols: map[string]bool{}}
	conn, err := d.db()
	if err == nil {
		ctx, cancel := d.ctx()
		var rows pgx.Rows
		rows, err = conn.Query(ctx, `select a.attname from pg_attribute a
			where a.attrelid = $2 and a.attnum > 0 and not a.attisdropped
			and has_column_privilege($1, a.attrelid, a.attnum, 'SELECT')`, role, relid)
		if err == nil {
			for rows.Next() {
				var n string
				if err = rows.Scan(&n); err != nil {
					break
				}
				m.cols[n] = true
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		cancel()
	}
	m.err = err
	d.roles[k] = m
	return m
}
