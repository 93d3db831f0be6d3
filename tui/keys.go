package tui

import (
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
)

// KeyMap holds every key binding of the UI, grouped by where it applies.
// Match keys with key.Matches; enable and relabel bindings through the
// map so the help footer always shows what works right now.
type KeyMap struct {
	// Global keys.
	Quit, Help, Command, Filter, NextFocus, PrevFocus, Open, Back key.Binding
	// Tabs selects the main pane's tabs by their number (1 Messages,
	// 2 Presence, 3 Retries, 4 Info); TabKeys is the single help entry
	// for them; NextTab and PrevTab cycle.
	Tabs             [numTabs]key.Binding
	TabKeys          key.Binding
	NextTab, PrevTab key.Binding
	// Zoom shows the focused pane alone.
	Zoom key.Binding
	// Apps opens the Apps view (the app proxy's sockets).
	Apps key.Binding
	// Limits opens the Limits view (the budget meter).
	Limits key.Binding
	// AppsView holds the Apps view's keys: Channels moves the selection
	// between the sockets and the selected socket's channels, Faults
	// opens the fault menu of the selected socket or channel, CopyEnv
	// and WriteEnv give what to set in the app (appenv.go) to the
	// clipboard and to a file.
	AppsView struct {
		Channels, Faults, CopyEnv, WriteEnv key.Binding
	}

	// Navigation in the focused pane.
	Up, Down, Top, Bottom, PageUp, PageDown key.Binding

	// Channel holds the actions on the selected channel.
	Channel struct {
		Track, Untrack, Broadcast, Retry, Leave, Faults key.Binding
		// JoinOthers joins the channel's topic as the identities that
		// do not hold it (shown with several identities).
		JoinOthers key.Binding
		// Doctor runs the postgres_changes doctor (subscription
		// channels); it reads the database only, so read-only mode
		// keeps it.
		Doctor key.Binding
	}
	// Log holds the log pane's keys.
	Log struct {
		Follow, Wrap, Clear key.Binding
	}
	// Presence holds the presence tab's keys.
	Presence struct {
		Raw key.Binding
	}
	// Replay holds the keys of a replay (Options.Replay); disabled
	// otherwise.
	Replay struct {
		Pause, Back, Forward, BackLong, ForwardLong, Faster, Slower key.Binding
		// Seek and Speed are the help entries of ←/→ and +/-.
		Seek, Speed key.Binding
	}
	// Dialog holds the keys of dialogs and the command line.
	Dialog struct {
		Submit, Cancel, NextField, PrevField, Complete, Yes, No key.Binding
		// Choice puts the next of a form field's offered values in it.
		Choice key.Binding
	}
}

