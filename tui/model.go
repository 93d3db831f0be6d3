package tui

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/theme"
)

// Defaults of [Options].
const (
	DefaultLogRing       = 5000
	DefaultMessageRing   = 500
	DefaultFrameRing     = 2000
	DefaultRetryRing     = 1000
	DefaultFeedRing      = 300
	DefaultActionTimeout = 15 * time.Second
	DefaultTick          = time.Second
	DefaultFastTick      = 200 * time.Millisecond
	// maxChannelData bounds the per-channel buffers kept for channels
	// that left the registry.
	maxChannelData = 256
)

// Defaults of [Options]: the rings' byte bounds (see keep.go).
const (
	// The log, messages per channel, raw frames, retry events,
	// presence feed per channel.
	DefaultLogBytes     = 8 << 20
	DefaultMessageBytes = 1 << 20
	DefaultFrameBytes   = 8 << 20
	DefaultRetryBytes   = 2 << 20
	DefaultFeedBytes    = 512 << 10
)

// Options configures the root model. Zero fields get the defaults.
type Options struct {
	// Manager runs the actions; nil makes every action report an error.
	Manager Manager
	// Context is the parent of every action's context; cancel it on
	// shutdown. nil: context.Background().
	Context context.Context
	// ReadOnly turns every action off (keys hidden, commands refused).
	ReadOnly bool
	// Theme builds the styles for a dark or light background; nil uses
	// theme.Default. The model starts dark and switches when the
	// terminal reports its background.
	Theme func(isDark bool) *theme.Styles
	// Now is the clock (nil: time.Now). It is read in Update only.
	Now func() time.Time
	// Logger receives the UI's own log records (action errors), from
	// Cmds, never from Update. nil: discarded.
	Logger *slog.Logger
	// ActionTimeout bounds every action.
	ActionTimeout time.Duration
	// Ring sizes: the log, messages per channel, raw frames, retry
	// events, presence feed per channel; and their bytes (defaults
	// 8 MiB, 1 MiB, 8 MiB, 2 MiB, 512 KiB).
	LogRing, MessageRing, FrameRing, RetryRing, FeedRing      int
	LogBytes, MessageBytes, FrameBytes, RetryBytes, FeedBytes int
	// Preview is the most of a payload or frame kept (default 16 KiB):
	// a longer one is kept cut, shown with its size and "truncated".
	Preview int
	// Tick is the clock period (ages, token expiry); FastTick the period
	// while a countdown runs.
	Tick, FastTick time.Duration
	// Schedule returns a Cmd that delivers msg(t) after d: tea.Tick by
	// default; tests inject an immediate one.
	Schedule func(d time.Duration, msg func(time.Time) tea.Msg) tea.Cmd
	// Status is a first status line message (e.g. "embedded server on
	// 127.0.0.1:5555"), shown until replaced.
	Status string
	// Database says where postgres_changes come from (header, Info tab,
	// doctor). The zero value shows nothing.
	Database DatabaseInfo
	// Doctor runs the postgres_changes doctor of subscription channels
	// (the D key and :doctor); nil says there is no database to check.
	Doctor Doctor
	// DoctorTimeout bounds one doctor run (default DefaultDoctorTimeout).
	DoctorTimeout time.Duration
	// User is the user id the track form offers when the token names
	// nobody (e.g. the login name; default "me").
	User string
	// Replay, when set, is the recording being replayed (rtm replay):
	// the header shows its position and the replay keys control it. Use
	// it with ReadOnly and Now = the replay's clock.
	Replay Replay
}

