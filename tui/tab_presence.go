package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// presenceTab is the Presence tab: the viewers and the join/leave feed,
// or the raw presence frames (v).
type presenceTab struct {
	raw    bool
	scroll scroll
}

func (t *presenceTab) names() (full, short string) { return "Presence", "Pres" }

func (t *presenceTab) note() string {
	if t.raw {
		return "  raw frames"
	}
	return ""
}

func (t *presenceTab) reset() { t.scroll = 0 }

func (t *presenceTab) page(h int) int { return max(1, h-4) }

func (t *presenceTab) navigate(_ *mainView, mv navMove) { t.scroll.apply(mv) }

// update toggles the raw frames.
func (t *presenceTab) update(msg tea.KeyPressMsg, k KeyMap) bool {
	if !key.Matches(msg, k.Presence.Raw) {
		return false
	}
	t.raw = !t.raw
	t.scroll = 0
	return true
}

func (t *presenceTab) help(k KeyMap) []key.Binding { return []key.Binding{k.Presence.Raw} }

func (t *presenceTab) key(v *mainView, c registry.Name) tabKey {
	k := tabKey{s: t.scroll, flag: t.raw}
	if d, ok := v.chData[c]; ok {
		k.a, k.n, k.b, k.n2 = d.feed.Seq(), d.feed.Len(), d.raw.Seq(), d.raw.Len()
	}
	return k
}

func (t *presenceTab) restyle() {}

func (t *presenceTab) view(v *mainView, c registry.ChannelInfo, w, h int) []string {
	return scrolled(t.render(v, c, w, h), h, t.scroll)
}

