package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/mask"
	"rtm/realtime/protocol"
)

// Faults: the controls of [Proxy] that break what the app sees, as a real
// network or a real Supabase would (doc.go lists each one's wire
// behaviour). Per-socket state lives in the relay (sockState); armed
// counters (failed connects, rejected joins, dropped and duplicated
// messages) and the latency live in the proxy (faultState).

// ErrNoSocket is returned by a fault aimed at a socket that is not open.
var ErrNoSocket = errors.New("proxy: no such socket")

// Fault kinds of [FaultEvent].
const (
	FaultDrop             = "drop"
	FaultClose            = "close"
	FaultFreeze           = "freeze"
	FaultLatency          = "latency"
	FaultFailConnect      = "fail_connect"
	FaultRejectJoin       = "reject_join"
	FaultKick             = "kick"
	FaultExpireToken      = "expire_token"
	FaultDropMessage      = "drop_message"
	FaultDuplicateMessage = "duplicate_message"
)

// FaultEvent is a fault the proxy armed or applied.
type FaultEvent struct {
	// Conn is the ConnInfo.ID of the socket it acted on (0: the proxy as
	// a whole, e.g. a counter armed or a connect refused).
	Conn uint64
	// Time is when it happened.
	Time time.Time
	// Kind is one of the Fault* constants.
	Kind string
	// Armed is true when the fault was armed (a counter set, a latency
	// changed), false when it acted on a socket or an upgrade.
	Armed bool
	// Topic is the channel topic concerned (realtime:...), if any.
	Topic string
	// Detail describes it (code, reason, duration, count), masked.
	Detail string
}

// FaultObserver is an optional interface of Config.Observer: when the
// Observer has it, the proxy reports every fault to it (on the calling
// or the relay goroutine; it returns quickly).
type FaultObserver interface {
	Fault(FaultEvent)
}

// faultState is the proxy-wide fault configuration.
type faultState struct {
	mu           sync.Mutex
	failConnects int
	rejects      map[string]reject
	drops, dups  map[string]int
	latency      time.Duration
	jitter       time.Duration
	// delayed and counting are the pumps' lock-free view: a latency is
	// set; drop or duplicate counters are armed.
	delayed, counting atomic.Bool
}

// kick is a channel the proxy ended: the upstream's answers to its
// leave (the reply to leaveRef, the phx_close of joinRef) are not
// relayed.
type kick struct{ joinRef, leaveRef string }

type reject struct {
	n      int
	reason string
}

// sockState is the per-socket fault state of a relay.
type sockState struct {
	vsn  protocol.Version
	stop chan struct{} // closed when the relay is cut
	once sync.Once
	// appW and upW serialize message writes to the app and the upstream
	// between the pumps and the faults.
	appW, upW sync.Mutex

	mu     sync.Mutex
	frozen atomic.Int64 // UnixNano: nothing relayed before this
	// nkicked is len(kicked), read by the pump without mu.
	nkicked atomic.Int32
	joins   map[string]string // topic -> the app's current join_ref
	kicked  map[string]kick   // topic -> the ended join whose upstream answers are swallowed
	refs    uint64
}

// normTopic accepts "room1" for "realtime:room1".
func normTopic(t string) string {
	if t == "" || t == "phoenix" || strings.HasPrefix(t, protocol.TopicPrefix) {
		return t
	}
	return protocol.TopicPrefix + t
}

func (p *Proxy) fault(ev FaultEvent) {
	ev.Time = p.cfg.Now()
	ev.Detail = mask.Text(ev.Detail)
	p.log.Info("proxy: fault", "kind", ev.Kind, "conn", ev.Conn, "armed", ev.Armed, "topic", ev.Topic, "detail", ev.Detail)
	p.observeFault(ev)
}

