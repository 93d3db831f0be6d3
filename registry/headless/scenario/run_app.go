package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"rtm/registry/apps"
)

// The app expectations: each polls the snapshot of the model of the
// app's traffic through the scenario's proxy (registry/apps).

// appChannel is one channel of the app: a topic on a socket.
type appChannel struct {
	sock *apps.Socket
	ch   *apps.Channel
}

// channelsOf returns the channels of topic (every topic when "") on
// socket (every socket when 0), in the order their sockets opened.
func channelsOf(snap *apps.Snapshot, topic string, socket uint64) []appChannel {
	var out []appChannel
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		if socket != 0 && s.ID != socket {
			continue
		}
		for j := range s.Channels {
			if c := &s.Channels[j]; topic == "" || c.Topic == topic {
				out = append(out, appChannel{s, c})
			}
		}
	}
	return out
}

// where names the topic and socket an expectation looks at.
func where(st Step) string {
	s := st.Topic
	if s == "" {
		s = "every topic"
	}
	if st.Socket != 0 {
		s += fmt.Sprintf(" on socket %d", st.Socket)
	}
	return s
}

// describeApp says what the app holds, for an observation.
func describeApp(snap *apps.Snapshot) string {
	if len(snap.Sockets) == 0 {
		return "no app socket has connected through the proxy"
	}
	var parts []string
	for _, s := range snap.Sockets {
		state := "open"
		if !s.Closed.IsZero() {
			state = fmt.Sprintf("closed %d", s.CloseCode)
		}
		var chans []string
		for _, c := range s.Channels {
			chans = append(chans, c.Topic+" "+string(c.Status))
		}
		parts = append(parts, fmt.Sprintf("socket %d (%s): [%s]", s.ID, state, strings.Join(chans, ", ")))
	}
	return strings.Join(parts, "; ")
}

func describeAppChannel(c appChannel) string {
	s := fmt.Sprintf("%s on socket %d", c.ch.Status, c.sock.ID)
	if c.ch.Reason != "" {
		s += " (" + c.ch.Reason + ")"
	}
	if n := len(c.ch.Attempts); n > 0 {
		s += fmt.Sprintf(", %d joins", n+int(c.ch.AttemptsDropped))
	}
	return s
}

// expectApp checks an app expectation until it holds or its time is up.
func (r *runner) expectApp(ctx context.Context, st Step) (string, string, error) {
	if r.app == nil {
		return "", "", fmt.Errorf("expect %s: the scenario's proxy is not running", st.Expect)
	}
	var (
		expected string
		chk      check
		wait     = st.Within
	)
	switch st.Expect {
	case ExpectAppStatus:
		expected = fmt.Sprintf("the app's %s %s within %s", where(st), st.AppStatus, st.Within)
		chk = r.appLook(func(snap *apps.Snapshot) (bool, string) {
			cs := channelsOf(snap, st.Topic, st.Socket)
			if len(cs) == 0 {
				return false, describeApp(snap)
			}
			last := cs[len(cs)-1]
			return last.ch.Status == st.AppStatus, describeAppChannel(last)
		})
	case ExpectAppAttempts:
		return r.expectAppAttempts(ctx, st)
	case ExpectAppDelays:
		expected, chk = r.appDelaysCheck(st)
	case ExpectAppPresence:
		expected, chk = r.appPresenceCheck(st)
	case ExpectAppMessages:
		expected, chk = r.appMessagesCheck(st)
	case ExpectAppNoDuplicates:
		expected = fmt.Sprintf("no topic joined twice by one socket (%s)", where(st))
		if st.For > 0 {
			expected += " for " + st.For.String()
		}
		wait = st.For
		look := func() (bool, bool, string) {
			snap := r.app.model.Snapshot()
			for _, f := range snap.Flags {
				if f.Kind == apps.FlagDuplicateTopic && (st.Topic == "" || f.Topic == st.Topic) && (st.Socket == 0 || f.Socket == st.Socket) {
					return true, false, f.Text
				}
			}
			return false, true, "no duplicate join"
		}
		chk = look
	default:
		return "", "", fmt.Errorf("unknown expectation %q", st.Expect)
	}
	ok, observed, err := r.poll(ctx, wait, chk)
	if err != nil {
		return expected, observed, err
	}
	if !ok {
		return expected, observed, fmt.Errorf("expected %s; observed %s%s", expected, observed, r.appsEnded())
	}
	return expected, observed, nil
}

