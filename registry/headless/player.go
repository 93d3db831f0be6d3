package headless

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"rtm/registry"
)

// PlayerOptions configures a [Player].
type PlayerOptions struct {
	// Speed is the initial speed (1 = recorded pace; 0 means 1).
	Speed float64
	// From starts the replay this far into the recording: the events
	// before it are delivered at once.
	From time.Duration
	// Paused starts the player paused.
	Paused bool
	// Name names the recording in the player's log lines.
	Name string
	// Now is the wall clock (nil: time.Now).
	Now func() time.Time
}

// Player replays a recording as the event stream of a manager, for the
// terminal UI in read-only mode: it implements the UI's event source
// (Events, Dropped), gives snapshots built from the events delivered so
// far (Snapshot), and a clock on recorded time (Now). The pace is
// controlled while it runs: SetSpeed, SetPaused, Seek.
//
// After a Seek back, the player delivers a rewind marker (see
// [RewindEpoch]) and then the events from the start of the recording up
// to the new position at once: a consumer that keeps history clears it
// on the marker.
type Player struct {
	rec        *Recording
	times      []time.Time // monotone event times
	start, end time.Time   // the first and last of times
	name       string
	now        func() time.Time
	out        chan registry.Event
	wake       chan struct{}

	mu       sync.Mutex
	speed    float64
	paused   bool
	pos      int       // next event
	recAt    time.Time // recorded time at the anchor
	wallAt   time.Time // wall time at the anchor
	epoch    uint64
	finished bool
	st       replayState
	// apps is the app model of an app recording (nil for a client
	// recording).
	apps *appReplay
}

// NewPlayer returns a player of rec. Run delivers the events.
func NewPlayer(rec *Recording, o PlayerOptions) *Player {
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Player{rec: rec, name: o.Name, now: o.Now, out: make(chan registry.Event, 256),
		wake: make(chan struct{}, 1), speed: o.Speed, paused: o.Paused}
	// Times made monotone; an event without a time takes its
	// predecessor's (the first one's, the first time found).
	var last time.Time
	for _, e := range rec.Events {
		if t := e.EventTime(); !t.IsZero() {
			last = t
			break
		}
	}
	for _, e := range rec.Events {
		t := e.EventTime()
		if t.Before(last) {
			t = last
		}
		last = t
		p.times = append(p.times, t)
	}
	p.start = rec.Header.Started
	if n := len(p.times); n > 0 {
		p.start, p.end = p.times[0], p.times[n-1]
	} else {
		p.end = p.start
	}
	if rec.IsApp() {
		p.apps = newAppReplay(rec.Apps)
		p.start, p.end = appSpan(rec.Apps, p.start, p.end)
	}
	p.recAt = p.target(o.From)
	p.wallAt = o.Now()
	p.st.reset(rec)
	return p
}

// Events implements the UI's source: the replayed events. The channel is
// never closed (the UI keeps showing the end of the recording).
func (p *Player) Events() <-chan registry.Event { return p.out }

// Dropped implements the UI's source: a player drops nothing.
func (p *Player) Dropped() uint64 { return 0 }

// Now returns the recorded time the replay is at.
func (p *Player) Now() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clockLocked(p.now())
}

func (p *Player) clockLocked(wall time.Time) time.Time {
	if p.paused || p.finished {
		return p.recAt
	}
	return p.recAt.Add(time.Duration(float64(wall.Sub(p.wallAt)) * p.speed))
}

// reanchor makes the current position the anchor (before a change of
// speed or pause).
func (p *Player) reanchorLocked() {
	wall := p.now()
	p.recAt = p.clockLocked(wall)
	p.wallAt = wall
}

func (p *Player) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Speed returns the current speed.
func (p *Player) Speed() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.speed
}

// SetSpeed changes the speed (x > 0; 1 is the recorded pace).
func (p *Player) SetSpeed(x float64) error {
	if !(x > 0) || x > 1e6 {
		return fmt.Errorf("%w: speed %v: want a number above 0", ErrInvalid, x)
	}
	p.mu.Lock()
	p.reanchorLocked()
	p.speed = x
	p.mu.Unlock()
	p.poke()
	return nil
}

