package tui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
)

// screen returns the rendered screen without escape sequences.
func screen(m *Model) string { return ansi.Strip(m.Render()) }

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("screen lacks %q:\n%s", sub, s)
		}
	}
}

func mustNotContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Fatalf("screen has %q:\n%s", sub, s)
		}
	}
}

// lastLog returns the newest log entry.
func lastLog(t *testing.T, m *Model) registry.LogRecord {
	t.Helper()
	e, ok := m.log.logs.Last()
	if !ok {
		t.Fatal("log is empty")
	}
	return e.rec
}

func TestFocusAndTabs(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	if m.focus != focusChannels {
		t.Fatalf("initial focus %v", m.focus)
	}
	keys(m, "tab")
	if m.focus != focusMain {
		t.Fatalf("after tab: %v", m.focus)
	}
	keys(m, "tab")
	if m.focus != focusLog {
		t.Fatalf("after 2 tabs: %v", m.focus)
	}
	keys(m, "tab")
	if m.focus != focusChannels {
		t.Fatalf("after 3 tabs: %v", m.focus)
	}
	keys(m, "shift+tab")
	if m.focus != focusLog {
		t.Fatalf("after shift+tab: %v", m.focus)
	}
	for i, want := range []tab{tabMessages, tabPresence, tabRetries, tabInfo} {
		keys(m, fmt.Sprint(i+1))
		if m.main.tab != want || m.focus != focusMain {
			t.Fatalf("key %d: tab %v focus %v", i+1, m.main.tab, m.focus)
		}
	}
	keys(m, "]")
	if m.main.tab != tabMessages {
		t.Fatalf("] from Info: %v", m.main.tab)
	}
	keys(m, "[")
	if m.main.tab != tabInfo {
		t.Fatalf("[ from Messages: %v", m.main.tab)
	}
	keys(m, "esc")
	if m.focus != focusChannels {
		t.Fatalf("esc: focus %v", m.focus)
	}
}

func TestChannelSelectionSkipsTenantHeadings(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	s := screen(m)
	mustContain(t, s, "▸ no tenant", "▸ tenant abc")
	var got []string
	for i := 0; i < 5; i++ {
		got = append(got, m.chans.sel.String())
		keys(m, "j")
	}
	want := []string{presenceCh.String(), docCh.String(), projCh.String(), tenantCh.String(), tenantCh.String()}
	if !slices.Equal(got, want) {
		t.Fatalf("selection order %v, want %v", got, want)
	}
	keys(m, "g")
	if m.chans.sel != presenceCh {
		t.Fatalf("g: %v", m.chans.sel)
	}
	keys(m, "G")
	if m.chans.sel != tenantCh {
		t.Fatalf("G: %v", m.chans.sel)
	}
	keys(m, "enter")
	if m.focus != focusMain {
		t.Fatalf("enter on a channel must focus the main pane, got %v", m.focus)
	}
	mustContain(t, screen(m), "tenant:abc:presence:contact:123")
}

// Update does no I/O: keys, batches and ticks never call the manager; the
// returned Cmds do, once each.
func TestUpdateDoesNoIO(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	var cmds []tea.Cmd
	for i := 0; i < 50; i++ {
		st := sampleState(t0)
		_, c := m.Update(EventsBatchMsg{Events: sampleEvents(t0), State: &st})
		cmds = append(cmds, c)
		_, c = m.Update(tickMsg{t: t0})
		cmds = append(cmds, c)
	}
	cmds = append(cmds, keys(m, "j", "j", "r", "k", "k", "u", "x", "d")...)
	cmds = append(cmds, keys(m, ":")...)
	typeText(m, "policy exp")
	cmds = append(cmds, keys(m, "enter")...)
	m.View()
	if calls := fm.Calls(); len(calls) != 0 {
		t.Fatalf("Update called the manager: %v", calls)
	}
	var ran []tea.Msg
	for _, c := range cmds {
		for _, msg := range runCmd(c) {
			if _, ok := msg.(actionDoneMsg); ok {
				ran = append(ran, msg)
			}
		}
	}
	want := []string{"retry " + projCh.String(), "untrack " + presenceCh.String(), "fault drop", "policy exp"}
	if calls := fm.Calls(); !slices.Equal(calls, want) {
		t.Fatalf("Cmds called %v, want %v", calls, want)
	}
	if len(ran) != 4 {
		t.Fatalf("%d action results, want 4", len(ran))
	}
}