func (o Options) withDefaults() Options {
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Theme == nil {
		o.Theme = theme.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = DefaultActionTimeout
	}
	if o.DoctorTimeout <= 0 {
		o.DoctorTimeout = DefaultDoctorTimeout
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.LogRing, DefaultLogRing)
	def(&o.MessageRing, DefaultMessageRing)
	def(&o.FrameRing, DefaultFrameRing)
	def(&o.RetryRing, DefaultRetryRing)
	def(&o.FeedRing, DefaultFeedRing)
	def(&o.LogBytes, DefaultLogBytes)
	def(&o.MessageBytes, DefaultMessageBytes)
	def(&o.FrameBytes, DefaultFrameBytes)
	def(&o.RetryBytes, DefaultRetryBytes)
	def(&o.FeedBytes, DefaultFeedBytes)
	def(&o.Preview, DefaultPreview)
	if o.Schedule == nil {
		o.Schedule = func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd { return tea.Tick(d, f) }
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	if o.FastTick <= 0 {
		o.FastTick = DefaultFastTick
	}
	return o
}

// DatabaseInfo describes the database whose changes feed the
// subscription channels, with passwords masked.
type DatabaseInfo struct {
	// Label is a few words for the header: "demo PostgreSQL",
	// "127.0.0.1:5432/app", "none".
	Label string
	// Detail is the full description ("demo PostgreSQL
	// postgres://rtm:xxxxx@127.0.0.1:5433/rtm_demo (publication
	// supabase_realtime)") or why there is no database, with the fix.
	Detail string
	// Missing is true when there is no database: the header shows the
	// label as a warning.
	Missing bool
}

// focus is the pane that receives keys.
type focus uint8

const (
	focusChannels focus = iota
	focusMain
	focusLog
	numFocus
)

// String returns the pane's name.
func (f focus) String() string {
	switch f {
	case focusChannels:
		return "channels"
	case focusMain:
		return "main"
	case focusLog:
		return "log"
	}
	return "?"
}

// msgEntry is one message of a channel.
type msgEntry struct {
	ev  registry.MessageEvent
	seq uint64
}

// rawFrame is a raw presence frame (presence_state, presence_diff).
type rawFrame struct {
	time  time.Time
	event string
	text  string
}

// chanData holds the buffers of one channel.
type chanData struct {
	msgs *Ring[msgEntry]
	feed *Ring[registry.PresenceEvent]
	raw  *Ring[rawFrame]
	// cur is the selected message (follow keeps the newest selected).
	cur cursor
	// lastSeen is when the channel was last in the registry.
	lastSeen time.Time
	// doctor is the last doctor run on the channel (nil: none).
	doctor *doctorResult
}

// logEntry is one log record.
type logEntry struct {
	rec   registry.LogRecord
	local bool // logged by the UI itself
	seq   uint64
	// match caches the filter result for filter generation matchGen.
	matchGen uint64
	match    bool
}

// status is the status line.
type status struct {
	level slog.Level
	text  string
	id    int
}

// Model is the root model of rtm's terminal UI. Create it with [New];
// it talks to the manager only through tea.Cmds and receives its events
// from a [Bridge] as [EventsBatchMsg].
type Model struct {
	opts Options
	keys KeyMap
	st   *theme.Styles
	help help.Model

	width, height int
	lay           layout

	now       time.Time
	state     registry.State
	haveState bool

	// stateGen numbers the versions of state that the main pane shows
	// (channels, presence, socket, token).
	stateGen uint64

	focus focus
	zoom  bool

	// chans is the channels pane; chansGen numbers the versions of the
	// channels it shows (state.Channels, their presence counts, the
	// limit).
	chans    *channelsPane
	chansGen uint64

	// chData holds the buffers of each channel; retries and frames the
	// retry events and raw frames of every channel.
	chData  map[registry.Name]*chanData
	retries *Ring[registry.RetryEvent]
	frames  *Ring[registry.FrameEvent]

	// log is the log pane.
	log *logPane

	// main is the main pane and its tabs.
	main *mainPane

	dropped    uint64
	status     status
	statusN    int
	statusRows int

	// dialogs are the open dialogs, the top last; cmd and filter are
	// the command line and the filter input, kept while closed (the
	// history, the last filter typed).
	dialogs dialogStack
	cmd     *cmdLine
	filter  *filterInput
	// doctorGen numbers doctor runs, so a late result of an older run
	// never replaces a newer one.
	doctorGen int
	// replay is what the UI last read from Options.Replay.
	replay replayInfo

	fatal    error
	quitting bool
	ticking  bool
	tickGen  int

	cache viewCache
	// epoch counts invalidate calls and clock the clock's ticks: the
	// cache keys of the panes hold them.
	epoch, clock uint64
}

// New returns the root model.
func New(opts Options) *Model {
	opts = opts.withDefaults()
	m := &Model{
		opts:    opts,
		keys:    DefaultKeyMap(),
		st:      opts.Theme(true),
		help:    help.New(),
		chData:  map[registry.Name]*chanData{},
		retries: NewSizedRing(opts.RetryRing, opts.RetryBytes, retryBytes),
		frames:  NewSizedRing(opts.FrameRing, opts.FrameBytes, frameBytes),
		log:     newLogPane(opts.LogRing, opts.LogBytes),
		chans:   &channelsPane{},
		main:    newMainPane(),
		now:     opts.Now(),
	}
	m.keys.setReadOnly(opts.ReadOnly)
	m.keys.setReplay(opts.Replay != nil)
	m.sampleReplay()
	m.help.Styles = m.st.Help
	m.cmd = newCmdLine(m.st, opts.Replay != nil)
	m.filter = newFilterInput(m.st)
	if opts.Status != "" {
		m.status = status{level: slog.LevelInfo, text: opts.Status}
	}
	if opts.ReadOnly {
		m.status = status{level: slog.LevelInfo, text: "read-only: actions are off"}
	}
	m.invalidate()
	return m
}

// Init starts the clock and asks the terminal for its background colour.
func (m *Model) Init() tea.Cmd {
	m.ticking = true
	return tea.Batch(tea.RequestBackgroundColor, m.tickCmd())
}

// tickMsg is the clock.
type tickMsg struct {
	t   time.Time
	gen int
}

// tickCmd schedules the next clock tick: fast while a countdown runs.
func (m *Model) tickCmd() tea.Cmd {
	d := m.opts.Tick
	if m.countdownActive() || (m.opts.Replay != nil && !m.replay.paused && m.replay.at < m.replay.length) {
		d = m.opts.FastTick
	}
	gen := m.tickGen
	return m.opts.Schedule(d, func(t time.Time) tea.Msg { return tickMsg{t: t, gen: gen} })
}

// countdownActive reports whether something counts down on screen.
func (m *Model) countdownActive() bool {
	if !m.state.Socket.NextAttemptAt.IsZero() && m.state.Socket.NextAttemptAt.After(m.now) {
		return true
	}
	if c, ok := m.selected(); ok && !c.NextAttemptAt.IsZero() && c.NextAttemptAt.After(m.now) {
		return true
	}
	return false
}

// Update handles one message. It does no I/O: manager calls, file
// writes and logging happen in the returned Cmds.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.relayout()
		m.fitStatus()
		return m, nil
	case tea.BackgroundColorMsg:
		m.setTheme(m.opts.Theme(msg.IsDark()))
		return m, nil
	case EventsBatchMsg:
		m.now = m.opts.Now()
		return m, m.applyBatch(msg)
	case BridgeDoneMsg:
		if msg.Err != nil {
			m.fatal = msg.Err
			m.quitting = true
			return m, tea.Quit
		}
		m.setStatus(slog.LevelWarn, "event stream ended (manager closed)")
		return m, nil
	case tickMsg:
		if msg.gen != m.tickGen {
			return m, nil
		}
		m.now = m.opts.Now()
		m.sampleReplay()
		m.clock++
		m.cache.header.valid = false
		return m, m.tickCmd()
	case statusClearMsg:
		if msg.id == m.status.id {
			m.status = status{}
			m.fitStatus()
		}
		return m, nil
	case actionDoneMsg:
		m.now = m.opts.Now()
		return m, m.actionDone(msg)
	case replayDoneMsg:
		m.now = m.opts.Now()
		return m, m.replayDone(msg)
	case doctorDoneMsg:
		m.now = m.opts.Now()
		cmd := m.doctorDone(msg)
		m.invalidate()
		return m, cmd
	case tea.PasteMsg:
		return m, m.handlePaste(msg)
	case tea.KeyPressMsg:
		m.now = m.opts.Now()
		cmd := m.handleKey(msg)
		m.invalidate()
		return m, cmd
	}
	// Cursor blinks and other component messages go to the open dialog.
	return m, m.updateDialog(msg)
}

