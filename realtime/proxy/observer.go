package proxy

import (
	"net/http"
	"time"
)

// Direction says which way a relayed frame went.
type Direction uint8

const (
	// FromApp is a frame the app sent, relayed to the upstream.
	FromApp Direction = iota + 1
	// ToApp is a frame the upstream sent, relayed to the app.
	ToApp
)

// String returns "app->upstream" or "upstream->app".
func (d Direction) String() string {
	switch d {
	case FromApp:
		return "app->upstream"
	case ToApp:
		return "upstream->app"
	}
	return "unknown"
}

// ConnInfo describes one app websocket as the proxy accepted it.
//
// It holds the app's credentials as the app sent them (the apikey query
// parameter, the Authorization header): an Observer must mask them
// (package realtime/mask) before they leave it.
type ConnInfo struct {
	// ID numbers the proxy's sockets from 1, in the order they opened.
	ID uint64
	// RemoteAddr is the app's address (host:port).
	RemoteAddr string
	// Path and RawQuery are the request's, as the app sent them
	// (/realtime/v1/websocket, apikey=...&vsn=2.0.0).
	Path, RawQuery string
	// Header is a copy of the app's upgrade request headers.
	Header http.Header
	// Upstream is the upstream websocket URL dialled, without its query.
	Upstream string
	// Opened is when the upstream accepted the relayed upgrade.
	Opened time.Time
}

// Frame is one websocket message relayed, whole.
type Frame struct {
	// Conn is the ConnInfo.ID of its socket.
	Conn uint64
	// Dir is the way it went.
	Dir Direction
	// Time is when the proxy read it.
	Time time.Time
	// Binary is true for a binary message, false for text.
	Binary bool
	// Data is the message's bytes, valid only during the call: an
	// Observer copies what it keeps.
	Data []byte
}

// Closed says how a relayed socket ended.
type Closed struct {
	// Conn is the ConnInfo.ID of the socket.
	Conn uint64
	// Time is when the proxy saw the end.
	Time time.Time
	// By is the side that ended it: FromApp when the app closed (or its
	// connection broke), ToApp when the upstream did; 0 when the proxy
	// ended it (a fault, its own shutdown).
	By Direction
	// Code and Reason are the close frame's (websocket.CloseNoStatusReceived,
	// 1005, when there was none; 1006 when the connection broke).
	Code   int
	Reason string
}

// Observer watches the app traffic the proxy relays. The proxy calls it
// on its relay goroutines, in order per socket (Open, then Frames, then
// Closed), concurrently across sockets: an Observer is safe for
// concurrent use, returns quickly and never blocks (the relay waits for
// it), and keeps nothing of Frame.Data without copying it. With
// Config.ObserverQueue set, the calls are made instead on one goroutine
// of the proxy, from a bounded queue, in the order the relay made them
// (observe.go): the relay no longer waits for the Observer, which may
// see a call up to about a millisecond late and misses the frames that
// found the queue full ([Proxy.ObserverDropped]). An Observer that also
// implements [FaultObserver] is told of the faults, one that implements
// [RESTObserver] of the REST broadcasts. The frames to the app are what
// the app gets: the proxy's own fault messages (a rejected join's reply,
// phx_error, phx_close, the system message of an expired token)
// included, the messages a fault dropped or swallowed left out, a
// duplicated one twice.
type Observer interface {
	Open(ConnInfo)
	Frame(Frame)
	Closed(Closed)
}
