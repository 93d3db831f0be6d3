package tui

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
)

// fakeDoctor records the requests it gets and answers with checks (or
// err). It counts calls so tests can prove Update makes none.
type fakeDoctor struct {
	mu     sync.Mutex
	reqs   []DoctorRequest
	checks []DoctorCheck
	err    error
}

func (f *fakeDoctor) Check(ctx context.Context, req DoctorRequest) ([]DoctorCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return f.checks, f.err
}

func (f *fakeDoctor) Requests() []DoctorRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// doctorChecks is a report with one red check.
func doctorChecks() []DoctorCheck {
	return []DoctorCheck{
		{Name: "connection", Detail: "PostgreSQL 15.18, wal_level=logical", OK: true},
		{Name: "publication", Detail: `"public"."project" is not in "supabase_realtime"`,
			Fix: `alter publication supabase_realtime add table "public"."project";`},
		{Name: "filter", Detail: `"id=eq.456" is valid for "public"."project"`, OK: true},
	}
}

// readyState is the sample state with the subscription channel joined
// and ready.
func readyState() registry.State {
	st := sampleState(t0)
	c := &st.Channels[2]
	c.Status, c.Attempts, c.NextAttemptAt, c.Ready = registry.StatusConnected, 0, time.Time{}, true
	return st
}

func newDoctorModel(t *testing.T, doc Doctor, opts ...func(*Options)) (*Model, *fakeManager) {
	t.Helper()
	m, fm := newTestModel(t, 120, 40, append([]func(*Options){func(o *Options) {
		o.Doctor = doc
		o.Database = DatabaseInfo{Label: "demo PostgreSQL", Detail: "demo PostgreSQL postgres://postgres:xxxxx@127.0.0.1:5433/rtm_demo"}
	}}, opts...)...)
	st := readyState()
	m.Update(EventsBatchMsg{State: &st})
	keys(m, "j", "j") // subscription:project:456
	if m.chans.sel != projCh {
		t.Fatalf("selected %v", m.chans.sel)
	}
	return m, fm
}

// D on a subscription channel runs the doctor off the Update loop and
// shows one line per check, the fix under the red one.
func TestDoctorKey(t *testing.T) {
	doc := &fakeDoctor{checks: doctorChecks()}
	m, fm := newDoctorModel(t, doc)
	cmd := keys(m, "D")[0]
	if !isTop[*doctorView](m) || cmd == nil {
		t.Fatalf("D opened %T", m.dialogs.top())
	}
	if len(doc.Requests()) != 0 {
		t.Fatal("Update ran the doctor")
	}
	mustContain(t, screen(m), "Doctor — subscription:project:456", "running the checks…",
		"postgres_changes * public.project [id=eq.456] as authenticated:alice", "database demo PostgreSQL")
	feed(m, cmd)
	reqs := doc.Requests()
	want := DoctorRequest{Channel: projCh, Schema: "public", Table: "project", Filter: "id=eq.456", Event: "*",
		As: "authenticated:alice", ReadySeen: true}
	if len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("requests %+v, want %+v", reqs, want)
	}
	s := screen(m)
	mustContain(t, s, "✓ connection ", "PostgreSQL 15.18", "✗ publication", `is not in "supabase_realtime"`,
		"fix: alter publication supabase_realtime add table", "✓ filter")
	mustContain(t, m.status.text, "doctor subscription:project:456: 1 of 3 checks failed: publication")
	if m.status.level != slog.LevelWarn {
		t.Fatalf("status level %v", m.status.level)
	}
	if len(fm.Calls()) != 0 {
		t.Fatalf("the doctor called the manager: %v", fm.Calls())
	}
	// The log has the summary and the red check with its fix.
	var failed *registry.LogRecord
	for i := 0; i < m.log.logs.Len(); i++ {
		if r := m.log.logs.At(i).rec; r.Message == "Doctor check failed" {
			failed = &r
		}
	}
	if failed == nil {
		t.Fatal("no log record of the failed check")
	}
	if v, _ := failed.Attr("check"); v != "publication" {
		t.Fatalf("log %+v", failed)
	}
	if v, _ := failed.Attr("fix"); !strings.Contains(v, "alter publication") {
		t.Fatalf("log %+v", failed)
	}
	// esc closes; the Info tab keeps the summary.
	keys(m, "esc")
	if m.dialogs.top() != nil {
		t.Fatal("esc must close the doctor")
	}
	keys(m, "4")
	mustContain(t, screen(m), "Doctor    1 of 3 checks failed: publication at 12:00:00 (D shows it)",
		"Ready     yes", "Database  demo PostgreSQL", "postgres://postgres:xxxxx@")
	// D again runs again.
	feed(m, keys(m, "D")[0])
	if len(doc.Requests()) != 2 {
		t.Fatalf("requests %d, want 2", len(doc.Requests()))
	}
}