func TestTrackForm(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	// Untrack first so p is offered (the sample tracks alice).
	keys(m, "p")
	if !isTop[*form](m) {
		t.Fatalf("p on a presence channel must open the form")
	}
	mustContain(t, screen(m), "Track presence", "User id (presence key)", "Payload (JSON object)")
	// Replace the user id with bob.
	for range 10 {
		m.Update(press("backspace"))
	}
	typeText(m, "bob")
	keys(m, "tab")
	for range 10 {
		m.Update(press("backspace"))
	}
	typeText(m, "Bob")
	keys(m, "tab")
	// Break the JSON: the form refuses and explains.
	m.Update(press("backspace"))
	cmds := keys(m, "enter")
	if !isTop[*form](m) || cmds[0] != nil {
		t.Fatalf("invalid JSON must keep the form open without an action")
	}
	mustContain(t, screen(m), "payload is not valid JSON")
	typeText(m, "}")
	cmds = keys(m, "enter")
	if m.dialogs.top() != nil || cmds[0] == nil {
		t.Fatalf("valid form must close and return the action")
	}
	feed(m, cmds[0])
	calls := fm.Calls()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "track "+presenceCh.String()+" bob ") {
		t.Fatalf("calls %v", calls)
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(calls[0], " ", 4)[3]), &payload); err != nil {
		t.Fatalf("payload %q: %v", calls[0], err)
	}
	if payload["user_id"] != "bob" || payload["name"] != "Bob" || payload["status"] != "online" {
		t.Fatalf("payload %v", payload)
	}
	mustContain(t, screen(m), "tracking bob on presence:contact:123")
}

func TestTrackOnlyOnPresence(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	keys(m, "j", "p") // broadcast:document:789
	if m.dialogs.top() != nil {
		t.Fatalf("p on a broadcast channel opened %T", m.dialogs.top())
	}
	mustContain(t, screen(m), "p tracks presence: broadcast:document:789 is a broadcast channel")
	if len(fm.Calls()) != 0 {
		t.Fatal("no call expected")
	}
}

func TestBroadcastFormValidatesJSON(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	keys(m, "j", "b")
	if !isTop[*form](m) {
		t.Fatal("b must open the broadcast form")
	}
	keys(m, "tab")
	for range 30 {
		m.Update(press("backspace"))
	}
	typeText(m, "[1,2]")
	keys(m, "enter")
	mustContain(t, screen(m), "payload must be a JSON object ({...}), not an array")
	for range 10 {
		m.Update(press("backspace"))
	}
	typeText(m, `{"x": 1, "y": 2}`)
	cmds := keys(m, "enter")
	feed(m, cmds[0])
	want := []string{`broadcast broadcast:document:789 message {"x":1,"y":2}`}
	if !slices.Equal(fm.Calls(), want) {
		t.Fatalf("calls %v, want %v", fm.Calls(), want)
	}
}

func TestLeaveNeedsConfirm(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	keys(m, "j", "ctrl+d")
	if !isTop[*confirmDialog](m) {
		t.Fatal("ctrl+d must ask for confirmation")
	}
	mustContain(t, screen(m), "Leave broadcast:document:789?", "It holds 2 references")
	cmds := keys(m, "n")
	if m.dialogs.top() != nil || cmds[0] != nil {
		t.Fatal("n must cancel")
	}
	keys(m, "ctrl+d")
	cmds = keys(m, "y")
	feed(m, cmds[0])
	if !slices.Equal(fm.Calls(), []string{"leave broadcast:document:789"}) {
		t.Fatalf("calls %v", fm.Calls())
	}
}

