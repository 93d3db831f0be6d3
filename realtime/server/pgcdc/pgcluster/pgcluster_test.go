package pgcluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noPath(string) (string, error) { return "", errors.New("not on PATH") }

func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	// Nothing anywhere: ErrNotInstalled with the install hint.
	_, err := findBinDir("", "", noPath, root)
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("err %v", err)
	}
	// Two versions under the lib root: the newest wins.
	for _, v := range []string{"9", "15", "13"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := findBinDir("", "", noPath, root)
	if err != nil || got != filepath.Join(root, "15", "bin") {
		t.Errorf("got %q, %v; want the 15 directory", got, err)
	}
	// An explicit directory comes first; one without the binaries is skipped.
	got, _ = findBinDir(filepath.Join(root, "9", "bin"), "", noPath, root)
	if got != filepath.Join(root, "9", "bin") {
		t.Errorf("explicit: got %q", got)
	}
	got, _ = findBinDir(t.TempDir(), "", noPath, root)
	if got != filepath.Join(root, "15", "bin") {
		t.Errorf("empty explicit dir: got %q", got)
	}
}

func TestValidIdent(t *testing.T) {
	for s, want := range map[string]bool{"t_1": true, "a": true, "": false, "1a": false, "A": false, "a;drop": false} {
		if validIdent(s) != want {
			t.Errorf("validIdent(%q) = %v", s, !want)
		}
	}
}