// setTheme switches the styles.
func (m *Model) setTheme(st *theme.Styles) {
	m.st = st
	m.help.Styles = st.Help
	m.cmd.setStyles(st)
	m.filter.setStyles(st)
	for _, d := range m.dialogs {
		if r, ok := d.(restyler); ok {
			r.setStyles(st)
		}
	}
	m.clearRowCaches()
	m.invalidate()
}

// clearRowCaches forgets cached rows (after a theme change).
func (m *Model) clearRowCaches() {
	m.log.rows.reset()
	m.main.restyle()
}

// relayout recomputes the layout after a size, footer or zoom change.
func (m *Model) relayout() {
	header := 2
	if m.opts.Replay != nil {
		header = 3
	}
	m.lay = computeLayout(m.width, m.height, header, 1, m.statusRows, m.zoom, m.focus)
	m.help.SetWidth(m.width)
	m.cmd.setWidth(m)
	m.filter.setWidth(m)
	for _, d := range m.dialogs {
		if r, ok := d.(resizer); ok {
			r.setWidth(m)
		}
	}
	m.log.setSize(m.lay.log)
	m.chans.setSize(m.lay.channels)
	m.main.setSize(m.lay.main)
	m.invalidate()
}

// applyBatch applies events and a snapshot from the bridge.
func (m *Model) applyBatch(b EventsBatchMsg) tea.Cmd {
	var cmd tea.Cmd
	chansChanged := false
	for _, ev := range b.Events {
		if m.opts.Replay != nil && m.opts.Replay.IsRewind(ev) {
			m.clearHistory()
		}
		switch e := ev.(type) {
		case registry.MessageEvent:
			m.addMessage(e)
		case registry.MessageBatchEvent:
			// A subscription with MessageBatches (or a recording of one).
			for _, me := range e.Messages {
				m.addMessage(me)
			}
		case registry.LogEvent:
			m.addLog(e.Record, false)
		case registry.RetryEvent:
			m.retries.Push(e)
		case registry.PresenceEvent:
			m.applyPresence(e)
		case registry.FrameEvent:
			m.frames.Push(keepFrame(e, m.opts.Preview))
			if (e.Event == "presence_state" || e.Event == "presence_diff") && !e.Channel.IsZero() {
				m.data(e.Channel).raw.Push(rawFrame{time: e.Time, event: e.Event, text: clipKept(e.Text, rawPreview)})
			}
		case registry.ErrorEvent:
			cmd = m.showError(e)
		case registry.ChannelStateEvent:
			m.applyChannel(e)
			chansChanged = true
		case registry.SocketEvent:
			s := &m.state.Socket
			s.Status, s.Reason = e.Status, e.Reason
			if e.RTT > 0 {
				s.RTT = e.RTT
			}
			s.Attempt, s.NextAttemptAt = e.Attempt, e.NextAttemptAt
			m.stateGen++
			m.cache.header.valid = false
		case registry.StatsEvent:
			if e.Stats.Limit != m.state.Stats.Limit {
				m.chansGen++ // the pane's title shows it
			}
			m.state.Stats, m.state.Metrics = e.Stats, e.Metrics
			m.cache.header.valid = false
		case registry.TokenEvent:
			m.state.Token = e.Token
			m.stateGen++
			m.cache.header.valid = false
		}
	}
	if b.Dropped != m.dropped {
		m.dropped = b.Dropped
		m.cache.header.valid = false
	}
	if b.State != nil {
		m.state = *b.State
		m.haveState = true
		chansChanged = true
	}
	if chansChanged {
		m.rebuildRows()
		m.cache.footer.valid = false // the actions follow the channel (track/untrack, doctor)
	}
	m.sampleReplay()
	m.cache.header.valid = false
	return cmd
}