func TestFaultMenu(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	keys(m, "x")
	s := screen(m)
	mustContain(t, s, "Faults", "drop the connection", "server: kick presence:contact:123 (phx_error)")
	cmds := keys(m, "s")
	feed(m, cmds[0])
	if !slices.Equal(fm.Calls(), []string{"fault kick presence:contact:123"}) {
		t.Fatalf("calls %v", fm.Calls())
	}
	mustContain(t, screen(m), "server kicked presence:contact:123 (error)")

	// Without server faults the server items are disabled and say why.
	m2, fm2 := newTestModel(t, 120, 40)
	st := sampleState(t0)
	st.Target.ServerFaults, st.Faults.Server = false, false
	m2.Update(EventsBatchMsg{State: &st})
	keys(m2, "x")
	mustContain(t, screen(m2), "needs the embedded server or rtm serve")
	cmds = keys(m2, "a")
	if !isTop[*faultMenu](m2) || len(fm2.Calls()) != 0 {
		t.Fatal("a disabled fault must not run")
	}
	mustContain(t, screen(m2), "server: drop every socket: needs the embedded server or rtm serve")
	keys(m2, "j", "enter") // moves to "f" (freeze) then injects
	_ = cmds
}

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		line string
		call string
	}{
		{"join presence contact:999 --as alice", "join presence:contact:999 as=alice"},
		{"join broadcast room:1 --tenant acme", "join tenant:acme:broadcast:room:1 as="},
		{"join subscription:project:7", "join subscription:project:7 as="},
		{"leave document:789", "leave broadcast:document:789"},
		{"leave presence:contact:123", "leave presence:contact:123"},
		{`track contact:123 {"user_id": "zoe", "name": "Zoe"}`, `track presence:contact:123 zoe {"user_id":"zoe","name":"Zoe"}`},
		{"untrack contact:123", "untrack presence:contact:123"},
		{`broadcast document:789 cursor {"x": 3}`, `broadcast broadcast:document:789 cursor {"x":3}`},
		{"drop", "fault drop"},
		{"freeze 5s", "fault freeze 5s"},
		{"latency 250ms", "fault latency 250ms"},
		{"fail-connects 3", "fault fail-connects 3"},
		{"expire-token", "fault expire-token"},
		{"kick project:456 close", "fault kick subscription:project:456 close"},
		{"kick project:456", "fault kick subscription:project:456"},
		{"channel-error contact:123", "fault channel-error presence:contact:123"},
		{"heal", "fault heal"},
		{"drop-all", "fault drop-all"},
		{"restart", "fault restart"},
		{"restart 2s", "fault restart 2s"},
		{"reject-joins 4", "fault reject-joins 4"},
		{"reject-joins 10s", "fault reject-joins 10s"},
		{"app drop", "fault app drop"},
		{"app 3 close 4000 going away", "fault app 3 close 4000 going away"},
		{"app kick room1 close", "fault app kick realtime:room1 close"},
		{"app reject-joins room1 2 Unauthorized: nope", "fault app reject-joins realtime:room1 2 Unauthorized: nope"},
		{"app duplicate-messages room1 2", "fault app duplicate-messages realtime:room1 2"},
		{"retry project:456", "retry subscription:project:456"},
		{"policy fixed:3s", "policy fixed:3s"},
		{"cleanup", "cleanup"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			m, fm := newTestModel(t, 120, 40)
			keys(m, ":")
			typeText(m, tc.line)
			cmds := keys(m, "enter")
			feed(m, cmds[0])
			if calls := fm.Calls(); len(calls) != 1 || calls[0] != tc.call {
				t.Fatalf("calls %v, want [%s]", calls, tc.call)
			}
		})
	}
}

func TestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{"jump", `unknown command "jump"`},
		{"join presence contact", "entity \"contact\" must be <entity_type>:<entity_id>"},
		{"join presence a:b:c", "contains ':'"},
		{"join party contact:1", "is not subscription, presence or broadcast"},
		{"join broadcast room:1 --as bob", "--as tracks a presence"},
		{"leave nowhere:1", `no channel "nowhere:1"`},
		{"broadcast document:789 cursor {x:1}", "payload is not valid JSON"},
		{`broadcast document:789 cursor "text"`, "must be a JSON object"},
		{`track contact:123 {"name":"x"}`, `needs a "user_id"`},
		{"freeze soon", "is not a duration"},
		{"fail-connects -1", "is not a count"},
		{"reject-joins never", "neither a count nor a duration"},
		{"kick project:456 explode", "kick mode"},
		{"leave", "usage: :leave <name>"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			m, fm := newTestModel(t, 120, 40)
			keys(m, ":")
			typeText(m, tc.line)
			cmds := keys(m, "enter")
			feed(m, cmds[0])
			if len(fm.Calls()) != 0 {
				t.Fatalf("a bad command called %v", fm.Calls())
			}
			if !strings.Contains(m.status.text, tc.want) || m.status.level != slog.LevelError {
				t.Fatalf("status %q (%v), want it to contain %q", m.status.text, m.status.level, tc.want)
			}
			rec := lastLog(t, m)
			if rec.Level != slog.LevelError || rec.Message != "Action failed" {
				t.Fatalf("log %+v", rec)
			}
			if v, _ := rec.Attr("err"); !strings.Contains(v, tc.want) {
				t.Fatalf("log err %q lacks %q", v, tc.want)
			}
		})
	}
}

// Errors from the manager show in the status line and the log, with the
// server's reason and a hint, and the UI goes on.
func TestActionErrorsShowReasonAndHint(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	fm.errs["join"] = &registry.ChannelError{Channel: presenceCh, Code: "ChannelRateLimitReached", Reason: "Too many channels"}
	fm.errs["fault"] = fmt.Errorf("registry: kick: %w", registry.ErrUnsupported)
	keys(m, ":")
	typeText(m, "join presence contact:1")
	feed(m, keys(m, "enter")[0])
	mustContain(t, m.status.text, "ChannelRateLimitReached: Too many channels", "leave channels you no longer need")
	rec := lastLog(t, m)
	if h, _ := rec.Attr("hint"); !strings.Contains(h, "too many channels") {
		t.Fatalf("log hint %q", h)
	}
	feed(m, keys(m, "x", "a")[1])
	mustContain(t, m.status.text, "not supported here", "need the embedded server")
	// The UI is still usable.
	keys(m, "j")
	if m.chans.sel != docCh {
		t.Fatalf("selection stuck at %v", m.chans.sel)
	}
	mustContain(t, screen(m), "Channels 4/100")
}

// A manager that never answers: the action times out with a hint, the UI
// keeps working meanwhile.
func TestActionTimeout(t *testing.T) {
	m, fm := newTestModel(t, 120, 40, func(o *Options) { o.ActionTimeout = 20 * time.Millisecond })
	fm.block = make(chan struct{})
	cmd := keys(m, "j", "j", "r")[2]
	done := make(chan []tea.Msg, 1)
	go func() { done <- runCmd(cmd) }()
	keys(m, "j", "k") // Update is not blocked by the pending action
	if m.chans.sel != projCh {
		t.Fatal("keys must work while an action runs")
	}
	msgs := <-done
	for _, msg := range msgs {
		m.Update(msg)
	}
	mustContain(t, m.status.text, "retry subscription:project:456: context deadline exceeded", "no answer in time")
}

func TestReadOnly(t *testing.T) {
	m, fm := newTestModel(t, 120, 40, func(o *Options) { o.ReadOnly = true })
	for _, k := range []string{"p", "u", "b", "r", "ctrl+d", "x"} {
		cmds := keys(m, k)
		if m.dialogs.top() != nil {
			t.Fatalf("%s opened %T in read-only mode", k, m.dialogs.top())
		}
		feed(m, cmds[0])
		if !strings.Contains(m.status.text, "read-only") {
			t.Fatalf("%s: status %q", k, m.status.text)
		}
	}
	keys(m, ":")
	typeText(m, "drop")
	feed(m, keys(m, "enter")[0])
	mustContain(t, m.status.text, "read-only mode")
	if len(fm.Calls()) != 0 {
		t.Fatalf("read-only made calls %v", fm.Calls())
	}
	for _, b := range m.ShortHelp() {
		if slices.Contains([]string{"p", "u", "b", "r", "ctrl+d", "x"}, b.Help().Key) {
			t.Fatalf("read-only help shows action %q", b.Help().Key)
		}
	}
	mustContain(t, screen(m), "read-only")
}

