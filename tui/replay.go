package tui

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// Replay controls the replay of a recording that the UI shows read-only
// (rtm replay): the events come from the replay through the [Bridge]
// like a manager's, and [Options.Now] is the replay's clock. With
// [Options.Replay] set, the header gets a third row with the position,
// a slider, the speed and whether it is paused, and keys control the
// pace: space pauses or resumes, ←/→ seek 10 s (shift+←/→ a minute),
// +/- double or halve the speed; the commands :seek <position|+dur|-dur>
// and :speed <x> do the same.
//
// The UI calls the control methods (SetSpeed, SetPaused, Seek) from
// tea.Cmds, and the read methods (Position, Speed, Paused) from Update
// on its clock ticks: all must be safe for concurrent use and must not
// block for long.
type Replay interface {
	// Position returns how far into the recording the replay is, and
	// the recording's length.
	Position() (at, length time.Duration)
	// Speed returns the speed (1 is the recorded pace).
	Speed() float64
	// Paused reports whether the replay is paused.
	Paused() bool
	// SetSpeed changes the speed (x > 0).
	SetSpeed(x float64) error
	// SetPaused pauses or resumes.
	SetPaused(paused bool)
	// Seek moves to at (clamped to the recording).
	Seek(at time.Duration)
	// IsRewind reports whether e is the marker the replay sends after a
	// Seek back, before it delivers the recording again from its start:
	// on it the UI forgets the history it keeps (log, messages, raw
	// frames, retries, presence feeds, doctor runs). The marker itself
	// then shows in the log.
	IsRewind(e registry.Event) bool
}

// Replay defaults.
const (
	// ReplaySeek is the step of ←/→; ReplaySeekLong of shift+←/→.
	ReplaySeek     = 10 * time.Second
	ReplaySeekLong = time.Minute
	// maxReplaySpeed bounds +.
	maxReplaySpeed = 1024
	minReplaySpeed = 1.0 / 64
)

// replayInfo is what the UI last read from the replay.
type replayInfo struct {
	at, length time.Duration
	speed      float64
	paused     bool
}

// errNotReplaying refuses the replay commands outside rtm replay.
var errNotReplaying = errors.New("only while replaying a recording (rtm replay <file>)")

// replayDoneMsg is the outcome of a replay control Cmd.
type replayDoneMsg struct {
	what string
	err  error
}

// sampleReplay reads the replay's position (Update only).
func (m *Model) sampleReplay() {
	r := m.opts.Replay
	if r == nil {
		return
	}
	at, length := r.Position()
	info := replayInfo{at: at, length: length, speed: r.Speed(), paused: r.Paused()}
	if info != m.replay {
		m.replay = info
		m.cache.header.valid = false
	}
}

// replayControl returns a Cmd that runs f on the replay and reports what
// it did.
func (m *Model) replayControl(what string, f func(Replay) error) tea.Cmd {
	r := m.opts.Replay
	if r == nil {
		return m.fail("replay", "", errNotReplaying)
	}
	return func() tea.Msg { return replayDoneMsg{what: what, err: f(r)} }
}

// replayDone reports a replay control's outcome.
func (m *Model) replayDone(msg replayDoneMsg) tea.Cmd {
	m.sampleReplay()
	if msg.err != nil {
		return m.fail(msg.what, "", msg.err)
	}
	return m.setStatus(slog.LevelInfo, msg.what)
}

// replayKey handles the replay keys; ok is false for other keys.
func (m *Model) replayKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	if m.opts.Replay == nil {
		return nil, false
	}
	k := m.keys.Replay
	switch {
	case key.Matches(msg, k.Pause):
		paused := !m.replay.paused
		what := "replay resumed"
		if paused {
			what = "replay paused"
		}
		return m.replayControl(what, func(r Replay) error { r.SetPaused(paused); return nil }), true
	case key.Matches(msg, k.Back):
		return m.seekBy(-ReplaySeek), true
	case key.Matches(msg, k.Forward):
		return m.seekBy(ReplaySeek), true
	case key.Matches(msg, k.BackLong):
		return m.seekBy(-ReplaySeekLong), true
	case key.Matches(msg, k.ForwardLong):
		return m.seekBy(ReplaySeekLong), true
	case key.Matches(msg, k.Faster):
		return m.setSpeed(math.Min(maxReplaySpeed, m.replay.speed*2)), true
	case key.Matches(msg, k.Slower):
		return m.setSpeed(math.Max(minReplaySpeed, m.replay.speed/2)), true
	}
	return nil, false
}

// seekBy moves the replay by d from where it is now.
func (m *Model) seekBy(d time.Duration) tea.Cmd {
	m.sampleReplay()
	to := min(max(m.replay.at+d, 0), m.replay.length)
	return m.seekTo(to)
}

