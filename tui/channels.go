package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"

	"rtm/registry"
)

// chanRow is one row of the channels table: an identity or tenant
// heading or a channel (idx into the channels of identity set, id its
// name).
type chanRow struct {
	group string
	name  registry.Name
	id    string
	set   int
	idx   int
	// shared is the number of identities holding the topic (marked
	// when more than one).
	shared int
	// entity and long are the name as the table shows it without and
	// with the kind.
	entity, long string
}

func (r chanRow) isGroup() bool { return r.group != "" }

// rebuildRows rebuilds the channels table after the channels or its
// filter changed.
func (m *Model) rebuildRows() {
	if m.chans.rebuild(m.chanSets()) {
		m.main.current().reset()
	}
	m.followSelection()
	m.chansGen++
	m.stateGen++
	m.autoTab()
}

// chanSets returns every identity's channels, in the order of the
// identities.
func (m *Model) chanSets() []chanSet {
	sets := make([]chanSet, len(m.ids))
	for i, id := range m.ids {
		sets[i] = chanSet{id: id.Name, chans: id.state.Channels}
		if i == m.active {
			sets[i].chans = m.state.Channels
		}
	}
	return sets
}

// followSelection makes the selected channel's identity the active one.
func (m *Model) followSelection() {
	if i := m.identityIndex(m.chans.selID); i >= 0 && i != m.active {
		m.activate(i)
		m.clearRowCaches()
	}
}

// chanSet is the channels of one identity.
type chanSet struct {
	id    string
	chans []registry.ChannelInfo
}

// channelSelected follows a move of the channel selection: the main
// pane shows the new channel from its top, in the tab that suits it.
func (m *Model) channelSelected(changed bool) {
	if changed {
		m.followSelection()
		m.main.current().reset()
		m.autoTab()
	}
}

// chansView is what the channels pane renders from now.
func (m *Model) chansView() *chansView {
	return &chansView{st: m.st, sets: m.chanSets(), limit: m.state.Stats.Limit, multi: m.multi(), now: m.now, readOnly: m.opts.ReadOnly,
		focused: m.focus == focusChannels, epoch: m.epoch, clock: m.clock, gen: m.chansGen}
}

// channelsPane is the channels table: rows grouped by tenant, the
// selected channel (which the main pane shows), the scroll that keeps it
// in sight, and the filter. It renders from the state's channels, passed
// in with their generation.
type channelsPane struct {
	rows   []chanRow
	sel    registry.Name
	selID  string
	top    int
	filter filter
	r      rect
	cache  paneCache[chansKey]
}

// chansKey is what a render of the channels pane depends on.
type chansKey struct {
	epoch, clock, gen uint64
	sel               registry.Name
	selID             string
	top               int
	filter            string
	focused           bool
	r                 rect
	st                themeStyles
}

// chansView is what the channels pane renders from: the state's
// channels and their generation, the clock (ages), and whether the UI
// is read-only.
type chansView struct {
	st                themeStyles
	sets              []chanSet
	limit             int
	multi             bool
	now               time.Time
	readOnly, focused bool
	epoch, clock, gen uint64
}

// setSize sets the pane's area and keeps the selection in sight.
func (p *channelsPane) setSize(r rect) {
	p.r = r
	p.clamp()
}

