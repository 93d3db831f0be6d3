// Package hostile is a deliberately misbehaving Realtime server for
// testing clients against input that is well-formed but merely large,
// slow or many, or not well-formed at all. It speaks just enough of the
// protocol to get a client's channels joined (it answers heartbeats and
// every phx_join with ok), then runs, per joined channel, a [Script] the
// test chose: endless presence diffs, a presence_state of 200k members,
// frames of tens of megabytes, garbage. It writes as fast as the client
// reads (a client that stops reading blocks only its own connection's
// script) and counts what it sent, so a test can check that the client
// really was offered the load before it asserts the client stayed within
// its bounds.
//
// It is a test harness, importable by the client's tests in any package
// (realtime, registry, the command's end-to-end tests); it is never
// linked into rtm itself. It serves real WebSocket connections on a
// loopback port: the client under test uses its real socket, reader and
// decoder. Protocol behaviour against a correct server is tested with the
// embedded server (package realtime/server/servertest); this server is
// only for what a correct server never does.
package hostile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// Script is what the server does on one channel once the client has
// joined it (the ok reply is already sent). It returns when it is done or
// when ctx ends (the connection or the server closed); its error, other
// than a closed connection's, fails the test.
type Script func(ctx context.Context, ch *Channel) error

// Server is a started hostile server.
type Server struct {
	// URL is the project URL, http://127.0.0.1:<port>; WSURL is the
	// WebSocket endpoint ws://127.0.0.1:<port>/realtime/v1/websocket.
	URL, WSURL string

	t      testing.TB
	onJoin func(topic string) Script
	ln     net.Listener
	srv    *http.Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []*conn

	framesOut, bytesOut atomic.Int64
	joins, connects     atomic.Int64
}

// New starts a server on 127.0.0.1:0; t.Cleanup closes it and waits for
// its goroutines. onJoin picks the script of each joined topic (a nil
// script, or a nil onJoin, just holds the channel joined).
func New(t testing.TB, onJoin func(topic string) Script) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hostile: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{t: t, onJoin: onJoin, ln: ln, ctx: ctx, cancel: cancel}
	s.URL = "http://" + ln.Addr().String()
	s.WSURL = "ws://" + ln.Addr().String() + "/realtime/v1/websocket"
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server: every connection is closed abruptly and every
// script ends. It waits for all of the server's goroutines.
func (s *Server) Close() {
	s.cancel()
	_ = s.srv.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.ws.NetConn().Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// FramesOut and BytesOut count the frames and bytes written to clients
// (heartbeat and join replies included).
func (s *Server) FramesOut() int64 { return s.framesOut.Load() }

// BytesOut counts the bytes of the frames written to clients.
func (s *Server) BytesOut() int64 { return s.bytesOut.Load() }

// Joins counts the phx_join pushes answered; Connects the WebSocket
// connections accepted.
func (s *Server) Joins() int64 { return s.joins.Load() }

// Connects counts the WebSocket connections accepted.
func (s *Server) Connects() int64 { return s.connects.Load() }

type conn struct {
	s   *Server
	ws  *websocket.Conn
	vsn protocol.Version
	wmu sync.Mutex
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	vsn, err := protocol.ParseVersion(r.URL.Query().Get("vsn"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(8 << 20)
	c := &conn{s: s, ws: ws, vsn: vsn}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		_ = ws.NetConn().Close()
		return
	}
	s.conns = append(s.conns, c)
	s.wg.Add(1)
	s.mu.Unlock()
	s.connects.Add(1)
	go func() {
		defer s.wg.Done()
		c.read()
	}()
}

// read answers the client's pushes until the connection ends, starting a
// script for each join; it closes the connection and waits for the
// scripts when it returns.
func (c *conn) read() {
	ctx, cancel := context.WithCancel(c.s.ctx)
	var scripts sync.WaitGroup
	defer func() {
		cancel()
		_ = c.ws.NetConn().Close()
		scripts.Wait()
	}()
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		m, err := c.vsn.DecodeClient(data, typ == websocket.BinaryMessage)
		if err != nil {
			continue // the client's frames are not under test here
		}
		switch {
		case m.Topic == protocol.PhoenixTopic && m.Event == protocol.EventHeartbeat:
			_ = c.send(&protocol.Message{Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
				Payload: protocol.ReplyPayload(protocol.StatusOK, nil)})
		case m.Event == protocol.EventJoin:
			c.s.joins.Add(1)
			joinRef := m.JoinRef
			if joinRef == "" {
				joinRef = m.Ref
			}
			_ = c.send(&protocol.Message{JoinRef: joinRef, Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
				Payload: protocol.ReplyPayload(protocol.StatusOK, []byte(`{"postgres_changes":[]}`))})
			var script Script
			if c.s.onJoin != nil {
				script = c.s.onJoin(m.Topic)
			}
			if script == nil {
				continue
			}
			ch := &Channel{c: c, Topic: m.Topic, JoinRef: joinRef}
			scripts.Add(1)
			go func() {
				defer scripts.Done()
				if err := script(ctx, ch); err != nil && ctx.Err() == nil && !isClosed(err) {
					c.s.t.Errorf("hostile: script on %s: %v", ch.Topic, err)
				}
			}()
		case m.Event == protocol.EventLeave:
			_ = c.send(&protocol.Message{JoinRef: m.JoinRef, Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
				Payload: protocol.ReplyPayload(protocol.StatusOK, nil)})
		default:
			if m.Ref != "" {
				_ = c.send(&protocol.Message{JoinRef: m.JoinRef, Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
					Payload: protocol.ReplyPayload(protocol.StatusOK, nil)})
			}
		}
	}
}

// isClosed reports the errors of writing to a connection that ended.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, websocket.ErrCloseSent) ||
		strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")
}

