package tui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"rtm/registry/apps"
)

// appsEnvModel is a model with the Apps view open on snap, the proxy
// in front of the embedded server (its anon key known), writing to a
// file in a temporary directory.
func appsEnvModel(t *testing.T, snap apps.Snapshot) (*Model, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), DefaultAppsEnvFile)
	m, _ := newTestModel(t, 120, 40, func(o *Options) { o.AppsAnonKey, o.AppsEnvFile = appsAnonKey, path })
	withApps(m, snap)
	keys(m, "A")
	return m, path
}

// wantEnv is what c and w give: the URL and the key in full, under
// every name.
func wantEnv() []string {
	var out []string
	for _, n := range []string{"SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_URL", "VITE_SUPABASE_URL", "EXPO_PUBLIC_SUPABASE_URL"} {
		out = append(out, n+"="+appsURL)
	}
	for _, n := range []string{"SUPABASE_ANON_KEY", "NEXT_PUBLIC_SUPABASE_ANON_KEY", "VITE_SUPABASE_ANON_KEY", "EXPO_PUBLIC_SUPABASE_ANON_KEY"} {
		out = append(out, n+"="+appsAnonKey)
	}
	return out
}

// TestAppsEnvCopy: c in the Apps view (no app yet, and with sockets)
// sets the clipboard to the env with the key in full, and the status
// line says what was copied with the key masked; the screen never
// shows the key, only its masked form.
func TestAppsEnvCopy(t *testing.T) {
	for _, snap := range []apps.Snapshot{{}, sampleApps()} {
		m, _ := appsEnvModel(t, snap)
		out := screen(m)
		mustContain(t, out, "SUPABASE_ANON_KEY=eyJh…RlZA")
		cmd := keys(m, "c")[0]
		var clip []tea.Msg
		want := tea.SetClipboard(strings.Join(wantEnv(), "\n") + "\n")()
		for _, msg := range runCmd(cmd) {
			if msg == want {
				clip = append(clip, msg)
			}
		}
		if len(clip) != 1 {
			t.Fatalf("c: %v, want one SetClipboard of the env", runCmd(cmd))
		}
		out = screen(m)
		mustContain(t, out, "copied to the clipboard", "SUPABASE_ANON_KEY=eyJh…RlZA")
		for _, s := range []string{out, m.View().Content} {
			if strings.Contains(s, appsAnonKey) || strings.Contains(s, appsAnonKey[strings.LastIndexByte(appsAnonKey, '.')+1:]) {
				t.Fatalf("the screen shows the anon key:\n%s", s)
			}
		}
	}
}

// TestAppsEnvCopyProject: in front of a project (no key known) c
// copies the URL names only, and the view says to keep the app's key.
func TestAppsEnvCopyProject(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	withApps(m, apps.Snapshot{})
	keys(m, "A")
	mustContain(t, screen(m), "keep its anon key", "SUPABASE_URL="+appsURL)
	mustNotContain(t, screen(m), "SUPABASE_ANON_KEY")
	want := tea.SetClipboard(strings.Join(wantEnv()[:4], "\n") + "\n")()
	if msgs := runCmd(keys(m, "c")[0]); !slices.Contains(msgs, want) {
		t.Fatalf("c: %v", msgs)
	}
	// Without the proxy there is nothing to copy.
	off, _ := newTestModel(t, 120, 40)
	keys(off, "A")
	for _, msg := range runCmd(keys(off, "c")[0]) {
		if _, ok := msg.(scheduledMsg); !ok {
			t.Fatalf("c with the proxy off: %T %v", msg, msg)
		}
	}
	mustContain(t, screen(off), "the app proxy is off")
}

// TestAppsEnvWrite: w writes the env, the key in full, to the file
// (mode 0600) and says where; a second w overwrites rtm's own file
// (and puts its mode back to 0600); a file rtm did not write is left
// alone and the status line says why.
func TestAppsEnvWrite(t *testing.T) {
	m, path := appsEnvModel(t, sampleApps())
	check := func() {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if !strings.HasPrefix(lines[0], envFileMarker) || !slices.Equal(lines[2:], wantEnv()) {
			t.Fatalf("file:\n%s", b)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v", fi.Mode(), err)
		}
		out := screen(m)
		mustContain(t, out, "wrote SUPABASE_URL="+appsURL, "SUPABASE_ANON_KEY=eyJh…RlZA")
		mustContain(t, strings.ReplaceAll(out, "\n", ""), filepath.Base(path))
		mustNotContain(t, out, appsAnonKey)
	}
	feed(m, keys(m, "w")[0])
	check()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	feed(m, keys(m, "w")[0])
	check()

	foreign := "SUPABASE_URL=https://example.supabase.co\n"
	if err := os.WriteFile(path, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	feed(m, keys(m, "w")[0])
	if b, _ := os.ReadFile(path); string(b) != foreign {
		t.Fatalf("a file rtm did not write was overwritten:\n%s", b)
	}
	mustContain(t, screen(m), "not written by rtm")
}
