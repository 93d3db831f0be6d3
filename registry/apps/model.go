package apps

import (
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
)

var _ proxy.Observer = (*Model)(nil)

// Model is the model of the apps' Realtime traffic seen through the
// proxy. It implements [proxy.Observer]; it is safe for concurrent use
// and its Observer methods never block (bounded work under one lock,
// events dropped when a subscriber is full).
type Model struct {
	opt Options

	mu      sync.Mutex
	sockets map[uint64]*socket
	order   []*socket // by open, open and kept closed ones
	closed  int       // closed sockets in order
	flags   []Flag
	restLog []RESTRequest // the last REST broadcasts (rest.go)
	stats   Stats
	bytes   int // the message and presence bytes kept, against MaxBytes
	subs    map[*Subscription]struct{}
	// version counts the changes to what Snapshot returns.
	version uint64
}

// Version numbers the state: it changes whenever Snapshot would return
// something else, so a UI reads the (deep-copied) Snapshot only when it
// moved.
func (m *Model) Version() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version
}

// socket is the state of one app socket.
type socket struct {
	s            Socket // Channels unused: see chans
	vsn          protocol.Version
	chans        map[string]*channel
	corder       []*channel
	hb           map[string]time.Time // heartbeat ref -> push time
	prev         *socket              // the socket this one replaced, if kept
	next         bool                 // a later socket was linked to this one
	limitFlagged bool
	// frozenFrom and frozenUntil are the proxy's last Freeze of the
	// socket (zero: none, or thawed).
	frozenFrom, frozenUntil time.Time
	// faulted is true once a fault that ends a socket (drop, close,
	// freeze, expire_token) acted on it: its end is the fault's, not
	// the app's (no never_left).
	faulted bool
	// expCheck is the earliest token expiry of its channels not yet
	// flagged (zero: none).
	expCheck time.Time
}

// New returns an empty model.
func New(opt Options) *Model {
	return &Model{
		opt:     opt.withDefaults(),
		sockets: make(map[uint64]*socket),
		subs:    make(map[*Subscription]struct{}),
	}
}

// Open implements [proxy.Observer]: a new app socket.
func (m *Model) Open(ci proxy.ConnInfo) {
	q, _ := url.ParseQuery(ci.RawQuery)
	m.open(ci, tokenInfo(socketToken(q, ci.Header)))
}

