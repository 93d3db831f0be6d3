package tui

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// What to set in an app to use rtm's app proxy: SUPABASE_URL (and,
// when the upstream is rtm's embedded server, its SUPABASE_ANON_KEY)
// under the names frameworks read. `rtm proxy` prints them; the Apps
// view shows them (the key masked), c copies them to the clipboard and
// w writes them to a file, both with the key in full.

// DefaultAppsEnvFile is the file w writes in the Apps view
// (Options.AppsEnvFile), in the working directory.
const DefaultAppsEnvFile = ".env.rtm"

// envFileMarker starts every file w writes: a file that does not start
// with it is not overwritten.
const envFileMarker = "# Written by rtm"

// AppEnvNames returns name under each name frameworks read it by:
// name itself, then NEXT_PUBLIC_, VITE_ and EXPO_PUBLIC_ name.
func AppEnvNames(name string) []string {
	out := []string{name}
	for _, prefix := range []string{"NEXT_PUBLIC_", "VITE_", "EXPO_PUBLIC_"} {
		out = append(out, prefix+name)
	}
	return out
}

// AppEnv returns the NAME=value lines that point an app at the proxy
// at url: SUPABASE_URL under each of AppEnvNames, then, when anonKey
// is not "", SUPABASE_ANON_KEY under each.
func AppEnv(url, anonKey string) []string {
	var out []string
	for _, n := range AppEnvNames("SUPABASE_URL") {
		out = append(out, n+"="+url)
	}
	if anonKey != "" {
		for _, n := range AppEnvNames("SUPABASE_ANON_KEY") {
			out = append(out, n+"="+anonKey)
		}
	}
	return out
}

// appEnvShown is AppEnv for the screen: the key masked.
func (m *Model) appEnvShown() []string {
	return AppEnv(sanitize(m.opts.AppsURL), registry.MaskSecret(m.opts.AppsAnonKey))
}

// appEnvSummary says in one line what c and w give, the key masked.
func (m *Model) appEnvSummary() string {
	s := "SUPABASE_URL=" + sanitize(m.opts.AppsURL)
	if m.opts.AppsAnonKey != "" {
		s += ", SUPABASE_ANON_KEY=" + registry.MaskSecret(m.opts.AppsAnonKey)
	}
	return s + " and their NEXT_PUBLIC_, VITE_, EXPO_PUBLIC_ names"
}

// copyAppEnv is c in the Apps view: the env lines, the key in full, to
// the terminal's clipboard (OSC 52), and a status line saying what was
// copied, the key masked.
func (m *Model) copyAppEnv() tea.Cmd {
	if m.opts.AppsURL == "" {
		return m.setStatus(slog.LevelWarn, "the app proxy is off: there is nothing to set in an app")
	}
	env := strings.Join(AppEnv(m.opts.AppsURL, m.opts.AppsAnonKey), "\n") + "\n"
	return tea.Batch(tea.SetClipboard(env), m.setStatus(slog.LevelInfo,
		"copied to the clipboard (OSC 52, if your terminal allows it): "+m.appEnvSummary()))
}

// writeAppEnv is w in the Apps view: a Cmd that writes the env lines,
// the key in full, to Options.AppsEnvFile (writeEnvFile) and reports
// the path.
func (m *Model) writeAppEnv() tea.Cmd {
	if m.opts.AppsURL == "" {
		return m.setStatus(slog.LevelWarn, "the app proxy is off: there is nothing to set in an app")
	}
	path, lines, summary := m.opts.AppsEnvFile, AppEnv(m.opts.AppsURL, m.opts.AppsAnonKey), m.appEnvSummary()
	header := fmt.Sprintf("%s: what to set in your app to use rtm's app proxy at %s.\n"+
		"# rtm overwrites this file when asked (w in the Apps view)", envFileMarker, m.opts.AppsURL)
	if m.opts.AppsAnonKey != "" {
		header += "; it holds a key: do not commit it"
	}
	header += ".\n"
	m.setStatus(slog.LevelInfo, "writing "+path+" …")
	return func() tea.Msg {
		abs, err := writeEnvFile(path, header+strings.Join(lines, "\n")+"\n")
		return actionDoneMsg{op: "write", subject: path, ok: "wrote " + summary + " to " + abs + " (mode 0600)", err: err}
	}
}

// errNotOurs is why w does not overwrite a file.
var errNotOurs = errors.New("not overwriting it: it was not written by rtm (move it away, or remove it)")

// writeEnvFile writes text to path, created with mode 0600; a file
// that is there already is overwritten only when rtm wrote it (its
// first line starts with envFileMarker), and is then left with mode
// 0600 too. It returns the absolute path.
func writeEnvFile(path, text string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path, fmt.Errorf("env file: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		f, err = openOurs(abs)
	}
	if err != nil {
		return abs, err
	}
	_, err = io.WriteString(f, text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return abs, fmt.Errorf("env file: %w", err)
	}
	return abs, nil
}

// openOurs opens the file rtm wrote at path for overwriting (mode
// 0600), or says why not: not a regular file, or not rtm's.
func openOurs(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("env file: %w", errNotOurs)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	first, _ := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	if !strings.HasPrefix(first, envFileMarker) {
		_ = f.Close()
		return nil, fmt.Errorf("env file: %w", errNotOurs)
	}
	err = f.Chmod(0o600)
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("env file: %w", err)
	}
	return f, nil
}
