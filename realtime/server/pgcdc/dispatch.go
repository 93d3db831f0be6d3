package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error strings of Supabase Realtime's change payloads.
const (
	errNoPrimaryKey = "Error 400: Bad Request, no primary key"
	errUnauthorized = "Error 401: Unauthorized"
	errTooLarge     = "Error 413: Payload Too Large"
)

// relInfo is a relation with what the dispatcher derived from it.
type relInfo struct {
	rel    *relation
	types  []*pgType
	colIdx map[string]int
}

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

// dispatcher turns queued changes into deliveries. It runs on one
// goroutine and owns its connection and caches.
type dispatcher struct {
	f      *Feed
	conn   *pgx.Conn
	rels   map[uint32]*relInfo
	types  map[uint32]*pgType
	tables map[uint32]*tableMeta
	roles  map[roleKey]*roleMeta
	cands  []*Subscription
}

// work is a change being dispatched in a batch.
type work struct {
	ch      *change
	ri      *relInfo
	matches []match
	datas   map[string][]byte // by role + deny
}

type match struct {
	sub   *Subscription
	ids   []int64
	deny  string // errNoPrimaryKey / errUnauthorized
	check int    // index in checks, or -1
	cols  map[string]bool
}

// rowCheck is one row-level security check: a change's row as one
// (role, claims).
type rowCheck struct {
	w       *work
	sent    bool
	role    string
	claims  string
	visible bool
	err     error
}

func (f *Feed) runDispatcher() {
	defer f.wg.Done()
	d := &dispatcher{f: f, conn: f.dispConn, rels: map[uint32]*relInfo{}, types: map[uint32]*pgType{},
		tables: map[uint32]*tableMeta{}, roles: map[roleKey]*roleMeta{}}
	batch := make([]item, 0, f.cfg.BatchSize)
	for {
		it, ok := <-f.work
		if !ok {
			return
		}
		batch = append(batch[:0], it)
	drain:
		for len(batch) < f.cfg.BatchSize {
			select {
			case it, ok := <-f.work:
				if !ok {
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
		}
		d.process(batch)
		f.pending.Add(-int64(len(batch)))
	}
}

// process dispatches a batch in three passes: resolve and match the
// changes (applying relations in order), run every row check of the
// batch in one round trip, then deliver and apply the other items in
// stream order.
func (d *dispatcher) process(batch []item) {
	ws := make([]*work, len(batch))
	var checks []*rowCheck
	for i, it := range batch {
		switch it.kind {
		case itemRelation:
			d.addRelation(it.rel)
		case itemChange:
			ws[i] = d.match(it.ch, &checks)
		}
	}
	if len(checks) > 0 {
		d.runChecks(checks)
	}
	for i, it := range batch {
		switch it.kind {
		case itemChange:
			if ws[i] != nil {
				d.deliver(ws[i], checks)
			}
		case itemCommit:
			d.f.ackLSN.Store(it.lsn)
		case itemFence:
			d.fence(it.seq)
		case itemUp:
			d.f.mu.Lock()
			d.f.up = true
			d.f.mu.Unlock()
		case itemDown:
			d.down(it.err)
		}
	}
}

func (d *dispatcher) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.f.ctx, 30*time.Second)
}

// db returns the dispatcher's connection, reconnecting a broken one.
func (d *dispatcher) db() (*pgx.Conn, error) {
	if d.conn != nil && !d.conn.IsClosed() {
		return d.conn, nil
	}
	ctx, cancel := d.ctx()
	defer cancel()
	cfg, err := pgx.ParseConfig(d.f.cfg.URL)
	if err != nil {
		return nil, err
	}
	setSessionParams(cfg.RuntimeParams)
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.conn = c
	d.f.dispConn = c
	return c, nil
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

// runChecks evaluates row visibility for every check of a batch in one
// pipelined round trip: per check, an implicit transaction that sets the
// role and request.jwt.claims, then selects the row by primary key. An
// error (a raising policy) fails that check only. It first waits until
// the batch's transactions are visible to new snapshots (see
// awaitVisible).
func (d *dispatcher) runChecks(checks []*rowCheck) {
	conn, err := d.db()
	if err != nil {
		for _, c := range checks {
			c.err = err
		}
		return
	}
	ctx, cancel := d.ctx()
	defer cancel()
	if err := d.awaitVisible(ctx, conn, checks); err != nil {
		d.failChecks(checks, err)
		return
	}
	p := conn.PgConn().StartPipeline(ctx)
	sent := 0
	for _, c := range checks {
		tm := d.table(c.w.ri.rel.id)
		sql, args, ok := rowQuery(c.w, tm.pk)
		if !ok {
			c.err = errors.New("the row's primary key is not in the change")
			continue
		}
		p.SendQueryParams("select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
			[][]byte{[]byte(c.role), []byte(c.claims)}, nil, nil, nil)
		p.SendQueryParams(sql, args, nil, nil, nil)
		p.SendPipelineSync()
		c.sent = true
		sent++
	}
	d.f.stats.rlsChecks.Add(uint64(sent))
	if err := p.Flush(); err != nil {
		d.failChecks(checks, err)
		p.Close()
		return
	}
	for _, c := range checks {
		if !c.sent {
			continue
		}
		step := 0
		for {
			res, err := p.GetResults()
			if err != nil {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) {
					d.failChecks(checks, err)
					p.Close()
					return
				}
				if c.err == nil {
					c.err = pgErr
				}
				step++
				continue
			}
			if res == nil {
				d.failChecks(checks, errors.New("pipeline ended early"))
				p.Close()
				return
			}
			if _, ok := res.(*pgconn.PipelineSync); ok {
				break
			}
			if rr, ok := res.(*pgconn.ResultReader); ok {
				r := rr.Read()
				if r.Err != nil && c.err == nil {
					c.err = r.Err
				}
				if step == 1 && r.Err == nil {
					c.visible = len(r.Rows) > 0
				}
			}
			step++
		}
		if c.err != nil {
			d.f.stats.rlsErrors.Add(1)
		}
	}
	if err := p.Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			d.f.log.Warn("Row check pipeline", "err", err)
		}
	}
}

