package privdoctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"rtm/realtime/mask"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc/doctor"
)

// Options say what to check.
type Options struct {
	// URL is the database URL (required). Its user should be able to
	// bypass row-level security on realtime.messages (a superuser, the
	// table's owner or BYPASSRLS) and act as the identity's role, as
	// Realtime's own user does.
	URL string
	// Topic is the channel's sub-topic ("room-1"; a "realtime:" prefix
	// is dropped), the value of realtime.topic(). Required.
	Topic string
	// As is who joins: a role ("anon", "authenticated", "service_role"),
	// "role:<user id>", the id (uuid) or email of a user of auth.users,
	// or a JWT whose claims are used as they are (not verified). Default
	// "anon". At most one of As and JWT.
	As string
	// JWT is the token the channel joins with, used as As's JWT form.
	JWT string
	// NoPresence checks broadcast only, as a join without presence
	// enabled is checked; by default presence is probed too.
	NoPresence bool
	// Now stamps the probe rows (their partition); nil means time.Now.
	Now func() time.Time
	// Timeout bounds the whole run. Default 20 s.
	Timeout time.Duration
}

// maxNotices bounds the warnings kept from the test sends.
const maxNotices = 16

// identity is who joins, resolved.
type identity struct {
	role, sub, claims string
	// from says where it came from ("JWT eyJh…abcd", "auth.users", …).
	from string
	// expired is set for a JWT whose exp is past.
	expired string
}

type run struct {
	o       Options
	now     time.Time
	conn    *pgx.Conn
	who     identity
	checks  []doctor.Check
	notices []string

	// Facts later checks use.
	user       string // the connecting user
	wal        string
	partition  bool // realtime.messages is partitioned
	roleOK     bool // the identity's role exists and may be acted as
	bypass     bool // the identity's role bypasses RLS
	policies   []policy
	anySelect  bool // some SELECT (or ALL) policy exists, for any role
	readOK     server.Permissions
	readErr    error
	writeOK    server.Permissions
	writeErr   error
	writeProbe bool // the write check ran
}

