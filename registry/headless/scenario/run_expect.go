package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"rtm/registry"
	"rtm/registry/limits"
	"strings"
	"time"
)

// poll calls look every Poll until it reports done or d passes (at
// least one look is taken); it returns the last look's result.
func (r *runner) poll(ctx context.Context, d time.Duration, look check) (bool, string, error) {
	deadline := time.Now().Add(d)
	t := time.NewTicker(r.o.Poll)
	defer t.Stop()
	for {
		done, ok, obs := look()
		if done || !time.Now().Before(deadline) {
			return ok, obs, nil
		}
		select {
		case <-ctx.Done():
			_, ok, obs = look()
			return ok, obs, ctx.Err()
		case <-t.C:
		}
	}
}

// check is one look at an expectation: whether it is decided, whether
// it holds, and what was observed.
type check = func() (done, ok bool, observed string)

// expect checks an expectation until it holds or its time is up.
func (r *runner) expect(ctx context.Context, c *client, st Step) (string, string, error) {
	var (
		expected string
		chk      check
		wait     = st.Within
	)
	switch st.Expect {
	case ExpectStatus:
		expected, chk = r.statusCheck(c, st)
	case ExpectAttempts:
		return r.expectAttempts(ctx, c, st)
	case ExpectPresence:
		expected, chk = presenceCheck(c, st)
	case ExpectMessages:
		return r.expectMessages(ctx, c, st)
	case ExpectError:
		expected, chk = r.errorCheck(c, st)
	case ExpectNoError:
		expected, chk = r.noErrorCheck(c, st)
		wait = st.For
	case ExpectSameMessages:
		expected, chk = r.sameCheck(ctx, st)
	case ExpectLimits:
		expected, chk = r.limitsCheck(ctx, c, st)
		if st.Under >= 0 && st.For > 0 {
			wait = st.For
		}
	default:
		return "", "", fmt.Errorf("unknown expectation %q", st.Expect)
	}
	ok, observed, err := r.poll(ctx, wait, chk)
	if err != nil {
		return expected, observed, err
	}
	if !ok {
		return expected, observed, fmt.Errorf("expected %s; observed %s", expected, observed)
	}
	return expected, observed, nil
}

// serverRefresh is how often a limits expectation reads the server's
// limits and counters.
const serverRefresh = 250 * time.Millisecond

// limitsCheck: the client's gauge of a limit (its own usage, and the
// server's counters when the target reports them) is under a percentage
// of the limit (throughout for, if given), or reaches one. The limit is
// the scenario's plan, the server's configured value over it, the
// scenario's limits over both.
func (r *runner) limitsCheck(ctx context.Context, c *client, st Step) (string, check) {
	var expected string
	switch {
	case st.Over >= 0:
		expected = fmt.Sprintf("%s at %g%% of its limit or more within %s", st.Limit, st.Over, st.Within)
	case st.For > 0:
		expected = fmt.Sprintf("%s under %g%% of its limit for %s", st.Limit, st.Under, st.For)
	default:
		expected = fmt.Sprintf("%s under %g%% of its limit within %s", st.Limit, st.Under, st.Within)
	}
	src := r.o.Env.LimitsSource()
	meter := c.feed.Meter()
	var lastRead time.Time
	look := func() (bool, bool, string) {
		if src != nil && time.Since(lastRead) >= serverRefresh {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = meter.Refresh(rctx, src, r.sc.Limits, r.sc.Overrides) // unread: the last limits hold
			cancel()
			lastRead = time.Now()
		}
		g, _ := meter.Gauge(st.Limit)
		obs := describeGauge(g)
		if g.Limit <= 0 {
			return true, false, obs + ": no limit known (give the scenario a plan: or limits:, or run it against the embedded server or rtm serve with --service-key)"
		}
		if st.Over >= 0 {
			ok := g.Percent >= st.Over
			return ok, ok, obs
		}
		under := g.Percent < st.Under
		if st.For > 0 {
			return !under, under, obs // fails at the first look over
		}
		return under, under, obs
	}
	return expected, look
}

// describeGauge says what a gauge reads.
func describeGauge(g limits.Gauge) string {
	s := fmt.Sprintf("%s %g", g.Name, g.Usage)
	if g.Limit > 0 {
		s += fmt.Sprintf(" of %g (%g%%, %s, limit from %s)", g.Limit, g.Percent, g.Level, g.Source)
	}
	s += fmt.Sprintf(", peak %g", g.Peak)
	if g.Error != nil {
		s += fmt.Sprintf("; the server said %q", g.Error.Reason)
	}
	return s
}