// targets returns the open relays of id (0: all of them).
func (p *Proxy) targets(id uint64) ([]*relay, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rs []*relay
	for r := range p.sockets {
		if id == 0 || r.id == id {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: %d", ErrNoSocket, id)
	}
	return rs, nil
}

// Drop cuts both connections of socket id (0: every socket) without a
// close frame: the app sees an abnormal close (1006).
func (p *Proxy) Drop(id uint64) error {
	rs, err := p.targets(id)
	for _, r := range rs {
		p.fault(FaultEvent{Conn: r.id, Kind: FaultDrop})
		r.end(0, websocket.CloseAbnormalClosure, "rtm proxy fault: drop")
		r.cut()
	}
	return err
}

// CloseSocket sends the app of socket id (0: every socket) a close frame
// with code and reason, and the upstream a normal close (1000); each has
// CloseTimeout to answer.
func (p *Proxy) CloseSocket(id uint64, code int, reason string) error {
	rs, err := p.targets(id)
	for _, r := range rs {
		p.fault(FaultEvent{Conn: r.id, Kind: FaultClose, Detail: fmt.Sprintf("%d %s", code, reason)})
		r.end(0, code, reason)
		deadline := time.Now().Add(p.cfg.CloseTimeout)
		_ = r.app.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
		_ = r.up.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
		_ = r.app.SetReadDeadline(deadline)
		_ = r.up.SetReadDeadline(deadline)
	}
	return err
}

// Freeze stops relaying socket id (0: every socket) both ways for d:
// each pump holds the message it has read and reads nothing more, pings
// and pongs are not passed on, so the app's heartbeat goes unanswered.
// A later Freeze replaces the deadline: Freeze(id, 0) thaws the socket.
func (p *Proxy) Freeze(id uint64, d time.Duration) error {
	rs, err := p.targets(id)
	until := time.Now().Add(d)
	for _, r := range rs {
		p.fault(FaultEvent{Conn: r.id, Kind: FaultFreeze, Detail: d.String()})
		r.f.frozen.Store(until.UnixNano())
	}
	return err
}

// SetLatency delays every relayed message, each way, by d plus a random
// part of jitter (uniform in [0, jitter), from Config.Rand); 0, 0 turns
// it off.
func (p *Proxy) SetLatency(d, jitter time.Duration) {
	p.faults.mu.Lock()
	p.faults.latency, p.faults.jitter = max(d, 0), max(jitter, 0)
	p.faults.delayed.Store(d > 0 || jitter > 0)
	p.faults.mu.Unlock()
	p.fault(FaultEvent{Kind: FaultLatency, Armed: true, Detail: fmt.Sprintf("%s +%s", d, jitter)})
}

// FailConnects refuses the next n Realtime upgrades with 503 (before the
// upstream is dialled); 0 disarms it.
func (p *Proxy) FailConnects(n int) {
	p.faults.mu.Lock()
	p.faults.failConnects = max(n, 0)
	p.faults.mu.Unlock()
	p.fault(FaultEvent{Kind: FaultFailConnect, Armed: true, Detail: strconv.Itoa(n)})
}

// RejectJoins answers the app's next n phx_join of topic (on any socket)
// with Supabase's error reply carrying reason, without forwarding them;
// 0 disarms it.
func (p *Proxy) RejectJoins(topic string, n int, reason string) {
	topic = normTopic(topic)
	p.faults.mu.Lock()
	if p.faults.rejects == nil {
		p.faults.rejects = map[string]reject{}
	}
	if n > 0 {
		p.faults.rejects[topic] = reject{n: n, reason: reason}
	} else {
		delete(p.faults.rejects, topic)
	}
	p.faults.mu.Unlock()
	p.fault(FaultEvent{Kind: FaultRejectJoin, Armed: true, Topic: topic, Detail: fmt.Sprintf("%d %s", n, reason)})
}

// DropMessages drops the next n messages the upstream sends to the app
// on topic (any socket); 0 disarms it.
func (p *Proxy) DropMessages(topic string, n int) {
	p.setCounter(&p.faults.drops, FaultDropMessage, topic, n)
}

// DuplicateMessages sends the app the next n messages on topic (any
// socket) twice; 0 disarms it.
func (p *Proxy) DuplicateMessages(topic string, n int) {
	p.setCounter(&p.faults.dups, FaultDuplicateMessage, topic, n)
}

func (p *Proxy) setCounter(m *map[string]int, kind, topic string, n int) {
	topic = normTopic(topic)
	p.faults.mu.Lock()
	if *m == nil {
		*m = map[string]int{}
	}
	if n > 0 {
		(*m)[topic] = n
	} else {
		delete(*m, topic)
	}
	p.faults.counting.Store(len(p.faults.drops)+len(p.faults.dups) > 0)
	p.faults.mu.Unlock()
	p.fault(FaultEvent{Kind: kind, Armed: true, Topic: topic, Detail: strconv.Itoa(n)})
}

// Kick ends the app's channel topic on socket id (0: every socket that
// joined it): phx_error (or phx_close when close is set) to the app with
// the channel's join_ref, and phx_leave upstream, whose answers are not
// relayed (the app rejoins on phx_error; on phx_close it does not).
func (p *Proxy) Kick(id uint64, topic string, close bool) error {
	topic = normTopic(topic)
	rs, err := p.targets(id)
	if err != nil {
		return err
	}
	event := protocol.EventError
	if close {
		event = protocol.EventClose
	}
	n := 0
	for _, r := range rs {
		if r.endChannel(topic, event, nil) {
			n++
			p.fault(FaultEvent{Conn: r.id, Kind: FaultKick, Topic: topic, Detail: event})
		}
	}
	if n == 0 {
		return fmt.Errorf("proxy: kick: %s is not joined on socket %d", topic, id)
	}
	return nil
}

// ExpireToken does what Supabase does when a socket's token expires, to
// every channel of socket id (0: every socket): a system message
// {"extension":"system","status":"error","message":"Token has expired 0
// seconds ago","channel":SUBTOPIC}, then phx_close, to the app; a
// phx_leave upstream (its answers not relayed). The socket stays open.
func (p *Proxy) ExpireToken(id uint64) error {
	rs, err := p.targets(id)
	for _, r := range rs {
		r.f.mu.Lock()
		topics := make([]string, 0, len(r.f.joins))
		for t := range r.f.joins {
			topics = append(topics, t)
		}
		r.f.mu.Unlock()
		p.fault(FaultEvent{Conn: r.id, Kind: FaultExpireToken, Detail: strconv.Itoa(len(topics)) + " channels"})
		for _, t := range topics {
			sys, _ := json.Marshal(protocol.System{Extension: "system", Status: protocol.StatusError, Message: "Token has expired 0 seconds ago", Channel: protocol.SubTopic(t)})
			r.endChannel(t, protocol.EventClose, sys)
		}
	}
	return err
}

// endChannel ends the app's channel topic: an optional system message
// (payload sys), then event to the app; phx_leave upstream. It reports
// whether the topic was joined.
func (r *relay) endChannel(topic, event string, sys json.RawMessage) bool {
	r.f.mu.Lock()
	joinRef, ok := r.f.joins[topic]
	if ok {
		delete(r.f.joins, topic)
		if r.f.kicked == nil {
			r.f.kicked = map[string]kick{}
		}
		r.f.refs++
	}
	ref := "rtm-" + strconv.FormatUint(r.f.refs, 10)
	if ok {
		r.f.kicked[topic] = kick{joinRef: joinRef, leaveRef: ref}
		r.f.nkicked.Store(int32(len(r.f.kicked)))
	}
	r.f.mu.Unlock()
	if !ok {
		return false
	}
	if sys != nil {
		r.inject(ToApp, &protocol.Message{JoinRef: joinRef, Topic: topic, Event: protocol.EventSystem, Payload: sys})
	}
	payload := json.RawMessage(`{}`)
	if event == protocol.EventError {
		payload = json.RawMessage(`{"reason":"channel_crash"}`) // a crashed channel, as Phoenix says it
	}
	r.inject(ToApp, &protocol.Message{JoinRef: joinRef, Ref: joinRef, Topic: topic, Event: event, Payload: payload})
	r.inject(FromApp, &protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: protocol.EventLeave, Payload: json.RawMessage(`{}`)})
	return true
}

