package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// closeGrace bounds how long a closing socket waits for the peer's close
// frame, and how long teardown waits for queued frames to be written.
const closeGrace = time.Second

// coalesceMax is the largest frame copied into the shared write buffer;
// bigger frames are written on their own.
const coalesceMax = 8 << 10

// conn is one WebSocket connection. A reader goroutine decodes and
// handles frames in order; a writer goroutine drains a bounded queue of
// pre-encoded frames. Fan-out only ever appends to the queue, so a slow
// connection never slows the others: when its queue is full it is
// dropped.
type conn struct {
	s       *Server
	id      string
	ws      *websocket.Conn
	nc      net.Conn
	vsn     protocol.Version
	remote  string
	created time.Time
	apikey  string  // the connect token, the default channel token
	claims  *Claims // the connect token's claims
	log     *slog.Logger

	// xHeaders are the upgrade's x-* headers, request.headers of the
	// Authorizer's checks.
	xHeaders []byte

	qmu     sync.Mutex
	queue   [][]byte
	qbytes  int
	qclosed bool
	wake    chan struct{}

	done       chan struct{} // closed by kill
	killOnce   sync.Once
	writerDone chan struct{}
	closing    atomic.Bool // a close frame was queued
	pause      atomic.Pointer[chan struct{}]

	mu       sync.Mutex // guards channels and the state of each channel
	channels map[string]*channel
	gone     bool // torn down: no more joins
	// presenceBytes is what this connection's tracked presence costs
	// (presenceCost), held to Config.MaxPresenceBytesPerConn.
	presenceBytes int
}

// send queues a pre-encoded frame. It never blocks; a connection whose
// queue is full is dropped as a slow consumer.
func (c *conn) send(frame []byte) {
	c.qmu.Lock()
	if c.qclosed {
		c.qmu.Unlock()
		return
	}
	if len(c.queue) >= c.s.cfg.OutboundQueue || c.qbytes+len(frame) > c.s.cfg.OutboundQueueBytes {
		c.qclosed = true
		c.queue, c.qbytes = nil, 0
		c.qmu.Unlock()
		c.s.stats.slowDrops.Add(1)
		c.log.Warn("Dropping slow consumer", logKeyReason, "outbound queue full",
			"limit_frames", c.s.cfg.OutboundQueue, "limit_bytes", c.s.cfg.OutboundQueueBytes)
		c.kill()
		return
	}
	c.queue = append(c.queue, frame)
	c.qbytes += len(frame)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendMsg encodes m for this connection's serializer and queues it.
func (c *conn) sendMsg(m *protocol.Message) {
	f, err := encodeFrame(c.vsn, m)
	if err != nil {
		c.log.Error("Cannot encode frame", logKeyEvent, m.Event, logKeyErr, err)
		return
	}
	c.send(f)
}

// reply queues a phx_reply to the push m.
func (c *conn) reply(m *protocol.Message, status string, response []byte) {
	c.sendMsg(&protocol.Message{JoinRef: m.JoinRef, Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
		Payload: protocol.ReplyPayload(status, response)})
}

// replyError queues an error reply {"reason": reason} to m.
func (c *conn) replyError(m *protocol.Message, reason string) {
	c.reply(m, protocol.StatusError, protocol.ReasonResponse(reason))
}

// unmatched answers a push to a topic without a channel, as Phoenix does.
func (c *conn) unmatched(m *protocol.Message) {
	c.sendMsg(&protocol.Message{Ref: m.Ref, Topic: m.Topic, Event: protocol.EventReply,
		Payload: protocol.ErrorReplyPayload("unmatched topic")})
}

// sendClose queues a close frame after which nothing more is written, and
// makes the reader wait at most closeGrace for the peer's close.
func (c *conn) sendClose(code int, reason string) {
	c.sendCloseFrame(closeFrame(code, reason))
}

// sendCloseFrame is sendClose with a prepared close frame.
func (c *conn) sendCloseFrame(f []byte) {
	c.qmu.Lock()
	if c.qclosed {
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, f)
	c.qbytes += len(f)
	c.qclosed = true
	c.qmu.Unlock()
	c.closing.Store(true)
	_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeQueue stops accepting frames; the writer exits once the queue is
// written.
func (c *conn) closeQueue() {
	c.qmu.Lock()
	c.qclosed = true
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// kill ends the connection abruptly: no close frame, the TCP connection
// is closed and both goroutines stop. It reports whether this call ended
// it (false when it was already ending).
func (c *conn) kill() bool {
	killed := false
	c.killOnce.Do(func() {
		killed = true
		close(c.done)
		_ = c.nc.Close()
	})
	return killed
}

// waitPause blocks while the connection is paused. It reports false when
// the connection was killed meanwhile.
func (c *conn) waitPause() bool {
	for {
		p := c.pause.Load()
		if p == nil {
			return true
		}
		select {
		case <-*p:
		case <-c.done:
			return false
		}
	}
}

// writeLoop writes queued frames, coalescing everything queued since the
// last wake-up into as few writes as possible.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var batch [][]byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		if !c.waitPause() {
			return
		}
		c.qmu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.qbytes = 0
		c.qmu.Unlock()
		if len(batch) > 0 {
			if err := c.writeBatch(batch); err != nil {
				c.log.Debug("Write failed", logKeyErr, err)
				c.kill()
				return
			}
			clear(batch)
			if cap(batch) > 64 {
				batch = nil // let a burst's backing array go
			}
		}
		c.qmu.Lock()
		finished := c.qclosed && len(c.queue) == 0
		c.qmu.Unlock()
		if finished {
			return
		}
	}
}

