package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned by Start when the PostgreSQL server binaries
// cannot be found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found " +
	"in $WARD_PG_BIN, PATH or /usr/lib/postgresql/*/bin; install Debian's postgresql package " +
	"(apt-get install -y postgresql), as scripts/setup.sh does")

// SuperUser is the name of the cluster's bootstrap superuser.
const SuperUser = "postgres"

// startTimeout bounds how long Start and Up wait for the server to accept
// connections.
const startTimeout = 30 * time.Second

// Server is one throwaway PostgreSQL cluster.
type Server struct {
	// Host and Port are the loopback TCP address the server listens on.
	Host string
	Port int
	// SocketDir holds the server's unix socket.
	SocketDir string
	// SuperPassword is the password of SuperUser.
	SuperPassword string

	dir    string // the temporary directory: data/, sock/, postgres.log
	binDir string
	cred   *syscall.Credential // nil unless the test runs as root

	mu   sync.Mutex // protects proc
	proc *process   // the running postmaster, nil while down
}

// process is one run of the postmaster.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited; err is set before
	err  error
}

// New starts a server for one test (or benchmark) and stops it when the
// test ends. It fails the test when PostgreSQL is missing or does not
// start.
func New(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Main is a TestMain body for a package whose tests share one server:
//
//	var srv *pgtest.Server
//	func TestMain(m *testing.M) { pgtest.Main(m, &srv) }
//
// It starts the server, stores it in *out, runs the tests, stops the
// server and exits. A server that does not start fails the package with
// the reason on stderr.
func Main(m *testing.M, out **Server) {
	s, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	*out = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// Start initialises a cluster in a new temporary directory and starts it.
func Start() (*Server, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", binDir: binDir}
	if os.Geteuid() == 0 {
		if s.cred, err = nobody(); err != nil {
			return nil, err
		}
	}
	if s.dir, err = s.makeDir(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	s.SocketDir = filepath.Join(s.dir, "sock")
	if err := s.mkdirOwned(s.SocketDir); err != nil {
		return nil, err
	}
	s.SuperPassword = randomString(24)
	if err := s.initdb(); err != nil {
		return nil, err
	}
	// A free port can be taken between probing and binding; try a few.
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.Up()
		if err == nil || attempt == 4 || !strings.Contains(err.Error(), "could not bind") &&
			!strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// findBinDir returns the directory holding initdb and postgres.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("WARD_PG_BIN"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("%w (WARD_PG_BIN=%q has no initdb and postgres)", ErrNotInstalled, d)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// Follow Debian's /usr/bin wrappers and /usr/local/bin symlinks to
		// the versioned directory, where postgres sits next to initdb.
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// nobody returns the credential of the unprivileged user the server runs
// as when the tests run as root.
func nobody() (*syscall.Credential, error) {
	uid, gid := uint32(65534), uint32(65534)
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			uid = uint32(n)
		}
		if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(n)
		}
	}
	return &syscall.Credential{Uid: uid, Gid: gid, NoSetGroups: true}, nil
}

// makeDir creates the server's directory where the server's user can
// reach it: under os.TempDir() when every ancestor is searchable by
// others (or we do not change user), else under /tmp. Unix socket paths
// are limited to about 100 bytes, so a long TMPDIR also falls back.
func (s *Server) makeDir() (string, error) {
	base := os.TempDir()
	if len(base) > 40 || (s.cred != nil && !searchable(base)) {
		base = "/tmp"
	}
	removeStale(base)
	dir, err := os.MkdirTemp(base, "ward-pgtest-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("pgtest: hand %s to uid %d: %w", dir, s.cred.Uid, err)
		}
	}
	return dir, nil
}

// staleAfter is how old a server directory without a live postmaster must
// be before Start removes it.
const staleAfter = 10 * time.Minute

// removeStale deletes the directories of servers whose test process was
// killed (the parent-death signal stopped the server, nothing removed its
// files): those older than staleAfter whose postmaster is not running.
func removeStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "ward-pgtest-*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleAfter {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 &&
				syscall.Kill(pid, 0) != syscall.ESRCH {
				continue // alive (or not ours to signal): leave it
			}
		}
		os.RemoveAll(d)
	}
}

