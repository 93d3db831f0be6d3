package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// routes builds the HTTP handler.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/realtime/v1/websocket", "/socket/websocket"} {
		mux.HandleFunc("GET "+p, s.serveWS)
	}
	for _, base := range []string{"/realtime/v1/api", "/api"} {
		mux.HandleFunc(base+"/broadcast", s.cors(s.serveBatch))
		mux.HandleFunc(base+"/broadcast/{topic}/events/{event}", s.cors(s.serveSingle))
	}
	mux.HandleFunc("GET /admin/connections", s.admin(s.adminConnections))
	mux.HandleFunc("GET /admin/channels", s.admin(s.adminChannels))
	mux.HandleFunc("GET /admin/stats", s.admin(s.adminStats))
	mux.HandleFunc("GET /admin/limits", s.admin(s.adminLimits))
	mux.HandleFunc("POST /admin/drop", s.admin(s.adminDrop))
	mux.HandleFunc("POST /admin/kick", s.admin(s.adminKick))
	mux.HandleFunc("POST /admin/reject-joins", s.admin(s.adminRejectJoins))
	mux.HandleFunc("POST /admin/pause", s.admin(s.adminPause))
	mux.HandleFunc("POST /admin/restart", s.admin(s.adminRestart))
	mux.HandleFunc("/admin/", s.admin(func(w http.ResponseWriter, r *http.Request, _ *Claims) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not found: " + clip(r.Method+" "+r.URL.Path)})
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "rtm: Supabase-compatible Realtime server\n\n"+
			"WebSocket  /realtime/v1/websocket?apikey=<jwt>&vsn=2.0.0\n"+
			"REST       POST /realtime/v1/api/broadcast\n"+
			"           POST /realtime/v1/api/broadcast/{topic}/events/{event}\n"+
			"Admin      /admin/{connections,channels,stats,limits,drop,kick,reject-joins,pause,restart} (service_role)\n")
	})
	return s.withHTTPDeadlines(mux)
}

// cors makes a REST endpoint CORS-open, answers preflights and refuses
// methods other than POST.
func (s *Server) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		hd.Set("Access-Control-Allow-Headers", "authorization, apikey, content-type, x-client-info, x-api-key")
		switch r.Method {
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
		case http.MethodPost:
			h(w, r)
		default:
			hd.Set("Allow", "POST, OPTIONS")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Method not allowed"})
		}
	}
}

// requestToken returns the token of a REST or admin request: the
// Authorization bearer, else the apikey header, else the apikey query
// parameter.
func requestToken(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		if t, ok := strings.CutPrefix(a, "bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	if t := r.Header.Get("apikey"); t != "" {
		return t
	}
	return r.URL.Query().Get("apikey")
}

// restAuth verifies the request's token; on failure it answers 401.
func (s *Server) restAuth(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	token := s.apiKeyJWT(requestToken(r))
	claims, aerr := verifyToken(token, s.cfg.JWTSecret, s.now())
	if token == "" || aerr != nil {
		reason := "API key is missing"
		if aerr != nil {
			reason = aerr.Reason()
		}
		s.log.Info("REST request refused", logKeyReason, reason, "path", r.URL.Path)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
		return nil, false
	}
	return claims, true
}

// maxRESTBody bounds a REST request body.
func (s *Server) maxRESTBody() int64 {
	n := int64(s.cfg.MaxFrameSize)
	if kb := s.cfg.Limits.MaxPayloadSizeKB; kb > 0 && int64(kb)*1000*4 > n {
		n = int64(kb) * 1000 * 4
	}
	return n
}

// readBody reads a REST request's body, at most maxRESTBody bytes. A
// body over the limit is answered 413, one that does not arrive within
// Config.HTTPReadTimeout 408, and a broken one 400.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := s.maxRESTBody()
	var body []byte
	var err error
	if r.ContentLength > limit {
		err = &http.MaxBytesError{Limit: limit} // refused before reading it
	} else {
		body, err = readAllSized(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"message": fmt.Sprintf("Request body exceeds %d bytes", mbe.Limit)})
		case errors.Is(err, os.ErrDeadlineExceeded):
			answerTimedOut(w, fmt.Sprintf("The request body did not arrive within %v", s.cfg.HTTPReadTimeout))
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Cannot read the request body"})
		}
		return nil, false
	}
	return body, true
}

// maxEcho bounds how much of a request's own text (a topic, a path, a
// header) an error answer quotes back.
const maxEcho = 200