func helpKeys(bs []key.Binding) []string {
	var out []string
	for _, b := range bs {
		if b.Enabled() {
			out = append(out, b.Help().Key)
		}
	}
	return out
}

func TestShortHelpFollowsFocus(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	for _, tc := range []struct {
		keys []string
		want []string
	}{
		{nil, []string{"↑/↓", "enter", "u", "b", "r", "ctrl+d", "x", "/", ":", "tab", "?", "q"}},
		{[]string{"j"}, []string{"↑/↓", "enter", "b", "r", "ctrl+d", "x", "/", ":", "tab", "?", "q"}},
		{[]string{"tab"}, []string{"1-4", "↑/↓", "enter", "b", "r", "ctrl+d", "x", "/", ":", "tab", "?", "q"}},
		{[]string{"shift+tab", "k", "tab", "2"}, []string{"1-4", "v", "u", "b", "r", "ctrl+d", "x", "/", ":", "tab", "?", "q"}},
		{[]string{"tab"}, []string{"f", "w", "↑/↓", "z", "u", "b", "r", "ctrl+d", "x", "/", ":", "tab", "?", "q"}},
		{[]string{":"}, []string{"tab", "↑/↓", "enter", "esc"}},
		{[]string{"esc", "x"}, []string{"↑/↓", "enter", "esc"}},
		{[]string{"esc", "?"}, []string{"?", "esc"}},
	} {
		keys(m, tc.keys...)
		if got := helpKeys(m.ShortHelp()); !slices.Equal(got, tc.want) {
			t.Fatalf("after %v: help %v, want %v", tc.keys, got, tc.want)
		}
	}
	// The follow binding says what it will do.
	m2, _ := newTestModel(t, 120, 40)
	keys(m2, "tab", "tab")
	if d := m2.ShortHelp()[0].Help().Desc; d != "pause" {
		t.Fatalf("following log: f says %q", d)
	}
	keys(m2, "f")
	if d := m2.ShortHelp()[0].Help().Desc; d != "follow" {
		t.Fatalf("paused log: f says %q", d)
	}
}

func logRecord(i int, msg string) registry.Event {
	return registry.LogEvent{Record: registry.LogRecord{Seq: uint64(100 + i), Time: t0.Add(time.Duration(i) * time.Millisecond), Level: slog.LevelInfo, Message: msg}}
}

func TestLogFollowPauseBadge(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "tab", "tab", "f")
	if m.log.cur.follow {
		t.Fatal("f must pause")
	}
	var evs []registry.Event
	for i := range 3 {
		evs = append(evs, logRecord(i, fmt.Sprintf("late record %d", i)))
	}
	m.Update(EventsBatchMsg{Events: evs})
	s := screen(m)
	mustContain(t, s, "Log · paused", "3 new")
	mustNotContain(t, s, "late record 0")
	keys(m, "G")
	s = screen(m)
	mustContain(t, s, "Log · following", "late record 2")
	mustNotContain(t, s, "3 new")
	// Scrolling up pauses; scrolling back down to the end resumes.
	keys(m, "k")
	if m.log.cur.follow {
		t.Fatal("k must pause")
	}
	keys(m, "j")
	if !m.log.cur.follow {
		t.Fatal("j back to the newest must resume following")
	}
}

func TestLogFilterAndWrap(t *testing.T) {
	m, _ := newTestModel(t, 80, 24)
	long := "a very long record " + strings.Repeat("word ", 30) + "END"
	m.Update(EventsBatchMsg{Events: []registry.Event{logRecord(1, long)}})
	keys(m, "tab", "tab", "/")
	typeText(m, "rejoin|long")
	keys(m, "enter")
	s := screen(m)
	mustContain(t, s, "Channel error, rejoin scheduled", "a very long record", "/rejoin|long")
	mustNotContain(t, s, "Heartbeat")
	mustNotContain(t, s, "END")
	keys(m, "w")
	s = screen(m)
	mustContain(t, s, "· wrap", "END")
	// Inverted.
	keys(m, "/")
	for range 20 {
		m.Update(press("backspace"))
	}
	typeText(m, "!heartbeat")
	keys(m, "enter", "w")
	s = screen(m)
	mustNotContain(t, s, "Heartbeat")
	mustContain(t, s, "Rejoin failed")
	// esc clears the filter.
	keys(m, "esc")
	mustContain(t, screen(m), "Heartbeat")
}

