package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"rtm/realtime/server/pgcdc/doctor"
	"rtm/realtime/server/pgrealtime/privdoctor"
	"rtm/tui"
)

// doctorCmd runs the postgres_changes doctor (package
// realtime/server/pgcdc/doctor) on --table, or the private-channel
// doctor (package realtime/server/pgrealtime/privdoctor) on --private,
// and exits 1 when a check is red.
type doctorCmd struct {
	DB          string        `name:"db" env:"DATABASE_URL" required:"" help:"PostgreSQL URL."`
	Table       string        `xor:"mode" help:"Table to check (postgres_changes): schema.table or table (schema public). Exactly one of --table and --private."`
	Private     string        `xor:"mode" placeholder:"TOPIC" help:"Private channel to check (Realtime Authorization): its topic, e.g. room-1. Exactly one of --table and --private."`
	As          string        `help:"Who subscribes or joins: a role (anon, authenticated, service_role), role:user-id (e.g. authenticated:8f2c...), a JWT, or with --private a user id or email of auth.users. Default anon."`
	JWT         string        `name:"jwt" help:"With --private: the JWT the channel joins with (claims decoded, not verified; printed masked). Instead of --as."`
	Presence    bool          `default:"true" negatable:"" help:"With --private: probe presence too, as a join with presence enabled."`
	Filter      string        `help:"The binding's filter, e.g. id=eq.1."`
	Event       string        `default:"*" enum:"*,INSERT,UPDATE,DELETE" help:"The binding's event."`
	Publication string        `default:"supabase_realtime" help:"Publication Realtime streams."`
	MaxSlotLag  int64         `default:"67108864" help:"Retained WAL (bytes) above which a replication slot is reported."`
	Timeout     time.Duration `default:"20s" help:"Bound on the whole check."`
}

// Run prints one line per check.
func (c doctorCmd) Run(env *runEnv) error {
	var r doctor.Report
	var err error
	switch {
	case c.Table == "" && c.Private == "":
		return errors.New("doctor: give --table TABLE (postgres_changes) or --private TOPIC (a private channel)")
	case c.Private != "":
		if c.As != "" && c.JWT != "" {
			return errors.New("doctor: give --as or --jwt, not both")
		}
		r, err = privdoctor.Run(env.ctx, privdoctor.Options{URL: c.DB, Topic: c.Private, As: c.As, JWT: c.JWT,
			NoPresence: !c.Presence, Timeout: c.Timeout})
	case c.JWT != "":
		return errors.New("doctor: --jwt goes with --private; with --table give the token to --as")
	default:
		r, err = doctor.Run(env.ctx, doctor.Options{URL: c.DB, Table: c.Table, As: c.As, Filter: c.Filter, Event: c.Event,
			Publication: c.Publication, MaxSlotLag: c.MaxSlotLag, Timeout: c.Timeout})
	}
	if err != nil {
		return err
	}
	color := os.Getenv("NO_COLOR") == ""
	if f, ok := env.stdout.(*os.File); !ok || !isTerminal(f) {
		color = false
	}
	if err := r.Write(env.stdout, color); err != nil {
		return err
	}
	if !r.OK() {
		return errDoctorFailed
	}
	return nil
}

// errDoctorFailed makes rtm exit 1 after a red check (already printed).
var errDoctorFailed = errors.New("doctor: some checks failed")

// dbDoctor adapts packages pgcdc/doctor and pgrealtime/privdoctor to
// tui.Doctor.
type dbDoctor monitorDB

// Check implements tui.Doctor: the private-channel checks when
// req.PrivateTopic is set, else the postgres_changes checks.
func (d dbDoctor) Check(ctx context.Context, req tui.DoctorRequest) ([]tui.DoctorCheck, error) {
	if d.url == "" {
		return nil, fmt.Errorf("%w: %s", tui.ErrNoDatabase, d.missing)
	}
	var r doctor.Report
	var err error
	if req.PrivateTopic != "" {
		r, err = privdoctor.Run(ctx, privdoctor.Options{URL: d.url, Topic: req.PrivateTopic, As: req.As, NoPresence: !req.Presence})
	} else {
		ready := req.ReadySeen
		r, err = doctor.Run(ctx, doctor.Options{URL: d.url, Table: req.Schema + "." + req.Table, As: req.As,
			Filter: req.Filter, Event: req.Event, Publication: d.publication, ReadySeen: &ready})
	}
	if err != nil {
		return nil, err
	}
	out := make([]tui.DoctorCheck, len(r.Checks))
	for i, c := range r.Checks {
		out[i] = tui.DoctorCheck{Name: c.Name, Detail: c.Detail, Fix: c.Fix, OK: c.OK}
	}
	return out, nil
}
