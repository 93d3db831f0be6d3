package pgrealtime

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

// wsClient is a raw 2.0.0 (or 1.0.0) WebSocket client; a reader
// goroutine logs every frame, which the tests await with deadlines. A
// frame with Broadcast set arrived as a binary (kind 4) frame.
type wsClient struct {
	t   testing.TB
	ws  *websocket.Conn
	vsn protocol.Version

	mu     sync.Mutex
	frames []protocol.Message
	used   map[int]bool
	err    error
	notify chan struct{}
	done   chan struct{}
	ref    int
}

// dialWS connects with apikey and the upgrade's header, if any.
func dialWS(t testing.TB, s *servertest.Server, apikey string, header ...http.Header) *wsClient {
	t.Helper()
	var h http.Header
	if len(header) > 0 {
		h = header[0]
	}
	return dialWSVsn(t, s, apikey, protocol.V2, h)
}

// dialWSVsn connects with apikey under serializer vsn.
func dialWSVsn(t testing.TB, s *servertest.Server, apikey string, vsn protocol.Version, h http.Header) *wsClient {
	t.Helper()
	v := "2.0.0"
	if vsn == protocol.V1 {
		v = "1.0.0"
	}
	ws, _, err := websocket.DefaultDialer.Dial(s.SocketURL(apikey, v), h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &wsClient{t: t, ws: ws, vsn: vsn, used: map[int]bool{}, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { _ = ws.Close(); <-c.done })
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		mt, data, err := c.ws.ReadMessage()
		c.mu.Lock()
		if err == nil {
			var m protocol.Message
			m, err = c.vsn.DecodeServer(data, mt == websocket.BinaryMessage)
			if err == nil {
				c.frames = append(c.frames, m)
			}
		}
		c.err = err
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// push sends event on topic (join_ref joinRef) and returns its ref.
func (c *wsClient) push(joinRef, topic, event, payload string) string {
	c.t.Helper()
	c.mu.Lock()
	c.ref++
	ref := strconv.Itoa(c.ref)
	c.mu.Unlock()
	out, _, err := c.vsn.AppendClient(nil, &protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Payload: json.RawMessage(payload)})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, out); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return ref
}

// await returns the first frame not yet awaited that match accepts.
func (c *wsClient) await(desc string, match func(protocol.Message) bool) protocol.Message {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c.mu.Lock()
		for i, f := range c.frames {
			if !c.used[i] && match(f) {
				c.used[i] = true
				c.mu.Unlock()
				return f
			}
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			c.t.Fatalf("waiting for %s: connection ended: %v\n%s", desc, err, c.dump())
		}
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out waiting for %s\n%s", desc, c.dump())
		}
		select {
		case <-c.notify:
		case <-time.After(left):
		}
	}
}

// reply awaits the reply to ref and returns its payload.
func (c *wsClient) reply(ref string) string {
	c.t.Helper()
	m := c.await("reply "+ref, func(m protocol.Message) bool { return m.Event == protocol.EventReply && m.Ref == ref })
	return string(m.Payload)
}

// event awaits an event on topic.
func (c *wsClient) event(topic, event string) protocol.Message {
	c.t.Helper()
	return c.await(topic+" "+event, func(m protocol.Message) bool { return m.Topic == topic && m.Event == event })
}

// join joins topic with config and returns the join ref and the reply.
func (c *wsClient) join(topic, config string) (joinRef, reply string) {
	c.t.Helper()
	c.mu.Lock()
	c.ref++
	joinRef = strconv.Itoa(c.ref)
	c.mu.Unlock()
	out, _, _ := c.vsn.AppendClient(nil, &protocol.Message{JoinRef: joinRef, Ref: joinRef, Topic: topic, Event: protocol.EventJoin,
		Payload: json.RawMessage(`{"config":` + config + `}`)})
	if err := c.ws.WriteMessage(websocket.TextMessage, out); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return joinRef, c.reply(joinRef)
}

// sync sends a heartbeat and awaits its reply: everything the server
// queued for this socket before it has arrived.
func (c *wsClient) sync() {
	c.t.Helper()
	c.reply(c.push("", protocol.PhoenixTopic, protocol.EventHeartbeat, `{}`))
}

// count returns how many frames on topic with event arrived (awaited or
// not).
func (c *wsClient) count(topic, event string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if f.Topic == topic && f.Event == event {
			n++
		}
	}
	return n
}

func (c *wsClient) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for i, f := range c.frames {
		fmt.Fprintf(&b, "  %d %s %s %s\n", i, f.Topic, f.Event, f.Payload)
	}
	return b.String()
}
