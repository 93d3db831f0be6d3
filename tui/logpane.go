package tui

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
)

// levelName returns the 5-cell name of a level.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// logText returns an entry's plain text (for filters and wrapping).
func (m *Model) logText(e *logEntry) string {
	var b strings.Builder
	b.WriteString(e.rec.Time.Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(fitText(levelName(e.rec.Level), 5))
	b.WriteByte(' ')
	b.WriteString(sanitize(e.rec.Message))
	for _, a := range e.rec.Attrs {
		if hiddenAttr(a) {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(sanitize(a.Key))
		b.WriteByte('=')
		v := sanitize(a.Value)
		if strings.ContainsAny(v, " \"") {
			v = fmt.Sprintf("%q", v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// logMatches reports whether an entry passes the log filter (cached per
// filter generation).
func (m *Model) logMatches(e *logEntry) bool {
	if !m.logFilter.active() {
		return true
	}
	if e.matchGen != m.filterGen {
		e.match = m.logFilter.match(m.logText(e))
		e.matchGen = m.filterGen
	}
	return e.match
}

// logEnd returns the index of the newest entry to show.
func (m *Model) logEnd() int {
	return m.logCur.index(m.logs.Len(), m.logs.Index)
}

// logScroll moves the paused view by delta matching entries (negative:
// older). Scrolling pauses follow; reaching the newest entry resumes it.
func (m *Model) logScroll(delta int) {
	wasFollow := m.logCur.follow
	m.logCur.step(m.logs.Len(), m.logs.Index, func(i int) uint64 { return m.logs.Ptr(i).seq }, delta,
		func(j int) bool { return m.logMatches(m.logs.Ptr(j)) })
	if wasFollow || m.logCur.follow {
		m.logNew = 0
	}
	m.cache.log.valid = false
}

// logTop shows the oldest entries.
func (m *Model) logTop() {
	n := m.logs.Len()
	if n == 0 {
		return
	}
	m.logCur.follow = false
	h := m.lay.log.h - 2
	seen := 0
	i := 0
	for ; i < n; i++ {
		if m.logMatches(m.logs.Ptr(i)) {
			seen++
			if seen == h {
				break
			}
		}
	}
	if i >= n {
		i = n - 1
	}
	m.logCur.seq = m.logs.At(i).seq
	m.cache.log.valid = false
}

// logRow renders an entry as one painted row of width w (cached while
// on screen).
func (m *Model) logRow(e *logEntry, w int) string {
	if s, ok := m.logRows.get(e.seq, w, nil); ok {
		return s
	}
	l := newLine(w)
	l.add(m.st.Subtle, e.rec.Time.Format("15:04:05.000"))
	l.plain(" ")
	lv := levelName(e.rec.Level)
	l.add(m.st.LevelPaint(lv), fitText(lv, 5))
	l.plain(" ")
	l.add(m.st.Text, sanitize(e.rec.Message))
	for _, a := range e.rec.Attrs {
		if l.room() <= 0 {
			break
		}
		if hiddenAttr(a) {
			continue
		}
		v := sanitize(a.Value)
		if strings.ContainsAny(v, " \"") {
			v = fmt.Sprintf("%q", v)
		}
		l.plain(" ")
		l.add(m.st.Muted, sanitize(a.Key)+"=")
		l.add(m.st.Text, v)
	}
	row := l.done()
	m.logRows.put(e.seq, row)
	return row
}

// logWrapped renders an entry over several rows of width w.
func (m *Model) logWrapped(e *logEntry, w int) []string {
	text := m.logText(e)
	if textWidth(text) <= w {
		return []string{m.logRow(e, w)}
	}
	first := ansi.Truncate(text, w, "")
	rest := ansi.TruncateLeft(text, textWidth(first), "")
	out := []string{m.paintLogChunk(e, first, w)}
	for _, l := range strings.Split(ansi.Hardwrap(rest, max(1, w-2), true), "\n") {
		out = append(out, newLine(w).plain("  ").add(m.st.Text, l).done())
	}
	return out
}

// paintLogChunk paints the first chunk of a wrapped entry: time, level,
// then text.
func (m *Model) paintLogChunk(e *logEntry, chunk string, w int) string {
	const tw = len("15:04:05.000")
	l := newLine(w)
	if len(chunk) < tw+7 {
		return l.add(m.st.Text, chunk).done()
	}
	lv := levelName(e.rec.Level)
	l.add(m.st.Subtle, chunk[:tw]).plain(" ")
	l.add(m.st.LevelPaint(lv), chunk[tw+1:tw+6]).plain(" ")
	l.add(m.st.Text, chunk[tw+7:])
	return l.done()
}

// viewLog renders the log pane: the newest matching entries (or those
// before the anchor while paused), newest at the bottom.
func (m *Model) viewLog() *framed {
	r := m.lay.log
	inner, h := r.w-2, r.h-2
	var rev []string // rows, newest first
	for i := m.logEnd(); i >= 0 && len(rev) < h; i-- {
		e := m.logs.Ptr(i)
		if !m.logMatches(e) {
			continue
		}
		if m.logWrap {
			rows := m.logWrapped(e, inner)
			for j := len(rows) - 1; j >= 0 && len(rev) < h; j-- {
				rev = append(rev, rows[j])
			}
			continue
		}
		rev = append(rev, m.logRow(e, inner))
	}
	m.logRows.flip()
	lines := make([]string, 0, h)
	for i := len(rev) - 1; i >= 0; i-- {
		lines = append(lines, rev[i])
	}
	if len(lines) == 0 {
		msg := "no log records yet"
		if m.logFilter.active() {
			msg = "no log record matches the filter"
		}
		lines = append(lines, newLine(inner).add(m.st.Muted, msg).done())
	}
	title := "Log"
	if m.logCur.follow {
		title += " · following"
	} else {
		title += " · paused"
	}
	if m.logWrap {
		title += " · wrap"
	}
	if m.logFilter.active() {
		title += " · /" + m.logFilter.text
	}
	badge := ""
	if !m.logCur.follow && m.logNew > 0 {
		badge = fmt.Sprintf("%d new", m.logNew)
	}
	return box(m.st, r.w, r.h, title, badge, m.focus == focusLog, lines)
}

// localLog builds a log record of the UI itself.
func (m *Model) localLog(level slog.Level, msg string, attrs ...registry.LogAttr) registry.LogRecord {
	return registry.LogRecord{Time: m.now, Level: level, Message: msg, Attrs: attrs}
}

// hiddenAttr reports attributes not worth a log row's room: the
// manager's own component name.
func hiddenAttr(a registry.LogAttr) bool {
	return a.Key == "component" && a.Value == "registry"
}