func TestChannelFilter(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "/")
	typeText(m, "doc")
	keys(m, "enter")
	s := screen(m)
	mustContain(t, s, "document:789", "/doc")
	mustNotContain(t, s, "project:456            sub")
	if m.chans.sel != docCh {
		t.Fatalf("selection must move to a visible channel: %v", m.chans.sel)
	}
	// An invalid expression is taken literally, with a warning.
	keys(m, "/")
	for range 5 {
		m.Update(press("backspace"))
	}
	typeText(m, "(")
	keys(m, "enter")
	mustContain(t, m.status.text, "not a valid regular expression")
	mustContain(t, screen(m), "no channel matches the filter")
}

func TestMessagesTab(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "j", "tab", "1")
	s := screen(m)
	// The newest message is selected and pretty-printed.
	mustContain(t, s, "← broadcast  cursor", `"x": 70,`, `"y": 35`)
	keys(m, "k", "k")
	s = screen(m)
	mustContain(t, s, `"x": 50,`)
	d := m.chData[docCh]
	if d.cur.follow {
		t.Fatal("moving up must stop following")
	}
	keys(m, "G")
	if !d.cur.follow {
		t.Fatal("G must follow again")
	}
	// New messages are followed.
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.MessageEvent{Time: t0, Channel: docCh, Direction: registry.Out,
		Kind: registry.MessageBroadcast, Event: "ping", Payload: json.RawMessage(`{"n":99}`)}}})
	mustContain(t, screen(m), `"n": 99`, "→ broadcast  ping")
}

func TestPresenceTab(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "2")
	s := screen(m)
	mustContain(t, s, "VIEWERS 3 · you are tracked as alice", "alice", "(you)", "bob", "carol", "+ carol joined", "- dave left")
	keys(m, "v")
	s = screen(m)
	mustContain(t, s, "RAW PRESENCE FRAMES", "presence_state", `{"bob":{"metas":[{"phx_ref":"F1","name":"Bob"}]}}`, "presence_diff",
		`{"joins":{"carol":`)
	// A leave with no metas left removes the viewer.
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceLeave,
		User: registry.PresenceUser{UserID: "bob", Metas: 0}, Count: 2}}})
	keys(m, "v")
	s = screen(m)
	mustContain(t, s, "VIEWERS 2", "- bob left")
	// A second meta (re-track, second tab) reads as an update; the old
	// meta's leave is not a departure.
	m.Update(EventsBatchMsg{Events: []registry.Event{
		registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceJoin, User: registry.PresenceUser{UserID: "carol", Metas: 2}, Count: 2},
		registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceLeave, User: registry.PresenceUser{UserID: "carol", Metas: 1}, Count: 2},
	}})
	s = screen(m)
	mustContain(t, s, "~ carol updated", "VIEWERS 2")
	mustNotContain(t, s, "- carol left")
}

func TestRetriesTabCountdown(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "j", "j", "3")
	s := screen(m)
	mustContain(t, s, "policy fixed:3s,max=5", "channel disconnected · attempts 2/5", "attempt 2/5 in 1.5s", "█", "░",
		"scheduled", "failed", "RealtimeRestarting")
	if !m.countdownActive() {
		t.Fatal("a scheduled attempt must speed the clock up")
	}
	// The channel recovers: the countdown goes.
	st := sampleState(t0)
	st.Channels[2].Status, st.Channels[2].Attempts, st.Channels[2].NextAttemptAt = registry.StatusConnected, 0, time.Time{}
	m.Update(EventsBatchMsg{State: &st, Events: []registry.Event{registry.RetryEvent{Time: t0, Scope: registry.ScopeChannel, Channel: projCh,
		Attempt: 2, Max: 5, Outcome: registry.RetrySucceeded}}})
	s = screen(m)
	mustContain(t, s, "channel connected · attempts 0/5", "succeeded")
	mustNotContain(t, s, " in 1.5s")
	// Exhausted channel.
	keys(m, "j")
	mustContain(t, screen(m), "retries exhausted — r retries now")
}

