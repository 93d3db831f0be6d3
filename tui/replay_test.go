package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"rtm/registry"
	"rtm/registry/headless"
	"rtm/theme"
)

// fakeReplay is a replay control on a manual position: it records the
// calls (so tests can prove Update makes none) and treats a log record
// "Replay rewound" as the rewind marker.
type fakeReplay struct {
	mu          sync.Mutex
	at, length  time.Duration
	speed       float64
	paused      bool
	calls       []string
	rejectSpeed error
}

func (f *fakeReplay) Position() (time.Duration, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, f.length
}
func (f *fakeReplay) Speed() float64 { f.mu.Lock(); defer f.mu.Unlock(); return f.speed }
func (f *fakeReplay) Paused() bool   { f.mu.Lock(); defer f.mu.Unlock(); return f.paused }
func (f *fakeReplay) SetSpeed(x float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("speed %g", x))
	if f.rejectSpeed != nil {
		return f.rejectSpeed
	}
	f.speed = x
	return nil
}
func (f *fakeReplay) SetPaused(p bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("paused %v", p))
	f.paused = p
}
func (f *fakeReplay) Seek(at time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "seek "+at.String())
	f.at = min(max(at, 0), f.length)
}
func (f *fakeReplay) IsRewind(e registry.Event) bool {
	l, ok := e.(registry.LogEvent)
	return ok && l.Record.Message == "Replay rewound"
}
func (f *fakeReplay) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func newReplayModel(t testing.TB, w, h int) (*Model, *fakeReplay, *fakeManager) {
	t.Helper()
	r := &fakeReplay{at: 90 * time.Second, length: 5 * time.Minute, speed: 1}
	m, fm := newTestModel(t, w, h, func(o *Options) { o.Replay = r; o.ReadOnly = true; o.Manager = nil })
	return m, r, fm
}

// The replay row shows the position, a slider and the speed; the keys
// control the replay through Cmds, never from Update.
func TestReplayKeys(t *testing.T) {
	m, r, _ := newReplayModel(t, 120, 40)
	s := screen(m)
	mustContain(t, s, "▶ replay 1:30 / 5:00", "●", "1x", "space pause · ←/→ seek · +/- speed")
	for _, tc := range []struct {
		key  string
		call string
		at   string
	}{
		{"space", "paused true", "⏸ paused 1:30 / 5:00"},
		{"right", "seek 1m40s", "1:40 / 5:00"},
		{"left", "seek 1m30s", "1:30 / 5:00"},
		{"shift+right", "seek 2m30s", "2:30 / 5:00"},
		{"shift+left", "seek 1m30s", "1:30 / 5:00"},
		{"+", "speed 2", " 2x"},
		{"+", "speed 4", " 4x"},
		{"-", "speed 2", " 2x"},
		{"space", "paused false", "▶ replay 1:30"},
	} {
		n := len(r.Calls())
		cmd := keys(m, tc.key)[0]
		if len(r.Calls()) != n {
			t.Fatalf("%s: Update called the replay", tc.key)
		}
		feed(m, cmd)
		if calls := r.Calls(); len(calls) != n+1 || calls[n] != tc.call {
			t.Fatalf("%s: calls %v, want … %q", tc.key, calls, tc.call)
		}
		mustContain(t, screen(m), tc.at)
	}
	// Seeking stops at the ends.
	for range 10 {
		feed(m, keys(m, "shift+right")[0])
	}
	mustContain(t, screen(m), "■ ended 5:00 / 5:00")
	feed(m, keys(m, "shift+left")[0])
	mustContain(t, screen(m), "4:00 / 5:00")
	// The footer offers the replay keys; read-only hides the actions.
	help := helpKeys(m.ShortHelp())
	for _, k := range []string{"space", "←/→", "+/-"} {
		if !slices.Contains(help, k) {
			t.Fatalf("help %v lacks %s", help, k)
		}
	}
	if slices.Contains(help, "b") || slices.Contains(help, "x") {
		t.Fatalf("replay help offers actions: %v", help)
	}
}

