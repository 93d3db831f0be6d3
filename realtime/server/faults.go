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
	// Meta is what this channel tracks (with phx_ref), or null.
	Meta json.RawMessage `json:"meta"`
	// PostgresChanges are the bindings with their ids, as in the join reply.
	PostgresChanges []json.RawMessage `json:"postgres_changes,omitempty"`
}

// TopicInfo describes one fan-out group: a topic's public or private
// channels and its presence.
type TopicInfo struct {
	Topic       string `json:"topic"`
	Private     bool   `json:"private"`
	Subscribers int    `json:"subscribers"`
	// Presence is the topic's presence_state payload.
	Presence json.RawMessage `json:"presence"`
}

// Conns lists the open sockets and their channels, sorted by id.
func (s *Server) Conns() []ConnInfo {
	conns := s.connList()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
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
				info.Meta = append(json.RawMessage(nil), m...)
			}
			ch.t.mu.Unlock()
			ci.Channels = append(ci.Channels, info)
		}
		c.mu.Unlock()
		sort.Slice(ci.Channels, func(i, j int) bool { return ci.Channels[i].Topic < ci.Channels[j].Topic })
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return connSeqOf(out[i].ID) < connSeqOf(out[j].ID) })
	return out
}

func connSeqOf(id string) int {
	var n int
	_, _ = fmt.Sscanf(strings.TrimPrefix(id, "conn-"), "%d", &n)
	return n
}

// Topics lists the fan-out groups with their subscribers and presence.
func (s *Server) Topics() []TopicInfo {
	ts := s.allTopics()
	out := make([]TopicInfo, 0, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		info := TopicInfo{Topic: t.name, Private: t.key.private, Subscribers: len(t.subscribers()),
			Presence: t.presenceStateLocked()}
		t.mu.Unlock()
		out = append(out, info)
	}
	return out
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
