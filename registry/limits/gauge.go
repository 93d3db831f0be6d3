package limits

import (
	"math"
	"time"
)

// The windows of a gauge: the last second in 100 ms slots (the rate
// gauges' usage, as the server counts it), and the last minute in
// one-second slots (the size gauges' usage, the trend of every gauge).
const (
	slotsPerSecond = 10
	slotNanos      = int64(time.Second / slotsPerSecond)
	// HistorySeconds is how far back a gauge remembers: the size gauges'
	// usage is the largest payload of this window, and a limit error
	// this recent keeps its gauge at error.
	HistorySeconds = 60
	// TrendSeconds is the window of the trend (the forecast's rate).
	TrendSeconds = 10
	// MaxForecast is the farthest a forecast looks: a limit further away
	// at the trend is not heading there.
	MaxForecast = time.Hour
	// serverFresh is how long the server's counters count as current.
	serverFresh = 3 * time.Second
)

// slot is one period's value; period says which (a slot whose period
// is out of the window counts 0).
type slot struct {
	period int64
	v      float64
}

// gauge is one limit's state. It is not safe for concurrent use: the
// Meter guards it.
type gauge struct {
	kind   Kind
	recent [slotsPerSecond]slot // rate: events per 100 ms
	hist   [HistorySeconds]slot // rate: events per second; count and size: the highest value of each second
	level  float64              // count: held now
	last   int64                // count: the last second hist was filled to
	start  int64                // the second the meter started: the trend starts there
	peak   float64

	server   float64 // the server's own counter
	serverAt time.Time

	err *LimitError
}

func second(t time.Time) int64 { return t.Unix() }

// roll fills a count gauge's seconds since the last one it filled with
// the level held then (at most a minute of them).
func (g *gauge) roll(now time.Time) {
	if g.kind != KindCount {
		return
	}
	cur := second(now)
	from := max(g.last+1, cur-HistorySeconds+1)
	if g.last == 0 {
		from = cur
	}
	for s := from; s <= cur; s++ {
		h := &g.hist[int(uint64(s)%HistorySeconds)]
		if h.period != s {
			*h = slot{period: s, v: g.level}
		}
	}
	g.last = max(g.last, cur)
}

// histAt returns the slot of second s, reset when it held another.
func (g *gauge) histAt(s int64) *slot {
	h := &g.hist[int(uint64(s)%HistorySeconds)]
	if h.period != s {
		*h = slot{period: s}
	}
	return h
}

// add counts n events at now (rate gauges).
func (g *gauge) add(now time.Time, n float64) {
	p := now.UnixNano() / slotNanos
	r := &g.recent[int(uint64(p)%slotsPerSecond)]
	if r.period != p {
		*r = slot{period: p}
	}
	r.v += n
	g.histAt(second(now)).v += n
	g.peak = max(g.peak, g.usage(now))
}

// set makes v the level held now (count gauges).
func (g *gauge) set(now time.Time, v float64) {
	g.roll(now)
	g.level = v
	h := g.histAt(second(now))
	h.v = max(h.v, v)
	g.peak = max(g.peak, g.usage(now))
}

// size records one payload of v bytes (size gauges).
func (g *gauge) size(now time.Time, v float64) {
	h := g.histAt(second(now))
	h.v = max(h.v, v)
	g.peak = max(g.peak, v)
}

// own returns the usage rtm saw itself.
func (g *gauge) own(now time.Time) float64 {
	switch g.kind {
	case KindRate:
		cur := now.UnixNano() / slotNanos
		var sum float64
		for _, r := range g.recent {
			if r.period > cur-slotsPerSecond && r.period <= cur {
				sum += r.v
			}
		}
		return sum
	case KindSize:
		cur := second(now)
		var m float64
		for _, h := range g.hist {
			if h.period > cur-HistorySeconds && h.period <= cur {
				m = max(m, h.v)
			}
		}
		return m
	}
	return g.level
}

// usage is the larger of rtm's own usage and the server's counter, when
// the server's is fresh: the server counts every client.
func (g *gauge) usage(now time.Time) float64 {
	u := g.own(now)
	if !g.serverAt.IsZero() && now.Sub(g.serverAt) < serverFresh {
		u = max(u, g.server)
	}
	return u
}

