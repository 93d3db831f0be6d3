package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"rtm/realtime/server/pgcdc/doctor"
	"rtm/tui"
)

// doctorCmd runs the postgres_changes doctor (package
// realtime/server/pgcdc/doctor) and exits 1 when a check is red.
type doctorCmd struct {
	DB          string        `name:"db" env:"DATABASE_URL" required:"" help:"PostgreSQL URL."`
	Table       string        `required:"" help:"Table to check: schema.table or table (schema public)."`
	As          string        `default:"anon" help:"Subscriber: a role (anon, authenticated), role:user-id (e.g. authenticated:8f2c...), or a JWT."`
	Filter      string        `help:"The binding's filter, e.g. id=eq.1."`
	Event       string        `default:"*" enum:"*,INSERT,UPDATE,DELETE" help:"The binding's event."`
	Publication string        `default:"supabase_realtime" help:"Publication Realtime streams."`
	MaxSlotLag  int64         `default:"67108864" help:"Retained WAL (bytes) above which a replication slot is reported."`
	Timeout     time.Duration `default:"20s" help:"Bound on the whole check."`
}

// Run prints one line per check.
func (c doctorCmd) Run(env *runEnv) error {
	r, err := doctor.Run(env.ctx, doctor.Options{URL: c.DB, Table: c.Table, As: c.As, Filter: c.Filter, Event: c.Event,
		Publication: c.Publication, MaxSlotLag: c.MaxSlotLag, Timeout: c.Timeout})
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
