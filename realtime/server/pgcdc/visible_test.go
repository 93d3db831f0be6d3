package pgcdc

import (
	"context"
	"testing"
	"time"
)

// A row check waits until the transaction of its change, already in the
// stream, is visible to other sessions: the window between a commit's WAL
// record and its visibility, in which a check would find no row and drop
// the change for every subscriber, is made here by holding a transaction
// open (its xid is in no snapshot yet) and committing it later.
func TestChecksAwaitVisibleTransactions(t *testing.T) {
	t.Parallel()
	db := pg.DB(t)
	f := openFeed(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	open := db.Conn(t)
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var xid int64
	if err := tx.QueryRow(ctx, "select txid_current()").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	checker := db.Conn(t)
	d := &dispatcher{f: f}
	check := func(x int64) []*rowCheck {
		return []*rowCheck{{w: &work{ch: &change{xid: uint32(x)}}}}
	}

	// The query itself: in progress is not visible, a committed xid is.
	// (Not xid-1: the tests run in parallel on one cluster, and the xid
	// just before ours may be another test's open transaction.)
	var done int64
	if err := checker.QueryRow(ctx, "select txid_current()").Scan(&done); err != nil { // autocommit: committed on return
		t.Fatal(err)
	}
	var visible bool
	if err := checker.QueryRow(ctx, visibleQuery, []int64{int64(uint32(xid))}).Scan(&visible); err != nil || visible {
		t.Fatalf("open transaction %d visible = %v, %v", xid, visible, err)
	}
	if err := checker.QueryRow(ctx, visibleQuery, []int64{int64(uint32(done)), 3}).Scan(&visible); err != nil || !visible {
		t.Fatalf("committed transactions %d, 3 visible = %v, %v", done, visible, err)
	}

	// awaitVisible waits for the commit, however late.
	before := f.Stats().VisibilityWaits
	committed := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the transaction stays open a while
		committed <- tx.Commit(context.Background())
	}()
	start := time.Now()
	if err := d.awaitVisible(ctx, checker, check(xid)); err != nil {
		t.Fatalf("awaitVisible: %v", err)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if waits := f.Stats().VisibilityWaits - before; waits == 0 || time.Since(start) < 50*time.Millisecond {
		t.Errorf("awaitVisible returned after %v with %d waits: it did not wait for the commit", time.Since(start), waits)
	}
	// And returns at once for what is visible (and for no xid).
	if err := d.awaitVisible(ctx, checker, append(check(xid), check(0)...)); err != nil {
		t.Fatalf("awaitVisible of a committed transaction: %v", err)
	}
}
