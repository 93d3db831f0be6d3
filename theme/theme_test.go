package theme

import (
	"strings"
	"testing"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPaintMatchesStyleRender(t *testing.T) {
	st := lipgloss.NewStyle().Foreground(lipgloss.Color("#FF0000")).Bold(true)
	p := NewPaint(st)
	for _, s := range []string{"connected", "a", "x y z", "ünïcode"} {
		if got, want := p.Render(s), st.Render(s); got != want {
			t.Errorf("Paint.Render(%q) = %q, style renders %q", s, got, want)
		}
	}
	if got := p.Render(""); got != "" {
		t.Errorf("Paint.Render(\"\") = %q, want empty", got)
	}
	var zero Paint
	if !zero.IsZero() || zero.Render("x") != "x" {
		t.Errorf("zero paint must pass text through")
	}
}

func TestNoColorHonoured(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		noColor bool
	}{
		{map[string]string{}, false},
		{map[string]string{"NO_COLOR": ""}, false},
		{map[string]string{"NO_COLOR": "1"}, true},
		{map[string]string{"NO_COLOR": "true"}, true},
	} {
		s := ForEnv(true, env(tc.env))
		if s.NoColor != tc.noColor {
			t.Errorf("env %v: NoColor = %v, want %v", tc.env, s.NoColor, tc.noColor)
		}
		out := s.Status["connected"].Render("connected") + s.Level["ERROR"].Render("ERROR") +
			s.Table.Selected.Render("row") + s.Help.ShortKey.Render("q")
		hasColor := strings.Contains(out, "38;") || strings.Contains(out, "48;")
		if hasColor == tc.noColor {
			t.Errorf("env %v: output %q has colour = %v", tc.env, out, hasColor)
		}
		if ansi.Strip(out) != "connectedERRORrowq" {
			t.Errorf("env %v: stripped output %q", tc.env, ansi.Strip(out))
		}
	}
	// Selection must stay visible without colour.
	if p := Plain(); p.Table.Selected.IsZero() || p.Pane.BorderActive.IsZero() {
		t.Errorf("Plain theme must mark the selection and the focused pane")
	}
}

func TestDarkAndLightDiffer(t *testing.T) {
	d, l := Default(true), Default(false)
	if !d.Dark || l.Dark {
		t.Fatalf("Dark flags: dark %v light %v", d.Dark, l.Dark)
	}
	for _, name := range []string{"connected", "connecting", "disconnected", "error"} {
		if d.Status[name].Render("x") == l.Status[name].Render("x") {
			t.Errorf("status %s: dark and light paints are equal", name)
		}
		if d.StatusPaint(name).IsZero() {
			t.Errorf("status %s has no paint", name)
		}
	}
	for _, lvl := range []string{"DEBUG", "INFO", "WARN", "ERROR"} {
		if d.LevelPaint(lvl).IsZero() {
			t.Errorf("level %s has no paint", lvl)
		}
	}
	if d.StatusPaint("nope") != d.Text || d.LevelPaint("nope") != d.Text {
		t.Errorf("unknown names must fall back to Text")
	}
}