// appsEnded tells, for a failed app expectation, of the background
// execs that have exited (an app that could not start, or crashed),
// with the end of their output.
func (r *runner) appsEnded() string {
	var b strings.Builder
	for _, p := range r.execOrder {
		if p.x.Background && p.exited() {
			fmt.Fprintf(&b, "; %s", p.describe())
			if out := p.lastOutput(r.secrets()); out != "" {
				fmt.Fprintf(&b, ", its output ends with:\n%s", out)
			}
		}
	}
	return b.String()
}

// appLook makes a check of a condition on the app's snapshot that is
// decided once it holds.
func (r *runner) appLook(holds func(*apps.Snapshot) (bool, string)) check {
	return func() (bool, bool, string) {
		snap := r.app.model.Snapshot()
		ok, obs := holds(&snap)
		return ok, ok, obs
	}
}

// appRejoins counts the app's joins of the topic after its first (on
// every socket, or the one selected).
func appRejoins(snap *apps.Snapshot, st Step) (int, string) {
	cs := channelsOf(snap, st.Topic, st.Socket)
	joins := 0
	for _, c := range cs {
		joins += len(c.ch.Attempts) + int(c.ch.AttemptsDropped)
	}
	n := max(joins-1, 0)
	obs := fmt.Sprintf("%d rejoins (%d joins)", n, joins)
	if len(cs) > 0 {
		obs += "; now " + describeAppChannel(cs[len(cs)-1])
	}
	return n, obs
}

func (r *runner) expectAppAttempts(ctx context.Context, st Step) (string, string, error) {
	lo, hi := st.AtLeast, st.AtMost
	if st.Exactly >= 0 {
		lo, hi = st.Exactly, st.Exactly
	}
	var expected string
	switch {
	case lo >= 0 && lo == hi:
		expected = fmt.Sprintf("exactly %d rejoins of the app's %s", lo, where(st))
	case lo >= 0 && hi >= 0:
		expected = fmt.Sprintf("%d to %d rejoins of the app's %s", lo, hi, where(st))
	case lo >= 0:
		expected = fmt.Sprintf("at least %d rejoins of the app's %s", lo, where(st))
	default:
		expected = fmt.Sprintf("at most %d rejoins of the app's %s", hi, where(st))
	}
	if lo >= 0 {
		expected += " within " + st.Within.String()
	}
	if hi >= 0 && st.For > 0 {
		expected += " and no more for " + st.For.String()
	}
	observe := func() (int, string) {
		snap := r.app.model.Snapshot()
		return appRejoins(&snap, st)
	}
	e, o, err := r.bounded(ctx, st, expected, lo, hi, observe)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w%s", err, r.appsEnded())
	}
	return e, o, err
}

// bounded checks a count between lo and hi (-1: unbounded): at least lo
// within st.Within, then no more than hi for st.For.
func (r *runner) bounded(ctx context.Context, st Step, expected string, lo, hi int, observe func() (int, string)) (string, string, error) {
	var obs string
	if lo >= 0 {
		ok, o, err := r.poll(ctx, st.Within, func() (bool, bool, string) {
			n, o := observe()
			if hi >= 0 && n > hi {
				return true, false, o
			}
			return n >= lo, n >= lo, o
		})
		obs = o
		if err != nil {
			return expected, obs, err
		}
		if !ok {
			return expected, obs, fmt.Errorf("expected %s; observed %s", expected, obs)
		}
	}
	if hi >= 0 {
		ok, o, err := r.poll(ctx, st.For, func() (bool, bool, string) {
			n, o := observe()
			if n > hi {
				return true, false, o
			}
			return false, true, o
		})
		obs = o
		if err != nil {
			return expected, obs, err
		}
		if !ok {
			return expected, obs, fmt.Errorf("expected %s; observed %s", expected, obs)
		}
	}
	return expected, obs, nil
}

// appDelays lists the delays the app waited before trying again: each
// rejoin's after a failed attempt (Attempt.Delay) and each reconnect's
// (Socket.ReconnectDelay) of the sockets that held the topic.
func appDelays(snap *apps.Snapshot, st Step) []time.Duration {
	var out []time.Duration
	seen := map[uint64]bool{}
	for _, c := range channelsOf(snap, st.Topic, st.Socket) {
		if c.sock.Attempt > 1 && !seen[c.sock.ID] {
			seen[c.sock.ID] = true
			out = append(out, c.sock.ReconnectDelay)
		}
		for _, a := range c.ch.Attempts {
			if a.Delay > 0 {
				out = append(out, a.Delay)
			}
		}
	}
	return out
}

