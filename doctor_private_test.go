package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"rtm/realtime/server/pgrealtime"
	"rtm/tui"
)

// `rtm doctor --private TOPIC` checks a private channel as --as or
// --jwt: exit 0 when every check passes, 1 on a red one (the fix
// printed), the token masked; exactly one of --table and --private.
func TestDoctorPrivateCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := startPG(ctx, t)
	url := cl.URL("postgres")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := pgrealtime.Bootstrap(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := pgrealtime.MaintainPartitions(ctx, conn, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `create policy room_read on realtime.messages for select to authenticated using ( (select realtime.topic()) = 'room-1' );
		create policy room_write on realtime.messages for insert to authenticated with check ( (select realtime.topic()) = 'room-1' )`); err != nil {
		t.Fatal(err)
	}
	doctor := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, append([]string{"doctor", "--db", url}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	const user = "authenticated:00000000-0000-4000-8000-00000000000a"
	if code, out := doctor("--private", "room-1", "--as", user); code != 0 || strings.Contains(out, "✗") || !strings.Contains(out, "✓ private join") ||
		strings.Contains(out, "\x1b") {
		t.Errorf("healthy: exit %d\n%s", code, out)
	}
	if code, out := doctor("--private", "realtime:room-2", "--as", user, "--no-presence"); code != 1 || !strings.Contains(out, "✗ private join") ||
		!strings.Contains(out, `fix: create policy "authenticated can read broadcast on room-2"`) || !strings.Contains(out, "not probed (--presence=false)") {
		t.Errorf("no policy for room-2: exit %d\n%s", code, out)
	}
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(`{"role":"anon","exp":4102444800}`)) + "." + enc([]byte("0123456789abcdef0123456789abcdef"))
	if code, out := doctor("--private", "room-1", "--jwt", tok); code != 1 || strings.Contains(out, tok) || !strings.Contains(out, "the JWT eyJh…") {
		t.Errorf("--jwt anon: exit %d\n%s", code, out)
	}
	// The TUI's adapter runs the same checks for a private channel.
	checks, err := dbDoctor{url: url}.Check(ctx, tui.DoctorRequest{PrivateTopic: "room-1", As: user})
	if err != nil || len(checks) < 10 {
		t.Fatalf("adapter: %v %+v", err, checks)
	}
	for _, c := range checks {
		if c.Name == "write presence" && !c.OK || c.Name == "read presence" && !strings.Contains(c.Detail, "not probed") {
			t.Errorf("adapter check %+v (Presence false probes broadcast only)", c)
		}
	}
	for _, args := range [][]string{{}, {"--table", "items", "--private", "room-1"}, {"--private", "room-1", "--as", "anon", "--jwt", tok}, {"--table", "items", "--jwt", tok}} {
		if code, out := doctor(args...); code == 0 || !strings.Contains(out, "--") || strings.Contains(out, tok) {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
}