// addMessage stores a copy of a message, cut to the preview, in its
// channel's ring.
func (m *Model) addMessage(e registry.MessageEvent) {
	d := m.data(e.Channel)
	if e.Kind == registry.MessagePresenceState || e.Kind == registry.MessagePresenceDiff {
		text := e.Preview
		if !e.Truncated {
			text = string(e.Payload[:min(len(e.Payload), rawPreview)])
		}
		d.raw.Push(rawFrame{time: e.Time, event: string(e.Kind), text: text})
	}
	d.msgs.Push(msgEntry{ev: keepMessage(e, m.opts.Preview), seq: d.msgs.Seq() + 1})
	if d.cur.follow {
		d.cur.seq = d.msgs.Seq()
	}
}

// applyPresence updates the presence cache and feed. The users of a
// channel are sorted by id and updated in place (the state is the
// model's own copy of a snapshot): an event costs a binary search, not a
// copy of every user.
func (m *Model) applyPresence(e registry.PresenceEvent) {
	d := m.data(e.Channel)
	if e.Action == registry.PresenceJoin || e.Action == registry.PresenceLeave {
		d.feed.Push(e)
		if m.state.Presence == nil {
			m.state.Presence = map[registry.Name][]registry.PresenceUser{}
		}
		users := m.state.Presence[e.Channel]
		i, found := slices.BinarySearchFunc(users, e.User.UserID, func(u registry.PresenceUser, id string) int {
			return strings.Compare(u.UserID, id)
		})
		switch {
		case e.Action == registry.PresenceLeave && e.User.Metas <= 0:
			if found {
				users = slices.Delete(users, i, i+1)
			}
		case found:
			users[i] = e.User
		default:
			users = slices.Insert(users, i, e.User)
		}
		m.state.Presence[e.Channel] = users
	}
	for i := range m.state.Channels {
		if m.state.Channels[i].Name == e.Channel {
			m.state.Channels[i].PresenceCount = e.Count
			m.state.Channels[i].PresenceTruncated = e.Truncated
			m.chansGen++
		}
	}
	m.stateGen++
}

