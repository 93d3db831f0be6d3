package server

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"

	"rtm/realtime/protocol"
)

// DatabaseBroadcasts is Broadcast from Database, as Supabase Realtime
// delivers it (package rtm/realtime/server/pgrealtime provides one from
// realtime.messages through logical replication). With
// [Config].Broadcasts set:
//
//   - every row Listen hands over reaches the channels joined to its
//     topic: a private row only private channels with broadcast read, a
//     public row only public channels, as a user broadcast with meta
//     {"id": row id} (2.0.0: a user broadcast frame, JSON or binary;
//     1.0.0: the JSON broadcast, binary rows skipped as Supabase skips
//     them). A row over Limits.MaxPayloadSizeKB or over the topic
//     tenant's MaxEventsPerSecond is dropped and logged
//     (UnableToBroadcastChanges);
//   - a private join with config.broadcast.replay {since, limit} gets,
//     right after its join reply and before presence_state, the stored
//     private broadcasts of its topic inserted since since (Unix ms), the
//     newest limit (at most 25, default 25, at least 1), oldest first,
//     with meta {"replayed":true,"id":…}; a replayed row that later
//     arrives live is not delivered again to that channel. A public
//     join with replay is refused with "UnableToReplayMessages: Replay
//     is not allowed for public channels", invalid parameters with
//     "UnableToReplayMessages: Replay params are not valid", a channel
//     without broadcast read with Unauthorized, a failed query with
//     "UnableToReplayMessages: Realtime was unable to replay messages";
//   - a join with config.broadcast.replication_ready true gets the system
//     message "Replication connection established" once Ready reports
//     the stream ready for it, or is shut down with "Replication
//     connection was not established in time" after 60 s.
//
// Without it, private replay joins succeed with nothing to replay (no
// database stores messages), public ones are refused as above, and
// replication_ready is answered at once (there is nothing to wait for).
type DatabaseBroadcasts interface {
	// Listen starts handing rows to deliver, which does not block, and
	// returns what stops it. The server listens from New to Close.
	Listen(deliver func(DatabaseBroadcast)) (stop func())
	// Replay returns the stored private broadcasts of req.Topic inserted
	// at or after req.Since: the newest req.Limit, oldest first.
	Replay(ctx context.Context, req ReplayRequest) ([]DatabaseBroadcast, error)
	// Ready calls ready, on another goroutine and at most once, when
	// every row committed from now on will be handed to Listen's
	// deliver; cancel gives up waiting.
	Ready(ready func()) (cancel func())
}

// DatabaseBroadcast is one row of realtime.messages to deliver.
type DatabaseBroadcast struct {
	// Topic is the sub-topic ("room-1"); Private the row's private flag.
	Topic   string
	Private bool
	// Event is the user event; Payload JSON text, or raw bytes when
	// Binary (realtime.send_binary).
	Event   string
	Payload []byte
	Binary  bool
	// ID is the row's id (meta.id).
	ID string
}

// ReplayRequest asks for the replay of a private join.
type ReplayRequest struct {
	Topic string
	Since time.Time
	Limit int
}

// Replay bounds, as Supabase's (@hard_limit 25), and how long
// replication_ready waits.
const (
	maxReplay               = 25
	replayTimeout           = 5 * time.Second
	replicationReadyTimeout = 60 * time.Second
)

// Replay refusals.
const (
	replayPublic  = "UnableToReplayMessages: Replay is not allowed for public channels"
	replayInvalid = "UnableToReplayMessages: Replay params are not valid"
	replayFailed  = "UnableToReplayMessages: Realtime was unable to replay messages"
)

// listenBroadcasts starts Config.Broadcasts (from New).
func (s *Server) listenBroadcasts() {
	if s.cfg.Broadcasts != nil {
		s.stopBroadcasts = s.cfg.Broadcasts.Listen(s.deliverDatabaseBroadcast)
	}
}

