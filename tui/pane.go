package tui

// filterable is a pane with a "/" filter (the channels, the main
// pane's messages, the log).
type filterable interface {
	// filterText returns the filter as typed.
	filterText() string
	// setFilter sets a filter typed in the filter input.
	setFilter(f filter)
	// clearFilter drops the filter (esc).
	clearFilter()
}

// paneCache keeps a pane's last render and the key it was rendered
// from: a comparable value of everything the render reads (the
// versions of its data — a ring's Seq and Len, the state's generation —
// its own scroll, selection and filter, its size, focus and styles, and
// the model's epoch). A pane renders again only when its key changed,
// so nothing has to remember to invalidate it.
type paneCache[K comparable] struct {
	key K
	f   *framed
	ok  bool
}

// get returns the cached render for key, rendering it when the key
// changed.
func (c *paneCache[K]) get(key K, render func() *framed) *framed {
	if !c.ok || c.key != key {
		c.f, c.key, c.ok = render(), key, true
	}
	return c.f
}