func TestReplayCommands(t *testing.T) {
	m, r, _ := newReplayModel(t, 120, 40)
	for _, tc := range []struct{ line, call string }{
		{"seek 2:30", "seek 2m30s"},
		{"seek 45s", "seek 45s"},
		{"seek +10s", "seek 55s"},
		{"seek -1m", "seek 0s"},
		{"speed 10", "speed 10"},
		{"speed 0.5x", "speed 0.5"},
	} {
		keys(m, ":")
		typeText(m, tc.line)
		feed(m, keys(m, "enter")[0])
		calls := r.Calls()
		if len(calls) == 0 || calls[len(calls)-1] != tc.call {
			t.Fatalf("%s: calls %v, want … %q", tc.line, calls, tc.call)
		}
	}
	for _, tc := range []struct{ line, want string }{
		{"seek soon", "is not a position"},
		{"speed 0", "is not a speed"},
		{"speed fast", "is not a speed"},
		{"seek", "usage: :seek"},
	} {
		n := len(r.Calls())
		keys(m, ":")
		typeText(m, tc.line)
		feed(m, keys(m, "enter")[0])
		if len(r.Calls()) != n || !strings.Contains(m.status.text, tc.want) || m.status.level != slog.LevelError {
			t.Fatalf("%s: calls %v, status %q", tc.line, r.Calls(), m.status.text)
		}
	}
	// An error of the replay shows.
	r.rejectSpeed = errors.New("speed 3: want a number above 0")
	feed(m, keys(m, "+")[0])
	mustContain(t, m.status.text, "replay speed 1x: speed 3: want a number above 0")
	// Completion offers them while replaying.
	keys(m, ":")
	typeText(m, "spe")
	keys(m, "tab")
	if v := m.cmd.input.Value(); v != "speed " {
		t.Fatalf("completion %q", v)
	}
}

// Outside a replay the keys do nothing and the commands say why.
func TestReplayCommandsOutsideReplay(t *testing.T) {
	m, fm := newTestModel(t, 120, 40)
	mustNotContain(t, screen(m), "replay")
	for _, k := range []string{"space", "left", "right", "+", "-"} {
		if cmd := keys(m, k)[0]; cmd != nil {
			t.Fatalf("%s returned a Cmd outside a replay", k)
		}
	}
	keys(m, ":")
	typeText(m, "seek 1:00")
	feed(m, keys(m, "enter")[0])
	mustContain(t, m.status.text, "only while replaying a recording")
	keys(m, ":")
	typeText(m, "spe")
	keys(m, "tab")
	if v := m.cmd.input.Value(); v == "speed " {
		t.Fatal("speed completed outside a replay")
	}
	if len(fm.Calls()) != 0 {
		t.Fatalf("calls %v", fm.Calls())
	}
}

// The rewind marker clears the history; the events after it build it
// again.
func TestReplayRewindClearsHistory(t *testing.T) {
	m, _, _ := newReplayModel(t, 120, 40)
	keys(m, "j", "tab", "1")
	mustContain(t, screen(m), `"x": 70,`)
	rewind := registry.LogEvent{Record: registry.LogRecord{Time: t0, Level: slog.LevelInfo, Message: "Replay rewound",
		Attrs: []registry.LogAttr{{Key: "replay_epoch", Value: "1"}}}}
	again := registry.MessageEvent{Time: t0, Channel: docCh, Direction: registry.In, Kind: registry.MessageBroadcast,
		Event: "cursor", Payload: []byte(`{"x":1}`)}
	st := sampleState(t0)
	m.Update(EventsBatchMsg{Events: []registry.Event{rewind, again}, State: &st})
	s := screen(m)
	mustContain(t, s, "Replay rewound", `"x": 1`)
	mustNotContain(t, s, `"x": 70`, "Rejoin failed")
	if d := m.chData[docCh]; d == nil || d.msgs.Len() != 1 {
		t.Fatalf("messages after the rewind: %+v", d)
	}
	if m.retries.Len() != 0 || m.log.logs.Len() != 1 {
		t.Fatalf("retries %d, logs %d after the rewind", m.retries.Len(), m.log.logs.Len())
	}
}

