package headless

import (
	"context"
	"encoding/json"
	"time"

	"rtm/registry"
	"rtm/registry/limits"
)

// LimitsOptions make [Watch] write a `limits` line (a limits.Report)
// about once a second: the budget meter of package registry/limits, fed
// by the manager's events and, when the target has one
// ([Env.LimitsSource]), the server's configured limits and counters.
type LimitsOptions struct {
	// Plan are the limits of the plan (limits.Plan), the base;
	// Overrides (limits.Override) go over the server's and the plan's.
	Plan      limits.Limits
	Overrides limits.Limits
	// Interval is the period of the lines (default 1 s).
	Interval time.Duration
	// Source reads the server's limits (nil: the target's own, if any),
	// once per line.
	Source limits.Source
}

// The meter's feed is a subscription of its own (message batches) with
// a buffer of limitsBuffer events and limitsBufferBytes: it reads sizes
// and counts and keeps nothing, so it drains fast; what it loses when it
// falls behind is counted by the subscription like any other (the rate
// gauges then read low), and a message that does not fit is queued
// truncated, its size intact.
const (
	limitsBuffer      = 8192
	limitsBufferBytes = 1 << 20
)

// limitsFeed runs a meter on m's events and sends a report every
// interval to out (which keeps the latest one) until stop closes.
func limitsFeed(m *registry.Manager, o LimitsOptions, out chan limits.Report, stop <-chan struct{}) {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	base := o.Plan.Merge(o.Overrides)
	meter := limits.New(base, nil)
	feed := limits.NewFeed(meter)
	sub := m.Subscribe(context.Background(), registry.SubscribeOptions{Buffer: limitsBuffer, BufferBytes: limitsBufferBytes,
		Types: limits.ManagerTypes(), MessageBatches: true})
	defer sub.Close()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var buf []registry.Event
	for {
		select {
		case <-stop:
			return
		case <-sub.Ready():
			buf = sub.Drain(buf[:0])
			for i, e := range buf {
				feed.Manager(e)
				buf[i] = nil
			}
		case <-tick.C:
			if o.Source != nil {
				ctx, cancel := context.WithTimeout(context.Background(), o.Interval)
				_ = meter.Refresh(ctx, o.Source, o.Plan, o.Overrides) // unread: the last limits hold
				cancel()
			}
			meter.SetThrottle(m.Throttle())
			r := meter.Report()
			select {
			case out <- r:
			default:
				// The writer has not taken the last one: it is replaced.
				select {
				case <-out:
				default:
				}
				out <- r
			}
		}
	}
}

// WriteLimits writes a `limits` line, masked like every other line.
func (w *Writer) WriteLimits(r limits.Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	w.end.Events++
	return w.line(registry.MaskJSON(b))
}
