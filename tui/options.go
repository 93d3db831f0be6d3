package tui

import (
	"context"
	"log/slog"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry/apps"
	"rtm/registry/limits"
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
	// Identity names the identity of Manager (default DefaultIdentity):
	// the user of --as, a role; IdentityDetail says how its token was
	// made (masked).
	Identity, IdentityDetail string
	// Others are the other identities held from the start (--as alice
	// --as bob), each its own socket; their bridges send batches with
	// Identity set to their name.
	Others []Identity
	// Identities adds and drops identities at run time (:as,
	// :drop-identity); nil refuses them.
	Identities Identities
	// Compare is the comparer of the identities (*compare.Comparer, fed
	// by their bridges' Observe): the Compare tab reads it. nil: the
	// tab says there is none.
	Compare Comparer
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
	// Apps, when set, is the model of the apps' traffic through rtm's
	// app proxy: the Apps view (:apps) shows its snapshot. AppsURL is
	// the proxy's URL (the header shows it, the Apps view tells the app
	// to use it).
	Apps    Apps
	AppsURL string
	// AppsAnonKey is the anon key of the proxy's upstream when rtm knows
	// it (the embedded server's: the app has no other); "" otherwise
	// (a project: the app keeps its own key). The Apps view and the
	// header show it masked; c (clipboard) and w (AppsEnvFile) give it
	// in full, with AppsURL, under the names AppEnv lists.
	AppsAnonKey string
	// AppsEnvFile is the file w writes in the Apps view (default
	// DefaultAppsEnvFile, ".env.rtm", in the working directory).
	AppsEnvFile string
	// Limits, when set, is the budget meter of Supabase's limits
	// (*limits.Meter of package registry/limits): the Limits view
	// (:limits, L) and the header's gauge read its report on the clock's
	// tick.
	Limits Limits
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
	if o.AppsEnvFile == "" {
		o.AppsEnvFile = DefaultAppsEnvFile
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

// Apps is the model of the apps' traffic through rtm's app proxy
// (*apps.Model of package registry/apps): the Apps view reads its
// snapshot on the clock's tick.
type Apps interface {
	// Version changes whenever Snapshot would return something else.
	Version() uint64
	Snapshot() apps.Snapshot
}

// Limits is the budget meter of Supabase Realtime's limits
// (*limits.Meter of package registry/limits): the Limits view and the
// header's gauge read its report on the clock's tick.
type Limits interface {
	Report() limits.Report
}