func (r *runner) appDelaysCheck(st Step) (string, check) {
	var bounds string
	switch {
	case st.Min > 0 && st.Max > 0:
		bounds = fmt.Sprintf("between %s and %s", st.Min, st.Max)
	case st.Max > 0:
		bounds = "at most " + st.Max.String()
	default:
		bounds = "at least " + st.Min.String()
	}
	expected := fmt.Sprintf("the app waited %s before each retry of %s (%d or more retries) within %s", bounds, where(st), st.AtLeast, st.Within)
	look := func() (bool, bool, string) {
		snap := r.app.model.Snapshot()
		ds := appDelays(&snap, st)
		texts := make([]string, len(ds))
		bad := -1
		for i, d := range ds {
			texts[i] = d.Round(time.Millisecond).String()
			if bad < 0 && (d < st.Min || st.Max > 0 && d > st.Max) {
				bad = i
			}
		}
		obs := fmt.Sprintf("delays [%s]", strings.Join(texts, ", "))
		if bad >= 0 {
			return true, false, fmt.Sprintf("%s: retry %d waited %s", obs, bad+1, texts[bad])
		}
		ok := len(ds) >= st.AtLeast
		return ok, ok, obs
	}
	return expected, look
}

func (r *runner) appPresenceCheck(st Step) (string, check) {
	var expected string
	switch {
	case st.Contains != "":
		expected = fmt.Sprintf("the app sees %s present on %s within %s", st.Contains, where(st), st.Within)
	case st.Lacks != "":
		expected = fmt.Sprintf("the app sees %s absent from %s within %s", st.Lacks, where(st), st.Within)
	default:
		expected = fmt.Sprintf("the app sees %d present on %s within %s", st.Count, where(st), st.Within)
	}
	return expected, r.appLook(func(snap *apps.Snapshot) (bool, string) {
		cs := channelsOf(snap, st.Topic, st.Socket)
		if len(cs) == 0 {
			return false, describeApp(snap)
		}
		last := cs[len(cs)-1]
		keys := make([]string, 0, len(last.ch.Presence))
		for _, m := range last.ch.Presence {
			keys = append(keys, m.Key)
		}
		slices.Sort(keys)
		obs := fmt.Sprintf("%d present on socket %d: [%s]", len(keys), last.sock.ID, strings.Join(keys, ", "))
		switch {
		case st.Contains != "":
			return slices.Contains(keys, st.Contains), obs
		case st.Lacks != "":
			return !slices.Contains(keys, st.Lacks), obs
		}
		return len(keys) == st.Count, obs
	})
}

// appMessages counts the messages the app received of the event on the
// selected channels (a broadcast's event, or the frame's: presence_diff,
// system, ...), and those the model's bounds dropped.
func appMessages(snap *apps.Snapshot, st Step) (n int, dropped uint64) {
	for _, c := range channelsOf(snap, st.Topic, st.Socket) {
		dropped += c.ch.MessagesDropped
		for _, m := range c.ch.Messages {
			if m.Dir == "upstream->app" && (strings.EqualFold(m.UserEvent, st.Event) || m.UserEvent == "" && strings.EqualFold(m.Event, st.Event)) {
				n++
			}
		}
	}
	return n, dropped
}

func (r *runner) appMessagesCheck(st Step) (string, check) {
	var expected string
	if st.Count >= 0 {
		expected = fmt.Sprintf("the app received %d %s messages on %s within %s", st.Count, st.Event, where(st), st.Within)
	} else {
		expected = fmt.Sprintf("the app received at least %d %s messages on %s within %s", st.AtLeast, st.Event, where(st), st.Within)
	}
	look := func() (bool, bool, string) {
		snap := r.app.model.Snapshot()
		n, dropped := appMessages(&snap, st)
		obs := fmt.Sprintf("%d messages", n)
		if dropped > 0 {
			obs += fmt.Sprintf(" (and %d older messages of the channel not kept by the model)", dropped)
		}
		if st.Count >= 0 {
			if n > st.Count {
				return true, false, obs + " (more than expected)"
			}
			return n == st.Count, n == st.Count, obs
		}
		return n >= st.AtLeast, n >= st.AtLeast, obs
	}
	return expected, look
}
