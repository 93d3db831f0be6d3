package pgrealtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"rtm/realtime/server"
)

// SQLSTATEs the checks tell apart.
const (
	stateInsufficientPrivilege = "42501" // incl. "new row violates row-level security policy"
	stateCheckViolation        = "23514" // incl. "no partition of relation … found for row"
)

// setConnConfig is Realtime.Tenants.Authorization.set_conn_config/2.
const setConnConfig = `SELECT
  set_config('role', $1, true),
  set_config('realtime.topic', $2, true),
  set_config('request.jwt.claims', $3, true),
  set_config('request.jwt.claim.sub', $4, true),
  set_config('request.jwt.claim.role', $5, true),
  set_config('request.headers', $6, true)`

// missingPartition is Supabase's refusal when today's partition is missing.
func missingPartition(err error) *server.AuthorizationError {
	return &server.AuthorizationError{Code: "MissingPartition",
		Message: "Realtime was unable to find the expected messages partition", Log: "MissingPartition", Err: err}
}

// rlsPolicyError is a policy that failed: refused as Unauthorized, logged
// as RlsPolicyError with the policy's error.
func rlsPolicyError(topic string, err error) *server.AuthorizationError {
	return &server.AuthorizationError{Code: "Unauthorized",
		Message: "You do not have permissions to read from this Channel topic: " + topic, Log: "RlsPolicyError", Err: err}
}

// newID returns a random (version 4) uuid for a probe row.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ApplySettings applies the session settings of req in tx, local to it,
// as Supabase's set_conn_config/2: role, realtime.topic,
// request.jwt.claims, request.jwt.claim.sub, request.jwt.claim.role and
// request.headers. What runs after it in tx runs as req.Role.
func ApplySettings(ctx context.Context, tx pgx.Tx, req server.AuthorizationRequest) error {
	claims, headers := string(req.Claims), string(req.Headers)
	if claims == "" {
		claims = "{}"
	}
	if headers == "" {
		headers = "{}"
	}
	_, err := tx.Exec(ctx, setConnConfig, req.Role, req.Topic, claims, req.Sub, req.Role, headers)
	return err
}

// AuthorizeRead runs Supabase's join check (Authorization
// get_read_policies_for_connection/4), in one transaction rolled back at
// the end: one probe row per extension (broadcast, and presence when
// req.Presence) inserted as the connecting user with only id, topic,
// extension, updated_at and inserted_at (so private is false, event and
// payload NULL); the session settings; SELECT id … WHERE id = ANY(ids)
// as the token's role. An extension may be read when its probe row is
// visible. A missing partition is a MissingPartition error; a policy
// that errors is an RlsPolicyError (refused as Unauthorized).
func (db *DB) AuthorizeRead(ctx context.Context, req server.AuthorizationRequest) (server.Permissions, error) {
	return ReadCheck(ctx, db.pool, db.cfg.Now(), req)
}

// Beginner starts a transaction: a *pgx.Conn, a *pgxpool.Pool or a
// pgx.Tx (whose Begin is a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ReadCheck is [DB.AuthorizeRead] on any connection, with probe rows
// stamped now: the doctor (package privdoctor) runs it without Open's
// bootstrap.
func ReadCheck(ctx context.Context, conn Beginner, now time.Time, req server.AuthorizationRequest) (server.Permissions, error) {
	var p server.Permissions
	now = now.UTC()
	bcast, pres := newID(), newID()
	ids := []string{bcast}
	insert := `INSERT INTO "realtime"."messages" ("id","topic","extension","updated_at","inserted_at") VALUES ($1::uuid,$2,'broadcast',$3,$3)`
	args := []any{bcast, req.Topic, now}
	if req.Presence {
		insert += `,($4::uuid,$2,'presence',$3,$3)`
		args = append(args, pres)
		ids = append(ids, pres)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return p, fmt.Errorf("pgrealtime: read check: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, insert, args...); err != nil {
		if sqlState(err) == stateCheckViolation {
			return p, missingPartition(err)
		}
		return p, fmt.Errorf("pgrealtime: read check probe: %w", err)
	}
	if err := ApplySettings(ctx, tx, req); err != nil {
		return p, rlsPolicyError(req.Topic, err)
	}
	rows, err := tx.Query(ctx, `SELECT m0."id"::text FROM "realtime"."messages" AS m0 WHERE (m0."id" = ANY($1::uuid[]))`, ids)
	if err != nil {
		return p, rlsPolicyError(req.Topic, err)
	}
	seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return p, rlsPolicyError(req.Topic, err)
	}
	for _, id := range seen {
		switch id {
		case bcast:
			p.Broadcast = true
		case pres:
			p.Presence = req.Presence
		}
	}
	return p, nil
}

// AuthorizeWrite runs Supabase's write check (Authorization
// get_write_policies_for_connection/4), in one transaction rolled back at
// the end: the session settings first, then per extension (broadcast,
// presence) a savepoint and INSERT (topic, extension, updated_at,
// inserted_at) without RETURNING, as the token's role; insufficient
// privilege (42501, which covers an RLS denial) means no write. A missing
// partition is a MissingPartition error, any other error an
// RlsPolicyError.
func (db *DB) AuthorizeWrite(ctx context.Context, req server.AuthorizationRequest) (server.Permissions, error) {
	return WriteCheck(ctx, db.pool, db.cfg.Now(), req)
}

// WriteCheck is [DB.AuthorizeWrite] on any connection, with rows
// stamped now.
func WriteCheck(ctx context.Context, conn Beginner, now time.Time, req server.AuthorizationRequest) (server.Permissions, error) {
	var p server.Permissions
	now = now.UTC()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return p, fmt.Errorf("pgrealtime: write check: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := ApplySettings(ctx, tx, req); err != nil {
		return p, rlsPolicyError(req.Topic, err)
	}
	probe := func(extension string) (bool, error) {
		sp, err := tx.Begin(ctx) // SAVEPOINT
		if err != nil {
			return false, err
		}
		_, err = sp.Exec(ctx, `INSERT INTO "realtime"."messages" ("topic","extension","updated_at","inserted_at") VALUES ($1,$2,$3,$3)`,
			req.Topic, extension, now)
		if rerr := sp.Rollback(ctx); err == nil && rerr != nil {
			return false, rerr
		}
		switch {
		case err == nil:
			return true, nil
		case sqlState(err) == stateInsufficientPrivilege:
			return false, nil
		case sqlState(err) == stateCheckViolation:
			return false, missingPartition(err)
		}
		return false, rlsPolicyError(req.Topic, err)
	}
	if p.Broadcast, err = probe("broadcast"); err != nil {
		return server.Permissions{}, err
	}
	if p.Presence, err = probe("presence"); err != nil {
		return server.Permissions{}, err
	}
	return p, nil
}

// Authorizer returns db as the server's Authorizer.
func (db *DB) Authorizer() server.Authorizer { return db }

// sqlState returns the SQLSTATE of a PostgreSQL error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
