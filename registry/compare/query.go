package compare

import "sort"

// Differences returns the last differences of topic (at most
// MaxDifferences, oldest first) and how many there were in all.
func (c *Comparer) Differences(topicName string) ([]Difference, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topicName]
	if t == nil {
		return nil, 0
	}
	return append([]Difference(nil), t.diffs...), t.total
}

// Topics returns the topics seen, in the order first seen.
func (c *Comparer) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.topicOrder...)
}

// Columns returns what each identity holding topic received, in the
// order the identities were added.
func (c *Comparer) Columns(topicName string) []Column {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topicName]
	if t == nil {
		return nil
	}
	var out []Column
	for _, name := range c.order {
		h := t.holders[name]
		if h == nil {
			continue
		}
		col := Column{Identity: name, Status: h.status, JoinError: h.joinError, Total: h.total,
			Events: maps(h.events), Kinds: maps(h.kinds), Members: []string{}, Sent: h.sent, Missing: h.missing}
		for k := range h.members {
			col.Members = append(col.Members, k)
		}
		sort.Strings(col.Members)
		out = append(out, col)
	}
	return out
}

// Pending returns how many unmatched messages topic holds (not yet
// received by every identity holding it).
func (c *Comparer) Pending(topicName string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if t := c.topics[topicName]; t != nil {
		for _, e := range t.pending {
			if !e.done && !completeLocked(t, e) {
				n++
			}
		}
	}
	return n
}

// Dropped counts the topics and identities refused by MaxTopics and
// MaxIdentities, and the differences lost because Tick was not called
// while more than MaxDifferences×MaxTopics waited for it.
func (c *Comparer) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
