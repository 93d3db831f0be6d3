package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"rtm/realtime/mask"
)

// The Realtime websocket relay: the upstream is dialled first, with the
// app's path, query and headers, so that a refused upgrade reaches the
// app as the upstream sent it; then the app is upgraded and two pumps
// (the handler's goroutine and one more) copy messages each way.

// hopHeaders returns the headers that belong to one connection, not to
// the request, plus the websocket handshake's own (the dialler sets
// them).
func hopHeaders() []string {
	return []string{
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Accept",
	}
}

// forwardHeader copies h without its hop-by-hop and handshake headers
// (and those the Connection header names).
func forwardHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				out.Del(f)
			}
		}
	}
	for _, k := range hopHeaders() {
		out.Del(k)
	}
	return out
}

// relay is one app socket and its upstream socket.
type relay struct {
	p       *Proxy
	id      uint64
	app, up *websocket.Conn
	// appB and upB are their connections, whose writes a pump holds.
	appB, upB *batchConn
	done      chan struct{}
	f         sockState // fault state (faults.go)

	mu     sync.Mutex
	ended  bool
	closed Closed
}

// relaySocket dials the upstream, upgrades the app and relays until
// both sides have ended.
func (p *Proxy) relaySocket(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	full := len(p.sockets) >= p.cfg.MaxSockets
	p.mu.Unlock()
	if full {
		http.Error(w, "rtm proxy: too many relayed sockets", http.StatusServiceUnavailable)
		return
	}
	if p.failConnect() {
		http.Error(w, "rtm proxy fault: connect refused", http.StatusServiceUnavailable)
		return
	}
	target := *p.upstream
	target.Scheme = map[string]string{"http": "ws", "https": "wss"}[target.Scheme]
	target.Path = p.upstream.Path + r.URL.Path
	target.RawQuery = r.URL.RawQuery
	shown := target
	shown.RawQuery = ""

	slot := &batchSlot{}
	ctx := context.WithValue(r.Context(), batchSlotKey{}, slot)
	up, resp, err := p.dialer.DialContext(ctx, target.String(), forwardHeader(r.Header))
	if err != nil {
		p.refuse(w, r, resp, err)
		return
	}
	var answer http.Header
	if sp := up.Subprotocol(); sp != "" {
		answer = http.Header{"Sec-Websocket-Protocol": {sp}}
	}
	hw := &hijackWriter{ResponseWriter: w, pool: &p.batchBufs}
	app, err := p.upgrader.Upgrade(hw, r, answer) // answers the app itself on error
	if err != nil || hw.conn == nil || slot.conn == nil {
		if err == nil {
			_ = app.Close()
			err = errors.New("connection not wrapped")
		}
		_ = up.Close()
		p.log.Warn("proxy: app upgrade failed", "remote", r.RemoteAddr, "err", mask.Text(err.Error()))
		return
	}
	hw.conn.peer, slot.conn.peer = slot.conn, hw.conn
	rl := &relay{p: p, id: p.nextID.Add(1), app: app, up: up, appB: hw.conn, upB: slot.conn, done: make(chan struct{})}
	rl.f.vsn, rl.f.stop = vsnOf(r.URL.RawQuery), make(chan struct{})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = app.Close()
		_ = up.Close()
		return
	}
	p.sockets[rl] = struct{}{}
	p.mu.Unlock()

	info := ConnInfo{
		ID: rl.id, RemoteAddr: r.RemoteAddr, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Upstream: shown.String(), Opened: p.cfg.Now(),
	}
	p.log.Info("proxy: socket open", "conn", rl.id, "remote", r.RemoteAddr,
		"url", mask.URL(r.URL.RequestURI()), "client", r.Header.Get("X-Client-Info"))
	p.observeOpen(info)
	// The relay runs on its own goroutines so that the handler's (and
	// net/http's state of the request) is freed.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		rl.run()
	}()
}