// trend returns the usage's growth per second over the last
// TrendSeconds (least squares over one value per second: a rate
// gauge's events of that second, a count gauge's highest level in it;
// for the current second, the usage now). Size gauges have none.
func (g *gauge) trend(now time.Time) float64 {
	if g.kind == KindSize {
		return 0
	}
	g.roll(now)
	cur := second(now)
	var sx, sy, sxx, sxy, n float64
	for i := int64(0); i < TrendSeconds; i++ {
		s := cur - TrendSeconds + 1 + i
		h := g.hist[int(uint64(s)%HistorySeconds)]
		var y float64
		switch {
		case s < g.start:
			continue // before the meter started: unknown, not 0
		case s == cur:
			y = g.own(now)
		case h.period == s:
			y = h.v
		case g.kind == KindCount:
			continue // before the gauge was first set
		}
		x := float64(i)
		sx, sy, sxx, sxy, n = sx+x, sy+y, sxx+x*x, sxy+x*y, n+1
	}
	d := n*sxx - sx*sx
	if n < 2 || d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// Level is how close a gauge is to its limit.
type Level string

// The levels.
const (
	// LevelNone: no limit is known.
	LevelNone Level = "none"
	// LevelOK: under WarnPercent of the limit.
	LevelOK Level = "ok"
	// LevelWarning: at WarnPercent of the limit or more.
	LevelWarning Level = "warning"
	// LevelError: at the limit or over it, or the server reported the
	// limit within the last HistorySeconds.
	LevelError Level = "error"
)

// WarnPercent is where a gauge turns to warning.
const WarnPercent = 80

// LimitError is a limit error the server sent, attached to the gauge of
// the limit it reports.
type LimitError struct {
	Time time.Time `json:"time"`
	// Reason is the server's text, as received (cut to 512 bytes).
	Reason string `json:"reason"`
	// Code is the reason's code ("ChannelRateLimitReached"), if it has
	// one.
	Code string `json:"code,omitempty"`
	// Channel is the channel it came on, if any.
	Channel string `json:"channel,omitempty"`
}

// Gauge is one limit's state at a moment.
type Gauge struct {
	Name Name `json:"name"`
	Kind Kind `json:"kind"`
	// Usage is what is used now: for a count gauge the sockets or
	// channels held; for a rate gauge the events of the last second (the
	// current rate); for a size gauge the largest payload of the last
	// minute, in bytes. It is the larger of what rtm saw itself and the
	// server's own counter when the server reports one.
	Usage float64 `json:"usage"`
	// Peak is the highest Usage since the meter started (for a rate
	// gauge, the peak rate).
	Peak float64 `json:"peak"`
	// Trend is the growth of Usage per second over the last
	// TrendSeconds (least squares); 0 for size gauges.
	Trend float64 `json:"trend"`
	// Limit is the limit in Usage's unit (0: none known) and Source
	// where it came from ("server", "plan free", "--limit").
	Limit  float64 `json:"limit"`
	Source string  `json:"source,omitempty"`
	// Percent is Usage as a percentage of Limit (0 without a limit).
	Percent float64 `json:"percent"`
	Level   Level   `json:"level"`
	// HitIn forecasts when Usage reaches Limit at the current Trend: 0
	// when it is reached, nil when it is not heading there (no limit, no
	// usage, a trend of 0 or less, further than MaxForecast, a size gauge
	// under its limit).
	HitIn *time.Duration `json:"-"`
	// Error is the last limit error the server sent about this limit.
	Error *LimitError `json:"error,omitempty"`
}

// state computes the gauge's Gauge at now.
func (g *gauge) state(i int, now time.Time, lim Limits) Gauge {
	sp := specs[i]
	u := g.usage(now)
	g.peak = max(g.peak, u)
	out := Gauge{Name: sp.name, Kind: sp.kind, Usage: u, Peak: g.peak, Trend: round(g.trend(now)),
		Limit: float64(lim.values[i]), Source: lim.sources[i], Level: LevelNone}
	if g.err != nil {
		e := *g.err
		out.Error = &e
	}
	if out.Limit > 0 {
		out.Percent = round(100 * u / out.Limit)
		switch {
		case u >= out.Limit:
			out.Level = LevelError
			var zero time.Duration
			out.HitIn = &zero
		case out.Percent >= WarnPercent:
			out.Level = LevelWarning
		default:
			out.Level = LevelOK
		}
		if out.HitIn == nil && out.Trend > 0 && u > 0 {
			if d := time.Duration((out.Limit - u) / out.Trend * float64(time.Second)); d <= MaxForecast {
				out.HitIn = &d
			}
		}
	}
	if out.Error != nil && now.Sub(out.Error.Time) < HistorySeconds*time.Second {
		out.Level = LevelError
	}
	return out
}

// round keeps two decimals.
func round(v float64) float64 { return math.Round(v*100) / 100 }
