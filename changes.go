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
	"rtm/realtime/server/pgrealtime"
)

// changeFeed is what openFeed opened.
type changeFeed struct {
	// Source is server.Config.Changes (nil without --db).
	Source server.ChangeSource
	// Authorizer is server.Config.Authorizer: the database's RLS
	// policies on realtime.messages decide private channels (nil without
	// a database: the role rule).
	Authorizer server.Authorizer
	// Broadcasts is server.Config.Broadcasts: Broadcast from Database
	// and replay from realtime.messages (nil without a database).
	Broadcasts server.DatabaseBroadcasts
	// Line describes the database for a banner (password masked).
	Line string
	// DemoURL is the demo database's URL with --db auto (for
	// demodb.NewWriter), else "".
	DemoURL string
	// Close stops the feed, the authorization's database and the demo
	// database.
	Close func()
}

// authorizationLine is the banner's line about private channels.
func (f changeFeed) authorizationLine() string {
	if f.Authorizer == nil {
		return "role rule: authenticated and service_role may use private channels (RLS policies are not evaluated without --db)"
	}
	return "RLS policies on realtime.messages (Supabase's probes; realtime schema created when missing)"
}

// openFeed opens what `--db` gives the server: a URL, "auto" (a private
// demo database, or, without PostgreSQL's binaries, a source that tells
// every subscription why), or "" (none: changes only from EmitChange,
// private channels by role). With a database, its realtime schema is
// bootstrapped (package pgrealtime) and authorises private channels, its
// changes feed postgres_changes (package pgcdc), and its realtime.messages
// inserts are Broadcast from Database (pgrealtime.Broadcasts).
func openFeed(ctx context.Context, db, publication, slot string, log *slog.Logger) (changeFeed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := changeFeed{Close: func() {}}
	if db == "" {
		f.Line = "none (postgres_changes only from the Go API; --db <url> or --db auto for real changes)"
		return f, nil
	}
	var auto *demodb.Auto
	if db == "auto" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		a, err := demodb.Start(sctx, log)
		cancel()
		if err != nil {
			reason := fmt.Sprintf("No database: rtm could not start its demo PostgreSQL (%v)", err)
			log.Warn("--db auto: no demo database", "err", err)
			f.Source, f.Line = pgcdc.Unavailable(reason), "unavailable: "+err.Error()
			return f, nil
		}
		auto, db, f.DemoURL = a, a.URL, a.URL
	}
	closeAuto := func() {
		if auto != nil {
			_ = auto.Close()
		}
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rt, err := pgrealtime.Open(octx, pgrealtime.Config{URL: db, Logger: log.With("component", "realtime-authorization")})
	if err != nil {
		closeAuto()
		return changeFeed{}, fmt.Errorf("realtime authorization: %w", err)
	}
	if auto != nil {
		if err := auto.CreatePolicies(octx); err != nil {
			_ = rt.Close()
			closeAuto()
			return changeFeed{}, err
		}
	}
	feed, err := pgcdc.Open(octx, pgcdc.Config{URL: db, Publication: publication, Slot: slot, Logger: log})
	if err != nil {
		_ = rt.Close()
		closeAuto()
		return changeFeed{}, err
	}
	bc, err := rt.OpenBroadcasts(octx)
	if err != nil {
		_ = feed.Close()
		_ = rt.Close()
		closeAuto()
		return changeFeed{}, err
	}
	f.Source, f.Authorizer, f.Broadcasts = feed.Source(), rt.Authorizer(), bc
	f.Close = func() {
		_ = bc.Close()
		_ = feed.Close()
		_ = rt.Close()
		closeAuto()
	}
	f.Line = fmt.Sprintf("%s (publication %s; Broadcast from Database: %s)", maskURL(db), feed.Publication(), pgrealtime.MessagesPublication)
	if auto != nil {
		f.Line = fmt.Sprintf("demo PostgreSQL %s (publication %s; tables public.project, public.task; Broadcast from Database: %s)",
			maskURL(db), feed.Publication(), pgrealtime.MessagesPublication)
	}
	return f, nil
}

// maskURL hides a database URL's password and any other secret in it
// (a password= parameter, a key).
func maskURL(s string) string { return mask.URL(s) }
