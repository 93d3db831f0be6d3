package server

import (
	"crypto/sha256"
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"

	"rtm/realtime/protocol"
)

// fanKey names a fan-out group: public and private channels of one
// sub-topic are separate groups, as in Supabase ("<tenant>:<sub>" and
// "<tenant>-private:<sub>").
type fanKey struct {
	private bool
	sub     string
}

// topic is one fan-out group: its subscribers and its presences.
//
// Subscribers are a copy-on-write slice read without locks by fan-out;
// membership changes and presence happen under mu, which is also held
// while presence frames are queued, so every subscriber sees its
// presence_state before the diffs that follow it.
type topic struct {
	key  fanKey
	name string // the wire topic, "realtime:" + sub

	subs atomic.Pointer[[]*channel]

	mu       sync.Mutex
	presence map[string][]*presenceEntry // presence key -> metas in track order
	dead     bool                        // removed from the registry
}

// presenceEntry is the meta one channel tracks under its presence key.
// The meta is the only copy of the tracked object the server keeps; sent
// identifies the object as it was sent, to detect no-op re-tracks.
type presenceEntry struct {
	ch   *channel
	meta protocol.PresenceMeta
	sent sentSum
	cost int // bytes charged to the presence budgets (presenceCost)
}

// sentSum identifies a tracked object by its bytes as sent: their length
// and SHA-256. A re-track is a no-op (no diff, as Supabase's
// :no_payload_change) when its bytes are those of the tracked object,
// which the sum tells without keeping the bytes.
type sentSum struct {
	n   int
	sum [sha256.Size]byte
}

func sumOf(meta []byte) sentSum { return sentSum{n: len(meta), sum: sha256.Sum256(meta)} }

func (t *topic) subscribers() []*channel {
	if p := t.subs.Load(); p != nil {
		return *p
	}
	return nil
}

// addLocked adds ch to the subscribers (t.mu held).
func (t *topic) addLocked(ch *channel) {
	old := t.subscribers()
	next := make([]*channel, len(old), len(old)+1)
	copy(next, old)
	next = append(next, ch)
	t.subs.Store(&next)
}

// removeLocked removes ch from the subscribers (t.mu held).
func (t *topic) removeLocked(ch *channel) bool {
	old := t.subscribers()
	for i, c := range old {
		if c == ch {
			next := make([]*channel, 0, len(old)-1)
			next = append(next, old[:i]...)
			next = append(next, old[i+1:]...)
			if len(next) == 0 {
				t.subs.Store(nil)
			} else {
				t.subs.Store(&next)
			}
			return true
		}
	}
	return false
}

// acquireTopic returns the live topic for key with t.mu held, creating it
// when needed.
func (s *Server) acquireTopic(key fanKey) *topic {
	for {
		s.regMu.Lock()
		t := s.topics[key]
		if t == nil {
			t = &topic{key: key, name: protocol.Topic(key.sub)}
			s.topics[key] = t
		}
		s.regMu.Unlock()
		t.mu.Lock()
		if !t.dead {
			return t
		}
		t.mu.Unlock()
	}
}

// lookupTopic returns the topic for key, or nil.
func (s *Server) lookupTopic(key fanKey) *topic {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	return s.topics[key]
}

// releaseTopic drops t from the registry when nobody is subscribed or
// present any more.
func (s *Server) releaseTopic(t *topic) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || len(t.subscribers()) > 0 || len(t.presence) > 0 {
		return
	}
	t.dead = true
	if s.topics[t.key] == t {
		delete(s.topics, t.key)
	}
}

// allTopics returns a snapshot of the registry.
func (s *Server) allTopics() []*topic {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	out := make([]*topic, 0, len(s.topics))
	for _, t := range s.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key.sub != out[j].key.sub {
			return out[i].key.sub < out[j].key.sub
		}
		return !out[i].key.private
	})
	return out
}

// fanout delivers m to every subscriber of t except skip, encoding it at
// most once per serializer. It never blocks: each frame is queued on the
// subscriber's connection. It returns the number of deliveries.
func (s *Server) fanout(t *topic, skip *channel, m *protocol.Message) int {
	return s.fanoutSkipping(t, skip, m, "")
}

// fanoutSkipping is fanout that also skips the channels that replayed
// the database broadcast replayedID (when not "").
func (s *Server) fanoutSkipping(t *topic, skip *channel, m *protocol.Message, replayedID string) int {
	var frames [3][]byte // indexed by protocol.Version
	var failed [3]bool
	n := 0
	for _, ch := range t.subscribers() {
		if ch == skip || !ch.receives(m.Event) || (replayedID != "" && ch.replayed[replayedID]) {
			continue
		}
		v := ch.c.vsn
		f := frames[v]
		if f == nil {
			if failed[v] {
				continue
			}
			var err error
			if f, err = encodeFrame(v, m); err != nil {
				// A raw binary broadcast has no 1.0.0 form: V1
				// subscribers do not receive it, as in Supabase.
				failed[v] = true
				continue
			}
			frames[v] = f
		}
		ch.c.send(f)
		n++
	}
	s.stats.deliveries.Add(uint64(n))
	return n
}

