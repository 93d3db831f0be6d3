package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/theme"
)

// Doctor answers "why do my postgres_changes not arrive?" for one binding
// of a subscription channel, and "why Unauthorized?" for a private (or
// refused) channel, against the database (main.go adapts packages
// rtm/realtime/server/pgcdc/doctor and
// rtm/realtime/server/pgrealtime/privdoctor). The UI calls it only from
// a tea.Cmd.
type Doctor interface {
	// Check runs every check for req and returns one result per check,
	// in order. It returns an error only when it could not run at all
	// (ErrNoDatabase when there is no database to check).
	Check(ctx context.Context, req DoctorRequest) ([]DoctorCheck, error)
}

// DoctorRequest is one postgres_changes binding to check, as the channel
// subscribes with it, or (PrivateTopic set) a private channel's
// authorization.
type DoctorRequest struct {
	// Channel is the subscription channel.
	Channel registry.Name
	// Schema, Table, Filter and Event are the binding's.
	Schema, Table, Filter, Event string
	// As is the subscriber: "anon", a role, or "role:<subject>" of the
	// channel's token.
	As string
	// ReadySeen is whether the channel received "Subscribed to
	// PostgreSQL" since its last join.
	ReadySeen bool
	// PrivateTopic, when set, asks for the private-channel checks of
	// this sub-topic ("room-1": the policies on realtime.messages and
	// Supabase's read and write probes as As) instead of a binding's;
	// Presence says the channel joins with presence enabled (presence is
	// probed too).
	PrivateTopic string
	Presence     bool
}

// DoctorCheck is the outcome of one check.
type DoctorCheck struct {
	// Name is short ("publication"); Detail says what was found; Fix
	// what to do when OK is false.
	Name, Detail, Fix string
	OK                bool
}

// ErrNoDatabase is wrapped by a Doctor's error when rtm has no database
// to check (no --db, or the demo database could not start).
var ErrNoDatabase = errors.New("no database to check")

// DefaultDoctorTimeout bounds one doctor run (every binding of a channel).
const DefaultDoctorTimeout = 45 * time.Second

// doctorSection is the report of one binding, or of the channel's
// authorization (private set).
type doctorSection struct {
	binding string
	private bool
	checks  []DoctorCheck
	err     error
}

// title heads the section in the dialog.
func (s doctorSection) title(as string) string {
	if s.private {
		return s.binding + " as " + as
	}
	return "postgres_changes " + s.binding + " as " + as
}

// doctorResult is a doctor run on a channel.
type doctorResult struct {
	gen      int
	name     registry.Name
	at       time.Time
	running  bool
	sections []doctorSection
}

// failed returns the names of the red checks and the number of checks.
func (r *doctorResult) failed() (names []string, total int, errs int) {
	for _, s := range r.sections {
		if s.err != nil {
			errs++
		}
		for _, c := range s.checks {
			total++
			if !c.OK {
				names = append(names, c.Name)
			}
		}
	}
	return names, total, errs
}

// summary says in a few words how the run went.
func (r *doctorResult) summary() string {
	if r.running {
		return "running…"
	}
	failed, total, errs := r.failed()
	switch {
	case errs > 0 && total == 0:
		for _, s := range r.sections {
			if s.err != nil {
				return "could not run: " + trimPrefix(s.err.Error())
			}
		}
	case len(failed) == 0 && errs == 0:
		return fmt.Sprintf("all %d checks passed", total)
	}
	return fmt.Sprintf("%d of %d checks failed: %s", len(failed), total, strings.Join(failed, ", "))
}

// doctorDoneMsg carries the outcome of a doctor run.
type doctorDoneMsg struct {
	res doctorResult
}

// changeBindings returns a channel's postgres_changes bindings.
func changeBindings(c registry.ChannelInfo) []registry.Binding {
	var out []registry.Binding
	for _, b := range c.Bindings {
		if b.Type == "postgres_changes" {
			out = append(out, b)
		}
	}
	return out
}

// bindingText describes a binding: "* public.project [id=eq.456]".
func bindingText(b registry.Binding) string {
	ev := b.Event
	if ev == "" {
		ev = "*"
	}
	schema := b.Schema
	if schema == "" {
		schema = "public"
	}
	s := ev + " " + schema + "." + b.Table
	if b.Filter != "" {
		s += " [" + b.Filter + "]"
	}
	return s
}

