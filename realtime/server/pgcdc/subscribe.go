package pgcdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Binding is one postgres_changes binding of a subscription, as a
// client sends it.
type Binding struct {
	// ID is the server's id of the binding (echoed in the join reply and
	// listed in the ids of each change it matches).
	ID int64
	// Event is INSERT, UPDATE, DELETE or "*" (anything else counts as "*").
	Event string
	// Schema "" means public; "*" every schema in the publication.
	Schema string
	// Table "" or "*" means every table of the schema in the
	// publication.
	Table string
	// Filter is "column=op.value[,...]" (see ParseFilter).
	Filter string
}

func (b Binding) describe() string {
	s := b.Schema
	if s == "" {
		s = "public"
	}
	t := b.Table
	if t == "" {
		t = "*"
	}
	ev := b.Event
	if ev == "" {
		ev = "*"
	}
	d := fmt.Sprintf("%s on %s.%s", ev, s, t)
	if b.Filter != "" {
		d += fmt.Sprintf(" filter %q", b.Filter)
	}
	return d
}

// Request asks for a subscription.
type Request struct {
	Bindings []Binding
	// Role is the PostgreSQL role of the subscriber (the token's "role"
	// claim); "" is anon.
	Role string
	// Claims are the token's claims (a JSON object), exposed to policies
	// as request.jwt.claims; nil is {"role": Role}.
	Claims json.RawMessage
	// Deliver receives the changes the subscription may see, in commit
	// order, on the feed's dispatcher goroutine: it must not block.
	Deliver func(Delivery)
	// OnStatus receives readiness and problems (nil: none), on the
	// dispatcher goroutine; it must not block nor call the feed.
	OnStatus func(Status)
}

// Delivery is one change for one subscription.
type Delivery struct {
	// IDs are the ids of the subscription's bindings the change matched.
	IDs []int64
	// Data is the "data" object of the postgres_changes message: schema,
	// table, commit_timestamp, type, columns, record, old_record, errors.
	// It is shared between subscriptions: do not modify it.
	Data json.RawMessage
	// Schema, Table and Type describe the change.
	Schema, Table, Type string
}

// StatusKind tells what a Status reports.
type StatusKind uint8

// Status kinds.
const (
	// StatusReady: changes committed from now on reach the subscription
	// (again, after an outage).
	StatusReady StatusKind = iota + 1
	// StatusError: a change could not be checked or delivered to this
	// subscription (a policy that raised, a role that vanished); the
	// subscription goes on.
	StatusError
	// StatusDown: the replication stream is down; the feed reconnects and
	// reports StatusReady again.
	StatusDown
)

// Status is a readiness change or a problem of a subscription.
type Status struct {
	Kind    StatusKind
	Message string
}

// SubscribeError is a subscription refused for reasons the user can act
// on, one per binding at fault.
type SubscribeError struct {
	Problems []Problem
}

// Problem is what is wrong with one binding.
type Problem struct {
	// Binding is the index of the binding in the request.
	Binding int
	// Reason says what is wrong, Fix what to do about it.
	Reason, Fix string
}

func (e *SubscribeError) Error() string {
	var b strings.Builder
	b.WriteString("Unable to subscribe to changes with given parameters: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Reason)
		if p.Fix != "" {
			b.WriteString(" (fix: ")
			b.WriteString(p.Fix)
			b.WriteString(")")
		}
	}
	return b.String()
}

// sbinding is a validated binding.
type sbinding struct {
	id     int64
	event  string // INSERT, UPDATE, DELETE or *
	schema string // "*": any
	table  string // "": any
	conds  []cond
}

func (b *sbinding) matchesTable(schema, table string) bool {
	return (b.schema == "*" || b.schema == schema) && (b.table == "" || b.table == table)
}

