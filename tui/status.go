package tui

import (
	"log/slog"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// status is the status line.
type status struct {
	level slog.Level
	text  string
	id    int
}

// setStatus shows text in the status line; it clears after a while.
func (m *Model) setStatus(level slog.Level, text string) tea.Cmd {
	m.statusN++
	m.status = status{level: level, text: sanitize(text), id: m.statusN}
	m.fitStatus()
	ttl := 6 * time.Second
	if level >= slog.LevelError {
		ttl = 15 * time.Second
	}
	id := m.statusN
	return m.opts.Schedule(ttl, func(time.Time) tea.Msg { return statusClearMsg{id: id} })
}

// fitStatus gives the status line a second row when its text needs it.
func (m *Model) fitStatus() {
	m.cache.status.valid = false
	rows := 1
	if m.width > 0 && textWidth(m.status.text) > m.width {
		rows = 2
	}
	if rows != m.statusRows {
		m.statusRows = rows
		m.relayout()
	}
}

// statusClearMsg clears the status line if it still shows message id.
type statusClearMsg struct{ id int }

// showError reports a manager error event in the status line (the
// manager logs it itself).
func (m *Model) showError(e registry.ErrorEvent) tea.Cmd {
	text := e.Op
	if e.Op == "system" {
		text = "server said" // a system message with status error
		if e.Channel.Kind == registry.KindSubscription {
			text = "postgres changes refused"
		}
	}
	if !e.Channel.IsZero() {
		text += " on " + e.Channel.String()
		if e.Op != "system" {
			text = e.Op + " " + e.Channel.String()
		}
	}
	text += ": "
	if e.Code != "" {
		text += e.Code + ": "
	}
	text += e.Message
	hint := e.Hint
	if hint == "" {
		hint = registry.Hint(e.Code, e.Message)
	}
	if hint == "" && e.Op == "system" && e.Channel.Kind == registry.KindSubscription {
		hint = changesHint(e.Message)
	}
	if h := authorizationHint(e.Code); h != "" {
		hint = h
	}
	if hint != "" {
		text += " — " + hint
	}
	return m.setStatus(slog.LevelError, text)
}
