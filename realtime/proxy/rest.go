package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The Realtime REST broadcasts (POST /realtime/v1/api/broadcast and
// /realtime/v1/api/broadcast/{topic}/events/{event}) are forwarded as
// every other request, and also decoded for a [RESTObserver]: their body
// is teed as the upstream reads it (a copy of at most MaxRESTBody bytes,
// nothing held back or changed), and once the upstream has answered the
// observation is decoded and reported on a goroutine of its own, so that
// the app's answer does not wait for it.

// Defaults of the REST broadcast observation.
const (
	// DefaultMaxRESTBody bounds the copy of one REST broadcast body
	// kept for decoding (1 MiB); a bigger body is forwarded whole and
	// reported clipped, not decoded.
	DefaultMaxRESTBody = 1 << 20
	// DefaultMaxRESTBytes bounds the copies of every REST broadcast body
	// in flight at once (16 MiB); beyond, a body is reported clipped.
	DefaultMaxRESTBytes = 16 << 20
)

// RESTObserver is an optional interface of Config.Observer: when the
// Observer has it, the proxy reports every Realtime REST broadcast
// request it forwarded, once the upstream has answered (on a goroutine
// of the request; it returns quickly).
type RESTObserver interface {
	REST(RESTBroadcast)
}

// RESTBroadcast is one Realtime REST broadcast request as the proxy
// forwarded it.
//
// Like [ConnInfo], it holds the app's credentials as the app sent them
// (the Authorization and apikey headers, the apikey query parameter): an
// Observer must mask them (package realtime/mask) before they leave it.
type RESTBroadcast struct {
	// ID numbers the proxy's REST broadcasts from 1.
	ID uint64
	// Time is when the request arrived, Answered when the upstream's
	// answer did (or the proxy gave up on it).
	Time, Answered time.Time
	// RemoteAddr is the app's address (host:port).
	RemoteAddr string
	// Path and RawQuery are the request's, as the app sent them.
	Path, RawQuery string
	// Header is a copy of the app's request headers.
	Header http.Header
	// Status is the upstream's status code (502 when it could not be
	// reached: the proxy's answer).
	Status int
	// Bytes counts the body bytes the upstream read.
	Bytes int64
	// Decoded is true when Messages is the whole body decoded. Clipped
	// says why not when the body was bigger than the copy kept
	// (MaxRESTBody, or the proxy's MaxRESTBytes for all bodies in
	// flight); Error says why otherwise (the body is no JSON object, the
	// upstream did not read it to its end).
	Decoded bool
	Clipped bool
	Error   string
	// Messages are the broadcasts of the body (of the path, for the
	// single endpoint), in order.
	Messages []RESTMessage
}

// RESTMessage is one broadcast of a REST request.
type RESTMessage struct {
	// Topic is as the app wrote it ("room1": the channel
	// "realtime:room1").
	Topic string
	Event string
	// Payload is the message's payload, its JSON (its bytes for a
	// binary single broadcast), valid only during the call.
	Payload []byte
	// Binary is a single broadcast sent as application/octet-stream.
	Binary  bool
	Private bool
}

// restPath tells the REST broadcast endpoints: batch is the batch one,
// else topic and event are the single one's; ok is false for any other
// path.
func restPath(path string) (batch bool, topic, event string, ok bool) {
	rest, found := strings.CutPrefix(path, "/realtime/v1/api/broadcast")
	if !found {
		if rest, found = strings.CutPrefix(path, "/api/broadcast"); !found {
			return false, "", "", false
		}
	}
	if rest == "" || rest == "/" {
		return true, "", "", true
	}
	topic, event, found = strings.Cut(strings.TrimPrefix(rest, "/"), "/events/")
	if !found || topic == "" || event == "" || strings.Contains(topic, "/") || strings.Contains(event, "/") {
		return false, "", "", false
	}
	return false, topic, event, true
}

// restObs is the observation of one REST broadcast in flight.
type restObs struct {
	p   *Proxy
	obs RESTObserver
	rb  RESTBroadcast
	// batch, topic and event are restPath's.
	batch        bool
	topic, event string

	mu      sync.Mutex
	body    io.ReadCloser // the app's
	buf     []byte        // the copy, up to MaxRESTBody
	held    int           // bytes of buf charged to p.restBytes
	clipped bool
	eof     bool
	status  int
}

type restObsKey struct{}

// observeREST returns the observation of r when it is a REST broadcast
// and the Observer wants it (nil otherwise); r's body is then teed.
func (p *Proxy) observeREST(r *http.Request) (*restObs, *http.Request) {
	obs, ok := p.cfg.Observer.(RESTObserver)
	if !ok || r.Method != http.MethodPost {
		return nil, r
	}
	batch, topic, event, ok := restPath(r.URL.Path)
	if !ok {
		return nil, r
	}
	o := &restObs{p: p, obs: obs, batch: batch, topic: topic, event: event, body: r.Body,
		rb: RESTBroadcast{ID: p.nextREST.Add(1), Time: p.cfg.Now(), RemoteAddr: r.RemoteAddr,
			Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()}}
	r = r.WithContext(context.WithValue(r.Context(), restObsKey{}, o))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = o
	} else {
		o.eof = true
	}
	return o, r
}