func TestInfoTab(t *testing.T) {
	m, _ := newTestModel(t, 200, 50)
	keys(m, "4")
	s := screen(m)
	mustContain(t, s, "realtime:presence:contact:123", "Join ref  3", "presence sync ×1", "eyJh…q9Zc", "sub alice",
		"expires in 59m12s", "RAW FRAMES", "phx_join", "phx_reply")
}

func TestExport(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	path := filepath.Join(t.TempDir(), "out.ndjson")
	keys(m, ":")
	typeText(m, "export "+path)
	feed(m, keys(m, "enter")[0])
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "{\"type\":\"log\"}\n" {
		t.Fatalf("export wrote %q, %v", b, err)
	}
	mustContain(t, m.status.text, "exported the log and events to "+path)
	// A failing export loses nothing and says why.
	keys(m, ":")
	typeText(m, "export /nonexistent/dir/x.ndjson")
	feed(m, keys(m, "enter")[0])
	mustContain(t, m.status.text, "export /nonexistent/dir/x.ndjson")
	if m.status.level != slog.LevelError {
		t.Fatalf("status level %v", m.status.level)
	}
}

func TestCommandCompletion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"jo", "join "},
		{"join pr", "join presence "},
		{"join presence co", "join presence contact:123"},
		{"leave doc", ""}, // names complete from full names
		{"leave broadcast:d", "leave broadcast:document:789"},
		{"policy e", "policy exp"},
		{"fail", "fail-connects "},
	} {
		m, _ := newTestModel(t, 120, 40)
		keys(m, ":")
		typeText(m, tc.in)
		keys(m, "tab")
		got := m.cmd.input.Value()
		if tc.want == "" {
			tc.want = tc.in
		}
		if got != tc.want {
			t.Errorf("%q + tab = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The suggestions are listed above the command line.
	m, _ := newTestModel(t, 120, 40)
	keys(m, ":")
	typeText(m, "f")
	mustContain(t, screen(m), ":freeze", ":fail-connects")
	keys(m, "esc")
	if m.dialogs.top() != nil {
		t.Fatal("esc must close the command line")
	}
}

func TestCommandHistory(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	keys(m, ":")
	typeText(m, "drop")
	feed(m, keys(m, "enter")[0])
	keys(m, ":", "up")
	if v := m.cmd.input.Value(); v != "drop" {
		t.Fatalf("history up = %q", v)
	}
	feed(m, keys(m, "enter")[0])
	if len(fm.Calls()) != 2 {
		t.Fatalf("calls %v", fm.Calls())
	}
}

func TestHelpOverlay(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "?")
	mustContain(t, screen(m), "Keys", "track presence", "retry now", "raw frames", "commands (:)")
	keys(m, "?")
	if m.dialogs.top() != nil {
		t.Fatal("? must close help")
	}
}

func TestQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m, _ := newTestModel(t, 80, 24)
		cmd := keys(m, k)[0]
		if cmd == nil {
			t.Fatalf("%s returned no Cmd", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Fatalf("%s did not quit", k)
		}
	}
	// q types into the command line instead of quitting.
	m, _ := newTestModel(t, 80, 24)
	keys(m, ":", "q")
	if m.quitting || m.cmd.input.Value() != "q" {
		t.Fatal("q in the command line must be typed")
	}
}

func TestBridgeFailureQuitsWithError(t *testing.T) {
	m, _ := newTestModel(t, 80, 24)
	_, cmd := m.Update(BridgeDoneMsg{Err: errors.New("boom")})
	if _, ok := cmd().(tea.QuitMsg); !ok || m.fatal == nil {
		t.Fatal("a bridge failure must quit with the error")
	}
	m2, _ := newTestModel(t, 80, 24)
	m2.Update(BridgeDoneMsg{})
	mustContain(t, m2.status.text, "event stream ended")
}