func (c *conn) writeBatch(batch [][]byte) error {
	bp := c.s.bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		*bp = buf[:0]
		c.s.bufPool.Put(bp)
	}()
	var total int
	for _, f := range batch {
		total += len(f)
		if len(f) > coalesceMax {
			if len(buf) > 0 {
				if _, err := c.nc.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
			if _, err := c.nc.Write(f); err != nil {
				return err
			}
			continue
		}
		if len(buf)+len(f) > cap(buf) && len(buf) > 0 {
			if _, err := c.nc.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		buf = append(buf, f...)
	}
	if len(buf) > 0 {
		if _, err := c.nc.Write(buf); err != nil {
			return err
		}
	}
	c.s.stats.framesOut.Add(uint64(len(batch)))
	c.s.stats.bytesOut.Add(uint64(total))
	return nil
}

// errTooBig reports an inbound message over Config.MaxFrameSize.
var errTooBig = errors.New("message too big")

// readLoop reads and handles frames until the connection ends, then
// tears it down.
func (c *conn) readLoop() {
	defer c.teardown()
	max := int64(c.s.cfg.MaxFrameSize)
	for {
		if !c.closing.Load() {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
			if c.closing.Load() { // sendClose raced with us: keep its deadline
				_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
			}
		}
		mt, r, err := c.ws.NextReader()
		if err != nil {
			var ne net.Error
			switch {
			case c.closing.Load():
			case errors.As(err, &ne) && ne.Timeout():
				c.log.Info("Closing idle socket", "idle_timeout", c.s.cfg.IdleTimeout)
				c.s.stats.idleCloses.Add(1)
				c.sendClose(websocket.CloseNormalClosure, "idle timeout")
			default:
				c.log.Debug("Socket closed", logKeyErr, err)
			}
			return
		}
		data, err := readMessage(r, max)
		if err != nil {
			if errors.Is(err, errTooBig) {
				c.s.stats.badFrames.Add(1)
				c.log.Warn("Closing socket: message too big", "limit", max)
				c.sendClose(websocket.CloseMessageTooBig, fmt.Sprintf("message exceeds %d bytes", max))
				c.drainUntilClosed()
			}
			return
		}
		if c.closing.Load() {
			continue // draining until the peer's close frame
		}
		if !c.waitPause() {
			return
		}
		c.s.stats.framesIn.Add(1)
		c.s.stats.bytesIn.Add(uint64(len(data)))
		c.handleFrame(mt, data)
	}
}

// drainUntilClosed reads and discards until the peer's close or the
// close deadline.
func (c *conn) drainUntilClosed() {
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
	}
}

// readMessage reads a whole message of at most max bytes.
func readMessage(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, errTooBig
	}
	return data, nil
}

