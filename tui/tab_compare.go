package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/registry/compare"
	"rtm/theme"
)

// compareTab is the Compare tab, shown while the UI holds several
// identities: for the selected topic, one column per identity holding
// it with what it received (its channel's status, the messages by kind
// and event, the broadcasts it sent, the presence members it sees, what
// it missed), and below,
// newest first, the messages one identity received that another did
// not, each with its reason (registry/compare's reading, compare.go).
type compareTab struct {
	scroll scroll
}

// maxCompareEvents bounds the event rows under each kind;
// maxReasonRows the rows of a difference's reason.
const (
	maxCompareEvents = 8
	maxReasonRows    = 3
)

func (t *compareTab) names() (full, short string) { return "Compare", "Cmp" }

func (t *compareTab) note() string { return "" }

func (t *compareTab) reset() { t.scroll = 0 }

func (t *compareTab) page(h int) int { return max(1, h-2) }

func (t *compareTab) navigate(_ *mainView, mv navMove) { t.scroll.apply(mv) }

func (t *compareTab) update(tea.KeyPressMsg, KeyMap) bool { return false }

func (t *compareTab) help(KeyMap) []key.Binding { return nil }

func (t *compareTab) key(v *mainView, _ registry.Name) tabKey {
	k := tabKey{s: t.scroll, a: v.cmpGen}
	if v.cmp != nil {
		k.text = v.cmp.topic
	}
	return k
}

func (t *compareTab) restyle() {}

func (t *compareTab) view(v *mainView, c registry.ChannelInfo, w, h int) []string {
	return scrolled(t.render(v, c, w), h, t.scroll)
}

// render lays out the columns, then the differences.
func (t *compareTab) render(v *mainView, c registry.ChannelInfo, w int) []string {
	muted := func(s string) []string { return []string{newLine(w).add(v.st.Muted, s).done()} }
	switch {
	case !v.compare:
		return muted("no comparer: rtm compares identities when it runs them (--as alice --as bob)")
	case v.cmp == nil || v.cmp.topic != c.Name.String():
		return muted("reading what each identity received…")
	}
	d := v.cmp
	if len(d.cols) < 2 {
		who := "no identity"
		if len(d.cols) == 1 {
			who = "only " + sanitize(d.cols[0].Identity)
		}
		return muted(who + " holds this topic: J joins it as the others (:join ... --for a,b)")
	}
	out := t.columns(v, d.cols, w)
	out = append(out, t.differences(v, d, w)...)
	return out
}

