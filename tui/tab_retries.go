package tui

import (
	"fmt"
	"strconv"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// retriesTab is the Retries tab: the policy, the countdowns to the next
// attempts and the attempt timeline of the channel and the socket.
type retriesTab struct {
	scroll scroll
}

func (t *retriesTab) names() (full, short string) { return "Retries", "Retries" }

func (t *retriesTab) note() string { return "" }

func (t *retriesTab) reset() { t.scroll = 0 }

func (t *retriesTab) page(h int) int { return max(1, h-4) }

func (t *retriesTab) navigate(_ *mainView, mv navMove) { t.scroll.apply(mv) }

func (t *retriesTab) update(tea.KeyPressMsg, KeyMap) bool { return false }

func (t *retriesTab) help(KeyMap) []key.Binding { return nil }

func (t *retriesTab) key(v *mainView, _ registry.Name) tabKey {
	return tabKey{s: t.scroll, a: v.retries.Seq(), n: v.retries.Len()}
}

func (t *retriesTab) restyle() {}

func (t *retriesTab) view(v *mainView, c registry.ChannelInfo, w, h int) []string {
	return scrolled(t.render(v, c, w, h), h, t.scroll)
}

// lastScheduled returns the newest scheduled retry of a scope (and
// channel), or nil.
func (v *mainView) lastScheduled(scope registry.RetryScope, ch registry.Name) *registry.RetryEvent {
	for i := v.retries.Len() - 1; i >= 0; i-- {
		e := v.retries.Ptr(i)
		if e.Scope == scope && (scope == registry.ScopeSocket || e.Channel == ch) && e.Outcome == registry.RetryScheduled {
			return e
		}
	}
	return nil
}

// countdown renders "attempt 2/5 in 2.1s [████░░░░]" for the next
// attempt, scheduled by ev (nil when unknown).
func (v *mainView) countdown(next time.Time, ev *registry.RetryEvent, w int) string {
	left := next.Sub(v.now)
	s := "next attempt in " + fmtCountdown(left)
	var total time.Duration
	if ev != nil {
		total = ev.Delay
		s = fmt.Sprintf("attempt %s in %s", attempts(ev.Attempt, ev.Max), fmtCountdown(left))
		if ev.Max == 0 && ev.Scope == registry.ScopeSocket {
			s = fmt.Sprintf("attempt %d in %s", ev.Attempt, fmtCountdown(left))
		}
	}
	if total <= 0 || w < len(s)+6 {
		return v.st.Warn.Render(s)
	}
	bw := min(20, w-len(s)-1)
	return v.st.Warn.Render(s) + " " + bar(v.st, float64(left)/float64(total), bw)
}

// viewRetries renders the policy, the countdowns and the attempt timeline.
func (t *retriesTab) render(v *mainView, c registry.ChannelInfo, w, h int) []string {
	var out []string
	p := v.state.Policy
	pl := newLine(w).add(v.st.Muted, "policy ").add(v.st.Primary, sanitize(p.Spec))
	if p.Description != "" {
		pl.add(v.st.Muted, " · "+sanitize(p.Description))
	}
	if p.Breaker != nil {
		pl.add(v.st.Muted, " · breaker ").add(v.st.Warn, p.Breaker.State)
	}
	out = append(out, pl.done())

	// Channel line.
	cl := newLine(w).add(v.st.Muted, "channel ").add(v.st.StatusPaint(c.Status.String()), c.Status.String())
	cl.add(v.st.Muted, " · attempts ").add(v.st.Text, attempts(c.Attempts, c.MaxAttempts))
	if c.RetryReason != "" {
		cl.add(v.st.Muted, " · "+sanitize(c.RetryReason))
	}
	out = append(out, cl.done())
	switch {
	case !c.NextAttemptAt.IsZero() && c.NextAttemptAt.After(v.now):
		cd := v.countdown(c.NextAttemptAt, v.lastScheduled(registry.ScopeChannel, c.Name), w-2)
		out = append(out, newLine(w).plain("  ").raw(cd, min(w-2, textWidth(ansiStrip(cd)))).done())
	case c.Status == registry.StatusError:
		out = append(out, newLine(w).add(v.st.Error, "  retries exhausted — r retries now").done())
	}
	// Socket line.
	s := v.state.Socket
	sl := newLine(w).add(v.st.Muted, "socket  ").add(v.st.StatusPaint(socketStatusName(s.Status)), socketStatusName(s.Status))
	if s.Attempt > 0 {
		sl.add(v.st.Muted, fmt.Sprintf(" · attempt %d", s.Attempt))
	}
	if s.Reason != "" && s.Status != registry.SocketConnected {
		sl.add(v.st.Muted, " · "+sanitize(s.Reason))
	}
	out = append(out, sl.done())
	if !s.NextAttemptAt.IsZero() && s.NextAttemptAt.After(v.now) {
		cd := v.countdown(s.NextAttemptAt, v.lastScheduled(registry.ScopeSocket, registry.Name{}), w-2)
		out = append(out, newLine(w).plain("  ").raw(cd, min(w-2, textWidth(ansiStrip(cd)))).done())
	}
	// Timeline.
	hdr := fitRight("#", 3) + " " + fitText("TIME", 12) + " " + fitText("SCOPE", 7) + " " + fitRight("DELAY", 6) + " " + fitText("OUTCOME", 10) + " REASON / ERROR"
	out = append(out, newLine(w).add(v.st.Table.Header, hdr).done())
	room := h - len(out)
	var rows []*registry.RetryEvent
	for i := v.retries.Len() - 1; i >= 0 && len(rows) < room+int(t.scroll); i-- {
		e := v.retries.Ptr(i)
		if e.Scope == registry.ScopeSocket || e.Channel == c.Name {
			rows = append(rows, e)
		}
	}
	if len(rows) == 0 {
		return append(out, newLine(w).add(v.st.Muted, "no attempts yet — x opens the fault menu to provoke some").done())
	}
	for i := len(rows) - 1; i >= 0; i-- {
		e := rows[i]
		l := newLine(w)
		l.add(v.st.Text, fitRight(strconv.Itoa(e.Attempt), 3)).plain(" ")
		l.add(v.st.Subtle, e.Time.Format("15:04:05.000")).plain(" ")
		l.add(v.st.Muted, fitText(string(e.Scope), 7)).plain(" ")
		delay := ""
		if e.Delay > 0 {
			delay = registry.FormatDuration(e.Delay)
		}
		l.add(v.st.Text, fitRight(delay, 6)).plain(" ")
		l.add(outcomePaint(v.st, e.Outcome), fitText(string(e.Outcome), 10)).plain(" ")
		text := e.Reason
		if e.Err != "" {
			text = e.Err
		}
		l.add(v.st.Muted, sanitize(text))
		out = append(out, l.done())
	}
	return out
}

func outcomePaint(st themeStyles, o registry.RetryOutcome) themePaint {
	switch o {
	case registry.RetrySucceeded:
		return st.OK
	case registry.RetryFailed:
		return st.Warn
	case registry.RetryExhausted:
		return st.Error
	case registry.RetryScheduled, registry.RetryHeld:
		return st.Info
	}
	return st.Muted
}

func socketStatusName(s registry.SocketStatus) string {
	if s == 0 {
		return "idle"
	}
	return s.String()
}