// The replay row fits every width; the clock ticks fast while playing.
func TestReplayLayout(t *testing.T) {
	for _, sz := range [][2]int{{60, 16}, {80, 24}, {120, 40}, {200, 50}} {
		m, r, _ := newReplayModel(t, sz[0], sz[1])
		for _, sc := range screens() {
			sc.setup(m)
			assertScreen(t, m.Render(), sz[0], sz[1], fmt.Sprintf("replay %s %dx%d", sc.name, sz[0], sz[1]))
			keys(m, "esc", "esc")
		}
		if d := tickDelay(m); d != m.opts.FastTick {
			t.Fatalf("playing: tick %v", d)
		}
		r.SetPaused(true)
		m.Update(tickMsg{t: t0, gen: m.tickGen})
		if d := tickDelay(m); d != m.opts.Tick && !m.countdownActive() {
			t.Fatalf("paused: tick %v", d)
		}
	}
}

// tickDelay returns the delay of the model's next clock tick.
func tickDelay(m *Model) time.Duration {
	msg := m.tickCmd()()
	return msg.(scheduledMsg).d
}

// Update never calls the replay's controls: only the returned Cmds do,
// once per key.
func TestReplayUpdateDoesNoIO(t *testing.T) {
	m, r, _ := newReplayModel(t, 80, 24)
	var cmds []tea.Cmd
	for range 100 {
		cmds = append(cmds, keys(m, "right", "+", "-", "space")...)
	}
	if len(r.Calls()) != 0 {
		t.Fatal("Update called the replay")
	}
	for _, c := range cmds {
		feed(m, c)
	}
	if len(r.Calls()) != 400 {
		t.Fatalf("%d calls", len(r.Calls()))
	}
}

// playerReplay is the replay of package registry/headless (what rtm
// replay uses) as a [Replay]: its Player plus the rewind marker test.
type playerReplay struct{ *headless.Player }

func (p playerReplay) IsRewind(e registry.Event) bool {
	_, ok := headless.RewindEpoch(e)
	return ok
}

