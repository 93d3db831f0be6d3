package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"rtm/realtime/server/pgcdc/pgcluster"
)

var pg = New()

func TestMain(m *testing.M) { Main(m, pg) }

func TestClusterIsLogicalAndIsolated(t *testing.T) {
	a, b := pg.DB(t), pg.DB(t)
	if a.Name == b.Name || a.URL == b.URL {
		t.Fatalf("two tests share database %s", a.Name)
	}
	var wal, user string
	a.QueryRow(t, "select current_setting('wal_level'), current_user", nil, &wal, &user)
	if wal != "logical" || user != "postgres" {
		t.Errorf("wal_level %q user %q, want logical postgres", wal, user)
	}
	a.Exec(t, "create table x(id int primary key); insert into x values (1)")
	if err := b.TryExec("select * from x"); err == nil {
		t.Error("table of database a visible in database b")
	}
	var n int
	a.QueryRow(t, "select count(*) from x where id = $1", []any{1}, &n)
	if n != 1 {
		t.Errorf("count %d", n)
	}
	// The server runs as the postgres OS user when we are root.
	cl := pg.Cluster(t)
	st, err := os.Stat(filepath.Join(cl.Dir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && st.Sys() != nil {
		if owner := fileOwner(st); owner == 0 {
			t.Errorf("data directory owned by root; the server must not run as root")
		}
	}
}

// A cluster of its own: Stop removes the directory and the server stops
// accepting connections.
func TestStartStop(t *testing.T) {
	Unavailable(t)
	ctx := context.Background()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{GeneratePassword: true})
	if err != nil {
		t.Fatal(err)
	}
	dir, url := cl.Dir(), cl.URL("postgres")
	if !strings.Contains(url, ":") || !strings.HasPrefix(url, "postgres://postgres:") {
		t.Errorf("URL %s has no password", url)
	}
	if err := cl.Exec(ctx, "postgres", "select 1"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s still there after Stop: %v", dir, err)
	}
	if err := cl.Exec(ctx, "postgres", "select 1"); err == nil {
		t.Error("server still answers after Stop")
	}
	if err := cl.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func fileOwner(st os.FileInfo) uint32 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid
	}
	return 0
}
