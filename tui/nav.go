package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// navMove is a navigation key decoded once for every list: a step of
// delta rows (negative: up), or a jump to the top or the bottom. Each
// list applies it to its own cursor ([cursor], [scroll], the channels'
// selection).
type navMove struct {
	delta       int
	top, bottom bool
}

// navKey decodes the navigation keys (up, down, page up, page down, top,
// bottom) with page rows to a page; ok is false for other keys.
func navKey(msg tea.KeyPressMsg, k KeyMap, page int) (mv navMove, ok bool) {
	switch {
	case key.Matches(msg, k.Up):
		return navMove{delta: -1}, true
	case key.Matches(msg, k.Down):
		return navMove{delta: 1}, true
	case key.Matches(msg, k.PageUp):
		return navMove{delta: -page}, true
	case key.Matches(msg, k.PageDown):
		return navMove{delta: page}, true
	case key.Matches(msg, k.Top):
		return navMove{top: true}, true
	case key.Matches(msg, k.Bottom):
		return navMove{bottom: true}, true
	}
	return navMove{}, false
}

// maxScroll bounds a [scroll]: "bottom" scrolls this far and the view
// clamps it to its content.
const maxScroll = 1 << 20

// scroll is the offset of a viewport over lines that the view clamps to
// its content (the presence, retries and info tabs, the doctor dialog).
type scroll int

// apply moves the offset.
func (s *scroll) apply(mv navMove) {
	switch {
	case mv.top:
		*s = 0
	case mv.bottom:
		*s = maxScroll
	default:
		*s = min(max(0, *s+scroll(mv.delta)), maxScroll)
	}
}

// cursor is a position in a ring of numbered entries ([Ring.Seq]): the
// entry numbered seq, or the newest while follow is set (the selected
// message, the newest visible log record).
type cursor struct {
	seq    uint64
	follow bool
}

// index returns the cursor's index in a ring of n entries (-1 when
// empty), indexOf mapping a seq to its index ([Ring.Index]).
func (c *cursor) index(n int, indexOf func(uint64) int) int {
	if n == 0 {
		return -1
	}
	if c.follow {
		return n - 1
	}
	return indexOf(c.seq)
}

// step moves the cursor by delta entries that match over a ring of n
// entries (seqAt giving an entry's seq): moving pauses follow, and
// moving down onto the newest entry resumes it.
func (c *cursor) step(n int, indexOf func(uint64) int, seqAt func(int) uint64, delta int, matches func(int) bool) {
	if n == 0 {
		return
	}
	i := stepMatching(c.index(n, indexOf), n, delta, matches)
	c.seq = seqAt(i)
	c.follow = delta > 0 && i == n-1
}
