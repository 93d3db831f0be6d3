package pgrealtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaintainEvery is Config.MaintainEvery's default: how often the
// partitions are kept fresh while running (Supabase's janitor runs every
// 4 hours; an hour keeps tomorrow's partition days ahead all the same).
const DefaultMaintainEvery = time.Hour

// DefaultMaxConns is Config.MaxConns's default.
const DefaultMaxConns = 4

// Config configures [Open].
type Config struct {
	// URL is the database's connection URL. Its user must be able to
	// create what is missing (see the package doc), bypass RLS on
	// realtime.messages for the probe inserts (superuser, the table's
	// owner or BYPASSRLS) and switch to the tokens' roles.
	URL string
	// Logger receives what was created and dropped, and check failures;
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock of partitions and probe rows; nil means time.Now.
	Now func() time.Time
	// Ticker starts the partition maintenance's ticker; nil means
	// time.NewTicker. A test passes a fake one to roll the partitions.
	Ticker func(d time.Duration) (tick <-chan time.Time, stop func())
	// MaintainEvery is the maintenance period. Default
	// DefaultMaintainEvery.
	MaintainEvery time.Duration
	// MaxConns bounds the connections of the checks' pool (each check
	// holds one for a transaction). Default DefaultMaxConns.
	MaxConns int32
}

// DB is a database prepared for Realtime Authorization: bootstrapped,
// its partitions kept fresh, and its checks run by [DB.AuthorizeRead]
// and [DB.AuthorizeWrite] (a server.Authorizer).
type DB struct {
	cfg  Config
	log  *slog.Logger
	pool *pgxpool.Pool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Open bootstraps the database (Bootstrap, then MaintainPartitions),
// logs what it created, and starts the partition maintenance. A failed
// bootstrap fails Open; failed maintenance is logged as a warning. Close
// stops it.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Ticker == nil {
		cfg.Ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if cfg.MaintainEvery <= 0 {
		cfg.MaintainEvery = DefaultMaintainEvery
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgrealtime: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.RuntimeParams["application_name"] = "rtm realtime authorization"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgrealtime: %w", err)
	}
	db := &DB{cfg: cfg, log: cfg.Logger, pool: pool, stop: make(chan struct{}), done: make(chan struct{})}
	err = db.withConn(ctx, func(conn *pgx.Conn) error {
		created, err := Bootstrap(ctx, conn)
		if err != nil {
			return err
		}
		if len(created) > 0 {
			db.log.Info("Created Supabase's realtime schema objects that were missing", "created", created)
		}
		// A user who may not create partitions (a project's own
		// realtime.messages owned by another role) still gets the checks;
		// a missing partition then refuses joins with MissingPartition.
		if err := db.maintain(ctx, conn); err != nil {
			db.log.Warn("realtime.messages partition maintenance failed", "err", err)
		}
		return nil
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	tick, stopTick := cfg.Ticker(cfg.MaintainEvery)
	go db.keep(tick, stopTick)
	return db, nil
}

// withConn runs f on a connection of the pool.
func (db *DB) withConn(ctx context.Context, f func(*pgx.Conn) error) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgrealtime: %w", err)
	}
	defer c.Release()
	return f(c.Conn())
}

// maintain runs MaintainPartitions now and logs what it did.
func (db *DB) maintain(ctx context.Context, conn *pgx.Conn) error {
	m, err := MaintainPartitions(ctx, conn, db.cfg.Now())
	if err != nil {
		return err
	}
	if len(m.Created) > 0 {
		db.log.Info("Created realtime.messages partitions", "partitions", m.Created)
	}
	if len(m.Dropped) > 0 {
		db.log.Info("Dropped realtime.messages partitions older than 72 hours", "partitions", m.Dropped)
	}
	if m.Skipped != "" {
		db.log.Warn("realtime.messages partitions not maintained", "reason", m.Skipped)
	}
	return nil
}

// keep maintains the partitions on every tick until Close.
func (db *DB) keep(tick <-chan time.Time, stopTick func()) {
	defer close(db.done)
	defer stopTick()
	for {
		select {
		case <-db.stop:
			return
		case <-tick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		go func() { // Close cancels a run in progress
			select {
			case <-db.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		err := db.withConn(ctx, func(conn *pgx.Conn) error { return db.maintain(ctx, conn) })
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			db.log.Warn("realtime.messages partition maintenance failed", "err", err)
		}
	}
}

// Close stops the maintenance and closes the pool.
func (db *DB) Close() error {
	db.once.Do(func() {
		close(db.stop)
		<-db.done
		db.pool.Close()
	})
	return nil
}
