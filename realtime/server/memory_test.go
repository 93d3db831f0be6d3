package server_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
	"rtm/realtime/server/servertest"
)

// leanClient is a raw WebSocket client for memory tests: unlike client it
// keeps nothing of what it receives but the status and reason of each
// reply, so the heap the test measures is the server's.
type leanClient struct {
	t   testing.TB
	ws  *websocket.Conn
	vsn protocol.Version

	mu      sync.Mutex
	replies map[string]leanReply // by ref
	frames  map[string]int       // frames received, by event
	readErr error
	notify  chan struct{}
	done    chan struct{}
}

// leanReply is what a leanClient keeps of a reply.
type leanReply struct {
	status, reason string
	topicLen       int
}

func dialLean(t testing.TB, s *servertest.Server, vsn string) *leanClient {
	t.Helper()
	d := *websocket.DefaultDialer
	d.WriteBufferSize = 64 << 10
	ws, _, err := d.Dial(s.SocketURL(s.AnonKey(), vsn), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	v, _ := protocol.ParseVersion(vsn)
	c := &leanClient{t: t, ws: ws, vsn: v, replies: map[string]leanReply{}, frames: map[string]int{},
		notify: make(chan struct{}, 1), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

func (c *leanClient) readLoop() {
	defer close(c.done)
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			c.signal()
			return
		}
		event := "?"
		var rep *leanReply
		var ref string
		// Only replies are decoded; a 3 MB presence_diff is just counted.
		if mt == websocket.TextMessage && bytes.Contains(data, []byte(`"phx_reply"`)) {
			if m, err := c.vsn.DecodeServer(data, false); err == nil && m.Event == protocol.EventReply {
				event = m.Event
				r, err := protocol.ParseReply(m.Payload)
				if err == nil {
					ref = m.Ref
					rep = &leanReply{status: r.Status, reason: r.Reason(), topicLen: len(m.Topic)}
				}
			}
		} else if mt == websocket.TextMessage && bytes.Contains(data[:min(len(data), 300)], []byte(`"presence_diff"`)) {
			event = protocol.EventPresenceDiff
		}
		c.mu.Lock()
		c.frames[event]++
		if rep != nil {
			c.replies[ref] = *rep
		}
		c.mu.Unlock()
		c.signal()
	}
}

func (c *leanClient) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *leanClient) close() {
	_ = c.ws.Close()
	<-c.done
}

