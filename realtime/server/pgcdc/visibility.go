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
