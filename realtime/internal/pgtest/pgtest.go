// Package pgtest gives tests a real, throwaway PostgreSQL: one private
// cluster per test package (package rtm/realtime/server/pgcdc/pgcluster:
// initdb into a temporary directory with wal_level=logical, a free
// loopback port, run as the postgres OS user when the tests run as root),
// started on first use and stopped and removed when the package's tests
// end, and a fresh database per test.
//
// Usage:
//
//	var pg = pgtest.New()
//
//	func TestMain(m *testing.M) { pgtest.Main(m, pg) }
//
//	func TestX(t *testing.T) {
//		db := pg.DB(t) // CREATE DATABASE t_N; dropped with the cluster
//		db.Exec(t, "create table ...")
//		... db.URL ...
//	}
//
// Where PostgreSQL's binaries are missing, DB skips the test with how to
// install them; with the environment variable CI set it fails instead.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"rtm/realtime/server/pgcdc/pgcluster"
)

// Cluster is a PostgreSQL cluster shared by the tests of a package,
// started by the first DB call. Its methods are safe for concurrent use.
type Cluster struct {
	mu      sync.Mutex
	c       *pgcluster.Cluster
	err     error
	started bool
	n       int
	opts    pgcluster.Options
}

// New returns a cluster that starts on first use, with the default
// settings and opts' fields (Settings are merged).
func New(opts ...func(*pgcluster.Options)) *Cluster {
	c := &Cluster{}
	for _, o := range opts {
		o(&c.opts)
	}
	return c
}

// Main runs the package's tests, stops the cluster, checks for leaked
// goroutines (goleak, with opts) and exits.
func Main(m *testing.M, c *Cluster, opts ...goleak.Option) {
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Unavailable skips tb with how to install PostgreSQL, or fails it when
// the environment variable CI is set. It reports whether PostgreSQL's
// binaries are missing (having ended tb).
func Unavailable(tb testing.TB) bool {
	tb.Helper()
	err := pgcluster.Available()
	if err == nil {
		return false
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("pgtest: %v (CI is set, so this fails instead of skipping)", err)
	} else {
		tb.Skipf("pgtest: %v", err)
	}
	return true
}

// Cluster returns the running cluster, starting it if needed.
func (c *Cluster) Cluster(tb testing.TB) *pgcluster.Cluster {
	tb.Helper()
	Unavailable(tb)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.started = true
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		c.c, c.err = pgcluster.Start(ctx, c.opts)
		cancel()
	}
	if c.err != nil {
		tb.Fatalf("pgtest: %v", c.err)
	}
	return c.c
}

// Close stops the cluster (if it was started) and removes its files.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return nil
	}
	err := c.c.Stop()
	c.c = nil
	return err
}

// DB is a database of its own for one test.
type DB struct {
	// Name is the database name, URL a superuser connection URL for it.
	Name, URL string
	// Cluster is the cluster holding it.
	Cluster *pgcluster.Cluster

	mu   sync.Mutex
	conn *pgx.Conn
}

// DB creates a fresh database for tb.
func (c *Cluster) DB(tb testing.TB) *DB {
	tb.Helper()
	cl := c.Cluster(tb)
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("t_%d", c.n)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	db := &DB{Name: name, URL: cl.URL(name), Cluster: cl}
	tb.Cleanup(func() {
		db.mu.Lock()
		defer db.mu.Unlock()
		if db.conn != nil {
			db.conn.Close(context.Background())
			db.conn = nil
		}
	})
	return db
}

// Conn opens a new connection to the database as the superuser, closed
// when tb ends.
func (db *DB) Conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		tb.Fatalf("pgtest: connect %s: %v", db.Name, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql with args on the database's shared connection and fails
// tb on error. Several statements may be given without args.
func (db *DB) Exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	if err := db.TryExec(sql, args...); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// TryExec is Exec returning the error.
func (db *DB) TryExec(sql string, args ...any) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.connectLocked(ctx); err != nil {
		return err
	}
	if len(args) == 0 {
		_, err := db.conn.PgConn().Exec(ctx, sql).ReadAll()
		return err
	}
	_, err := db.conn.Exec(ctx, sql, args...)
	return err
}

// connectLocked opens db's shared connection on first use; db.mu is held.
func (db *DB) connectLocked(ctx context.Context) error {
	if db.conn != nil {
		return nil
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return err
	}
	db.conn = conn
	return nil
}

// QueryRow runs sql and scans its one row into dest.
func (db *DB) QueryRow(tb testing.TB, sql string, args []any, dest ...any) {
	tb.Helper()
	db.mu.Lock()
	defer db.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.connectLocked(ctx); err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	if err := db.conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, err)
	}
}
