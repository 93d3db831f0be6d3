package tui

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"rtm/registry"
	"rtm/registry/apps"
	"rtm/theme"
)

// sizes are the terminal sizes of the golden views.
var goldenSizes = [][2]int{{80, 24}, {120, 40}, {200, 50}}

// screens are the states the golden and invariant tests render: a name
// and the keys (or setup) that lead there from the sample model.
func screens() []struct {
	name  string
	setup func(m *Model)
} {
	return []struct {
		name  string
		setup func(m *Model)
	}{
		{"channels", func(m *Model) {}},
		{"messages", func(m *Model) { keys(m, "j", "tab", "1") }},
		{"presence", func(m *Model) { keys(m, "2") }},
		{"presence-raw", func(m *Model) { keys(m, "2", "v") }},
		{"presence-truncated", func(m *Model) {
			st := sampleState(t0)
			for i := range st.Channels {
				if st.Channels[i].Name == presenceCh {
					st.Channels[i].PresenceTruncated = &registry.PresenceTruncation{Members: 100_000, Metas: 100_000}
				}
			}
			m.Update(EventsBatchMsg{State: &st})
			keys(m, "2")
		}},
		{"retries", func(m *Model) { keys(m, "j", "j", "3") }},
		{"info", func(m *Model) { keys(m, "4") }},
		{"faults", func(m *Model) { keys(m, "x") }},
		{"track-form", func(m *Model) { keys(m, "p") }},
		{"broadcast-form-error", func(m *Model) {
			keys(m, "j", "b", "tab")
			typeText(m, "nope")
			keys(m, "enter")
		}},
		{"confirm-leave", func(m *Model) { keys(m, "j", "ctrl+d") }},
		{"command", func(m *Model) {
			keys(m, ":")
			typeText(m, "f")
		}},
		{"help", func(m *Model) { keys(m, "?") }},
		{"log-paused", func(m *Model) {
			keys(m, "tab", "tab", "f")
			m.Update(EventsBatchMsg{Events: []registry.Event{logRecord(1, "new 1"), logRecord(2, "new 2")}})
		}},
		{"error-status", func(m *Model) {
			m.Update(EventsBatchMsg{Events: []registry.Event{registry.ErrorEvent{Time: t0, Channel: projCh, Op: "join",
				Code: "Unauthorized", Message: "You do not have permissions to read from this Channel topic"}}})
		}},
		{"zoom-log", func(m *Model) { keys(m, "tab", "tab", "z") }},
		{"doctor", func(m *Model) {
			m.opts.Doctor = &fakeDoctor{checks: doctorChecks()}
			m.opts.Database = DatabaseInfo{Label: "demo PostgreSQL", Detail: "demo PostgreSQL postgres://postgres:xxxxx@127.0.0.1:5433/rtm_demo"}
			st := readyState()
			m.Update(EventsBatchMsg{State: &st})
			keys(m, "j", "j")
			feed(m, keys(m, "D")[0])
		}},
		{"subscription-refused", func(m *Model) {
			m.opts.Database = DatabaseInfo{Label: "none", Detail: "none: rtm could not start its demo PostgreSQL", Missing: true}
			st := readyState()
			c := &st.Channels[2]
			c.Ready, c.LastError, c.LastErrorCode, c.LastErrorAt = false, "No database: rtm could not start its demo PostgreSQL", "system", t0
			m.Update(EventsBatchMsg{State: &st})
			keys(m, "j", "j", "4")
		}},
		{"socket-down", func(m *Model) {
			st := sampleState(t0)
			st.Socket = registry.SocketInfo{Status: registry.SocketDisconnected, Reason: "heartbeat timeout", Attempt: 2,
				NextAttemptAt: t0.Add(1800 * time.Millisecond), LastError: "heartbeat timeout"}
			for i := range st.Channels {
				st.Channels[i].Status = registry.StatusDisconnected
			}
			m.Update(EventsBatchMsg{State: &st, Events: []registry.Event{registry.RetryEvent{Time: t0, Scope: registry.ScopeSocket,
				Attempt: 2, Delay: 2 * time.Second, NextAt: t0.Add(1800 * time.Millisecond), Reason: "heartbeat timeout", Outcome: registry.RetryScheduled}}})
			keys(m, "3")
		}},
		{"limits", func(m *Model) {
			withLimits(m, sampleLimits())
			keys(m, "L")
		}},
		{"limits-off", func(m *Model) { keys(m, "L") }},
		{"apps-off", func(m *Model) { keys(m, "A") }},
		{"apps-empty", func(m *Model) {
			withApps(m, apps.Snapshot{})
			keys(m, "A")
		}},
		{"apps", func(m *Model) {
			withApps(m, sampleApps())
			keys(m, "A")
		}},
		{"apps-channel", func(m *Model) {
			withApps(m, sampleApps())
			keys(m, "A", "tab", "down")
		}},
		{"apps-messages", func(m *Model) {
			withApps(m, sampleApps())
			keys(m, "A", "tab")
		}},
		{"apps-empty-anon-key", func(m *Model) {
			withApps(m, apps.Snapshot{})
			m.opts.AppsAnonKey = appsAnonKey
			keys(m, "A")
		}},
		{"apps-anon-key", func(m *Model) {
			withApps(m, sampleApps())
			m.opts.AppsAnonKey = appsAnonKey
			keys(m, "A")
		}},
		{"apps-socket-faults", func(m *Model) {
			withApps(m, sampleApps())
			keys(m, "A", "x")
		}},
		{"apps-channel-faults", func(m *Model) {
			withApps(m, sampleApps())
			keys(m, "A", "tab", "x")
		}},
		{"apps-fault-form", func(m *Model) {
			withApps(m, sampleApps())
			keys(m, "A", "tab", "x", "r", "tab")
		}},
	}
}

