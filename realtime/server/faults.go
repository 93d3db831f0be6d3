package server

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"rtm/realtime/protocol"
)

// ConnInfo describes one open socket.
type ConnInfo struct {
	ID       string        `json:"id"`
	Remote   string        `json:"remote"`
	Vsn      string        `json:"vsn"`
	Role     string        `json:"role"`
	Sub      string        `json:"sub,omitempty"`
	TenantID string        `json:"tenant_id,omitempty"`
	Created  time.Time     `json:"created"`
	Paused   bool          `json:"paused"`
	Channels []ChannelInfo `json:"channels"`
}

// ChannelInfo describes one joined channel of a socket.
type ChannelInfo struct {
	Topic           string    `json:"topic"`
	JoinRef         string    `json:"join_ref"`
	Private         bool      `json:"private"`
	Role            string    `json:"role"`
	TokenExpires    time.Time `json:"token_expires"`
	PresenceKey     string    `json:"presence_key"`
	PresenceEnabled bool      `json:"presence_enabled"`
	// Meta is what this channel tracks (with phx_ref), or null: null too
	// when the listing had no room left for it (see
	// [MaxListedPresenceBytes]), with MetaOmitted set; MetaBytes is its
	// size either way.
	Meta        json.RawMessage `json:"meta"`
	MetaBytes   int             `json:"meta_bytes,omitempty"`
	MetaOmitted bool            `json:"meta_omitted,omitempty"`
	// PostgresChanges are the bindings with their ids, as in the join reply.
	PostgresChanges []json.RawMessage `json:"postgres_changes,omitempty"`
}

// TopicInfo describes one fan-out group: a topic's public or private
// channels and its presence.
type TopicInfo struct {
	Topic       string `json:"topic"`
	Private     bool   `json:"private"`
	Subscribers int    `json:"subscribers"`
	// Presence is the topic's presence_state payload: null when the
	// listing had no room left for it (see [MaxListedPresenceBytes]),
	// with PresenceOmitted set. PresenceKeys and PresenceBytes are its
	// keys and the bytes of its metas either way.
	Presence        json.RawMessage `json:"presence"`
	PresenceKeys    int             `json:"presence_keys"`
	PresenceBytes   int             `json:"presence_bytes"`
	PresenceOmitted bool            `json:"presence_omitted,omitempty"`
}

// Bounds of the listings ([Server.Conns], [Server.Topics] and the
// /admin/connections and /admin/channels replies), so that a listing
// stays small whatever the server holds.
const (
	// MaxListedPresenceBytes bounds the presence one listing copies (the
	// metas of Conns, the presence_state payloads of Topics): a meta or
	// a topic's presence that no longer fits is left out, its size given.
	MaxListedPresenceBytes = 4 << 20
	// MaxListedChannels bounds the channels one /admin/connections reply
	// lists: the sockets after the one that reaches it are left out, and
	// the reply counts them ("total", "listed").
	MaxListedChannels = 10_000
	// MaxListedTopics bounds the topics one /admin/channels reply lists
	// (the first in order; "total" counts them all).
	MaxListedTopics = 10_000
)

// Conns lists the open sockets and their channels, sorted by id. Metas
// beyond [MaxListedPresenceBytes] are left out.
func (s *Server) Conns() []ConnInfo {
	out, _ := s.listConns(0)
	return out
}