func (m *Model) seekTo(to time.Duration) tea.Cmd {
	return m.replayControl("replay at "+fmtPosition(to), func(r Replay) error { r.Seek(to); return nil })
}

func (m *Model) setSpeed(x float64) tea.Cmd {
	return m.replayControl("replay speed "+fmtSpeed(x), func(r Replay) error { return r.SetSpeed(x) })
}

// seekCommand runs ":seek 1m30s" (a position), ":seek +10s" or ":seek -1m".
func (m *Model) seekCommand(arg string) tea.Cmd {
	if m.opts.Replay == nil {
		return m.fail("seek", arg, errNotReplaying)
	}
	rel := strings.HasPrefix(arg, "+") || strings.HasPrefix(arg, "-")
	d, err := registry.ParseDuration(strings.TrimLeft(arg, "+-"))
	if err != nil {
		d, err = parsePosition(arg)
		if err != nil || rel {
			return m.fail("seek", arg, fmt.Errorf("%q is not a position (1m30s, 1:30) nor a step (+10s, -1m)", arg))
		}
	}
	if rel {
		if strings.HasPrefix(arg, "-") {
			d = -d
		}
		return m.seekBy(d)
	}
	return m.seekTo(d)
}

// speedCommand runs ":speed 4" or ":speed 0.5x".
func (m *Model) speedCommand(arg string) tea.Cmd {
	if m.opts.Replay == nil {
		return m.fail("speed", arg, errNotReplaying)
	}
	x, err := strconv.ParseFloat(strings.TrimSuffix(arg, "x"), 64)
	if err != nil || !(x > 0) || x > maxReplaySpeed {
		return m.fail("speed", arg, fmt.Errorf("%q is not a speed: a number above 0 and at most %d (0.5, 2, 10)", arg, maxReplaySpeed))
	}
	return m.setSpeed(x)
}

// parsePosition reads "1:30" or "1:02:03".
func parsePosition(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("bad position %q", s)
	}
	var d time.Duration
	for i, p := range parts {
		unit := time.Minute
		if len(parts) == 3 && i == 0 {
			unit = time.Hour
		}
		if i == len(parts)-1 {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("bad position %q", s)
			}
			d += time.Duration(f * float64(time.Second))
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad position %q", s)
		}
		d += time.Duration(n) * unit
	}
	return d, nil
}

// clearHistory forgets everything kept from the event stream (a replay
// rewound); the next snapshot brings the state back.
func (m *Model) clearHistory() {
	m.log.clear()
	m.retries.Clear()
	m.frames.Clear()
	clear(m.chData)
	m.state.Presence = nil
	m.clearRowCaches()
	m.invalidate()
}

// viewReplay renders the replay row of the header: state, position, a
// slider, the speed and the keys.
func (m *Model) viewReplay(w int) string {
	st := m.st
	r := m.replay
	l := newLine(w)
	state, p := "▶ replay", st.OK
	if r.paused {
		state, p = "⏸ paused", st.Warn
	}
	if r.length > 0 && r.at >= r.length {
		state, p = "■ ended", st.Muted
	}
	l.add(p, state).plain(" ")
	pos := fmtPosition(r.at) + " / " + fmtPosition(r.length)
	l.add(st.Header.Value, pos).plain(" ")
	speed := " " + fmtSpeed(r.speed)
	hints := "  space pause · ←/→ seek · +/- speed"
	if m.lay.narrow {
		hints = ""
	}
	bw := l.room() - textWidth(speed) - textWidth(hints)
	if bw >= 5 {
		frac := 0.0
		if r.length > 0 {
			frac = float64(r.at) / float64(r.length)
		}
		l.raw(slider(m, frac, bw), bw)
	}
	l.add(st.Header.Value, speed)
	l.add(st.Subtle, hints)
	return l.done()
}

// slider draws a position slider of w cells: the played part, a knob and
// the rest.
func slider(m *Model, frac float64, w int) string {
	frac = math.Max(0, math.Min(1, frac))
	knob := int(math.Round(frac * float64(w-1)))
	return m.st.Bar.Render(strings.Repeat("━", knob)) + m.st.Header.Value.Render("●") +
		m.st.BarEmpty.Render(strings.Repeat("─", w-1-knob))
}

// fmtPosition formats a replay position: 0:07, 12:34, 1:02:03.
func fmtPosition(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// fmtSpeed formats a speed: 1x, 2x, 0.5x.
func fmtSpeed(x float64) string {
	return strconv.FormatFloat(x, 'g', 4, 64) + "x"
}

// OpenApps opens the Apps view; called before the program runs, the UI
// starts on it (rtm replay of an app recording).
func (m *Model) OpenApps() { m.openApps() }