func TestGolden(t *testing.T) {
	for _, sc := range screens() {
		for _, sz := range goldenSizes {
			t.Run(fmt.Sprintf("%s/%dx%d", sc.name, sz[0], sz[1]), func(t *testing.T) {
				m, _ := newTestModel(t, sz[0], sz[1])
				sc.setup(m)
				golden.RequireEqual(t, ansi.Strip(m.Render()))
			})
		}
	}
	// A replay (rtm replay): the position row, read-only.
	for _, sz := range goldenSizes {
		t.Run(fmt.Sprintf("replay/%dx%d", sz[0], sz[1]), func(t *testing.T) {
			m, _, _ := newReplayModel(t, sz[0], sz[1])
			golden.RequireEqual(t, ansi.Strip(m.Render()))
		})
	}
	// A fresh UI before the first snapshot.
	for _, sz := range goldenSizes {
		t.Run(fmt.Sprintf("empty/%dx%d", sz[0], sz[1]), func(t *testing.T) {
			m := New(Options{Now: func() time.Time { return t0 }, Theme: func(bool) *theme.Styles { return theme.Default(true) }})
			m.Update(teaSize(sz[0], sz[1]))
			golden.RequireEqual(t, ansi.Strip(m.Render()))
		})
	}
}

// assertScreen checks the invariants of a rendered screen: exactly h
// lines, each exactly w cells wide (escape sequences included).
func assertScreen(t *testing.T, out string, w, h int, what string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) != h {
		t.Fatalf("%s: %d lines, want %d", what, len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n != w {
			t.Fatalf("%s: line %d is %d cells wide, want %d:\n%q", what, i, n, w, ansi.Strip(l))
		}
	}
}

// hostile are events with content meant to break the layout: long
// names, wide characters, escape sequences, control characters, huge
// payloads.
func hostile() []registry.Event {
	long := registry.MustName(registry.KindBroadcast, strings.Repeat("entity", 20), strings.Repeat("界", 30), "")
	evil := "\x1b[31mred\x1b[0m\ttab\r\nnewline\x07bell 🎉 界界 \u200b"
	info := registry.ChannelInfo{Name: long, Topic: long.Topic(), Status: registry.StatusConnected, RefCount: 12345,
		MessagesIn: 1 << 40, Attempts: 99, MaxAttempts: 100, Reason: evil, LastError: evil, TrackedAs: evil, Tracked: true}
	var evs []registry.Event
	evs = append(evs, registry.ChannelStateEvent{Time: t0, Channel: long, Status: registry.StatusConnected, Info: info})
	payload, _ := json.Marshal(map[string]any{"text": evil, "nested": map[string]any{"k": strings.Repeat("x", 500)}})
	for i := 0; i < 30; i++ {
		evs = append(evs,
			registry.MessageEvent{Time: t0, Channel: long, Direction: registry.In, Kind: registry.MessageBroadcast, Event: evil, Payload: payload, Size: len(payload)},
			registry.MessageEvent{Time: t0, Channel: presenceCh, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "x", Payload: json.RawMessage("not json " + evil)},
			registry.MessageEvent{Time: t0, Channel: docCh, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "bin", Binary: []byte(evil)},
			registry.LogEvent{Record: registry.LogRecord{Time: t0, Level: slog.LevelWarn, Message: evil + strings.Repeat(" long", 80),
				Attrs: []registry.LogAttr{{Key: evil, Value: evil}}}},
			registry.PresenceEvent{Time: t0, Channel: presenceCh, Action: registry.PresenceJoin,
				User: registry.PresenceUser{UserID: evil + fmt.Sprint(i), Name: evil, Metas: 1}, Count: i},
			registry.RetryEvent{Time: t0, Scope: registry.ScopeChannel, Channel: presenceCh, Attempt: 1000 + i, Max: 5, Delay: time.Hour, Reason: evil, Outcome: registry.RetryFailed, Err: evil},
			registry.FrameEvent{Time: t0, Direction: registry.In, Channel: presenceCh, Topic: presenceCh.Topic(), Event: evil, Text: evil},
			registry.ErrorEvent{Time: t0, Op: evil, Message: evil + strings.Repeat(" very long reason", 20)},
		)
	}
	return evs
}

