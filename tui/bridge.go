package tui

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// Defaults of [BridgeOptions].
const (
	// DefaultFlushEvery is the batching period: one message per frame at
	// 25 frames per second.
	DefaultFlushEvery = 40 * time.Millisecond
	// DefaultMaxBatch is the batch size that is sent before the period
	// ends (no sooner than DefaultMinInterval after the last send).
	DefaultMaxBatch = 4096
	// DefaultMinInterval is the least time between two sends.
	DefaultMinInterval = 20 * time.Millisecond
	// DefaultSnapshotEvery is the least time between two snapshots taken
	// because state changed.
	DefaultSnapshotEvery = 100 * time.Millisecond
	// DefaultSnapshotRefresh is the least time between two snapshots
	// taken because stream events (messages) changed counters.
	DefaultSnapshotRefresh = 500 * time.Millisecond
)

// BridgeOptions tunes a [Bridge]. Zero fields get the defaults above.
type BridgeOptions struct {
	// FlushEvery is the batching period.
	FlushEvery time.Duration
	// MaxBatch is the batch size sent early; when a batch reaches it
	// sooner than MinInterval after the last send, the bridge stops
	// reading until it may send, and the subscription's bounded buffer
	// absorbs (or drops and counts) what comes meanwhile.
	MaxBatch int
	// MinInterval is the least time between two sends, so that the UI
	// gets at most 1/MinInterval messages per second.
	MinInterval time.Duration
	// SnapshotEvery and SnapshotRefresh bound how often snapshots are
	// taken after state events and after stream events.
	SnapshotEvery, SnapshotRefresh time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Identity is the name of the identity whose manager the bridge
	// reads ("" for the default one): every message it sends carries it.
	Identity string
	// Observe, when set, is called in the bridge's goroutine with every
	// event read, before it is batched: the identities' comparer
	// (compare.Comparer.Observe with the identity's name, which needs
	// the subscription's frames), for the Compare tab.
	Observe func(registry.Event)
}

func (o BridgeOptions) withDefaults() BridgeOptions {
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultMinInterval
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.SnapshotRefresh <= 0 {
		o.SnapshotRefresh = DefaultSnapshotRefresh
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// EventsBatchMsg carries the events the bridge collected since its last
// send, oldest first. Events are values copied out of the manager.
type EventsBatchMsg struct {
	Events []registry.Event
	// Dropped is the total number of events the subscription dropped so
	// far (the UI fell behind).
	Dropped uint64
	// State is a fresh snapshot, taken after the last event of the batch,
	// or nil when nothing changed since the last one.
	State *registry.State
	// Identity is the identity the events are of ("": the default one,
	// Options.Manager's).
	Identity string
}

// BridgeDoneMsg tells the UI that the bridge stopped: Err is nil when the
// subscription ended, the error when the bridge failed (a panic).
type BridgeDoneMsg struct {
	Err error
	// Identity is the bridge's identity ("": the default one).
	Identity string
}

// Bridge forwards a manager's events to the UI in batches: at most one
// message per frame (FlushEvery), however fast events come, each with a
// fresh snapshot when state changed. It never blocks the manager: the
// subscription's bounded buffer absorbs bursts and counts what it drops.
type Bridge struct {
	src      Source
	snapshot func() registry.State
	opts     BridgeOptions
}

// NewBridge returns a bridge reading src; snapshot returns the manager's
// current state (registry.Manager.Snapshot), nil for none.
func NewBridge(src Source, snapshot func() registry.State, opts BridgeOptions) *Bridge {
	return &Bridge{src: src, snapshot: snapshot, opts: opts.withDefaults()}
}

// Run forwards events to send until ctx is done or the source's channel is
// closed; send is tea.Program.Send in the program and a recorder in tests.
// It sends an initial snapshot first. A panic is recovered and reported as
// BridgeDoneMsg{Err}; a closed source as BridgeDoneMsg{}.
func (b *Bridge) Run(ctx context.Context, send func(tea.Msg)) {
	defer func() {
		if r := recover(); r != nil {
			send(BridgeDoneMsg{Err: fmt.Errorf("tui: bridge panic: %v\n%s", r, debug.Stack()), Identity: b.opts.Identity})
		}
	}()
	o := b.opts
	tick := time.NewTicker(o.FlushEvery)
	defer tick.Stop()

	var (
		batch                    []registry.Event
		lastSend, lastSnap       time.Time
		stateDirty, streamDirty  bool
		events                   = b.src.Events()
		reading                  = events // nil while the batch is full
		sentDropped, seenDropped uint64
		snapshotNow              = b.snapshot != nil
	)
	take := func(now time.Time, force bool) *registry.State {
		if b.snapshot == nil {
			return nil
		}
		due := force ||
			(stateDirty && now.Sub(lastSnap) >= o.SnapshotEvery) ||
			(streamDirty && now.Sub(lastSnap) >= o.SnapshotRefresh)
		if !due {
			return nil
		}
		s := b.snapshot()
		lastSnap = now
		stateDirty, streamDirty = false, false
		return &s
	}
	flush := func(force bool) {
		now := o.Now()
		st := take(now, force)
		seenDropped = b.src.Dropped()
		if len(batch) == 0 && st == nil && seenDropped == sentDropped {
			return
		}
		send(EventsBatchMsg{Events: batch, Dropped: seenDropped, State: st, Identity: o.Identity})
		sentDropped = seenDropped
		batch = nil
		lastSend = now
		reading = events
	}
	if snapshotNow {
		flush(true)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-reading:
			if !ok {
				flush(stateDirty || streamDirty)
				send(BridgeDoneMsg{Identity: o.Identity})
				return
			}
			if o.Observe != nil {
				o.Observe(ev)
			}
			batch = append(batch, ev)
			if registry.IsState(ev) {
				stateDirty = true
			} else {
				streamDirty = true
			}
			if len(batch) >= o.MaxBatch {
				if o.Now().Sub(lastSend) >= o.MinInterval {
					flush(false)
				} else {
					reading = nil // pause until the next tick
				}
			}
		case <-tick.C:
			flush(false)
		}
	}
}
