package tui

import (
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// This file applies the bridge's batches to the model's data: the
// state, the buffers of each channel, the retry events, raw frames and
// log records. Each change bumps the version its panes' cache keys read
// (a ring's Seq, chansGen, stateGen), never a pane's cache itself.

// msgEntry is one message of a channel.
type msgEntry struct {
	ev  registry.MessageEvent
	seq uint64
}

// rawFrame is a raw presence frame (presence_state, presence_diff).
type rawFrame struct {
	time  time.Time
	event string
	text  string
}

// chanData holds the buffers of one channel.
type chanData struct {
	msgs *Ring[msgEntry]
	feed *Ring[registry.PresenceEvent]
	raw  *Ring[rawFrame]
	// cur is the selected message (follow keeps the newest selected).
	cur cursor
	// lastSeen is when the channel was last in the registry.
	lastSeen time.Time
	// doctor is the last doctor run on the channel (nil: none).
	doctor *doctorResult
}

// logEntry is one log record.
type logEntry struct {
	rec   registry.LogRecord
	local bool // logged by the UI itself
	seq   uint64
	// match caches the filter result for filter generation matchGen.
	matchGen uint64
	match    bool
}

// applyBatch applies events and a snapshot from the bridge to the
// identity they are of (a dropped identity's late batch is ignored).
func (m *Model) applyBatch(b EventsBatchMsg) tea.Cmd {
	i := 0
	if b.Identity != "" {
		if i = m.identityIndex(b.Identity); i < 0 {
			return nil
		}
	}
	var (
		cmd          tea.Cmd
		chansChanged bool
	)
	m.withIdentity(i, func() { cmd, chansChanged = m.applyEvents(b) })
	if chansChanged {
		m.rebuildRows()
		m.cache.footer.valid = false // the actions follow the channel (track/untrack, doctor)
	}
	m.sampleReplay()
	m.cache.header.valid = false // the header shows the state of every batch
	return cmd
}

// applyEvents applies a batch to the active identity's data; it reports
// whether the channels changed.
func (m *Model) applyEvents(b EventsBatchMsg) (cmd tea.Cmd, chansChanged bool) {
	for _, ev := range b.Events {
		if m.opts.Replay != nil && m.opts.Replay.IsRewind(ev) {
			m.clearHistory()
		}
		switch e := ev.(type) {
		case registry.MessageEvent:
			m.addMessage(e)
		case registry.MessageBatchEvent:
			// A subscription with MessageBatches (or a recording of one).
			for _, me := range e.Messages {
				m.addMessage(me)
			}
		case registry.LogEvent:
			if m.multi() {
				// Whose socket logged it: the log pane is shared.
				e.Record.Attrs = append(slices.Clip(e.Record.Attrs), registry.LogAttr{Key: "identity", Value: m.activeName()})
			}
			m.log.add(e.Record, false)
		case registry.RetryEvent:
			m.retries.Push(e)
		case registry.PresenceEvent:
			m.applyPresence(e)
		case registry.FrameEvent:
			m.frames.Push(keepFrame(e, m.opts.Preview))
			if (e.Event == "presence_state" || e.Event == "presence_diff") && !e.Channel.IsZero() {
				m.data(e.Channel).raw.Push(rawFrame{time: e.Time, event: e.Event, text: clipKept(e.Text, rawPreview)})
			}
		case registry.ErrorEvent:
			cmd = m.showError(e)
		case registry.ChannelStateEvent:
			m.applyChannel(e)
			chansChanged = true
		case registry.SocketEvent:
			s := &m.state.Socket
			s.Status, s.Reason = e.Status, e.Reason
			if e.RTT > 0 {
				s.RTT = e.RTT
			}
			s.Attempt, s.NextAttemptAt = e.Attempt, e.NextAttemptAt
			m.stateGen++
		case registry.StatsEvent:
			if e.Stats.Limit != m.state.Stats.Limit {
				m.chansGen++ // the pane's title shows it
			}
			m.state.Stats, m.state.Metrics = e.Stats, e.Metrics
		case registry.TokenEvent:
			m.state.Token = e.Token
			m.stateGen++
		}
	}
	m.dropped = b.Dropped
	if b.State != nil {
		m.state = *b.State
		m.haveState = true
		chansChanged = true
	}
	return cmd, chansChanged
}

// addMessage stores a copy of a message, cut to the preview, in its
// channel's ring.
func (m *Model) addMessage(e registry.MessageEvent) {
	d := m.data(e.Channel)
	if e.Kind == registry.MessagePresenceState || e.Kind == registry.MessagePresenceDiff {
		text := e.Preview
		if !e.Truncated {
			text = string(e.Payload[:min(len(e.Payload), rawPreview)])
		}
		d.raw.Push(rawFrame{time: e.Time, event: string(e.Kind), text: text})
	}
	d.msgs.Push(msgEntry{ev: keepMessage(e, m.opts.Preview), seq: d.msgs.Seq() + 1})
	if d.cur.follow {
		d.cur.seq = d.msgs.Seq()
	}
}

// applyPresence updates the presence cache and feed. The users of a
// channel are sorted by id and updated in place (the state is the
// model's own copy of a snapshot): an event costs a binary search, not a
// copy of every user.
func (m *Model) applyPresence(e registry.PresenceEvent) {
	d := m.data(e.Channel)
	if e.Action == registry.PresenceJoin || e.Action == registry.PresenceLeave {
		d.feed.Push(e)
		if m.state.Presence == nil {
			m.state.Presence = map[registry.Name][]registry.PresenceUser{}
		}
		users := m.state.Presence[e.Channel]
		i, found := slices.BinarySearchFunc(users, e.User.UserID, func(u registry.PresenceUser, id string) int {
			return strings.Compare(u.UserID, id)
		})
		switch {
		case e.Action == registry.PresenceLeave && e.User.Metas <= 0:
			if found {
				users = slices.Delete(users, i, i+1)
			}
		case found:
			users[i] = e.User
		default:
			users = slices.Insert(users, i, e.User)
		}
		m.state.Presence[e.Channel] = users
	}
	for i := range m.state.Channels {
		if m.state.Channels[i].Name == e.Channel {
			m.state.Channels[i].PresenceCount = e.Count
			m.state.Channels[i].PresenceTruncated = e.Truncated
			m.chansGen++
		}
	}
	m.stateGen++
}

// applyChannel merges a channel state event into the state.
func (m *Model) applyChannel(e registry.ChannelStateEvent) {
	chs := m.state.Channels
	i := slices.IndexFunc(chs, func(c registry.ChannelInfo) bool { return c.Name == e.Channel })
	switch {
	case e.Removed:
		if i >= 0 {
			m.state.Channels = slices.Delete(slices.Clone(chs), i, i+1)
		}
	case i >= 0:
		chs = slices.Clone(chs)
		chs[i] = e.Info
		m.state.Channels = chs
	default:
		chs = append(slices.Clone(chs), e.Info)
		slices.SortFunc(chs, func(a, b registry.ChannelInfo) int { return a.Name.Compare(b.Name) })
		m.state.Channels = chs
	}
}

// data returns the buffers of a channel, creating them.
func (m *Model) data(n registry.Name) *chanData {
	d, ok := m.chData[n]
	if !ok {
		if len(m.chData) >= maxChannelData {
			m.pruneChannelData()
		}
		d = &chanData{
			msgs: NewSizedRing(m.opts.MessageRing, m.opts.MessageBytes, msgEntryBytes),
			feed: NewSizedRing(m.opts.FeedRing, m.opts.FeedBytes, feedBytes),
			raw:  NewSizedRing(100, rawBytes, rawFrameBytes),
			cur:  cursor{follow: true},
		}
		m.chData[n] = d
	}
	d.lastSeen = m.now
	return d
}

// pruneChannelData drops the buffers of a quarter of the channels, those
// least recently seen (channels no longer in the registry first), so that
// memory stays bounded and the cost of pruning is spread over many new
// channels.
func (m *Model) pruneChannelData() {
	live := make(map[registry.Name]bool, len(m.state.Channels))
	for _, c := range m.state.Channels {
		live[c.Name] = true
	}
	names := make([]registry.Name, 0, len(m.chData))
	for n := range m.chData {
		if n != m.chans.sel || m.chans.selID != m.activeName() {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b registry.Name) int {
		if live[a] != live[b] {
			if live[a] {
				return 1
			}
			return -1
		}
		return m.chData[a].lastSeen.Compare(m.chData[b].lastSeen)
	})
	for _, n := range names[:min(len(names), maxChannelData/4)] {
		delete(m.chData, n)
	}
}