// refuse answers the app when the upstream did not upgrade: with the
// upstream's own status, headers and body (the first 1024 bytes, as the
// websocket dialler keeps them) when it answered, else 502.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, resp *http.Response, err error) {
	if resp == nil || !errors.Is(err, websocket.ErrBadHandshake) {
		msg := mask.Text(err.Error())
		p.log.Warn("proxy: upstream socket failed", "remote", r.RemoteAddr, "err", msg)
		http.Error(w, "rtm proxy: upstream unreachable: "+msg, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := forwardHeader(resp.Header)
	h.Del("Content-Length")
	for k, v := range h {
		w.Header()[k] = v
	}
	p.log.Info("proxy: upstream refused the socket", "remote", r.RemoteAddr, "status", resp.StatusCode)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// run pumps both ways until both have ended, then reports the end.
func (rl *relay) run() {
	rl.forwardControl(rl.app, rl.up)
	rl.forwardControl(rl.up, rl.app)
	var wg sync.WaitGroup
	wg.Go(func() { rl.pump(rl.up, rl.app, rl.appB, ToApp) })
	rl.pump(rl.app, rl.up, rl.upB, FromApp)
	wg.Wait()
	_ = rl.app.Close()
	_ = rl.up.Close()

	p := rl.p
	p.mu.Lock()
	delete(p.sockets, rl)
	p.mu.Unlock()
	rl.mu.Lock()
	c := rl.closed
	rl.mu.Unlock()
	p.log.Info("proxy: socket closed", "conn", rl.id, "by", byName(c.By), "code", c.Code, "reason", mask.Text(c.Reason))
	p.observeClosed(c)
	close(rl.done)
}

func byName(d Direction) string {
	switch d {
	case FromApp:
		return "app"
	case ToApp:
		return "upstream"
	}
	return "proxy"
}

// forwardControl relays src's pings and pongs to dst, so that the ends
// answer each other's pings as they would directly.
func (rl *relay) forwardControl(src, dst *websocket.Conn) {
	timeout := rl.p.cfg.CloseTimeout
	src.SetPingHandler(func(data string) error {
		if rl.isFrozen() {
			return nil
		}
		_ = dst.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(timeout))
		return nil
	})
	src.SetPongHandler(func(data string) error {
		if rl.isFrozen() {
			return nil
		}
		_ = dst.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(timeout))
		return nil
	})
	// A close frame is relayed by the pump, not answered here.
	src.SetCloseHandler(func(int, string) error { return nil })
}

// end records how the socket ended; the first call wins.
func (rl *relay) end(by Direction, code int, reason string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if !rl.ended {
		rl.ended = true
		rl.closed = Closed{Conn: rl.id, Time: rl.p.cfg.Now(), By: by, Code: code, Reason: reason}
	}
}

// errTooBig is a message over MaxFrameSize.
var errTooBig = errors.New("message too big")

