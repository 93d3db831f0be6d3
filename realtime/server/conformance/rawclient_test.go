package conformance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// rawClient is a bare gorilla/websocket client speaking frames through
// rtm/realtime/protocol: the Go side of the interop tests, and a probe for
// frames realtime-js would not send.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
	v    protocol.Version

	writeMu sync.Mutex
	mu      sync.Mutex
	ref     int
	frames  []rawFrame
	changed chan struct{}
	closed  error // why the reader stopped
	done    chan struct{}
}

// rawFrame is one frame the raw client received.
type rawFrame struct {
	Seq    int
	Binary bool
	Data   []byte
	Msg    protocol.Message
	Err    error // decoding error
}

// dialRaw opens a WebSocket to wsURL (the server's /realtime/v1/websocket)
// with apikey and vsn.
func dialRaw(t *testing.T, wsURL, apikey string, v protocol.Version) *rawClient {
	t.Helper()
	q := url.Values{"apikey": {apikey}, "vsn": {v.String()}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL+"?"+q.Encode(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("raw dial %s: %v (HTTP %d)", wsURL, err, status)
	}
	c := &rawClient{t: t, conn: conn, v: v, changed: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() {
		c.conn.Close()
		<-c.done
	})
	return c
}

func (c *rawClient) read() {
	defer close(c.done)
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closed = err
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return
		}
		f := rawFrame{Binary: typ == websocket.BinaryMessage, Data: data}
		f.Msg, f.Err = c.v.DecodeServer(data, f.Binary)
		c.mu.Lock()
		f.Seq = len(c.frames) + 1
		c.frames = append(c.frames, f)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// nextRef returns a fresh ref.
func (c *rawClient) nextRef() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ref++
	return strconv.Itoa(c.ref)
}

// send encodes m as a client frame and writes it.
func (c *rawClient) send(m protocol.Message) {
	c.t.Helper()
	data, binary, err := c.v.AppendClient(nil, &m)
	if err != nil {
		c.t.Fatalf("raw encode %+v: %v", m, err)
	}
	typ := websocket.TextMessage
	if binary {
		typ = websocket.BinaryMessage
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.WriteMessage(typ, data); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

// mark returns the Seq of the last frame received so far.
func (c *rawClient) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// await waits for a frame after mark that match accepts.
func (c *rawClient) await(timeout time.Duration, after int, what string, match func(protocol.Message) bool) rawFrame {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for _, f := range c.frames {
			if f.Seq > after && f.Err == nil && match(f.Msg) {
				c.mu.Unlock()
				return f
			}
		}
		changed, closed := c.changed, c.closed
		c.mu.Unlock()
		if closed != nil {
			c.t.Fatalf("raw client: connection closed (%v) while waiting for %s\nframes:\n%s", closed, what, c.dump())
		}
		select {
		case <-changed:
		case <-deadline.C:
			c.t.Fatalf("raw client: no %s within %v\nframes:\n%s", what, timeout, c.dump())
		}
	}
}

func (c *rawClient) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sb strings.Builder
	for _, f := range c.frames {
		if f.Binary {
			fmt.Fprintf(&sb, "#%d binary %x\n", f.Seq, f.Data)
		} else {
			fmt.Fprintf(&sb, "#%d %s\n", f.Seq, f.Data)
		}
	}
	return sb.String()
}

// join sends phx_join with payload and waits for its reply; it returns the
// join ref and the reply.
func (c *rawClient) join(topic string, payload string) (string, protocol.Reply) {
	c.t.Helper()
	ref := c.nextRef()
	mark := c.mark()
	c.send(protocol.Message{JoinRef: ref, Ref: ref, Topic: topic, Event: protocol.EventJoin, Payload: []byte(payload)})
	f := c.await(5*time.Second, mark, "join reply", func(m protocol.Message) bool {
		return m.Event == protocol.EventReply && m.Ref == ref && m.Topic == topic
	})
	r, err := protocol.ParseReply(f.Msg.Payload)
	if err != nil {
		c.t.Fatalf("join reply %s: %v", f.Data, err)
	}
	return ref, r
}

// dialRefused attempts a WebSocket upgrade with the query rawQuery, expects
// the server to refuse it, and returns the HTTP response and its body.
func dialRefused(t *testing.T, wsURL, rawQuery string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL+"?"+rawQuery, nil)
	if err == nil {
		conn.Close()
		t.Fatalf("upgrade with %q accepted, want an HTTP error", rawQuery)
	}
	if resp == nil {
		t.Fatalf("upgrade with %q: %v (no HTTP response)", rawQuery, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}
