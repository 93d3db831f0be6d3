// Package pgcdc is the change feed of rtm's embedded Realtime server:
// postgres_changes from a real PostgreSQL through logical replication,
// with Supabase Realtime's semantics.
//
// A [Feed] streams a publication ("supabase_realtime" by default, created
// when missing) through the pgoutput plugin on a replication slot
// (temporary by default) with github.com/jackc/pglogrepl on pgx v5,
// decodes INSERT, UPDATE and DELETE into the "data" of postgres_changes
// messages (schema, table, type, commit_timestamp, columns with their
// PostgreSQL type names, record and old_record as the replica identity
// allows, errors), and delivers each change to the [Subscription]s whose
// bindings it matches:
//
//   - filters (eq, neq, lt, lte, gt, gte, in) are evaluated by column
//     type, against the values PostgreSQL itself printed for the filter
//     values at subscribe time;
//   - row visibility is evaluated as the subscriber, as Supabase does: on
//     a table with row-level security, in a transaction that sets the
//     subscriber's role and request.jwt.claims and selects the row by
//     primary key; only columns the role may select are sent. Each
//     distinct (role, claims) is checked in its own implicit transaction
//     of one pipelined round trip per batch, so a policy that raises for
//     one subscriber does not stop delivery to the others; the error is
//     reported to that subscriber ([Status]). PostgreSQL writes a commit
//     to the WAL a moment before other sessions see it, so the checks of
//     a batch first wait (bounded) until its transactions are visible to
//     a new snapshot; without that wait a check in that moment finds no
//     row and drops the change for everyone ([Stats].VisibilityWaits);
//   - errors the user can act on (a table that does not exist or is not
//     in the publication, a filter on a column that does not exist, an
//     unsupported operator, a value that does not read as the column's
//     type, a role that does not exist) fail [Feed.Subscribe] with a
//     *[SubscribeError] carrying a reason and a fix.
//
// Readiness: a subscription reports [StatusReady] only once the feed has
// seen, in the replication stream, a logical decoding message it emitted
// after registering the subscription; every change committed after that
// point reaches it. This is the moment Supabase's "Subscribed to
// PostgreSQL" system message is meant to mark.
//
// The feed acknowledges processed positions to the server (standby status
// updates every StatusInterval and when asked), reconnects with backoff
// when the replication connection drops (a temporary slot loses the
// changes committed meanwhile; a named slot resumes), and reports each
// outage to the subscriptions.
package pgcdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPublication is the publication Supabase Realtime reads.
const DefaultPublication = "supabase_realtime"

// Config configures a Feed. URL is required.
type Config struct {
	// URL is a PostgreSQL connection URL or DSN. The user needs the
	// REPLICATION attribute (or superuser), may create the publication
	// when it is missing, and must be able to SET ROLE to the roles of
	// the subscribers' tokens (anon, authenticated, ...).
	URL string
	// Publication is read through pgoutput; default "supabase_realtime".
	// It is created (empty: add tables with ALTER PUBLICATION ... ADD
	// TABLE) when missing.
	Publication string
	// Slot names a persistent replication slot, created when missing, so
	// a restart resumes where the feed stopped; "" uses a temporary slot
	// (dropped by PostgreSQL when the connection ends).
	Slot string
	// DropSlot drops the named Slot on Close.
	DropSlot bool
	// Logger receives the feed's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock of metadata caches and error throttling; nil is
	// time.Now.
	Now func() time.Time
	// StatusInterval is how often the feed acknowledges its position.
	// Default 10 s.
	StatusInterval time.Duration
	// ReconnectDelay returns the delay before reconnection attempt n
	// (1, 2, ...). Default 1 s, 2 s, 5 s, then 10 s.
	ReconnectDelay func(attempt int) time.Duration
	// MetadataTTL bounds how long table metadata (row-level security,
	// primary key, column privileges) is cached. Default 2 s.
	MetadataTTL time.Duration
	// MaxRecordBytes is the size of a change above which, as Supabase,
	// values longer than 64 bytes are left out and errors says
	// "Error 413: Payload Too Large". Default 1 MiB.
	MaxRecordBytes int
	// BatchSize bounds the changes checked and delivered together (one
	// round trip for their row-level security checks). Default 512.
	BatchSize int
	// ErrorInterval throttles the reports of a failing row-level security
	// check to one per subscription per interval. Default 10 s.
	ErrorInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.ReconnectDelay == nil {
		c.ReconnectDelay = func(n int) time.Duration {
			switch n {
			case 1:
				return time.Second
			case 2:
				return 2 * time.Second
			case 3:
				return 5 * time.Second
			}
			return 10 * time.Second
		}
	}
	if c.MetadataTTL <= 0 {
		c.MetadataTTL = 2 * time.Second
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 512
	}
	if c.ErrorInterval <= 0 {
		c.ErrorInterval = 10 * time.Second
	}
	return c
}

