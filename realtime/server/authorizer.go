package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"rtm/realtime/protocol"
)

// Authorizer decides private channels by the database, as Supabase
// Realtime does with the row-level security policies on
// realtime.messages (package rtm/realtime/server/pgrealtime runs
// Supabase's probes). With [Config].Authorizer set:
//
//   - a private join runs AuthorizeRead (presence probed when the join
//     enables presence) and is refused, after
//     [Config].AuthorizationErrorDelay, with "Unauthorized: You do not
//     have permissions to read from this Channel topic: <t>" unless
//     broadcast or presence may be read; an [*AuthorizationError] gives
//     its own reason ("MissingPartition: …") and is logged with its cause
//     (RlsPolicyError);
//   - the first broadcast and the first track of a private channel run
//     AuthorizeWrite; the answer is kept until the token changes. A
//     broadcast without broadcast write is dropped with no reply (even
//     with ack), a track without presence write is answered error {};
//   - fan-out withholds broadcasts from private channels without
//     broadcast read and presence (presence_state, presence_diff) from
//     those without presence read (unknown until presence is probed: at
//     a join with presence enabled, or the first track);
//   - an access_token push with a new token re-runs the read check: a
//     token that may read neither shuts the channel with "You do not
//     have permissions to read from this Channel topic: <t>", one that
//     lost a read but keeps the other with "You no longer have
//     permission to read from this Channel topic: <t>";
//   - REST: a private single broadcast without write is answered 403
//     {"message":"Unauthorized"}, a batch's private messages without
//     write are dropped (the batch is still answered 202), each private
//     topic of a batch checked once.
//
// Without an Authorizer, private channels take the role rule:
// authenticated and service_role may read and write them.
//
// The checks of a socket run on its reader goroutine while it holds the
// socket's lock, each bounded by authorizationTimeout, as Supabase's
// channel process waits for its own checks.
type Authorizer interface {
	// AuthorizeRead runs the read (SELECT policy) check for a join or a
	// token refresh; Presence is meaningful only when req.Presence.
	AuthorizeRead(ctx context.Context, req AuthorizationRequest) (Permissions, error)
	// AuthorizeWrite runs the write (INSERT policy) check for broadcast
	// and presence.
	AuthorizeWrite(ctx context.Context, req AuthorizationRequest) (Permissions, error)
}

// AuthorizationRequest is one check: who asks about which topic.
type AuthorizationRequest struct {
	// Topic is the sub-topic ("room-1" for "realtime:room-1"), the value
	// of realtime.topic().
	Topic string
	// Role and Sub are the token's role and sub claims; Claims all of its
	// claims (a JSON object).
	Role, Sub string
	Claims    json.RawMessage
	// Headers is request.headers, a JSON object of lower-case names: the
	// x-* headers of the WebSocket upgrade, or every header of a REST
	// request.
	Headers json.RawMessage
	// Presence asks the read check to probe presence too.
	Presence bool
}

// Permissions are the answers of a check: read or write, per extension.
type Permissions struct {
	Broadcast, Presence bool
}

// AuthorizationError is a check that failed in a way Supabase names:
// Code and Message form the join error's reason ("MissingPartition:
// Realtime was unable to find the expected messages partition"); Log,
// when set, is logged with Err ("RlsPolicyError" with the policy's
// error).
type AuthorizationError struct {
	Code, Message string
	Log           string
	Err           error
}

// Error implements error.
func (e *AuthorizationError) Error() string {
	s := e.Code + ": " + e.Message
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *AuthorizationError) Unwrap() error { return e.Err }

// authorizationTimeout bounds one check.
const authorizationTimeout = 10 * time.Second

// DefaultAuthorizationErrorDelay is Config.AuthorizationErrorDelay's
// default: Supabase's CHANNEL_ERROR_BACKOFF_MS.
const DefaultAuthorizationErrorDelay = 5 * time.Second

// Bounds of request.headers for WebSocket joins.
const (
	maxXHeaders     = 64
	maxXHeaderBytes = 8 << 10
)

// Gate bits of rlsState.gate.
const (
	gateOn        uint32 = 1 << iota // the channel's deliveries are gated
	gateBroadcast                    // broadcast read
	gatePresence                     // presence read
)

// rlsState is a private channel's permissions under an Authorizer, kept
// for the channel's life as Supabase caches them.
type rlsState struct {
	// gate mirrors on and the reads for fan-out, which takes no lock.
	gate atomic.Uint32

	// guarded by c.mu
	on             bool
	read           Permissions
	presenceProbed bool
	write          *Permissions // nil: not checked for the current token
}