// pump copies src's messages to dst until src ends, calling the
// Observer for each, then passes the end on to dst.
func (rl *relay) pump(src, dst *websocket.Conn, dstB *batchConn, dir Direction) {
	defer dstB.flush()
	p := rl.p
	other, wmu := ToApp, &rl.f.upW
	if dir == ToApp {
		other, wmu = FromApp, &rl.f.appW
	}
	for {
		typ, rd, err := src.NextReader()
		if err != nil {
			rl.srcEnded(dst, dir, err)
			return
		}
		bp := p.getBuf()
		b, err := readMessage(rd, (*bp)[:0], p.cfg.MaxFrameSize)
		if err != nil {
			p.putBuf(bp, b)
			if errors.Is(err, errTooBig) {
				reason := fmt.Sprintf("message exceeds %d bytes", p.cfg.MaxFrameSize)
				rl.end(dir, websocket.CloseMessageTooBig, reason)
				msg := websocket.FormatCloseMessage(websocket.CloseMessageTooBig, reason)
				deadline := time.Now().Add(p.cfg.CloseTimeout)
				_ = src.WriteControl(websocket.CloseMessage, msg, deadline)
				_ = dst.WriteControl(websocket.CloseMessage, msg, deadline)
				_ = src.SetReadDeadline(deadline) // the other pump still relays
				_ = dst.SetReadDeadline(deadline) // the other side's answer
				return
			}
			rl.srcEnded(dst, dir, err)
			return
		}
		copies := 1
		if dir == ToApp {
			// Decided first, so that the Observer sees what the app
			// gets: a dropped message not, a duplicated one twice.
			copies = rl.toApp(b, typ == websocket.BinaryMessage)
		} else if p.cfg.Observer != nil {
			// What the app sent, when it sent it (a push a fault then
			// swallows included).
			p.observeFrame(Frame{Conn: rl.id, Dir: dir, Time: p.cfg.Now(), Binary: typ == websocket.BinaryMessage, Data: b})
		}
		if !rl.wait() {
			p.putBuf(bp, b)
			return
		}
		if dir == ToApp && p.cfg.Observer != nil {
			// After a freeze or latency: when the app gets it, so that
			// the model's heartbeat round trip is the app's.
			for range copies {
				p.observeFrame(Frame{Conn: rl.id, Dir: dir, Time: p.cfg.Now(), Binary: typ == websocket.BinaryMessage, Data: b})
			}
		}
		if dir == FromApp && !rl.fromApp(b, typ == websocket.BinaryMessage) {
			copies = 0
		}
		wmu.Lock()
		dstB.setBatching(true)
		for range copies {
			if err = dst.WriteMessage(typ, b); err != nil {
				break
			}
		}
		dstB.setBatching(false)
		wmu.Unlock()
		p.putBuf(bp, b)
		if err != nil {
			// dst is gone: its side ended the socket.
			rl.end(other, websocket.CloseAbnormalClosure, "")
			rl.cut()
			return
		}
	}
}

// srcEnded passes the end of src on to dst: a close frame as src sent
// it, or a cut connection when src broke (what a direct connection's
// peer would see).
func (rl *relay) srcEnded(dst *websocket.Conn, dir Direction, err error) {
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code == websocket.CloseAbnormalClosure {
		rl.end(dir, websocket.CloseAbnormalClosure, "")
		rl.cut()
		return
	}
	rl.end(dir, ce.Code, ce.Text)
	deadline := time.Now().Add(rl.p.cfg.CloseTimeout)
	if err := dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ce.Text), deadline); err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		rl.cut()
		return
	}
	_ = dst.SetReadDeadline(deadline) // dst has this long to answer
}

// cut closes both connections without a close frame.
func (rl *relay) cut() {
	rl.end(0, websocket.CloseAbnormalClosure, "proxy closed")
	rl.f.once.Do(func() { close(rl.f.stop) })
	_ = rl.app.NetConn().Close()
	_ = rl.up.NetConn().Close()
}

// goAway sends both sides a close frame (1001) and gives them
// CloseTimeout to answer.
func (rl *relay) goAway() {
	const reason = "rtm proxy shutting down"
	rl.end(0, websocket.CloseGoingAway, reason)
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, reason)
	deadline := time.Now().Add(rl.p.cfg.CloseTimeout)
	for _, c := range []*websocket.Conn{rl.app, rl.up} {
		_ = c.WriteControl(websocket.CloseMessage, msg, deadline)
		_ = c.SetReadDeadline(deadline)
	}
}

// readMessage appends the message of rd to b, up to max bytes.
func readMessage(rd io.Reader, b []byte, max int) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > max {
			return b, errTooBig
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// getBuf returns a message buffer from the pool.
func (p *Proxy) getBuf() *[]byte {
	if bp, ok := p.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 512)
	return &b
}

// putBuf returns bp, now holding b, to the pool unless it grew too big.
func (p *Proxy) putBuf(bp *[]byte, b []byte) {
	if cap(b) > maxPooledMessage {
		return
	}
	*bp = b[:0]
	p.bufs.Put(bp)
}