// deliverDatabaseBroadcast fans a row out to its topic's channels.
func (s *Server) deliverDatabaseBroadcast(b DatabaseBroadcast) {
	t := s.lookupTopic(fanKey{private: b.Private, sub: b.Topic})
	if t == nil {
		return
	}
	lim := s.cfg.Limits
	if lim.MaxPayloadSizeKB > 0 && len(b.Payload) > lim.MaxPayloadSizeKB*1000 {
		s.log.Warn("UnableToBroadcastChanges: :payload_size_exceeded", logKeyTopic, t.name, "bytes", len(b.Payload))
		return
	}
	if !s.tenants.allow(topicTenant(b.Topic), rateEvents, s.now(), lim.MaxEventsPerSecond, 1) {
		s.stats.rateLimited.Add(1)
		s.log.Warn("UnableToBroadcastChanges: :too_many_messages", logKeyTopic, t.name)
		return
	}
	m := &protocol.Message{Topic: t.name, Event: protocol.EventBroadcast, Broadcast: &protocol.Broadcast{
		Event: b.Event, Payload: b.Payload, Binary: b.Binary, Meta: replayMeta(false, b.ID)}}
	s.stats.broadcasts.Add(1)
	// Under t.mu, so that a join's replay (sent under it) comes first.
	t.mu.Lock()
	s.fanoutSkipping(t, nil, m, b.ID)
	t.mu.Unlock()
}

// replayMeta is the meta of a database broadcast.
func replayMeta(replayed bool, id string) []byte {
	out := []byte(`{`)
	if replayed {
		out = append(out, `"replayed":true,`...)
	}
	out = append(out, `"id":`...)
	out = protocol.AppendString(out, id)
	return append(out, '}')
}

// replayParams reads config.broadcast.replay of a join payload: present
// reports the key, ok whether since and limit are valid (Supabase:
// integers, since in DateTime's range).
func replayParams(payload []byte) (req ReplayRequest, present, isMap, ok bool) {
	if !bytes.Contains(payload, []byte(`"replay"`)) { // most joins: parse nothing again
		return req, false, false, false
	}
	var p struct {
		Config struct {
			Broadcast struct {
				Replay json.RawMessage `json:"replay"`
			} `json:"broadcast"`
		} `json:"config"`
	}
	if json.Unmarshal(payload, &p) != nil || p.Config.Broadcast.Replay == nil {
		return req, false, false, false
	}
	var r map[string]json.RawMessage
	if json.Unmarshal(p.Config.Broadcast.Replay, &r) != nil || r == nil {
		return req, true, false, false
	}
	since, okSince := jsonInt(r["since"])
	limit := int64(maxReplay)
	if raw, there := r["limit"]; there && !isNull(raw) {
		var okLimit bool
		if limit, okLimit = jsonInt(raw); !okLimit {
			return req, true, true, false
		}
	}
	// DateTime.from_unix's range, in ms.
	if !okSince || since < -377705116800000 || since > 253402300799999 {
		return req, true, true, false
	}
	req.Since = time.UnixMilli(since).UTC()
	req.Limit = int(max(min(limit, maxReplay), 1))
	return req, true, true, true
}

// jsonInt reads a JSON integer literal (no fraction, no exponent).
func jsonInt(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.ContainsAny(raw, ".eE\"") {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		// A bigger integer is out of every range: clamp, then the range
		// check refuses it.
		if f, ferr := strconv.ParseFloat(string(raw), 64); ferr == nil && !math.IsNaN(f) {
			if f > 0 {
				return math.MaxInt64, true
			}
			return math.MinInt64, true
		}
		return 0, false
	}
	return n, true
}

