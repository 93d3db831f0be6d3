package privdoctor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/internal/pgtest"
	"rtm/realtime/server/pgcdc/doctor"
	"rtm/realtime/server/pgrealtime"
)

var pg = pgtest.New()

func TestMain(m *testing.M) { pgtest.Main(m, pg) }

const (
	alice = "00000000-0000-4000-8000-00000000000a"
	topic = "room-1"
)

// The server's own test policies (Supabase's test/support/generators.ex)
// for room-1: read and write, broadcast and presence.
const testPolicies = `
CREATE POLICY "authenticated_read_presence_room-1" ON realtime.messages FOR SELECT TO authenticated
  USING ( realtime.topic() = 'room-1' AND realtime.messages.extension IN ('presence', 'broadcast') );
CREATE POLICY "authenticated_write_presence_room-1" ON realtime.messages FOR INSERT TO authenticated
  WITH CHECK ( realtime.topic() = 'room-1' AND realtime.messages.extension IN ('presence', 'broadcast') );
`

// trigger is the documented Broadcast from Database trigger (SECURITY
// DEFINER, broadcast_changes: private messages) on a table.
const trigger = `
create table items(id int8 primary key, details text);
CREATE OR REPLACE FUNCTION public.items_changes() RETURNS trigger SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM realtime.broadcast_changes('room-1', TG_OP, TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER items_broadcast AFTER INSERT OR UPDATE OR DELETE ON public.items FOR EACH ROW EXECUTE FUNCTION items_changes();
`

