package pgcdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

	// Table, when set ("realtime.messages"), is the table a missing
	// publication is created for (CREATE PUBLICATION p FOR TABLE t);
	// empty creates an empty publication.
	Table string
	// SlotPrefix prefixes the name of the temporary slot (followed by
	// the feed's random id). Default "rtm_".
	SlotPrefix string
	// Inserts, when set, makes the feed a stream of inserted rows (see
	// [Insert]) instead of postgres_changes: every INSERT of the
	// publication is handed to it on the feed's dispatcher goroutine, in
	// commit order; UPDATE and DELETE are ignored. Connection handling,
	// acknowledgements and reconnection are the same.
	Inserts func(Insert)
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
	if c.SlotPrefix == "" {
		c.SlotPrefix = "rtm_"
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
	return f.cfg.SlotPrefix + f.id
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
		f.checkPublicationTable(ctx)
		return nil
	}
	create := "create publication " + quoteIdent(f.cfg.Publication)
	if f.cfg.Table != "" {
		create += " for table " + quoteQualified(f.cfg.Table)
	}
	if _, err := f.pool.Exec(ctx, create); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile
			return nil
		}
		return fmt.Errorf("pgcdc: publication %q is missing and could not be created (fix: %s as a superuser): %w",
			f.cfg.Publication, create, err)
	}
	f.log.Info("Created the publication", "publication", f.cfg.Publication)
	return nil
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