// presenceStateLocked encodes the presence_state payload of t (t.mu held).
func (t *topic) presenceStateLocked() []byte {
	keys := make([]string, 0, len(t.presence))
	for k := range t.presence {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = protocol.AppendString(out, k)
		out = append(out, `:{"metas":[`...)
		for j, e := range t.presence[k] {
			if j > 0 {
				out = append(out, ',')
			}
			out = append(out, e.meta.Raw...)
		}
		out = append(out, "]}"...)
	}
	return append(out, '}')
}

// presenceDiff encodes a presence_diff payload with at most one key on
// each side.
func presenceDiff(key string, joins, leaves []protocol.PresenceMeta) []byte {
	side := func(out []byte, metas []protocol.PresenceMeta) []byte {
		out = append(out, '{')
		if len(metas) > 0 {
			out = protocol.AppendString(out, key)
			out = append(out, `:{"metas":[`...)
			for i, m := range metas {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, m.Raw...)
			}
			out = append(out, "]}"...)
		}
		return append(out, '}')
	}
	out := []byte(`{"joins":`)
	out = side(out, joins)
	out = append(out, `,"leaves":`...)
	out = side(out, leaves)
	return append(out, '}')
}

// sendDiffLocked fans a presence diff out to every subscriber (t.mu held).
func (s *Server) sendDiffLocked(t *topic, key string, joins, leaves []protocol.PresenceMeta) {
	payload := presenceDiff(key, joins, leaves)
	s.fanout(t, nil, &protocol.Message{Topic: t.name, Event: protocol.EventPresenceDiff, Payload: payload})
}

// trackResult is what a track did.
type trackResult int

const (
	trackNoop trackResult = iota
	trackJoined
	trackUpdated
)

// entryOfLocked returns the presence entry of ch, or nil (t.mu held).
func (t *topic) entryOfLocked(ch *channel) *presenceEntry {
	for _, e := range t.presence[ch.presenceKey] {
		if e.ch == ch {
			return e
		}
	}
	return nil
}

// trackLocked tracks meta (a JSON object whose sentSum is sent) for ch
// under its presence key and sends the diff (t.mu and ch.c.mu held).
// reply, if not nil, is queued on ch before the diff. A track that would
// exceed a presence budget changes nothing and returns a
// *presenceBudgetError.
func (s *Server) trackLocked(t *topic, ch *channel, meta []byte, sent sentSum, reply func()) (trackResult, error) {
	key := ch.presenceKey
	found := t.entryOfLocked(ch)
	if found != nil && found.sent == sent {
		if reply != nil {
			reply()
		}
		return trackNoop, nil
	}
	prev := ""
	if found != nil {
		prev = found.meta.Ref
	}
	pm, err := protocol.NewPresenceMeta(meta, s.newRef(), prev)
	if err != nil {
		return trackNoop, err
	}
	cost := presenceCost(key, pm)
	delta := cost
	if found != nil {
		delta -= found.cost
	}
	if err := s.chargePresence(ch.c, delta); err != nil {
		return trackNoop, err
	}
	if reply != nil {
		reply()
	}
	if found != nil {
		old := found.meta
		found.meta, found.sent, found.cost = pm, sent, cost
		s.sendDiffLocked(t, key, []protocol.PresenceMeta{pm}, []protocol.PresenceMeta{old})
		return trackUpdated, nil
	}
	if t.presence == nil {
		t.presence = make(map[string][]*presenceEntry)
	}
	t.presence[key] = append(t.presence[key], &presenceEntry{ch: ch, meta: pm, sent: sent, cost: cost})
	s.stats.presences.Add(1)
	s.sendDiffLocked(t, key, []protocol.PresenceMeta{pm}, nil)
	return trackJoined, nil
}

// untrackLocked removes ch's presence, releases its budget and sends the
// leave diff to the remaining subscribers (t.mu and ch.c.mu held). It
// reports whether ch was present.
func (s *Server) untrackLocked(t *topic, ch *channel) bool {
	key := ch.presenceKey
	entries := t.presence[key]
	for i, e := range entries {
		if e.ch != ch {
			continue
		}
		rest := append(entries[:i:i], entries[i+1:]...)
		if len(rest) == 0 {
			delete(t.presence, key)
		} else {
			t.presence[key] = rest
		}
		s.stats.presences.Add(^uint64(0))
		s.releasePresence(ch.c, e.cost)
		s.sendDiffLocked(t, key, nil, []protocol.PresenceMeta{e.meta})
		return true
	}
	return false
}

// metaOfLocked returns the meta ch tracks, or nil (t.mu held).
func (t *topic) metaOfLocked(ch *channel) json.RawMessage {
	if e := t.entryOfLocked(ch); e != nil {
		return e.meta.Raw
	}
	return nil
}