// setup is a database bootstrapped as rtm serve --db does (schema,
// roles, grants, partitions) with sql applied.
func setup(t *testing.T, sql string) *pgtest.DB {
	t.Helper()
	db := pg.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := db.Conn(t)
	if _, err := pgrealtime.Bootstrap(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := pgrealtime.MaintainPartitions(ctx, conn, time.Now()); err != nil {
		t.Fatal(err)
	}
	if sql != "" {
		db.Exec(t, sql)
	}
	return db
}

func check(t *testing.T, o Options) doctor.Report {
	t.Helper()
	if o.Topic == "" {
		o.Topic = topic
	}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func dump(r doctor.Report) string {
	var b bytes.Buffer
	_ = r.Write(&b, false)
	return b.String()
}

// want asserts one check's colour and that its detail or fix mentions
// every one of wants.
func want(t *testing.T, r doctor.Report, name string, ok bool, wants ...string) {
	t.Helper()
	c, found := r.Find(name)
	if !found {
		t.Errorf("no %q check in\n%s", name, dump(r))
		return
	}
	text := c.Detail + " — fix: " + c.Fix
	if c.OK != ok {
		t.Errorf("check %q: ok=%v, want %v: %s", name, c.OK, ok, text)
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("check %q does not mention %q: %s", name, w, text)
		}
	}
}

// A project set up as documented passes every check.
func TestGreen(t *testing.T) {
	t.Parallel()
	db := setup(t, testPolicies+trigger)
	r := check(t, Options{URL: db.URL, As: "authenticated:" + alice})
	if !r.OK() {
		t.Fatalf("red checks:\n%s", dump(r))
	}
	t.Logf("report:\n%s", dump(r))
	for _, name := range []string{"connection", "realtime schema", "partition", "row-level security", "identity", "grants", "policies",
		"read broadcast", "read presence", "private join", "write broadcast", "write presence", "public or private", "db broadcast"} {
		if _, ok := r.Find(name); !ok {
			t.Errorf("check %q missing", name)
		}
	}
	want(t, r, "policies", true, `"authenticated_read_presence_room-1" (SELECT to authenticated USING`, `WITH CHECK`)
	want(t, r, "identity", true, `role "authenticated", sub "`+alice+`"`)
	want(t, r, "private join", true, "allowed")
	want(t, r, "db broadcast", true, "public.items_changes()", "items_broadcast on items", "SECURITY DEFINER", "raised no warning", "cannot read")
	// Nothing is kept: probes and test sends roll back.
	var n int
	db.QueryRow(t, `select count(*) from realtime.messages`, nil, &n)
	if n != 0 {
		t.Errorf("%d rows left in realtime.messages", n)
	}
	// One line per check, no escapes without colour, red-free.
	var plain, colored bytes.Buffer
	_ = r.Write(&plain, false)
	_ = r.Write(&colored, true)
	if strings.Count(plain.String(), "\n") != len(r.Checks) || strings.Contains(plain.String(), "\x1b") || strings.Contains(plain.String(), "✗") ||
		!strings.Contains(colored.String(), "\x1b[32m✓") {
		t.Errorf("output:\n%s", plain.String())
	}
}

// Each planted misconfiguration is found, with its fix.
func TestMisconfigurations(t *testing.T) {
	t.Parallel()
	as := "authenticated:" + alice
	t.Run("no policy", func(t *testing.T) {
		t.Parallel()
		r := check(t, Options{URL: setup(t, "").URL, As: as})
		want(t, r, "policies", false, `no policy on realtime.messages is for "authenticated"`,
			`create policy "authenticated can read broadcast and presence on room-1" on "realtime"."messages" for select to authenticated using ( (select realtime.topic()) = 'room-1' and realtime.messages.extension in ('broadcast', 'presence') );`,
			`for insert to authenticated with check (`)
		want(t, r, "read broadcast", false, "hide the broadcast probe row", `for select to authenticated using ( (select realtime.topic()) = 'room-1' and realtime.messages.extension in ('broadcast') )`)
		want(t, r, "read presence", false, "presence_state", "extension in ('presence')")
		want(t, r, "private join", false, `"Unauthorized: You do not have permissions to read from this Channel topic: room-1"`)
		want(t, r, "write broadcast", false, "dropped with no reply", "for insert to authenticated")
		want(t, r, "public or private", false, "no SELECT policy on realtime.messages for any role", "join it public")
	})
	t.Run("select only", func(t *testing.T) {
		t.Parallel()
		db := setup(t, `create policy "read room-1" on realtime.messages for select to authenticated using ( (select realtime.topic()) = 'room-1' );`)
		r := check(t, Options{URL: db.URL, As: as})
		want(t, r, "read broadcast", true)
		want(t, r, "read presence", true)
		want(t, r, "private join", true)
		want(t, r, "write broadcast", false, "INSERT policies refuse", `for insert to authenticated with check ( (select realtime.topic()) = 'room-1' and realtime.messages.extension in ('broadcast') );`)
		want(t, r, "write presence", false, "track()", "extension in ('presence')")
		want(t, r, "public or private", true, "config: { private: true }")
	})
	t.Run("wrong role", func(t *testing.T) {
		t.Parallel()
		db := setup(t, `create policy "anon reads" on realtime.messages for select to anon using ( true );`)
		r := check(t, Options{URL: db.URL, As: as})
		want(t, r, "policies", false, `for other roles, not "authenticated": "anon reads" (SELECT to anon)`)
		want(t, r, "read broadcast", false)
		want(t, r, "public or private", true) // anon may read: a policy exists
		// anon itself passes the read.
		r = check(t, Options{URL: db.URL, As: "anon"})
		want(t, r, "policies", true, `"anon reads" (SELECT to anon USING true)`)
		want(t, r, "private join", true)
	})
	t.Run("policy to public", func(t *testing.T) {
		t.Parallel()
		db := setup(t, `create policy "everyone reads" on realtime.messages for select using ( realtime.topic() = 'room-1' );`)
		r := check(t, Options{URL: db.URL, As: "anon", NoPresence: true})
		want(t, r, "policies", true, `"everyone reads" (SELECT to public USING`)
		want(t, r, "private join", true)
	})
	t.Run("policy raises", func(t *testing.T) {
		t.Parallel()
		db := setup(t, `
			create policy "fine" on realtime.messages for select to authenticated using ( (select realtime.topic()) = 'other' );
			create policy "team" on realtime.messages for select to authenticated
				using ( ((current_setting('request.jwt.claims', true)::jsonb ->> 'team')::int) = 1 );
			create policy "div" on realtime.messages for insert to authenticated with check ( 1 / (length(realtime.topic()) - 6) = 1 );`)
		tok := jwt(t, map[string]any{"role": "authenticated", "sub": alice, "team": "red", "exp": time.Now().Add(time.Hour).Unix()})
		r := check(t, Options{URL: db.URL, JWT: tok})
		want(t, r, "read broadcast", false, "RlsPolicyError: invalid input syntax for type integer", `policy "team" raises`, "return false instead of raising")
		want(t, r, "read presence", false, "RlsPolicyError")
		want(t, r, "private join", false, "refused")
		want(t, r, "write broadcast", false, "RlsPolicyError: division by zero", `policy "div" raises division by zero`)
		want(t, r, "identity", true, "the JWT eyJh…", "not verified")
		if out := dump(r); strings.Contains(out, tok) {
			t.Errorf("the token is printed:\n%s", out)
		}
	})
	t.Run("missing partition", func(t *testing.T) {
		t.Parallel()
		name := pgrealtime.PartitionName(time.Now())
		db := setup(t, testPolicies+"drop table realtime."+name)
		r := check(t, Options{URL: db.URL, As: as})
		want(t, r, "partition", false, "realtime."+name+" is missing", "MissingPartition", "create table if not exists realtime."+name+" partition of realtime.messages")
		want(t, r, "read broadcast", false, "MissingPartition: Realtime was unable to find the expected messages partition")
		want(t, r, "write broadcast", false, "MissingPartition")
	})
	t.Run("rls disabled", func(t *testing.T) {
		t.Parallel()
		db := setup(t, testPolicies+"alter table realtime.messages disable row level security")
		r := check(t, Options{URL: db.URL, As: "anon"})
		want(t, r, "row-level security", false, "row-level security is off", "alter table realtime.messages enable row level security")
		want(t, r, "private join", true) // everyone may, which is the problem
	})
	t.Run("no realtime schema", func(t *testing.T) {
		t.Parallel()
		r := check(t, Options{URL: pg.DB(t).URL, As: as})
		want(t, r, "realtime schema", false, "realtime.messages does not exist", "rtm serve --db")
		if len(r.Checks) != 2 {
			t.Errorf("checks after a missing schema:\n%s", dump(r))
		}
	})
	t.Run("trigger not security definer", func(t *testing.T) {
		t.Parallel()
		db := setup(t, `create policy "read" on realtime.messages for select to authenticated using ( true );
			create table items(id int8 primary key);
			create function public.notify_items() returns trigger language plpgsql as $$
			begin perform realtime.send(jsonb_build_object('id', NEW.id), 'INSERT', 'room-1', true); return null; end $$;
			create trigger items_send after insert on items for each row execute function notify_items();`)
		r := check(t, Options{URL: db.URL, As: as})
		want(t, r, "db broadcast", false, "public.notify_items()", "items_send on items", "not SECURITY DEFINER",
			`as "authenticated", rolled back, raised WarnSendingBroadcastMessage: new row violates row-level security policy`,
			"make the function SECURITY DEFINER SET search_path = ''", "for insert to authenticated", "cannot read")
	})
	t.Run("trigger sends public", func(t *testing.T) {
		t.Parallel()
		db := setup(t, testPolicies+`create table items(id int8 primary key);
			create function public.notify_items() returns trigger language plpgsql security definer set search_path = '' as $$
			begin perform realtime.send(jsonb_build_object('id', NEW.id), 'INSERT', 'room-1', false); return null; end $$;
			create trigger items_send after insert on items for each row execute function notify_items();`)
		r := check(t, Options{URL: db.URL, As: as})
		want(t, r, "db broadcast", false, "sends public messages (private => false)", "never the private channel room-1", "send with private => true")
	})
	t.Run("service role", func(t *testing.T) {
		t.Parallel()
		r := check(t, Options{URL: setup(t, "").URL, As: "service_role"})
		want(t, r, "public or private", true, `"service_role" bypasses row-level security`, "--as authenticated:<user id>")
		want(t, r, "private join", true)
		want(t, r, "write presence", true)
	})
	t.Run("unknown role", func(t *testing.T) {
		t.Parallel()
		r := check(t, Options{URL: setup(t, "").URL, As: "editor:" + alice})
		want(t, r, "identity", false, `role "editor" does not exist`, "create role editor nologin")
	})
}

// --as accepts a user of auth.users by id or email; --jwt an explicit
// token, whose expiry is checked; --presence=false probes broadcast only.
func TestIdentities(t *testing.T) {
	t.Parallel()
	db := setup(t, testPolicies+`create table auth.users(id uuid primary key, email text, role text, aud text);
		insert into auth.users values ('`+alice+`', 'alice@example.com', 'authenticated', 'authenticated');`)
	for _, as := range []string{alice, "Alice@Example.com"} {
		r := check(t, Options{URL: db.URL, As: as})
		want(t, r, "identity", true, `sub "`+alice+`"`, `"email":"alice@example.com"`, "auth.users")
		want(t, r, "private join", true)
	}
	r := check(t, Options{URL: db.URL, As: "authenticated:bob@example.com"})
	want(t, r, "identity", true, `sub "bob@example.com", claims {"role":"authenticated","sub":"bob@example.com"}, from minted claims`)
	r = check(t, Options{URL: db.URL, As: "bob@example.com"})
	want(t, r, "identity", false, `no user "bob@example.com" in auth.users`)
	tok := jwt(t, map[string]any{"role": "authenticated", "sub": alice, "exp": time.Now().Add(-time.Minute).Unix()})
	r = check(t, Options{URL: db.URL, JWT: tok, NoPresence: true})
	want(t, r, "identity", false, "Token has expired")
	want(t, r, "read presence", true, "not probed")
	if strings.Contains(dump(r), tok) {
		t.Error("the token is printed")
	}
	for _, o := range []Options{{URL: db.URL}, {URL: db.URL, Topic: topic, As: "anon", JWT: tok}, {URL: db.URL, Topic: topic, JWT: "nope"}} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// jwt makes an unsigned-looking token with claims (the doctor does not
// verify signatures).
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(b) + "." + enc([]byte("signature-bytes-here-0123456789"))
}

func TestPrivateFlags(t *testing.T) {
	for src, want := range map[string]string{
		`perform realtime.send(p, 'e', 't')`:                                                              "true",
		`perform realtime.send(p, 'e', 't', false)`:                                                       "false",
		`PERFORM Realtime . Send(jsonb_build_object('a', 1), 'e', 'x,y', FALSE);`:                         "false",
		`perform realtime.send(payload => p, event => 'e', topic => 't', private => false)`:               "false",
		`perform realtime.broadcast_changes('t', TG_OP, TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD)`: "true",
		`perform realtime.send_binary(b, 'e', 't', NEW.is_private)`:                                       "new.is_private",
		`perform realtime.send(p, 'e', 't', true); perform realtime.send(p, 'e', 'u', false)`:             "true,false",
	} {
		if got := strings.Join(privateFlags(src), ","); got != want {
			t.Errorf("%s: %q, want %q", src, got, want)
		}
	}
}

func FuzzPrivateFlags(f *testing.F) {
	f.Add(`realtime.send(p, 'e', 't', false)`)
	f.Add(`realtime.send((('`)
	f.Add(`realtime.broadcast_changes(`)
	f.Fuzz(func(t *testing.T, src string) {
		for _, flag := range privateFlags(src) {
			if len(flag) > len(src) {
				t.Fatalf("flag %q longer than the source", flag)
			}
		}
	})
}
