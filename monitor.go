package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"rtm/realtime/server/pgcdc/doctor"
	"rtm/tui"
)

// monitorDB is the database of the terminal UI's postgres changes: what
// the header and the Info tab say about it, and what the doctor checks.
type monitorDB struct {
	info tui.DatabaseInfo
	// url is the database the doctor checks ("" when there is none, and
	// missing says why); raw is --db.
	url, missing, publication, raw string
}

// monitorDatabase describes --db before the embedded server's feed is
// opened (for a project: the database the doctor checks).
func monitorDatabase(db, publication string, embedded bool) monitorDB {
	d := monitorDB{publication: publication, raw: db}
	switch {
	case embedded:
		// Completed by embedded once the feed is open.
	case db == "" || db == "auto":
		d.missing = "the project's database is not known: start rtm with --db <its postgres URL> (or DATABASE_URL; " +
			"Supabase: Project Settings → Database → Connection string, the direct connection)"
	default:
		d.url = db
		d.info = tui.DatabaseInfo{Label: dbLabel(db), Detail: maskURL(db) + " (checked by the doctor; the project streams the changes)"}
	}
	return d
}

// embedded completes d with the embedded server's feed.
func (d monitorDB) embedded(f changeFeed) monitorDB {
	switch {
	case f.DemoURL != "":
		d.url = f.DemoURL
		d.info = tui.DatabaseInfo{Label: "demo PostgreSQL", Detail: f.Line}
	case f.Source == nil:
		d.missing = "rtm runs with --db \"\": subscription channels get simulated changes"
		d.info = tui.DatabaseInfo{Label: "none (simulated changes)", Detail: "none: the demo's simulated changes only; " +
			"--db auto starts a demo PostgreSQL, --db <url> streams yours", Missing: true}
	case strings.HasPrefix(f.Line, "unavailable: "):
		reason := strings.TrimPrefix(f.Line, "unavailable: ")
		d.missing = "the demo database could not start (" + reason + ")"
		d.info = tui.DatabaseInfo{Label: "none", Detail: "none: rtm could not start its demo PostgreSQL (" + reason +
			"); or give --db <postgres url>", Missing: true}
	default: // --db <url>: the feed streams it
		d.url = d.raw
		d.info = tui.DatabaseInfo{Label: dbLabel(d.raw), Detail: f.Line}
	}
	return d
}

// log writes what the database is, or why there is none, to the log.
func (d monitorDB) log(ctx context.Context, h slog.Handler) {
	if d.info.Detail == "" {
		return
	}
	level, msg := slog.LevelInfo, "Postgres changes from "+d.info.Label
	if d.info.Missing {
		level, msg = slog.LevelWarn, "No database for postgres changes"
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(slog.String("db", d.info.Detail))
	_ = h.Handle(ctx, r)
}

// doctor returns the UI's doctor: package pgcdc/doctor against d's
// database.
func (d monitorDB) doctor() tui.Doctor { return dbDoctor(d) }

// dbDoctor adapts package pgcdc/doctor to tui.Doctor.
type dbDoctor monitorDB

// Check implements tui.Doctor.
func (d dbDoctor) Check(ctx context.Context, req tui.DoctorRequest) ([]tui.DoctorCheck, error) {
	if d.url == "" {
		return nil, fmt.Errorf("%w: %s", tui.ErrNoDatabase, d.missing)
	}
	ready := req.ReadySeen
	r, err := doctor.Run(ctx, doctor.Options{URL: d.url, Table: req.Schema + "." + req.Table, As: req.As,
		Filter: req.Filter, Event: req.Event, Publication: d.publication, ReadySeen: &ready})
	if err != nil {
		return nil, err
	}
	out := make([]tui.DoctorCheck, len(r.Checks))
	for i, c := range r.Checks {
		out[i] = tui.DoctorCheck{Name: c.Name, Detail: c.Detail, Fix: c.Fix, OK: c.OK}
	}
	return out, nil
}

// dbLabel names a database URL in a few words: host[:port]/database.
func dbLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "PostgreSQL"
	}
	return u.Host + u.Path
}