// listConns lists the sockets, sorted by id, until maxChannels channels
// are listed (0: all); total is the number of open sockets.
func (s *Server) listConns(maxChannels int) (out []ConnInfo, total int) {
	conns := s.connList()
	sort.Slice(conns, func(i, j int) bool { return connSeqOf(conns[i].id) < connSeqOf(conns[j].id) })
	out = make([]ConnInfo, 0, min(len(conns), 1024))
	presenceLeft, channels := MaxListedPresenceBytes, 0
	for _, c := range conns {
		if maxChannels > 0 && channels >= maxChannels {
			break
		}
		ci := ConnInfo{
			ID: c.id, Remote: c.remote, Vsn: c.vsn.String(), Role: c.claims.Role, Sub: c.claims.Sub,
			TenantID: c.claims.TenantID, Created: c.created, Paused: c.pause.Load() != nil,
			Channels: []ChannelInfo{},
		}
		c.mu.Lock()
		for _, ch := range c.channels {
			info := ChannelInfo{
				Topic: ch.topic, JoinRef: ch.joinRef, Private: ch.private, Role: ch.claims.Role,
				TokenExpires: ch.claims.Expires(), PresenceKey: ch.presenceKey, PresenceEnabled: ch.presenceEnabled,
			}
			resp, _ := joinResponse(ch.bindings)
			var r struct {
				PG []json.RawMessage `json:"postgres_changes"`
			}
			if json.Unmarshal(resp, &r) == nil {
				info.PostgresChanges = r.PG
			}
			ch.t.mu.Lock()
			if m := ch.t.metaOfLocked(ch); m != nil {
				info.MetaBytes = len(m)
				if len(m) <= presenceLeft {
					presenceLeft -= len(m)
					info.Meta = append(json.RawMessage(nil), m...)
				} else {
					info.MetaOmitted = true
				}
			}
			ch.t.mu.Unlock()
			ci.Channels = append(ci.Channels, info)
		}
		c.mu.Unlock()
		channels += len(ci.Channels)
		sort.Slice(ci.Channels, func(i, j int) bool { return ci.Channels[i].Topic < ci.Channels[j].Topic })
		out = append(out, ci)
	}
	return out, len(conns)
}

func connSeqOf(id string) int {
	var n int
	_, _ = fmt.Sscanf(strings.TrimPrefix(id, "conn-"), "%d", &n)
	return n
}

// Topics lists the fan-out groups with their subscribers and presence;
// presence beyond [MaxListedPresenceBytes] is left out.
func (s *Server) Topics() []TopicInfo {
	out, _ := s.listTopics(0)
	return out
}

// listTopics lists at most max fan-out groups (0: all), sorted by topic;
// total is the number of groups.
func (s *Server) listTopics(max int) (out []TopicInfo, total int) {
	ts := s.allTopics()
	total = len(ts)
	if max > 0 && len(ts) > max {
		ts = ts[:max]
	}
	out = make([]TopicInfo, 0, len(ts))
	left := MaxListedPresenceBytes
	for _, t := range ts {
		t.mu.Lock()
		info := TopicInfo{Topic: t.name, Private: t.key.private, Subscribers: len(t.subscribers()),
			PresenceKeys: len(t.presence), PresenceBytes: t.presenceSizeLocked()}
		if size := t.presenceStateSizeLocked(); size <= left {
			left -= size
			info.Presence = t.presenceStateLocked()
		} else {
			info.PresenceOmitted = true
		}
		t.mu.Unlock()
		out = append(out, info)
	}
	return out, total
}

// presenceStateSizeLocked returns the size of t's presence_state payload
// (t.mu held): what presenceStateLocked would encode, without encoding
// it.
func (t *topic) presenceStateSizeLocked() int {
	n := 2 // {}
	for k, entries := range t.presence {
		n += len(protocol.AppendString(nil, k)) + len(`:{"metas":[]},`)
		for _, e := range entries {
			n += len(e.meta.Raw) + 1
		}
	}
	return n
}

// Drop closes the given sockets abruptly (no close frame, as a network
// failure would), or every socket when no id is given. It returns how
// many were dropped.
func (s *Server) Drop(ids ...string) int {
	var victims []*conn
	if len(ids) == 0 {
		victims = s.connList()
	} else {
		s.connMu.Lock()
		for _, id := range ids {
			if c := s.conns[id]; c != nil {
				victims = append(victims, c)
			}
		}
		s.connMu.Unlock()
	}
	n := 0
	for _, c := range victims {
		if c.kill() { // not one already on its way out
			c.log.Info("Dropped socket")
			n++
		}
	}
	s.stats.drops.Add(uint64(n))
	return n
}

// KickMode is how [Server.Kick] ends a channel.
type KickMode int

const (
	// KickError sends phx_error: the client sees CHANNEL_ERROR and
	// rejoins.
	KickError KickMode = iota
	// KickClose sends phx_close: the client sees CLOSED and does not
	// rejoin.
	KickClose
)

// String returns "error" or "close".
func (m KickMode) String() string {
	switch m {
	case KickError:
		return "error"
	case KickClose:
		return "close"
	}
	return fmt.Sprintf("KickMode(%d)", int(m))
}

