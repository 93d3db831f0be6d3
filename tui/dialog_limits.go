package tui

import (
	"fmt"
	"math"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/registry/limits"
	"rtm/theme"
)

// limitsView is the Limits dialog (:limits, L): the budget meter of
// [Options.Limits], one row per limit Supabase enforces with its usage,
// peak, a bar of the share of the limit used, the limit and where it
// came from (the server, a plan, --limit), and the forecast at the
// current trend; below a gauge, the last limit error the server sent
// about it, with its reason; below the messages-per-second gauge, what
// the manager's own brakes (rate limit, debouncers, offline queues)
// hold back. Levels use the theme: warning from limits.WarnPercent,
// error at 100 % or after a server error.
//
// The report it shows is the model's limits (refreshLimits, at start
// and on the clock's tick), numbered by limitsGen; the view is cached
// on that number, the size, the styles and the model's epoch and clock.
type limitsView struct {
	cache limitsCache
}

// limitsKey is what the Limits view renders from.
type limitsKey struct {
	gen          uint64
	w, h         int
	epoch, clock uint64
	st           *theme.Styles
}

// limitsCache is the Limits view's last render.
type limitsCache struct {
	key  limitsKey
	rows []string
	x, y int
	ok   bool
}

// openLimits reads the meter and opens the Limits view.
func (m *Model) openLimits() {
	m.refreshLimits()
	m.openDialog(&limitsView{})
}

// refreshLimits reads Options.Limits' report (the header's gauge and
// the Limits view show it).
func (m *Model) refreshLimits() {
	if m.opts.Limits == nil {
		return
	}
	m.limits = m.opts.Limits.Report()
	m.limitsGen++
}

func (v *limitsView) update(m *Model, msg tea.Msg) (tea.Cmd, bool) {
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil, false
	}
	k := m.keys
	switch {
	case key.Matches(kp, k.Dialog.Cancel, k.Quit, k.Limits):
		return nil, true
	case key.Matches(kp, k.Help):
		m.openDialog(helpDialog{})
	}
	return nil, false
}

func (v *limitsView) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Dialog.Cancel, "esc", "close"), k.Help}
}

// view renders the Limits view over the body, at most h rows high.
func (v *limitsView) view(m *Model, bw, h int) ([]string, int, int) {
	w := max(40, min(m.width-4, 160))
	ck := limitsKey{gen: m.limitsGen, w: bw, h: h, epoch: m.epoch, clock: m.clock, st: m.st}
	if !v.cache.ok || v.cache.key != ck {
		rows, x, y := centred(dialogBox(m.st, "Limits", v.body(m, w-4, max(1, h-4)), w), bw, h)
		v.cache = limitsCache{key: ck, rows: rows, x: x, y: y, ok: true}
	}
	return v.cache.rows, v.cache.x, v.cache.y
}

// body returns the view's rows, inner cells wide, at most room rows:
// the gauges, their errors and the throttle, a note when limits are
// unknown, the keys last.
func (v *limitsView) body(m *Model, inner, room int) []string {
	st := m.st
	var body []string
	if m.opts.Limits == nil {
		body = wrapLines(st.Muted, "The limits meter is off (rtm's monitor runs it; a replay has none).", inner)
	} else {
		body = m.limitRows(inner)
	}
	if fit := room - 2; len(body) > fit && fit >= 1 {
		cut := len(body) - fit + 1
		body = append(body[:fit-1:fit-1], st.Muted.Render(truncText(fmt.Sprintf("… %d more rows (a taller terminal shows them)", cut), inner)))
	}
	body = append(body, "", st.Muted.Render(truncText("esc close · ? help", inner)))
	if len(body) > room {
		body = body[len(body)-room:]
	}
	return body
}

// limitCols are the Limits table's column widths for inner cells.
type limitCols struct {
	name, usage, peak, bar, limit, source, hit int
	// long is true when the names are the --limit names in full.
	long bool
}