// searchable reports whether others may traverse every directory of path.
func searchable(path string) bool {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" || p == "." {
			return true
		}
	}
}

func (s *Server) mkdirOwned(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// command builds an exec.Cmd of a PostgreSQL binary, run as the server's
// user from the server's directory.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (s *Server) initdb() error {
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.SuperPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	defer os.Remove(pwfile)
	cmd := s.command("initdb", "-D", filepath.Join(s.dir, "data"), "-U", SuperUser,
		"--pwfile="+pwfile, "--auth=scram-sha-256", "--no-sync", "--no-instructions",
		"--encoding=UTF8", "--locale=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb (%s) failed: %v\n%s", s.binDir, err, tail(out))
	}
	return nil
}

// Up starts the postgres server on the cluster and waits until it accepts
// connections. It is a no-op while the server runs.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := s.command("postgres",
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.Port),
		"-k", s.SocketDir,
		"-c", "listen_addresses="+s.Host,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
		"-c", "password_encryption=scram-sha-256",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { // owned by the server: ends when the postmaster exits
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.URL(SuperUser, s.SuperPassword))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case <-p.done:
			s.proc = nil
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres exited during startup: %v\n%s", p.err, tail(log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.killLocked(syscall.SIGQUIT)
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres did not accept connections within %v: %v\n%s", startTimeout, err, tail(log))
		}
	}
}

// Down stops the server with a fast shutdown (sessions are terminated)
// and keeps the cluster, so Up can start it again on the same port.
func (s *Server) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked(syscall.SIGINT)
}

// Stop shuts the server down immediately and removes its directory. It is
// safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	s.killLocked(syscall.SIGQUIT)
	s.mu.Unlock()
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// killLocked signals the postmaster and waits for it to exit (SIGKILL
// after 10 s).
func (s *Server) killLocked(sig syscall.Signal) {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// URL is a connection URL for user and password on the TCP address.
func (s *Server) URL(user, password string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable&connect_timeout=5",
	}
	return u.String()
}

// TemplateURL is a connection URL with Vault's {{username}} and
// {{password}} placeholders, as an engine configuration takes it.
func (s *Server) TemplateURL() string {
	return fmt.Sprintf("postgres://{{username}}:{{password}}@%s/postgres?sslmode=disable&connect_timeout=5",
		net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
}

// Connect opens one connection as user.
func (s *Server) Connect(ctx context.Context, user, password string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.URL(user, password))
}

// Exec runs sql as the superuser on a fresh connection.
func (s *Server) Exec(ctx context.Context, sql string, args ...any) error {
	c, err := s.Connect(ctx, SuperUser, s.SuperPassword)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql, args...)
	return err
}

// QueryRow runs a one-row query as the superuser and scans it into dest.
func (s *Server) QueryRow(ctx context.Context, dest []any, sql string, args ...any) error {
	c, err := s.Connect(ctx, SuperUser, s.SuperPassword)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.QueryRow(ctx, sql, args...).Scan(dest...)
}

// RoleExists reports whether a role of that name exists.
func (s *Server) RoleExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.QueryRow(ctx, []any{&ok}, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name)
	return ok, err
}

// NewSuperuser creates a fresh superuser with a random name and password,
// for a test that changes its root credentials without disturbing others.
// The role is dropped when the test ends if it still exists.
func (s *Server) NewSuperuser(tb testing.TB) (name, password string) {
	tb.Helper()
	name, password = "root_"+strings.ToLower(randomString(10)), randomString(24)
	ctx := context.Background()
	if err := s.Exec(ctx, "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+
		" WITH LOGIN SUPERUSER PASSWORD '"+password+"'"); err != nil {
		tb.Fatalf("pgtest: create superuser: %v", err)
	}
	tb.Cleanup(func() {
		_ = s.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	})
	return name, password
}

// Version is the server's version banner, e.g. "postgres (PostgreSQL) 15.18".
func (s *Server) Version() string {
	out, _ := exec.Command(filepath.Join(s.binDir, "postgres"), "--version").Output()
	return strings.TrimSpace(string(out))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomString returns n random letters and digits; only for test
// fixtures (its bias does not matter here).
func randomString(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// tail returns the last lines of a log for an error message.
func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