// replayLocked decides and runs a join's replay (c.mu held): rows to
// send after the reply. A refused join is answered here; ok is false
// then.
func (c *conn) replayLocked(m *protocol.Message, sub string, private bool, read *Permissions) (rows []DatabaseBroadcast, ok bool) {
	req, present, isMap, valid := replayParams(m.Payload)
	switch {
	case !present:
		return nil, true
	case !private:
		c.joinError(m, replayPublic)
		return nil, false
	case !isMap:
		return nil, true // Supabase replays only a map
	case read != nil && !read.Broadcast:
		c.joinErrorAfter(m, unauthorizedReason(sub, ""), c.s.cfg.AuthorizationErrorDelay)
		return nil, false
	case !valid:
		c.joinError(m, replayInvalid)
		return nil, false
	case c.s.cfg.Broadcasts == nil:
		return nil, true
	}
	req.Topic = sub
	ctx, cancel := c.authzContext()
	ctx, cancel2 := context.WithTimeout(ctx, replayTimeout)
	rows, err := c.s.cfg.Broadcasts.Replay(ctx, req)
	cancel2()
	cancel()
	if err != nil {
		c.log.Error("UnableToReplayMessages", logKeyTopic, m.Topic, logKeyErr, err)
		c.joinError(m, replayFailed)
		return nil, false
	}
	if len(rows) > maxReplay {
		rows = rows[len(rows)-maxReplay:]
	}
	return rows, true
}

// replayedIDs is the set of ids a channel replayed (nil: none).
func replayedIDs(rows []DatabaseBroadcast) map[string]bool {
	if len(rows) == 0 {
		return nil
	}
	ids := make(map[string]bool, len(rows))
	for _, r := range rows {
		ids[r.ID] = true
	}
	return ids
}

// sendReplayLocked queues a join's replayed rows (c.mu and ch.t.mu
// held): JSON rows as channel pushes (the channel's join_ref), binary
// rows as user broadcast frames to 2.0.0 sockets only.
func (c *conn) sendReplayLocked(ch *channel, rows []DatabaseBroadcast) {
	for _, r := range rows {
		meta := replayMeta(true, r.ID)
		if r.Binary {
			if c.vsn == protocol.V2 {
				c.sendMsg(&protocol.Message{Topic: ch.topic, Event: protocol.EventBroadcast,
					Broadcast: &protocol.Broadcast{Event: r.Event, Payload: r.Payload, Binary: true, Meta: meta}})
			}
			continue
		}
		p := []byte(`{"payload":`)
		p = append(p, r.Payload...)
		p = append(p, `,"event":`...)
		p = protocol.AppendString(p, r.Event)
		p = append(p, `,"type":"broadcast","meta":`...)
		p = append(p, meta...)
		p = append(p, '}')
		c.sendMsg(&protocol.Message{JoinRef: ch.joinRef, Topic: ch.topic, Event: protocol.EventBroadcast, Payload: p})
	}
}

// awaitReplicationLocked answers config.broadcast.replication_ready of a
// join (c.mu held): the system message once Config.Broadcasts is ready,
// or the shutdown after replicationReadyTimeout.
func (c *conn) awaitReplicationLocked(ch *channel, payload []byte) {
	if !bytes.Contains(payload, []byte(`"replication_ready"`)) {
		return
	}
	var p struct {
		Config struct {
			Broadcast struct {
				ReplicationReady protocol.FlexBool `json:"replication_ready"`
			} `json:"broadcast"`
		} `json:"config"`
	}
	if json.Unmarshal(payload, &p) != nil || !p.Config.Broadcast.ReplicationReady {
		return
	}
	const established = "Replication connection established"
	src := c.s.cfg.Broadcasts
	if src == nil {
		c.sendSystem(ch, "system", protocol.StatusOK, established)
		return
	}
	var once sync.Once
	var mu sync.Mutex
	var stopTimer func() bool
	cancel := src.Ready(func() {
		once.Do(func() {
			mu.Lock()
			if stopTimer != nil {
				stopTimer()
			}
			mu.Unlock()
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.channels[ch.topic] == ch {
				c.sendSystem(ch, "system", protocol.StatusOK, established)
			}
		})
	})
	mu.Lock()
	defer mu.Unlock()
	stopTimer = c.s.afterFunc(replicationReadyTimeout, func() {
		once.Do(func() {
			cancel()
			c.shutdownIfCurrent(ch, "Replication connection was not established in time")
		})
	})
}