// inject writes a message of the proxy's own, to the app (ToApp) or the
// upstream (FromApp), in the socket's serializer.
func (r *relay) inject(dir Direction, m *protocol.Message) {
	var (
		b      []byte
		binary bool
		err    error
	)
	conn, mu := r.app, &r.f.appW
	if dir == ToApp {
		b, binary, err = r.f.vsn.AppendServer(nil, m)
	} else {
		conn, mu = r.up, &r.f.upW
		b, binary, err = r.f.vsn.AppendClient(nil, m)
	}
	if err != nil {
		r.p.log.Warn("proxy: fault message not encoded", "conn", r.id, "err", err)
		return
	}
	typ := websocket.TextMessage
	if binary {
		typ = websocket.BinaryMessage
	}
	mu.Lock()
	defer mu.Unlock()
	if conn.WriteMessage(typ, b) == nil && dir == ToApp {
		// The app got it: the Observer sees it as any frame to the app
		// (the leave upstream is not the app's, so it is not shown).
		r.p.observeFrame(Frame{Conn: r.id, Dir: ToApp, Time: r.p.cfg.Now(), Binary: binary, Data: b})
	}
}

// freezeStep is how often a frozen pump looks at its deadline again.
const freezeStep = 50 * time.Millisecond

// stopped is closed when the relay is cut.
func (r *relay) stopped() <-chan struct{} { return r.f.stop }

// wait holds a pump while the socket is frozen and for the latency, or
// until the relay is cut (false).
func (r *relay) wait() bool {
	for {
		until := r.f.frozen.Load()
		if until == 0 {
			break
		}
		d := time.Until(time.Unix(0, until))
		if d <= 0 {
			break
		}
		// In steps, so that a new Freeze (0: thaw) takes effect.
		if !r.sleep(min(d, freezeStep)) {
			return false
		}
	}
	p := r.p
	if !p.faults.delayed.Load() {
		return true
	}
	p.faults.mu.Lock()
	d := p.faults.latency
	if p.faults.jitter > 0 {
		d += time.Duration(p.rand() * float64(p.faults.jitter))
	}
	p.faults.mu.Unlock()
	if d > 0 {
		return r.sleep(d)
	}
	return true
}