// open opens the socket of ci whose token reads tok (read from ci by
// Open, from a recording by Apply: the recorded ConnInfo is masked).
func (m *Model) open(ci proxy.ConnInfo, tok TokenInfo) {
	q, _ := url.ParseQuery(ci.RawQuery)
	vsn, err := protocol.ParseVersion(q.Get("vsn"))
	if err != nil {
		vsn = protocol.V1
	}
	s := &socket{
		s: Socket{
			ID:         ci.ID,
			RemoteAddr: clip(ci.RemoteAddr, 256),
			ClientInfo: clip(mask.Text(ci.Header.Get("X-Client-Info")), 256),
			Vsn:        vsn.String(),
			Upstream:   clip(ci.Upstream, 512),
			Token:      tok,
			Opened:     ci.Opened,
			Connection: ci.ID,
			Attempt:    1,
		},
		vsn:   vsn,
		chans: make(map[string]*channel),
		hb:    make(map[string]time.Time),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	if _, dup := m.sockets[ci.ID]; dup || len(m.order)-m.closed >= m.opt.MaxOpenSockets {
		m.stats.SocketsDropped++
		return
	}
	if p := m.linkable(s); p != nil {
		p.next = true
		s.prev = p
		s.s.Connection, s.s.Attempt, s.s.Previous = p.s.Connection, p.s.Attempt+1, p.s.ID
		s.s.ReconnectDelay = ci.Opened.Sub(p.lost(ci.Opened))
	}
	m.sockets[ci.ID] = s
	m.order = append(m.order, s)
	m.publish(Event{Type: TypeSocket, Time: ci.Opened, Socket: ci.ID, Action: "open",
		RemoteAddr: s.s.RemoteAddr, ClientInfo: s.s.ClientInfo, Vsn: s.s.Vsn,
		Token: tok.Masked, Role: tok.Role, Subject: tok.Subject, Expiry: expiryText(tok.Expiry),
		Connection: s.s.Connection, Attempt: s.s.Attempt, DelayMS: ms(s.s.ReconnectDelay)})
}

// linkable returns the socket that s continues, the one lost latest
// (see lost) within the window before s opened, with the same client
// info and token subject, not already continued.
func (m *Model) linkable(s *socket) *socket {
	var best *socket
	var bestLost time.Time
	for _, p := range m.order {
		if p.next || p.s.ClientInfo != s.s.ClientInfo || p.s.Token.Subject != s.s.Token.Subject {
			continue
		}
		lost := p.lost(s.s.Opened)
		if lost.IsZero() {
			continue
		}
		if d := s.s.Opened.Sub(lost); d < 0 || d > m.opt.ReconnectWindow {
			continue
		}
		if best == nil || lost.After(bestLost) {
			best, bestLost = p, lost
		}
	}
	return best
}

// lost is when the app lost socket p, as of now: its close, or, while
// the proxy holds it frozen, the freeze's start (the app gives up on a
// frozen socket when its heartbeat goes unanswered and may connect
// again before the freeze ends and its close is relayed); zero when p
// is open and not frozen.
func (p *socket) lost(now time.Time) time.Time {
	switch {
	case !p.s.Closed.IsZero():
		return p.s.Closed
	case !p.frozenFrom.IsZero() && now.Before(p.frozenUntil):
		return p.frozenFrom
	}
	return time.Time{}
}

// Closed implements [proxy.Observer]: an app socket ended.
func (m *Model) Closed(c proxy.Closed) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	s := m.sockets[c.Conn]
	if s == nil || !s.s.Closed.IsZero() {
		m.stats.UnknownSocket++
		return
	}
	m.checkExpiry(s, c.Time)
	s.s.Closed, s.s.CloseCode, s.s.CloseReason = c.Time, c.Code, clip(mask.Text(c.Reason), 256)
	switch c.By {
	case proxy.FromApp:
		s.s.ClosedBy = "app"
	case proxy.ToApp:
		s.s.ClosedBy = "upstream"
	default:
		s.s.ClosedBy = "proxy"
	}
	// Only the app's own close says it never left: a socket the
	// upstream or the proxy ended, or that a fault ended (a frozen
	// socket the app's heartbeat timeout closed included), gave the app
	// no chance to leave.
	appEnded := s.s.ClosedBy == "app" && !s.faulted
	for _, ch := range s.corder {
		if ch.c.Status != StatusJoined && ch.c.Status != StatusJoining {
			continue
		}
		if ch.c.Status == StatusJoined && appEnded {
			m.flag(Flag{Kind: FlagNeverLeft, Time: c.Time, Socket: s.s.ID, Topic: ch.c.Topic,
				Text: fmt.Sprintf("%s was joined and never left when socket %d closed", ch.c.Topic, s.s.ID)})
		}
		m.setStatus(s, ch, c.Time, StatusClosed, "socket closed")
	}
	m.publish(Event{Type: TypeSocket, Time: c.Time, Socket: s.s.ID, Action: "close",
		Code: c.Code, Reason: s.s.CloseReason, ClosedBy: s.s.ClosedBy,
		Connection: s.s.Connection, Attempt: s.s.Attempt})
	m.closed++
	for m.closed > m.opt.MaxClosedSockets {
		m.evictClosed()
	}
}

// evictClosed forgets the oldest closed socket.
func (m *Model) evictClosed() {
	i := slices.IndexFunc(m.order, func(s *socket) bool { return !s.s.Closed.IsZero() })
	old := m.order[i]
	m.order = slices.Delete(m.order, i, i+1)
	delete(m.sockets, old.s.ID)
	for _, ch := range old.corder {
		m.bytes -= ch.ringBytes + ch.presenceBytes
	}
	for _, s := range m.order {
		if s.prev == old {
			s.prev = nil
		}
	}
	m.closed--
	m.stats.SocketsDropped++
}

// Frame implements [proxy.Observer]: one relayed frame. It is decoded
// before the lock is taken.
func (m *Model) Frame(f proxy.Frame) { m.frame(f, len(f.Data), nil) }