// Subscription receives the changes matching its bindings.
type Subscription struct {
	f         *Feed
	id        uint64
	role      string
	claims    string // JSON
	claimsKey string // role + claims: one row check per distinct key
	bindings  []sbinding
	deliver   func(Delivery)
	onStatus  func(Status)

	// guarded by f.mu
	ready    bool
	fenceSeq uint64

	// dispatcher-only: error throttling
	lastErr   time.Time
	errMuted  int
	closeOnce sync.Once
	closed    atomic.Bool
}

// Ready reports whether the subscription has been confirmed by the
// stream (see StatusReady).
func (s *Subscription) Ready() bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.ready
}

// Close ends the subscription: no delivery starts after Close returns
// (one in progress may finish).
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		f := s.f
		f.mu.Lock()
		s.closed.Store(true)
		delete(f.subs, s.id)
		f.rebuildIndexLocked()
		f.mu.Unlock()
	})
}

// Subscribe validates the bindings against the database and registers
// the subscription. It returns a *SubscribeError when a binding cannot
// work (missing table, table outside the publication, bad filter, unknown
// role). The subscription reports StatusReady once the stream confirms
// it.
func (f *Feed) Subscribe(ctx context.Context, req Request) (*Subscription, error) {
	role := req.Role
	if role == "" {
		role = "anon"
	}
	claims := string(req.Claims)
	if len(strings.TrimSpace(claims)) == 0 {
		b, _ := json.Marshal(map[string]string{"role": role})
		claims = string(b)
	} else if !json.Valid(req.Claims) {
		return nil, errors.New("pgcdc: Request.Claims is not JSON")
	}
	s := &Subscription{f: f, role: role, claims: claims, claimsKey: role + "\x00" + claims,
		deliver: req.Deliver, onStatus: req.OnStatus}
	if s.deliver == nil {
		s.deliver = func(Delivery) {}
	}
	if s.onStatus == nil {
		s.onStatus = func(Status) {}
	}
	var problems []Problem
	if p := f.checkRole(ctx, role); p != nil {
		for i := range req.Bindings {
			q := *p
			q.Binding = i
			problems = append(problems, q)
		}
		return nil, &SubscribeError{Problems: problems}
	}
	for i, b := range req.Bindings {
		sb, p, err := f.validate(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("pgcdc: subscribe: %w", err)
		}
		if p != nil {
			p.Binding = i
			problems = append(problems, *p)
			continue
		}
		s.bindings = append(s.bindings, sb)
	}
	if len(problems) > 0 {
		return nil, &SubscribeError{Problems: problems}
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("pgcdc: feed closed")
	}
	f.nextSub++
	s.id = f.nextSub
	f.subs[s.id] = s
	f.rebuildIndexLocked()
	noFences, up := f.noFences, f.up
	f.mu.Unlock()
	if noFences && up {
		f.send(item{kind: itemFence, seq: 0})
	} else {
		f.emitFences(ctx)
	}
	return s, nil
}

// checkRole checks that role exists and that the feed may act as it.
func (f *Feed) checkRole(ctx context.Context, role string) *Problem {
	var exists, member bool
	err := f.pool.QueryRow(ctx, `select r.oid is not null,
		r.oid is not null and pg_has_role(current_user, r.oid, 'MEMBER')
		from (select (select oid from pg_roles where rolname = $1) as oid) r`, role).Scan(&exists, &member)
	switch {
	case err != nil:
		return &Problem{Reason: fmt.Sprintf("cannot check role %q: %v", role, err)}
	case !exists:
		return &Problem{Reason: fmt.Sprintf("role %q (the token's role claim) does not exist in the database", role),
			Fix: fmt.Sprintf("CREATE ROLE %s NOLOGIN, and GRANT it SELECT on the tables it may watch", quoteIdent(role))}
	case !member:
		return &Problem{Reason: fmt.Sprintf("the database user of the server may not act as role %q to check row-level security", role),
			Fix: fmt.Sprintf("GRANT %s TO <the server's database user>", quoteIdent(role))}
	}
	return nil
}