// rebuild recomputes the table rows from the identities' channels and
// the filter, keeping the selection on the same channel; changed reports
// that the selection moved to another channel. With several identities
// the rows are grouped by identity (then by tenant), and a topic several
// identities hold is marked with their number.
func (p *channelsPane) rebuild(sets []chanSet) (changed bool) {
	grouped := false
	held := map[registry.Name]int{}
	for _, s := range sets {
		for _, c := range s.chans {
			if c.Name.Tenant != "" {
				grouped = true
			}
			if len(sets) > 1 {
				held[c.Name]++
			}
		}
	}
	rows := p.rows[:0]
	for si, s := range sets {
		// With several identities, a heading per identity (and tenant):
		// "as bob · tenant abc"; an identity without channels still has
		// its heading.
		who := ""
		if len(sets) > 1 {
			who = "as " + sanitize(s.id)
			if !grouped || len(s.chans) == 0 {
				rows = append(rows, chanRow{group: who})
			}
			who += " · "
		}
		lastTenant := "\x00"
		for i, c := range s.chans {
			if !p.filter.match(c.Name.String() + " " + c.Status.String() + " " + s.id) {
				continue
			}
			if grouped && c.Name.Tenant != lastTenant {
				g := "tenant " + c.Name.Tenant
				if c.Name.Tenant == "" {
					g = "no tenant"
				}
				rows = append(rows, chanRow{group: who + g})
				lastTenant = c.Name.Tenant
			}
			ent := sanitize(c.Name.Entity())
			rows = append(rows, chanRow{name: c.Name, id: s.id, set: si, idx: i, shared: held[c.Name],
				entity: ent, long: c.Name.Kind.String() + ":" + ent})
		}
	}
	p.rows = rows
	if p.sel.IsZero() || p.rowIndex(p.sel, p.selID) < 0 {
		// Select the first presence channel (the viewers are the most
		// telling view), else the first channel.
		p.sel, p.selID = registry.Name{}, ""
		for _, r := range rows {
			if !r.isGroup() && (p.sel.IsZero() || (r.name.Kind == registry.KindPresence && p.sel.Kind != registry.KindPresence)) {
				p.sel, p.selID = r.name, r.id
			}
		}
		changed = true
	}
	p.clamp()
	return changed
}

func (p *channelsPane) filterText() string { return p.filter.text }

// setFilter sets the filter; the model rebuilds the rows.
func (p *channelsPane) setFilter(f filter) { p.filter = f }

func (p *channelsPane) clearFilter() { p.filter = filter{} }

// help returns the pane's keys for the footer.
func (p *channelsPane) help(k KeyMap) []key.Binding {
	return []key.Binding{withHelp(k.Down, "↑/↓", "select"), withHelp(k.Open, "enter", "open")}
}

// rowIndex returns the row of identity id's channel n, or -1.
func (p *channelsPane) rowIndex(n registry.Name, id string) int {
	for i, r := range p.rows {
		if !r.isGroup() && r.name == n && r.id == id {
			return i
		}
	}
	return -1
}

// navigate applies a navigation key; changed reports that another
// channel is selected.
func (p *channelsPane) navigate(mv navMove) (changed bool) {
	switch {
	case mv.top:
		return p.selectRow(0)
	case mv.bottom:
		changed = p.selectRow(len(p.rows) - 1)
		return p.move(0) || changed
	}
	return p.move(mv.delta)
}

// page is the rows of a page up or down.
func (p *channelsPane) page() int { return max(1, p.visible()-1) }

// move moves the selection by delta rows, skipping headings.
func (p *channelsPane) move(delta int) (changed bool) {
	if len(p.rows) == 0 {
		return false
	}
	i := p.rowIndex(p.sel, p.selID)
	if i < 0 {
		i = 0
	}
	step := 1
	if delta < 0 {
		step = -1
	}
	for n := 0; n < abs(delta); n++ {
		j := i + step
		for j >= 0 && j < len(p.rows) && p.rows[j].isGroup() {
			j += step
		}
		if j < 0 || j >= len(p.rows) {
			break
		}
		i = j
	}
	return p.selectRow(i)
}

// selectRow selects the channel at row i (or the next channel row).
func (p *channelsPane) selectRow(i int) (changed bool) {
	for i < len(p.rows) && i >= 0 && p.rows[i].isGroup() {
		i++
	}
	if i < 0 || i >= len(p.rows) {
		return false
	}
	if p.rows[i].name != p.sel || p.rows[i].id != p.selID {
		p.sel, p.selID = p.rows[i].name, p.rows[i].id
		changed = true
	}
	p.clamp()
	return changed
}