// subscriberAs names the subscriber of the channel's token for the doctor.
func (m *Model) subscriberAs() string {
	tok := m.state.Token
	switch {
	case !tok.Present || tok.Role == "":
		return "anon"
	case tok.Subject != "":
		return tok.Role + ":" + tok.Subject
	}
	return tok.Role
}

// authorizationCode reports whether code is a join error the
// private-channel doctor explains.
func authorizationCode(code string) bool {
	switch code {
	case "Unauthorized", "MissingPartition", "PrivateOnly":
		return true
	}
	return false
}

// authorizationHint is the status line's advice for a join refused for
// its authorization: the private-channel doctor.
func authorizationHint(code string) string {
	switch code {
	case "Unauthorized":
		return "private channel refused: D checks the RLS policies on realtime.messages for this role"
	case "MissingPartition":
		return "today's partition of realtime.messages is missing: D runs the doctor"
	case "PrivateOnly":
		return "this project allows only private channels: join with the private option (D runs the doctor)"
	}
	return ""
}

// privateDoctor reports whether the doctor checks c's authorization: a
// private channel, or one refused for its authorization.
func privateDoctor(c registry.ChannelInfo) bool {
	return c.Config.Private || authorizationCode(c.LastErrorCode)
}

// doctorFor reports whether the doctor has anything to check on c.
func doctorFor(c registry.ChannelInfo) bool {
	return c.Name.Kind == registry.KindSubscription || privateDoctor(c)
}

// runDoctor checks why changes may not arrive on a subscription channel
// and, on a private or refused channel, why it is refused: it opens the
// doctor dialog and returns the Cmd that runs the checks.
func (m *Model) runDoctor(c registry.ChannelInfo) tea.Cmd {
	private := privateDoctor(c)
	if !doctorFor(c) {
		return m.setStatus(slog.LevelWarn, "the doctor checks postgres_changes and private channels: "+c.Name.String()+" is a "+c.Name.Kind.String()+
			" channel, not private (select a subscription or private channel, or :doctor <name>)")
	}
	bindings := changeBindings(c)
	if len(bindings) == 0 && !private {
		return m.setStatus(slog.LevelWarn, c.Name.String()+" has no postgres_changes binding to check")
	}
	topic := strings.TrimPrefix(c.Topic, registry.TopicPrefix)
	if topic == "" {
		topic = c.Name.String()
	}
	m.doctorGen++
	res := doctorResult{gen: m.doctorGen, name: c.Name, at: m.now, running: true}
	var reqs []DoctorRequest
	if private {
		res.sections = append(res.sections, doctorSection{binding: "private channel " + topic, private: true})
		reqs = append(reqs, DoctorRequest{Channel: c.Name, PrivateTopic: topic, Presence: c.Config.Presence})
	}
	for _, b := range bindings {
		res.sections = append(res.sections, doctorSection{binding: bindingText(b)})
		schema := b.Schema
		if schema == "" {
			schema = "public"
		}
		reqs = append(reqs, DoctorRequest{Channel: c.Name, Schema: schema, Table: b.Table, Filter: b.Filter, Event: b.Event, ReadySeen: c.Ready})
	}
	d := m.data(c.Name)
	d.doctor = &res
	m.openDialog(&doctorView{name: c.Name, gen: res.gen})
	doc, as, parent := m.opts.Doctor, m.subscriberAs(), m.opts.Context
	timeout := m.opts.DoctorTimeout
	now := m.opts.Now
	return func() tea.Msg {
		out := res
		out.sections = make([]doctorSection, len(res.sections))
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		for i, req := range reqs {
			out.sections[i].binding, out.sections[i].private = res.sections[i].binding, res.sections[i].private
			if doc == nil {
				out.sections[i].err = fmt.Errorf("%w: rtm runs without a database", ErrNoDatabase)
				continue
			}
			req.As = as
			out.sections[i].checks, out.sections[i].err = doc.Check(ctx, req)
		}
		out.running = false
		out.at = now()
		return doctorDoneMsg{res: out}
	}
}

