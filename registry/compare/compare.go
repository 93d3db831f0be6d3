package compare

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
	"rtm/registry/clock"
)

// The defaults of [Options].
const (
	DefaultWindow          = 5 * time.Second
	DefaultFaultWindow     = 2 * time.Second
	DefaultMaxTopics       = 64
	DefaultMaxIdentities   = 16
	DefaultMaxPending      = 1000
	DefaultMaxPendingBytes = 1 << 20
	DefaultMaxValueBytes   = 4 << 10
	DefaultMaxEvents       = 128
	DefaultMaxMembers      = 1000
	DefaultMaxDifferences  = 256
	// maxTransitions is how many status changes of a channel are kept
	// to tell whether it was joined at a message's time.
	maxTransitions = 32
	// maxFaults is how many faults are kept per identity.
	maxFaults = 32
)

// OtherEvent counts the events over Options.MaxEvents in a [Column].
const OtherEvent = "other"

// Reason says why an identity did not receive a message.
type Reason string

// The reasons, in the order they are tried.
const (
	ReasonTenant    Reason = "another tenant"
	ReasonPrivate   Reason = "refused by a private-channel policy"
	ReasonFault     Reason = "dropped by a fault"
	ReasonNotJoined Reason = "not joined yet"
	ReasonRLS       Reason = "filtered by RLS"
	ReasonUnknown   Reason = "unknown"
)

// Identity is one of the identities compared.
type Identity struct {
	// Name names it in every result ("alice", "anon", "jwt1").
	Name string
	// User is the token's subject ("" for none), Role its role ("anon"
	// for the API key alone).
	User, Role string
	// Tenant is the token's tenant_id claim ("" for none).
	Tenant string
	// Claims is the token's claims as JSON, for a [RowChecker] (nil:
	// {"role":Role,"sub":User}).
	Claims json.RawMessage
}

// Verdict is a [RowChecker]'s answer for one row and identity.
type Verdict struct {
	// Visible is true when the identity may see the row.
	Visible bool
	// Detail says why (the policies that hide it).
	Detail string
}

// RowChecker tells whether an identity may see a row of a table under
// row-level security. Package main adapts the postgres_changes doctor
// (realtime/server/pgcdc/doctor.RowVerdict) to it.
type RowChecker interface {
	RowVerdict(ctx context.Context, who Identity, schema, table string, record json.RawMessage) (Verdict, error)
}

// Options configures a [Comparer]. Zero values take the defaults.
type Options struct {
	// Clock tells the time (nil: the real clock).
	Clock clock.Clock
	// Window is how long an unmatched message waits for the other
	// identities (default 5 s).
	Window time.Duration
	// FaultWindow is how long before a message a fault on the missing
	// identity explains it (default 2 s).
	FaultWindow time.Duration
	// Rows checks row-level security for postgres changes (nil: RLS is
	// never given as a reason).
	Rows RowChecker
	// Bounds; see the package doc.
	MaxTopics, MaxIdentities                   int
	MaxPending, MaxPendingBytes, MaxValueBytes int
	MaxEvents, MaxMembers, MaxDifferences      int
}

