package privdoctor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"rtm/realtime/server"
	"rtm/realtime/server/pgrealtime"
)

// refusal is Supabase's join error for a topic nobody may read.
func refusal(topic string) string {
	return "Unauthorized: You do not have permissions to read from this Channel topic: " + topic
}

// failure describes an error of a check and its fix; raising names the
// policy that raised, when one was found.
func (d *run) failure(ctx context.Context, cmd string, err error) (detail, fix string) {
	var ae *server.AuthorizationError
	if !errors.As(err, &ae) {
		return "the check could not run: " + errText(err), "see the checks above"
	}
	cause := ae.Err
	if cause == nil {
		cause = errors.New(ae.Message)
	}
	if ae.Code == "MissingPartition" {
		return ae.Code + ": " + ae.Message, pgrealtime.PartitionSQL(d.now)
	}
	detail = fmt.Sprintf("%s: %s (Supabase logs RlsPolicyError with it and refuses as \"%s\")", ae.Log, errText(cause), refusal(d.o.Topic))
	if sqlState(cause) == "42501" {
		return detail, "see the grants check"
	}
	if p, perr := d.raising(ctx, cmd); p != "" {
		detail += fmt.Sprintf("; policy %q raises %s", p, errText(perr))
	}
	return detail, "make the policy return false instead of raising for such rows and claims (the probe row has event and payload NULL and private false)"
}

// raising evaluates, one by one, the expressions of the identity's
// policies for cmd on a probe row, with the session settings of the
// check but as the connecting user (so no other policy runs), and
// returns the first that raises, with its error.
func (d *run) raising(ctx context.Context, cmd string) (string, error) {
	for _, p := range d.policies {
		expr := p.using
		if cmd == "INSERT" {
			expr = p.check
		}
		if !p.applies || !p.covers(cmd) || expr == "" {
			continue
		}
		if err := d.evaluate(ctx, expr); err != nil {
			return p.name, err
		}
	}
	return "", nil
}

// evaluate runs expr on a probe row in a transaction it rolls back and
// returns the error expr raised; a failure to set the probe up is not
// the policy's, so it reports none.
func (d *run) evaluate(ctx context.Context, expr string) error {
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return nil
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var id string
	if err := tx.QueryRow(ctx, `INSERT INTO "realtime"."messages" ("topic","extension","updated_at","inserted_at") VALUES ($1,'broadcast',$2,$2) RETURNING id::text`,
		d.o.Topic, d.now).Scan(&id); err != nil {
		return nil
	}
	if err := pgrealtime.ApplySettings(ctx, tx, d.request(false)); err != nil {
		return nil
	}
	if _, err := tx.Exec(ctx, `select set_config('role', 'none', true)`); err != nil {
		return nil
	}
	var ok *bool
	return tx.QueryRow(ctx, `select (`+expr+`)::bool from realtime.messages where id = $1::uuid`, id).Scan(&ok)
}

// reads runs Supabase's read check as the identity.
func (d *run) reads(ctx context.Context) {
	presence := !d.o.NoPresence
	d.readOK, d.readErr = pgrealtime.ReadCheck(ctx, d.conn, d.now, d.request(presence))
	role, topic := d.who.role, d.o.Topic
	if d.readErr != nil {
		detail, fix := d.failure(ctx, "SELECT", d.readErr)
		d.add("read broadcast", false, detail, fix)
		if presence {
			d.add("read presence", false, "the read check probes both in one query: "+detail, fix)
		}
		d.add("private join", false, fmt.Sprintf("refused: a private join of %s as %q fails", topic, role), fix)
		return
	}
	if d.readOK.Broadcast {
		d.add("read broadcast", true, fmt.Sprintf("%q may read broadcast on %s (its probe row is visible)", role, topic), "")
	} else {
		d.add("read broadcast", false, fmt.Sprintf("the SELECT policies hide the broadcast probe row from %q: broadcasts on %s are withheld from it", role, topic),
			readSQL(role, topic, []string{"broadcast"}))
	}
	switch {
	case !presence:
		d.add("read presence", true, "not probed (--presence=false): a join without presence enabled probes broadcast only", "")
	case d.readOK.Presence:
		d.add("read presence", true, fmt.Sprintf("%q may read presence on %s (probed as a join with config.presence.enabled)", role, topic), "")
	default:
		d.add("read presence", false, fmt.Sprintf("the SELECT policies hide the presence probe row from %q: no presence_state or presence_diff on %s "+
			"(if the channel does not use presence, check with --presence=false)", role, topic), readSQL(role, topic, []string{"presence"}))
	}
	switch {
	case d.readOK.Broadcast || d.readOK.Presence:
		d.add("private join", true, fmt.Sprintf("a private join of %s as %q is allowed", topic, role), "")
	default:
		d.add("private join", false, fmt.Sprintf("refused after 5 s with \"%s\"", refusal(topic)), readSQL(role, topic, d.extensions()))
	}
}

