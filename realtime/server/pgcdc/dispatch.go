package pgcdc

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
			if d.f.cfg.Inserts == nil {
				ws[i] = d.match(it.ch, &checks)
			}
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
			} else if d.f.cfg.Inserts != nil {
				d.insert(it.ch)
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