// Feed is a running change feed. Its methods are safe for concurrent use.
type Feed struct {
	cfg   Config
	log   *slog.Logger
	pool  *pgxpool.Pool
	id    string // random, names the temporary slot and the fence prefix
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	work  chan item
	fence string // prefix of our logical decoding messages

	replConfig *pgconn.Config
	dispConn   *pgx.Conn // the dispatcher's connection

	ackLSN  atomic.Uint64 // processed and acknowledged position
	pending atomic.Int64  // items queued or being dispatched
	reader  readerState   // the reader goroutine's own state

	mu       sync.Mutex
	subs     map[uint64]*Subscription
	nextSub  uint64
	fenceSeq uint64
	noFences bool // the server refused pg_logical_emit_message
	up       bool // streaming now
	closed   bool
	index    atomic.Pointer[subIndex]

	stats counters
}

// Stats are counters of a feed since Open.
type Stats struct {
	// Changes are the INSERT, UPDATE and DELETE decoded; Transactions the
	// commits.
	Changes, Transactions uint64
	// Deliveries are changes handed to subscriptions.
	Deliveries uint64
	// RLSChecks are row visibility checks run; RLSErrors those that
	// raised.
	RLSChecks, RLSErrors uint64
	// VisibilityWaits counts the times row checks waited for a
	// transaction already in the stream to become visible to other
	// sessions (see the package doc).
	VisibilityWaits uint64
	// Reconnects counts replication connections after the first.
	Reconnects uint64
	// Subscriptions is the number of open subscriptions.
	Subscriptions int
	// Streaming reports whether the replication stream is up.
	Streaming bool
	// LSN is the last acknowledged position.
	LSN string
}

type counters struct {
	changes, txs, deliveries, rlsChecks, rlsErrors, reconnects, visibilityWaits atomic.Uint64
}

// Open connects to the database, creates the publication when missing,
// starts the replication stream and returns the running feed. Errors say
// what to fix (wal_level, the REPLICATION attribute, ...).
func Open(ctx context.Context, cfg Config) (*Feed, error) {
	if cfg.URL == "" {
		return nil, errors.New("pgcdc: Config.URL is required")
	}
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgcdc: database URL: %w", err)
	}
	setSessionParams(pcfg.ConnConfig.RuntimeParams)
	pcfg.MaxConns = 4
	pcfg.MinConns = 0
	rcfg, err := pgconn.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgcdc: database URL: %w", err)
	}
	setSessionParams(rcfg.RuntimeParams)
	rcfg.RuntimeParams["replication"] = "database"

	idb := make([]byte, 6)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("pgcdc: %w", err)
	}
	f := &Feed{
		cfg:        cfg,
		log:        cfg.Logger,
		id:         hex.EncodeToString(idb),
		work:       make(chan item, 4096),
		replConfig: rcfg,
		subs:       make(map[uint64]*Subscription),
	}
	f.fence = "rtm_fence_" + f.id
	f.index.Store(&subIndex{})
	ok := false
	defer func() {
		if !ok {
			f.closeConns()
		}
	}()
	if f.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("pgcdc: %w", err)
	}
	if err := f.checkServer(ctx); err != nil {
		return nil, err
	}
	if err := f.ensurePublication(ctx); err != nil {
		return nil, err
	}
	dcfg, _ := pgx.ParseConfig(cfg.URL)
	setSessionParams(dcfg.RuntimeParams)
	if f.dispConn, err = pgx.ConnectConfig(ctx, dcfg); err != nil {
		return nil, fmt.Errorf("pgcdc: connect: %w", err)
	}
	conn, err := f.startStream(ctx)
	if err != nil {
		return nil, err
	}
	f.ctx, f.stop = context.WithCancel(context.Background())
	f.wg.Add(2)
	go f.runReader(conn)
	go f.runDispatcher()
	ok = true
	f.log.Info("Change feed started", "publication", cfg.Publication, "slot", f.slotName(), "temporary", cfg.Slot == "")
	return f, nil
}

