package server

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"rtm/realtime/protocol"
)

// ChangeSource is a feed of database changes for postgres_changes
// bindings (package rtm/realtime/server/pgcdc provides one from
// PostgreSQL logical replication). With Config.Changes set, every joined
// channel with postgres_changes bindings subscribes to it as its token's
// role and claims; the "Subscribed to PostgreSQL" system message is sent
// when the source reports the subscription ready, and refusals and
// problems arrive as postgres_changes system errors with their reasons.
type ChangeSource interface {
	// SubscribeChanges subscribes; an error refuses the subscription
	// with a reason for the user (its Error text is sent as is).
	SubscribeChanges(ctx context.Context, req ChangeRequest) (ChangeSubscription, error)
}

// ChangeRequest is what a channel asks a ChangeSource for.
type ChangeRequest struct {
	// Bindings are the channel's postgres_changes bindings, with the ids
	// of the join reply.
	Bindings []ChangeBinding
	// Role and Claims are the channel token's role and claims (a JSON
	// object).
	Role   string
	Claims json.RawMessage
	// Deliver receives a change: the ids of the bindings it matched and
	// the "data" object. It must not block.
	Deliver func(ids []int64, data json.RawMessage)
	// Status receives readiness (ok true, "Subscribed to PostgreSQL") and
	// problems (ok false, with a message for the user). It must not block.
	Status func(ok bool, message string)
}

// ChangeBinding is one postgres_changes binding.
type ChangeBinding struct {
	ID                           int64
	Event, Schema, Table, Filter string
}

// ChangeSubscription is a running subscription.
type ChangeSubscription interface {
	Close()
}

// changeSubscribeTimeout bounds one subscription attempt.
const changeSubscribeTimeout = 30 * time.Second

// subscribeChangesLocked starts ch's subscription to the change source in
// the background (c.mu held). Any previous subscription of ch is closed.
func (c *conn) subscribeChangesLocked(ch *channel) {
	src := c.s.cfg.Changes
	if src == nil || len(ch.changeBindings) == 0 {
		return
	}
	if ch.changes != nil {
		ch.changes.Close()
		ch.changes = nil
	}
	ch.changeGen++
	gen := ch.changeGen
	req := ChangeRequest{Role: ch.claims.Role}
	if b, err := json.Marshal(ch.claims.All); err == nil {
		req.Claims = b
	}
	req.Bindings = ch.changeBindings
	current := func() bool { // c.mu held
		return c.channels[ch.topic] == ch && ch.changeGen == gen
	}
	req.Deliver = func(ids []int64, data json.RawMessage) {
		c.deliverChange(ch, ids, data)
	}
	req.Status = func(ok bool, message string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !current() {
			return
		}
		status := protocol.StatusOK
		if !ok {
			status = protocol.StatusError
		}
		c.sendSystem(ch, "postgres_changes", status, message)
	}
	c.s.spawn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), changeSubscribeTimeout)
		watched := make(chan struct{})
		go func() { // the attempt ends with the connection or the server
			defer close(watched)
			select {
			case <-c.done:
			case <-c.s.closing:
			case <-ctx.Done():
			}
			cancel()
		}()
		sub, err := src.SubscribeChanges(ctx, req)
		cancel()
		<-watched
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			if current() && !errors.Is(err, context.Canceled) {
				c.log.Info("postgres_changes subscription refused", logKeyTopic, ch.topic, logKeyReason, err.Error())
				c.sendSystem(ch, "postgres_changes", protocol.StatusError, err.Error())
			}
			return
		}
		if !current() {
			sub.Close()
			return
		}
		ch.changes = sub
	})
}

// deliverChange sends a change to ch, if it is still joined.
func (c *conn) deliverChange(ch *channel, ids []int64, data json.RawMessage) {
	payload := make([]byte, 0, len(data)+16+8*len(ids))
	payload = append(payload, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			payload = append(payload, ',')
		}
		payload = strconv.AppendInt(payload, id, 10)
	}
	payload = append(payload, `],"data":`...)
	payload = append(payload, data...)
	payload = append(payload, '}')
	c.mu.Lock()
	ok := c.channels[ch.topic] == ch
	c.mu.Unlock()
	if !ok {
		return
	}
	c.sendMsg(&protocol.Message{Topic: ch.topic, Event: protocol.EventPostgresChanges, Payload: payload})
	c.s.stats.deliveries.Add(1)
}

// changeBindings reads the raw bindings of a join for a ChangeSource,
// which validates them itself (with reasons the user can act on).
func changeBindings(raw []json.RawMessage, ids []int64) []ChangeBinding {
	out := make([]ChangeBinding, 0, len(raw))
	for i, b := range raw {
		var f struct {
			Event, Schema, Table, Filter *string
		}
		_ = json.Unmarshal(b, &f)
		cb := ChangeBinding{ID: ids[i]}
		for _, p := range []struct {
			src *string
			dst *string
		}{{f.Event, &cb.Event}, {f.Schema, &cb.Schema}, {f.Table, &cb.Table}, {f.Filter, &cb.Filter}} {
			if p.src != nil {
				*p.dst = *p.src
			}
		}
		out = append(out, cb)
	}
	return out
}

// closeChangesLocked ends ch's change subscription (c.mu held).
func (ch *channel) closeChangesLocked() {
	ch.changeGen++
	if ch.changes != nil {
		ch.changes.Close()
		ch.changes = nil
	}
}