// Run runs every check. It returns an error only for bad options; a
// database that cannot be reached is a red check.
func Run(ctx context.Context, o Options) (doctor.Report, error) {
	o.Topic = strings.TrimPrefix(strings.TrimSpace(o.Topic), "realtime:")
	switch {
	case o.URL == "":
		return doctor.Report{}, errors.New("privdoctor: a database URL is required")
	case o.Topic == "":
		return doctor.Report{}, errors.New("privdoctor: a topic is required")
	case o.As != "" && o.JWT != "":
		return doctor.Report{}, errors.New("privdoctor: give --as or --jwt, not both")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	d := &run{o: o, now: o.Now().UTC()}
	if err := d.parseIdentity(); err != nil {
		return doctor.Report{}, err
	}
	d.all(ctx)
	return doctor.Report{Checks: d.checks}, nil
}

// add records a check, its texts masked (a token never shows).
func (d *run) add(name string, ok bool, detail, fix string) {
	d.checks = append(d.checks, doctor.Check{Name: name, OK: ok, Detail: mask.Text(detail), Fix: mask.Text(fix)})
}

func (d *run) all(ctx context.Context) {
	if !d.connect(ctx) {
		return
	}
	defer d.conn.Close(context.WithoutCancel(ctx))
	if !d.schema(ctx) {
		return
	}
	d.partitionCheck(ctx)
	d.rls(ctx)
	if d.identityCheck(ctx) {
		d.grants(ctx)
		d.policyList(ctx)
		d.reads(ctx)
		d.writes(ctx)
	}
	d.publicOrPrivate()
	d.databaseBroadcasts(ctx)
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	jwtRE  = regexp.MustCompile(`^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$`)
	// plainIdent is an identifier that needs no quotes.
	plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// isUser reports whether as names a user of auth.users (an id or an
// email) rather than a role (or role:sub, whose sub may be an email).
func isUser(as string) bool {
	return uuidRE.MatchString(as) || strings.Contains(as, "@") && !strings.Contains(as, ":")
}

// parseIdentity reads As or JWT; users of auth.users are looked up once
// connected (lookupUser).
func (d *run) parseIdentity() error {
	as := strings.TrimSpace(d.o.As)
	if d.o.JWT != "" {
		as = strings.TrimSpace(d.o.JWT)
		if !jwtRE.MatchString(as) {
			return errors.New("privdoctor: --jwt is not a JWT (three base64url parts starting eyJ)")
		}
	}
	if isUser(as) {
		d.who = identity{role: "authenticated", sub: as, from: "auth.users"}
		return nil
	}
	role, claims, err := doctor.ParseAs(as)
	if err != nil {
		return fmt.Errorf("privdoctor: %w", err)
	}
	d.who = identity{role: role, claims: claims, from: "minted claims"}
	var c map[string]any
	_ = json.Unmarshal([]byte(claims), &c)
	d.who.sub, _ = c["sub"].(string)
	if jwtRE.MatchString(as) {
		d.who.from = "the JWT " + mask.Secret(as) + " (claims decoded, not verified)"
		if exp, ok := c["exp"].(float64); !ok {
			d.who.expired = "the token has no exp claim: Supabase refuses it (InvalidJWTToken)"
		} else if at := time.Unix(int64(exp), 0); at.Before(d.now) {
			d.who.expired = fmt.Sprintf("the token expired at %s: Supabase refuses the join with \"InvalidJWTToken: Token has expired %d seconds ago\"",
				at.UTC().Format(time.RFC3339), int64(d.now.Sub(at).Seconds()))
		}
	}
	return nil
}

// lookupUser resolves a user id or email through auth.users and mints
// the claims Supabase Auth would put in the user's token.
func (d *run) lookupUser(ctx context.Context) error {
	var exists bool
	if err := d.conn.QueryRow(ctx, `select to_regclass('auth.users') is not null`).Scan(&exists); err != nil {
		return err
	}
	key := d.who.sub
	if !exists {
		if uuidRE.MatchString(key) {
			d.who.from = "minted claims (no auth.users table: the id is taken as the sub of an authenticated user)"
			d.who.claims = mustJSON(map[string]any{"role": "authenticated", "sub": key, "aud": "authenticated"})
			return nil
		}
		return fmt.Errorf("%q is an email, and this database has no auth.users to look it up in: give --as authenticated:<user id>", key)
	}
	var id, email, role, aud string
	err := d.conn.QueryRow(ctx, `select id::text, coalesce(email, ''), coalesce(nullif(role, ''), 'authenticated'), coalesce(nullif(aud, ''), 'authenticated')
		from auth.users where id::text = $1 or lower(email) = lower($1) limit 1`, key).Scan(&id, &email, &role, &aud)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("no user %q in auth.users", key)
	}
	if err != nil {
		return fmt.Errorf("looking up %q in auth.users: %w", key, err)
	}
	claims := map[string]any{"role": role, "sub": id, "aud": aud, "exp": d.now.Add(time.Hour).Unix(), "iat": d.now.Unix()}
	if email != "" {
		claims["email"] = email
	}
	d.who = identity{role: role, sub: id, claims: mustJSON(claims), from: "auth.users (claims minted as Supabase Auth's)"}
	return nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// request is the authorization request of the identity on the topic.
func (d *run) request(presence bool) server.AuthorizationRequest {
	return server.AuthorizationRequest{Topic: d.o.Topic, Role: d.who.role, Sub: d.who.sub, Claims: json.RawMessage(d.who.claims),
		Headers: json.RawMessage(`{}`), Presence: presence}
}

// connect opens the connection, collecting the warnings of the test
// sends, and checks the connecting user's rights.
func (d *run) connect(ctx context.Context) bool {
	cfg, err := pgx.ParseConfig(d.o.URL)
	if err != nil {
		d.add("connection", false, "the database URL does not parse: "+err.Error(), "give a URL like postgres://user:password@host:5432/db")
		return false
	}
	cfg.RuntimeParams["application_name"] = "rtm doctor"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if len(d.notices) < maxNotices {
			d.notices = append(d.notices, truncate(n.Message, 500))
		}
	}
	d.conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		d.add("connection", false, fmt.Sprintf("cannot connect to %s: %v", mask.URL(d.o.URL), err), "check the URL, the password and that the server accepts connections")
		return false
	}
	var version string
	if err := d.conn.QueryRow(ctx, `select current_setting('server_version'), current_setting('wal_level'), current_user`).Scan(&version, &d.wal, &d.user); err != nil {
		d.add("connection", false, err.Error(), "")
		d.conn.Close(context.WithoutCancel(ctx))
		return false
	}
	d.add("connection", true, fmt.Sprintf("PostgreSQL %s as %q, wal_level=%s", version, d.user, d.wal), "")
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// quoteLiteral quotes an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteIdent quotes an SQL identifier when it needs it.
func quoteIdent(s string) string {
	if plainIdent.MatchString(s) {
		return s
	}
	return pgx.Identifier{s}.Sanitize()
}