func setSessionParams(p map[string]string) {
	p["TimeZone"] = "UTC"
	p["DateStyle"] = "ISO, MDY"
	p["IntervalStyle"] = "postgres"
	p["extra_float_digits"] = "1"
	if p["application_name"] == "" {
		p["application_name"] = "rtm"
	}
}

func (f *Feed) slotName() string {
	if f.cfg.Slot != "" {
		return f.cfg.Slot
	}
	return "rtm_" + f.id
}

// checkServer checks wal_level and the connection.
func (f *Feed) checkServer(ctx context.Context) error {
	var wal string
	if err := f.pool.QueryRow(ctx, "select current_setting('wal_level')").Scan(&wal); err != nil {
		return fmt.Errorf("pgcdc: connect: %w", err)
	}
	if wal != "logical" {
		return fmt.Errorf("pgcdc: wal_level is %q, logical replication needs \"logical\" "+
			"(fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)", wal)
	}
	return nil
}

// ensurePublication creates the publication when missing.
func (f *Feed) ensurePublication(ctx context.Context) error {
	var exists bool
	if err := f.pool.QueryRow(ctx, "select exists(select 1 from pg_publication where pubname = $1)", f.cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("pgcdc: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := f.pool.Exec(ctx, "create publication "+quoteIdent(f.cfg.Publication)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile
			return nil
		}
		return fmt.Errorf("pgcdc: publication %q is missing and could not be created (fix: CREATE PUBLICATION %s as a superuser): %w",
			f.cfg.Publication, quoteIdent(f.cfg.Publication), err)
	}
	f.log.Info("Created the publication", "publication", f.cfg.Publication)
	return nil
}

// startStream opens a replication connection, creates the slot and starts
// streaming.
func (f *Feed) startStream(ctx context.Context) (*pgconn.PgConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, f.replConfig)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return nil, fmt.Errorf("pgcdc: the database user may not start replication (fix: ALTER ROLE <user> WITH REPLICATION): %w", err)
		}
		return nil, fmt.Errorf("pgcdc: replication connection: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close(context.Background())
		}
	}()
	slot := f.slotName()
	start := pglogrepl.LSN(0)
	if f.cfg.Slot == "" {
		if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"}); err != nil {
			return nil, slotError(err)
		}
	} else {
		_, err := pglogrepl.CreateReplicationSlot(ctx, conn, quoteIdent(slot), "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42710") { // exists: resume
			return nil, slotError(err)
		}
	}
	args := []string{"proto_version '1'", "publication_names " + quoteLiteral(f.cfg.Publication), "messages 'true'"}
	if err := pglogrepl.StartReplication(ctx, conn, quoteIdent(slot), start, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return nil, fmt.Errorf("pgcdc: start replication on slot %s: %w", slot, err)
	}
	ok = true
	return conn, nil
}

func slotError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53400":
			return fmt.Errorf("pgcdc: no free replication slot (fix: raise max_replication_slots, or drop unused slots: select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active): %w", err)
		case "55000":
			return fmt.Errorf("pgcdc: logical replication is not available (fix: wal_level = logical): %w", err)
		}
	}
	return fmt.Errorf("pgcdc: create replication slot: %w", err)
}

// quoteLiteral quotes an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", "''") + "'"
}

// item is one unit of work for the dispatcher, in stream order.
type item struct {
	kind itemKind
	rel  *relation
	ch   *change
	lsn  uint64
	seq  uint64
	err  error
}

