package tui

import (
	"fmt"
	"log/slog"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
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

// logPane is the log stream: the log records (newest at the bottom),
// following the newest or paused on one (its cursor), wrapped or cut,
// filtered. It owns the ring of records.
type logPane struct {
	logs *Ring[logEntry]
	cur  cursor
	// newN counts the matching records that arrived while paused.
	newN int
	wrap bool
	// filter and its generation (the match cache of each entry).
	filter    filter
	filterGen uint64
	r         rect
	rows      rowCache
	cache     paneCache[logKey]
}

// logKey is what a render of the log pane depends on.
type logKey struct {
	epoch, seq, filterGen uint64
	n, newN               int
	cur                   cursor
	wrap, focused         bool
	r                     rect
	st                    themeStyles
}

func newLogPane(ring, bytes int) *logPane {
	return &logPane{logs: NewSizedRing(ring, bytes, logEntryBytes), cur: cursor{follow: true}}
}

// setSize sets the pane's area.
func (p *logPane) setSize(r rect) { p.r = r }

// add appends a log record.
func (p *logPane) add(r registry.LogRecord, local bool) {
	p.logs.Push(logEntry{rec: r, local: local, seq: p.logs.Seq() + 1})
	if !p.cur.follow && p.filter.match(logText(p.logs.Ptr(p.logs.Len()-1))) {
		p.newN++
	}
}

// clear forgets every record.
func (p *logPane) clear() {
	p.logs.Clear()
	p.newN = 0
}

func (p *logPane) filterText() string { return p.filter.text }

// setFilter sets the filter: the records that arrive while paused are
// counted from now on.
func (p *logPane) setFilter(f filter) {
	p.filter = f
	p.filterGen++
	p.newN = 0
}

// clearFilter drops the filter, keeping the count of new records.
func (p *logPane) clearFilter() {
	p.filter = filter{}
	p.filterGen++
}

// help returns the pane's keys for the footer.
func (p *logPane) help(k KeyMap) []key.Binding {
	follow := k.Log.Follow
	if p.cur.follow {
		follow.SetHelp("f", "pause")
	} else {
		follow.SetHelp("f", "follow")
	}
	return []key.Binding{follow, k.Log.Wrap, withHelp(k.Down, "↑/↓", "scroll"), k.Zoom}
}

// update handles the log pane's keys (navigation, follow, wrap, clear);
// ok is false for other keys.
func (p *logPane) update(msg tea.KeyPressMsg, k KeyMap) (ok bool) {
	if mv, ok := navKey(msg, k, max(1, p.r.h-3)); ok {
		switch {
		case mv.top:
			p.scrollTop()
		case mv.bottom:
			p.cur.follow, p.newN = true, 0
		default:
			p.scroll(mv.delta)
		}
		return true
	}
	switch {
	case key.Matches(msg, k.Log.Follow):
		if p.cur.follow {
			p.cur.follow = false
			if e, ok := p.logs.Last(); ok {
				p.cur.seq = e.seq
			}
			p.newN = 0
		} else {
			p.cur.follow, p.newN = true, 0
		}
	case key.Matches(msg, k.Log.Wrap):
		p.wrap = !p.wrap
	case key.Matches(msg, k.Log.Clear):
		p.clear()
	default:
		return false
	}
	return true
}

// logText returns an entry's plain text (for filters and wrapping).
func logText(e *logEntry) string {
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

// matches reports whether an entry passes the filter (cached per
// filter generation).
func (p *logPane) matches(e *logEntry) bool {
	if !p.filter.active() {
		return true
	}
	if e.matchGen != p.filterGen {
		e.match = p.filter.match(logText(e))
		e.matchGen = p.filterGen
	}
	return e.match
}

// end returns the index of the newest entry to show.
func (p *logPane) end() int {
	return p.cur.index(p.logs.Len(), p.logs.Index)
}

// scroll moves the paused view by delta matching entries (negative:
// older). Scrolling pauses follow; reaching the newest entry resumes it.
func (p *logPane) scroll(delta int) {
	wasFollow := p.cur.follow
	p.cur.step(p.logs.Len(), p.logs.Index, func(i int) uint64 { return p.logs.Ptr(i).seq }, delta,
		func(j int) bool { return p.matches(p.logs.Ptr(j)) })
	if wasFollow || p.cur.follow {
		p.newN = 0
	}
}

// scrollTop shows the oldest entries.
func (p *logPane) scrollTop() {
	n := p.logs.Len()
	if n == 0 {
		return
	}
	p.cur.follow = false
	h := p.r.h - 2
	seen := 0
	i := 0
	for ; i < n; i++ {
		if p.matches(p.logs.Ptr(i)) {
			seen++
			if seen == h {
				break
			}
		}
	}
	if i >= n {
		i = n - 1
	}
	p.cur.seq = p.logs.At(i).seq
}

// row renders an entry as one painted row of width w (cached while on
// screen).
func (p *logPane) row(st themeStyles, e *logEntry, w int) string {
	if s, ok := p.rows.get(e.seq, w, nil); ok {
		return s
	}
	l := newLine(w)
	l.add(st.Subtle, e.rec.Time.Format("15:04:05.000"))
	l.plain(" ")
	lv := levelName(e.rec.Level)
	l.add(st.LevelPaint(lv), fitText(lv, 5))
	l.plain(" ")
	l.add(st.Text, sanitize(e.rec.Message))
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
		l.add(st.Muted, sanitize(a.Key)+"=")
		l.add(st.Text, v)
	}
	row := l.done()
	p.rows.put(e.seq, row)
	return row
}

// wrapped renders an entry over several rows of width w.
func (p *logPane) wrapped(st themeStyles, e *logEntry, w int) []string {
	text := logText(e)
	if textWidth(text) <= w {
		return []string{p.row(st, e, w)}
	}
	first := ansi.Truncate(text, w, "")
	rest := ansi.TruncateLeft(text, textWidth(first), "")
	out := []string{paintLogChunk(st, e, first, w)}
	for _, l := range strings.Split(ansi.Hardwrap(rest, max(1, w-2), true), "\n") {
		out = append(out, newLine(w).plain("  ").add(st.Text, l).done())
	}
	return out
}

// paintLogChunk paints the first chunk of a wrapped entry: time, level,
// then text.
func paintLogChunk(st themeStyles, e *logEntry, chunk string, w int) string {
	const tw = len("15:04:05.000")
	l := newLine(w)
	if len(chunk) < tw+7 {
		return l.add(st.Text, chunk).done()
	}
	lv := levelName(e.rec.Level)
	l.add(st.Subtle, chunk[:tw]).plain(" ")
	l.add(st.LevelPaint(lv), chunk[tw+1:tw+6]).plain(" ")
	l.add(st.Text, chunk[tw+7:])
	return l.done()
}

// view returns the pane, rendered again only when what it shows
// changed.
func (p *logPane) view(st themeStyles, focused bool, epoch uint64) *framed {
	k := logKey{epoch: epoch, seq: p.logs.Seq(), filterGen: p.filterGen, n: p.logs.Len(), newN: p.newN,
		cur: p.cur, wrap: p.wrap, focused: focused, r: p.r, st: st}
	return p.cache.get(k, func() *framed { return p.render(st, focused) })
}

// render renders the pane: the newest matching entries (or those before
// the cursor while paused), newest at the bottom.
func (p *logPane) render(st themeStyles, focused bool) *framed {
	r := p.r
	inner, h := r.w-2, r.h-2
	var rev []string // rows, newest first
	for i := p.end(); i >= 0 && len(rev) < h; i-- {
		e := p.logs.Ptr(i)
		if !p.matches(e) {
			continue
		}
		if p.wrap {
			rows := p.wrapped(st, e, inner)
			for j := len(rows) - 1; j >= 0 && len(rev) < h; j-- {
				rev = append(rev, rows[j])
			}
			continue
		}
		rev = append(rev, p.row(st, e, inner))
	}
	p.rows.flip()
	lines := make([]string, 0, h)
	for i := len(rev) - 1; i >= 0; i-- {
		lines = append(lines, rev[i])
	}
	if len(lines) == 0 {
		msg := "no log records yet"
		if p.filter.active() {
			msg = "no log record matches the filter"
		}
		lines = append(lines, newLine(inner).add(st.Muted, msg).done())
	}
	title := "Log"
	if p.cur.follow {
		title += " · following"
	} else {
		title += " · paused"
	}
	if p.wrap {
		title += " · wrap"
	}
	if p.filter.active() {
		title += " · /" + p.filter.text
	}
	badge := ""
	if !p.cur.follow && p.newN > 0 {
		badge = fmt.Sprintf("%d new", p.newN)
	}
	return box(st, r.w, r.h, title, badge, focused, lines)
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