// A passing run says so; read-only mode keeps the doctor (it only reads
// the database).
func TestDoctorAllGreenReadOnly(t *testing.T) {
	checks := doctorChecks()
	checks[1].OK = true
	doc := &fakeDoctor{checks: checks}
	m, fm := newDoctorModel(t, doc, func(o *Options) { o.ReadOnly = true })
	feed(m, keys(m, "D")[0])
	mustContain(t, m.status.text, "all 3 checks passed")
	mustNotContain(t, screen(m), "✗", "fix:")
	if m.status.level != slog.LevelInfo || len(fm.Calls()) != 0 {
		t.Fatalf("status %v %q, calls %v", m.status.level, m.status.text, fm.Calls())
	}
	if !slices.Contains(helpKeys(m.ShortHelp()), "D") {
		t.Fatalf("doctor dialog help %v", helpKeys(m.ShortHelp()))
	}
	keys(m, "esc")
	if !slices.Contains(helpKeys(m.ShortHelp()), "D") {
		t.Fatalf("read-only help on a subscription channel must offer D: %v", helpKeys(m.ShortHelp()))
	}
}

func TestDoctorErrors(t *testing.T) {
	t.Run("not a subscription channel", func(t *testing.T) {
		doc := &fakeDoctor{checks: doctorChecks()}
		m, _ := newDoctorModel(t, doc)
		keys(m, "g")
		feed(m, keys(m, "D")[0])
		if m.dialogs.top() != nil || len(doc.Requests()) != 0 {
			t.Fatalf("D on a presence channel: overlay %T, requests %v", m.dialogs.top(), doc.Requests())
		}
		mustContain(t, m.status.text, "presence:contact:123 is a presence channel")
		if slices.Contains(helpKeys(m.ShortHelp()), "D") {
			t.Fatal("D offered on a presence channel")
		}
	})
	t.Run("no database", func(t *testing.T) {
		m, _ := newDoctorModel(t, nil)
		feed(m, keys(m, "D")[0])
		s := screen(m)
		mustContain(t, s, "✗ could not run: no database to check", "fix: start rtm with --db <postgres url>")
		mustContain(t, m.status.text, "could not run: no database to check")
		rec := lastLog(t, m)
		if rec.Message != "Doctor could not run" || rec.Level != slog.LevelWarn {
			t.Fatalf("log %+v", rec)
		}
	})
	t.Run("doctor error", func(t *testing.T) {
		doc := &fakeDoctor{err: fmt.Errorf("doctor: %w", ErrNoDatabase)}
		m, _ := newDoctorModel(t, doc)
		feed(m, keys(m, "D")[0])
		mustContain(t, screen(m), "could not run: doctor: no database to check")
	})
	t.Run("timeout", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		doc := &fakeDoctor{checks: doctorChecks()}
		m, _ := newDoctorModel(t, doc, func(o *Options) { o.Context = ctx })
		feed(m, keys(m, "D")[0])
		mustContain(t, m.status.text, "could not run: context canceled")
	})
	t.Run("no bindings", func(t *testing.T) {
		doc := &fakeDoctor{}
		m, _ := newDoctorModel(t, doc)
		st := readyState()
		st.Channels[2].Bindings = nil
		m.Update(EventsBatchMsg{State: &st})
		feed(m, keys(m, "D")[0])
		mustContain(t, m.status.text, "has no postgres_changes binding")
		if len(doc.Requests()) != 0 {
			t.Fatal("doctor ran without a binding")
		}
	})
}

// A late result of an older run never replaces a newer one.
func TestDoctorStaleResult(t *testing.T) {
	doc := &fakeDoctor{checks: doctorChecks()}
	m, _ := newDoctorModel(t, doc)
	first := keys(m, "D")[0]
	second := keys(m, "D")[0]
	feed(m, second)
	mustContain(t, screen(m), "✗ publication")
	doc.mu.Lock()
	doc.checks = nil
	doc.mu.Unlock()
	feed(m, first) // an empty report from the older run
	mustContain(t, screen(m), "✗ publication")
}

