package pgcdc

import (
	"fmt"
)

// deliver hands a matched change to its subscriptions.
func (d *dispatcher) deliver(w *work, checks []*rowCheck) {
	for _, m := range w.matches {
		s := m.sub
		if s.isClosed() {
			continue
		}
		if m.check >= 0 {
			c := checks[m.check]
			if c.err != nil {
				d.report(s, fmt.Sprintf("Row-level security check of a %s on %s.%s failed for role %q (the change was not delivered to this subscriber; others are unaffected): %v",
					w.ch.typ, w.ri.rel.namespace, w.ri.rel.name, s.role, c.err))
				continue
			}
			if !c.visible {
				continue
			}
		}
		key := s.role + "\x00" + m.deny
		if w.datas == nil {
			w.datas = map[string][]byte{}
		}
		data, ok := w.datas[key]
		if !ok {
			tm := d.table(w.ri.rel.id)
			data = d.encode(w, m, tm)
			w.datas[key] = data
		}
		// Counted first: whoever sees the delivery sees it in Stats too.
		d.f.stats.deliveries.Add(1)
		s.deliver(Delivery{IDs: m.ids, Data: data, Schema: w.ri.rel.namespace, Table: w.ri.rel.name, Type: w.ch.typ})
	}
}

// encode builds the "data" object of a change as a role sees it.
func (d *dispatcher) encode(w *work, m match, tm *tableMeta) []byte {
	ch, ri := w.ch, w.ri
	b := make([]byte, 0, 256+ch.size*2)
	b = append(b, `{"schema":`...)
	b = appendJSONString(b, ri.rel.namespace)
	b = append(b, `,"table":`...)
	b = appendJSONString(b, ri.rel.name)
	if m.deny != "" {
		b = append(b, `,"type":`...)
		b = appendJSONString(b, ch.typ)
		b = append(b, `,"errors":[`...)
		b = appendJSONString(b, m.deny)
		return append(b, "]}"...)
	}
	b = append(b, `,"commit_timestamp":`...)
	b = appendJSONString(b, ch.commitTime.UTC().Format("2006-01-02T15:04:05.000Z"))
	b = append(b, `,"type":`...)
	b = appendJSONString(b, ch.typ)
	b = append(b, `,"columns":[`...)
	n := 0
	for i, c := range ri.rel.columns {
		if !m.cols[c.name] {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"name":`...)
		b = appendJSONString(b, c.name)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, ri.types[i].name)
		b = append(b, '}')
	}
	b = append(b, ']')
	tooLarge := ch.size > d.f.cfg.MaxRecordBytes
	if ch.typ != "DELETE" {
		b = append(b, `,"record":`...)
		b = d.appendRow(b, ri, m.cols, ch.newRow, ch.oldRow, nil, tooLarge)
	}
	if ch.typ != "INSERT" {
		b = append(b, `,"old_record":`...)
		var only map[string]bool // the columns of old_record
		old := ch.oldRow
		switch {
		case ch.typ == "DELETE" && tm.rls:
			only = setOf(tm.pk) // row-level security: deletes reveal the key only
		case ch.oldKind == 'K' || old == nil:
			only = map[string]bool{}
			for _, c := range ri.rel.columns {
				if c.key {
					only[c.name] = true
				}
			}
		}
		if old == nil {
			old = ch.newRow // the key did not change
		}
		b = d.appendRow(b, ri, m.cols, old, nil, only, tooLarge)
	}
	if tooLarge {
		b = append(b, `,"errors":[`...)
		b = appendJSONString(b, errTooLarge)
		return append(b, "]}"...)
	}
	return append(b, `,"errors":null}`...)
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// appendRow appends a row as a JSON object: selectable columns (of only,
// when set), unchanged TOASTed values taken from fallback, values over 64
// bytes left out when the change is too large.
func (d *dispatcher) appendRow(b []byte, ri *relInfo, cols map[string]bool, row, fallback []value, only map[string]bool, tooLarge bool) []byte {
	b = append(b, '{')
	n := 0
	for i, c := range ri.rel.columns {
		if !cols[c.name] || (only != nil && !only[c.name]) || i >= len(row) {
			continue
		}
		v := row[i]
		if v.kind == valUnchanged {
			if i >= len(fallback) || fallback[i].kind == valUnchanged {
				continue
			}
			v = fallback[i]
		}
		mark := len(b)
		if n > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.name)
		b = append(b, ':')
		vstart := len(b)
		if v.kind == valNull {
			b = append(b, "null"...)
		} else {
			b = appendValue(b, ri.types[i], v.data)
		}
		if tooLarge && len(b)-vstart > 64 {
			b = b[:mark]
			continue
		}
		n++
	}
	return append(b, '}')
}
