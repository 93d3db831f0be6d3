package privdoctor

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"rtm/realtime/server/pgrealtime"
)

// maxFunctions bounds the functions checked.
const maxFunctions = 50

// logNote says what the doctor cannot see.
const logNote = "earlier WarnSendingBroadcastMessage warnings are in PostgreSQL's log, which the doctor cannot read (grep it for WarnSendingBroadcastMessage)"

// sender is a function outside the realtime schema that calls
// realtime.send, realtime.send_binary or realtime.broadcast_changes.
type sender struct {
	name, owner, src, triggers string
	definer, ownerBypass       bool
}

// callRE finds the calls; callPrivate reads their private arguments.
var callRE = regexp.MustCompile(`(?i)realtime\s*\.\s*(send_binary|send|broadcast_changes)\s*\(`)

// privateFlags returns the private argument of each call in src:
// "true", "false", or the expression as written; broadcast_changes
// always sends private messages (it calls realtime.send without it).
func privateFlags(src string) []string {
	var out []string
	for _, m := range callRE.FindAllStringSubmatchIndex(src, -1) {
		fn := strings.ToLower(src[m[2]:m[3]])
		if fn == "broadcast_changes" {
			out = append(out, "true")
			continue
		}
		args := splitArgs(src[m[1]:])
		flag := "true" // the default
		for i, a := range args {
			if k, v, ok := strings.Cut(a, "=>"); ok {
				if strings.EqualFold(strings.TrimSpace(k), "private") {
					flag = strings.TrimSpace(v)
				}
				continue
			}
			if k, v, ok := strings.Cut(a, ":="); ok && strings.EqualFold(strings.TrimSpace(k), "private") {
				flag = strings.TrimSpace(v)
				continue
			}
			if i == 3 {
				flag = a
			}
		}
		out = append(out, strings.ToLower(strings.TrimSpace(flag)))
	}
	return out
}

// splitArgs splits the argument list that starts s (after the opening
// parenthesis) at its top-level commas, up to the closing parenthesis.
func splitArgs(s string) []string {
	var args []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')' && depth == 0:
			return append(args, strings.TrimSpace(s[start:i]))
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(args, strings.TrimSpace(s[start:]))
}

func (d *run) databaseBroadcasts(ctx context.Context) {
	rows, err := d.conn.Query(ctx, `select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), pg_get_userbyid(p.proowner)::text, coalesce(o.rolsuper or o.rolbypassrls, false)
			or p.proowner = (select relowner from pg_class where oid = to_regclass('realtime.messages')),
			p.prosecdef, p.prosrc,
			coalesce((select string_agg(format('%s on %s', t.tgname, t.tgrelid::regclass), ', ' order by t.tgname)
				from pg_trigger t where t.tgfoid = p.oid and not t.tgisinternal), '')
		from pg_proc p join pg_namespace n on n.oid = p.pronamespace left join pg_roles o on o.oid = p.proowner
		where n.nspname not in ('realtime', 'pg_catalog', 'information_schema')
			and p.prosrc ~* 'realtime\s*\.\s*(send|send_binary|broadcast_changes)\s*\('
		order by 1 limit $1`, maxFunctions)
	if err != nil {
		d.add("db broadcast", false, err.Error(), "")
		return
	}
	senders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sender, error) {
		var s sender
		err := r.Scan(&s.name, &s.owner, &s.ownerBypass, &s.definer, &s.src, &s.triggers)
		return s, err
	})
	if err != nil {
		d.add("db broadcast", false, err.Error(), "")
		return
	}
	if len(senders) == 0 {
		d.add("db broadcast", true, "no function outside the realtime schema calls realtime.send or realtime.broadcast_changes; "+logNote, "")
		return
	}
	sends := map[string]string{} // role -> the test send's warning
	for _, s := range senders {
		d.sender(ctx, s, sends)
	}
}

// sender checks one function: SECURITY DEFINER, its private flags, and a
// test realtime.send on the topic as the role its INSERT runs as.
func (d *run) sender(ctx context.Context, s sender, sends map[string]string) {
	var bad, fixes []string
	what := s.name
	if s.triggers != "" {
		what += " (trigger " + s.triggers + ")"
	} else {
		what += " (no trigger)"
	}
	facts := []string{}
	for _, f := range privateFlags(s.src) {
		switch f {
		case "true":
		case "false":
			bad = append(bad, "sends public messages (private => false): they reach public channels only, never the private channel "+d.o.Topic)
			fixes = append(fixes, "send with private => true (realtime.send's default), or join the channel public")
		default:
			facts = append(facts, "private is computed ("+f+"): the doctor cannot tell which channels get it")
		}
	}
	var runAs, how string
	if s.definer {
		runAs, how = s.owner, fmt.Sprintf("SECURITY DEFINER: its INSERT runs as its owner %q", s.owner)
		if s.ownerBypass {
			how += ", which bypasses the policies"
		}
	} else {
		runAs = d.who.role
		how = fmt.Sprintf("not SECURITY DEFINER: its INSERT runs as the role that fired it, subject to that role's INSERT policies (checked as %q)", runAs)
	}
	warning, ok := sends[runAs]
	if !ok {
		warning = d.testSend(ctx, runAs)
		sends[runAs] = warning
	}
	switch {
	case warning == "" && d.wal != "logical":
		bad = append(bad, fmt.Sprintf("wal_level=%s: the server cannot stream realtime.messages by logical replication, so no message is delivered", d.wal))
		fixes = append(fixes, "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
	case warning == "":
		facts = append(facts, fmt.Sprintf("a test realtime.send on %s as %q, rolled back, raised no warning", d.o.Topic, runAs))
	default:
		bad = append(bad, fmt.Sprintf("a test realtime.send on %s as %q, rolled back, raised %s: its messages are lost", d.o.Topic, runAs, warning))
		if s.definer {
			fixes = append(fixes, writeSQL(runAs, d.o.Topic, []string{"broadcast"}))
		} else {
			fixes = append(fixes, "make the function SECURITY DEFINER SET search_path = '' (as Supabase's docs do), or add this INSERT policy: "+writeSQL(runAs, d.o.Topic, []string{"broadcast"}))
		}
	}
	detail := what + ": " + strings.Join(append(append([]string{how}, bad...), facts...), "; ") + "; " + logNote
	d.add("db broadcast", len(bad) == 0, detail, strings.Join(fixes, "; "))
}

// testSend calls realtime.send on the topic (private) as role, in a
// transaction it rolls back (nothing is delivered: an aborted
// transaction is never decoded), and returns the warning it raised, or
// "".
func (d *run) testSend(ctx context.Context, role string) string {
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	req := d.request(false)
	req.Role = role
	if err := pgrealtime.ApplySettings(ctx, tx, req); err != nil {
		return "an error acting as " + role + ": " + errText(err)
	}
	d.notices = d.notices[:0]
	if _, err := tx.Exec(ctx, `select realtime.send(jsonb_build_object('rtm_doctor', true), 'rtm-doctor', $1, true)`, d.o.Topic); err != nil {
		return "an error: " + errText(err)
	}
	for _, n := range d.notices {
		if strings.Contains(n, "BroadcastMessage") {
			return n
		}
	}
	return ""
}