func newLimitCols(inner int) limitCols {
	c := limitCols{name: 13, usage: 8, peak: 8, limit: 8, source: 9, hit: 7}
	if inner >= 110 {
		c = limitCols{name: 26, usage: 10, peak: 10, limit: 10, source: 15, hit: 9, long: true}
	}
	// The bar (with its percentage, 5 cells) takes what is left: 6 to 30
	// cells of bar.
	fixed := c.name + c.usage + c.peak + c.limit + c.source + c.hit + 6
	c.bar = max(6, min(30, inner-fixed-5))
	return c
}

// row lays out one row of the table (plain text).
func (c limitCols) row(name, usage, peak, bar, limit, source, hit string) string {
	return fitText(name, c.name) + " " + fitRight(usage, c.usage) + " " + fitRight(peak, c.peak) + " " +
		fitText(bar, c.bar+5) + " " + fitRight(limit, c.limit) + " " + fitText(source, c.source) + " " + fitRight(hit, c.hit)
}

// limitRows renders the report: a heading, one row per gauge, below a
// gauge its server error, below messages per second the throttle.
func (m *Model) limitRows(inner int) []string {
	st, r := m.st, m.limits
	c := newLimitCols(inner)
	out := []string{st.Table.Header.Render(truncText(c.row("LIMIT", "USAGE", "PEAK", "USED", "LIMIT", "FROM", "HITS IN"), inner))}
	unknown := 0
	for _, g := range r.Gauges {
		name := limitShortName(g.Name)
		if c.long {
			name = string(g.Name)
		}
		lim, src := "—", g.Source
		if g.Limit > 0 {
			lim = fmtLimitValue(g.Kind, g.Limit)
		} else if src == "" {
			unknown++
		} else {
			lim = "off"
		}
		hit := ""
		if g.HitIn != nil {
			hit = fmtCountdown(*g.HitIn)
		}
		p := levelPaint(st, g.Level)
		// The bar is painted apart from the row's text.
		text := c.row(name, fmtLimitValue(g.Kind, g.Usage), fmtLimitValue(g.Kind, g.Peak), "", lim, src, hit)
		row := p.Render(truncText(text, inner))
		if textWidth(text) <= inner {
			left := fitText(name, c.name) + " " + fitRight(fmtLimitValue(g.Kind, g.Usage), c.usage) + " " +
				fitRight(fmtLimitValue(g.Kind, g.Peak), c.peak) + " "
			right := " " + fitRight(lim, c.limit) + " " + fitText(src, c.source) + " " + fitRight(hit, c.hit)
			row = p.Render(left) + limitBar(st, g, c.bar) + p.Render(" "+fitRight(fmtPercent(g), 4)+right)
		}
		out = append(out, row)
		if e := g.Error; e != nil {
			txt := "  ✗ " + sanitize(e.Reason)
			if e.Channel != "" {
				txt += " · " + sanitize(e.Channel)
			}
			txt += " · " + fmtAge(m.now.Sub(e.Time)) + " ago"
			out = append(out, st.Error.Render(truncText(txt, inner)))
		}
		if g.Name == limits.MessagesPerSecond && r.Throttle != nil {
			tp := st.Muted
			if t := r.Throttle; t.Waiting > 0 || t.Pending > 0 || t.Queued > 0 {
				tp = st.Warn
			}
			out = append(out, tp.Render(truncText("  └ "+throttleText(*r.Throttle), inner)))
		}
	}
	if unknown > 0 {
		out = append(out, "")
		what := fmt.Sprintf("%d limits are", unknown)
		if unknown == 1 {
			what = "1 limit is"
		}
		out = append(out, wrapLines(st.Muted, fmt.Sprintf("%s unknown: give the project's plan (--plan %s) or --limit NAME=N.",
			what, strings.Join(limits.Plans(), "|")), inner)...)
	}
	return out
}

// limitBar draws the share of the limit used, c cells, in the gauge's
// level.
func limitBar(st *theme.Styles, g limits.Gauge, w int) string {
	frac := 0.0
	if g.Limit > 0 {
		frac = math.Max(0, math.Min(1, g.Percent/100))
	}
	n := int(math.Round(frac * float64(w)))
	if n == 0 && g.Usage > 0 && g.Limit > 0 {
		n = 1
	}
	return levelPaint(st, g.Level).Render(strings.Repeat("█", n)) + st.BarEmpty.Render(strings.Repeat("░", w-n))
}

