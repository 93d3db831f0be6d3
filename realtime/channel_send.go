package realtime

import (
	"context"
	"encoding/json"
	"fmt"

	"rtm/realtime/protocol"
)

// Send broadcasts event with a JSON payload (nil means {}) to the
// channel's subscribers: a binary kind-3 frame under 2.0.0, a JSON frame
// under 1.0.0. With Broadcast.Ack it waits for the server's reply (nil,
// a *ReplyError, or an error wrapping ErrTimeout); otherwise it returns
// once the frame is queued. The channel must be joined (ErrNotJoined).
func (ch *Channel) Send(ctx context.Context, event string, payload json.RawMessage) error {
	if len(payload) > 0 && !protocol.Valid(payload) {
		return fmt.Errorf("%w: broadcast payload is not valid JSON", ErrInvalidConfig)
	}
	return ch.send(ctx, &protocol.Broadcast{Event: event, Payload: payload})
}

// SendBinary broadcasts event with a raw binary payload (encoding 0 of a
// kind-3 frame; serializer 2.0.0 only), otherwise like [Channel.Send].
func (ch *Channel) SendBinary(ctx context.Context, event string, data []byte) error {
	if ch.s.vsn != protocol.V2 {
		return fmt.Errorf("%w: binary broadcasts need serializer 2.0.0", ErrInvalidConfig)
	}
	return ch.send(ctx, &protocol.Broadcast{Event: event, Payload: data, Binary: true})
}

func (ch *Channel) send(ctx context.Context, b *protocol.Broadcast) error {
	s := ch.s
	s.mu.Lock()
	if ch.removed {
		s.mu.Unlock()
		return fmt.Errorf("send on %s: %w", ch.topic, ErrChannelClosed)
	}
	if ch.state != ChannelJoined || s.conn == nil {
		s.mu.Unlock()
		return fmt.Errorf("send on %s: %w", ch.topic, ErrNotJoined)
	}
	m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventBroadcast, Broadcast: b}
	p, err := s.pushLocked(ch, &m, true, ch.cfg.Broadcast.Ack, nil)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("send on %s: %w", ch.topic, err)
	}
	if p == nil {
		return nil
	}
	return p.wait(ctx)
}

// Track tracks our presence with payload, a JSON object (the meta), and
// waits for the reply.
func (ch *Channel) Track(ctx context.Context, payload json.RawMessage) error {
	if !protocol.IsObject(payload) {
		return fmt.Errorf("%w: presence payload must be a JSON object", ErrInvalidConfig)
	}
	body := append([]byte(`{"type":"presence","event":"track","payload":`), payload...)
	return ch.pushAndWait(ctx, protocol.EventPresence, append(body, '}'))
}

// Untrack removes our tracked presence and waits for the reply.
func (ch *Channel) Untrack(ctx context.Context) error {
	return ch.pushAndWait(ctx, protocol.EventPresence, []byte(`{"type":"presence","event":"untrack"}`))
}

func (ch *Channel) pushAndWait(ctx context.Context, event string, payload []byte) error {
	s := ch.s
	s.mu.Lock()
	if ch.removed {
		s.mu.Unlock()
		return fmt.Errorf("%s on %s: %w", event, ch.topic, ErrChannelClosed)
	}
	if ch.state != ChannelJoined || s.conn == nil {
		s.mu.Unlock()
		return fmt.Errorf("%s on %s: %w", event, ch.topic, ErrNotJoined)
	}
	m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: event, Payload: payload}
	p, err := s.pushLocked(ch, &m, true, true, nil)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s on %s: %w", event, ch.topic, err)
	}
	return p.wait(ctx)
}
