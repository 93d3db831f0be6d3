package tui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
	"rtm/theme"
)

// textWidth returns the display width of plain text (no escapes).
func textWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] < 0x20 {
			return ansi.StringWidth(s)
		}
	}
	return len(s)
}

// truncText cuts plain text to at most w cells, ending in "…" when cut.
func truncText(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if textWidth(s) <= w {
		return s
	}
	if w == 1 {
		return "…"
	}
	return ansi.Truncate(s, w, "…")
}

// fitText cuts or pads plain text to exactly w cells.
func fitText(s string, w int) string {
	s = truncText(s, w)
	if n := textWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// fitRight right-aligns plain text in exactly w cells.
func fitRight(s string, w int) string {
	s = truncText(s, w)
	if n := textWidth(s); n < w {
		s = strings.Repeat(" ", w-n) + s
	}
	return s
}

// sanitize makes untrusted text safe for one terminal line: its secrets
// are masked (registry.MaskText: keys however spelled, JSON decoded and
// encoded again), and control characters (escape sequences included)
// become spaces or visible placeholders.
func sanitize(s string) string {
	s = registry.MaskText(s)
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteRune('�')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// line builds one terminal line of a fixed width from painted segments:
// text beyond the width is cut with "…", and Done pads to the width, so a
// line never overflows.
type line struct {
	b    strings.Builder
	used int
	max  int
	// cut is true once some text did not fit.
	cut bool
}

func newLine(w int) *line {
	l := &line{max: w}
	l.b.Grow(w + 32)
	return l
}

// add appends plain text s painted with p, cut to the room left.
func (l *line) add(p theme.Paint, s string) *line {
	room := l.max - l.used
	if s == "" {
		return l
	}
	if room <= 0 {
		l.cut = true
		return l
	}
	if textWidth(s) > room {
		l.cut = true
		s = truncText(s, room)
	}
	p.WriteTo(&l.b, s)
	l.used += textWidth(s)
	return l
}

// addFit appends s painted with p, cut or padded to exactly w cells (or
// the room left).
func (l *line) addFit(p theme.Paint, s string, w int) *line {
	w = min(w, l.max-l.used)
	if w <= 0 {
		return l
	}
	s = truncText(s, w)
	n := textWidth(s)
	p.WriteTo(&l.b, s)
	l.pad(w - n)
	l.used += w
	return l
}

// addRight appends s painted with p, right-aligned in exactly w cells
// (or the room left).
func (l *line) addRight(p theme.Paint, s string, w int) *line {
	w = min(w, l.max-l.used)
	if w <= 0 {
		return l
	}
	s = truncText(s, w)
	l.pad(w - textWidth(s))
	p.WriteTo(&l.b, s)
	l.used += w
	return l
}

// pad writes n spaces without counting them.
func (l *line) pad(n int) {
	const spaces = "                                                                "
	for n > 0 {
		k := min(n, len(spaces))
		l.b.WriteString(spaces[:k])
		n -= k
	}
}

// plain appends unpainted text.
func (l *line) plain(s string) *line { return l.add(theme.Paint{}, s) }

// raw appends already painted text of display width w (it must fit).
func (l *line) raw(s string, w int) *line {
	if l.used+w > l.max {
		return l
	}
	l.b.WriteString(s)
	l.used += w
	return l
}

// room returns the cells left.
func (l *line) room() int { return l.max - l.used }

// done pads to the width and returns the line.
func (l *line) done() string {
	if l.used < l.max {
		l.pad(l.max - l.used)
		l.used = l.max
	}
	return l.b.String()
}

// blank returns w spaces.
func blank(w int) string {
	if w <= 0 {
		return ""
	}
	return strings.Repeat(" ", w)
}

// framed is a pane in its border, kept in pieces so the screen can be
// written without joining strings: row i of the pane is side + lines[i]
// + side, framed by top and bottom.
type framed struct {
	top, bottom, side, empty string
	lines                    []string
	h                        int
}

// write appends row i (0 is the top edge) to b.
func (f *framed) write(b *strings.Builder, i int) {
	switch {
	case f == nil || f.h == 0:
	case i == 0:
		b.WriteString(f.top)
	case i == f.h-1:
		b.WriteString(f.bottom)
	default:
		b.WriteString(f.side)
		if j := i - 1; j < len(f.lines) {
			b.WriteString(f.lines[j])
		} else {
			b.WriteString(f.empty)
		}
		b.WriteString(f.side)
	}
}

// size returns the bytes of the pane.
func (f *framed) size() int {
	if f == nil {
		return 0
	}
	n := len(f.top) + len(f.bottom) + (f.h-2)*(2*len(f.side)+1)
	for _, l := range f.lines {
		n += len(l)
	}
	return n + (f.h-2-len(f.lines))*len(f.empty)
}

// row returns row i as a string.
func (f *framed) row(i int) string {
	var b strings.Builder
	f.write(&b, i)
	return b.String()
}

// box frames content lines (each exactly w-2 cells wide, painted) in a
// rounded border of w x h cells with a title in the top edge and an
// optional right-side badge. Missing lines are blank; extra lines are cut.
func box(st *theme.Styles, w, h int, title, badge string, focused bool, lines []string) *framed {
	if w < 4 || h < 2 {
		return &framed{}
	}
	bp, tp := st.Pane.Border, st.Pane.Title
	if focused {
		bp, tp = st.Pane.BorderActive, st.Pane.TitleActive
	}
	inner := w - 2
	var b strings.Builder
	b.Grow(w*3 + 64)
	// Top edge: ╭─ Title ──── badge ─╮
	title = truncText(title, inner-3)
	tw := textWidth(title)
	badge = truncText(badge, max(0, inner-tw-6))
	bw := textWidth(badge)
	b.WriteString(bp.Render("╭─"))
	used := 1
	if tw > 0 {
		b.WriteString(tp.Render(" " + title + " "))
		used += tw + 2
	}
	fill := inner - used
	if bw > 0 {
		fill -= bw + 3
	}
	if fill < 0 {
		fill = 0
	}
	b.WriteString(bp.Render(strings.Repeat("─", fill)))
	if bw > 0 {
		b.WriteString(" ")
		b.WriteString(st.Pane.Badge.Render(badge))
		b.WriteString(" ")
		b.WriteString(bp.Render("─"))
	}
	b.WriteString(bp.Render("╮"))
	if len(lines) > h-2 {
		lines = lines[:h-2]
	}
	return &framed{
		top:    b.String(),
		bottom: bp.Render("╰" + strings.Repeat("─", inner) + "╯"),
		side:   bp.Render("│"),
		empty:  blank(inner),
		lines:  lines,
		h:      h,
	}
}

// sparkline draws values as block characters scaled to their maximum,
// the newest at the right, in exactly w cells.
func sparkline(values []float64, w int) string {
	const ticks = "▁▂▃▄▅▆▇█"
	if w <= 0 {
		return ""
	}
	if len(values) > w {
		values = values[len(values)-w:]
	}
	w = len(values)
	hi := 0.0
	for _, v := range values {
		if v > hi {
			hi = v
		}
	}
	var b strings.Builder
	b.Grow(w * 3)
	for i := 0; i < w-len(values); i++ {
		b.WriteByte(' ')
	}
	for _, v := range values {
		idx := 0
		if hi > 0 && v > 0 {
			idx = int(math.Round(v / hi * 7))
			if idx < 1 {
				idx = 1
			}
		}
		if idx > 7 {
			idx = 7
		}
		r, _ := utf8.DecodeRuneInString(ticks[idx*3:])
		b.WriteRune(r)
	}
	return b.String()
}

// durations converts durations to milliseconds for a sparkline.
func durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// bar draws a countdown bar of w cells with frac filled (0..1).
func bar(st *theme.Styles, frac float64, w int) string {
	if w <= 0 {
		return ""
	}
	frac = math.Max(0, math.Min(1, frac))
	n := int(math.Round(frac * float64(w)))
	return st.Bar.Render(strings.Repeat("█", n)) + st.BarEmpty.Render(strings.Repeat("░", w-n))
}

// fmtAge formats an age compactly: 45s, 12m, 3h, 2d.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// fmtCountdown formats a remaining time: 2.1s, 45s, 12m03s, 1h02m, or
// "expired".
func fmtCountdown(d time.Duration) string {
	switch {
	case d <= 0:
		return "now"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// fmtRate formats a per-second rate.
func fmtRate(r float64) string {
	switch {
	case r >= 10000:
		return fmt.Sprintf("%.0fk/s", r/1000)
	case r >= 1000:
		return fmt.Sprintf("%.1fk/s", r/1000)
	case r >= 100:
		return fmt.Sprintf("%.0f/s", r)
	default:
		return fmt.Sprintf("%.1f/s", r)
	}
}

// fmtCount formats a counter compactly: 999, 12.3k, 4.5M.
func fmtCount(n uint64) string {
	switch {
	case n < 10000:
		return fmt.Sprintf("%d", n)
	case n < 1000000:
		return fmt.Sprintf("%.1fk", float64(n)/1000)
	default:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
}

// compactJSON returns raw JSON on one line, or its text when invalid.
func compactJSON(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return sanitize(string(raw))
	}
	return sanitize(b.String())
}

// prettyJSON returns raw JSON indented, one painted line per output line,
// each cut to w cells. Invalid JSON is shown as text.
func prettyJSON(st *theme.Styles, raw []byte, w int) []string {
	if len(raw) == 0 {
		return nil
	}
	raw = registry.MaskJSON(raw)
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return []string{newLine(w).add(st.Muted, sanitize(string(raw))).done()}
	}
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		out = append(out, paintJSONLine(st, l, w))
	}
	return out
}

// paintJSONLine colours one line of json.Indent output: indentation, an
// optional "key": and one value or bracket with an optional comma.
func paintJSONLine(st *theme.Styles, s string, w int) string {
	l := newLine(w)
	trimmed := strings.TrimLeft(s, " ")
	l.plain(s[:len(s)-len(trimmed)])
	s = trimmed
	if strings.HasPrefix(s, `"`) {
		if end := stringEnd(s); end > 0 && end < len(s) && strings.HasPrefix(s[end:], ": ") {
			l.add(st.JSON.Key, sanitize(s[:end]))
			l.add(st.JSON.Punct, ": ")
			s = s[end+2:]
		}
	}
	comma := strings.HasSuffix(s, ",")
	if comma {
		s = s[:len(s)-1]
	}
	var p theme.Paint
	switch {
	case s == "":
	case s[0] == '"':
		p = st.JSON.String
	case s[0] == '{' || s[0] == '}' || s[0] == '[' || s[0] == ']':
		p = st.JSON.Punct
	case s == "true" || s == "false" || s == "null":
		p = st.JSON.Literal
	default:
		p = st.JSON.Number
	}
	l.add(p, sanitize(s))
	if comma {
		l.add(st.JSON.Punct, ",")
	}
	return l.done()
}

// stringEnd returns the index just past the JSON string at the start of s,
// or -1.
func stringEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// themePaint is theme.Paint, short for helpers.
type themePaint = theme.Paint

// ansiStrip removes escape sequences.
func ansiStrip(s string) string { return ansi.Strip(s) }

// themeStyles is *theme.Styles, short for helpers.
type themeStyles = *theme.Styles

// ansiHardwrap wraps plain text at w cells.
func ansiHardwrap(s string, w int) string { return ansi.Hardwrap(s, w, true) }

// framePayload returns the payload of a raw frame as compact JSON: the
// fifth element of a [join_ref, ref, topic, event, payload] array, or the
// "payload" member of a 1.0.0 object, else the frame itself.
func framePayload(text string) string {
	raw := []byte(text)
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil && len(arr) == 5 {
		return compactJSON(arr[4])
	}
	var obj struct {
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(raw, &obj) == nil && len(obj.Payload) > 0 {
		return compactJSON(obj.Payload)
	}
	return sanitize(text)
}
