package registry

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"rtm/realtime/protocol"
)

// presenceCache is the presence of one channel: presence key -> metas, as
// the client's presence sync computed them (phoenix's syncState and
// syncDiff), plus when each key was first seen. It is not safe for
// concurrent use; the manager guards it.
type presenceCache struct {
	users map[string]*presenceEntry
	// resyncing is set while a recreated channel (new presence key or
	// filters) has not synced yet: its fresh client state re-announces
	// everyone, and only real differences may become events.
	resyncing bool
}

type presenceEntry struct {
	metas     []protocol.PresenceMeta
	firstSeen time.Time
}

func newPresenceCache() *presenceCache {
	return &presenceCache{users: map[string]*presenceEntry{}}
}

// join applies a join of metas joined for key, given the key's metas
// before the join (current), and returns the user after it.
func (c *presenceCache) join(key string, current, joined []protocol.PresenceMeta, now time.Time) PresenceUser {
	e := c.users[key]
	if e == nil {
		e = &presenceEntry{firstSeen: now}
		c.users[key] = e
	}
	metas := make([]protocol.PresenceMeta, 0, len(current)+len(joined))
	for _, m := range current {
		if !slices.ContainsFunc(joined, func(j protocol.PresenceMeta) bool { return j.Ref == m.Ref }) {
			metas = append(metas, m)
		}
	}
	e.metas = append(metas, joined...)
	return e.user(key)
}

// leave applies a leave of key, given the metas that remain, and returns
// the user as it was (with Metas = len(remaining)) and whether the key is
// gone.
func (c *presenceCache) leave(key string, remaining []protocol.PresenceMeta) (PresenceUser, bool) {
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
	e.metas = append(e.metas[:0:0], remaining...)
	u.Metas = len(remaining)
	return u, false
}

// reconcile makes the cache equal to state (the client's presence state
// after a sync), keeping when keys were first seen. It makes the cache
// converge even if join or leave events were lost.
func (c *presenceCache) reconcile(state map[string][]protocol.PresenceMeta, now time.Time) {
	for k := range c.users {
		if _, ok := state[k]; !ok {
			delete(c.users, k)
		}
	}
	for k, metas := range state {
		e := c.users[k]
		if e == nil {
			e = &presenceEntry{firstSeen: now}
			c.users[k] = e
		}
		e.metas = append(e.metas[:0:0], metas...)
	}
}

// reset forgets everything (the channel left).
func (c *presenceCache) reset() {
	clear(c.users)
	c.resyncing = false
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

// user derives the presence user of a key from its metas: the latest
// meta gives the name and payload, the first one "online_at".
func (e *presenceEntry) user(key string) PresenceUser {
	u := PresenceUser{UserID: key, Metas: len(e.metas), OnlineSince: e.firstSeen}
	if len(e.metas) == 0 {
		return u
	}
	latest := e.metas[len(e.metas)-1]
	u.Payload = latest.UserFields()
	var fields struct {
		Name     any `json:"name"`
		OnlineAt any `json:"online_at"`
	}
	if json.Unmarshal(u.Payload, &fields) == nil {
		if s, ok := fields.Name.(string); ok {
			u.Name = s
		}
	}
	var first struct {
		OnlineAt any `json:"online_at"`
	}
	if json.Unmarshal(e.metas[0].Raw, &first) == nil {
		if t, ok := parseOnlineAt(first.OnlineAt); ok {
			u.OnlineSince = t
		}
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
