package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"rtm/registry"
	"rtm/theme"
)

// The channels table's columns (channelColumns, degraded step by step
// to fit the width) and the words and glyphs of their cells.

// chanCol is one column of the channels table.
type chanCol struct {
	title string
	w     int
	right bool
	cell  func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint)
}

// channelColumns picks the columns that fit an inner width; the name
// column takes what is left.
func channelColumns(inner int) (cols []chanCol, nameW int, longName bool) {
	typeLong := chanCol{"TYPE", 12, false, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		return c.Name.Kind.String(), v.st.Muted
	}}
	typeShort := chanCol{"TYPE", 5, false, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		return shortKind(c.Name.Kind), v.st.Muted
	}}
	statusWord := chanCol{"STATUS", 12, false, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		word := chanStatus(c)
		return word, v.st.StatusPaint(word)
	}}
	statusGlyph := chanCol{"S", 1, false, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		word := chanStatus(c)
		if word == "refused" {
			return "!", v.st.StatusPaint(word)
		}
		return statusGlyph(c.Status), v.st.StatusPaint(word)
	}}
	refs := chanCol{"REFS", 4, true, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		p := v.st.Text
		if c.RefCount > 1 {
			p = v.st.Warn
		}
		return strconv.Itoa(c.RefCount), p
	}}
	pres := chanCol{"PRES", 4, true, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		if c.Name.Kind != registry.KindPresence && c.PresenceCount == 0 {
			return "-", v.st.Subtle
		}
		return strconv.Itoa(c.PresenceCount), v.st.Text
	}}
	msgs := chanCol{"MSGS", 6, true, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		return fmtCount(c.MessagesIn + c.MessagesOut), v.st.Text
	}}
	att := chanCol{"ATT", 5, true, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		p := v.st.Subtle
		if c.Attempts > 0 {
			p = v.st.Warn
		}
		if c.Status == registry.StatusError {
			p = v.st.Error
		}
		return attempts(c.Attempts, c.MaxAttempts), p
	}}
	age := chanCol{"AGE", 4, true, func(v *chansView, c *registry.ChannelInfo) (string, theme.Paint) {
		return fmtAge(v.now.Sub(c.CreatedAt)), v.st.Muted
	}}
	// Degrade step by step until the name keeps at least 14 cells; the
	// status word stays as long as it can (NO_COLOR users read it), and
	// the main pane's title names the selected channel's status always.
	cur := []chanCol{typeLong, statusWord, refs, pres, msgs, att, age}
	set := func(title string, c chanCol) func() {
		return func() {
			for i := range cur {
				if cur[i].title == title {
					cur[i] = c
					return
				}
			}
		}
	}
	drop := func(title string) func() {
		return func() { cur = slices.DeleteFunc(cur, func(c chanCol) bool { return c.title == title }) }
	}
	steps := []func(){
		set("TYPE", typeShort), drop("AGE"), drop("REFS"), drop("MSGS"), drop("PRES"),
		set("STATUS", statusGlyph), drop("TYPE"), drop("ATT"),
	}
	total := func() int {
		t := 0
		for _, c := range cur {
			t += c.w + 1
		}
		return t
	}
	const nameMin = 14
	for _, s := range steps {
		if inner-total() >= nameMin {
			break
		}
		s()
	}
	nameW = max(1, inner-total())
	longName = true
	for _, c := range cur {
		if c.title == "TYPE" {
			longName = false
		}
	}
	return cur, nameW, longName
}

// chanStatus returns the word for a channel's status: its Status, except
// that a connected subscription channel reads "ready" once its postgres
// changes flow ("Subscribed to PostgreSQL") and "refused" when the server
// refused them since the join (no database, a bad filter: Info tells why),
// and a channel whose join the server refused for authorization reads
// "refused" while it retries or after it gave up (Info gives the reason
// and the fix). The word is also the theme's status paint name.
func chanStatus(c *registry.ChannelInfo) string {
	if c.Name.Kind == registry.KindSubscription && c.Status == registry.StatusConnected {
		switch {
		case c.Ready:
			return "ready"
		case changesRefused(c):
			return "refused"
		}
	}
	if joinRefused(c) {
		return "refused"
	}
	return c.Status.String()
}

// joinRefused reports whether the channel is down because the server
// refused its join for authorization: a private channel the RLS policies
// do not allow (Unauthorized), a missing messages partition, or a public
// channel on a private-only project. The current reason must name the
// code, so an older refusal does not linger over a later drop.
func joinRefused(c *registry.ChannelInfo) bool {
	switch c.LastErrorCode {
	case "Unauthorized", "MissingPartition", "PrivateOnly":
	default:
		return false
	}
	return c.Status != registry.StatusConnected && strings.Contains(c.Reason, c.LastErrorCode+": ")
}

// changesRefused reports whether the server refused a subscription
// channel's postgres changes since its last join (a postgres_changes
// system error, and no "Subscribed to PostgreSQL").
func changesRefused(c *registry.ChannelInfo) bool {
	return !c.Ready && c.LastErrorCode == "system" && c.LastError != "" && !c.LastErrorAt.Before(c.JoinedAt)
}

func shortKind(k registry.Kind) string {
	switch k {
	case registry.KindSubscription:
		return "sub"
	case registry.KindPresence:
		return "pres"
	case registry.KindBroadcast:
		return "bcast"
	}
	return "?"
}

func statusGlyph(s registry.Status) string {
	switch s {
	case registry.StatusConnected:
		return "●"
	case registry.StatusConnecting:
		return "◌"
	case registry.StatusDisconnected:
		return "○"
	case registry.StatusError:
		return "✗"
	}
	return "?"
}

func attempts(n, maxN int) string {
	if maxN <= 0 {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%d/∞", n)
	}
	return fmt.Sprintf("%d/%d", n, maxN)
}
