// Package pgcluster starts a private, throwaway PostgreSQL cluster from the
// machine's binaries: initdb into a new temporary directory (logical
// replication on), a postmaster listening on a free loopback port with its
// unix socket in that directory, and, on [Cluster.Stop], a fast shutdown
// and the directory removed. Tests use it through realtime/internal/pgtest;
// `rtm serve --db auto` and the TUI use it for the demo database.
//
// PostgreSQL refuses to run as root. When the process is root, the cluster
// runs as the "postgres" OS user (created by Debian's postgresql package)
// and its directory is owned by that user.
//
// The binaries are found through, in order: [Options.BinDir], the
// environment variable RTM_PG_BIN, the directory of `pg_ctl` or `initdb`
// on PATH, and the newest /usr/lib/postgresql/*/bin. When none holds
// initdb and postgres, Start returns an error wrapping [ErrNotInstalled]
// that says how to install them.
package pgcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotInstalled means the PostgreSQL server binaries were not found.
var ErrNotInstalled = errors.New("pgcluster: PostgreSQL server binaries (initdb, postgres) not found")

// InstallHint says how to get the binaries.
const InstallHint = "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) " +
	"or point RTM_PG_BIN at the directory holding initdb and postgres"

// Options configure a cluster. The zero value is usable.
type Options struct {
	// BinDir holds initdb and postgres; "" searches (see the package doc).
	BinDir string
	// Dir is the parent of the cluster's temporary directory; "" is
	// os.TempDir(). It must be reachable by the postgres user when the
	// process is root.
	Dir string
	// Password, when set, is the password of the superuser "postgres" and
	// TCP connections need it (scram-sha-256). "" generates one when
	// GeneratePassword is true, else TCP connections are trusted.
	Password string
	// GeneratePassword makes Start pick a random password (when Password
	// is empty).
	GeneratePassword bool
	// Settings are extra server settings (name -> value), added to the
	// defaults (wal_level=logical, fsync=off, ...).
	Settings map[string]string
	// StartTimeout bounds how long Start waits for the server to accept
	// connections. Default 60 s.
	StartTimeout time.Duration
	// Logger receives progress logs; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	dir      string // temporary directory, removed by Stop
	dataDir  string
	sockDir  string
	binDir   string
	port     int
	password string
	cmd      *exec.Cmd
	logFile  *os.File
	log      *slog.Logger
	version  string
}

// defaultSettings are the server settings of every cluster: logical
// replication, no durability (throwaway), loopback only.
func defaultSettings() map[string]string {
	return map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "20",
		"max_wal_senders":       "20",
		"max_connections":       "100",
		"fsync":                 "off",
		"full_page_writes":      "off",
		"shared_buffers":        "32MB",
		"listen_addresses":      "127.0.0.1",
		"timezone":              "UTC",
		"log_timezone":          "UTC",
		"logging_collector":     "off",
		"log_min_messages":      "warning",
		"wal_sender_timeout":    "60s",
	}
}

// FindBinDir returns the directory holding initdb and postgres, or an
// error wrapping ErrNotInstalled.
func FindBinDir(explicit string) (string, error) {
	return findBinDir(explicit, os.Getenv("RTM_PG_BIN"), exec.LookPath, "/usr/lib/postgresql")
}

func findBinDir(explicit, env string, lookPath func(string) (string, error), libRoot string) (string, error) {
	var candidates []string
	if explicit != "" {
		candidates = append(candidates, explicit)
	}
	if env != "" {
		candidates = append(candidates, env)
	}
	for _, name := range []string{"pg_ctl", "initdb"} {
		if p, err := lookPath(name); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
			candidates = append(candidates, filepath.Dir(p))
		}
	}
	matches, _ := filepath.Glob(filepath.Join(libRoot, "*", "bin"))
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	candidates = append(candidates, matches...)
	for _, dir := range candidates {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w; %s", ErrNotInstalled, InstallHint)
}

// versionOf reads N from /usr/lib/postgresql/N/bin.
func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Available reports whether Start can find the binaries.
func Available() error {
	_, err := FindBinDir("")
	return err
}

// Start creates and starts a cluster. The caller must Stop it.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	parent := opts.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "rtm-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c := &Cluster{dir: dir, dataDir: filepath.Join(dir, "data"), sockDir: dir, binDir: bin, log: log}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgcluster: hand %s to the postgres user: %w", dir, err)
		}
	}
	c.password = opts.Password
	if c.password == "" && opts.GeneratePassword {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		c.password = hex.EncodeToString(b)
	}
	if err := c.initdb(ctx, cred); err != nil {
		return nil, err
	}
	settings := defaultSettings()
	for k, v := range opts.Settings {
		settings[k] = v
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	// A free port may be taken between our probe and the bind: retry.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.port = port
		err = c.startServer(ctx, cred, settings, timeout)
		if err == nil {
			break
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "could not") {
			return nil, err
		}
		log.Debug("PostgreSQL did not start, retrying on another port", "err", err)
	}
	ok = true
	log.Info("PostgreSQL cluster started", "dir", dir, "port", c.port, "version", c.version)
	return c, nil
}

