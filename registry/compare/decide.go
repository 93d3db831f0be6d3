package compare

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"rtm/registry"
)

// decideLocked turns e into differences for every holder that did not
// receive it (explained without the row checker) and finishes it.
func (c *Comparer) decideLocked(t *topic, e *entry) {
	for _, name := range c.order {
		if e.got[name] {
			continue
		}
		h := t.holders[name]
		if h == nil {
			continue
		}
		reason, detail := c.explainLocked(t, name, h, e.at)
		h.missing++
		c.out = append(c.out, Difference{Time: e.at, Topic: t.name, A: e.from, B: name, MissingFrom: name,
			Message: e.msg, Truncated: e.truncated, Reason: reason, Detail: detail})
	}
	c.finishLocked(t, e)
}

// Tick decides the unmatched messages older than Window and returns the
// new differences, in the order decided. Postgres changes nothing else
// explains are checked with Options.Rows (outside the lock; ctx bounds
// it).
func (c *Comparer) Tick(ctx context.Context) []Difference {
	c.mu.Lock()
	now := c.o.Clock.Now()
	for _, name := range c.topicOrder {
		t := c.topics[name]
		for _, e := range t.pending {
			if !e.done && now.Sub(e.at) >= c.o.Window {
				c.decideLocked(t, e)
			}
		}
		c.settleLocked(t)
	}
	out := c.out
	c.out = nil
	var who map[string]Identity
	if c.o.Rows != nil {
		who = map[string]Identity{}
		for n, id := range c.identities {
			who[n] = id.Identity
		}
	}
	c.mu.Unlock()

	for i := range out {
		d := &out[i]
		if d.Reason != ReasonUnknown || c.o.Rows == nil || d.Message.Kind() != "postgres_changes" {
			continue
		}
		if reason, detail, ok := c.checkRow(ctx, who[d.B], d.Message); ok {
			d.Reason, d.Detail = reason, detail
		}
	}
	c.mu.Lock()
	for _, d := range out {
		if t := c.topics[d.Topic]; t != nil {
			if len(t.diffs) >= c.o.MaxDifferences {
				t.diffs = append(t.diffs[:0], t.diffs[1:]...)
			}
			t.diffs = append(t.diffs, d)
			t.total++
		}
	}
	c.mu.Unlock()
	return out
}

func (c *Comparer) checkRow(ctx context.Context, who Identity, m Message) (Reason, string, bool) {
	var p struct {
		Schema    string          `json:"schema"`
		Table     string          `json:"table"`
		Record    json.RawMessage `json:"record"`
		OldRecord json.RawMessage `json:"old_record"`
		Type      string          `json:"type"`
	}
	if json.Unmarshal(m.Value, &p) != nil || p.Table == "" {
		return "", "", false
	}
	rec := p.Record
	if p.Type == "DELETE" || len(rec) == 0 || string(rec) == "null" {
		rec = p.OldRecord
	}
	v, err := c.o.Rows.RowVerdict(ctx, who, p.Schema, p.Table, rec)
	if err != nil {
		return ReasonUnknown, "the RLS check failed: " + registry.MaskText(err.Error()), true
	}
	if v.Visible {
		return ReasonUnknown, "RLS lets " + who.Name + " see the row: " + v.Detail, true
	}
	return ReasonRLS, v.Detail, true
}

// Flush decides every unmatched message now, whatever its age (at the
// end of a session), and returns the new differences as [Comparer.Tick]
// does.
func (c *Comparer) Flush(ctx context.Context) []Difference {
	c.mu.Lock()
	for _, name := range c.topicOrder {
		t := c.topics[name]
		for _, e := range t.pending {
			if !e.done {
				c.decideLocked(t, e)
			}
		}
		c.settleLocked(t)
	}
	c.mu.Unlock()
	return c.Tick(ctx)
}

// Between returns, at once, the differences between identities a and b
// on topic: those already decided (kept, see MaxDifferences) and the
// unmatched messages one of them received and the other not yet,
// explained now (RLS included), oldest first. Messages whose event
// starts with one of except ("presence", "system", "broadcast typing")
// are left out. It is the scenario expectation same_messages.
func (c *Comparer) Between(ctx context.Context, topicName, a, b string, except []string) []Difference {
	skip := func(ev string) bool {
		for _, p := range except {
			if strings.HasPrefix(ev, p) {
				return true
			}
		}
		return false
	}
	c.mu.Lock()
	t := c.topics[topicName]
	if t == nil {
		c.mu.Unlock()
		return nil
	}
	var out []Difference
	for _, d := range t.diffs {
		if ((d.A == a && d.B == b) || (d.A == b && d.B == a)) && !skip(d.Message.Event) {
			out = append(out, d)
		}
	}
	for _, e := range t.pending {
		if e.done || e.got[a] == e.got[b] || skip(e.msg.Event) {
			continue
		}
		from, missing := a, b
		if e.got[b] {
			from, missing = b, a
		}
		h := t.holders[missing]
		if h == nil {
			h = &holder{}
		}
		reason, detail := c.explainLocked(t, missing, h, e.at)
		out = append(out, Difference{Time: e.at, Topic: t.name, A: from, B: missing, MissingFrom: missing,
			Message: e.msg, Truncated: e.truncated, Reason: reason, Detail: detail})
	}
	who := map[string]Identity{}
	for _, n := range []string{a, b} {
		if id := c.identities[n]; id != nil {
			who[n] = id.Identity
		}
	}
	c.mu.Unlock()
	for i := range out {
		d := &out[i]
		if d.Reason == ReasonUnknown && c.o.Rows != nil && d.Message.Kind() == "postgres_changes" {
			if reason, detail, ok := c.checkRow(ctx, who[d.B], d.Message); ok {
				d.Reason, d.Detail = reason, detail
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
