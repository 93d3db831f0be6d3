package pgcdc

import (
	"fmt"
)

type match struct {
	sub   *Subscription
	ids   []int64
	deny  string // errNoPrimaryKey / errUnauthorized
	check int    // index in checks, or -1
	cols  map[string]bool
}

// match finds the subscriptions a change reaches and the row checks it
// needs.
func (d *dispatcher) match(ch *change, checks *[]*rowCheck) *work {
	ri := d.rels[ch.rel.id]
	if ri == nil {
		d.f.log.Error("Change for an unknown relation", "relid", ch.rel.id)
		return nil
	}
	ch.rel = ri.rel
	d.cands = d.f.index.Load().lookup(ri.rel.namespace, ri.rel.name, d.cands)
	if len(d.cands) == 0 {
		return nil
	}
	row := ch.newRow
	if ch.typ == "DELETE" {
		row = ch.oldRow
	}
	w := &work{ch: ch, ri: ri}
	byKey := map[string]int{}
	for _, s := range d.cands {
		var ids []int64
		for i := range s.bindings {
			b := &s.bindings[i]
			if (b.event == "*" || b.event == ch.typ) && b.matchesTable(ri.rel.namespace, ri.rel.name) && d.filtersPass(b.conds, ri, ch, row) {
				ids = append(ids, b.id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		m := match{sub: s, ids: ids, check: -1}
		tm := d.table(ri.rel.id)
		if tm.err != nil {
			d.report(s, fmt.Sprintf("Cannot read the metadata of %s.%s: %v", ri.rel.namespace, ri.rel.name, tm.err))
			continue
		}
		rm := d.roleCols(s.role, ri.rel.id)
		if rm.err != nil {
			d.report(s, fmt.Sprintf("Cannot check the privileges of role %q on %s.%s: %v", s.role, ri.rel.namespace, ri.rel.name, rm.err))
			continue
		}
		m.cols = rm.cols
		if ch.typ != "DELETE" {
			switch {
			case len(tm.pk) == 0:
				m.deny = errNoPrimaryKey
			case !allIn(tm.pk, rm.cols):
				m.deny = errUnauthorized
			case tm.rls:
				idx, ok := byKey[s.claimsKey]
				if !ok {
					idx = len(*checks)
					byKey[s.claimsKey] = idx
					*checks = append(*checks, &rowCheck{w: w, role: s.role, claims: s.claims})
				}
				m.check = idx
			}
		}
		w.matches = append(w.matches, m)
	}
	if len(w.matches) == 0 {
		return nil
	}
	return w
}

func allIn(names []string, set map[string]bool) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

// filtersPass evaluates a binding's conditions on a row as Supabase
// does: conditions on columns absent from the row (a key-only old row,
// an unchanged TOASTed value) are left out, and a filter none of whose
// columns is present does not match.
func (d *dispatcher) filtersPass(conds []cond, ri *relInfo, ch *change, row []value) bool {
	if len(conds) == 0 {
		return true
	}
	present := 0
	for i := range conds {
		c := &conds[i]
		idx, ok := ri.colIdx[c.column]
		if !ok || idx >= len(row) {
			continue
		}
		v := row[idx]
		if v.kind == valUnchanged {
			continue
		}
		if ch.typ == "DELETE" && ch.oldKind == 'K' && !ri.rel.columns[idx].key {
			continue // key tuples carry nulls for the other columns
		}
		present++
		if !c.eval(v.data, v.kind == valNull) {
			return false
		}
	}
	return present > 0
}
