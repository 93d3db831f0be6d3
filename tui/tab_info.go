package tui

import (
	"fmt"
	"net/url"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"rtm/registry"
)

// infoTab is the Info tab: the channel's state and configuration, the
// token, the target, the doctor's last run and the channel's raw frames.
type infoTab struct {
	scroll scroll
}

func (t *infoTab) names() (full, short string) { return "Info", "Info" }

func (t *infoTab) note() string { return "" }

func (t *infoTab) reset() { t.scroll = 0 }

func (t *infoTab) page(h int) int { return max(1, h-4) }

func (t *infoTab) navigate(_ *mainView, mv navMove) { t.scroll.apply(mv) }

func (t *infoTab) update(tea.KeyPressMsg, KeyMap) bool { return false }

func (t *infoTab) help(KeyMap) []key.Binding { return nil }

func (t *infoTab) key(v *mainView, c registry.Name) tabKey {
	k := tabKey{s: t.scroll, a: v.frames.Seq(), n: v.frames.Len()}
	if d, ok := v.chData[c]; ok {
		k.p = d.doctor
	}
	return k
}

func (t *infoTab) restyle() {}

func (t *infoTab) view(v *mainView, c registry.ChannelInfo, w, h int) []string {
	return scrolled(t.render(v, c, w, h), h, t.scroll)
}

// viewInfo renders the channel's configuration and its raw frames.
func (tb *infoTab) render(v *mainView, c registry.ChannelInfo, w, h int) []string {
	var out []string
	kv := func(k string, parts ...any) {
		// The value wraps under itself (at most 4 rows), keeping each
		// part's paint.
		var segs []paintedText
		for i := 0; i+1 < len(parts); i += 2 {
			segs = append(segs, paintedText{parts[i].(themePaint), parts[i+1].(string)})
		}
		for i, row := range wrapPainted(segs, max(8, w-10), 4) {
			label := ""
			if i == 0 {
				label = k
			}
			l := newLine(w).add(v.st.Muted, fitText(label, 10))
			for _, sg := range row {
				l.add(sg.p, sg.s)
			}
			out = append(out, l.done())
		}
	}
	t := v.st.Text
	mu := v.st.Muted
	kv("Topic", t, c.Topic)
	reason := ""
	if c.Reason != "" {
		reason = " (" + sanitize(c.Reason) + ")"
	}
	kv("Status", v.st.StatusPaint(c.Status.String()), c.Status.String(), mu, reason)
	// Why no events? first, for subscription channels.
	if c.Name.Kind == registry.KindSubscription {
		switch {
		case c.Ready:
			kv("Ready", v.st.StatusPaint("ready"), "yes", mu, " — the server said \"Subscribed to PostgreSQL\" since the last join: changes flow")
		case changesRefused(&c):
			kv("Ready", v.st.StatusPaint("refused"), "no — "+sanitize(c.LastError))
			kv("Fix", v.st.Warn, changesHint(c.LastError))
		case c.Status == registry.StatusConnected:
			kv("Ready", v.st.Warn, "not yet", mu, " — waiting for the server's \"Subscribed to PostgreSQL\"; changes before it are missed")
		default:
			kv("Ready", mu, "no (not joined)")
		}
		if db := v.db; db.Detail != "" {
			p, detail := t, db.Detail
			if db.Missing {
				p = v.st.Warn
				if changesRefused(&c) && strings.Contains(c.LastError, "No database") {
					detail = db.Label + " (see Ready)"
				}
			}
			kv("Database", p, sanitize(detail))
		}
	}
	if doctorFor(c) {
		doc := "not run — D checks why changes may not arrive"
		if privateDoctor(c) {
			doc = "not run — D checks why the private channel may be refused"
		}
		dp := mu
		if d, ok := v.chData[c.Name]; ok && d.doctor != nil {
			doc = d.doctor.summary()
			dp = v.st.OK
			if failed, _, errs := d.doctor.failed(); len(failed) > 0 || errs > 0 {
				dp = v.st.Error
			}
			if !d.doctor.running {
				doc += " at " + d.doctor.at.Format("15:04:05") + " (D shows it)"
			}
		}
		kv("Doctor", dp, doc)
	}
	joined := "never"
	if !c.JoinedAt.IsZero() {
		joined = c.JoinedAt.Format("15:04:05") + " (" + fmtAge(v.now.Sub(c.JoinedAt)) + " ago)"
	}
	kv("Join ref", t, orDash(c.JoinRef), mu, fmt.Sprintf(" · joins %d · joined %s", c.Joins, joined))
	kv("Created", t, c.CreatedAt.Format("15:04:05"), mu, fmt.Sprintf(" (%s ago) · refs %d · keep-alive %s", fmtAge(v.now.Sub(c.CreatedAt)), c.RefCount, yesNo(c.KeepAlive)))
	cfg := fmt.Sprintf("ack %s · self %s · presence %s · private %s", yesNo(c.Config.Ack), yesNo(c.Config.Self), yesNo(c.Config.Presence), yesNo(c.Config.Private))
	if c.Config.PresenceKey != "" {
		cfg += " · key " + sanitize(c.Config.PresenceKey)
	}
	kv("Config", t, cfg)
	var bs []string
	for _, b := range c.Bindings {
		s := b.Type
		if b.Event != "" {
			s += " " + b.Event
		}
		if b.Table != "" {
			s += " " + b.Schema + "." + b.Table
		}
		if b.Filter != "" {
			s += " [" + b.Filter + "]"
		}
		if b.ID != 0 {
			s += fmt.Sprintf(" #%d", b.ID)
		}
		s += fmt.Sprintf(" ×%d", b.Listeners)
		bs = append(bs, s)
	}
	kv("Bindings", t, orDash(sanitize(strings.Join(bs, " · "))))

	tok := v.state.Token
	if tok.Present {
		exp := "no expiry"
		if !tok.Expiry.IsZero() {
			exp = "expires in " + fmtCountdown(tok.Expiry.Sub(v.now))
			if !tok.Expiry.After(v.now) {
				exp = "EXPIRED"
			}
		}
		kv("Token", t, tok.Masked, mu, fmt.Sprintf(" · sub %s · role %s · %s", orDash(tok.Subject), orDash(tok.Role), exp))
	} else {
		kv("Token", mu, "none (API key only)")
	}
	if !c.TokenExpiry.IsZero() {
		kv("Join tok", t, "expires "+c.TokenExpiry.Format("15:04:05"), mu, " ("+fmtCountdown(c.TokenExpiry.Sub(v.now))+")")
	}
	if c.Tracked {
		kv("Tracked", v.st.Highlight, "as "+sanitize(c.TrackedAs))
	}
	kv("Messages", t, fmt.Sprintf("%d in · %d out", c.MessagesIn, c.MessagesOut), mu, fmt.Sprintf(" · queued %d · queue drops %d", c.Queued, c.QueueDropped))
	if c.LastError != "" {
		code := c.LastErrorCode
		if code != "" {
			code += ": "
		}
		kv("Last err", v.st.Error, sanitize(code+c.LastError), mu, " at "+c.LastErrorAt.Format("15:04:05"))
		if hint := registry.Hint(c.LastErrorCode, c.LastError); hint != "" && joinRefused(&c) {
			kv("Fix", v.st.Warn, hint)
		}
	}
	tg := v.state.Target
	where := tg.Serializer
	if tg.Embedded {
		where += " · embedded server"
	}
	target := tg.URL
	if u, err := url.QueryUnescape(target); err == nil {
		target = u // the masked key's "…" reads as itself
	}
	kv("Target", t, sanitize(target), mu, " · "+where)

	// Raw frames of this channel, oldest first.
	out = append(out, newLine(w).add(v.st.Table.Header, "RAW FRAMES").add(v.st.Muted, "  (→ out, ← in)").done())
	room := h - len(out) + int(tb.scroll)
	var fr []*registry.FrameEvent
	for i := v.frames.Len() - 1; i >= 0 && len(fr) < room; i-- {
		f := v.frames.Ptr(i)
		if f.Channel == c.Name || f.Topic == c.Topic {
			fr = append(fr, f)
		}
	}
	if len(fr) == 0 {
		out = append(out, newLine(w).add(v.st.Muted, "no frames recorded for this channel").done())
	}
	for i := len(fr) - 1; i >= 0; i-- {
		f := fr[i]
		l := newLine(w)
		dp := v.st.Info
		if f.Direction == registry.Out {
			dp = v.st.Highlight
		}
		l.add(dp, dirArrow(f.Direction)).plain(" ")
		l.add(v.st.Subtle, f.Time.Format("15:04:05.000")).plain(" ")
		l.add(v.st.Primary, fitText(sanitize(f.Event), 12)).plain(" ")
		if frameCut(f) {
			l.add(v.st.Warn, "["+sizeText(f.Size)+", truncated] ")
		}
		if f.Text != "" {
			l.add(v.st.Text, sanitize(f.Text[:min(len(f.Text), 4*w)]))
		} else {
			l.add(v.st.Muted, fmt.Sprintf("<binary %d bytes>", f.Size))
		}
		out = append(out, l.done())
	}
	return out
}