// Read reads the app's body and keeps a copy of what it read.
func (o *restObs) Read(b []byte) (int, error) {
	n, err := o.body.Read(b)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rb.Bytes += int64(n)
	switch {
	case n == 0 || o.clipped:
	case len(o.buf)+n > o.p.cfg.MaxRESTBody:
		o.clip()
	case o.p.restBytes.Add(int64(n)) > int64(o.p.cfg.MaxRESTBytes):
		o.p.restBytes.Add(-int64(n))
		o.clip()
	default:
		o.held += n
		o.buf = append(o.buf, b[:n]...)
	}
	if err == io.EOF {
		o.eof = true
	}
	return n, err
}

// Close closes the app's body.
func (o *restObs) Close() error { return o.body.Close() }

// clip drops the copy (o.mu held).
func (o *restObs) clip() {
	o.clipped = true
	o.buf = nil
	o.p.restBytes.Add(-int64(o.held))
	o.held = 0
}

// answered records the upstream's status (ModifyResponse, ErrorHandler).
func answered(ctx context.Context, status int) {
	if o, ok := ctx.Value(restObsKey{}).(*restObs); ok {
		o.mu.Lock()
		o.status = status
		o.mu.Unlock()
	}
}

// report decodes the observation and tells the Observer, then frees the
// copy.
func (o *restObs) report() {
	o.mu.Lock()
	rb := o.rb
	rb.Answered, rb.Status, rb.Clipped = o.p.cfg.Now(), o.status, o.clipped
	buf, eof := o.buf, o.eof
	o.mu.Unlock()
	switch {
	case rb.Clipped:
		rb.Error = fmt.Sprintf("the body is over %d bytes (or the proxy holds %d bytes of bodies)", o.p.cfg.MaxRESTBody, o.p.cfg.MaxRESTBytes)
	case !eof:
		rb.Error = "the upstream did not read the body to its end"
	case o.batch:
		rb.Messages, rb.Error = decodeBatch(buf)
	default:
		rb.Messages = []RESTMessage{o.single(buf)}
	}
	rb.Decoded = !rb.Clipped && rb.Error == ""
	if rb.Status == 0 {
		rb.Status = http.StatusBadGateway
	}
	o.obs.REST(rb)
	o.mu.Lock()
	o.clip()
	o.mu.Unlock()
}

// decodeBatch reads a batch body, {"messages":[{topic, event, payload,
// private}, ...]}.
func decodeBatch(body []byte) ([]RESTMessage, string) {
	var b struct {
		Messages []struct {
			Topic   string          `json:"topic"`
			Event   string          `json:"event"`
			Payload json.RawMessage `json:"payload"`
			Private bool            `json:"private"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, "the body is not a batch: " + err.Error()
	}
	if b.Messages == nil {
		return nil, `the body has no "messages"`
	}
	out := make([]RESTMessage, len(b.Messages))
	for i, m := range b.Messages {
		out[i] = RESTMessage{Topic: m.Topic, Event: m.Event, Payload: m.Payload, Private: m.Private}
	}
	return out, ""
}

// single is the broadcast of the single endpoint: topic and event from
// the path, the body its payload.
func (o *restObs) single(body []byte) RESTMessage {
	ct, _, _ := mime.ParseMediaType(o.rb.Header.Get("Content-Type"))
	private := false
	for kv := range strings.SplitSeq(o.rb.RawQuery, "&") {
		if kv == "private=true" {
			private = true
		}
	}
	return RESTMessage{Topic: o.topic, Event: o.event, Payload: body,
		Binary: ct == "application/octet-stream", Private: private}
}