// Difference is a message A received (or sent, see [Comparer.Sent])
// and B did not.
type Difference struct {
	// Time is when A received it.
	Time time.Time `json:"time"`
	// Topic is the channel name.
	Topic string `json:"topic"`
	// A received (or sent) the message; B (MissingFrom) did not.
	A           string `json:"a"`
	B           string `json:"b"`
	MissingFrom string `json:"missing_from"`
	// Message is the normalized message (masked; its value cut to
	// Options.MaxValueBytes, then Truncated is set).
	Message   Message `json:"message"`
	Truncated bool    `json:"truncated,omitempty"`
	// Reason says why, Detail adds what rtm knows (the server's reason,
	// the RLS verdict, the fault).
	Reason Reason `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// Column is what one identity received on one topic.
type Column struct {
	Identity string `json:"identity"`
	// Status is its channel's status ("" when it does not hold the
	// topic); JoinError its last join error (the server's reason).
	Status    registry.Status `json:"status,omitempty"`
	JoinError string          `json:"join_error,omitempty"`
	// Total counts the messages; Events per event, Kinds per kind.
	Total  int            `json:"total"`
	Events map[string]int `json:"events"`
	Kinds  map[string]int `json:"kinds"`
	// Members are the presence keys it sees, sorted.
	Members []string `json:"members"`
	// Sent counts the broadcasts it sent ([Comparer.Sent]).
	Sent int `json:"sent,omitempty"`
	// Missing counts the differences where it is MissingFrom.
	Missing int `json:"missing"`
}

// Comparer compares what identities receive. It is safe for concurrent
// use.
type Comparer struct {
	o Options

	mu         sync.Mutex
	identities map[string]*ident
	order      []string
	topics     map[string]*topic
	topicOrder []string
	out        []Difference // decided, not yet returned by Tick
	dropped    uint64       // topics or identities over their caps
}

type ident struct {
	Identity
	faults []faultAt
}

type faultAt struct {
	at      time.Time
	channel string // "" for the socket
	what    string
}

type transition struct {
	at        time.Time
	connected bool
}

type holder struct {
	status      registry.Status
	joinError   string
	private     bool
	transitions []transition
	since       time.Time // its first channel state
	total       int
	events      map[string]int
	kinds       map[string]int
	members     map[string]int // presence key: metas seen joined and not left
	sent        int
	self        bool
	missing     int
	pending     int
	bytes       int
}

type entry struct {
	key       [sha256.Size]byte
	msg       Message
	truncated bool
	at        time.Time
	from      string
	got       map[string]bool
	size      int
	done      bool
}

type topic struct {
	name    string
	holders map[string]*holder
	pending []*entry // by arrival
	index   map[[sha256.Size]byte][]*entry
	diffs   []Difference // ring of the last MaxDifferences
	total   int
}

// New returns a Comparer.
func New(o Options) *Comparer {
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.FaultWindow <= 0 {
		o.FaultWindow = DefaultFaultWindow
	}
	def(&o.MaxTopics, DefaultMaxTopics)
	def(&o.MaxIdentities, DefaultMaxIdentities)
	def(&o.MaxPending, DefaultMaxPending)
	def(&o.MaxPendingBytes, DefaultMaxPendingBytes)
	def(&o.MaxValueBytes, DefaultMaxValueBytes)
	def(&o.MaxEvents, DefaultMaxEvents)
	def(&o.MaxMembers, DefaultMaxMembers)
	def(&o.MaxDifferences, DefaultMaxDifferences)
	return &Comparer{o: o, identities: map[string]*ident{}, topics: map[string]*topic{}}
}

// AddIdentity adds (or updates) an identity. It reports false when
// MaxIdentities are already compared.
func (c *Comparer) AddIdentity(id Identity) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.identities[id.Name]; ok {
		old.Identity = id
		return true
	}
	if len(c.identities) >= c.o.MaxIdentities {
		c.dropped++
		return false
	}
	c.identities[id.Name] = &ident{Identity: id}
	c.order = append(c.order, id.Name)
	return true
}

// Channel records a status of identity's channel topic at time at:
// joinError is the server's reason when the join was refused (the
// channel's LastError), private whether it is a private channel. The
// identity holds the topic from then on, until removed is true.
func (c *Comparer) Channel(identity, topicName string, status registry.Status, joinError string, private, removed bool, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if removed {
		if t := c.topics[topicName]; t != nil {
			delete(t.holders, identity)
			c.settleLocked(t)
		}
		return
	}
	h := c.holderLocked(identity, topicName)
	if h == nil {
		return
	}
	if h.since.IsZero() {
		h.since = at
	}
	h.status = status
	h.private = private
	if joinError != "" || status == registry.StatusConnected {
		h.joinError = joinError
	}
	connected := status == registry.StatusConnected
	if n := len(h.transitions); n == 0 || h.transitions[n-1].connected != connected {
		if n >= maxTransitions {
			h.transitions = append(h.transitions[:0], h.transitions[1:]...)
		}
		h.transitions = append(h.transitions, transition{at: at, connected: connected})
	}
}

// Fault records a fault injected on identity's socket (channel "") or
// on one of its channels at time at; what describes it.
func (c *Comparer) Fault(identity, channel, what string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.identities[identity]
	if id == nil {
		return
	}
	if len(id.faults) >= maxFaults {
		id.faults = append(id.faults[:0], id.faults[1:]...)
	}
	id.faults = append(id.faults, faultAt{at: at, channel: channel, what: what})
}

// Received records that identity received m at time at. An identity
// that was not added, or a topic over MaxTopics, is ignored. Messages
// that are not compared ([Compared] false: presence, system messages,
// replies) are counted in the identity's [Column] (and presence follows
// its members) but never make a difference.
func (c *Comparer) Received(identity string, m Message, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.holderLocked(identity, m.Channel)
	if h == nil {
		return
	}
	h.total++
	ev := m.Event
	if _, ok := h.events[ev]; !ok && len(h.events) >= c.o.MaxEvents {
		ev = OtherEvent
	}
	h.events[ev]++
	kind := m.Kind()
	if _, ok := h.kinds[kind]; !ok && len(h.kinds) >= c.o.MaxEvents {
		kind = OtherEvent
	}
	h.kinds[kind]++
	c.presenceLocked(h, m)
	if Compared(m) {
		c.matchLocked(identity, h, m, at, false)
	}
}

// Sent records that identity sent the broadcast m at time at (its
// manager's outbound message). Unless identity's channel echoes its
// own broadcasts (the channel's config self, from [Comparer.Observe]'s
// channel states), the server never sends it back: the sender counts
// as having it, so that it is not reported missing from the sender,
// and the others holding the topic are expected to receive it. With
// self the echo is a message like any other (a missing echo is a
// difference) and Sent only counts it.
func (c *Comparer) Sent(identity string, m Message, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.holderLocked(identity, m.Channel)
	if h == nil {
		return
	}
	h.sent++
	if !h.self && Compared(m) {
		c.matchLocked(identity, h, m, at, true)
	}
}

// Compared reports whether m is compared between identities: not
// presence (presence_state, presence_join, presence_leave: a snapshot
// one identity gets where another, joined earlier, got the joins; the
// members are compared in the columns instead), system messages (each
// identity's own join's extensions), replies, errors, closes and
// heartbeats (each socket's own).
func Compared(m Message) bool {
	switch m.Kind() {
	case "presence_state", "presence_join", "presence_leave", protocol.EventPresenceDiff, protocol.EventSystem,
		protocol.EventReply, protocol.EventError, protocol.EventClose, protocol.EventHeartbeat:
		return false
	}
	return true
}

// matchLocked matches m against the messages others received (or
// sent), or queues it for them. The sender of a message is its
// differences' A, whoever was fed first.
func (c *Comparer) matchLocked(identity string, h *holder, m Message, at time.Time, sent bool) {
	t := c.topics[m.Channel]
	key := sha256.Sum256(append([]byte(m.Event+"\x00"), m.Value...))
	for _, e := range t.index[key] {
		// Not one from before identity held the topic: the server sent
		// that one before its join.
		if !e.done && !e.got[identity] && !e.at.Before(h.since) {
			e.got[identity] = true
			if sent {
				e.from = identity
			}
			h.pending++
			h.bytes += e.size
			c.settleLocked(t)
			return
		}
	}
	e := &entry{key: key, at: at, from: identity, got: map[string]bool{identity: true}}
	e.msg = Message{Channel: m.Channel, Event: m.Event, Value: registry.MaskJSON(m.Value)}
	if len(e.msg.Value) > c.o.MaxValueBytes {
		e.msg.Value = JSON(string(e.msg.Value[:c.o.MaxValueBytes]))
		e.truncated = true
	}
	e.size = len(e.msg.Value) + len(e.msg.Event) + 64
	t.pending = append(t.pending, e)
	t.index[key] = append(t.index[key], e)
	h.pending++
	h.bytes += e.size
	// Over a bound: decide the oldest of this identity's now.
	for h.pending > c.o.MaxPending || h.bytes > c.o.MaxPendingBytes {
		old := c.oldestOfLocked(t, identity)
		if old == nil {
			break
		}
		c.decideLocked(t, old)
	}
	c.settleLocked(t)
}

// presenceLocked follows the presence keys h sees: a key is present
// while it has metas joined and not left (one Message per meta), so
// that a diff leaving a key's old meta and joining its new one (a peer
// that tracked again, or reconnected) keeps it, as Phoenix does.
func (c *Comparer) presenceLocked(h *holder, m Message) {
	var item struct {
		Key string `json:"key"`
	}
	switch m.Event {
	case "presence_state", "presence_join":
		if json.Unmarshal(m.Value, &item) == nil && item.Key != "" {
			if _, ok := h.members[item.Key]; ok || len(h.members) < c.o.MaxMembers {
				h.members[item.Key]++
			}
		}
	case "presence_leave":
		if json.Unmarshal(m.Value, &item) == nil {
			if h.members[item.Key]--; h.members[item.Key] <= 0 {
				delete(h.members, item.Key)
			}
		}
	}
}

// ResetPresence forgets the presence keys identity sees on topic (a
// presence_state replaces them all; [Comparer.Observe] calls it).
func (c *Comparer) ResetPresence(identity, topicName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[topicName]; t != nil {
		if h := t.holders[identity]; h != nil {
			clear(h.members)
		}
	}
}

func (c *Comparer) holderLocked(identity, topicName string) *holder {
	if c.identities[identity] == nil {
		return nil
	}
	t := c.topics[topicName]
	if t == nil {
		if len(c.topics) >= c.o.MaxTopics {
			c.dropped++
			return nil
		}
		t = &topic{name: topicName, holders: map[string]*holder{}, index: map[[sha256.Size]byte][]*entry{}}
		c.topics[topicName] = t
		c.topicOrder = append(c.topicOrder, topicName)
	}
	h := t.holders[identity]
	if h == nil {
		h = &holder{events: map[string]int{}, kinds: map[string]int{}, members: map[string]int{}}
		t.holders[identity] = h
	}
	return h
}

func (c *Comparer) oldestOfLocked(t *topic, identity string) *entry {
	for _, e := range t.pending {
		if !e.done && e.got[identity] {
			return e
		}
	}
	return nil
}

// settleLocked removes the entries every holder received once their
// window passed (an identity that starts holding the topic within it is
// expected too: "not joined yet"), and the decided ones, from the queue
// and the index.
func (c *Comparer) settleLocked(t *topic) {
	now := c.o.Clock.Now()
	for _, e := range t.pending {
		if !e.done && now.Sub(e.at) >= c.o.Window && completeLocked(t, e) {
			c.finishLocked(t, e)
		}
	}
	n := 0
	for _, e := range t.pending {
		if !e.done {
			t.pending[n] = e
			n++
		}
	}
	clear(t.pending[n:])
	t.pending = t.pending[:n]
}

// completeLocked reports whether every holder of t has e.
func completeLocked(t *topic, e *entry) bool {
	for name := range t.holders {
		if !e.got[name] {
			return false
		}
	}
	return true
}

func (c *Comparer) finishLocked(t *topic, e *entry) {
	e.done = true
	for name := range e.got {
		if h := t.holders[name]; h != nil {
			h.pending--
			h.bytes -= e.size
		}
	}
	list := t.index[e.key]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.index, e.key)
	} else {
		t.index[e.key] = list
	}
}