// runAs returns the credentials of the postgres OS user when the process
// is root, else nil (run as ourselves).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: PostgreSQL cannot run as root and there is no \"postgres\" OS user to run it as "+
			"(apt-get install postgresql creates it; or run as a non-root user): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgcluster: postgres user has a non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// command builds a command of the cluster's binaries, run as cred.
func (c *Cluster) command(ctx context.Context, cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(cleanEnv(), "LC_ALL=C", "LANG=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd
}

// cleanEnv drops PG* variables that would redirect the tools.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (c *Cluster) initdb(ctx context.Context, cred *syscall.Credential) error {
	args := []string{"-D", c.dataDir, "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync", "--auth-local=trust"}
	if c.password != "" {
		pw := filepath.Join(c.dir, "pwfile")
		if err := os.WriteFile(pw, []byte(c.password+"\n"), 0o600); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if cred != nil {
			_ = os.Chown(pw, int(cred.Uid), int(cred.Gid))
		}
		defer os.Remove(pw)
		args = append(args, "--auth-host=scram-sha-256", "--pwfile="+pw)
	} else {
		args = append(args, "--auth-host=trust")
	}
	out, err := c.command(ctx, cred, "initdb", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: initdb: %w: %s", err, lastLines(out, 8))
	}
	// Replication connections over TCP (initdb only allows them from
	// the unix socket and 127.0.0.1 with the same method as "all").
	return nil
}

// startServer runs the postmaster in the foreground of a child process
// and waits until it accepts connections.
func (c *Cluster) startServer(ctx context.Context, cred *syscall.Credential, settings map[string]string, timeout time.Duration) error {
	args := []string{"-D", c.dataDir, "-p", strconv.Itoa(c.port), "-k", c.sockDir}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	logPath := filepath.Join(c.dir, "postgres.log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	// The postmaster outlives the start: ctx bounds the wait for it, not
	// its life (Stop ends it).
	cmd := c.command(context.WithoutCancel(ctx), cred, "postgres", args...)
	cmd.Stdout, cmd.Stderr = lf, lf // files: no copying goroutines
	// SIGQUIT (immediate shutdown) if we die without stopping it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.cmd, c.logFile = cmd, lf

	deadline := time.Now().Add(timeout)
	for {
		v, err := c.ping(ctx)
		if err == nil {
			c.version = v
			return nil
		}
		if st, done := c.reap(); done {
			c.cmd = nil
			lf.Close()
			c.logFile = nil
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgcluster: postgres could not start (%s): %s", st, lastLines(log, 8))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: waiting for postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgcluster: postgres did not accept connections within %v (last error %v): %s", timeout, err, lastLines(log, 8))
		}
	}
}

// ping connects once and returns the server version.
func (c *Cluster) ping(ctx context.Context) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(cctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	return conn.ParameterStatus("server_version"), nil
}

// reap collects the postmaster's exit status if it has exited, without
// blocking (no goroutine waits on the process).
func (c *Cluster) reap() (string, bool) {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(c.cmd.Process.Pid, &ws, syscall.WNOHANG, nil)
	switch {
	case err != nil:
		return err.Error(), true // not our child any more
	case pid == 0:
		return "", false
	}
	_ = c.cmd.Process.Release()
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus()), true
	default:
		return ws.Signal().String(), true
	}
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// URL returns a connection URL for database db as the superuser
// "postgres" over TCP on loopback ("postgres://postgres:…@127.0.0.1:port/db?sslmode=disable").
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	if c.password != "" {
		u.User = url.UserPassword("postgres", c.password)
	} else {
		u.User = url.User("postgres")
	}
	return u.String()
}

// Port returns the TCP port.
func (c *Cluster) Port() int { return c.port }

// Dir returns the cluster's temporary directory (data, socket, log).
func (c *Cluster) Dir() string { return c.dir }

// Version returns the server version ("15.18 (Debian ...)").
func (c *Cluster) Version() string { return c.version }

// Log returns the tail of the server log (for failing tests).
func (c *Cluster) Log(lines int) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return lastLines(b, lines)
}

// Stop shuts the server down (fast shutdown: sessions are disconnected;
// immediate after 10 s) and removes the directory. It is safe to call
// more than once.
func (c *Cluster) Stop() error {
	var err error
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		for i := 0; ; i++ {
			if _, done := c.reap(); done {
				break
			}
			switch i {
			case 200: // 10 s
				_ = c.cmd.Process.Signal(syscall.SIGQUIT)
			case 300:
				_ = c.cmd.Process.Kill()
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.cmd = nil
	}
	if c.logFile != nil {
		c.logFile.Close()
		c.logFile = nil
	}
	if c.dir != "" {
		if rerr := os.RemoveAll(c.dir); rerr != nil {
			err = fmt.Errorf("pgcluster: remove %s: %w", c.dir, rerr)
		}
		c.dir = ""
	}
	return err
}

// Exec runs SQL statements (simple protocol, several separated by ';') in
// database db as the superuser.
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgconn.Connect(ctx, c.URL(db))
	if err != nil {
		return fmt.Errorf("pgcluster: connect %s: %w", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// CreateDatabase creates database name (an identifier: letters, digits,
// underscores).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	if !validIdent(name) {
		return fmt.Errorf("pgcluster: bad database name %q", name)
	}
	return c.Exec(ctx, "postgres", "CREATE DATABASE "+name)
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
