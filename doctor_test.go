package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgcdc/pgcluster"
)

// `rtm doctor` prints one line per check and exits 1 on a red one; `rtm
// serve --db <url>` reads the same database.
func TestDoctorCommand(t *testing.T) {
	if err := pgcluster.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := context.Background()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	if err := cl.Exec(ctx, "postgres", `create table items(id int8 primary key); create publication supabase_realtime for table items;
		do $$ begin create role anon nologin; exception when duplicate_object then null; end $$; grant select on items to anon`); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"doctor", "--db", cl.URL("postgres"), "--table", "items", "--filter", "id=eq.1"}, &out, &errOut)
	if code != 0 || strings.Count(out.String(), "✓") != 11 || strings.Contains(out.String(), "\x1b") {
		t.Errorf("healthy: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code = run(ctx, []string{"doctor", "--db", cl.URL("postgres"), "--table", "items", "--filter", "nope=eq.1"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), `✗ filter`) || !strings.Contains(out.String(), `column "nope" does not exist`) {
		t.Errorf("bad filter: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

func TestOpenChangesWithoutDB(t *testing.T) {
	src, line, closeFn, err := openChanges(context.Background(), "", "", "", nil)
	defer closeFn()
	if err != nil || src != nil || !strings.Contains(line, "--db auto") {
		t.Errorf("no --db: %v %v %q", src, err, line)
	}
	if got := maskURL("postgres://u:secret@h:5432/db"); strings.Contains(got, "secret") {
		t.Errorf("maskURL %s", got)
	}
}

// --db auto starts the demo database; Close removes it.
func TestOpenFeedAuto(t *testing.T) {
	if err := pgcluster.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	f, err := openFeed(context.Background(), "auto", "supabase_realtime", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Source == nil || f.DemoURL == "" || !strings.Contains(f.Line, "public.project") || strings.Contains(f.Line, f.DemoURL) {
		t.Errorf("feed %+v", f)
	}
	f.Close()
	// The demo server is gone.
	if err := pgcdcProbe(f.DemoURL); err == nil {
		t.Error("the demo database still answers after Close")
	}
}

func pgcdcProbe(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgcdc.Probe(ctx, url, "supabase_realtime")
	return err
}
