package tui

import (
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// tab is a tab of the main pane: its index in mainPane.tabs (and its
// key: 1 for the first).
type tab uint8

const (
	tabMessages tab = iota
	tabPresence
	tabRetries
	tabInfo
	// tabCompare shows only while the UI holds several identities.
	tabCompare
	numTabs
)

// String returns the tab's title.
func (t tab) String() string {
	switch t {
	case tabMessages:
		return "Messages"
	case tabPresence:
		return "Presence"
	case tabRetries:
		return "Retries"
	case tabInfo:
		return "Info"
	case tabCompare:
		return "Compare"
	}
	return "?"
}

// mainTab is one tab of the main pane, showing the selected channel.
// Each tab owns its state (scroll, filter, toggles) and says what its
// render depends on (key), so the pane renders again only when that
// changed. Adding a tab: a file tab_<name>.go with a type implementing
// this interface, then a tab constant, its title in tab.String and its
// entry in newMainPane (its key in KeyMap follows from the constant).
type mainTab interface {
	// names returns the tab's title and its short title (narrow panes).
	names() (full, short string)
	// note is shown after the titles when the tab is open ("  /filter").
	note() string
	// reset shows the tab from its top (another channel, the tab opened).
	reset()
	// page returns the rows of a page of a pane h rows high.
	page(h int) int
	// navigate applies a navigation key.
	navigate(v *mainView, mv navMove)
	// update handles the tab's own keys; false for other keys.
	update(msg tea.KeyPressMsg, k KeyMap) bool
	// help returns the tab's keys for the footer.
	help(k KeyMap) []key.Binding
	// key returns the versions of the data the tab shows of channel c
	// and of its own state.
	key(v *mainView, c registry.Name) tabKey
	// restyle drops what was rendered with the old styles.
	restyle()
	// view renders the tab for channel c in w x h cells.
	view(v *mainView, c registry.ChannelInfo, w, h int) []string
}

// tabKey is a tab's part of the main pane's cache key: the versions of
// the rings it shows (a, n, b, n2: Seq and Len), its cursor or scroll,
// a toggle, its filter, a pointer to data it shows (the doctor run).
type tabKey struct {
	a, b  uint64
	n, n2 int
	cur   cursor
	s     scroll
	flag  bool
	text  string
	p     any
}

// mainKey is what a render of the main pane depends on.
type mainKey struct {
	epoch, clock, stateGen uint64
	sel                    registry.Name
	tab                    tab
	focused, narrow        bool
	r                      rect
	st                     themeStyles
	tk                     tabKey
}

// mainPane is the tabbed pane of the selected channel.
type mainPane struct {
	tabs [numTabs]mainTab
	tab  tab
	// auto makes the tab follow the selected channel's kind until the
	// user picks a tab.
	auto bool
	// shown is the number of tabs shown: the Compare tab only with
	// several identities (setShown).
	shown tab
	r     rect
	cache paneCache[mainKey]
}

// setShown shows the Compare tab or hides it (then leaving it).
func (p *mainPane) setShown(compare bool) {
	p.shown = numTabs - 1
	if compare {
		p.shown = numTabs
	}
	if p.tab >= p.shown {
		p.show(tabMessages)
	}
}

func newMainPane() *mainPane {
	return &mainPane{
		tabs:  [numTabs]mainTab{&messagesTab{}, &presenceTab{}, &retriesTab{}, &infoTab{}, &compareTab{}},
		auto:  true,
		shown: numTabs - 1,
	}
}

// mainView is what the main pane renders from: the model's data, read
// only.
type mainView struct {
	st              themeStyles
	state           *registry.State
	chData          map[registry.Name]*chanData
	retries         *Ring[registry.RetryEvent]
	frames          *Ring[registry.FrameEvent]
	now             time.Time
	db              DatabaseInfo
	sel             registry.Name
	narrow, focused bool
	r               rect
	epoch, clock    uint64
	stateGen        uint64
	// compare is true when the UI has a comparer; cmp is its last
	// reading (numbered by cmpGen).
	compare bool
	cmp     *compareData
	cmpGen  uint64
}

// current returns the open tab.
func (p *mainPane) current() mainTab { return p.tabs[p.tab] }

// messages returns the Messages tab (its filter is the pane's).
func (p *mainPane) messages() *messagesTab { return p.tabs[tabMessages].(*messagesTab) }

func (p *mainPane) filterText() string { return p.messages().filter.text }

func (p *mainPane) setFilter(f filter) { p.messages().filter = f }

func (p *mainPane) clearFilter() { p.messages().filter = filter{} }

// page returns the rows of a page of the open tab.
func (p *mainPane) page() int { return p.current().page(p.r.h) }

// setSize sets the pane's area.
func (p *mainPane) setSize(r rect) { p.r = r }

// show opens tab t from its top.
func (p *mainPane) show(t tab) {
	if t != p.tab {
		p.tab = t
		p.current().reset()
	}
}

// restyle drops the tabs' rendered rows.
func (p *mainPane) restyle() {
	for _, t := range p.tabs {
		t.restyle()
	}
}

// view returns the pane, rendered again only when what it shows
// changed.
func (p *mainPane) view(v *mainView) *framed {
	k := mainKey{epoch: v.epoch, clock: v.clock, stateGen: v.stateGen, sel: v.sel, tab: p.tab, focused: v.focused,
		narrow: v.narrow, r: p.r, st: v.st, tk: p.current().key(v, v.sel)}
	return p.cache.get(k, func() *framed { return p.render(v) })
}

// render renders the pane: tabs and the open tab.
func (p *mainPane) render(v *mainView) *framed {
	r := p.r
	inner, h := r.w-2, r.h-2
	lines := make([]string, 0, h)
	lines = append(lines, p.tabsLine(v, inner))
	body := h - 1
	var c registry.ChannelInfo
	ok := !v.sel.IsZero()
	if ok {
		c, ok = v.state.Channel(v.sel)
	}
	if !ok {
		lines = append(lines, newLine(inner).add(v.st.Muted, "no channel selected — join one with :join presence contact:123").done())
	} else {
		lines = append(lines, p.current().view(v, c, inner, body)...)
	}
	title := "no channel"
	if ok {
		title = c.Name.String() + " · " + chanStatus(&c)
	}
	return box(v.st, r.w, r.h, title, "", v.focused, lines)
}

// scrolled applies a scroll offset to lines cut to h rows.
func scrolled(lines []string, h int, s scroll) []string {
	if int(s) > 0 && len(lines) > h {
		off := min(int(s), len(lines)-h)
		lines = lines[off:]
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return lines
}

// tabsLine renders "1 Messages  2 Presence  3 Retries  4 Info".
func (p *mainPane) tabsLine(v *mainView, w int) string {
	l := newLine(w)
	// Full labels with separators, then without, then short names, so
	// all of them fit a narrow pane.
	var names, short [numTabs]string
	for i, t := range p.tabs[:p.shown] {
		names[i], short[i] = t.names()
	}
	sep := "│"
	full := 0
	for _, n := range names[:p.shown] {
		full += len(n) + 4
	}
	if full+int(p.shown)-1 > w {
		sep = ""
		if full > w {
			names = short
		}
	}
	for t := tab(0); t < p.shown; t++ {
		label := fmt.Sprintf(" %d %s ", t+1, names[t])
		if t == p.tab {
			l.add(v.st.Pane.TabActive, label)
		} else {
			l.add(v.st.Pane.Tab, label)
		}
		if t < p.shown-1 && sep != "" {
			l.add(v.st.Subtle, sep)
		}
	}
	if n := p.current().note(); n != "" {
		l.add(v.st.Muted, n)
	}
	return l.done()
}

// mainView is what the main pane renders from now.
func (m *Model) mainView() *mainView {
	return &mainView{st: m.st, state: &m.state, chData: m.chData, retries: m.retries, frames: m.frames, now: m.now,
		db: m.opts.Database, sel: m.chans.sel, narrow: m.lay.narrow, focused: m.focus == focusMain, r: m.main.r,
		epoch: m.epoch, clock: m.clock, stateGen: m.stateGen, compare: m.opts.Compare != nil, cmp: &m.cmp, cmpGen: m.cmpGen}
}