// viewPresence renders the viewers, the join/leave feed, or the raw
// presence frames.
func (t *presenceTab) render(v *mainView, c registry.ChannelInfo, w, h int) []string {
	d := v.chData[c.Name]
	if t.raw {
		out := []string{newLine(w).add(v.st.Table.Header, "RAW PRESENCE FRAMES (presence_state / presence_diff) — v: viewers").done()}
		if d == nil || d.raw.Len() == 0 {
			return append(out, newLine(w).add(v.st.Muted, "none received yet").done())
		}
		// Newest last: collect frames from the newest until the pane is
		// full, each as a header and its payload wrapped.
		var blocks [][]string
		room := h - 1 + int(t.scroll)
		for i := d.raw.Len() - 1; i >= 0 && room > 0; i-- {
			e := d.raw.At(i)
			block := []string{newLine(w).add(v.st.Subtle, e.time.Format("15:04:05.000")).plain(" ").add(v.st.Primary, e.event).done()}
			for _, l := range strings.Split(ansiHardwrap(framePayload(e.text), max(1, w-2)), "\n") {
				block = append(block, newLine(w).plain("  ").add(v.st.Text, l).done())
			}
			blocks = append(blocks, block)
			room -= len(block)
		}
		for i := len(blocks) - 1; i >= 0; i-- {
			out = append(out, blocks[i]...)
		}
		if len(out) > h+int(t.scroll) {
			out = append(out[:1], out[len(out)-h+1:]...)
		}
		return out
	}
	users := v.state.Presence[c.Name]
	var out []string
	if c.Name.Kind != registry.KindPresence && len(users) == 0 {
		return []string{newLine(w).add(v.st.Muted, "not a presence channel — :join presence <type>:<id> to see viewers").done()}
	}
	tracked := ""
	if c.Tracked {
		tracked = " · you are tracked as " + sanitize(c.TrackedAs)
	}
	// The truncation first: at a narrow width it is what must show.
	out = append(out, newLine(w).add(v.st.Table.Header, fmt.Sprintf("VIEWERS %d", len(users))).
		add(v.st.Warn, truncatedMarker(c.PresenceTruncated)).add(v.st.Table.Header, tracked).done())
	idW := max(8, min(24, w/3))
	nameW := max(6, min(20, w/4))
	out = append(out, newLine(w).add(v.st.Muted, fitText("USER ID", idW)+" "+fitText("NAME", nameW)+" "+fitText("ONLINE", 8)+" METAS").done())
	maxUsers := max(1, h/2-2)
	narrowYou := idW+nameW+8+5+3+7 > w
	if i := slices.IndexFunc(users, func(u registry.PresenceUser) bool { return u.Self }); i > 0 {
		// You first: never hidden behind "… N more".
		users = append(append([]registry.PresenceUser{users[i]}, users[:i]...), users[i+1:]...)
	}
	for i, u := range users {
		if i == maxUsers && len(users) > maxUsers {
			out = append(out, newLine(w).add(v.st.Muted, fmt.Sprintf("… %d more", len(users)-maxUsers)).done())
			break
		}
		l := newLine(w)
		p := v.st.Text
		if u.Self {
			p = v.st.Highlight
		}
		l.add(p, fitText(sanitize(u.UserID), idW)).plain(" ")
		if u.Self && narrowYou {
			// No room for the marker at the end: it goes with the name.
			l.add(v.st.Highlight, fitText(truncText(sanitize(u.Name), max(1, nameW-6))+" (you)", nameW)).plain(" ")
		} else {
			l.add(v.st.Text, fitText(sanitize(u.Name), nameW)).plain(" ")
		}
		since := "-"
		if !u.OnlineSince.IsZero() {
			since = fmtAge(v.now.Sub(u.OnlineSince))
		}
		l.add(v.st.Muted, fitText(since, 8)).plain(" ")
		l.add(v.st.Text, fitRight(strconv.Itoa(u.Metas), 5))
		if u.Self && !narrowYou {
			l.add(v.st.Highlight, "  (you)")
		}
		out = append(out, l.done())
	}
	if len(users) == 0 {
		out = append(out, newLine(w).add(v.st.Muted, "nobody is present — p tracks you").done())
	}
	out = append(out, newLine(w).add(v.st.Table.Header, "JOIN / LEAVE").add(v.st.Muted, "  (v: raw frames)").done())
	room := h - len(out)
	if d == nil || d.feed.Len() == 0 {
		return append(out, newLine(w).add(v.st.Muted, "no joins or leaves yet").done())
	}
	// Newest last. A join of a user who is already present (a second
	// connection, or a re-track: Phoenix sends the new meta as a join and
	// the old one as a leave) reads as an update; the leave of a meta
	// that leaves others behind is not a departure. The raw frames (v)
	// show every message.
	var rows []string
	for i := d.feed.Len() - 1; i >= 0 && len(rows) < room; i-- {
		e := d.feed.At(i)
		if e.Action == registry.PresenceLeave && e.User.Metas > 0 {
			continue
		}
		l := newLine(w)
		l.add(v.st.Subtle, e.Time.Format("15:04:05")).plain(" ")
		switch {
		case e.Action == registry.PresenceJoin && e.User.Metas > 1:
			l.add(v.st.Info, "~ ").add(v.st.Text, sanitize(e.User.UserID)).add(v.st.Muted, " updated")
		case e.Action == registry.PresenceJoin:
			l.add(v.st.OK, "+ ").add(v.st.Text, sanitize(e.User.UserID)).add(v.st.Muted, " joined")
		default:
			l.add(v.st.Warn, "- ").add(v.st.Text, sanitize(e.User.UserID)).add(v.st.Muted, " left")
		}
		if e.User.Name != "" {
			l.add(v.st.Muted, " ("+sanitize(e.User.Name)+")")
		}
		l.add(v.st.Subtle, fmt.Sprintf(" · %d present", e.Count))
		rows = append(rows, l.done())
	}
	for i := len(rows) - 1; i >= 0; i-- {
		out = append(out, rows[i])
	}
	return out
}

// truncatedMarker tells that the presence shown is incomplete (the
// client's presence state reached its limits): how many users are not
// shown, else how many metas or early diffs were not kept ("" when
// complete).
func truncatedMarker(t *registry.PresenceTruncation) string {
	switch {
	case t == nil:
		return ""
	case t.Members > 0:
		return fmt.Sprintf(" · truncated: %d not shown", t.Members)
	case t.Metas > 0:
		return fmt.Sprintf(" · truncated: %d metas not kept", t.Metas)
	default:
		return fmt.Sprintf(" · truncated: %d diffs dropped", t.Diffs)
	}
}