// doctorDone stores a doctor run's outcome, shows it in the dialog if it
// is open on that run, and reports it in the status line and the log.
func (m *Model) doctorDone(msg doctorDoneMsg) tea.Cmd {
	r := msg.res
	d := m.data(r.name)
	if d.doctor != nil && d.doctor.gen > r.gen {
		return nil // a newer run is under way
	}
	d.doctor = &r
	failed, total, errs := r.failed()
	level := slog.LevelInfo
	text := "doctor " + r.name.String() + ": " + r.summary()
	if len(failed) > 0 || errs > 0 {
		level = slog.LevelWarn
		if _, open := topDialog[*doctorView](m); !open {
			text += " — D shows the report"
		}
	}
	attrs := []registry.LogAttr{{Key: registry.KeyChannel, Value: r.name.String()},
		{Key: "checks", Value: fmt.Sprint(total)}, {Key: "failed", Value: fmt.Sprint(len(failed))}}
	var records []registry.LogRecord
	records = append(records, m.localLog(level, "Doctor", attrs...))
	for _, s := range r.sections {
		if s.err != nil {
			a := []registry.LogAttr{{Key: registry.KeyChannel, Value: r.name.String()}, {Key: "binding", Value: s.binding},
				{Key: registry.KeyErr, Value: trimPrefix(s.err.Error())}}
			if h := hintFor(s.err); h != "" {
				a = append(a, registry.LogAttr{Key: "hint", Value: h})
			}
			records = append(records, m.localLog(slog.LevelWarn, "Doctor could not run", a...))
		}
		for _, c := range s.checks {
			if !c.OK {
				records = append(records, m.localLog(slog.LevelWarn, "Doctor check failed",
					registry.LogAttr{Key: registry.KeyChannel, Value: r.name.String()}, registry.LogAttr{Key: "check", Value: c.Name},
					registry.LogAttr{Key: "detail", Value: c.Detail}, registry.LogAttr{Key: "fix", Value: c.Fix}))
			}
		}
	}
	for _, rec := range records {
		m.log.add(rec, true)
	}
	cmds := []tea.Cmd{m.setStatus(level, text)}
	if logger := m.opts.Logger; logger != nil {
		ctx := m.opts.Context
		cmds = append(cmds, func() tea.Msg {
			for _, rec := range records {
				args := make([]any, 0, 2*len(rec.Attrs))
				for _, a := range rec.Attrs {
					args = append(args, a.Key, a.Value)
				}
				logger.Log(ctx, rec.Level, rec.Message, args...)
			}
			return nil
		})
	}
	return tea.Batch(cmds...)
}

// doctorLines renders a run: per binding, one line per check (✓ green,
// ✗ red with the fix below), details wrapped to w.
func doctorLines(st *theme.Styles, r *doctorResult, w int, as string) []string {
	var out []string
	wrap := func(p theme.Paint, indent, s string) {
		iw := textWidth(indent)
		for i, l := range wrapText(sanitize(s), max(8, w-iw)) {
			if i == 0 {
				out = append(out, p.Render(indent+l))
			} else {
				out = append(out, blank(iw)+p.Render(l))
			}
		}
	}
	for i, s := range r.sections {
		if i > 0 {
			out = append(out, "")
		}
		out = append(out, st.Table.Header.Render(truncText(s.title(as), w)))
		if r.running {
			out = append(out, st.Muted.Render("running the checks…"))
			continue
		}
		if s.err != nil {
			wrap(st.Error, "✗ ", "could not run: "+trimPrefix(s.err.Error()))
			if h := hintFor(s.err); h != "" {
				wrap(st.Warn, "  fix: ", h)
			}
			continue
		}
		nameW := 0
		for _, c := range s.checks {
			nameW = max(nameW, textWidth(c.Name))
		}
		nameW = min(nameW, 18)
		for _, c := range s.checks {
			mark, p := "✓ ", st.OK
			if !c.OK {
				mark, p = "✗ ", st.Error
			}
			head := mark + fitText(sanitize(c.Name), nameW) + "  "
			lines := wrapText(sanitize(c.Detail), max(8, w-textWidth(head)))
			for j, l := range lines {
				if j == 0 {
					out = append(out, p.Render(head)+st.Text.Render(l))
				} else {
					out = append(out, blank(textWidth(head))+st.Text.Render(l))
				}
			}
			if !c.OK && c.Fix != "" {
				wrap(st.Warn, blank(textWidth(head))+"fix: ", c.Fix)
			}
		}
	}
	return out
}

// changesHint says what to do about a postgres_changes refusal.
func changesHint(reason string) string {
	if strings.HasPrefix(reason, "No database") {
		return "start rtm with --db <postgres url> (or DATABASE_URL), or install PostgreSQL so --db auto can start its demo database"
	}
	return "D runs the doctor on this channel: it checks the publication, replica identity, filter, RLS and readiness"
}