// Paused reports whether the player is paused.
func (p *Player) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// SetPaused pauses or resumes.
func (p *Player) SetPaused(paused bool) {
	p.mu.Lock()
	p.reanchorLocked()
	p.paused = paused
	p.mu.Unlock()
	p.poke()
}

// Position returns how far into the recording the replay is, and the
// recording's length.
func (p *Player) Position() (at, length time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at = p.clockLocked(p.now()).Sub(p.start)
	length = p.end.Sub(p.start)
	return min(max(at, 0), length), length
}

// Seek moves the replay to at (clamped to the recording). Forward, the
// events in between are delivered at once; back, a rewind marker is
// delivered and the events from the start are delivered again up to at.
func (p *Player) Seek(at time.Duration) {
	target := p.target(at)
	p.mu.Lock()
	if p.pos > 0 && p.times[p.pos-1].After(target) {
		p.pos = 0
		p.epoch++
		p.st.reset(p.rec)
		p.st.rewind = true
	}
	p.recAt = target
	p.wallAt = p.now()
	p.finished = false
	p.mu.Unlock()
	p.poke()
}

// target returns the recorded time at offset at, clamped to the
// recording.
func (p *Player) target(at time.Duration) time.Time {
	if at <= 0 {
		return p.start
	}
	if at >= p.end.Sub(p.start) {
		return p.end
	}
	return p.start.Add(at)
}