// fakeClock is a settable wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// The real replay player of `rtm replay` drives the UI through the real
// bridge: seeking forward delivers the events up to the new position,
// seeking back rewinds (the UI forgets what came after) and the replay
// row follows.
func TestReplayWithPlayer(t *testing.T) {
	start := t0.Add(-time.Hour)
	msg := func(at time.Duration, x int) registry.Event {
		return registry.MessageEvent{Time: start.Add(at), Channel: docCh, Direction: registry.In, Kind: registry.MessageBroadcast,
			Event: "cursor", Payload: []byte(fmt.Sprintf(`{"x":%d}`, x))}
	}
	info := sampleState(start).Channels[1]
	rec := &headless.Recording{
		Header: headless.Header{Type: headless.TypeRecording, Version: headless.RecordingVersion, Started: start,
			Target: "ws://127.0.0.1:4000/realtime/v1/websocket", Serializer: "2.0.0", Channels: []registry.Name{docCh}},
		Events: []registry.Event{
			registry.ChannelStateEvent{Time: start, Channel: docCh, Status: registry.StatusConnected, Info: info},
			msg(10*time.Second, 10), msg(20*time.Second, 20), msg(40*time.Second, 40),
			registry.LogEvent{Record: registry.LogRecord{Time: start.Add(60 * time.Second), Level: slog.LevelInfo, Message: "The end"}},
		},
	}
	wall := &fakeClock{t: t0}
	player := headless.NewPlayer(rec, headless.PlayerOptions{Speed: 1, Paused: true, Name: "test.ndjson", Now: wall.Now})
	r := playerReplay{player}
	m := New(Options{ReadOnly: true, Replay: r, Now: player.Now, Theme: func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd { return nil }})
	m.Update(teaSize(120, 40))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	msgs := make(chan tea.Msg, 1024)
	wg.Add(2)
	go func() { defer wg.Done(); player.Run(ctx) }()
	go func() {
		defer wg.Done()
		NewBridge(player, player.Snapshot, BridgeOptions{FlushEvery: 5 * time.Millisecond}).Run(ctx, func(msg tea.Msg) {
			select {
			case msgs <- msg:
			case <-ctx.Done():
			}
		})
	}()
	// until feeds the bridge's messages to the model until the screen
	// satisfies cond.
	until := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			m.Update(tickMsg{t: t0, gen: m.tickGen}) // the UI's clock: samples the replay
			if s := screen(m); cond(s) {
				return
			}
			select {
			case msg := <-msgs:
				m.Update(msg)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, screen(m))
			}
		}
	}
	until("the paused start", func(s string) bool {
		return strings.Contains(s, "⏸ paused 0:00 / 1:00") && strings.Contains(s, "document:789") && strings.Contains(s, "Replay started")
	})
	keys(m, "j", "tab", "1")
	// Seek forward 30 s: the messages at 10 s and 20 s arrive, not 40 s.
	for range 3 {
		feed(m, keys(m, "right")[0])
	}
	until("the messages up to 0:30", func(s string) bool {
		return strings.Contains(s, "0:30 / 1:00") && strings.Contains(s, `{"x":20}`) && strings.Contains(s, `{"x":10}`)
	})
	mustNotContain(t, screen(m), `{"x":40}`)
	// Play: the clock runs at twice the pace; 10 s of wall time reach 0:50.
	feed(m, keys(m, "+")[0])
	feed(m, keys(m, "space")[0])
	wall.Add(10 * time.Second)
	player.SetPaused(false) // wakes the player on the new wall time
	until("0:50 and the message at 0:40", func(s string) bool {
		return strings.Contains(s, "▶ replay 0:50 / 1:00") && strings.Contains(s, " 2x") && strings.Contains(s, `{"x":40}`)
	})
	// Back a minute: the rewind clears everything after 0:00.
	feed(m, keys(m, "space")[0])
	feed(m, keys(m, "shift+left")[0])
	until("the rewind", func(s string) bool {
		return strings.Contains(s, "0:00 / 1:00") && strings.Contains(s, "Replay rewound") && !strings.Contains(s, `{"x":`)
	})
}

// TestGoldenAppReplay: rtm replay of an app recording (a real
// headless.Player on testdata/app-recording.ndjson, paused 3 s in)
// starts on the Apps view, which shows the app's socket and channels as
// they were then: room1 joined with its presence and one broadcast (not
// the later one), orders refused.
func TestGoldenAppReplay(t *testing.T) {
	f, err := os.Open("testdata/app-recording.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := headless.ReadRecording("app-recording.ndjson", f)
	if err != nil {
		t.Fatal(err)
	}
	p := headless.NewPlayer(rec, headless.PlayerOptions{Paused: true})
	p.Seek(3 * time.Second)
	var upTo []registry.Event
	for _, e := range rec.Events {
		if !e.EventTime().After(p.Now()) {
			upTo = append(upTo, e)
		}
	}
	for _, sz := range goldenSizes {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			m := New(Options{ReadOnly: true, Replay: p, Now: p.Now, Apps: p.Apps(),
				Theme: func(bool) *theme.Styles { return theme.Default(true) }})
			m.OpenApps()
			m.Update(teaSize(sz[0], sz[1]))
			st := p.Snapshot()
			m.Update(EventsBatchMsg{Events: upTo, State: &st})
			s := ansi.Strip(m.Render())
			mustContain(t, s, "room1", "orders", "⏸ paused 0:03 / 0:05")
			golden.RequireEqual(t, s)
		})
	}
}