// paintedText is a piece of text and its paint.
type paintedText struct {
	p themePaint
	s string
}

// wrapPainted wraps painted pieces at spaces to rows of w cells, at most
// maxRows (the last one cut with "…" by the line that draws it).
func wrapPainted(segs []paintedText, w, maxRows int) [][]paintedText {
	total := 0
	for _, sg := range segs {
		total += textWidth(sg.s)
	}
	if total <= w {
		return [][]paintedText{segs}
	}
	var rows [][]paintedText
	var row []paintedText
	used := 0
	for _, sg := range segs {
		words := strings.SplitAfter(sg.s, " ")
		for _, wd := range words {
			if wd == "" {
				continue
			}
			ww := textWidth(wd)
			for ww > w && len(rows) < maxRows-1 {
				// A word longer than a row (a URL) is cut across rows.
				if used > 0 {
					rows = append(rows, row)
					row, used = nil, 0
				}
				head := ansi.Truncate(wd, w, "")
				rows = append(rows, []paintedText{{sg.p, head}})
				wd = wd[len(head):]
				ww = textWidth(wd)
			}
			if used > 0 && used+textWidth(strings.TrimRight(wd, " ")) > w {
				if len(rows) == maxRows-1 {
					// The last row takes the rest, to be cut.
					row = append(row, paintedText{sg.p, wd})
					used += ww
					continue
				}
				rows = append(rows, row)
				row, used = nil, 0
			}
			row = append(row, paintedText{sg.p, wd})
			used += ww
		}
	}
	if len(row) > 0 {
		rows = append(rows, row)
	}
	// A row's last word keeps no trailing space (it would overflow).
	for _, r := range rows {
		if n := len(r); n > 0 {
			r[n-1].s = strings.TrimRight(r[n-1].s, " ")
		}
	}
	return rows
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