func TestManagerErrorEventShowsInStatus(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.ErrorEvent{Time: t0, Channel: projCh, Op: "join",
		Code: "Unauthorized", Message: "You do not have permissions to read from this Channel topic"}}})
	mustContain(t, m.status.text, "join subscription:project:456: Unauthorized:", "D checks the RLS policies")
	mustContain(t, screen(m), "D checks the RLS policies")
}

func TestNoManager(t *testing.T) {
	m := New(Options{Now: func() time.Time { return t0 }, Schedule: func(time.Duration, func(time.Time) tea.Msg) tea.Cmd { return nil }})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	st := sampleState(t0)
	m.Update(EventsBatchMsg{State: &st})
	feed(m, keys(m, "j", "j", "r")[2])
	mustContain(t, m.status.text, "no channel manager")
}

func TestContextCancelledActions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, fm := newTestModel(t, 80, 24, func(o *Options) { o.Context = ctx })
	fm.block = make(chan struct{})
	feed(m, keys(m, "j", "j", "r")[2])
	mustContain(t, m.status.text, "context canceled")
}

func TestResolveName(t *testing.T) {
	chans := sampleState(t0).Channels
	other := registry.MustName(registry.KindBroadcast, "contact", "123", "")
	chans = append(chans, registry.ChannelInfo{Name: other})
	for _, tc := range []struct {
		arg, tenant, want, err string
	}{
		{"presence:contact:123", "", "presence:contact:123", ""},
		{"document:789", "", "broadcast:document:789", ""},
		{"contact:123", "", "", "is ambiguous"},
		{"presence:contact:123", "abc", "presence:contact:123", ""},
		{"project:456", "", "subscription:project:456", ""},
		{"nope", "", "", "no channel"},
		{"", "", "", "no channel named"},
	} {
		n, err := resolveName(tc.arg, chans, tc.tenant)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || n.String() != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.arg, n, err, tc.want)
		}
	}
}

// r on a connected channel has nothing to retry: it says so and calls
// nothing.
func TestRetryConnectedChannel(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	feed(m, keys(m, "r")[0])
	mustContain(t, m.status.text, "presence:contact:123 is connected: nothing to retry")
	if len(fm.Calls()) != 0 {
		t.Fatalf("calls %v", fm.Calls())
	}
}

// Presence events update the viewers in place, in user id order, and
// carry the truncation of the channel's presence: the pane says how many
// users are not shown, until an event says the presence is whole again.
func TestPresenceEventsAndTruncation(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, "2")
	join := func(id string, metas int, tr *registry.PresenceTruncation) registry.PresenceEvent {
		return registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceJoin,
			User: registry.PresenceUser{UserID: id, Metas: metas}, Count: 4, Truncated: tr}
	}
	tr := &registry.PresenceTruncation{Members: 7, Metas: 7}
	m.Update(EventsBatchMsg{Events: []registry.Event{
		join("dave", 1, nil), join("aaron", 1, nil), join("bob", 3, nil),
		registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceLeave, User: registry.PresenceUser{UserID: "carol"}, Count: 4},
		registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceSync, Count: 4, Truncated: tr},
	}})
	var ids []string
	for _, u := range m.state.Presence[presenceCh] {
		ids = append(ids, fmt.Sprintf("%s:%d", u.UserID, u.Metas))
	}
	if got := strings.Join(ids, " "); got != "aaron:1 alice:1 bob:3 dave:1" {
		t.Fatalf("viewers %s", got)
	}
	if out := ansi.Strip(m.Render()); !strings.Contains(out, "VIEWERS 4 · truncated: 7 not shown") {
		t.Fatalf("no truncation marker:\n%s", out)
	}
	m.Update(EventsBatchMsg{Events: []registry.Event{registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceSync, Count: 4}}})
	if out := ansi.Strip(m.Render()); strings.Contains(out, "truncated") {
		t.Fatalf("the marker stayed:\n%s", out)
	}
}
