package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
	"rtm/realtime/server/pgcdc/demodb"
)

// changeFeed is what openChanges opened.
type changeFeed struct {
	// Source is server.Config.Changes (nil without --db).
	Source server.ChangeSource
	// Line describes the database for a banner (password masked).
	Line string
	// DemoURL is the demo database's URL with --db auto (for
	// demodb.NewWriter), else "".
	DemoURL string
	// Close stops the feed and the demo database.
	Close func()
}

// openFeed is openChanges returning a changeFeed (for the TUI's embedded
// mode and rtm serve).
func openFeed(ctx context.Context, db, publication, slot string, log *slog.Logger) (changeFeed, error) {
	var demoURL string
	src, line, closeFn, err := openChangesDemo(ctx, db, publication, slot, log, &demoURL)
	return changeFeed{Source: src, Line: line, DemoURL: demoURL, Close: closeFn}, err
}

// openChanges opens the change feed of `--db`: a URL, "auto" (a private
// demo database, or, without PostgreSQL's binaries, a source that tells
// every subscription why), or "" (none: changes only from EmitChange). It
// returns the source, a line for the banner and a function that closes
// everything.
func openChanges(ctx context.Context, db, publication, slot string, log *slog.Logger) (server.ChangeSource, string, func(), error) {
	return openChangesDemo(ctx, db, publication, slot, log, nil)
}

func openChangesDemo(ctx context.Context, db, publication, slot string, log *slog.Logger, demoURL *string) (server.ChangeSource, string, func(), error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nothing := func() {}
	if db == "" {
		return nil, "none (postgres_changes only from the Go API; --db <url> or --db auto for real changes)", nothing, nil
	}
	var auto *demodb.Auto
	if db == "auto" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		a, err := demodb.Start(sctx, log)
		cancel()
		if err != nil {
			reason := fmt.Sprintf("No database: rtm could not start its demo PostgreSQL (%v)", err)
			log.Warn("--db auto: no demo database", "err", err)
			return pgcdc.Unavailable(reason), "unavailable: " + err.Error(), nothing, nil
		}
		auto, db = a, a.URL
		if demoURL != nil {
			*demoURL = a.URL
		}
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	feed, err := pgcdc.Open(octx, pgcdc.Config{URL: db, Publication: publication, Slot: slot, Logger: log})
	cancel()
	if err != nil {
		if auto != nil {
			_ = auto.Close()
		}
		return nil, "", nothing, err
	}
	closeAll := func() {
		_ = feed.Close()
		if auto != nil {
			_ = auto.Close()
		}
	}
	line := fmt.Sprintf("%s (publication %s)", maskURL(db), feed.Publication())
	if auto != nil {
		line = fmt.Sprintf("demo PostgreSQL %s (publication %s; tables public.project, public.task)", maskURL(db), feed.Publication())
	}
	return feed.Source(), line, closeAll, nil
}

// maskURL hides a database URL's password and any other secret in it
// (a password= parameter, a key).
func maskURL(s string) string { return mask.URL(s) }