// :doctor [name] checks the named or selected channel; tab completes the
// subscription channels.
func TestDoctorCommand(t *testing.T) {
	doc := &fakeDoctor{checks: doctorChecks()}
	m, _ := newDoctorModel(t, doc)
	keys(m, "g", ":")
	typeText(m, "doctor project:456")
	feed(m, keys(m, "enter")[0])
	if r := doc.Requests(); len(r) != 1 || r[0].Channel != projCh {
		t.Fatalf("requests %+v", r)
	}
	keys(m, "esc", ":")
	typeText(m, "doctor ")
	keys(m, "tab")
	if v := m.cmd.input.Value(); v != "doctor subscription:project:456" {
		t.Fatalf("completion %q", v)
	}
	keys(m, "esc", ":")
	typeText(m, "doctor nothing:1")
	feed(m, keys(m, "enter")[0])
	mustContain(t, m.status.text, `no channel "nothing:1"`)
	keys(m, ":")
	typeText(m, "doctor")
	feed(m, keys(m, "enter")[0]) // the selected channel: a presence one
	mustContain(t, m.status.text, "is a presence channel")
	if len(doc.Requests()) != 1 {
		t.Fatalf("requests %+v", doc.Requests())
	}
}

// A long report scrolls inside the dialog, which never leaves the
// screen.
func TestDoctorScroll(t *testing.T) {
	var checks []DoctorCheck
	for i := range 30 {
		checks = append(checks, DoctorCheck{Name: fmt.Sprintf("check%02d", i), Detail: "found " + strings.Repeat("word ", 20), Fix: "do this", OK: i%3 != 0})
	}
	doc := &fakeDoctor{checks: checks}
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 16}} {
		m, _ := newDoctorModel(t, doc)
		m.Update(teaSize(sz[0], sz[1]))
		feed(m, keys(m, "D")[0])
		assertScreen(t, m.Render(), sz[0], sz[1], fmt.Sprintf("doctor %dx%d", sz[0], sz[1]))
		s := screen(m)
		mustContain(t, s, "check00", "below")
		mustNotContain(t, s, "check29")
		keys(m, "G")
		s = screen(m)
		mustContain(t, s, "check29", "above")
		assertScreen(t, m.Render(), sz[0], sz[1], fmt.Sprintf("doctor bottom %dx%d", sz[0], sz[1]))
	}
}

// The server refused a subscription channel's changes (no database):
// the table says "refused", the Info tab gives the reason and the fix.
func TestRefusedSubscription(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	st := readyState()
	c := &st.Channels[2]
	reason := "No database: rtm could not start its demo PostgreSQL (pgcluster: PostgreSQL server binaries (initdb, postgres) not found; install PostgreSQL (Debian/Ubuntu: apt-get install postgresql))"
	c.Ready, c.LastError, c.LastErrorCode, c.LastErrorAt = false, reason, "system", t0
	m.Update(EventsBatchMsg{State: &st, Events: []registry.Event{registry.ErrorEvent{Time: t0, Channel: projCh, Op: "system", Message: reason}}})
	mustContain(t, m.status.text, "postgres changes refused on subscription:project:456: No database", "apt-get install postgresql",
		"start rtm with --db")
	keys(m, "j", "j", "4")
	s := screen(m)
	mustContain(t, s, "subscription:project:456 · refused", "refused", "Ready     no — No database: rtm could not",
		"Fix       start rtm with --db <postgres url>")
	// Narrow: the glyph column marks it "!".
	m.Update(teaSize(80, 24))
	mustContain(t, screen(m), "project:456        sub   !")
}

// Update does no I/O with a doctor either: only the returned Cmd calls
// it.
func TestDoctorUpdateDoesNoIO(t *testing.T) {
	doc := &fakeDoctor{checks: doctorChecks()}
	m, _ := newDoctorModel(t, doc)
	var cmds []tea.Cmd
	for range 3 {
		cmds = append(cmds, keys(m, "D", "j", "k", "esc")...)
	}
	if len(doc.Requests()) != 0 {
		t.Fatal("Update called the doctor")
	}
	n := 0
	for _, c := range cmds {
		for _, msg := range runCmd(c) {
			if _, ok := msg.(doctorDoneMsg); ok {
				n++
			}
		}
	}
	if n != 3 || len(doc.Requests()) != 3 {
		t.Fatalf("%d results, %d requests, want 3", n, len(doc.Requests()))
	}
}