// RewindEpoch reports whether e is the marker a [Player] delivers after
// a Seek back, and its epoch (1 for the first rewind).
func RewindEpoch(e registry.Event) (uint64, bool) {
	l, ok := e.(registry.LogEvent)
	if !ok || l.Record.Message != rewindMessage {
		return 0, false
	}
	v, ok := l.Record.Attr("replay_epoch")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

const rewindMessage = "Replay rewound"

// Run delivers the events at their pace until ctx ends.
func (p *Player) Run(ctx context.Context) {
	p.send(ctx, p.logEvent(p.start, slog.LevelInfo, "Replay started",
		registry.LogAttr{Key: "recording", Value: p.name},
		registry.LogAttr{Key: "recorded_at", Value: p.rec.Header.Started.Format(time.RFC3339)},
		registry.LogAttr{Key: "length", Value: p.end.Sub(p.start).Round(time.Millisecond).String()},
		registry.LogAttr{Key: "speed", Value: strconv.FormatFloat(p.Speed(), 'g', -1, 64)}))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var ev registry.Event
		if p.st.rewind {
			p.st.rewind = false
			ev = p.logEvent(p.recAt, slog.LevelInfo, rewindMessage,
				registry.LogAttr{Key: "replay_epoch", Value: strconv.FormatUint(p.epoch, 10)},
				registry.LogAttr{Key: "to", Value: p.recAt.Sub(p.start).Round(time.Millisecond).String()})
		}
		var wait time.Duration = -1
		if ev == nil && p.pos < len(p.rec.Events) {
			// Events up to the replay clock are due (while paused, the
			// clock stands still: only those before a seek's target).
			next := p.times[p.pos]
			if clk := p.clockLocked(p.now()); !next.After(clk) {
				ev = p.rec.Events[p.pos]
				p.st.apply(ev)
				p.pos++
			} else if !p.paused {
				wait = time.Duration(float64(next.Sub(clk)) / p.speed)
			}
		}
		var end registry.Event
		if ev == nil && p.pos == len(p.rec.Events) && !p.finished {
			p.finished = true
			p.recAt = p.end
			end = p.logEvent(p.recAt, slog.LevelInfo, "Replay finished", registry.LogAttr{Key: "events", Value: strconv.Itoa(len(p.rec.Events))})
		}
		p.mu.Unlock()
		if ev == nil {
			ev = end
		}
		if ev != nil {
			if !p.send(ctx, ev) {
				return
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tc:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (p *Player) send(ctx context.Context, e registry.Event) bool {
	select {
	case p.out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Player) logEvent(at time.Time, level slog.Level, msg string, attrs ...registry.LogAttr) registry.Event {
	return registry.LogEvent{Record: registry.LogRecord{Time: at, Level: level, Message: msg, Attrs: attrs}}
}

// Snapshot returns the state the replayed events describe so far (the
// UI's snapshot function).
func (p *Player) Snapshot() registry.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.snapshot(p.clockLocked(p.now()))
}

// replayState rebuilds a registry.State from events.
type replayState struct {
	target   registry.TargetInfo
	socket   registry.SocketInfo
	token    registry.TokenInfo
	channels map[registry.Name]registry.ChannelInfo
	presence map[registry.Name]map[string]registry.PresenceUser
	stats    registry.StatsEvent
	rewind   bool
}

func (s *replayState) reset(rec *Recording) {
	*s = replayState{
		target: registry.TargetInfo{URL: rec.Header.Target, Embedded: rec.Header.Embedded,
			Serializer: rec.Header.Serializer},
		socket:   registry.SocketInfo{Status: registry.SocketIdle},
		channels: map[registry.Name]registry.ChannelInfo{},
		presence: map[registry.Name]map[string]registry.PresenceUser{},
	}
}

func (s *replayState) apply(e registry.Event) {
	switch e := e.(type) {
	case registry.ChannelStateEvent:
		if e.Removed {
			delete(s.channels, e.Channel)
			delete(s.presence, e.Channel)
			return
		}
		s.channels[e.Channel] = e.Info
	case registry.SocketEvent:
		s.socket.Status = e.Status
		if e.Reason != "" || e.Status != e.Previous {
			s.socket.Reason = e.Reason
		}
		if e.RTT > 0 {
			s.socket.RTT = e.RTT
			s.socket.RTTHistory = append(s.socket.RTTHistory, e.RTT)
			if len(s.socket.RTTHistory) > registry.DefaultRTTHistory {
				s.socket.RTTHistory = s.socket.RTTHistory[1:]
			}
		}
		s.socket.Attempt, s.socket.NextAttemptAt = e.Attempt, e.NextAttemptAt
		if e.Status == registry.SocketConnected && e.Previous != registry.SocketConnected {
			s.socket.ConnectedAt = e.Time
		}
	case registry.TokenEvent:
		s.token = e.Token
	case registry.StatsEvent:
		s.stats = e
		s.socket.Reconnects = e.Metrics.Reconnects
	case registry.PresenceEvent:
		users := s.presence[e.Channel]
		if users == nil {
			users = map[string]registry.PresenceUser{}
			s.presence[e.Channel] = users
		}
		switch e.Action {
		case registry.PresenceJoin:
			users[e.User.UserID] = e.User
		case registry.PresenceLeave:
			if e.User.Metas <= 0 {
				delete(users, e.User.UserID)
			} else {
				users[e.User.UserID] = e.User
			}
		}
	}
}

func (s *replayState) snapshot(at time.Time) registry.State {
	st := registry.State{Time: at, Target: s.target, Socket: s.socket, Token: s.token,
		Stats: s.stats.Stats, Metrics: s.stats.Metrics, Presence: map[registry.Name][]registry.PresenceUser{}}
	st.Socket.RTTHistory = slices.Clone(s.socket.RTTHistory)
	for _, c := range s.channels {
		st.Channels = append(st.Channels, c)
	}
	slices.SortFunc(st.Channels, func(a, b registry.ChannelInfo) int { return a.Name.Compare(b.Name) })
	for n, users := range s.presence {
		list := make([]registry.PresenceUser, 0, len(users))
		for _, u := range users {
			list = append(list, u)
		}
		slices.SortFunc(list, func(a, b registry.PresenceUser) int {
			switch {
			case a.UserID < b.UserID:
				return -1
			case a.UserID > b.UserID:
				return 1
			}
			return 0
		})
		st.Presence[n] = list
	}
	if st.Stats.Total == 0 && len(st.Channels) > 0 {
		st.Stats.Total = len(st.Channels)
	}
	if len(st.Channels) > 0 {
		st.Policy = registry.PolicyInfo{Spec: st.Channels[0].Policy, MaxAttempts: st.Channels[0].MaxAttempts}
	}
	return st
}

// IsRewind reports whether e is the marker delivered after a Seek back
// (the UI's replay control interface).
func (p *Player) IsRewind(e registry.Event) bool {
	_, ok := RewindEpoch(e)
	return ok
}