// fmtPercent is a gauge's percentage ("85%", "—" without a limit).
func fmtPercent(g limits.Gauge) string {
	if g.Limit <= 0 {
		return "—"
	}
	if g.Percent >= 999 {
		return ">999%"
	}
	return fmt.Sprintf("%.0f%%", g.Percent)
}

// throttleText says what the manager's brakes hold back.
func throttleText(t registry.Throttle) string {
	rate := "rtm's rate limit off"
	if t.Rate > 0 {
		rate = fmt.Sprintf("rtm's rate limit %s (burst %d) %d waiting", fmtRate(t.Rate), t.Burst, t.Waiting)
	}
	return fmt.Sprintf("%s · debounce %d pending, %d replaced · offline queues %d, %d dropped",
		rate, t.Pending, t.Replaced, t.Queued, t.QueueDropped)
}

// levelPaint is a level's colour.
func levelPaint(st *theme.Styles, l limits.Level) theme.Paint {
	switch l {
	case limits.LevelWarning:
		return st.Warn
	case limits.LevelError:
		return st.Error
	case limits.LevelOK:
		return st.Text
	}
	return st.Muted
}

// limitShortName names a limit in a few cells.
func limitShortName(n limits.Name) string {
	switch n {
	case limits.ConcurrentClients:
		return "clients"
	case limits.ChannelsPerConnection:
		return "channels/sock"
	case limits.JoinsPerSecond:
		return "joins/s"
	case limits.MessagesPerSecond:
		return "messages/s"
	case limits.PresenceEventsPerSecond:
		return "presence/s"
	case limits.PayloadSize:
		return "payload"
	case limits.PostgresChangePayload:
		return "pg change"
	}
	return string(n)
}

// fmtLimitValue formats a usage or a limit in its gauge's unit: a count,
// a rate per second, a size in KB of 1000 bytes.
func fmtLimitValue(k limits.Kind, v float64) string {
	switch k {
	case limits.KindRate:
		return fmt.Sprintf("%.0f/s", v)
	case limits.KindSize:
		switch {
		case v == 0:
			return "0"
		case v < 1000:
			return fmt.Sprintf("%.0f B", v)
		case v < 10_000:
			return fmt.Sprintf("%.1f KB", v/1000)
		}
		return fmt.Sprintf("%.0f KB", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// worstGauge is the gauge nearest its limit: at error first, then the
// highest percentage; false when no gauge has a limit or an error.
func worstGauge(r limits.Report) (limits.Gauge, bool) {
	var best limits.Gauge
	found := false
	rank := func(g limits.Gauge) (int, float64) {
		switch g.Level {
		case limits.LevelError:
			return 2, g.Percent
		case limits.LevelWarning:
			return 1, g.Percent
		}
		return 0, g.Percent
	}
	for _, g := range r.Gauges {
		if g.Limit <= 0 && g.Error == nil {
			continue
		}
		if !found {
			best, found = g, true
			continue
		}
		gl, gp := rank(g)
		bl, bp := rank(best)
		if gl > bl || (gl == bl && gp > bp) {
			best = g
		}
	}
	return best, found
}

// addLimitsSegment adds the header's compact gauge to l after sep:
// the worst gauge's percentage and name, in its level's colour, with
// its label when that fits ("limits 85% channels/sock", else "85%
// channels/sock", else the percentage). Nothing without a meter or a
// known limit.
func (m *Model) addLimitsSegment(l *line, sep string) {
	if m.opts.Limits == nil {
		return
	}
	g, ok := worstGauge(m.limits)
	if !ok {
		return
	}
	st := m.st
	p, pct, name := levelPaint(st, g.Level), fmtPercent(g), limitShortName(g.Name)
	if g.Limit <= 0 {
		pct = "✗" // no limit known, but the server reported it
	}
	room := l.room() - textWidth(sep)
	l.add(st.Subtle, sep)
	switch {
	case textWidth("limits "+pct+" "+name) <= room:
		l.add(st.Header.Label, "limits ").add(p, pct+" "+name)
	case textWidth(pct+" "+name) <= room:
		l.add(p, pct+" "+name)
	default:
		l.add(p, pct)
	}
}