// statusCheck: the channel has (or passed through) the status.
func (r *runner) statusCheck(c *client, st Step) (string, check) {
	expected := fmt.Sprintf("%s %s within %s", st.Channel, st.Status, st.Within)
	from := r.stepStart
	look := func() (bool, bool, string) {
		info, err := c.m.Info(st.Channel)
		if err != nil {
			return false, false, "not in the registry"
		}
		if info.Status == st.Status {
			return true, true, describeChannel(info)
		}
		// A join completed since then passed through connecting, even
		// when the state events of a lagging subscriber were merged
		// down to the latest one (the broker coalesces state).
		if st.Status == registry.StatusConnecting && !info.JoinedAt.Before(from) {
			return true, true, fmt.Sprintf("connecting, then joined at %s (now %s)", info.JoinedAt.Format("15:04:05.000"), describeChannel(info))
		}
		// A status the channel passed through since the previous
		// step began counts too (it may have lasted less than a
		// poll).
		for _, e := range c.since(from) {
			if cs, ok := e.(registry.ChannelStateEvent); ok && cs.Channel == st.Channel && cs.Status == st.Status && !cs.Removed {
				return true, true, fmt.Sprintf("%s at %s (now %s)", st.Status, cs.Time.Format("15:04:05.000"), describeChannel(info))
			}
		}
		return false, false, describeChannel(info)
	}
	return expected, look
}

// presenceCheck: a user present or absent, or a number of users.
func presenceCheck(c *client, st Step) (string, check) {
	var expected string
	switch {
	case st.Contains != "":
		expected = fmt.Sprintf("%s has %s present within %s", st.Channel, st.Contains, st.Within)
	case st.Lacks != "":
		expected = fmt.Sprintf("%s lacks %s within %s", st.Channel, st.Lacks, st.Within)
	default:
		expected = fmt.Sprintf("%s has %d users present within %s", st.Channel, st.Count, st.Within)
	}
	look := func() (bool, bool, string) {
		users, err := c.m.Presence(st.Channel)
		if err != nil {
			return false, false, "not in the registry"
		}
		ids := make([]string, 0, len(users))
		has := map[string]bool{}
		for _, u := range users {
			ids = append(ids, u.UserID)
			has[u.UserID] = true
		}
		var ok bool
		switch {
		case st.Contains != "":
			ok = has[st.Contains]
		case st.Lacks != "":
			ok = !has[st.Lacks]
		default:
			ok = len(users) == st.Count
		}
		return ok, ok, fmt.Sprintf("%d present: [%s]", len(ids), strings.Join(ids, ", "))
	}
	return expected, look
}

// errorCheck: an error matching the reason.
func (r *runner) errorCheck(c *client, st Step) (string, check) {
	from := r.window(st)
	expected := fmt.Sprintf("an error matching %q within %s", st.Reason, st.Within)
	look := func() (bool, bool, string) {
		errs := errorsOf(c.since(from), st.Channel, from)
		for _, e := range errs {
			if strings.Contains(strings.ToLower(e), strings.ToLower(st.Reason)) {
				return true, true, e
			}
		}
		return false, false, summarizeErrors(errs)
	}
	return expected, look
}

// noErrorCheck: no error for the whole wait.
func (r *runner) noErrorCheck(c *client, st Step) (string, check) {
	from := r.window(st)
	expected := "no error"
	if st.For > 0 {
		expected += " for " + st.For.String()
	}
	look := func() (bool, bool, string) {
		errs := errorsOf(c.since(from), st.Channel, from)
		if len(errs) > 0 {
			return true, false, summarizeErrors(errs)
		}
		return false, true, "no error"
	}
	return expected, look
}

func (r *runner) window(st Step) time.Time {
	if st.Since == "last_step" {
		return r.stepStart
	}
	return r.start
}

func describeChannel(i registry.ChannelInfo) string {
	s := i.Status.String()
	if i.Reason != "" {
		s += " (" + i.Reason + ")"
	}
	if i.Attempts > 0 || i.Status == registry.StatusError {
		s += fmt.Sprintf(", attempt %d/%d", i.Attempts, i.MaxAttempts)
	}
	if i.LastError != "" {
		s += ", last error: " + i.LastError
	}
	return s
}

// attempts counts the channel's started rejoin attempts among evs.
func attempts(evs []registry.Event, ch registry.Name) int {
	n := 0
	for _, e := range evs {
		if re, ok := e.(registry.RetryEvent); ok && re.Scope == registry.ScopeChannel && re.Channel == ch && re.Outcome == registry.RetryStarted {
			n++
		}
	}
	return n
}

func (r *runner) expectAttempts(ctx context.Context, c *client, st Step) (string, string, error) {
	lo, hi := st.AtLeast, st.AtMost
	if st.Exactly >= 0 {
		lo, hi = st.Exactly, st.Exactly
	}
	var parts []string
	switch {
	case lo >= 0 && lo == hi:
		parts = append(parts, fmt.Sprintf("exactly %d attempts on %s", lo, st.Channel))
	case lo >= 0 && hi >= 0:
		parts = append(parts, fmt.Sprintf("%d to %d attempts on %s", lo, hi, st.Channel))
	case lo >= 0:
		parts = append(parts, fmt.Sprintf("at least %d attempts on %s", lo, st.Channel))
	default:
		parts = append(parts, fmt.Sprintf("at most %d attempts on %s", hi, st.Channel))
	}
	if lo >= 0 {
		parts = append(parts, "within "+st.Within.String())
	}
	if hi >= 0 && st.For > 0 {
		parts = append(parts, "and no more for "+st.For.String())
	}
	expected := strings.Join(parts, " ")
	observe := func() (int, string) {
		n := attempts(c.since(r.start), st.Channel)
		obs := fmt.Sprintf("%d attempts", n)
		if info, err := c.m.Info(st.Channel); err == nil {
			obs += "; channel " + describeChannel(info)
		}
		return n, obs
	}
	return r.bounded(ctx, st, expected, lo, hi, observe)
}

