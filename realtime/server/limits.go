package server

import (
	"sync"
	"time"
)

// rateWindow counts events over a sliding one-second window made of ten
// 100 ms buckets. It is not safe for concurrent use: the [tenantTable]
// holding it guards it.
type rateWindow struct {
	slots   [rateSlots]int64
	indexes [rateSlots]int64 // the 100 ms period each slot counts
}

const (
	rateSlots = 10
	rateSlot  = int64(100 * time.Millisecond)
)

// ratePeriod returns the 100 ms period now falls in.
func ratePeriod(now time.Time) int64 { return now.UnixNano() / rateSlot }

// count returns the events of the last second.
func (r *rateWindow) count(now time.Time) int64 {
	cur := ratePeriod(now)
	var sum int64
	for i := range r.slots {
		if idx := r.indexes[i]; idx > cur-rateSlots && idx <= cur {
			sum += r.slots[i]
		}
	}
	return sum
}

// fits reports whether n more events keep the last second at or under
// limit.
func (r *rateWindow) fits(now time.Time, limit int, n int) bool {
	return r.count(now)+int64(n) <= int64(limit)
}

// add counts n events at now.
func (r *rateWindow) add(now time.Time, n int64) {
	cur := ratePeriod(now)
	i := int(uint64(cur) % rateSlots)
	if r.indexes[i] != cur {
		r.indexes[i] = cur
		r.slots[i] = 0
	}
	r.slots[i] += n
}

// allow adds n events and reports true if that keeps the last second at
// or under limit; otherwise it adds nothing and reports false. A limit
// of 0 allows everything.
func (r *rateWindow) allow(now time.Time, limit int, n int) bool {
	if limit <= 0 {
		return true
	}
	if !r.fits(now, limit, n) {
		return false
	}
	r.add(now, int64(n))
	return true
}

// Rejection makes the server refuse channel joins, as a fault to test
// clients against: the next Count joins, or every join for For, or (both
// set) at most Count joins within For. The zero Rejection clears any
// rejection in force.
type Rejection struct {
	// Count is how many joins to refuse; 0 with For set means all.
	Count int
	// For is how long to refuse joins; 0 with Count set means until
	// Count joins were refused.
	For time.Duration
	// Reason is the join error reason; empty means
	// "RealtimeRestarting: Realtime is restarting, please standby".
	Reason string
}

// DefaultRejectReason is the reason of a [Rejection] without one.
const DefaultRejectReason = "RealtimeRestarting: Realtime is restarting, please standby"

// rejectState is the rejection in force.
type rejectState struct {
	mu     sync.Mutex
	active bool
	left   int       // joins still to refuse; -1 = unbounded
	until  time.Time // zero = no deadline
	reason string
}

func (r *rejectState) set(rej Rejection, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active, r.left, r.until, r.reason = false, 0, time.Time{}, ""
	if rej.Count <= 0 && rej.For <= 0 {
		return
	}
	r.active = true
	r.left = -1
	if rej.Count > 0 {
		r.left = rej.Count
	}
	if rej.For > 0 {
		r.until = now.Add(rej.For)
	}
	r.reason = rej.Reason
	if r.reason == "" {
		r.reason = DefaultRejectReason
	}
}

// take returns the reason to refuse a join now, consuming one refusal,
// or "" to let it through.
func (r *rejectState) take(now time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.active {
		return ""
	}
	if !r.until.IsZero() && !now.Before(r.until) {
		r.active = false
		return ""
	}
	if r.left == 0 {
		r.active = false
		return ""
	}
	if r.left > 0 {
		r.left--
	}
	return r.reason
}