type itemKind uint8

const (
	itemRelation itemKind = iota + 1
	itemChange
	itemCommit
	itemFence
	itemUp
	itemDown
)

// change is a decoded row change.
type change struct {
	rel        *relation
	typ        string // INSERT, UPDATE, DELETE
	commitTime time.Time
	xid        uint32 // the transaction's (32-bit) id
	newRow     []value
	oldRow     []value
	oldKind    byte
	size       int // bytes of the WAL message
}

// runReader owns the replication connection: it reads the stream, feeds
// the dispatcher, acknowledges positions, and reconnects.
func (f *Feed) runReader(conn *pgconn.PgConn) {
	defer f.wg.Done()
	defer close(f.work)
	for attempt := 0; ; {
		if conn != nil {
			attempt = 0
			if !f.send(item{kind: itemUp}) {
				conn.Close(context.Background())
				return
			}
			f.emitFences(f.ctx)
			err := f.stream(conn)
			conn.Close(context.Background())
			if f.ctx.Err() != nil {
				return
			}
			f.log.Warn("Replication stream lost", "err", err)
			if !f.send(item{kind: itemDown, err: err}) {
				return
			}
			conn = nil
		}
		attempt++
		t := time.NewTimer(f.cfg.ReconnectDelay(attempt))
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		c, err := f.startStream(ctx)
		cancel()
		if err != nil {
			f.log.Warn("Replication reconnect failed", "attempt", attempt, "err", err)
			continue
		}
		f.stats.reconnects.Add(1)
		f.log.Info("Replication stream reconnected", "attempt", attempt)
		conn = c
	}
}

// send hands an item to the dispatcher unless the feed is closing.
func (f *Feed) send(it item) bool {
	f.pending.Add(1)
	select {
	case f.work <- it:
		return true
	case <-f.ctx.Done():
		f.pending.Add(-1)
		return false
	}
}

// stream reads the replication stream until an error or Close.
func (f *Feed) stream(conn *pgconn.PgConn) error {
	next := time.Now().Add(f.cfg.StatusInterval)
	var walEnd uint64
	for {
		if !time.Now().Before(next) {
			lsn := max(f.ackLSN.Load(), walEnd)
			if err := pglogrepl.SendStandbyStatusUpdate(f.ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pglogrepl.LSN(lsn)}); err != nil {
				return fmt.Errorf("send standby status: %w", err)
			}
			next = time.Now().Add(f.cfg.StatusInterval)
		}
		ctx, cancel := context.WithDeadline(f.ctx, next)
		msg, err := conn.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			if f.ctx.Err() != nil {
				return f.ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return err
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return err
				}
				if uint64(ka.ServerWALEnd) > walEnd && f.idle() {
					walEnd = uint64(ka.ServerWALEnd)
				}
				if ka.ReplyRequested {
					next = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return err
				}
				if err := f.handleWAL(xld.WALData); err != nil {
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		}
	}
}

// idle reports whether the dispatcher has nothing queued or in hand.
func (f *Feed) idle() bool { return f.pending.Load() == 0 }

// readerState is what only the reader goroutine touches.
type readerState struct {
	// commitTime and xid are those of the transaction being streamed.
	commitTime time.Time
	xid        uint32
}