// DefaultKeyMap returns the standard bindings (k9s and lazygit habits).
func DefaultKeyMap() KeyMap {
	var k KeyMap
	k.Quit = key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit"))
	k.Help = key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help"))
	k.Command = key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "command"))
	k.Filter = key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter"))
	k.NextFocus = key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next pane"))
	k.PrevFocus = key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "prev pane"))
	k.Open = key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open"))
	k.Back = key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back"))
	digits := make([]string, numTabs)
	for i := range k.Tabs {
		digits[i] = string(rune('1' + i))
		k.Tabs[i] = key.NewBinding(key.WithKeys(digits[i]), key.WithHelp(digits[i], strings.ToLower(tab(i).String())))
	}
	k.TabKeys = key.NewBinding(key.WithKeys(digits...), key.WithHelp("1-"+digits[numTabs-1], "tabs"))
	k.setCompare(false)
	k.NextTab = key.NewBinding(key.WithKeys("]"), key.WithHelp("]", "next tab"))
	k.PrevTab = key.NewBinding(key.WithKeys("["), key.WithHelp("[", "prev tab"))
	k.Zoom = key.NewBinding(key.WithKeys("z"), key.WithHelp("z", "zoom"))
	k.Apps = key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "apps"))
	k.Limits = key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "limits"))
	k.AppsView.Channels = key.NewBinding(key.WithKeys("tab", "shift+tab"), key.WithHelp("tab", "apps: channels"))
	k.AppsView.Faults = key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "apps: faults"))
	k.AppsView.CopyEnv = key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "apps: copy env"))
	k.AppsView.WriteEnv = key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "apps: env file"))

	k.Up = key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up"))
	k.Down = key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down"))
	k.Top = key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g", "top"))
	k.Bottom = key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G", "bottom"))
	k.PageUp = key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "page up"))
	k.PageDown = key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down"))

	k.Channel.Track = key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "track presence"))
	k.Channel.Untrack = key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "untrack"))
	k.Channel.Broadcast = key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "broadcast"))
	k.Channel.Retry = key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "retry now"))
	k.Channel.Leave = key.NewBinding(key.WithKeys("ctrl+d"), key.WithHelp("ctrl+d", "leave"))
	k.Channel.Faults = key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "faults"))
	k.Channel.JoinOthers = key.NewBinding(key.WithKeys("J"), key.WithHelp("J", "join as the others"))
	k.Channel.Doctor = key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "doctor"))

	k.Log.Follow = key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "follow"))
	k.Log.Wrap = key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "wrap"))
	k.Log.Clear = key.NewBinding(key.WithKeys("C"), key.WithHelp("C", "clear"))
	k.Presence.Raw = key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "raw frames"))

	k.Replay.Pause = key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause/play"))
	k.Replay.Back = key.NewBinding(key.WithKeys("left"), key.WithHelp("←", "back 10s"))
	k.Replay.Forward = key.NewBinding(key.WithKeys("right"), key.WithHelp("→", "forward 10s"))
	k.Replay.BackLong = key.NewBinding(key.WithKeys("shift+left"), key.WithHelp("shift+←", "back 1m"))
	k.Replay.ForwardLong = key.NewBinding(key.WithKeys("shift+right"), key.WithHelp("shift+→", "forward 1m"))
	k.Replay.Faster = key.NewBinding(key.WithKeys("+", "="), key.WithHelp("+", "faster"))
	k.Replay.Slower = key.NewBinding(key.WithKeys("-", "_"), key.WithHelp("-", "slower"))
	k.Replay.Seek = key.NewBinding(key.WithKeys("left", "right"), key.WithHelp("←/→", "seek"))
	k.Replay.Speed = key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "speed"))
	k.setReplay(false)

	k.Dialog.Submit = key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "submit"))
	k.Dialog.Cancel = key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))
	k.Dialog.NextField = key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next field"))
	k.Dialog.PrevField = key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "prev field"))
	k.Dialog.Complete = key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "complete"))
	k.Dialog.Yes = key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes"))
	k.Dialog.No = key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n", "no"))
	k.Dialog.Choice = key.NewBinding(key.WithKeys("ctrl+n"), key.WithHelp("ctrl+n", "next choice"))
	return k
}

// setReadOnly disables every binding that acts on the manager.
func (k *KeyMap) setReadOnly(ro bool) {
	for _, b := range []*key.Binding{&k.Channel.Track, &k.Channel.Untrack, &k.Channel.Broadcast,
		&k.Channel.Retry, &k.Channel.Leave, &k.Channel.Faults, &k.Channel.JoinOthers, &k.AppsView.Faults} {
		b.SetEnabled(!ro)
	}
}

// setCompare enables the Compare tab's key (several identities).
func (k *KeyMap) setCompare(on bool) {
	k.Tabs[tabCompare].SetEnabled(on)
	last := tabCompare
	if !on {
		last--
	}
	k.TabKeys.SetHelp("1-"+strconv.Itoa(int(last)+1), "tabs")
}

// setReplay enables the replay keys.
func (k *KeyMap) setReplay(on bool) {
	r := &k.Replay
	for _, b := range []*key.Binding{&r.Pause, &r.Back, &r.Forward, &r.BackLong, &r.ForwardLong, &r.Faster, &r.Slower, &r.Seek, &r.Speed} {
		b.SetEnabled(on)
	}
}
