package registry

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"rtm/realtime"
	"rtm/realtime/protocol"
)

// presenceCache is the presence of one channel: presence key -> metas, as
// the client's presence sync computed them (phoenix's syncState and
// syncDiff), plus what each key shows (name, online since). The metas
// are the client's own slices (immutable, shared: the cache costs a small
// entry per key, not a copy of the state), set from each event's Metas
// in the client's order, so the cache follows the client's state exactly
// as long as no event is lost; when the client dropped events (a slow
// manager) it is reconciled with the client's state at a sync, at most
// once per an eighth of the keys in events (else at the next stats tick),
// so that reconciling stays proportional to the traffic. It is bounded
// like the client's state: at most max keys (the client's MaxMembers).
// It is not safe for concurrent use; the manager guards it.
type presenceCache struct {
	users map[string]*presenceEntry
	max   int
	// resyncing is set while a recreated channel (new presence key or
	// filters) has not synced yet: its fresh client state re-announces
	// everyone, and only real differences may become events.
	resyncing bool
	// trunc is the client's truncation at the last sync, and refused the
	// keys the cache itself refused beyond max since the last reconcile
	// (none while it follows the client, which holds at most as many).
	trunc   realtime.PresenceTruncation
	refused uint64
	// dropped is the client's drop count when the cache was last
	// reconciled; events counts the joins and leaves applied since; due
	// marks a reconcile put off to the next stats tick.
	dropped uint64
	events  int
	due     bool
}

type presenceEntry struct {
	metas     []protocol.PresenceMeta // the client's; never modified
	firstSeen time.Time
	name      string    // the "name" of the latest meta
	since     time.Time // the "online_at" of the first meta, else firstSeen
}

func newPresenceCache(max int) *presenceCache {
	return &presenceCache{users: map[string]*presenceEntry{}, max: max}
}

// sameMetas reports whether a and b are the same slice of the client's.
func sameMetas(a, b []protocol.PresenceMeta) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// set stores metas (the client's) and derives what the key shows from the
// metas that changed.
func (e *presenceEntry) set(metas []protocol.PresenceMeta) {
	old := e.metas
	e.metas = metas
	if len(metas) == 0 {
		e.name, e.since = "", e.firstSeen
		return
	}
	if last := &metas[len(metas)-1]; len(old) == 0 || last != &old[len(old)-1] {
		var f struct {
			Name any `json:"name"`
		}
		e.name = ""
		if json.Unmarshal(last.Raw, &f) == nil {
			if s, ok := f.Name.(string); ok {
				e.name = s
			}
		}
	}
	if len(old) == 0 || &metas[0] != &old[0] {
		var f struct {
			OnlineAt any `json:"online_at"`
		}
		e.since = e.firstSeen
		if json.Unmarshal(metas[0].Raw, &f) == nil {
			if t, ok := parseOnlineAt(f.OnlineAt); ok {
				e.since = t
			}
		}
	}
}

// entry returns the entry of key, creating it (false when the cache is
// full: the key is refused and counted).
func (c *presenceCache) entry(key string, now time.Time) (*presenceEntry, bool) {
	e := c.users[key]
	if e == nil {
		if len(c.users) >= c.max {
			c.refused++
			return nil, false
		}
		e = &presenceEntry{firstSeen: now, since: now}
		c.users[key] = e
	}
	return e, true
}

// join applies a join to key: metas are the key's metas after it (the
// client's event's Metas). It returns the user after it (false: the key
// was refused).
func (c *presenceCache) join(key string, metas []protocol.PresenceMeta, now time.Time) (PresenceUser, bool) {
	c.events++
	e, ok := c.entry(key, now)
	if !ok {
		return PresenceUser{UserID: key, Metas: len(metas)}, false
	}
	e.set(metas)
	return e.user(key), true
}

// leave applies a leave of key, given the metas that remain, and returns
// the user as it was (with Metas = len(remaining)) and whether the key is
// gone.
func (c *presenceCache) leave(key string, remaining []protocol.PresenceMeta) (PresenceUser, bool) {
	c.events++
	e := c.users[key]
	if e == nil {
		return PresenceUser{UserID: key}, true
	}
	u := e.user(key)
	if len(remaining) == 0 {
		delete(c.users, key)
		u.Metas = 0
		return u, true
	}
	e.set(remaining)
	u.Metas = len(remaining)
	return u, false
}

