package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

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