func (c *conn) send(m *protocol.Message) error {
	data, binary, err := c.vsn.AppendServer(nil, m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Event, err)
	}
	return c.write(data, binary)
}

func (c *conn) write(data []byte, binary bool) error {
	typ := websocket.TextMessage
	if binary {
		typ = websocket.BinaryMessage
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(typ, data); err != nil {
		return err
	}
	c.s.framesOut.Add(1)
	c.s.bytesOut.Add(int64(len(data)))
	return nil
}

// Channel is a channel the client joined, as a script sees it.
type Channel struct {
	c *conn
	// Topic is the wire topic ("realtime:room"); JoinRef the join's ref.
	Topic, JoinRef string
}

// Send encodes m for the connection's serializer (topic and join ref
// default to the channel's) and writes it.
func (ch *Channel) Send(m *protocol.Message) error {
	if m.Topic == "" {
		m.Topic = ch.Topic
	}
	if m.JoinRef == "" {
		m.JoinRef = ch.JoinRef
	}
	return ch.c.send(m)
}

// SendRaw writes data as one text (or binary) frame, as it is.
func (ch *Channel) SendRaw(data []byte, binary bool) error { return ch.c.write(data, binary) }

// Push sends a server push of event with a JSON payload on the channel.
func (ch *Channel) Push(event string, payload []byte) error {
	return ch.Send(&protocol.Message{Event: event, Payload: payload})
}

// Broadcast sends a user broadcast of event with a JSON payload (a
// kind-4 binary frame under 2.0.0, JSON under 1.0.0).
func (ch *Channel) Broadcast(event string, payload []byte) error {
	return ch.Send(&protocol.Message{Event: protocol.EventBroadcast,
		Broadcast: &protocol.Broadcast{Event: event, Payload: payload}})
}

// Repeat calls step with 0, 1, 2, ... until it fails, n calls were made
// (n <= 0: no bound) or ctx ends.
func Repeat(ctx context.Context, n int, step func(i int) error) error {
	for i := 0; n <= 0 || i < n; i++ {
		if ctx.Err() != nil {
			return nil
		}
		if err := step(i); err != nil {
			return err
		}
	}
	return nil
}

// Meta returns a presence meta object with ref and a "pad" member of
// padding bytes (for metas of a chosen size).
func Meta(ref string, padding int) []byte {
	b := make([]byte, 0, 40+len(ref)+padding)
	b = append(b, `{"phx_ref":`...)
	b = strconv.AppendQuote(b, ref)
	if padding > 0 {
		b = append(b, `,"pad":"`...)
		for range padding {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// PresenceState returns a presence_state payload of members keys
// ("u0", "u1", ...), each with one meta of padding bytes.
func PresenceState(members, padding int) []byte {
	b := make([]byte, 0, members*(30+padding)+2)
	b = append(b, '{')
	for i := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"u`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `":{"metas":[`...)
		b = append(b, Meta("s"+strconv.Itoa(i), padding)...)
		b = append(b, "]}"...)
	}
	return append(b, '}')
}

// PresenceDiff returns a presence_diff payload that joins one meta
// under key and leaves nothing.
func PresenceDiff(key string, meta []byte) []byte {
	b := make([]byte, 0, 40+len(key)+len(meta))
	b = append(b, `{"joins":{`...)
	b = strconv.AppendQuote(b, key)
	b = append(b, `:{"metas":[`...)
	b = append(b, meta...)
	return append(b, `]}},"leaves":{}}`...)
}

// EndlessDiffs sends an empty presence_state, then n presence_diffs (n
// <= 0: until the connection ends), each joining one new meta (padding
// bytes) under key: the metas of one member grow without end unless the
// client bounds them. With distinct set, each diff joins a new key
// instead ("<key>0", "<key>1", ...): the members grow.
func EndlessDiffs(key string, n, padding int, distinct bool) Script {
	return func(ctx context.Context, ch *Channel) error {
		if err := ch.Push(protocol.EventPresenceState, []byte(`{}`)); err != nil {
			return err
		}
		return Repeat(ctx, n, func(i int) error {
			k := key
			if distinct {
				k = key + strconv.Itoa(i)
			}
			return ch.Push(protocol.EventPresenceDiff, PresenceDiff(k, Meta("d"+strconv.Itoa(i), padding)))
		})
	}
}

// DiffsWithoutState sends n presence_diffs (n <= 0: endless) and never
// the presence_state a client waits for before applying them.
func DiffsWithoutState(n, padding int) Script {
	return func(ctx context.Context, ch *Channel) error {
		return Repeat(ctx, n, func(i int) error {
			return ch.Push(protocol.EventPresenceDiff, PresenceDiff("u"+strconv.Itoa(i), Meta("p"+strconv.Itoa(i), padding)))
		})
	}
}

// BigState sends one presence_state of members keys (one meta each, of
// padding bytes), then holds the channel.
func BigState(members, padding int) Script {
	return func(ctx context.Context, ch *Channel) error {
		if err := ch.Push(protocol.EventPresenceState, PresenceState(members, padding)); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}
}

// HugeBroadcasts sends n broadcasts (n <= 0: endless) of event whose
// JSON payload {"data":"xxx..."} is size bytes.
func HugeBroadcasts(event string, n, size int) Script {
	payload := Payload(size)
	return func(ctx context.Context, ch *Channel) error {
		return Repeat(ctx, n, func(int) error { return ch.Broadcast(event, payload) })
	}
}

// Payload returns a JSON object of size bytes (at least 12):
// {"data":"xxx..."}.
func Payload(size int) []byte {
	size = max(size, 12)
	b := make([]byte, 0, size)
	b = append(b, `{"data":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// Garbage sends n frames (n <= 0: endless) that are not Realtime frames:
// text that is not JSON, JSON that is not an envelope, truncated
// envelopes, binary frames of unknown kinds.
func Garbage(n int) Script {
	frames := []struct {
		data   string
		binary bool
	}{
		{"not json at all", false},
		{`{"topic":1}`, false},
		{`[null,null,"realtime:x","broadcast"`, false},
		{`["1","2","realtime:x","broadcast",{"type":"broadcast","event":"e","payload":`, false},
		{"\x09\x00\x00", true},
		{"\x04\xff", true},
		{`[]`, false},
		{`"` + strings.Repeat("\\", 1001) + `"`, false},
	}
	return func(ctx context.Context, ch *Channel) error {
		return Repeat(ctx, n, func(i int) error {
			f := frames[i%len(frames)]
			return ch.SendRaw([]byte(f.data), f.binary)
		})
	}
}

// SpreadOverSlabs sends n broadcasts of event with payload (a valid JSON
// value) on the channel, each followed by a broadcast of fill bytes
// ({"data":"xxx..."}) on otherTopic, a topic the client did not join
// (whose frames it drops). With fill chosen so that the two frames all
// but fill the client's read buffer, every broadcast of the channel is
// read into a buffer of its own: a client that keeps its payloads as
// they are keeps every such buffer alive.
func SpreadOverSlabs(event string, payload []byte, n int, otherTopic string, fill int) Script {
	filler := Payload(fill)
	return func(ctx context.Context, ch *Channel) error {
		return Repeat(ctx, n, func(int) error {
			if err := ch.Broadcast(event, payload); err != nil {
				return err
			}
			return ch.Send(&protocol.Message{Topic: otherTopic, Event: protocol.EventBroadcast,
				Broadcast: &protocol.Broadcast{Event: "fill", Payload: filler}})
		})
	}
}
