package pgcdc

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// A feed with Config.Inserts creates its publication FOR TABLE, names
// its temporary slot by SlotPrefix, and hands over each INSERT (not
// UPDATE or DELETE) with its values as PostgreSQL prints them.
func TestInserts(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	db.Exec(t, `create schema s; create table s.rows (id int8 primary key, note text, data jsonb, blob bytea)`)
	var mu sync.Mutex
	var got []string
	f := openFeed(t, db, func(c *Config) {
		c.Publication, c.Table, c.SlotPrefix = "rows_pub", "s.rows", "rows_slot_"
		c.Inserts = func(in Insert) {
			note, okNote := in.Value("note")
			data, _ := in.Value("data")
			blob, _ := in.Value("blob")
			_, okMissing := in.Value("missing")
			mu.Lock()
			got = append(got, strings.Join([]string{in.Schema, in.Table, string(note), string(data), string(blob),
				map[bool]string{true: "note", false: "null"}[okNote], map[bool]string{true: "?", false: ""}[okMissing]}, "|"))
			mu.Unlock()
		}
	})
	var tables []string
	for _, q := range []string{
		"select schemaname || '.' || tablename from pg_publication_tables where pubname = 'rows_pub'",
		"select slot_name from pg_replication_slots where slot_name like 'rows_slot_%' and temporary",
	} {
		var s string
		db.QueryRow(t, q, nil, &s)
		tables = append(tables, s)
	}
	if tables[0] != "s.rows" || !strings.HasPrefix(tables[1], "rows_slot_") {
		t.Errorf("publication table, slot: %q", tables)
	}
	db.Exec(t, `insert into s.rows values (1, 'a', '{"k": 1}', '\x00ff'), (2, null, null, null);
		update s.rows set note = 'b'; delete from s.rows where id = 2; insert into s.rows (id) values (3)`)
	want := []string{`s|rows|a|{"k": 1}|\x00ff|note|`, `s|rows||||null|`, `s|rows||||null|`}
	deadline := time.Now().Add(wait)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.Close() // nothing more arrives
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("inserts:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// An existing publication that does not publish Config.Table is used as
// it is, with a warning that says how to add the table.
func TestInsertsPublicationWithoutTable(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	db.Exec(t, `create table t (id int8 primary key); create publication other_pub`)
	var logs bytes.Buffer
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	f, err := Open(ctx, Config{URL: db.URL, Publication: "other_pub", Table: "public.t", Inserts: func(Insert) {},
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `fix="ALTER PUBLICATION \"other_pub\" ADD TABLE \"public\".\"t\""`) {
		t.Errorf("logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