// Querier runs queries: *pgx.Conn, *pgxpool.Pool and pgx.Tx all do.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ValidateBinding checks a binding against the catalog the way Subscribe
// does: the table exists and is in the publication, which publishes the
// event; the filter parses, names existing columns, uses supported
// operators and values of the columns' types. A non-nil Problem is the
// user's to fix; an error means the check itself failed.
func ValidateBinding(ctx context.Context, db Querier, publication string, b Binding) (*Problem, error) {
	_, p, err := validateBinding(ctx, db, publication, b)
	return p, err
}

func (f *Feed) validate(ctx context.Context, b Binding) (sbinding, *Problem, error) {
	return validateBinding(ctx, f.pool, f.cfg.Publication, b)
}

// validateBinding checks one binding against the catalog and binds its
// filter.
func validateBinding(ctx context.Context, db Querier, publication string, b Binding) (sbinding, *Problem, error) {
	sb := sbinding{id: b.ID, event: "*", schema: b.Schema, table: b.Table}
	switch e := strings.ToUpper(b.Event); e {
	case "INSERT", "UPDATE", "DELETE":
		sb.event = e
	}
	if sb.schema == "" {
		sb.schema = "public"
	}
	if sb.table == "*" {
		sb.table = ""
	}
	conds, err := ParseFilter(b.Filter)
	if err != nil {
		var fe *FilterError
		errors.As(err, &fe)
		return sb, &Problem{Reason: fmt.Sprintf("%s: Error parsing `filter` params: %s", b.describe(), fe.Reason),
			Fix: "write the filter as column=op.value with op one of " + SupportedOps + `, e.g. "id=eq.1" or "status=in.(open,done)"`}, nil
	}
	var pubIns, pubUpd, pubDel bool
	err = db.QueryRow(ctx, "select pubinsert, pubupdate, pubdelete from pg_publication where pubname = $1", publication).
		Scan(&pubIns, &pubUpd, &pubDel)
	if errors.Is(err, pgx.ErrNoRows) {
		return sb, &Problem{Reason: fmt.Sprintf("publication %q does not exist", publication),
			Fix: "CREATE PUBLICATION " + quoteIdent(publication)}, nil
	}
	if err != nil {
		return sb, nil, err
	}
	published := map[string]bool{"INSERT": pubIns, "UPDATE": pubUpd, "DELETE": pubDel}
	if sb.event != "*" && !published[sb.event] {
		return sb, &Problem{Reason: fmt.Sprintf("%s: publication %q does not publish %s", b.describe(), publication, sb.event),
			Fix: fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete')", quoteIdent(publication))}, nil
	}
	if sb.table == "" {
		if len(conds) > 0 {
			return sb, &Problem{Reason: fmt.Sprintf("%s: a filter needs a table", b.describe()),
				Fix: "name the table of the binding"}, nil
		}
		if sb.schema != "*" {
			var n int
			if err := db.QueryRow(ctx, "select count(*) from pg_publication_tables where pubname = $1 and schemaname = $2",
				publication, sb.schema).Scan(&n); err != nil {
				return sb, nil, err
			}
			if n == 0 {
				return sb, &Problem{Reason: fmt.Sprintf("%s: publication %q has no table in schema %q", b.describe(), publication, sb.schema),
					Fix: fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s.<table>", quoteIdent(publication), quoteIdent(sb.schema))}, nil
			}
		}
		return sb, nil, nil
	}
	if sb.schema == "*" {
		return sb, &Problem{Reason: fmt.Sprintf("%s: a table needs a schema", b.describe()), Fix: `set "schema" (e.g. "public")`}, nil
	}
	qualified := quoteIdent(sb.schema) + "." + quoteIdent(sb.table)
	var relid uint32
	var inPub bool
	err = db.QueryRow(ctx, `select c.oid, exists(select 1 from pg_publication_tables p
			where p.pubname = $3 and p.schemaname = n.nspname and p.tablename = c.relname)
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`, sb.schema, sb.table, publication).Scan(&relid, &inPub)
	if errors.Is(err, pgx.ErrNoRows) {
		return sb, &Problem{Reason: fmt.Sprintf("%s: table %s does not exist", b.describe(), qualified),
			Fix: "check the schema and table names (they are case-sensitive)"}, nil
	}
	if err != nil {
		return sb, nil, err
	}
	if !inPub {
		return sb, &Problem{Reason: fmt.Sprintf("%s: table %s is not in publication %q", b.describe(), qualified, publication),
			Fix: fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", quoteIdent(publication), qualified)}, nil
	}
	if len(conds) == 0 {
		return sb, nil, nil
	}
	rows, err := db.Query(ctx, `select a.attname, t.typname, a.atttypid::regtype::text
		from pg_attribute a join pg_type t on t.oid = a.atttypid
		where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped`, relid)
	if err != nil {
		return sb, nil, err
	}
	type colType struct{ typname, regtype string }
	cols := map[string]colType{}
	var names []string
	for rows.Next() {
		var n, tn, rt string
		if err := rows.Scan(&n, &tn, &rt); err != nil {
			rows.Close()
			return sb, nil, err
		}
		cols[n] = colType{tn, rt}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sb, nil, err
	}
	for _, c := range conds {
		ct, ok := cols[c.Column]
		if !ok {
			return sb, &Problem{Reason: fmt.Sprintf("%s: column %q does not exist in %s", b.describe(), c.Column, qualified),
				Fix: "filter on one of its columns: " + strings.Join(names, ", ")}, nil
		}
		bc := cond{column: c.Column, op: c.Op, kind: cmpKindOf(ct.typname)}
		for _, v := range c.Values {
			var canon *string
			err := db.QueryRow(ctx, "select ($1::text)::"+ct.regtype+"::text", v).Scan(&canon)
			if err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) {
					return sb, &Problem{Reason: fmt.Sprintf("%s: value %q does not read as column %s's type %s: %s", b.describe(), v, c.Column, ct.regtype, pgErr.Message),
						Fix: "give a value of the column's type"}, nil
				}
				return sb, nil, err
			}
			if canon == nil {
				return sb, &Problem{Reason: fmt.Sprintf("%s: value %q is NULL for type %s", b.describe(), v, ct.regtype)}, nil
			}
			bc.values = append(bc.values, *canon)
		}
		sb.conds = append(sb.conds, bc)
	}
	return sb, nil, nil
}

// subIndex finds the subscriptions of a table.
type subIndex struct {
	byTable  map[string][]*Subscription // "schema.table"
	bySchema map[string][]*Subscription // every table of a schema
	any      []*Subscription            // every schema
}

func (x *subIndex) lookup(schema, table string, out []*Subscription) []*Subscription {
	out = append(out[:0], x.byTable[schema+"\x00"+table]...)
	out = appendUnique(out, x.bySchema[schema])
	return appendUnique(out, x.any)
}

func appendUnique(out, add []*Subscription) []*Subscription {
	for _, s := range add {
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// rebuildIndexLocked publishes a new index of f.subs (f.mu held).
func (f *Feed) rebuildIndexLocked() {
	x := &subIndex{byTable: map[string][]*Subscription{}, bySchema: map[string][]*Subscription{}}
	for _, s := range f.subs {
		seen := map[string]bool{}
		for _, b := range s.bindings {
			var k string
			switch {
			case b.schema == "*":
				k = "*"
			case b.table == "":
				k = "s\x00" + b.schema
			default:
				k = "t\x00" + b.schema + "\x00" + b.table
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			switch {
			case b.schema == "*":
				x.any = append(x.any, s)
			case b.table == "":
				x.bySchema[b.schema] = append(x.bySchema[b.schema], s)
			default:
				key := b.schema + "\x00" + b.table
				x.byTable[key] = append(x.byTable[key], s)
			}
		}
	}
	f.index.Store(x)
}