// visibleWait bounds the wait for a transaction to become visible.
const visibleWait = 5 * time.Second

// visibleQuery reports whether the transactions $1 (32-bit xids, of
// transactions that have committed) are visible to a new snapshot: each
// xid gets the epoch of the snapshot's xmax (the one before when that
// would put it after xmax).
const visibleQuery = `select coalesce(bool_and(txid_visible_in_snapshot(
	case when (e << 32 | x) >= m then ((e - 1) << 32 | x) else (e << 32 | x) end, s)), true)
from (select txid_current_snapshot() as s) as snap,
	lateral (select txid_snapshot_xmax(s) as m) as mx,
	lateral (select m >> 32 as e) as ep,
	unnest($1::int8[]) as x`

// awaitVisible waits until the transactions of checks are visible to new
// snapshots. PostgreSQL writes a commit to the WAL (which the stream
// then carries) a moment before the transaction stops being in progress
// for other sessions: a check run in that moment would not see the row
// and silently drop the change for every subscriber. The wait is
// usually nil (one round trip); it gives up after visibleWait.
func (d *dispatcher) awaitVisible(ctx context.Context, conn *pgx.Conn, checks []*rowCheck) error {
	var xids []int64
	for _, c := range checks {
		if x := int64(c.w.ch.xid); x != 0 && !slices.Contains(xids, x) {
			xids = append(xids, x)
		}
	}
	if len(xids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, visibleWait)
	defer cancel()
	pause := 100 * time.Microsecond
	for {
		var visible bool
		if err := conn.QueryRow(ctx, visibleQuery, xids).Scan(&visible); err != nil {
			return fmt.Errorf("waiting for the transaction to be visible: %w", err)
		}
		if visible {
			return nil
		}
		d.f.stats.visibilityWaits.Add(1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("transaction %v still not visible after %v: %w", xids, visibleWait, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}

func (d *dispatcher) failChecks(checks []*rowCheck, err error) {
	for _, c := range checks {
		if c.err == nil && !c.visible {
			c.err = err
		}
	}
	if d.conn != nil {
		d.conn.Close(context.Background())
	}
}

// rowQuery builds "select 1 from t where pk = $1 ..." for a change's row.
func rowQuery(w *work, pk []string) (string, [][]byte, bool) {
	var b strings.Builder
	b.WriteString("select 1 from ")
	b.WriteString(quoteIdent(w.ri.rel.namespace))
	b.WriteByte('.')
	b.WriteString(quoteIdent(w.ri.rel.name))
	b.WriteString(" where ")
	args := make([][]byte, 0, len(pk))
	for i, col := range pk {
		idx, ok := w.ri.colIdx[col]
		if !ok || idx >= len(w.ch.newRow) {
			return "", nil, false
		}
		v := w.ch.newRow[idx]
		if v.kind != valText {
			return "", nil, false
		}
		if i > 0 {
			b.WriteString(" and ")
		}
		fmt.Fprintf(&b, "%s = $%d", quoteIdent(col), i+1)
		args = append(args, v.data)
	}
	return b.String(), args, true
}

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

// report tells a subscription about a problem, at most once per
// ErrorInterval (counting the ones held back).
func (d *dispatcher) report(s *Subscription, msg string) {
	d.f.log.Warn("Change not delivered", "subscription", s.id, "role", s.role, "reason", msg)
	now := d.f.cfg.Now()
	if !s.lastErr.IsZero() && now.Sub(s.lastErr) < d.f.cfg.ErrorInterval {
		s.errMuted++
		return
	}
	if s.errMuted > 0 {
		msg = fmt.Sprintf("%s (and %d more since the last report)", msg, s.errMuted)
	}
	s.lastErr, s.errMuted = now, 0
	s.onStatus(Status{Kind: StatusError, Message: msg})
}

// fence marks ready the subscriptions the fence seq covers (every
// waiting one when seq is 0).
func (d *dispatcher) fence(seq uint64) {
	f := d.f
	var ready []*Subscription
	f.mu.Lock()
	for _, s := range f.subs {
		if !s.ready && (seq == 0 || (s.fenceSeq != 0 && s.fenceSeq <= seq)) {
			s.ready = true
			ready = append(ready, s)
		}
	}
	f.mu.Unlock()
	for _, s := range ready {
		s.onStatus(Status{Kind: StatusReady, Message: "Subscribed to PostgreSQL"})
	}
}

// down marks every subscription not ready after the stream dropped.
func (d *dispatcher) down(err error) {
	f := d.f
	var subs []*Subscription
	f.mu.Lock()
	f.up = false
	for _, s := range f.subs {
		s.ready, s.fenceSeq = false, 0
		subs = append(subs, s)
	}
	f.mu.Unlock()
	msg := fmt.Sprintf("Lost the replication connection to PostgreSQL (%v); reconnecting", err)
	for _, s := range subs {
		s.onStatus(Status{Kind: StatusDown, Message: msg})
	}
}

func (s *Subscription) isClosed() bool { return s.closed.Load() }
