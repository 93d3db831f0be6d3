package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(idleChildEnv); spec != "" {
		runIdleChild(spec) // a child of BenchmarkIdleConnMemory
	}
	goleak.VerifyTestMain(m)
}

// wait bounds every awaited outcome; a passing test returns as soon as the
// outcome arrives.
const wait = 5 * time.Second

// inFrame is one frame a test client received.
type inFrame struct {
	msg    protocol.Message
	binary bool
	raw    []byte
}

// client is a raw WebSocket client speaking frames with gorilla, the "Go
// websocket client" of the tests. A reader goroutine decodes every frame
// into a log that the test polls with deadlines.
type client struct {
	t   testing.TB
	ws  *websocket.Conn
	vsn protocol.Version

	mu      sync.Mutex
	frames  []inFrame
	readErr error
	notify  chan struct{}
	done    chan struct{}
	ref     int
	used    map[int]bool // frames returned by await
}

// dial connects with apikey and vsn ("2.0.0", "1.0.0").
func dial(t testing.TB, s *servertest.Server, apikey, vsn string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.SocketURL(apikey, vsn), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	v, err := protocol.ParseVersion(vsn)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws, vsn: v, notify: make(chan struct{}, 1), done: make(chan struct{}), ref: 100, used: map[int]bool{}}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

// dialV2 connects with the anon key under 2.0.0.
func dialV2(t testing.TB, s *servertest.Server) *client {
	t.Helper()
	return dial(t, s, s.AnonKey(), "2.0.0")
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		mt, data, err := c.ws.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			c.mu.Unlock()
			c.signal()
			return
		}
		f := inFrame{binary: mt == websocket.BinaryMessage, raw: data}
		m, derr := c.vsn.DecodeServer(data, f.binary)
		if derr != nil {
			c.readErr = fmt.Errorf("undecodable frame %q: %w", data, derr)
			c.mu.Unlock()
			c.signal()
			return
		}
		f.msg = m
		c.frames = append(c.frames, f)
		c.mu.Unlock()
		c.signal()
	}
}

func (c *client) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *client) close() {
	_ = c.ws.Close()
	<-c.done
}

// nextRef returns a fresh ref.
func (c *client) nextRef() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ref++
	return strconv.Itoa(c.ref)
}

// writeRaw sends a raw text or binary frame.
func (c *client) writeRaw(binary bool, data []byte) {
	c.t.Helper()
	mt := websocket.TextMessage
	if binary {
		mt = websocket.BinaryMessage
	}
	if err := c.ws.WriteMessage(mt, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// push sends m (refs as given) encoded for the client's serializer.
func (c *client) push(m protocol.Message) {
	c.t.Helper()
	out, bin, err := c.vsn.AppendClient(nil, &m)
	if err != nil {
		c.t.Fatalf("encode %+v: %v", m, err)
	}
	c.writeRaw(bin, out)
}

// send pushes event on topic with a fresh ref and the given join ref.
func (c *client) send(joinRef, topic, event, payload string) string {
	c.t.Helper()
	ref := c.nextRef()
	c.push(protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Payload: json.RawMessage(payload)})
	return ref
}

// await returns the first frame not yet returned by await that match
// accepts, waiting for it with a deadline.
func (c *client) await(desc string, match func(inFrame) bool) inFrame {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c.mu.Lock()
		for i := 0; i < len(c.frames); i++ {
			if !c.used[i] && match(c.frames[i]) {
				f := c.frames[i]
				c.used[i] = true
				c.mu.Unlock()
				return f
			}
		}
		err := c.readErr
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("waiting for %s: connection ended: %v\nframes:\n%s", desc, err, c.dump())
		}
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out waiting for %s\nframes:\n%s", desc, c.dump())
		}
		select {
		case <-c.notify:
		case <-time.After(left):
		}
	}
}

// awaitEvent waits for a frame on topic with event.
func (c *client) awaitEvent(topic, event string) inFrame {
	c.t.Helper()
	return c.await(topic+" "+event, func(f inFrame) bool { return f.msg.Topic == topic && f.msg.Event == event })
}

// awaitReply waits for the reply to ref and returns its decoded payload.
func (c *client) awaitReply(ref string) (inFrame, protocol.Reply) {
	c.t.Helper()
	f := c.await("reply to "+ref, func(f inFrame) bool { return f.msg.Event == protocol.EventReply && f.msg.Ref == ref })
	r, err := protocol.ParseReply(f.msg.Payload)
	if err != nil {
		c.t.Fatalf("reply %s: %v", f.raw, err)
	}
	return f, r
}

