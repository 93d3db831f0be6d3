package tui

import (
	"context"

	tea "charm.land/bubbletea/v2"

	"rtm/registry/compare"
)

// This file feeds the Compare tab (tab_compare.go) from
// [Options.Compare]: what each identity on the selected topic received
// and the messages one received that another did not. The comparer is
// fed by the identities' bridges (BridgeOptions.Observe); the UI ages
// it (Tick, which may check a row's RLS verdict in the database) and
// reads the selected topic's columns and differences in a Cmd on the
// clock's tick, and when the tab opens on another topic; never in
// Update or View.

// Comparer is what the Compare tab reads: *compare.Comparer of package
// registry/compare.
type Comparer interface {
	// Tick decides the messages whose window passed (the live
	// differences); it may query the database (the RLS verdicts).
	Tick(ctx context.Context) []compare.Difference
	// Columns returns what each identity holding topic received.
	Columns(topic string) []compare.Column
	// Differences returns the last differences on topic, oldest first,
	// and how many there were in all.
	Differences(topic string) ([]compare.Difference, int)
}

// compareData is the last reading of the comparer for one topic.
type compareData struct {
	topic string
	cols  []compare.Column
	diffs []compare.Difference
	total int
}

// compareMsg is a reading of the comparer.
type compareMsg struct {
	data compareData
}

// compareTopic returns the topic the Compare tab shows ("" when it is
// not open or no channel is selected).
func (m *Model) compareTopic() string {
	if m.opts.Compare == nil || !m.multi() || m.main.tab != tabCompare || m.chans.sel.IsZero() {
		return ""
	}
	return m.chans.sel.String()
}

// compareCmd ages the comparer and reads topic ("" ages only). One
// runs at a time; a tick while one runs is skipped.
func (m *Model) compareCmd(topic string) tea.Cmd {
	if m.opts.Compare == nil || !m.multi() || m.cmpBusy {
		return nil
	}
	m.cmpBusy = true
	c, parent, timeout := m.opts.Compare, m.opts.Context, m.opts.ActionTimeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		c.Tick(ctx)
		d := compareData{topic: topic}
		if topic != "" {
			d.cols = c.Columns(topic)
			d.diffs, d.total = c.Differences(topic)
		}
		return compareMsg{data: d}
	}
}

// compareDone stores a reading.
func (m *Model) compareDone(msg compareMsg) tea.Cmd {
	m.cmpBusy = false
	if msg.data.topic != "" {
		m.cmp = msg.data
		m.cmpGen++
	}
	if t := m.compareTopic(); t != "" && t != m.cmp.topic {
		return m.compareCmd(t) // the selection moved meanwhile
	}
	return nil
}

// compareIfStale reads the comparer when the Compare tab shows a topic
// it has not read yet (after a key changed the tab or the channel).
func (m *Model) compareIfStale() tea.Cmd {
	if t := m.compareTopic(); t != "" && t != m.cmp.topic {
		return m.compareCmd(t)
	}
	return nil
}
