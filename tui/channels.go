package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"rtm/registry"
	"rtm/theme"
)

// chanRow is one row of the channels table: a tenant heading or a
// channel (idx into state.Channels).
type chanRow struct {
	group string
	name  registry.Name
	idx   int
	// entity and long are the name as the table shows it without and
	// with the kind.
	entity, long string
}

func (r chanRow) isGroup() bool { return r.group != "" }

// rebuildRows recomputes the table rows from the state and the filter,
// keeping the selection on the same channel.
func (m *Model) rebuildRows() {
	grouped := false
	for _, c := range m.state.Channels {
		if c.Name.Tenant != "" {
			grouped = true
			break
		}
	}
	rows := m.rows[:0]
	lastTenant := "\x00"
	for i, c := range m.state.Channels {
		if !m.chanFilter.match(c.Name.String() + " " + c.Status.String()) {
			continue
		}
		if grouped && c.Name.Tenant != lastTenant {
			g := "tenant " + c.Name.Tenant
			if c.Name.Tenant == "" {
				g = "no tenant"
			}
			rows = append(rows, chanRow{group: g})
			lastTenant = c.Name.Tenant
		}
		ent := sanitize(c.Name.Entity())
		rows = append(rows, chanRow{name: c.Name, idx: i, entity: ent, long: c.Name.Kind.String() + ":" + ent})
	}
	m.rows = rows
	if m.sel.IsZero() || m.rowIndex(m.sel) < 0 {
		// Select the first presence channel (the viewers are the most
		// telling view), else the first channel.
		m.sel = registry.Name{}
		for _, r := range rows {
			if !r.isGroup() && (m.sel.IsZero() || (r.name.Kind == registry.KindPresence && m.sel.Kind != registry.KindPresence)) {
				m.sel = r.name
			}
		}
		m.mainScroll = 0
	}
	m.autoTab()
	m.clampChannelScroll()
	m.cache.channels.valid = false
	m.cache.main.valid = false
	m.cache.header.valid = false
}

// rowIndex returns the row of a channel, or -1.
func (m *Model) rowIndex(n registry.Name) int {
	for i, r := range m.rows {
		if !r.isGroup() && r.name == n {
			return i
		}
	}
	return -1
}

// moveSelection moves the channel selection by delta rows, skipping
// headings.
func (m *Model) moveSelection(delta int) {
	if len(m.rows) == 0 {
		return
	}
	i := m.rowIndex(m.sel)
	if i < 0 {
		i = 0
	}
	step := 1
	if delta < 0 {
		step = -1
	}
	for n := 0; n < abs(delta); n++ {
		j := i + step
		for j >= 0 && j < len(m.rows) && m.rows[j].isGroup() {
			j += step
		}
		if j < 0 || j >= len(m.rows) {
			break
		}
		i = j
	}
	m.selectRow(i)
}

// selectRow selects the channel at row i (or the next channel row).
func (m *Model) selectRow(i int) {
	for i < len(m.rows) && i >= 0 && m.rows[i].isGroup() {
		i++
	}
	if i < 0 || i >= len(m.rows) {
		return
	}
	if m.rows[i].name != m.sel {
		m.sel = m.rows[i].name
		m.mainScroll = 0
		m.autoTab()
	}
	m.clampChannelScroll()
}

// clampChannelScroll keeps the selected row visible.
func (m *Model) clampChannelScroll() {
	h := m.channelRowsVisible()
	if h <= 0 {
		return
	}
	i := m.rowIndex(m.sel)
	if i < 0 {
		i = 0
	}
	if i < m.chanTop {
		m.chanTop = i
		if i > 0 && m.rows[i-1].isGroup() {
			m.chanTop = i - 1
		}
	}
	if i >= m.chanTop+h {
		m.chanTop = i - h + 1
	}
	if m.chanTop > max(0, len(m.rows)-h) {
		m.chanTop = max(0, len(m.rows)-h)
	}
	if m.chanTop < 0 {
		m.chanTop = 0
	}
}

// channelRowsVisible is the number of table rows that fit.
func (m *Model) channelRowsVisible() int {
	return m.lay.channels.h - 3 // borders and the column header
}

// chanCol is one column of the channels table.
type chanCol struct {
	title string
	w     int
	right bool
	cell  func(m *Model, c *registry.ChannelInfo) (string, theme.Paint)
}

