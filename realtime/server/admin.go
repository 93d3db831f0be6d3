package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

// admin wraps an admin handler: it needs a valid token with role
// service_role (Authorization: Bearer, or the apikey header or query
// parameter).
func (s *Server) admin(h func(http.ResponseWriter, *http.Request, *Claims)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		claims, ok := s.restAuth(w, r)
		if !ok {
			return
		}
		if claims.Role != RoleServiceRole {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden: the admin API needs the service_role key"})
			return
		}
		h(w, r, claims)
	}
}

// duration reads a duration given as a Go duration string ("1.5s") or a
// number of milliseconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("a duration is a string such as \"5s\" or milliseconds: %w", err)
	}
	*d = duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// decodeAdmin reads an admin request body into v (an empty body is {}).
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			answerTimedOut(w, "The request body did not arrive in time")
			return false
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Cannot read the request body"})
		return false
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return true
	}
	d := json.NewDecoder(&buf)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Invalid JSON body: " + clip(err.Error())})
		return false
	}
	return true
}

// adminConnections lists the sockets within [MaxListedChannels] and
// [MaxListedPresenceBytes]: "total" counts every open socket, "listed"
// those in the reply.
func (s *Server) adminConnections(w http.ResponseWriter, r *http.Request, _ *Claims) {
	conns, total := s.listConns(MaxListedChannels)
	writeJSON(w, http.StatusOK, map[string]any{"connections": conns, "total": total, "listed": len(conns)})
}

// adminChannels lists the topics within [MaxListedTopics] and
// [MaxListedPresenceBytes]: "total" counts every topic, "listed" those in
// the reply.
func (s *Server) adminChannels(w http.ResponseWriter, r *http.Request, _ *Claims) {
	topics, total := s.listTopics(MaxListedTopics)
	writeJSON(w, http.StatusOK, map[string]any{"channels": topics, "total": total, "listed": len(topics)})
}

func (s *Server) adminStats(w http.ResponseWriter, r *http.Request, _ *Claims) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) adminDrop(w http.ResponseWriter, r *http.Request, _ *Claims) {
	var req struct {
		IDs []string `json:"ids"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"dropped": s.Drop(req.IDs...)})
}

func (s *Server) adminKick(w http.ResponseWriter, r *http.Request, _ *Claims) {
	var req struct {
		Topic string `json:"topic"`
		Mode  string `json:"mode"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	mode, err := ParseKickMode(req.Mode)
	if err != nil || req.Topic == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": `want {"topic":"realtime:<name>","mode":"error"|"close"}`})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"kicked": s.Kick(req.Topic, mode)})
}

func (s *Server) adminRejectJoins(w http.ResponseWriter, r *http.Request, _ *Claims) {
	var req struct {
		Count  int      `json:"count"`
		For    duration `json:"for"`
		Reason string   `json:"reason"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	if req.Count < 0 || req.For < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "count and for must not be negative"})
		return
	}
	rej := Rejection{Count: req.Count, For: time.Duration(req.For), Reason: req.Reason}
	s.RejectJoins(rej)
	reason := rej.Reason
	if reason == "" && (rej.Count > 0 || rej.For > 0) {
		reason = DefaultRejectReason
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": rej.Count, "for": rej.For.String(), "reason": reason})
}

func (s *Server) adminPause(w http.ResponseWriter, r *http.Request, _ *Claims) {
	var req struct {
		ID  string   `json:"id"`
		For duration `json:"for"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	if err := s.Pause(req.ID, time.Duration(req.For)); err != nil {
		status := http.StatusNotFound
		if req.For <= 0 {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, map[string]string{"message": clip(err.Error())})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"paused": req.ID, "for": time.Duration(req.For).String()})
}

// adminRestart answers 202 first, then restarts in the background (the
// request arrived on the listener that goes down).
func (s *Server) adminRestart(w http.ResponseWriter, r *http.Request, _ *Claims) {
	var req struct {
		Downtime duration `json:"downtime"`
	}
	if !decodeAdmin(w, r, &req) {
		return
	}
	s.lifeMu.Lock()
	started := s.httpSrv != nil
	s.lifeMu.Unlock()
	if !started {
		writeJSON(w, http.StatusConflict, map[string]string{"message": ErrNotStarted.Error()})
		return
	}
	// The whole answer goes out before the listener and this connection
	// close: a fixed length, flushed.
	body, _ := json.Marshal(map[string]string{"restarting": time.Duration(req.Downtime).String()})
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(body)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.spawn(func() { // Restart also ends when the server closes
		if err := s.Restart(context.Background(), time.Duration(req.Downtime)); err != nil {
			s.log.Error("Restart failed", logKeyErr, err)
		}
	})
}