func TestNoLineWiderThanTheTerminal(t *testing.T) {
	sizes := [][2]int{{60, 16}, {61, 17}, {79, 23}, {80, 24}, {99, 30}, {100, 30}, {120, 40}, {133, 41}, {200, 50}, {250, 70}}
	for _, sc := range screens() {
		for _, sz := range sizes {
			for _, evil := range []bool{false, true} {
				m, _ := newTestModel(t, sz[0], sz[1])
				if evil {
					m.Update(EventsBatchMsg{Events: hostile()})
				}
				sc.setup(m)
				assertScreen(t, m.Render(), sz[0], sz[1], fmt.Sprintf("%s %dx%d hostile=%v", sc.name, sz[0], sz[1], evil))
				// Every tab and pane of the hostile channel too.
				if evil {
					keys(m, "esc", "esc", "G")
					for _, k := range []string{"1", "2", "3", "4", "tab", "enter"} {
						keys(m, k)
						assertScreen(t, m.Render(), sz[0], sz[1], fmt.Sprintf("%s %dx%d hostile after %s", sc.name, sz[0], sz[1], k))
					}
				}
			}
		}
	}
	// Too small a terminal says so, within its size.
	for _, sz := range [][2]int{{20, 5}, {59, 40}, {100, 15}} {
		m, _ := newTestModel(t, sz[0], sz[1])
		out := m.Render()
		assertScreen(t, out, sz[0], sz[1], fmt.Sprintf("tiny %dx%d", sz[0], sz[1]))
		if !strings.Contains(out, "rtm needs at least") && sz[0] >= 20 {
			t.Fatalf("tiny screen does not explain:\n%s", out)
		}
	}
}

// A resize recomputes the layout; the screen follows.
func TestResize(t *testing.T) {
	m, _ := newTestModel(t, 200, 50)
	for _, sz := range [][2]int{{80, 24}, {150, 45}, {60, 16}, {200, 50}} {
		m.Update(teaSize(sz[0], sz[1]))
		assertScreen(t, m.Render(), sz[0], sz[1], fmt.Sprintf("after resize to %dx%d", sz[0], sz[1]))
	}
}

// Colours: statuses and levels are painted, and the plain theme paints
// none.
func TestColours(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	out := m.Render()
	for _, w := range []string{"connected", "error"} {
		p := theme.Default(true).Status[w].Render(w)
		if !strings.Contains(out, p) {
			t.Fatalf("status %q is not painted with its colour", w)
		}
	}
	narrow, _ := newTestModel(t, 80, 24)
	if ok := theme.Default(true).Status["connected"].Render("●"); !strings.Contains(narrow.Render(), ok) {
		t.Fatalf("connected status glyph is not painted with the OK colour")
	}
	plain, _ := newTestModel(t, 120, 40, func(o *Options) { o.Theme = func(bool) *theme.Styles { return theme.Plain() } })
	if s := plain.Render(); strings.Contains(s, "38;2;") || strings.Contains(s, "48;2;") {
		t.Fatalf("plain theme emits colours")
	}
	// The background report switches the theme.
	light, _ := newTestModel(t, 120, 40, func(o *Options) { o.Theme = theme.Default })
	dark := light.Render()
	light.Update(teaBackground(false))
	if light.Render() == dark || light.st.Dark {
		t.Fatalf("a light background must switch the theme")
	}
}