// needsReconcile reports whether the cache must be reconciled with the
// client's state at a sync, the client having dropped dropped events so
// far: now (a resync, or lost events and enough traffic since the last
// reconcile to pay for it), or later (due, at the next stats tick).
func (c *presenceCache) needsReconcile(dropped uint64) bool {
	if c.resyncing {
		return true
	}
	if dropped == c.dropped && !c.due {
		return false
	}
	if c.events >= len(c.users)/8 {
		return true
	}
	c.due = true
	return false
}

// reconcile makes the cache equal to state (the client's presence state
// after a sync; dropped its drop count), keeping when keys were first
// seen. It makes the cache converge when join or leave events were lost.
func (c *presenceCache) reconcile(state map[string][]protocol.PresenceMeta, dropped uint64, now time.Time) {
	c.dropped, c.events, c.due, c.refused = dropped, 0, false, 0
	for k := range c.users {
		if _, ok := state[k]; !ok {
			delete(c.users, k)
		}
	}
	for k, metas := range state {
		if e, ok := c.entry(k, now); ok && !sameMetas(e.metas, metas) {
			e.set(metas)
		}
	}
}

// truncation returns what the cache lacks: the client's truncation and
// the keys the cache refused itself (nil when complete).
func (c *presenceCache) truncation() *PresenceTruncation {
	t := c.trunc
	if !t.Truncated() && c.refused == 0 {
		return nil
	}
	return &PresenceTruncation{Members: t.Members + c.refused, Metas: t.Metas, Diffs: t.Diffs}
}

// reset forgets everything (the channel left).
func (c *presenceCache) reset() {
	clear(c.users)
	c.resyncing, c.due = false, false
	c.trunc, c.refused, c.dropped, c.events = realtime.PresenceTruncation{}, 0, 0, 0
}

// known reports whether every meta of metas is already cached for key: a
// join that only re-announces what the cache holds.
func (c *presenceCache) known(key string, metas []protocol.PresenceMeta) bool {
	e := c.users[key]
	if e == nil || len(metas) == 0 {
		return false
	}
	for _, m := range metas {
		if !slices.ContainsFunc(e.metas, func(o protocol.PresenceMeta) bool { return o.Ref == m.Ref }) {
			return false
		}
	}
	return true
}

// missing returns the cached keys absent from state, sorted.
func (c *presenceCache) missing(state map[string][]protocol.PresenceMeta) []string {
	var out []string
	for k := range c.users {
		if _, ok := state[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (c *presenceCache) len() int { return len(c.users) }

// list returns the users sorted by user id.
func (c *presenceCache) list(self string) []PresenceUser {
	out := make([]PresenceUser, 0, len(c.users))
	for k, e := range c.users {
		u := e.user(k)
		u.Self = self != "" && k == self
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b PresenceUser) int { return strings.Compare(a.UserID, b.UserID) })
	return out
}

func (c *presenceCache) get(key string) (PresenceUser, bool) {
	e := c.users[key]
	if e == nil {
		return PresenceUser{}, false
	}
	return e.user(key), true
}

// user is the presence user of a key: the latest meta gives the name and
// payload, the first one "online_at".
func (e *presenceEntry) user(key string) PresenceUser {
	u := PresenceUser{UserID: key, Name: e.name, Metas: len(e.metas), OnlineSince: e.since}
	if len(e.metas) > 0 {
		u.Payload = e.metas[len(e.metas)-1].UserFields()
	}
	return u
}

// parseOnlineAt reads an "online_at" value: an RFC 3339 string or a Unix
// time in milliseconds (what JavaScript's Date.now() gives).
func parseOnlineAt(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	case float64:
		if x > 1e11 && x < 1e14 {
			return time.UnixMilli(int64(x)), true
		}
	}
	return time.Time{}, false
}

// trackPayload builds the meta a manager tracks for user: the user's
// payload object with "user_id", "name" (when set) and "online_at" added
// unless present. It returns an error when Payload is not a JSON object.
func trackPayload(user PresenceUser, now time.Time) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(user.Payload) > 0 {
		if err := json.Unmarshal(user.Payload, &m); err != nil || m == nil {
			return nil, &PayloadError{Reason: "presence payload must be a JSON object", Payload: user.Payload}
		}
	}
	set := func(k string, v any) {
		if _, ok := m[k]; !ok {
			b, _ := json.Marshal(v)
			m[k] = b
		}
	}
	if user.UserID != "" {
		set("user_id", user.UserID)
	}
	if user.Name != "" {
		set("name", user.Name)
	}
	at := user.OnlineSince
	if at.IsZero() {
		at = now
	}
	set("online_at", at.UTC().Format(time.RFC3339Nano))
	return json.Marshal(m)
}
