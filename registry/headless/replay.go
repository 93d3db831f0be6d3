package headless

import (
	"context"
	"fmt"
	"sort"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
)

// ReplayOptions configures [ReplayInto].
type ReplayOptions struct {
	// Speed scales time: 1 replays at the recorded pace, 10 ten times
	// faster; 0 or less sends as fast as possible.
	Speed float64
	// Into maps recorded channels to the channels to send on (default:
	// the same names).
	Into map[registry.Name]registry.Name
	// Channels, when not empty, replays only these recorded channels.
	Channels []registry.Name
	// Identity is who sends (zero: the target's identity).
	Identity Identity
	// JoinTimeout bounds the joins before sending (default 10 s).
	JoinTimeout time.Duration
	// OnSent is called after each broadcast is sent (i from 0).
	OnSent func(i int)
}

// ReplayReport says what [ReplayInto] did.
type ReplayReport struct {
	// Sent counts the broadcasts sent, by channel sent to.
	Sent  int            `json:"sent"`
	ByTo  map[string]int `json:"by_channel"`
	Speed float64        `json:"speed"`
	// Skipped counts received messages that cannot be replayed from a
	// client (postgres changes, presence, system messages), by event.
	Skipped map[string]int `json:"skipped,omitempty"`
	// Took is how long sending took.
	Took time.Duration `json:"-"`
	// TookMS is Took in milliseconds.
	TookMS float64 `json:"took_ms"`
}

// replayItem is one broadcast to send again.
type replayItem struct {
	at      time.Time
	to      registry.Name
	event   string
	payload []byte
	binary  bool
}

// ReplayInto sends the broadcasts rec received (frames in), in order, to
// live channels on the target, at the recorded pace scaled by o.Speed.
// Other received messages (postgres changes, presence, system) cannot be
// sent by a client; they are counted in Skipped.
func ReplayInto(ctx context.Context, env *Env, rec *Recording, o ReplayOptions) (ReplayReport, error) {
	rep := ReplayReport{ByTo: map[string]int{}, Skipped: map[string]int{}, Speed: o.Speed}
	items, err := replayItems(rec, o, rep.Skipped)
	if err != nil {
		return rep, err
	}
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = 10 * time.Second
	}
	m, err := env.NewManager(o.Identity, ManagerOptions{})
	if err != nil {
		return rep, err
	}
	defer m.Close()
	cctx, cancel := context.WithTimeout(ctx, o.JoinTimeout)
	defer cancel()
	if err := m.Connect(cctx); err != nil {
		return rep, fmt.Errorf("connect: %w", err)
	}
	joined := map[registry.Name]*registry.Handle{}
	for _, it := range items {
		if joined[it.to] != nil {
			continue
		}
		h, err := m.Join(cctx, it.to)
		if err != nil {
			return rep, fmt.Errorf("join %s: %w", it.to, err)
		}
		if err := h.Ready(cctx); err != nil {
			return rep, fmt.Errorf("join %s: %w", it.to, err)
		}
		joined[it.to] = h
	}
	start := time.Now()
	var t0 time.Time
	if len(items) > 0 {
		t0 = items[0].at
	}
	for i, it := range items {
		if o.Speed > 0 {
			due := start.Add(time.Duration(float64(it.at.Sub(t0)) / o.Speed))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return rep, ctx.Err()
				case <-t.C:
				}
			}
		}
		if it.binary {
			err = joined[it.to].BroadcastBinary(ctx, it.event, it.payload)
		} else {
			err = joined[it.to].Broadcast(ctx, it.event, it.payload)
		}
		if err != nil {
			return rep, fmt.Errorf("broadcast %d/%d (%s on %s): %w", i+1, len(items), it.event, it.to, err)
		}
		rep.Sent++
		rep.ByTo[it.to.String()]++
		if o.OnSent != nil {
			o.OnSent(i)
		}
	}
	rep.Took = time.Since(start)
	rep.TookMS = float64(rep.Took) / float64(time.Millisecond)
	// Leaving goes on the wire after every broadcast, so the server has
	// fanned them all out when the leave is answered.
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	defer lcancel()
	if err := m.CleanupAll(lctx); err != nil && ctx.Err() == nil {
		return rep, fmt.Errorf("leave: %w", err)
	}
	return rep, nil
}

func replayItems(rec *Recording, o ReplayOptions, skipped map[string]int) ([]replayItem, error) {
	only := map[registry.Name]bool{}
	for _, n := range o.Channels {
		only[n] = true
	}
	vsn := rec.Version()
	var items []replayItem
	for _, e := range rec.Events {
		f, ok := e.(registry.FrameEvent)
		if !ok || f.Direction != registry.In {
			continue
		}
		m, err := decodeFrame(vsn, f)
		if err != nil || m.Topic == protocol.PhoenixTopic {
			continue
		}
		name := f.Channel
		if name.IsZero() {
			if name, err = registry.ParseName(m.Topic); err != nil {
				continue
			}
		}
		if len(only) > 0 && !only[name] {
			continue
		}
		switch m.Event {
		case protocol.EventBroadcast:
		case protocol.EventPostgresChanges, protocol.EventPresenceState, protocol.EventPresenceDiff, protocol.EventSystem:
			skipped[m.Event]++
			continue
		default:
			continue
		}
		b, err := m.UserBroadcast()
		if err != nil {
			skipped["malformed broadcast"]++
			continue
		}
		to := name
		if t, ok := o.Into[name]; ok {
			to = t
		}
		payload := append([]byte(nil), b.Payload...)
		if !b.Binary && len(payload) == 0 {
			payload = []byte("{}")
		}
		items = append(items, replayItem{at: f.Time, to: to, event: b.Event, payload: payload, binary: b.Binary})
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: the recording received no broadcast to replay%s", ErrInvalid, skippedText(skipped))
	}
	return items, nil
}

func skippedText(s map[string]int) string {
	if len(s) == 0 {
		return ""
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := " (it received"
	for i, k := range keys {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf(" %d %s", s[k], k)
	}
	return out + ", which a client cannot send)"
}