// received returns the payloads of the messages c received on the
// channel that match st (kind, event).
func received(c *client, st Step, from time.Time) []registry.MessageEvent {
	var out []registry.MessageEvent
	for _, e := range c.since(from) {
		me, ok := e.(registry.MessageEvent)
		if !ok || me.Direction != registry.In || me.Channel != st.Channel || me.Kind != st.MessageKind {
			continue
		}
		if st.Event != "" && !strings.EqualFold(me.Event, st.Event) {
			continue
		}
		out = append(out, me)
	}
	return out
}

func (r *runner) expectMessages(ctx context.Context, c *client, st Step) (string, string, error) {
	what := string(st.MessageKind)
	if st.Event != "" {
		what += " " + st.Event
	}
	var expected string
	if st.Count >= 0 {
		expected = fmt.Sprintf("%d %s messages on %s within %s", st.Count, what, st.Channel, st.Within)
	} else {
		expected = fmt.Sprintf("at least %d %s messages on %s within %s", st.AtLeast, what, st.Channel, st.Within)
	}
	if len(st.Payloads) > 0 {
		expected += ", payloads in the order listed"
	}
	if st.OrderBy != "" {
		expected += fmt.Sprintf(", %q increasing", st.OrderBy)
	}
	want := st.Count
	if want < 0 {
		want = st.AtLeast
	}
	ok, obs, err := r.poll(ctx, st.Within, func() (bool, bool, string) {
		msgs := received(c, st, r.start)
		obs := fmt.Sprintf("%d messages", len(msgs))
		if len(msgs) < want {
			return false, false, obs
		}
		if st.Count >= 0 && len(msgs) > st.Count {
			return true, false, obs + " (more than expected): " + payloadList(msgs, 5)
		}
		for i, p := range st.Payloads {
			if !subset(p, msgs[i].Payload) {
				return true, false, fmt.Sprintf("%s; message %d is %s, expected it to contain %s", obs, i+1, clip(string(msgs[i].Payload)), p)
			}
		}
		if st.OrderBy != "" {
			var prev json.Number
			for i, m := range msgs {
				v, ok := member(m.Payload, st.OrderBy)
				if !ok {
					return true, false, fmt.Sprintf("%s; message %d has no number %q: %s", obs, i+1, st.OrderBy, clip(string(m.Payload)))
				}
				if i > 0 && !less(prev, v) {
					return true, false, fmt.Sprintf("%s; out of order at message %d: %s %s after %s", obs, i+1, st.OrderBy, v, prev)
				}
				prev = v
			}
		}
		return true, true, obs
	})
	if err != nil {
		return expected, obs, err
	}
	if !ok {
		return expected, obs, fmt.Errorf("expected %s; observed %s", expected, obs)
	}
	return expected, obs, nil
}

// errorsOf lists the errors among evs (about ch when it is set): error
// events, failed and exhausted attempts, channels gone to error.
func errorsOf(evs []registry.Event, ch registry.Name, from time.Time) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, e := range evs {
		switch e := e.(type) {
		case registry.ErrorEvent:
			if ch.IsZero() || e.Channel == ch {
				if e.Code != "" {
					add(e.Code + ": " + e.Message)
				} else {
					add(e.Message)
				}
			}
		case registry.RetryEvent:
			if e.Scope == registry.ScopeChannel && (ch.IsZero() || e.Channel == ch) &&
				(e.Outcome == registry.RetryFailed || e.Outcome == registry.RetryExhausted) {
				add(e.Err)
			}
		case registry.ChannelStateEvent:
			if !ch.IsZero() && e.Channel != ch {
				continue
			}
			switch {
			case e.Status == registry.StatusError:
				add(firstNonEmpty(errorText(e.Info), e.Reason, "channel error"))
			case e.Info.LastError != "" && !e.Info.LastErrorAt.Before(from):
				add(errorText(e.Info))
			}
		}
	}
	return out
}

func summarizeErrors(errs []string) string {
	if len(errs) == 0 {
		return "no error"
	}
	if len(errs) > 5 {
		return fmt.Sprintf("%d errors: %s, …", len(errs), strings.Join(errs[:5], "; "))
	}
	return fmt.Sprintf("%d errors: %s", len(errs), strings.Join(errs, "; "))
}

func errorText(i registry.ChannelInfo) string {
	if i.LastErrorCode != "" && !strings.HasPrefix(i.LastError, i.LastErrorCode) {
		return i.LastErrorCode + ": " + i.LastError
	}
	return i.LastError
}