// awaitClosed waits for the server to end the connection and returns the
// close error (a *websocket.CloseError when a close frame came).
func (c *client) awaitClosed() error {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatalf("connection still open\nframes:\n%s", c.dump())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// sync sends a heartbeat and waits for its reply: every frame the server
// queued for this connection before handling it has then arrived.
func (c *client) sync() {
	c.t.Helper()
	ref := c.send("", protocol.PhoenixTopic, protocol.EventHeartbeat, "{}")
	c.awaitReply(ref)
}

// all returns every frame received so far.
func (c *client) all() []inFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]inFrame(nil), c.frames...)
}

// find returns the frames received so far that match accepts.
func (c *client) find(match func(inFrame) bool) []inFrame {
	var out []inFrame
	for _, f := range c.all() {
		if match(f) {
			out = append(out, f)
		}
	}
	return out
}

func (c *client) dump() string {
	var b strings.Builder
	for i, f := range c.all() {
		if f.binary {
			fmt.Fprintf(&b, "  #%d binary % x\n", i, f.raw)
		} else {
			fmt.Fprintf(&b, "  #%d %s\n", i, f.raw)
		}
	}
	return b.String()
}

// join joins topic with payload and waits for the reply, which must be
// ok; it returns the join ref and the reply's response.
func (c *client) join(topic, payload string) (string, json.RawMessage) {
	c.t.Helper()
	ref := c.nextRef()
	c.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: topic, Event: protocol.EventJoin, Payload: json.RawMessage(payload)})
	f, r := c.awaitReply(ref)
	if r.Status != protocol.StatusOK {
		c.t.Fatalf("join %s: %s", topic, f.raw)
	}
	if f.msg.JoinRef != ref && c.vsn == protocol.V2 {
		c.t.Fatalf("join reply join_ref %q, want %q", f.msg.JoinRef, ref)
	}
	return ref, r.Response
}

// joinErr joins topic and waits for an error reply; it returns the reason.
func (c *client) joinErr(topic, payload string) string {
	c.t.Helper()
	ref := c.nextRef()
	c.push(protocol.Message{JoinRef: ref, Ref: ref, Topic: topic, Event: protocol.EventJoin, Payload: json.RawMessage(payload)})
	f, r := c.awaitReply(ref)
	if r.Status != protocol.StatusError {
		c.t.Fatalf("join %s: want an error, got %s", topic, f.raw)
	}
	return r.Reason()
}

// broadcastJSON sends a JSON text broadcast push.
func (c *client) broadcastJSON(joinRef, topic, event, payload string) string {
	c.t.Helper()
	return c.send(joinRef, topic, protocol.EventBroadcast,
		fmt.Sprintf(`{"type":"broadcast","event":%q,"payload":%s}`, event, payload))
}

// broadcastBinary sends a kind-3 broadcast push (V2 only).
func (c *client) broadcastBinary(joinRef, topic, event string, payload []byte, binaryPayload bool) string {
	c.t.Helper()
	ref := c.nextRef()
	c.push(protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: protocol.EventBroadcast,
		Broadcast: &protocol.Broadcast{Event: event, Payload: payload, Binary: binaryPayload}})
	return ref
}

// isBroadcast matches a user broadcast of event on topic.
func isBroadcast(topic, event string) func(inFrame) bool {
	return func(f inFrame) bool {
		if f.msg.Topic != topic || f.msg.Event != protocol.EventBroadcast {
			return false
		}
		b, err := f.msg.UserBroadcast()
		return err == nil && b.Event == event
	}
}

// defaultJoin is realtime-js's join payload for a plain channel.
const defaultJoin = `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}`

// joinPayload builds a join payload from the broadcast and presence
// config objects.
func joinPayload(broadcast, presence string, private bool, extra string) string {
	p := fmt.Sprintf(`{"config":{"broadcast":%s,"presence":%s,"postgres_changes":[],"private":%t}`, broadcast, presence, private)
	if extra != "" {
		p += "," + extra
	}
	return p + "}"
}

// httpDo sends a request with a token and returns status and body.
func httpDo(t testing.TB, method, url, token, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, desc string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", desc)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resign rewrites tok's header to alg and signs it again with secret
// (HMAC for HS*, garbage for any other alg, which the server refuses
// before looking at the signature).
func resign(t testing.TB, secret []byte, alg, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
	signing := header + "." + parts[1]
	var h func() hash.Hash
	switch alg {
	case "HS384":
		h = sha512.New384
	case "HS512":
		h = sha512.New
	default:
		h = sha256.New
	}
	mac := hmac.New(h, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
