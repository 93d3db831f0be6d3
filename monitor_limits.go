package main

import (
	"context"
	"sync"
	"time"

	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/limits"
)

// The terminal UI's budget meter reads the manager's events on a
// subscription of its own (message batches) of monitorLimitsBuffer
// events and monitorLimitsBufferBytes, and the app model's on a queue of
// monitorLimitsAppBuffer events: a feed that falls behind is counted by
// its subscription (the rate gauges then read low), never waited for.
const (
	monitorLimitsBuffer      = 8192
	monitorLimitsBufferBytes = 1 << 20
	monitorLimitsAppBuffer   = 4096
	// monitorLimitsInterval is how often the meter reads the server's
	// limits and counters and the manager's throttle.
	monitorLimitsInterval = time.Second
)

// monitorLimits is the terminal UI's budget meter (package
// registry/limits; the Limits view and the header's gauge): fed by the
// manager's events and, with the app proxy on, by its app model's,
// refreshed about once a second from src (the embedded server's Go API,
// rtm serve's admin API with --service-key; nil for a hosted project,
// whose limits are the plan's) under the --limit overrides, with the
// manager's throttle.
type monitorLimits struct {
	meter *limits.Meter
	stop  func()
}

// startLimits starts the meter's feeds and its refresh; stop ends them
// and waits for them.
func startLimits(ctx context.Context, mgr *registry.Manager, model *apps.Model, src limits.Source,
	plan, overrides limits.Limits, interval time.Duration) monitorLimits {
	if interval <= 0 {
		interval = monitorLimitsInterval
	}
	ctx, cancel := context.WithCancel(ctx)
	meter := limits.New(plan.Merge(overrides), nil)
	feed := limits.NewFeed(meter)
	var wg sync.WaitGroup
	sub := mgr.Subscribe(ctx, registry.SubscribeOptions{Buffer: monitorLimitsBuffer, BufferBytes: monitorLimitsBufferBytes,
		Types: limits.ManagerTypes(), MessageBatches: true})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer sub.Close()
		var buf []registry.Event
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.Ready():
				buf = sub.Drain(buf[:0])
				for i, e := range buf {
					feed.Manager(e)
					buf[i] = nil
				}
			}
		}
	}()
	if model != nil {
		as := model.Subscribe(monitorLimitsAppBuffer)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			as.Close()
		}()
		go func() {
			defer wg.Done()
			for e := range as.Events() {
				feed.App(e)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		refresh := func() {
			if src != nil {
				rctx, done := context.WithTimeout(ctx, interval)
				_ = meter.Refresh(rctx, src, plan, overrides) // unread: the last limits hold
				done()
			}
			meter.SetThrottle(mgr.Throttle())
		}
		refresh()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				refresh()
			}
		}
	}()
	return monitorLimits{meter: meter, stop: func() { cancel(); wg.Wait() }}
}
