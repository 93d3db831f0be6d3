package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

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
	mux.HandleFunc("POST /admin/drop", s.admin(s.adminDrop))
	mux.HandleFunc("POST /admin/kick", s.admin(s.adminKick))
	mux.HandleFunc("POST /admin/reject-joins", s.admin(s.adminRejectJoins))
	mux.HandleFunc("POST /admin/pause", s.admin(s.adminPause))
	mux.HandleFunc("POST /admin/restart", s.admin(s.adminRestart))
	mux.HandleFunc("/admin/", s.admin(func(w http.ResponseWriter, r *http.Request, _ *Claims) {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not found: " + r.Method + " " + r.URL.Path})
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "rtm: Supabase-compatible Realtime server\n\n"+
			"WebSocket  /realtime/v1/websocket?apikey=<jwt>&vsn=2.0.0\n"+
			"REST       POST /realtime/v1/api/broadcast\n"+
			"           POST /realtime/v1/api/broadcast/{topic}/events/{event}\n"+
			"Admin      /admin/{connections,channels,stats,drop,kick,reject-joins,pause,restart} (service_role)\n")
	})
	return mux
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

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxRESTBody()))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"message": fmt.Sprintf("Request body exceeds %d bytes", mbe.Limit)})
		} else {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Cannot read the request body"})
		}
		return nil, false
	}
	return body, true
}

// restMessage is one message of a batch broadcast.
type restMessage struct {
	topic, event string
	payload      json.RawMessage
	private      bool
	id           json.RawMessage
}

// parseBatch validates a batch body {"messages":[{topic, event, payload,
// private?, id?}]}. On failure errs is the 422 body's "errors" object in
// Supabase's shape.
func parseBatch(body []byte, maxPayload int) ([]restMessage, map[string]any) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return nil, map[string]any{"body": []string{"must be a JSON object"}}
	}
	raw, ok := top["messages"]
	if !ok || isNull(raw) {
		return nil, map[string]any{"messages": []string{"can't be blank"}}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, map[string]any{"messages": []string{"is invalid"}}
	}
	if len(list) == 0 {
		return nil, map[string]any{"messages": []string{"can't be blank"}}
	}
	msgs := make([]restMessage, 0, len(list))
	perMsg := make([]map[string][]string, len(list))
	valid := true
	for i, item := range list {
		errs := map[string][]string{}
		perMsg[i] = errs
		var m map[string]json.RawMessage
		if json.Unmarshal(item, &m) != nil || m == nil {
			errs["message"] = []string{"is invalid"}
			valid = false
			continue
		}
		var rm restMessage
		str := func(field string, dst *string) {
			v, ok := m[field]
			if !ok || isNull(v) {
				errs[field] = []string{"can't be blank"}
				return
			}
			if json.Unmarshal(v, dst) != nil {
				errs[field] = []string{"is invalid"}
				return
			}
			if *dst == "" {
				errs[field] = []string{"can't be blank"}
			}
		}
		str("topic", &rm.topic)
		str("event", &rm.event)
		if len(rm.topic) > maxSubTopicBytes {
			errs["topic"] = append(errs["topic"], fmt.Sprintf("must be at most %d bytes (%d with the %q prefix)", maxSubTopicBytes, MaxTopicBytes, protocol.TopicPrefix))
		}
		if len(rm.event) > MaxEventBytes {
			errs["event"] = append(errs["event"], fmt.Sprintf("must be at most %d bytes", MaxEventBytes))
		}
		switch p, ok := m["payload"]; {
		case !ok || isNull(p):
			errs["payload"] = []string{"can't be blank"}
		case !protocol.IsObject(p):
			errs["payload"] = []string{"is invalid"}
		case maxPayload > 0 && len(p) > maxPayload:
			errs["payload"] = []string{"Payload size exceeds tenant limit"}
		default:
			rm.payload = p
		}
		if p, ok := m["private"]; ok && !isNull(p) {
			var b protocol.FlexBool
			if json.Unmarshal(p, &b) != nil {
				errs["private"] = []string{"is invalid"}
			}
			rm.private = bool(b)
		}
		if id, ok := m["id"]; ok && !isNull(id) {
			rm.id = id
		}
		if len(errs) > 0 {
			valid = false
		}
		msgs = append(msgs, rm)
	}
	if !valid {
		return nil, map[string]any{"messages": perMsg}
	}
	return msgs, nil
}

// serveBatch is POST /realtime/v1/api/broadcast: a batch of JSON
// broadcasts, answered 202 with an empty body.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.restAuth(w, r)
	if !ok {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	msgs, errs := parseBatch(body, s.cfg.Limits.MaxPayloadSizeKB*1000)
	if errs != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": errs})
		return
	}
	for _, m := range msgs {
		if why := tenantRefusal(m.topic, claims); why != "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden: topic " + m.topic + ": " + why})
			return
		}
	}
	if !s.restRateOK(w, len(msgs)) {
		return
	}
	for _, m := range msgs {
		if m.private && !canUsePrivate(claims.Role) {
			s.log.Info("REST broadcast to a private channel dropped: no write permission", logKeyTopic, m.topic, "role", claims.Role)
			continue
		}
		s.stats.restBroadcasts.Add(1)
		s.broadcastJSON(m.topic, m.private, m.event, m.payload, m.id)
	}
	w.WriteHeader(http.StatusAccepted)
}

// restRateOK applies the events-per-second limit to n REST messages; on
// refusal it answers 429.
func (s *Server) restRateOK(w http.ResponseWriter, n int) bool {
	lim := s.cfg.Limits.MaxEventsPerSecond
	if lim <= 0 {
		return true
	}
	now := s.now()
	if s.eventsRate.allow(now, lim, n) {
		return true
	}
	s.stats.rateLimited.Add(1)
	msg := "You have exceeded your rate limit"
	if s.eventsRate.count(now) <= int64(lim) && n > 1 {
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
			"message": "Unsupported content type " + fmt.Sprintf("%q", r.Header.Get("Content-Type")) + ": use application/json or application/octet-stream"})
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
		switch trimmed := strings.TrimSpace(string(body)); {
		case trimmed == "":
			body = []byte("{}") // as Plug parses an empty JSON body
		case trimmed == "null":
			errs["payload"] = []string{"can't be blank"}
		case !protocol.Valid(body):
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "The request body is not valid JSON"})
			return
		default:
			body = []byte(trimmed)
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
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden: topic " + topic + ": " + why})
		return
	}
	if !s.restRateOK(w, 1) {
		return
	}
	if private && !canUsePrivate(claims.Role) {
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
