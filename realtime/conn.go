package realtime

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
)

// conn is one WebSocket connection with its reader and writer goroutines.
type conn struct {
	s     *Socket
	ws    *websocket.Conn
	clock *readClock // nil with an injected clock
	gen   uint64
	wg    sync.WaitGroup

	mu         sync.Mutex
	out        []outFrame
	userQueued int // user pushes in out

	wake    chan struct{} // a frame was queued
	hbReply chan hbReply  // heartbeat replies seen by the reader

	presence protocol.PresenceSpans // the reader's scratch for presence payloads

	once       sync.Once
	done       chan struct{} // closed when the connection ends
	writerDone chan struct{} // closed when the writer has returned
	err        error         // why it ended; set before done is closed
	closeCode  int           // close frame to send, 0 for none
	closeText  string
}

type outFrame struct {
	data   []byte
	binary bool
	msg    protocol.Message // for the tap
	user   bool
}

type hbReply struct {
	ref string
	ok  bool
	at  time.Time
}

// fail ends the connection with err; code, when not 0, is the close
// frame the writer sends first.
func (c *conn) fail(err error, code int, text string) {
	c.once.Do(func() {
		c.err, c.closeCode, c.closeText = err, code, text
		close(c.done)
	})
}

// enqueue encodes m and queues it for the writer, returning its size.
// User pushes are bounded by Options.SendBuffer. It never blocks.
func (c *conn) enqueue(m *protocol.Message, user bool) (int, error) {
	data, binary, err := c.s.vsn.AppendClient(nil, m)
	if err != nil {
		return 0, fmt.Errorf("realtime: encode %s: %w", m.Event, err)
	}
	c.mu.Lock()
	if user && c.userQueued >= c.s.opts.SendBuffer {
		c.mu.Unlock()
		c.s.st.sendRejects.Add(1)
		return 0, ErrSendBufferFull
	}
	f := outFrame{data: data, binary: binary, user: user}
	if c.s.tap.Load() != nil {
		f.msg = *m
	}
	c.out = append(c.out, f)
	if user {
		c.userQueued++
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(data), nil
}

// readLoop reads frames and dispatches them until the connection fails.
func (c *conn) readLoop() {
	defer c.wg.Done()
	var fr frameReader
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.fail(err, 0, "")
			return
		}
		data, err := fr.read(r)
		if err != nil {
			c.fail(err, 0, "")
			return
		}
		var at time.Time
		if c.clock != nil {
			at = time.Unix(0, c.clock.last.Load())
		} else {
			at = c.s.now()
		}
		c.s.handleFrame(c, data, typ == websocket.BinaryMessage, at)
	}
}

// writeLoop writes queued frames and heartbeats until the connection ends.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	defer close(c.writerDone)
	s := c.s
	interval := s.opts.HeartbeatInterval
	var hbTimer *time.Timer
	var hbC <-chan time.Time
	if interval > 0 {
		first := interval
		if s.opts.HeartbeatOnOpen {
			first = 0
		}
		hbTimer = time.NewTimer(first)
		defer hbTimer.Stop()
		hbC = hbTimer.C
	}
	var hbRef string
	var hbSentAt time.Time
	var batch []outFrame
	for {
		select {
		case <-c.done:
			c.shutdown()
			return
		case <-c.wake:
			c.mu.Lock()
			batch, c.out = c.out, batch[:0]
			c.userQueued = 0
			c.mu.Unlock()
			for i := range batch {
				if err := c.write(&batch[i]); err != nil {
					c.fail(err, 0, "")
					break
				}
				batch[i] = outFrame{}
			}
		case r := <-c.hbReply:
			if r.ref != hbRef || hbRef == "" {
				continue
			}
			rtt := r.at.Sub(hbSentAt)
			hbRef = ""
			s.recordRTT(rtt)
			st := HeartbeatOK
			if !r.ok {
				st = HeartbeatError
			}
			s.notifyHeartbeat(Heartbeat{Status: st, Ref: r.ref, At: r.at, RTT: rtt})
			hbTimer.Reset(interval)
		case <-hbC:
			if hbRef != "" {
				s.st.hbTimeouts.Add(1)
				s.log.Warn("Heartbeat timeout, reconnecting", logRef, hbRef, logConn, c.gen)
				s.notifyHeartbeat(Heartbeat{Status: HeartbeatTimeout, Ref: hbRef, At: s.now()})
				c.fail(ErrHeartbeatTimeout, websocket.CloseNormalClosure, "heartbeat timeout")
				continue
			}
			s.mu.Lock()
			hbRef = s.makeRefLocked()
			s.mu.Unlock()
			m := protocol.Message{Ref: hbRef, Topic: protocol.PhoenixTopic, Event: protocol.EventHeartbeat}
			data, binary, _ := s.vsn.AppendClient(nil, &m)
			f := outFrame{data: data, binary: binary, msg: m}
			hbSentAt = time.Now()
			if err := c.write(&f); err != nil {
				c.fail(err, 0, "")
				continue
			}
			s.st.hbSent.Add(1)
			s.notifyHeartbeat(Heartbeat{Status: HeartbeatSent, Ref: hbRef, At: s.now()})
			hbTimer.Reset(interval)
		}
	}
}

func (c *conn) write(f *outFrame) error {
	typ := websocket.TextMessage
	if f.binary {
		typ = websocket.BinaryMessage
	}
	// Tap before writing, so the frame precedes its reply in the tap.
	if tap := c.s.tap.Load(); tap != nil {
		tap.push(Frame{Dir: Out, Time: c.s.now(), Conn: c.gen, Data: f.data, Binary: f.binary, Message: f.msg}, frameCost+len(f.data), pushDrop)
	}
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout)); err != nil {
		return err
	}
	if err := c.ws.WriteMessage(typ, f.data); err != nil {
		return err
	}
	c.s.st.framesOut.Add(1)
	c.s.st.bytesOut.Add(uint64(len(f.data)))
	return nil
}

// shutdown sends the close frame, if any, and closes the connection. The
// reader then fails and exits.
func (c *conn) shutdown() {
	if c.closeCode != 0 {
		msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
		}()
		select {
		case <-done:
		case <-time.After(closeGrace):
		}
		_ = c.ws.Close()
		<-done
		return
	}
	_ = c.ws.Close()
}

// recordRTT updates the heartbeat round-trip statistics.
func (s *Socket) recordRTT(rtt time.Duration) {
	s.st.rtt.Store(int64(rtt))
	for {
		old := s.st.rttAvg.Load()
		nv := int64(rtt)
		if old != 0 {
			nv = old + (int64(rtt)-old)/8
		}
		if s.st.rttAvg.CompareAndSwap(old, nv) {
			return
		}
	}
}

// readClock is the connection under the WebSocket; it records when the
// last read returned data.
type readClock struct {
	net.Conn
	last atomic.Int64 // Unix nanoseconds
}

func (r *readClock) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 {
		r.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// isPhoenix reports the heartbeat topic.
func isPhoenix(topic []byte) bool { return bytes.Equal(topic, []byte(protocol.PhoenixTopic)) }
