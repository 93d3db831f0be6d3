package limits

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by the errors of the parsers (a plan, a limit
// name, an override, a percentage).
var ErrInvalid = errors.New("limits: invalid")

// Limits are the values a meter compares usage with, each with where it
// came from. Values are in the gauge's unit: clients, channels, events
// per second, bytes for the sizes. 0 means no limit: none known, or one
// set off (its source then says who said so). The zero Limits knows
// none.
type Limits struct {
	values  [NumNames]int64
	sources [NumNames]string
	set     [NumNames]bool
}

// Get returns a limit's value (0: none) and its source ("plan free",
// "server", "--limit"; "" when nothing set it).
func (l Limits) Get(n Name) (int64, string) {
	i, ok := index(string(n))
	if !ok {
		return 0, ""
	}
	return l.values[i], l.sources[i]
}

// Set returns l with n's value (in the gauge's unit) from source; a
// value <= 0 sets it off (no limit), which [Limits.Merge] puts over
// another value too.
func (l Limits) Set(n Name, v int64, source string) Limits {
	i, ok := index(string(n))
	if !ok {
		return l
	}
	l.values[i], l.sources[i], l.set[i] = max(v, 0), source, true
	return l
}

// Merge returns l with every limit o set (a value, or off) put over
// l's.
func (l Limits) Merge(o Limits) Limits {
	for i := range o.values {
		if o.set[i] {
			l.values[i], l.sources[i], l.set[i] = o.values[i], o.sources[i], true
		}
	}
	return l
}

// Plans are the plans [Plan] knows, in order.
func Plans() []string { return []string{"free", "pro", "pro-no-cap", "team", "enterprise"} }

// planFigures are the documented plan limits (Supabase's limits page),
// per plan in Plans order: concurrent clients, channels per connection,
// joins/s, messages/s, presence events/s, payload KB, postgres change
// payload KB. Enterprise's figures are the documented minimums ("10,000+"):
// give the custom ones with overrides.
var planFigures = [5][NumNames]int64{
	{200, 100, 100, 100, 20, 256, 1024},
	{500, 100, 500, 500, 50, 3000, 1024},
	{10000, 100, 2500, 2500, 1000, 3000, 1024},
	{10000, 100, 2500, 2500, 1000, 3000, 1024},
	{10000, 100, 2500, 2500, 1000, 3000, 1024},
}

// Plan returns the documented limits of a Supabase plan: free, pro,
// pro-no-cap, team or enterprise.
func Plan(name string) (Limits, error) {
	p := strings.ToLower(strings.TrimSpace(name))
	for i, n := range Plans() {
		if p == n {
			var l Limits
			for j, v := range planFigures[i] {
				l.values[j], l.sources[j], l.set[j] = v*specs[j].scale, "plan "+n, true
			}
			return l, nil
		}
	}
	return Limits{}, fmt.Errorf("%w: unknown plan %q (want %s)", ErrInvalid, name, strings.Join(Plans(), ", "))
}

// maxOverride bounds an override value (in its unit), so that sizes in
// bytes stay far from overflowing.
const maxOverride = 1_000_000_000

// ParseOverride reads NAME=N: a limit's name (or its Supabase setting
// name) and a whole number in the limit's unit (KB of 1000 bytes for the
// sizes), or "off" for no limit (N = 0). It returns the value in the
// gauge's unit.
func ParseOverride(s string) (Name, int64, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", 0, fmt.Errorf("%w: limit %q: want NAME=N, e.g. channels_per_connection=50 (names: %s)", ErrInvalid, s, nameList())
	}
	i, ok := index(k)
	if !ok {
		return "", 0, fmt.Errorf("%w: limit %q: unknown name %q (want %s)", ErrInvalid, s, k, nameList())
	}
	sp := specs[i]
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "off") {
		return sp.name, 0, nil
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
	if err != nil || n <= 0 || n > maxOverride {
		return "", 0, fmt.Errorf("%w: limit %q: %s must be a whole number of %s from 1 to %d, or off", ErrInvalid, s, sp.name, sp.unit, maxOverride)
	}
	return sp.name, n * sp.scale, nil
}

// Override returns l with each NAME=N of specs (see [ParseOverride])
// put over it, with source "--limit".
func Override(l Limits, specs []string) (Limits, error) {
	for _, s := range specs {
		n, v, err := ParseOverride(s)
		if err != nil {
			return l, err
		}
		l = l.Set(n, v, "--limit")
	}
	return l, nil
}

// ParsePercent reads a percentage: "80%", "80" or "12.5%", from 0 to
// 1000.
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1000 {
		return 0, fmt.Errorf("%w: %q is not a percentage (write 80%%)", ErrInvalid, s)
	}
	return v, nil
}