// write sends a text frame.
func (c *leanClient) write(frame []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// push sends a text push.
func (c *leanClient) push(joinRef, ref, topic, event string, payload []byte) {
	c.t.Helper()
	out, _, err := c.vsn.AppendClient(nil, &protocol.Message{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Payload: payload})
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(out)
}

// reply waits for the reply to ref.
func (c *leanClient) reply(ref string) leanReply {
	c.t.Helper()
	deadline := time.Now().Add(4 * wait)
	for {
		c.mu.Lock()
		r, ok := c.replies[ref]
		delete(c.replies, ref)
		err := c.readErr
		c.mu.Unlock()
		if ok {
			return r
		}
		if err != nil {
			c.t.Fatalf("waiting for the reply to %s: connection ended: %v", ref, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out waiting for the reply to %s", ref)
		}
		select {
		case <-c.notify:
		case <-time.After(left):
		}
	}
}

// count returns how many frames of event arrived.
func (c *leanClient) count(event string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames[event]
}

// liveHeap returns the bytes of live heap objects after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

const mib = 1 << 20

// floodScale divides the sizes of the memory floods: 1, or 10 under the
// race detector.
func floodScale() int {
	if raceEnabled {
		return 10
	}
	return 1
}

// TestPresenceMemoryFlood is the hostile client of issue 12: one anon
// socket tracks a 2.9 MB meta (inside the 3000 KB payload limit) on each
// of 100 channels (the channel limit). The server keeps at most its
// per-connection presence budget (16 MiB by default): the tracks beyond it
// are refused with a reason, the server's heap grows by the budget plus a
// little, and an untrack makes room for a later track. Under the race
// detector metas and budget are a tenth of that. Not parallel: it
// measures the heap.
func TestPresenceMemoryFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 290 MB of presence")
	}
	scale := floodScale()
	budget := server.DefaultMaxPresenceBytesPerConn / scale
	s := servertest.New(t, servertest.WithLimits(server.Limits{MaxJoinsPerSecond: -1}),
		servertest.WithConfig(func(c *server.Config) { c.MaxPresenceBytesPerConn = budget }))
	c := dialLean(t, s, "2.0.0")
	const channels = 100
	topic := func(i int) string { return fmt.Sprintf("realtime:mem-%d", i) }
	for i := range channels {
		ref := "j" + strconv.Itoa(i)
		c.push(ref, ref, topic(i), protocol.EventJoin, []byte(defaultJoin))
		if r := c.reply(ref); r.status != protocol.StatusOK {
			t.Fatalf("join %d: %+v", i, r)
		}
	}
	metaSize := 2_900_000 / scale
	blob := strings.Repeat("x", metaSize)
	track := func(i int, ref string) leanReply {
		t.Helper()
		payload := `{"type":"presence","event":"track","payload":{"i":` + strconv.Itoa(i) + `,"blob":"` + blob + `"}}`
		c.push("j"+strconv.Itoa(i), ref, topic(i), protocol.EventPresence, []byte(payload))
		return c.reply(ref)
	}
	before := liveHeap()
	var ok, refused int
	var reason string
	for i := range channels {
		r := track(i, "t"+strconv.Itoa(i))
		switch {
		case r.status == protocol.StatusOK:
			ok++
		case r.status == protocol.StatusError && strings.HasPrefix(r.reason, "PresenceBudgetExceeded: "):
			refused++
			reason = r.reason
		default:
			t.Fatalf("track %d: %+v", i, r)
		}
	}
	after := liveHeap()
	growth := int64(after) - int64(before)
	t.Logf("100 tracks of %d bytes, budget %d: %d accepted, %d refused (%q); server heap %+.1f MiB (%d -> %d bytes)",
		metaSize, budget, ok, refused, reason, float64(growth)/mib, before, after)
	if want := budget / metaSize; ok > want || ok < want-1 {
		t.Errorf("%d tracks accepted, want %d (the budget of %d bytes)", ok, want, budget)
	}
	if limit := int64(budget + 4*mib); growth > limit {
		t.Errorf("server heap grew by %d bytes, want at most %d (budget + 4 MiB)", growth, limit)
	}
	if st := s.Stats(); st.Presences != uint64(ok) || st.Channels != channels || st.PresenceRefused != uint64(refused) {
		t.Errorf("stats: %d presences, %d channels, %d refused; want %d, %d, %d", st.Presences, st.Channels, st.PresenceRefused, ok, channels, refused)
	}
	// With the budget full, an identical re-track is still a no-op: ok and
	// no diff.
	sync := func(ref string) {
		t.Helper()
		c.push("", ref, protocol.PhoenixTopic, protocol.EventHeartbeat, []byte(`{}`))
		c.reply(ref)
	}
	sync("hb1")
	diffs := c.count(protocol.EventPresenceDiff)
	if r := track(1, "same"); r.status != protocol.StatusOK {
		t.Errorf("identical re-track: %+v", r)
	}
	sync("hb2")
	if n := c.count(protocol.EventPresenceDiff); n != diffs || diffs != ok {
		t.Errorf("%d diffs before the identical re-track (want %d), %d after", diffs, ok, n)
	}
	// Untracking the first meta frees its share: the last channel, refused
	// above, now tracks.
	c.push("j0", "u0", topic(0), protocol.EventPresence, []byte(`{"type":"presence","event":"untrack"}`))
	if r := c.reply("u0"); r.status != protocol.StatusOK {
		t.Fatalf("untrack: %+v", r)
	}
	if r := track(channels-1, "again"); r.status != protocol.StatusOK {
		t.Errorf("track after untrack: %+v", r)
	}
}
