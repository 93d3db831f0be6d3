package pgcdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Probe proves that a change feed on the database would work end to end,
// without changing anything lasting: it opens a replication connection,
// creates a temporary slot, streams the publication through pgoutput,
// emits a logical decoding message and waits until the stream carries it
// back. It returns how long the round trip took. It does not create the
// publication; a missing one is an error.
func Probe(ctx context.Context, url, publication string) (time.Duration, error) {
	if publication == "" {
		publication = DefaultPublication
	}
	rcfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return 0, fmt.Errorf("database URL: %w", err)
	}
	setSessionParams(rcfg.RuntimeParams)
	rcfg.RuntimeParams["replication"] = "database"
	rcfg.RuntimeParams["application_name"] = "rtm doctor"
	conn, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return 0, fmt.Errorf("replication connection: %w", err)
	}
	defer conn.Close(context.Background())
	qcfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return 0, err
	}
	setSessionParams(qcfg.RuntimeParams)
	q, err := pgconn.ConnectConfig(ctx, qcfg)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer q.Close(context.Background())
	var exists bool
	res, err := q.Exec(ctx, "select 1 from pg_publication where pubname = "+quoteLiteral(publication)).ReadAll()
	if err != nil {
		return 0, err
	}
	exists = len(res) == 1 && len(res[0].Rows) == 1
	if !exists {
		return 0, fmt.Errorf("publication %q does not exist", publication)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return 0, err
	}
	id := hex.EncodeToString(b)
	slot := "rtm_probe_" + id
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"}); err != nil {
		return 0, slotError(err)
	}
	args := []string{"proto_version '1'", "publication_names " + quoteLiteral(publication), "messages 'true'"}
	if err := pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return 0, fmt.Errorf("start replication: %w", err)
	}
	start := time.Now()
	prefix := "rtm_probe_" + id
	if _, err := q.Exec(ctx, "select pg_logical_emit_message(false, "+quoteLiteral(prefix)+", 'ready')").ReadAll(); err != nil {
		return 0, fmt.Errorf("emit a logical decoding message: %w", err)
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return 0, fmt.Errorf("the readiness message did not come back: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 || msg.Data[0] != pglogrepl.XLogDataByteID {
				continue
			}
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return 0, err
			}
			m, err := decodeMessage(xld.WALData)
			if err == nil && m.typ == msgMessage && m.prefix == prefix {
				return time.Since(start), nil
			}
		case *pgproto3.ErrorResponse:
			return 0, pgconn.ErrorResponseToPgError(msg)
		}
		if ctx.Err() != nil {
			return 0, errors.New("the readiness message did not come back in time")
		}
	}
}