// writes runs Supabase's write check as the identity.
func (d *run) writes(ctx context.Context) {
	d.writeOK, d.writeErr = pgrealtime.WriteCheck(ctx, d.conn, d.now, d.request(false))
	d.writeProbe = true
	role, topic := d.who.role, d.o.Topic
	if d.writeErr != nil {
		detail, fix := d.failure(ctx, "INSERT", d.writeErr)
		detail = strings.Replace(detail, "refuses as \""+refusal(topic)+"\"", "drops the broadcast or refuses the track", 1)
		d.add("write broadcast", false, detail, fix)
		if !d.o.NoPresence {
			d.add("write presence", false, "the write check probes broadcast first and stops at its error: "+detail, fix)
		}
		return
	}
	if d.writeOK.Broadcast {
		d.add("write broadcast", true, fmt.Sprintf("%q may send broadcasts on %s (the INSERT passes the policies)", role, topic), "")
	} else {
		d.add("write broadcast", false, fmt.Sprintf("the INSERT policies refuse %q: its broadcasts on %s are dropped with no reply (even with ack: send() resolves 'timed out'), "+
			"a REST broadcast gets 403 (single) or is dropped (batch)", role, topic), writeSQL(role, topic, []string{"broadcast"}))
	}
	switch {
	case d.o.NoPresence:
		d.add("write presence", true, "not checked (--presence=false)", "")
	case d.writeOK.Presence:
		d.add("write presence", true, fmt.Sprintf("%q may track presence on %s", role, topic), "")
	default:
		d.add("write presence", false, fmt.Sprintf("the INSERT policies refuse %q presence: track() on %s resolves 'error' (server: UnableToHandlePresence)", role, topic),
			writeSQL(role, topic, []string{"presence"}))
	}
}

// publicOrPrivate says what private means here, and when no policy could
// ever let a join through.
func (d *run) publicOrPrivate() {
	topic := d.o.Topic
	public := fmt.Sprintf("a public join of %s (no config.private) is never checked and receives only public messages (realtime.send with private => false)", topic)
	switch {
	case d.bypass:
		d.add("public or private", true, fmt.Sprintf("%q bypasses row-level security: every probe passes, and says nothing about anon or authenticated users "+
			"(check again with --as authenticated:<user id> or --jwt <a user's token>); %s", d.who.role, public), "")
	case d.roleOK && !d.anySelect:
		d.add("public or private", false, fmt.Sprintf("no SELECT policy on realtime.messages for any role: no private join by anon or authenticated can succeed "+
			"(Studio warns \"No Realtime RLS policies found\"); %s", public),
			"add the read policy above; or, if the channel needs no authorization, join it public and send with private => false")
	default:
		d.add("public or private", true, fmt.Sprintf("Realtime checks these policies only for joins with config: { private: true }; %s. "+
			"To refuse public joins, Supabase's Realtime Settings has \"Allow public access\" (off: private only)", public), "")
	}
}