// frame handles f, size bytes on the wire; pre, when set, is the token
// of a join or access_token push in f read before f was masked (a
// recording's frame), used instead of reading f's.
func (m *Model) frame(f proxy.Frame, size int, pre *TokenInfo) {
	m.mu.Lock()
	m.version++
	m.stats.Frames++
	s := m.sockets[f.Conn]
	if s == nil || !s.s.Closed.IsZero() {
		m.stats.UnknownSocket++
		m.mu.Unlock()
		return
	}
	vsn := s.vsn
	m.mu.Unlock()

	var msg protocol.Message
	var err error
	if f.Dir == proxy.FromApp {
		msg, err = vsn.DecodeClient(f.Data, f.Binary)
	} else {
		msg, err = vsn.DecodeServer(f.Data, f.Binary)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	if !s.s.Closed.IsZero() {
		return // closed meanwhile (an Observer called out of order)
	}
	if f.Dir == proxy.FromApp {
		s.s.FramesFromApp++
		s.s.BytesFromApp += uint64(size)
	} else {
		s.s.FramesToApp++
		s.s.BytesToApp += uint64(size)
	}
	if err != nil {
		s.s.Undecodable++
		m.stats.Undecodable++
		return
	}
	m.checkExpiry(s, f.Time)
	if msg.Topic == protocol.PhoenixTopic {
		m.heartbeat(s, f, &msg)
		return
	}
	m.channelFrame(s, f, &msg, size, pre)
}

// Tick flags the tokens expired by now with no refresh seen, on the
// sockets that sent nothing since they expired; a proxy calls it
// periodically (every second is plenty).
func (m *Model) Tick(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before := len(m.flags) + int(m.stats.FlagsDropped)
	for _, s := range m.order {
		if s.s.Closed.IsZero() {
			m.checkExpiry(s, now)
		}
	}
	if len(m.flags)+int(m.stats.FlagsDropped) != before {
		m.version++
	}
}

// heartbeat times the app's heartbeats against their replies.
func (m *Model) heartbeat(s *socket, f proxy.Frame, msg *protocol.Message) {
	switch {
	case f.Dir == proxy.FromApp && msg.Event == protocol.EventHeartbeat:
		if len(s.hb) >= maxPendingHeartbeats {
			clear(s.hb)
		}
		s.hb[clip(msg.Ref, 64)] = f.Time
	case f.Dir == proxy.ToApp && msg.Event == protocol.EventReply:
		if t, ok := s.hb[msg.Ref]; ok {
			delete(s.hb, msg.Ref)
			s.s.HeartbeatRTT = f.Time.Sub(t)
			s.s.Heartbeats++
		}
	}
}

// flag records and publishes a finding (m.mu held).
func (m *Model) flag(fl Flag) {
	if len(m.flags) >= m.opt.MaxFlags {
		m.stats.FlagsDropped++
	} else {
		m.flags = append(m.flags, fl)
	}
	m.publish(Event{Type: TypeFlag, Time: fl.Time, Socket: fl.Socket, Topic: fl.Topic, Flag: fl.Kind, Text: fl.Text})
}

// checkExpiry flags the channels of s whose token expired by now with
// no refresh seen.
func (m *Model) checkExpiry(s *socket, now time.Time) {
	if s.expCheck.IsZero() || now.Before(s.expCheck) {
		return
	}
	s.expCheck = time.Time{}
	for _, ch := range s.corder {
		exp := ch.c.Token.Expiry
		if ch.expFlagged || exp.IsZero() || (ch.c.Status != StatusJoined && ch.c.Status != StatusJoining) {
			continue
		}
		if now.Before(exp) {
			s.noteExpiry(exp)
			continue
		}
		ch.expFlagged = true
		m.flag(Flag{Kind: FlagTokenExpired, Time: now, Socket: s.s.ID, Topic: ch.c.Topic,
			Text: fmt.Sprintf("the token of %s expired at %s with no refresh seen", ch.c.Topic, expiryText(exp))})
	}
}

// noteExpiry makes exp a time to check.
func (s *socket) noteExpiry(exp time.Time) {
	if !exp.IsZero() && (s.expCheck.IsZero() || exp.Before(s.expCheck)) {
		s.expCheck = exp
	}
}

// Stats returns the model's counters.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.Bytes = m.bytes
	return st
}

// Snapshot returns a deep copy of the model.
func (m *Model) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := Snapshot{Sockets: make([]Socket, 0, len(m.order)), Flags: slices.Clone(m.flags), Stats: m.stats}
	snap.Stats.Bytes = m.bytes
	for _, s := range m.order {
		c := s.s
		c.Channels = make([]Channel, 0, len(s.corder))
		for _, ch := range s.corder {
			c.Channels = append(c.Channels, ch.snapshot())
		}
		snap.Sockets = append(snap.Sockets, c)
	}
	for _, r := range m.restLog {
		r.Messages = slices.Clone(r.Messages)
		snap.REST = append(snap.REST, r)
	}
	return snap
}