// setReadLocked records a read check's answer (c.mu held).
func (r *rlsState) setReadLocked(p Permissions, presenceProbed bool) {
	r.on, r.read, r.presenceProbed, r.write = true, p, presenceProbed, nil
	g := gateOn
	if p.Broadcast {
		g |= gateBroadcast
	}
	if p.Presence && presenceProbed {
		g |= gatePresence
	}
	r.gate.Store(g)
}

// receives reports whether fan-out may deliver a message of event to ch.
func (ch *channel) receives(event string) bool {
	g := ch.rls.gate.Load()
	if g&gateOn == 0 {
		return true
	}
	switch event {
	case protocol.EventBroadcast:
		return g&gateBroadcast != 0
	case protocol.EventPresenceState, protocol.EventPresenceDiff:
		return g&gatePresence != 0
	}
	return true
}

// authzContext returns the context of one check: bounded, and cancelled
// when c or the server closes.
func (c *conn) authzContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), authorizationTimeout)
	go func() {
		select {
		case <-c.done:
		case <-c.s.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// authzRequest is the request of a check by claims on sub from c.
func (c *conn) authzRequest(sub string, claims *Claims, presence bool) AuthorizationRequest {
	req := AuthorizationRequest{Topic: sub, Role: claims.Role, Sub: claims.Sub, Headers: c.xHeaders, Presence: presence}
	if b, err := json.Marshal(claims.All); err == nil {
		req.Claims = b
	}
	if req.Headers == nil {
		req.Headers = json.RawMessage(`{}`)
	}
	return req
}

// authorizePrivateJoin decides a private join (c.mu held): by the role
// rule without an Authorizer (read is nil), else by AuthorizeRead. A
// refused join is answered here; ok is false then.
func (c *conn) authorizePrivateJoin(m *protocol.Message, sub string, presence bool, claims *Claims) (read *Permissions, ok bool) {
	a := c.s.cfg.Authorizer
	if a == nil {
		if !canUsePrivate(claims.Role) {
			c.joinError(m, unauthorizedReason(sub, ""))
			return nil, false
		}
		return nil, true
	}
	ctx, cancel := c.authzContext()
	p, err := a.AuthorizeRead(ctx, c.authzRequest(sub, claims, presence))
	cancel()
	if err != nil {
		c.joinErrorAfter(m, c.authzFailure(m.Topic, err), c.s.cfg.AuthorizationErrorDelay)
		return nil, false
	}
	if !p.Broadcast && !(presence && p.Presence) {
		c.joinErrorAfter(m, unauthorizedReason(sub, ""), c.s.cfg.AuthorizationErrorDelay)
		return nil, false
	}
	return &p, true
}

// authzFailure logs a failed check and returns the join error's reason.
func (c *conn) authzFailure(topic string, err error) string {
	if ae, ok := err.(*AuthorizationError); ok {
		if ae.Log != "" {
			c.log.Error(ae.Log, logKeyTopic, topic, logKeyErr, ae.Err)
		}
		return ae.Code + ": " + ae.Message
	}
	c.log.Error("UnableToSetPolicies", logKeyTopic, topic, logKeyErr, err)
	return "UnableToSetPolicies: Realtime was unable to connect to the project database"
}

// writeLocked returns ch's write permissions, running the write check
// when the current token has none yet (c.mu held). ok is false when the
// check failed (logged; nothing cached).
func (c *conn) writeLocked(ch *channel) (Permissions, bool) {
	if ch.rls.write != nil {
		return *ch.rls.write, true
	}
	ctx, cancel := c.authzContext()
	p, err := c.s.cfg.Authorizer.AuthorizeWrite(ctx, c.authzRequest(ch.sub, ch.claims, true))
	cancel()
	if err != nil {
		c.authzFailure(ch.topic, err)
		return Permissions{}, false
	}
	ch.rls.write = &p
	return p, true
}

// mayBroadcast reports whether ch may broadcast: always on a public
// channel or without an Authorizer; else by the (lazy, cached) write
// check.
func (c *conn) mayBroadcast(ch *channel) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ch.rls.on || c.channels[ch.topic] != ch {
		return !ch.rls.on
	}
	p, ok := c.writeLocked(ch)
	return ok && p.Broadcast
}

// mayTrackLocked reports whether ch may track (c.mu held): on a gated
// channel presence read is probed first if it never was, then the write
// check decides, as Supabase's first track does.
func (c *conn) mayTrackLocked(ch *channel) bool {
	if !ch.rls.on {
		return true
	}
	if !ch.rls.presenceProbed {
		ctx, cancel := c.authzContext()
		p, err := c.s.cfg.Authorizer.AuthorizeRead(ctx, c.authzRequest(ch.sub, ch.claims, true))
		cancel()
		if err != nil {
			c.authzFailure(ch.topic, err)
			return false
		}
		write := ch.rls.write
		ch.rls.setReadLocked(Permissions{Broadcast: ch.rls.read.Broadcast, Presence: p.Presence}, true)
		ch.rls.write = write
	}
	p, ok := c.writeLocked(ch)
	if !ok || !p.Presence {
		c.log.Info("UnableToHandlePresence: :unauthorized", logKeyTopic, ch.topic)
		return false
	}
	return true
}

// recheckLocked re-runs the read check of a gated channel for a
// refreshed token (c.mu held) and returns the shutdown message, or ""
// when the channel stays (with the new reads; write checked again
// lazily).
func (c *conn) recheckLocked(ch *channel, claims *Claims) string {
	if !ch.rls.on {
		return ""
	}
	presence := ch.presenceEnabled || ch.rls.presenceProbed
	ctx, cancel := c.authzContext()
	p, err := c.s.cfg.Authorizer.AuthorizeRead(ctx, c.authzRequest(ch.sub, claims, presence))
	cancel()
	denied := "You do not have permissions to read from this Channel topic: " + ch.sub
	if err != nil {
		c.authzFailure(ch.topic, err)
		return denied
	}
	if !presence {
		p.Presence = false
	}
	if !p.Broadcast && !p.Presence {
		return denied
	}
	old := ch.rls.read
	if (old.Broadcast && !p.Broadcast) || (ch.rls.presenceProbed && old.Presence && !p.Presence) {
		return "You no longer have permission to read from this Channel topic: " + ch.sub
	}
	ch.rls.setReadLocked(p, presence)
	return ""
}

// restMayWrite runs the write check of a private REST broadcast to sub.
func (s *Server) restMayWrite(r *http.Request, sub string, claims *Claims) bool {
	req := AuthorizationRequest{Topic: sub, Role: claims.Role, Sub: claims.Sub, Headers: headersJSON(r.Header, false)}
	if b, err := json.Marshal(claims.All); err == nil {
		req.Claims = b
	}
	ctx, cancel := context.WithTimeout(r.Context(), authorizationTimeout)
	defer cancel()
	p, err := s.cfg.Authorizer.AuthorizeWrite(ctx, req)
	if err != nil {
		s.log.Error("UnableToSetPolicies", logKeyTopic, clip(sub), logKeyErr, err)
		return false
	}
	return p.Broadcast
}

// headersJSON encodes headers as a JSON object of lower-case names (the
// last value of a repeated header wins, as Elixir's Map.new): all of
// them, or only the x-* ones, at most maxXHeaders of maxXHeaderBytes.
func headersJSON(h http.Header, onlyX bool) json.RawMessage {
	names := make([]string, 0, len(h))
	for k := range h {
		if !onlyX || strings.HasPrefix(strings.ToLower(k), "x-") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := []byte{'{'}
	n := 0
	for _, k := range names {
		vs := h[k]
		if len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		if onlyX && (n == maxXHeaders || len(out)+len(k)+len(v)+6 > maxXHeaderBytes) {
			break
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = protocol.AppendString(out, strings.ToLower(k))
		out = append(out, ':')
		out = protocol.AppendString(out, v)
		n++
	}
	return append(out, '}')
}

// batchWritable returns whether claims may write each private topic of a
// REST batch: by the role rule, or by one write check per topic.
func (s *Server) batchWritable(r *http.Request, claims *Claims) func(sub string) bool {
	if s.cfg.Authorizer == nil {
		ok := canUsePrivate(claims.Role)
		return func(string) bool { return ok }
	}
	seen := make(map[string]bool) // at most one entry per message of the batch
	return func(sub string) bool {
		ok, done := seen[sub]
		if !done {
			ok = s.restMayWrite(r, sub, claims)
			seen[sub] = ok
		}
		return ok
	}
}

// xHeaders is the request.headers of a WebSocket's joins: its upgrade's
// x-* headers, kept only when an Authorizer will use them.
func (s *Server) xHeaders(r *http.Request) []byte {
	if s.cfg.Authorizer == nil {
		return nil
	}
	return headersJSON(r.Header, true)
}
