// Package theme holds rtm's look: a semantic palette (primary, muted,
// subtle, ok, warn, error, border, active border, ...) and the styles of
// every area of the terminal UI built from it.
//
// Panes only compose the styles of a [Styles]; they never pick colours.
// [Default] gives the standard theme for a dark or light terminal
// background (from tea.BackgroundColorMsg.IsDark), [Plain] the theme
// without colours that [ForEnv] chooses when NO_COLOR is set
// (https://no-color.org): selection and focus then use reverse video and
// bold, which carry no colour.
//
// The package imports nothing of rtm's. Styles are values: build them once
// (on start and when the background is known) and share the pointer.
package theme

import (
	"image/color"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// Palette is the set of semantic colours a theme is built from. A nil
// colour means "the terminal's default" (no colour is emitted).
type Palette struct {
	// Primary is the accent: titles, the focused pane, key names.
	Primary color.Color
	// Text is the normal foreground (nil: the terminal's).
	Text color.Color
	// Muted is secondary text: column headers, descriptions, timestamps.
	Muted color.Color
	// Subtle is the faintest text: separators, empty cells, debug logs.
	Subtle color.Color
	// OK marks healthy states (connected, joined, succeeded).
	OK color.Color
	// Info marks neutral activity (connecting, info logs, incoming data).
	Info color.Color
	// Warn marks degraded states (disconnected, retrying, warnings).
	Warn color.Color
	// Error marks failures (error status, exhausted retries, errors).
	Error color.Color
	// Border is the border of unfocused panes; BorderActive of the
	// focused one.
	Border       color.Color
	BorderActive color.Color
	// SelectedBg is the background of the selected row.
	SelectedBg color.Color
	// Highlight is the foreground of outgoing data and of self markers.
	Highlight color.Color
}

// DarkPalette returns the palette for dark terminal backgrounds.
func DarkPalette() Palette {
	return Palette{
		Primary:      lipgloss.Color("#7D9CFF"),
		Muted:        lipgloss.Color("#9A9AAF"),
		Subtle:       lipgloss.Color("#5C5C6E"),
		OK:           lipgloss.Color("#5FD787"),
		Info:         lipgloss.Color("#5FAFD7"),
		Warn:         lipgloss.Color("#E5C07B"),
		Error:        lipgloss.Color("#FF6B6B"),
		Border:       lipgloss.Color("#44475A"),
		BorderActive: lipgloss.Color("#7D9CFF"),
		SelectedBg:   lipgloss.Color("#2E3450"),
		Highlight:    lipgloss.Color("#D7A6FF"),
	}
}

// LightPalette returns the palette for light terminal backgrounds.
func LightPalette() Palette {
	return Palette{
		Primary:      lipgloss.Color("#2F54C9"),
		Muted:        lipgloss.Color("#5F5F73"),
		Subtle:       lipgloss.Color("#A0A0B0"),
		OK:           lipgloss.Color("#1E8C45"),
		Info:         lipgloss.Color("#1F6F9F"),
		Warn:         lipgloss.Color("#A66A00"),
		Error:        lipgloss.Color("#C62828"),
		Border:       lipgloss.Color("#C8C8D4"),
		BorderActive: lipgloss.Color("#2F54C9"),
		SelectedBg:   lipgloss.Color("#DDE4FA"),
		Highlight:    lipgloss.Color("#7B3FBF"),
	}
}

// Paint colours short strings fast: it holds the escape sequences a style
// puts before and after its text, computed once, so painting a cell is a
// concatenation instead of a full style render. Only styles without
// padding, margins, borders or widths can be turned into a Paint.
type Paint struct {
	pre, post string
}

// NewPaint captures the escape sequences of s.
func NewPaint(s lipgloss.Style) Paint {
	const mark = "\x1f"
	out := s.Render(mark)
	i := strings.Index(out, mark)
	if i < 0 {
		return Paint{}
	}
	return Paint{pre: out[:i], post: out[i+len(mark):]}
}

// Render returns s with the paint's escape sequences around it.
func (p Paint) Render(s string) string {
	if p.pre == "" || s == "" {
		return s
	}
	return p.pre + s + p.post
}

// WriteTo appends s painted to b, without building an intermediate
// string.
func (p Paint) WriteTo(b *strings.Builder, s string) {
	if s == "" {
		return
	}
	b.WriteString(p.pre)
	b.WriteString(s)
	b.WriteString(p.post)
}

// IsZero reports whether the paint emits nothing.
func (p Paint) IsZero() bool { return p.pre == "" }

// Styles is everything the UI draws with, grouped by area.
type Styles struct {
	// Dark is true for the dark variant, NoColor for the Plain theme.
	Dark    bool
	NoColor bool
	// Palette is the palette the styles were built from.
	Palette Palette

	// Text is normal text, Muted secondary text, Subtle the faintest,
	// Bold emphasis, Primary the accent.
	Text, Muted, Subtle, Bold, Primary Paint
	// OK, Info, Warn and Error are the semantic colours as text.
	OK, Info, Warn, Error Paint
	// Highlight marks outgoing data and this client's own presence.
	Highlight Paint

	// Header styles the top status bar: App is the program name, Label a
	// field name, Value a field value, Embedded the "embedded server"
	// badge.
	Header struct {
		App, Label, Value, Embedded Paint
	}

	// Pane styles the boxes: Border and BorderActive their frames,
	// Title and TitleActive the titles set in the top border, Tab and
	// TabActive the tabs of the main pane, Badge a counter such as
	// "12 new".
	Pane struct {
		Border, BorderActive, Title, TitleActive, Tab, TabActive, Badge Paint
	}

	// Table styles tables: Header the column names, Selected the
	// selected row (focused pane), SelectedBlur the selected row of an
	// unfocused pane, Group a group heading (tenant).
	Table struct {
		Header, Selected, SelectedBlur, Group Paint
	}

	// Status colours channel and socket statuses by name: "connected",
	// "connecting", "disconnected", "error", "idle", "closed".
	Status map[string]Paint

	// Level colours log levels: "DEBUG", "INFO", "WARN", "ERROR".
	Level map[string]Paint

	// JSON styles pretty-printed JSON: keys, strings, numbers,
	// literals (true, false, null) and punctuation.
	JSON struct {
		Key, String, Number, Literal, Punct Paint
	}

	// Spark is the colour of sparklines; Bar and BarEmpty the filled and
	// empty parts of countdown bars.
	Spark, Bar, BarEmpty Paint

	// Dialog styles overlays (forms, confirm, fault menu, help):
	// Border their frame, Title their title, Label field labels,
	// Input the focused field's marker, Error validation errors, Key
	// the shortcut letters of menus, Disabled the items that cannot be
	// used now.
	Dialog struct {
		Border, Title, Label, Input, Error, Key, Disabled Paint
	}

	// StatusLine colours the status line by level.
	StatusLine map[string]Paint

	// Help is the style set for the bubbles help footer.
	Help help.Styles

	// Input is the foreground of text typed into fields, Placeholder of
	// their placeholders, Prompt of their prompts.
	Input, Placeholder, Prompt lipgloss.Style
}

// Default returns the standard theme for a dark (isDark) or light
// terminal background.
func Default(isDark bool) *Styles {
	if isDark {
		return New(DarkPalette(), true)
	}
	return New(LightPalette(), false)
}

// Plain returns the theme without colours, for NO_COLOR: emphasis uses
// bold, faint and reverse video only.
func Plain() *Styles {
	s := New(Palette{}, true)
	s.NoColor = true
	s.Table.Selected = NewPaint(lipgloss.NewStyle().Reverse(true))
	s.Table.SelectedBlur = NewPaint(lipgloss.NewStyle().Underline(true))
	s.Pane.BorderActive = NewPaint(lipgloss.NewStyle().Bold(true))
	s.Pane.TitleActive = NewPaint(lipgloss.NewStyle().Bold(true).Reverse(true))
	s.Pane.TabActive = NewPaint(lipgloss.NewStyle().Bold(true).Reverse(true))
	s.Status["error"] = NewPaint(lipgloss.NewStyle().Bold(true))
	s.Status["refused"] = NewPaint(lipgloss.NewStyle().Bold(true))
	s.Level["ERROR"] = NewPaint(lipgloss.NewStyle().Bold(true))
	s.Bar = NewPaint(lipgloss.NewStyle().Reverse(true))
	return s
}

// ForEnv returns [Plain] when the environment variable NO_COLOR is set to
// a non-empty value, else [Default] for the background. lookup is
// os.LookupEnv in programs and a map in tests.
func ForEnv(isDark bool, lookup func(string) (string, bool)) *Styles {
	if NoColorSet(lookup) {
		return Plain()
	}
	return Default(isDark)
}

// NoColorSet reports whether NO_COLOR is set to a non-empty value.
func NoColorSet(lookup func(string) (string, bool)) bool {
	if lookup == nil {
		return false
	}
	v, ok := lookup("NO_COLOR")
	return ok && v != ""
}

// New builds the styles from a palette; isDark records the variant for
// components that have their own light and dark defaults.
func New(p Palette, isDark bool) *Styles {
	fg := func(c color.Color) lipgloss.Style {
		st := lipgloss.NewStyle()
		if c != nil {
			st = st.Foreground(c)
		}
		return st
	}
	paint := func(c color.Color) Paint { return NewPaint(fg(c)) }

	s := &Styles{Dark: isDark, Palette: p}
	s.Text = paint(p.Text)
	s.Muted = paint(p.Muted)
	s.Subtle = paint(p.Subtle)
	s.Bold = NewPaint(lipgloss.NewStyle().Bold(true))
	s.Primary = NewPaint(fg(p.Primary).Bold(true))
	s.OK = paint(p.OK)
	s.Info = paint(p.Info)
	s.Warn = paint(p.Warn)
	s.Error = paint(p.Error)
	s.Highlight = paint(p.Highlight)

	s.Header.App = NewPaint(fg(p.Primary).Bold(true))
	s.Header.Label = paint(p.Muted)
	s.Header.Value = NewPaint(fg(p.Text))
	s.Header.Embedded = NewPaint(fg(p.Highlight).Bold(true))

	s.Pane.Border = paint(p.Border)
	s.Pane.BorderActive = paint(p.BorderActive)
	s.Pane.Title = paint(p.Muted)
	s.Pane.TitleActive = NewPaint(fg(p.Primary).Bold(true))
	s.Pane.Tab = paint(p.Muted)
	s.Pane.TabActive = NewPaint(fg(p.Primary).Bold(true).Underline(true))
	s.Pane.Badge = NewPaint(fg(p.Warn).Bold(true))

	s.Table.Header = NewPaint(fg(p.Muted).Bold(true))
	sel := lipgloss.NewStyle().Bold(true)
	if p.SelectedBg != nil {
		sel = sel.Background(p.SelectedBg)
	}
	s.Table.Selected = NewPaint(sel)
	s.Table.SelectedBlur = NewPaint(fg(p.Primary))
	s.Table.Group = NewPaint(fg(p.Highlight).Bold(true))

	s.Status = map[string]Paint{
		"connected":    paint(p.OK),
		"connecting":   paint(p.Info),
		"disconnected": paint(p.Warn),
		"error":        NewPaint(fg(p.Error).Bold(true)),
		"idle":         paint(p.Muted),
		"closed":       paint(p.Muted),
		// A subscription channel whose postgres changes flow, and one
		// whose changes the server refused (no database, a bad filter).
		"ready":   NewPaint(fg(p.OK).Bold(true)),
		"refused": NewPaint(fg(p.Error).Bold(true)),
	}
	s.Level = map[string]Paint{
		"DEBUG": paint(p.Subtle),
		"INFO":  paint(p.Info),
		"WARN":  NewPaint(fg(p.Warn).Bold(true)),
		"ERROR": NewPaint(fg(p.Error).Bold(true)),
	}
	s.JSON.Key = paint(p.Primary)
	s.JSON.String = paint(p.OK)
	s.JSON.Number = paint(p.Warn)
	s.JSON.Literal = paint(p.Highlight)
	s.JSON.Punct = paint(p.Muted)

	s.Spark = paint(p.Info)
	s.Bar = paint(p.Warn)
	s.BarEmpty = paint(p.Subtle)

	s.Dialog.Border = paint(p.BorderActive)
	s.Dialog.Title = NewPaint(fg(p.Primary).Bold(true))
	s.Dialog.Label = paint(p.Muted)
	s.Dialog.Input = paint(p.Primary)
	s.Dialog.Error = paint(p.Error)
	s.Dialog.Key = NewPaint(fg(p.Primary).Bold(true))
	s.Dialog.Disabled = paint(p.Subtle)

	s.StatusLine = map[string]Paint{
		"DEBUG": paint(p.Muted),
		"INFO":  paint(p.OK),
		"WARN":  NewPaint(fg(p.Warn).Bold(true)),
		"ERROR": NewPaint(fg(p.Error).Bold(true)),
	}

	s.Help = help.DefaultStyles(isDark)
	if p.Primary != nil {
		s.Help.ShortKey = fg(p.Primary)
		s.Help.FullKey = fg(p.Primary)
		s.Help.ShortDesc = fg(p.Muted)
		s.Help.FullDesc = fg(p.Muted)
		s.Help.ShortSeparator = fg(p.Subtle)
		s.Help.FullSeparator = fg(p.Subtle)
		s.Help.Ellipsis = fg(p.Subtle)
	} else {
		plain := lipgloss.NewStyle()
		s.Help = help.Styles{
			Ellipsis: plain, ShortKey: plain.Bold(true), ShortDesc: plain, ShortSeparator: plain,
			FullKey: plain.Bold(true), FullDesc: plain, FullSeparator: plain,
		}
	}
	s.Input = fg(p.Text)
	s.Placeholder = fg(p.Subtle)
	s.Prompt = fg(p.Primary).Bold(p.Primary != nil)
	return s
}

// StatusPaint returns the paint of a status name, or Text.
func (s *Styles) StatusPaint(name string) Paint {
	if p, ok := s.Status[name]; ok {
		return p
	}
	return s.Text
}

// LevelPaint returns the paint of a log level name ("INFO", "WARN", ...)
// or Text.
func (s *Styles) LevelPaint(level string) Paint {
	if p, ok := s.Level[level]; ok {
		return p
	}
	return s.Text
}
