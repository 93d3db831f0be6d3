package tui

import (
	"log/slog"
	"time"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/registry/apps"
	"rtm/registry/limits"
	"rtm/theme"
)

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

// Model is the root model of rtm's terminal UI. Create it with [New];
// it talks to the manager only through tea.Cmds and receives its events
// from a [Bridge] as [EventsBatchMsg]. It holds the data the panes show,
// routes messages (to the top dialog, the global keys, the focused
// pane) and lays the panes out; each pane and dialog keeps its own
// state.
type Model struct {
	opts Options
	keys KeyMap
	st   *theme.Styles
	help help.Model

	width, height int
	lay           layout
	focus         focus
	zoom          bool

	// The data (batch.go): the manager's state as last reported, the
	// buffers of each channel, the retry events and raw frames of every
	// channel. stateGen numbers the versions of the state the main pane
	// shows (channels, presence, socket, token); chansGen those the
	// channels pane shows (the channels, their presence counts, the
	// limit).
	now       time.Time
	state     registry.State
	haveState bool
	stateGen  uint64
	chansGen  uint64
	chData    map[registry.Name]*chanData
	retries   *Ring[registry.RetryEvent]
	frames    *Ring[registry.FrameEvent]
	dropped   uint64
	// ids are the identities the UI holds (identity.go), the default
	// (Options.Manager) first; active is the one whose data the fields
	// above hold: the selected channel's.
	ids    []*identity
	active int
	// cmp is the Compare tab's last reading of Options.Compare
	// (compare.go), numbered by cmpGen; cmpBusy while one runs.
	cmp     compareData
	cmpGen  uint64
	cmpBusy bool

	// The panes.
	chans *channelsPane
	main  *mainPane
	log   *logPane

	// The status line (status.go).
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
	// apps is the last snapshot of Options.Apps (read while the Apps
	// view is open, dialog_apps.go), numbered by appsGen.
	apps    apps.Snapshot
	appsGen uint64
	// appsVersion is the Apps.Version apps was read at (appsRead: once
	// read), so the snapshot is copied only when it moved.
	appsVersion uint64
	appsRead    bool
	// limits is the last report of Options.Limits (read on the clock's
	// tick, dialog_limits.go), numbered by limitsGen.
	limits    limits.Report
	limitsGen uint64

	fatal    error
	quitting bool
	ticking  bool
	tickGen  int

	// cache holds the root's own areas (header, status line, footer).
	// epoch counts invalidate calls and clock the clock's ticks: every
	// pane's cache key holds them.
	cache        viewCache
	epoch, clock uint64
}

// New returns the root model.
func New(opts Options) *Model {
	opts = opts.withDefaults()
	m := &Model{
		opts:  opts,
		keys:  DefaultKeyMap(),
		st:    opts.Theme(true),
		help:  help.New(),
		log:   newLogPane(opts.LogRing, opts.LogBytes),
		chans: &channelsPane{},
		main:  newMainPane(),
		now:   opts.Now(),
	}
	name := opts.Identity
	if name == "" {
		name = DefaultIdentity
	}
	m.ids = []*identity{m.newIdentity(Identity{Name: name, Manager: opts.Manager, Detail: opts.IdentityDetail})}
	for _, id := range opts.Others {
		if id.Name != "" && m.identityIndex(id.Name) < 0 && len(m.ids) < maxIdentities {
			m.ids = append(m.ids, m.newIdentity(id))
		}
	}
	m.load(0)
	m.identitiesChanged()
	m.keys.setReadOnly(opts.ReadOnly)
	m.keys.setReplay(opts.Replay != nil)
	m.sampleReplay()
	m.refreshLimits()
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
	case compareMsg:
		return m, m.compareDone(msg)
	case identityAddedMsg:
		m.now = m.opts.Now()
		return m, m.identityAdded(msg)
	case identityDroppedMsg:
		m.now = m.opts.Now()
		return m, m.identityDropped(msg)
	case BridgeDoneMsg:
		if msg.Identity != "" && msg.Identity != m.ids[0].Name {
			// Another identity's feed: the UI goes on with the others.
			if msg.Err != nil {
				return m, m.setStatus(slog.LevelError, "identity "+msg.Identity+": "+msg.Err.Error())
			}
			return m, nil
		}
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
		m.refreshApps()
		m.refreshLimits()
		cmp := m.compareCmd(m.compareTopic())
		m.clock++
		m.cache.header.valid = false
		return m, tea.Batch(m.tickCmd(), cmp)
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
		return m, tea.Batch(cmd, m.compareIfStale())
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

// selected returns the selected channel's info.
func (m *Model) selected() (registry.ChannelInfo, bool) {
	if m.chans.sel.IsZero() || m.chans.selID != m.activeName() {
		return registry.ChannelInfo{}, false
	}
	return m.state.Channel(m.chans.sel)
}

// invalidate marks every cached area for redraw.
func (m *Model) invalidate() {
	m.cache = viewCache{}
	m.epoch++
}

// Err returns the error that made the UI quit (a failed bridge), or nil.
func (m *Model) Err() error { return m.fatal }