func (r *relay) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stopped():
		return false
	}
}

// isFrozen tells the control-frame handlers to drop pings and pongs.
func (r *relay) isFrozen() bool {
	return time.Now().UnixNano() < r.f.frozen.Load()
}

func (p *Proxy) rand() float64 {
	if p.cfg.Rand != nil {
		return p.cfg.Rand()
	}
	return rand.Float64()
}

// fromApp looks at a message of the app: it tracks joins and leaves and
// answers a rejected join itself. It reports whether to forward it.
func (r *relay) fromApp(b []byte, binary bool) bool {
	if binary || (!bytes.Contains(b, []byte(protocol.EventJoin)) && !bytes.Contains(b, []byte(protocol.EventLeave))) {
		return true
	}
	m, err := r.f.vsn.DecodeClient(b, false)
	if err != nil {
		return true
	}
	switch m.Event {
	case protocol.EventLeave:
		r.f.mu.Lock()
		delete(r.f.joins, m.Topic)
		r.f.mu.Unlock()
		return true
	case protocol.EventJoin:
	default:
		return true
	}
	p := r.p
	p.faults.mu.Lock()
	rj, ok := p.faults.rejects[m.Topic]
	if ok {
		if rj.n--; rj.n > 0 {
			p.faults.rejects[m.Topic] = rj
		} else {
			delete(p.faults.rejects, m.Topic)
		}
	}
	p.faults.mu.Unlock()
	if ok {
		p.fault(FaultEvent{Conn: r.id, Kind: FaultRejectJoin, Topic: m.Topic, Detail: rj.reason})
		r.inject(ToApp, &protocol.Message{JoinRef: m.JoinRef, Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply, Payload: protocol.ErrorReplyPayload(rj.reason)})
		return false
	}
	r.f.mu.Lock()
	if r.f.joins == nil {
		r.f.joins = map[string]string{}
	}
	r.f.joins[m.Topic] = m.JoinRef
	r.f.mu.Unlock()
	return true
}

// toApp decides how many times (0, 1 or 2) a message of the upstream is
// written to the app: the answers to a kicked channel's leave are
// swallowed, and the drop and duplicate counters act.
func (r *relay) toApp(b []byte, binary bool) int {
	p := r.p
	kicked, counting := r.f.nkicked.Load() > 0, p.faults.counting.Load()
	if !kicked && !counting {
		return 1
	}
	var f protocol.ServerFrame
	if err := r.f.vsn.ScanServer(b, binary, &f); err != nil {
		return 1
	}
	topic := string(f.Topic)
	if kicked {
		r.f.mu.Lock()
		k, ok := r.f.kicked[topic]
		// 1.0.0 frames carry no join_ref: the refs tell them apart.
		if ok && (string(f.Ref) == k.leaveRef || f.JoinRef != nil && string(f.JoinRef) == k.joinRef ||
			f.Event == protocol.EventClose && string(f.Ref) == k.joinRef) {
			if f.Event == protocol.EventClose {
				delete(r.f.kicked, topic)
				r.f.nkicked.Store(int32(len(r.f.kicked)))
			}
			r.f.mu.Unlock()
			return 0
		}
		r.f.mu.Unlock()
	}
	if !counting {
		return 1
	}
	n, kind := 1, ""
	p.faults.mu.Lock()
	if c := p.faults.drops[topic]; c > 0 {
		n, kind = 0, FaultDropMessage
		decr(p.faults.drops, topic)
	} else if c := p.faults.dups[topic]; c > 0 {
		n, kind = 2, FaultDuplicateMessage
		decr(p.faults.dups, topic)
	}
	p.faults.counting.Store(len(p.faults.drops)+len(p.faults.dups) > 0)
	p.faults.mu.Unlock()
	if kind != "" {
		p.fault(FaultEvent{Conn: r.id, Kind: kind, Topic: topic, Detail: f.Event})
	}
	return n
}

func decr(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// failConnect takes one armed connect failure, if any.
func (p *Proxy) failConnect() bool {
	p.faults.mu.Lock()
	ok := p.faults.failConnects > 0
	if ok {
		p.faults.failConnects--
	}
	p.faults.mu.Unlock()
	if ok {
		p.fault(FaultEvent{Kind: FaultFailConnect, Detail: "503"})
	}
	return ok
}

// vsnOf is the serializer of an upgrade's query (1.0.0 when absent).
func vsnOf(query string) protocol.Version {
	vsn := ""
	for kv := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(kv, "vsn="); ok {
			vsn = v
		}
	}
	v, err := protocol.ParseVersion(vsn)
	if err != nil {
		return protocol.V1
	}
	return v
}