// columns renders the table of what each identity received.
func (t *compareTab) columns(v *mainView, cols []compare.Column, w int) []string {
	// The labels' column fits the longest event, within a third.
	labelW := 9
	for _, c := range cols {
		for e := range c.Events {
			_, ev, _ := strings.Cut(e, " ")
			labelW = max(labelW, textWidth(e)+2, textWidth(ev)+4)
		}
	}
	labelW = min(labelW, max(9, w/3))
	colW := max(6, (w-labelW)/len(cols))
	var out []string
	row := func(label string, lp theme.Paint, cells func(i int, c *compare.Column) (string, theme.Paint)) {
		l := newLine(w).addFit(lp, label, labelW)
		for i := range cols {
			s, p := cells(i, &cols[i])
			l.addFit(p, s, colW-1).plain(" ")
		}
		out = append(out, l.done())
	}
	row("", v.st.Table.Header, func(_ int, c *compare.Column) (string, theme.Paint) {
		return sanitize(c.Identity), v.st.Table.Header
	})
	row("status", v.st.Muted, func(_ int, c *compare.Column) (string, theme.Paint) {
		word := c.Status.String()
		if c.JoinError != "" && c.Status != registry.StatusConnected {
			word = "refused"
		}
		return word, v.st.StatusPaint(word)
	})
	row("messages", v.st.Muted, func(_ int, c *compare.Column) (string, theme.Paint) {
		// The broadcasts it sent (self off: not received back, not
		// missed), when it did.
		if c.Sent > 0 {
			return fmtCount(uint64(c.Total)) + ", sent " + fmtCount(uint64(c.Sent)), v.st.Text
		}
		return fmtCount(uint64(c.Total)), v.st.Text
	})
	// Kinds, each followed by its events, the union over the columns.
	var kinds []string
	for _, c := range cols {
		for k := range c.Kinds {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	for _, k := range slices.Compact(kinds) {
		row(" "+sanitize(k), v.st.Muted, func(_ int, c *compare.Column) (string, theme.Paint) {
			return count(v, c.Kinds[k])
		})
		var events []string
		for _, c := range cols {
			for e := range c.Events {
				if e == k || strings.HasPrefix(e, k+" ") {
					events = append(events, e)
				}
			}
		}
		slices.Sort(events)
		events = slices.Compact(events)
		for i, e := range events {
			if i == maxCompareEvents {
				row(fmt.Sprintf("   … %d more", len(events)-i), v.st.Subtle, func(int, *compare.Column) (string, theme.Paint) { return "", v.st.Subtle })
				break
			}
			label := strings.TrimPrefix(e, k+" ")
			if label == e {
				continue // the kind's own row says it
			}
			row("   "+sanitize(label), v.st.Subtle, func(_ int, c *compare.Column) (string, theme.Paint) {
				return count(v, c.Events[e])
			})
		}
	}
	row("presence", v.st.Muted, func(_ int, c *compare.Column) (string, theme.Paint) {
		if len(c.Members) == 0 {
			return "-", v.st.Subtle
		}
		return strconv.Itoa(len(c.Members)) + ": " + sanitize(strings.Join(c.Members, ",")), v.st.Text
	})
	row("missed", v.st.Muted, func(_ int, c *compare.Column) (string, theme.Paint) {
		if c.Missing == 0 {
			return "0", v.st.Subtle
		}
		return strconv.Itoa(c.Missing), v.st.Warn
	})
	for _, c := range cols {
		if c.JoinError != "" && c.Status != registry.StatusConnected { // why it is down
			out = append(out, newLine(w).add(v.st.Muted, sanitize(c.Identity)+"'s join: ").add(v.st.Error, sanitize(c.JoinError)).done())
		}
	}
	return out
}

// count renders a count cell: "-" for none.
func count(v *mainView, n int) (string, theme.Paint) {
	if n == 0 {
		return "-", v.st.Subtle
	}
	return fmtCount(uint64(n)), v.st.Text
}

// differences renders the live differences, newest first: two lines
// each (what and to whom, then why).
func (t *compareTab) differences(v *mainView, d *compareData, w int) []string {
	title := fmt.Sprintf("DIFFERENCES %d", d.total)
	if d.total > len(d.diffs) {
		title += fmt.Sprintf(" (last %d)", len(d.diffs))
	}
	out := []string{newLine(w).add(v.st.Table.Header, title+" — received by one, not the other, newest first").done()}
	if len(d.diffs) == 0 {
		return append(out, newLine(w).add(v.st.Muted, "none yet: a message one identity gets and another does not shows here").done())
	}
	for i := len(d.diffs) - 1; i >= 0; i-- {
		df := &d.diffs[i]
		l := newLine(w).add(v.st.Subtle, df.Time.Format("15:04:05")).plain(" ")
		l.add(v.st.Warn, sanitize(df.MissingFrom)).add(v.st.Muted, " missed ").add(v.st.Text, sanitize(df.Message.Event))
		l.add(v.st.Muted, " (got by "+sanitize(df.A)+") ")
		l.add(v.st.Subtle, sanitize(string(df.Message.Value)))
		out = append(out, l.done())
		// Why, wrapped (the RLS verdict names the policies).
		text := string(df.Reason)
		if df.Detail != "" {
			text += ": " + sanitize(df.Detail)
		}
		for j, s := range wrapText(text, max(1, w-4)) {
			if j == maxReasonRows {
				break
			}
			l := newLine(w).plain("    ")
			if j == 0 {
				l = newLine(w).plain("  ↳ ")
			}
			out = append(out, l.add(reasonPaint(v, df.Reason), s).done())
		}
	}
	return out
}

// reasonPaint paints a difference's reason: unknown muted, the others
// as warnings.
func reasonPaint(v *mainView, r compare.Reason) theme.Paint {
	if r == compare.ReasonUnknown {
		return v.st.Muted
	}
	return v.st.Warn
}