// applyChannel merges a channel state event into the state.
func (m *Model) applyChannel(e registry.ChannelStateEvent) {
	chs := m.state.Channels
	i := slices.IndexFunc(chs, func(c registry.ChannelInfo) bool { return c.Name == e.Channel })
	switch {
	case e.Removed:
		if i >= 0 {
			m.state.Channels = slices.Delete(slices.Clone(chs), i, i+1)
		}
	case i >= 0:
		chs = slices.Clone(chs)
		chs[i] = e.Info
		m.state.Channels = chs
	default:
		chs = append(slices.Clone(chs), e.Info)
		slices.SortFunc(chs, func(a, b registry.ChannelInfo) int { return a.Name.Compare(b.Name) })
		m.state.Channels = chs
	}
}

// data returns the buffers of a channel, creating them.
func (m *Model) data(n registry.Name) *chanData {
	d, ok := m.chData[n]
	if !ok {
		if len(m.chData) >= maxChannelData {
			m.pruneChannelData()
		}
		d = &chanData{
			msgs: NewSizedRing(m.opts.MessageRing, m.opts.MessageBytes, msgEntryBytes),
			feed: NewSizedRing(m.opts.FeedRing, m.opts.FeedBytes, feedBytes),
			raw:  NewSizedRing(100, rawBytes, rawFrameBytes),
			cur:  cursor{follow: true},
		}
		m.chData[n] = d
	}
	d.lastSeen = m.now
	return d
}

// pruneChannelData drops the buffers of a quarter of the channels, those
// least recently seen (channels no longer in the registry first), so that
// memory stays bounded and the cost of pruning is spread over many new
// channels.
func (m *Model) pruneChannelData() {
	live := make(map[registry.Name]bool, len(m.state.Channels))
	for _, c := range m.state.Channels {
		live[c.Name] = true
	}
	names := make([]registry.Name, 0, len(m.chData))
	for n := range m.chData {
		if n != m.chans.sel {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b registry.Name) int {
		if live[a] != live[b] {
			if live[a] {
				return 1
			}
			return -1
		}
		return m.chData[a].lastSeen.Compare(m.chData[b].lastSeen)
	})
	for _, n := range names[:min(len(names), maxChannelData/4)] {
		delete(m.chData, n)
	}
}

// addLog appends a log record.
func (m *Model) addLog(r registry.LogRecord, local bool) {
	m.log.add(r, local)
}

// selected returns the selected channel's info.
func (m *Model) selected() (registry.ChannelInfo, bool) {
	if m.chans.sel.IsZero() {
		return registry.ChannelInfo{}, false
	}
	return m.state.Channel(m.chans.sel)
}

// setStatus shows text in the status line; it clears after a while.
func (m *Model) setStatus(level slog.Level, text string) tea.Cmd {
	m.statusN++
	m.status = status{level: level, text: sanitize(text), id: m.statusN}
	m.fitStatus()
	ttl := 6 * time.Second
	if level >= slog.LevelError {
		ttl = 15 * time.Second
	}
	id := m.statusN
	return m.opts.Schedule(ttl, func(time.Time) tea.Msg { return statusClearMsg{id: id} })
}

// fitStatus gives the status line a second row when its text needs it.
func (m *Model) fitStatus() {
	m.cache.status.valid = false
	rows := 1
	if m.width > 0 && textWidth(m.status.text) > m.width {
		rows = 2
	}
	if rows != m.statusRows {
		m.statusRows = rows
		m.relayout()
	}
}

// statusClearMsg clears the status line if it still shows message id.
type statusClearMsg struct{ id int }

// showError reports a manager error event in the status line (the
// manager logs it itself).
func (m *Model) showError(e registry.ErrorEvent) tea.Cmd {
	text := e.Op
	if e.Op == "system" {
		text = "server said" // a system message with status error
		if e.Channel.Kind == registry.KindSubscription {
			text = "postgres changes refused"
		}
	}
	if !e.Channel.IsZero() {
		text += " on " + e.Channel.String()
		if e.Op != "system" {
			text = e.Op + " " + e.Channel.String()
		}
	}
	text += ": "
	if e.Code != "" {
		text += e.Code + ": "
	}
	text += e.Message
	hint := e.Hint
	if hint == "" {
		hint = registry.Hint(e.Code, e.Message)
	}
	if hint == "" && e.Op == "system" && e.Channel.Kind == registry.KindSubscription {
		hint = changesHint(e.Message)
	}
	if hint != "" {
		text += " — " + hint
	}
	return m.setStatus(slog.LevelError, text)
}

// invalidate marks every cached area for redraw.
func (m *Model) invalidate() {
	m.cache = viewCache{}
	m.epoch++
}

// Err returns the error that made the UI quit (a failed bridge), or nil.
func (m *Model) Err() error { return m.fatal }
