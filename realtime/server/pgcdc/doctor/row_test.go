package doctor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestRowVerdict: one row's verdict per subscriber, as Realtime
// evaluates it; a record that names no row is an error, not a verdict.
func TestRowVerdict(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	db.Exec(t, healthy)
	ctx := context.Background()
	rows, err := OpenRows(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	verdict := func(as, record string) (RowVerdict, error) {
		role, claims, err := ParseAs(as)
		if err != nil {
			t.Fatal(err)
		}
		return rows.Verdict(ctx, role, claims, "public", "todos", json.RawMessage(record))
	}
	v, err := verdict("authenticated:u1", `{"id":1,"owner":"u1","title":"one"}`)
	if err != nil || !v.Visible || !strings.Contains(v.Detail, "sees row id=1") {
		t.Errorf("u1's own row: %+v %v", v, err)
	}
	v, err = verdict("authenticated:u1", `{"id":2,"owner":"u2","title":"two"}`)
	if err != nil || v.Visible || !strings.Contains(v.Detail, "row-level security hides row id=2") || !strings.Contains(v.Detail, "mine (SELECT") {
		t.Errorf("u2's row seen by u1: %+v %v", v, err)
	}
	v, err = verdict("anon", `{"id":1}`)
	if err != nil || v.Visible || !strings.Contains(v.Detail, `role "anon" may not select`) {
		t.Errorf("anon: %+v %v", v, err)
	}
	for _, rec := range []string{`{"id":99}`, `{"title":"x"}`, `[]`, `nope`} {
		if _, err := verdict("authenticated:u1", rec); err == nil {
			t.Errorf("record %s: no error", rec)
		}
	}
	if _, err := rows.Verdict(ctx, "authenticated", `{}`, "public", "missing", json.RawMessage(`{"id":1}`)); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing table: %v", err)
	}
}
