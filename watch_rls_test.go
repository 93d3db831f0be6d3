package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestWatchPrivateRefusalReason: `rtm watch --private` against `rtm serve
// --db` with a real policy (a user reads only their own room): the
// allowed channel connects; the refused one's channel_state carries
// Supabase's code and reason while it retries, and when the policy gives
// up its error event carries them with the hint, nothing of it masked
// away; watch keeps running (a refusal is not fatal).
func TestWatchPrivateRefusalReason(t *testing.T) {
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := startPG(ctx, t)
	const (
		secret = "watch-rls-secret-0123456789abcdef0123456789"
		alice  = "00000000-0000-4000-8000-00000000000a"
		bob    = "00000000-0000-4000-8000-00000000000b"
	)
	apiURL, anon, stopServe := serveDB(ctx, t, cl.URL("postgres"), "--jwt-secret", secret, "--authorization-error-delay", "200ms")
	conn, err := pgx.Connect(ctx, cl.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `create policy "own room" on realtime.messages for select to authenticated
		using ( realtime.topic() = 'broadcast:room:' || auth.uid()::text )`); err != nil {
		t.Fatal(err)
	}

	// Two attempts: the first refusal schedules a retry, the second
	// gives up. Alice's room is private by --private, bob's by
	// --join-private (a public join of it would be accepted).
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var out lockedBuf
	wait := background(wctx, &out, "watch", "--url", apiURL, "--key", anon, "--jwt-secret", secret, "--as", alice, "--private",
		"--join", "broadcast:room:"+alice, "--join-private", "broadcast:room:"+bob, "--policy", "fixed:100ms,max=2",
		"--types", "channel_state", "--types", "error")
	type line struct {
		Type, Channel, Status, Reason string
		Code, Message, Hint, Op       string
		Info                          struct {
			Status        string
			LastError     string `json:"last_error"`
			LastErrorCode string `json:"last_error_code"`
			Config        struct{ Private bool }
		}
	}
	lines := func() []line {
		var ls []line
		for _, s := range strings.Split(out.String(), "\n") {
			var l line
			if json.Unmarshal([]byte(s), &l) == nil {
				ls = append(ls, l)
			}
		}
		return ls
	}
	// The error event and the given-up channel_state come in either
	// order: wait for both.
	waitFor(t, "the refused join's error event and its given-up state", func() bool {
		ls := lines()
		return slices.ContainsFunc(ls, func(l line) bool { return l.Type == "error" }) &&
			slices.ContainsFunc(ls, func(l line) bool { return l.Type == "channel_state" && l.Status == "error" })
	})
	const reason = "You do not have permissions to read from this Channel topic: broadcast:room:" + bob
	var sawRetry, sawConnected, sawGaveUp bool
	for _, l := range lines() {
		switch {
		case l.Channel == "broadcast:room:"+alice:
			if l.Status == "connected" {
				// private by --private (the policy lets alice read it)
				sawConnected = true
				if !l.Info.Config.Private {
					t.Errorf("--private: alice's channel is public: %+v", l)
				}
			}
			if l.Status == "disconnected" || l.Status == "error" {
				t.Errorf("the allowed channel: %+v", l)
			}
		case l.Type == "channel_state" && l.Status == "disconnected":
			sawRetry = true
			if l.Reason != "Unauthorized: "+reason || l.Info.LastError != reason || l.Info.LastErrorCode != "Unauthorized" || !l.Info.Config.Private {
				t.Errorf("refused, retrying: %+v", l)
			}
		case l.Type == "channel_state" && l.Status == "error":
			sawGaveUp = true
			if l.Reason != "gave up after 2 attempts: Unauthorized: "+reason || l.Info.LastErrorCode != "Unauthorized" {
				t.Errorf("refused, given up: %+v", l)
			}
		case l.Type == "error":
			if l.Channel != "broadcast:room:"+bob || l.Op != "join" || l.Code != "Unauthorized" ||
				l.Message != "gave up after 2 attempts: Unauthorized: "+reason ||
				l.Hint != "private channel refused: check the RLS policies on realtime.messages for this role" {
				t.Errorf("error event: %+v", l)
			}
		}
	}
	if !sawRetry || !sawConnected || !sawGaveUp {
		t.Errorf("retrying %v, allowed connected %v, given up %v:\n%s", sawRetry, sawConnected, sawGaveUp, out.String())
	}
	stopWatch()
	if code, errs := wait(); code != 0 {
		t.Errorf("watch exited %d: %s", code, errs)
	}
	stopServe()
}