// ParseKickMode parses "error" or "close".
func ParseKickMode(s string) (KickMode, error) {
	switch s {
	case "error", "":
		return KickError, nil
	case "close":
		return KickClose, nil
	}
	return 0, fmt.Errorf("server: kick mode %q (want error or close)", s)
}

// Kick ends every channel on topic ("realtime:room1" or "room1"; public
// and private) with phx_error or phx_close, as if the server-side
// channel had crashed or been shut down. Its presences leave. It returns
// how many channels were kicked.
func (s *Server) Kick(topic string, mode KickMode) int {
	sub := protocol.SubTopic(topic)
	event := protocol.EventError
	if mode == KickClose {
		event = protocol.EventClose
	}
	n := 0
	for _, private := range []bool{false, true} {
		t := s.lookupTopic(fanKey{private: private, sub: sub})
		if t == nil {
			continue
		}
		for _, ch := range t.subscribers() {
			c := ch.c
			c.mu.Lock()
			if c.channels[ch.topic] == ch {
				c.log.Info("Kicking channel", logKeyTopic, ch.topic, "mode", mode.String())
				c.closeChannelLocked(ch, event)
				n++
			}
			c.mu.Unlock()
		}
	}
	s.stats.kicks.Add(uint64(n))
	return n
}

// RejectJoins refuses joins as r says; the zero Rejection stops refusing.
func (s *Server) RejectJoins(r Rejection) {
	s.log.Info("Rejecting joins", "count", r.Count, "for", r.For, logKeyReason, r.Reason)
	s.rejections.set(r, s.now())
}

// Pause freezes a socket for d: the server neither reads its frames nor
// writes to it (heartbeats go unanswered, as on a half-open connection),
// then resumes. Frames queued meanwhile count against the outbound
// queue.
func (s *Server) Pause(id string, d time.Duration) error {
	s.connMu.Lock()
	c := s.conns[id]
	s.connMu.Unlock()
	if c == nil {
		return fmt.Errorf("server: pause: no connection %q", id)
	}
	if d <= 0 {
		return fmt.Errorf("server: pause: duration %v must be positive", d)
	}
	ch := make(chan struct{})
	c.pause.Store(&ch)
	c.log.Info("Pausing socket", "for", d)
	s.afterFunc(d, func() {
		c.pause.CompareAndSwap(&ch, nil)
		close(ch)
		select { // wake the writer for what was queued meanwhile
		case c.wake <- struct{}{}:
		default:
		}
	})
	return nil
}

// Broadcast sends a broadcast to the public channels of topic
// ("realtime:room1" or "room1") as the REST batch API does: a JSON
// broadcast {"payload":…,"event":…,"type":"broadcast"}. payload must be
// a JSON object. It returns the number of deliveries.
func (s *Server) Broadcast(topic, event string, payload json.RawMessage) int {
	return s.broadcastJSON(protocol.SubTopic(topic), false, event, payload, nil)
}

// BroadcastPrivate is Broadcast to the private channels of topic.
func (s *Server) BroadcastPrivate(topic, event string, payload json.RawMessage) int {
	return s.broadcastJSON(protocol.SubTopic(topic), true, event, payload, nil)
}

// broadcastJSON fans a JSON broadcast out to one fan-out group.
func (s *Server) broadcastJSON(sub string, private bool, event string, payload, id json.RawMessage) int {
	if !protocol.IsObject(payload) {
		payload = json.RawMessage("{}")
	}
	body := []byte(`{"payload":`)
	body = append(body, payload...)
	body = append(body, `,"event":`...)
	body = protocol.AppendString(body, event)
	body = append(body, `,"type":"broadcast"`...)
	if len(id) > 0 {
		body = append(body, `,"meta":{"id":`...)
		body = append(body, id...)
		body = append(body, '}')
	}
	body = append(body, '}')
	return s.broadcastTo(sub, private, &protocol.Message{Topic: protocol.Topic(sub), Event: protocol.EventBroadcast, Payload: body})
}

// broadcastTo fans m out to the group of sub, if it exists.
func (s *Server) broadcastTo(sub string, private bool, m *protocol.Message) int {
	s.stats.broadcasts.Add(1)
	t := s.lookupTopic(fanKey{private: private, sub: sub})
	if t == nil {
		return 0
	}
	return s.fanout(t, nil, m)
}