// A postgres change reads as its table and record in the list, and the
// record first in the detail (columns on one line).
func TestPostgresChangeMessage(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	payload := `{"schema":"public","table":"project","commit_timestamp":"2026-03-01T12:00:00.000Z","type":"UPDATE",` +
		`"columns":[{"name":"id","type":"int8"},{"name":"progress","type":"int4"}],` +
		`"record":{"id":456,"progress":77},"old_record":{"id":456,"progress":76},"errors":null}`
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.MessageEvent{Time: t0, Channel: projCh, Direction: registry.In,
		Kind: registry.MessagePostgresChanges, Event: "UPDATE", Payload: []byte(payload), Size: len(payload)}}})
	keys(m, "j", "j", "1")
	s := screen(m)
	mustContain(t, s, `← db change  UPDATE       public.project {"id":456,"pr`, `"columns": "id int8, progress int4"`)
	rec, old, cols := strings.Index(s, `"record": {`), strings.Index(s, `"old_record": {`), strings.Index(s, `"columns"`)
	if rec < 0 || old < rec || cols < old {
		t.Fatalf("detail order: record %d, old_record %d, columns %d:\n%s", rec, old, cols, s)
	}
	// A DELETE shows the old record; a payload that is not a change shows
	// as it is.
	if where, r, ok := changeRow([]byte(`{"schema":"public","table":"task","type":"DELETE","record":{},"old_record":{"id":9}}`)); !ok ||
		where != "public.task" || r != `{"id":9}` {
		t.Fatalf("DELETE row %q %q %v", where, r, ok)
	}
	if _, _, ok := changeRow([]byte(`[1,2]`)); ok {
		t.Fatal("an array is not a change")
	}
	if got := string(changeDetail([]byte(`not json`))); got != "not json" {
		t.Fatalf("invalid payload detail %q", got)
	}
}

// A dialog drawn over a wide character keeps the line's width.
func TestSpliceOverWideCharacters(t *testing.T) {
	line := strings.Repeat("界", 20) // 40 cells
	for x := 0; x < 10; x++ {
		for ow := 1; ow < 12; ow++ {
			got := splice(line, strings.Repeat("x", ow), x, 40)
			if w := ansi.StringWidth(got); w != 40 {
				t.Fatalf("splice at %d of %d cells: %d cells wide: %q", x, ow, w, got)
			}
		}
	}
}

// Info values wrap under themselves, long words (URLs) cut across rows.
func TestWrapPainted(t *testing.T) {
	p := m0().st.Text
	rows := wrapPainted([]paintedText{{p, "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=x"}, {p, " · 2.0.0 · embedded"}}, 20, 4)
	var got []string
	for _, r := range rows {
		var b strings.Builder
		for _, sg := range r {
			b.WriteString(sg.s)
		}
		got = append(got, b.String())
		if w := textWidth(b.String()); w > 20 {
			t.Fatalf("row %q is %d cells", b.String(), w)
		}
	}
	if strings.ReplaceAll(strings.Join(got, ""), " ", "") != "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=x·2.0.0·embedded" {
		t.Fatalf("rows %q lose text", got)
	}
	if len(wrapPainted([]paintedText{{p, strings.Repeat("word ", 100)}}, 20, 4)) != 4 {
		t.Fatal("rows not bounded")
	}
}

func m0() *Model { return New(Options{}) }

// The tab follows the selected channel's kind until the user picks one.
func TestTabFollowsChannelKind(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	if m.main.tab != tabPresence {
		t.Fatalf("first presence channel: tab %v", m.main.tab)
	}
	keys(m, "j")
	if m.main.tab != tabMessages {
		t.Fatalf("broadcast channel: tab %v", m.main.tab)
	}
	keys(m, "k")
	if m.main.tab != tabPresence {
		t.Fatalf("back on presence: tab %v", m.main.tab)
	}
	keys(m, "3", "esc", "j")
	if m.main.tab != tabRetries {
		t.Fatalf("a chosen tab stays: %v", m.main.tab)
	}
}

// The footer follows the channel's state (track / untrack), and the
// header says the RTT is being measured until the first heartbeat.
func TestFooterAndRTTFollowState(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	st := sampleState(t0)
	st.Channels[0].Tracked, st.Socket.RTT, st.Socket.RTTHistory = false, 0, nil
	m.Update(EventsBatchMsg{State: &st})
	s := screen(m)
	mustContain(t, s, "p track presence", "rtt measuring…")
	st = sampleState(t0)
	m.Update(EventsBatchMsg{State: &st})
	s = screen(m)
	mustContain(t, s, "u untrack", "rtt 3ms")
	mustNotContain(t, s, "p track presence", "measuring")
}

// Message batches (SubscribeOptions.MessageBatches, or a recording made
// with them) show like single messages.
func TestMessageBatchEvent(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	var msgs []registry.MessageEvent
	for i := range 3 {
		msgs = append(msgs, registry.MessageEvent{Time: t0, Channel: docCh, Direction: registry.In, Kind: registry.MessageBroadcast,
			Event: "batched", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.MessageBatchEvent{Time: t0, Channel: docCh, Messages: msgs}}})
	keys(m, "j")
	mustContain(t, screen(m), `{"n":0}`, `{"n":1}`, `"n": 2`)
}