// teardown ends the connection: its channels leave (with presence leaves
// for the others), queued frames are flushed for a moment, the socket is
// closed and the connection unregistered.
func (c *conn) teardown() {
	c.closeQueue()
	c.mu.Lock()
	c.gone = true
	for _, ch := range c.channels {
		c.removeChannelLocked(ch)
	}
	c.mu.Unlock()
	t := time.NewTimer(closeGrace)
	select {
	case <-c.writerDone:
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.kill()
	<-c.writerDone
	c.s.removeConn(c)
	c.log.Debug("Socket torn down")
}

// handleFrame decodes and dispatches one frame. Bad input gets an error
// reply, or closes this socket with a reason when there is nothing to
// reply to; it never affects other connections.
func (c *conn) handleFrame(mt int, data []byte) {
	m, err := c.vsn.DecodeClient(data, mt == websocket.BinaryMessage)
	if err != nil {
		c.s.stats.badFrames.Add(1)
		c.log.Warn("Closing socket: undecodable frame", logKeyErr, err)
		code := websocket.CloseInvalidFramePayloadData
		if errors.Is(err, protocol.ErrUnsupported) {
			code = websocket.CloseUnsupportedData
		}
		c.sendClose(code, frameCloseReason(err))
		return
	}
	if c.refuseLongNames(&m) {
		return
	}
	if m.Broadcast == nil && !m.Binary && !protocol.IsObject(m.Payload) {
		c.s.stats.badFrames.Add(1)
		c.log.Warn("Refusing push without an object payload", logKeyTopic, m.Topic, logKeyEvent, m.Event)
		c.replyError(&m, "InvalidPayload: the payload must be a JSON object")
		return
	}
	if m.Topic == protocol.PhoenixTopic {
		if m.Event == protocol.EventHeartbeat {
			c.reply(&m, protocol.StatusOK, nil)
			return
		}
		c.unmatched(&m)
		return
	}
	switch m.Event {
	case protocol.EventJoin:
		if !strings.HasPrefix(m.Topic, protocol.TopicPrefix) {
			c.unmatched(&m)
			return
		}
		if m.Binary {
			// Realtime's join cannot read a binary payload: its channel
			// crashes in join, which Phoenix answers at once.
			c.s.stats.joinErrors.Add(1)
			c.log.Info("Join refused: binary payload", logKeyTopic, m.Topic)
			c.replyError(&m, "join crashed")
			return
		}
		c.handleJoin(&m)
		return
	case protocol.EventLeave:
		c.handleLeave(&m)
		return
	}
	c.mu.Lock()
	ch := c.channels[m.Topic]
	c.mu.Unlock()
	if ch == nil {
		c.unmatched(&m)
		return
	}
	// Supabase's Phoenix hands every message on a joined topic to its
	// channel, whatever its join_ref; the channel's replies carry the
	// channel's own join_ref.
	m.JoinRef = ch.joinRef
	switch {
	case m.Event == protocol.EventBroadcast:
		c.handleBroadcast(ch, &m)
	case m.Event == protocol.EventPresence && m.Binary:
		// Realtime's presence handler ignores a payload that is not a
		// map and answers ok.
		c.reply(&m, protocol.StatusOK, nil)
	case m.Event == protocol.EventPresence:
		c.handlePresence(ch, &m)
	case m.Event == protocol.EventAccessToken && !m.Binary:
		c.handleAccessToken(ch, &m)
	default:
		c.log.Info("Unexpected message from client", logKeyTopic, m.Topic, logKeyEvent, m.Event)
		if !c.s.tenants.allow(ch.tenant, rateEvents, c.s.now(), c.s.cfg.Limits.MaxEventsPerSecond, 1) {
			c.s.stats.rateLimited.Add(1)
			c.shutdownIfCurrent(ch, "Too many messages per second")
		}
	}
}

// frameCloseReason is the close reason for an undecodable frame: "malformed
// frame: " or "unsupported frame: " and the decoding error, without the
// protocol package's own prefixes (which would say it twice), cut to fit
// a close frame.
func frameCloseReason(err error) string {
	prefix := "malformed frame: "
	if errors.Is(err, protocol.ErrUnsupported) {
		prefix = "unsupported frame: "
	}
	s := err.Error()
	for _, p := range []string{protocol.ErrMalformed.Error() + ": ", protocol.ErrUnsupported.Error() + ": ", "protocol: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	if len(s) > 100 {
		s = strings.ToValidUTF8(s[:100], "")
	}
	return prefix + s
}