// channelColumns picks the columns that fit an inner width; the name
// column takes what is left.
func channelColumns(inner int) (cols []chanCol, nameW int, longName bool) {
	typeLong := chanCol{"TYPE", 12, false, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		return c.Name.Kind.String(), m.st.Muted
	}}
	typeShort := chanCol{"TYPE", 5, false, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		return shortKind(c.Name.Kind), m.st.Muted
	}}
	statusWord := chanCol{"STATUS", 12, false, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		w := chanStatus(c)
		return w, m.st.StatusPaint(w)
	}}
	statusGlyph := chanCol{"S", 1, false, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		w := chanStatus(c)
		if w == "refused" {
			return "!", m.st.StatusPaint(w)
		}
		return statusGlyph(c.Status), m.st.StatusPaint(w)
	}}
	refs := chanCol{"REFS", 4, true, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		p := m.st.Text
		if c.RefCount > 1 {
			p = m.st.Warn
		}
		return strconv.Itoa(c.RefCount), p
	}}
	pres := chanCol{"PRES", 4, true, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		if c.Name.Kind != registry.KindPresence && c.PresenceCount == 0 {
			return "-", m.st.Subtle
		}
		return strconv.Itoa(c.PresenceCount), m.st.Text
	}}
	msgs := chanCol{"MSGS", 6, true, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		return fmtCount(c.MessagesIn + c.MessagesOut), m.st.Text
	}}
	att := chanCol{"ATT", 5, true, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		p := m.st.Subtle
		if c.Attempts > 0 {
			p = m.st.Warn
		}
		if c.Status == registry.StatusError {
			p = m.st.Error
		}
		return attempts(c.Attempts, c.MaxAttempts), p
	}}
	age := chanCol{"AGE", 4, true, func(m *Model, c *registry.ChannelInfo) (string, theme.Paint) {
		return fmtAge(m.now.Sub(c.CreatedAt)), m.st.Muted
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
// refused them since the join (no database, a bad filter: Info tells why).
// The word is also the theme's status paint name.
func chanStatus(c *registry.ChannelInfo) string {
	if c.Name.Kind == registry.KindSubscription && c.Status == registry.StatusConnected {
		switch {
		case c.Ready:
			return "ready"
		case changesRefused(c):
			return "refused"
		}
	}
	return c.Status.String()
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

// stepMatching moves from index i of n rows by delta rows that match
// (skipping the others), stopping at the last match in that direction.
func stepMatching(i, n, delta int, matches func(int) bool) int {
	step := 1
	if delta < 0 {
		step = -1
	}
	for k := 0; k < abs(delta); k++ {
		j := i + step
		for j >= 0 && j < n && !matches(j) {
			j += step
		}
		if j < 0 || j >= n {
			break
		}
		i = j
	}
	return i
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// viewChannels renders the channels pane.
func (m *Model) viewChannels() *framed {
	r := m.lay.channels
	inner := r.w - 2
	focused := m.focus == focusChannels
	cols, nameW, longName := channelColumns(inner)
	lines := make([]string, 0, r.h-2)

	// Column header.
	hl := newLine(inner)
	hl.add(m.st.Table.Header, fitText("NAME", nameW))
	for _, c := range cols {
		hl.plain(" ")
		if c.right {
			hl.add(m.st.Table.Header, fitRight(c.title, c.w))
		} else {
			hl.add(m.st.Table.Header, fitText(c.title, c.w))
		}
	}
	lines = append(lines, hl.done())

	visible := m.channelRowsVisible()
	if len(m.rows) == 0 {
		msg := "no channels — :join presence contact:123"
		if m.chanFilter.active() {
			msg = "no channel matches the filter"
		} else if m.opts.ReadOnly {
			msg = "no channels"
		}
		lines = append(lines, newLine(inner).add(m.st.Muted, msg).done())
	}
	for i := m.chanTop; i < len(m.rows) && i < m.chanTop+visible; i++ {
		row := m.rows[i]
		if row.isGroup() {
			lines = append(lines, newLine(inner).add(m.st.Table.Group, "▸ "+row.group).done())
			continue
		}
		if row.idx >= len(m.state.Channels) {
			continue
		}
		c := &m.state.Channels[row.idx]
		name := row.entity
		if longName {
			name = row.long
		}
		if c.Tracked {
			name += " ★"
		}
		selected := c.Name == m.sel
		if selected {
			// The selected row: one paint over the whole row.
			var b strings.Builder
			b.WriteString(fitText(name, nameW))
			for _, col := range cols {
				s, _ := col.cell(m, c)
				b.WriteByte(' ')
				if col.right {
					b.WriteString(fitRight(s, col.w))
				} else {
					b.WriteString(fitText(s, col.w))
				}
			}
			p := m.st.Table.SelectedBlur
			if focused {
				p = m.st.Table.Selected
			}
			lines = append(lines, p.Render(fitText(b.String(), inner)))
			continue
		}
		l := newLine(inner)
		l.addFit(m.st.Text, name, nameW)
		for _, col := range cols {
			s, p := col.cell(m, c)
			l.pad(1)
			l.used++
			if col.right {
				l.addRight(p, s, col.w)
			} else {
				l.addFit(p, s, col.w)
			}
		}
		lines = append(lines, l.done())
	}
	title := "Channels"
	n, limit := len(m.state.Channels), m.state.Stats.Limit
	if limit > 0 {
		title += fmt.Sprintf(" %d/%d", n, limit)
	} else {
		title += fmt.Sprintf(" %d", n)
	}
	badge := ""
	if m.chanFilter.active() {
		badge = "/" + m.chanFilter.text
	}
	return box(m.st, r.w, r.h, title, badge, focused, lines)
}