// D on a private channel, or one refused for its authorization, runs the
// private-channel checks as the channel's token; on a private
// subscription channel it runs them before the postgres_changes ones.
func TestDoctorPrivateChannel(t *testing.T) {
	checks := []DoctorCheck{
		{Name: "policies", Detail: `no policy on realtime.messages is for "authenticated"`,
			Fix: `create policy "authenticated can read broadcast on document:789" on "realtime"."messages" for select to authenticated using ( true );`},
		{Name: "read broadcast", Detail: `"authenticated" may read broadcast`, OK: true},
	}
	doc := &fakeDoctor{checks: checks}
	m, _ := newDoctorModel(t, doc)
	st := readyState()
	st.Channels[1].Config.Private = true
	st.Channels[1].Status, st.Channels[1].LastError, st.Channels[1].LastErrorCode = registry.StatusError,
		"You do not have permissions to read from this Channel topic: document:789", "Unauthorized"
	m.Update(EventsBatchMsg{State: &st})
	for i := 0; i < 8 && m.chans.sel != docCh; i++ {
		keys(m, "k")
	}
	if m.chans.sel != docCh {
		t.Fatalf("selected %v", m.chans.sel)
	}
	if !slices.Contains(helpKeys(m.ShortHelp()), "D") {
		t.Fatalf("a private channel's help must offer D: %v", helpKeys(m.ShortHelp()))
	}
	keys(m, "4")
	mustContain(t, screen(m), "not run — D checks why the private channel may be refused")
	feed(m, keys(m, "D")[0])
	want := DoctorRequest{Channel: docCh, PrivateTopic: docCh.String(), As: "authenticated:alice"}
	if reqs := doc.Requests(); len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("requests %+v, want %+v", reqs, want)
	}
	mustContain(t, screen(m), "private channel "+docCh.String()+" as authenticated:alice", "✗ policies", "fix: create policy",
		"✓ read broadcast")
	mustContain(t, m.status.text, "doctor "+docCh.String()+": 1 of 2 checks failed: policies")
	keys(m, "esc")

	// A private subscription channel: the private checks, then each binding.
	st.Channels[2].Config.Private, st.Channels[2].Config.Presence = true, true
	m.Update(EventsBatchMsg{State: &st})
	for i := 0; i < 8 && m.chans.sel != projCh; i++ {
		keys(m, "j")
	}
	feed(m, keys(m, "D")[0])
	reqs := doc.Requests()[1:]
	if len(reqs) != 2 || reqs[0] != (DoctorRequest{Channel: projCh, PrivateTopic: projCh.String(), Presence: true, As: "authenticated:alice"}) ||
		reqs[1].PrivateTopic != "" || reqs[1].Table != "project" {
		t.Fatalf("requests %+v", reqs)
	}
	mustContain(t, screen(m), "private channel "+projCh.String()+" as authenticated:alice", "postgres_changes * public.project [id=eq.456] as authenticated:alice")
	keys(m, "esc")

	// A refused join's status line points at D.
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.ErrorEvent{Time: t0, Channel: docCh, Op: "join",
		Code: "MissingPartition", Message: "Realtime was unable to find the expected messages partition"}}})
	mustContain(t, m.status.text, "today's partition of realtime.messages is missing: D runs the doctor")
}

// The splice cache gives what splice gives, frame after frame, as lines
// scroll under a dialog, and holds no more than the last two frames.
func TestSpliceCache(t *testing.T) {
	var c spliceCache
	lines := make([]string, 60)
	for i := range lines {
		lines[i] = "\x1b[1m" + fmt.Sprintf("%-38d", i) + "\x1b[m界"
	}
	over := []string{"\x1b[7m" + strings.Repeat("─", 10) + "\x1b[m", "\x1b[7m│ 界 dialog │\x1b[m"}
	for frame := 0; frame < 40; frame++ {
		c.next()
		body := lines[frame : frame+20] // scrolled by a row each frame
		for i, l := range body {
			o := over[i%2]
			if got, want := c.splice(l, o, 3, 40), splice(l, o, 3, 40); got != want {
				t.Fatalf("frame %d row %d: %q, want %q", frame, i, got, want)
			}
		}
		if len(c.cur)+len(c.prev) > 40 || len(c.widths)+len(c.widthsP) > 4 {
			t.Fatalf("frame %d: %d+%d lines, %d+%d widths kept", frame, len(c.cur), len(c.prev), len(c.widths), len(c.widthsP))
		}
	}
}