// clip returns s cut to at most maxEcho bytes, at a rune boundary, with
// "…" marking the cut.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// readAllSized reads r to its end. A known length (n >= 0, from
// Content-Length) sizes the buffer exactly, but it grows towards n to at
// most four times what has arrived, so a client announcing a large body
// and sending none costs little; the buffers outgrown come to less than
// 4/3 of the body.
func readAllSized(r io.Reader, n int64) ([]byte, error) {
	const first = 64 << 10
	size := int64(first)
	if n >= 0 && n < size {
		size = n + 1 // room to read the end without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			next := 4 * int64(cap(buf))
			if n >= 0 && int64(len(buf)) <= n && next > n+1 {
				next = n + 1
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// restMessage is one message of a batch broadcast.
type restMessage struct {
	topic, event string
	payload      json.RawMessage
	private      bool
	id           json.RawMessage
}

// serveBatch is POST /realtime/v1/api/broadcast: a batch of JSON
// broadcasts, answered 202 with an empty body. The body is checked in one
// pass without decoding its messages (see scanBatch), and errors are
// answered within maxBatchErrors entries.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.restAuth(w, r)
	if !ok {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	b := scanBatch(body, s.cfg.Limits.MaxPayloadSizeKB*1000, claims)
	if errs := b.errors(); errs != nil {
		writeJSON(w, http.StatusUnprocessableEntity, errs)
		return
	}
	if b.refusal != "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden: topic " + clip(b.refusedTopic) + ": " + clip(b.refusal)})
		return
	}
	if !s.restRateOK(w, b.tenantShares()) {
		return
	}
	var dropped int
	var droppedTopic string
	writable := s.batchWritable(r, claims)
	b.each(func(m restMessage) {
		if m.private && !writable(m.topic) {
			if dropped++; dropped == 1 {
				droppedTopic = m.topic
			}
			return
		}
		s.stats.restBroadcasts.Add(1)
		s.broadcastJSON(m.topic, m.private, m.event, m.payload, m.id)
	})
	if dropped > 0 { // one line per batch, however many messages
		s.log.Info("REST broadcast to a private channel dropped: no write permission", logKeyTopic, clip(droppedTopic), "messages", dropped, "role", claims.Role)
	}
	w.WriteHeader(http.StatusAccepted)
}

// tenantShares counts the messages of a valid batch per tenant of their
// topics, in order of first appearance.
func (b *batch) tenantShares() []tenantShare {
	var shares []tenantShare
	index := make(map[tenant]int)
	b.each(func(m restMessage) {
		t := topicTenant(m.topic)
		if i, ok := index[t]; ok {
			shares[i].n++
			return
		}
		index[t] = len(shares)
		shares = append(shares, tenantShare{t: t, n: 1})
	})
	return shares
}

// restRateOK applies the events-per-second limit to REST messages, each
// charged to its topic's tenant (shares: how many messages each tenant
// pays for), all or none; on refusal it answers 429.
func (s *Server) restRateOK(w http.ResponseWriter, shares []tenantShare) bool {
	lim := s.cfg.Limits.MaxEventsPerSecond
	if lim <= 0 {
		return true
	}
	n, count, ok := s.tenants.allowAll(rateEvents, s.now(), lim, shares)
	if ok {
		return true
	}
	s.stats.rateLimited.Add(1)
	msg := "You have exceeded your rate limit"
	if count <= int64(lim) && n > 1 {
		msg = "Too many messages to broadcast, please reduce the batch size"
	}
	writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": msg})
	return false
}

// serveSingle is POST /realtime/v1/api/broadcast/{topic}/events/{event}:
// one broadcast whose body is JSON (application/json) or raw bytes
// (application/octet-stream), delivered as a binary user broadcast (kind
// 4 to 2.0.0 clients). Answered 202.
func (s *Server) serveSingle(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.restAuth(w, r)
	if !ok {
		return
	}
	topic, event := r.PathValue("topic"), r.PathValue("event")
	private := r.URL.Query().Get("private") == "true"
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		ct = ""
	}
	var binary bool
	switch ct {
	case "application/json":
	case "application/octet-stream":
		binary = true
	default:
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{
			"message": "Unsupported content type " + fmt.Sprintf("%q", clip(r.Header.Get("Content-Type"))) + ": use application/json or application/octet-stream"})
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	errs := map[string][]string{}
	if topic == "" {
		errs["topic"] = []string{"can't be blank"}
	}
	if event == "" {
		errs["event"] = []string{"can't be blank"}
	}
	if !binary {
		switch trimmed := bytes.TrimSpace(body); {
		case len(trimmed) == 0:
			body = []byte("{}") // as Plug parses an empty JSON body
		case string(trimmed) == "null":
			errs["payload"] = []string{"can't be blank"}
		case !protocol.Valid(body):
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "The request body is not valid JSON"})
			return
		default:
			body = trimmed
		}
	}
	if max := s.cfg.Limits.MaxPayloadSizeKB * 1000; max > 0 && len(body) > max {
		errs["payload"] = []string{"Payload size exceeds tenant limit"}
	}
	if len(topic) > maxSubTopicBytes || len(event) > MaxEventBytes {
		errs["topic"] = append(errs["topic"], "topic and event must fit a binary frame header (255 bytes)")
	}
	if len(errs) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": errs})
		return
	}
	if why := tenantRefusal(topic, claims); why != "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden: topic " + clip(topic) + ": " + clip(why)})
		return
	}
	if !s.restRateOK(w, []tenantShare{{t: topicTenant(topic), n: 1}}) {
		return
	}
	if private && s.cfg.Authorizer != nil && !s.restMayWrite(r, topic, claims) {
		s.log.Info("REST broadcast to a private channel refused: no write permission", logKeyTopic, clip(topic), "role", claims.Role)
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Unauthorized"})
		return
	}
	if private && s.cfg.Authorizer == nil && !canUsePrivate(claims.Role) {
		s.log.Info("REST broadcast to a private channel dropped: no write permission", logKeyTopic, topic, "role", claims.Role)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	s.stats.restBroadcasts.Add(1)
	s.broadcastTo(topic, private, &protocol.Message{
		Topic: protocol.Topic(topic), Event: protocol.EventBroadcast,
		Broadcast: &protocol.Broadcast{Event: event, Payload: body, Binary: binary},
	})
	w.WriteHeader(http.StatusAccepted)
}