// clamp keeps the selected row visible.
func (p *channelsPane) clamp() {
	h := p.visible()
	if h <= 0 {
		return
	}
	i := p.rowIndex(p.sel, p.selID)
	if i < 0 {
		i = 0
	}
	if i < p.top {
		p.top = i
		if i > 0 && p.rows[i-1].isGroup() {
			p.top = i - 1
		}
	}
	if i >= p.top+h {
		p.top = i - h + 1
	}
	if p.top > max(0, len(p.rows)-h) {
		p.top = max(0, len(p.rows)-h)
	}
	if p.top < 0 {
		p.top = 0
	}
}

// visible is the number of table rows that fit.
func (p *channelsPane) visible() int {
	return p.r.h - 3 // borders and the column header
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

// view returns the pane, rendered again only when what it shows
// changed.
func (p *channelsPane) view(v *chansView) *framed {
	k := chansKey{epoch: v.epoch, clock: v.clock, gen: v.gen, sel: p.sel, selID: p.selID, top: p.top, filter: p.filter.text,
		focused: v.focused, r: p.r, st: v.st}
	return p.cache.get(k, func() *framed { return p.render(v) })
}

// render renders the pane.
func (p *channelsPane) render(v *chansView) *framed {
	r := p.r
	inner := r.w - 2
	focused := v.focused
	cols, nameW, longName := channelColumns(inner)
	lines := make([]string, 0, r.h-2)

	// Column header.
	hl := newLine(inner)
	hl.add(v.st.Table.Header, fitText("NAME", nameW))
	for _, c := range cols {
		hl.plain(" ")
		if c.right {
			hl.add(v.st.Table.Header, fitRight(c.title, c.w))
		} else {
			hl.add(v.st.Table.Header, fitText(c.title, c.w))
		}
	}
	lines = append(lines, hl.done())

	visible := p.visible()
	if len(p.rows) == 0 {
		msg := "no channels — :join presence contact:123"
		if p.filter.active() {
			msg = "no channel matches the filter"
		} else if v.readOnly {
			msg = "no channels"
		}
		lines = append(lines, newLine(inner).add(v.st.Muted, msg).done())
	}
	for i := p.top; i < len(p.rows) && i < p.top+visible; i++ {
		row := p.rows[i]
		if row.isGroup() {
			lines = append(lines, newLine(inner).add(v.st.Table.Group, "▸ "+row.group).done())
			continue
		}
		if row.set >= len(v.sets) || row.idx >= len(v.sets[row.set].chans) {
			continue
		}
		c := &v.sets[row.set].chans[row.idx]
		name := row.entity
		if longName {
			name = row.long
		}
		if c.Tracked {
			name += " ★"
		}
		if row.shared > 1 {
			name += " ×" + strconv.Itoa(row.shared)
		}
		selected := c.Name == p.sel && row.id == p.selID
		if selected {
			// The selected row: one paint over the whole row.
			var b strings.Builder
			b.WriteString(fitText(name, nameW))
			for _, col := range cols {
				s, _ := col.cell(v, c)
				b.WriteByte(' ')
				if col.right {
					b.WriteString(fitRight(s, col.w))
				} else {
					b.WriteString(fitText(s, col.w))
				}
			}
			p := v.st.Table.SelectedBlur
			if focused {
				p = v.st.Table.Selected
			}
			lines = append(lines, p.Render(fitText(b.String(), inner)))
			continue
		}
		l := newLine(inner)
		l.addFit(v.st.Text, name, nameW)
		for _, col := range cols {
			s, p := col.cell(v, c)
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
	n, limit := 0, v.limit
	for _, s := range v.sets {
		n += len(s.chans)
	}
	if v.multi {
		limit = 0 // each identity has its own cap
	}
	if limit > 0 {
		title += fmt.Sprintf(" %d/%d", n, limit)
	} else {
		title += fmt.Sprintf(" %d", n)
	}
	badge := ""
	if p.filter.active() {
		badge = "/" + p.filter.text
	}
	return box(v.st, r.w, r.h, title, badge, focused, lines)
}