// handleWAL decodes one pgoutput message and queues its work.
func (f *Feed) handleWAL(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case msgInsert, msgUpdate, msgDelete, msgRelation, msgMessage:
		data = append([]byte(nil), data...) // the stream reuses its buffer
	}
	m, err := decodeMessage(data)
	if err != nil {
		f.log.Error("Undecodable replication message", "err", err, "type", string(rune(data[0])))
		return nil // skip it: one bad message must not stop the feed
	}
	switch m.typ {
	case msgBegin:
		f.reader.commitTime, f.reader.xid = m.commitTime, m.xid
	case msgCommit:
		f.stats.txs.Add(1)
		if !f.send(item{kind: itemCommit, lsn: m.endLSN}) {
			return f.ctx.Err()
		}
	case msgRelation:
		if !f.send(item{kind: itemRelation, rel: m.rel}) {
			return f.ctx.Err()
		}
	case msgInsert, msgUpdate, msgDelete:
		typ := "INSERT"
		switch m.typ {
		case msgUpdate:
			typ = "UPDATE"
		case msgDelete:
			typ = "DELETE"
		}
		f.stats.changes.Add(1)
		ch := &change{typ: typ, commitTime: f.reader.commitTime, xid: f.reader.xid, newRow: m.newRow, oldRow: m.oldRow, oldKind: m.oldKind, size: len(data)}
		ch.rel = &relation{id: m.relID} // resolved by the dispatcher
		if !f.send(item{kind: itemChange, ch: ch}) {
			return f.ctx.Err()
		}
	case msgMessage:
		if m.prefix == f.fence {
			var seq uint64
			fmt.Sscanf(string(m.content), "%d", &seq)
			if !f.send(item{kind: itemFence, seq: seq}) {
				return f.ctx.Err()
			}
		}
	}
	return nil
}

// emitFences writes a fence message covering every subscription that
// waits for readiness.
func (f *Feed) emitFences(ctx context.Context) {
	f.mu.Lock()
	waiting := false
	for _, s := range f.subs {
		if !s.ready {
			waiting = true
		}
	}
	if !waiting || f.closed {
		f.mu.Unlock()
		return
	}
	if f.noFences {
		f.mu.Unlock()
		f.send(item{kind: itemFence, seq: 0})
		return
	}
	f.fenceSeq++
	seq := f.fenceSeq
	for _, s := range f.subs {
		if !s.ready {
			s.fenceSeq = seq
		}
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := f.pool.Exec(ctx, "select pg_logical_emit_message(false, $1, $2::text)", f.fence, fmt.Sprint(seq))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			f.log.Warn("pg_logical_emit_message is not allowed: subscriptions are reported ready when the stream runs, without proof", "err", err)
			f.mu.Lock()
			f.noFences = true
			f.mu.Unlock()
			f.send(item{kind: itemFence, seq: 0})
			return
		}
		f.log.Warn("Cannot emit the readiness fence", "err", err)
	}
}

// Stats returns the feed's counters.
func (f *Feed) Stats() Stats {
	f.mu.Lock()
	n, up := len(f.subs), f.up
	f.mu.Unlock()
	return Stats{
		Changes: f.stats.changes.Load(), Transactions: f.stats.txs.Load(), Deliveries: f.stats.deliveries.Load(),
		RLSChecks: f.stats.rlsChecks.Load(), RLSErrors: f.stats.rlsErrors.Load(), VisibilityWaits: f.stats.visibilityWaits.Load(), Reconnects: f.stats.reconnects.Load(),
		Subscriptions: n, Streaming: up, LSN: pglogrepl.LSN(f.ackLSN.Load()).String(),
	}
}

// Publication returns the publication the feed reads.
func (f *Feed) Publication() string { return f.cfg.Publication }

// Close stops the feed: the stream ends (a temporary slot disappears with
// its connection; a named one is dropped when DropSlot), subscriptions
// are closed and every goroutine has returned.
func (f *Feed) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	f.stop()
	f.wg.Wait()
	var err error
	if f.cfg.Slot != "" && f.cfg.DropSlot {
		// The walsender of our connection may still be exiting: retry
		// while the slot is "active".
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for {
			_, derr := f.pool.Exec(ctx, "select pg_drop_replication_slot($1)", f.cfg.Slot)
			var pgErr *pgconn.PgError
			if derr != nil && errors.As(derr, &pgErr) && pgErr.Code == "55006" && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if derr != nil {
				err = fmt.Errorf("pgcdc: drop slot %s: %w", f.cfg.Slot, derr)
			}
			break
		}
		cancel()
	}
	f.closeConns()
	f.log.Info("Change feed stopped")
	return err
}

func (f *Feed) closeConns() {
	if f.dispConn != nil {
		f.dispConn.Close(context.Background())
	}
	if f.pool != nil {
		f.pool.Close()
	}
}
