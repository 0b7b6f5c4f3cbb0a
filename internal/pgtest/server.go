package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// errAddrInUse marks a start that failed because another process took the
// chosen port between freePort and the server's bind.
var errAddrInUse = errors.New("port already in use")

// readyTimeout bounds the wait for a starting server to accept connections.
const readyTimeout = 30 * time.Second

// serverCredential returns who the server runs as: PostgreSQL refuses to run
// as root, so a root process runs it as the "postgres" user; anyone else
// runs it as themselves (nil).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: PostgreSQL refuses to run as root and there is no \"postgres\" user to run it as (%w); run `make test` or scripts/ensure-postgres.sh", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeTempDir creates the cluster directory, owned by the server's user.
// The server's Unix socket lives in it and a socket path may not exceed 107
// bytes, so a long $TMPDIR is not used; nor is one the server's user cannot
// reach (say /root/tmp when we are root).
func makeTempDir(cred *syscall.Credential) (string, error) {
	base := os.TempDir()
	if len(base) > 60 || (cred != nil && !worldSearchable(base)) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgt")
	if err != nil {
		return "", fmt.Errorf("pgtest: create cluster directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", errors.Join(fmt.Errorf("pgtest: chown cluster directory to postgres: %w", err), os.RemoveAll(dir))
		}
	}
	return dir, nil
}

// worldSearchable reports whether every directory from dir up to / may be
// traversed by any user.
func worldSearchable(dir string) bool {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" || p == "." {
			return true
		}
	}
}

// settingName is what postgresql.conf accepts as a parameter name
// (extensions' parameters have a dot).
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// mergeSettings lays extra settings over the defaults, refusing names that
// would corrupt postgresql.conf and the two settings pgtest must control.
func mergeSettings(extra map[string]string) (map[string]string, error) {
	m := make(map[string]string, len(defaultSettings)+len(extra))
	for k, v := range defaultSettings {
		m[k] = v
	}
	for k, v := range extra {
		switch {
		case !settingName.MatchString(k):
			return nil, fmt.Errorf("pgtest: Options.Settings: invalid parameter name %q", k)
		case strings.EqualFold(k, "port"), strings.EqualFold(k, "unix_socket_directories"):
			return nil, fmt.Errorf("pgtest: Options.Settings: %s is chosen by pgtest and cannot be set", k)
		}
		if err := checkConfLines([]string{v}); err != nil {
			return nil, fmt.Errorf("pgtest: Options.Settings[%q]: %w", k, err)
		}
		m[strings.ToLower(k)] = v
	}
	return m, nil
}

// checkConfLines refuses text that would break out of its line in a
// configuration file.
func checkConfLines(lines []string) error {
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r\x00") {
			return fmt.Errorf("%q contains a line break or NUL", l)
		}
	}
	return nil
}

// quoteConfValue quotes a postgresql.conf value. Every parameter accepts a
// quoted value; inside one, ' is doubled and \ starts an escape.
func quoteConfValue(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// serverEnv is the environment of initdb and postgres: ours without the PG*
// variables (PGDATA, PGPORT, ... would override what pgtest chooses) and with
// the C locale, so that messages are in English whatever the user's locale.
func serverEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") ||
			strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LANGUAGE=")
	})
	return append(env, "LC_ALL=C")
}

// initdb creates the data directory, preferring the C.UTF-8 locale and
// falling back to C where that locale is not installed.
func (c *Cluster) initdb(ctx context.Context) error {
	args := []string{"-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"}
	if c.password != "" {
		pwfile := filepath.Join(c.dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
			return fmt.Errorf("pgtest: write password file: %w", err)
		}
		defer os.Remove(pwfile)
		if c.cred != nil {
			if err := os.Chown(pwfile, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return fmt.Errorf("pgtest: chown password file: %w", err)
			}
		}
		args = append(args, "--pwfile="+pwfile)
	}
	var out []byte
	var err error
	for _, locale := range []string{"C.UTF-8", "C"} {
		cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"), append(args, "--locale="+locale)...)
		cmd.Dir = c.dir
		cmd.Env = serverEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		out, err = cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("locale")) {
			break
		}
		// initdb removes what it created when it fails; make sure anyway.
		if rmErr := os.RemoveAll(c.dataDir()); rmErr != nil {
			return fmt.Errorf("pgtest: remove failed data directory: %w", rmErr)
		}
	}
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, bytes.TrimSpace(out))
	}
	conf, err := os.ReadFile(filepath.Join(c.dataDir(), "postgresql.conf"))
	if err != nil {
		return fmt.Errorf("pgtest: read postgresql.conf: %w", err)
	}
	c.baseConf = conf
	return nil
}

// writeConf writes postgresql.conf: initdb's file followed by pgtest's
// settings (later lines win) and the current port.
func (c *Cluster) writeConf() error {
	var b bytes.Buffer
	b.Write(c.baseConf)
	b.WriteString("\n# Added by internal/pgtest.\n")
	keys := make([]string, 0, len(c.settings))
	for k := range c.settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteConfValue(c.settings[k]))
	}
	fmt.Fprintf(&b, "unix_socket_directories = %s\n", quoteConfValue(c.dir))
	fmt.Fprintf(&b, "port = %d\n", c.port)
	if err := os.WriteFile(filepath.Join(c.dataDir(), "postgresql.conf"), b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	return nil
}

// pickPort chooses the port of a new cluster; tests replace it.
var pickPort = freePort

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
// Another process may take it before the server binds it; create retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverProc is a running postmaster, a child of this process.
type serverProc struct {
	process *os.Process
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // how it exited; valid once done is closed
}

// startServer starts the postmaster on c.port and waits until it accepts
// connections. On failure the error carries the end of the server log.
func (c *Cluster) startServer(ctx context.Context) (*serverProc, error) {
	logOffset := int64(0)
	if fi, err := os.Stat(c.logPath()); err == nil {
		logOffset = fi.Size()
	}
	p, err := c.spawn()
	if err != nil {
		return nil, err
	}
	err = c.waitReady(ctx, p)
	if err == nil {
		return p, nil
	}
	stopErr := p.stop()
	log := readFrom(c.logPath(), logOffset)
	if strings.Contains(log, "Address already in use") {
		return nil, fmt.Errorf("pgtest: start postgres on port %d: %w", c.port, errAddrInUse)
	}
	return nil, errors.Join(
		fmt.Errorf("pgtest: start postgres: %w\n--- end of the server log ---\n%s", err, lastLines(log, 30)),
		stopErr)
}

// spawn starts the postmaster with its output appended to the server log.
func (c *Cluster) spawn() (*serverProc, error) {
	logf, err := os.OpenFile(c.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgtest: open server log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), "-D", c.dataDir())
	cmd.Dir = c.dir
	cmd.Env = serverEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		// Its own process group, so that ^C in a terminal reaches only us
		// and we shut the server down in order.
		Setpgid: true,
		// Belt and braces next to the watchdog: SIGQUIT is an immediate
		// shutdown. The kernel applies it after the switch to Credential.
		Pdeathsig: syscall.SIGQUIT,
	}
	p := &serverProc{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process. Go may end a thread whose goroutine exits while
		// locked to it; keeping this goroutine locked and alive for the
		// server's lifetime pins the thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.process = cmd.Process
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	return p, nil
}

// waitReady polls the server through its Unix socket until it accepts
// connections. The socket is unique to this cluster, so unlike the TCP port
// it cannot reach another server; the postmaster creates it after binding
// TCP, so TCP works too once it answers.
func (c *Cluster) waitReady(ctx context.Context, p *serverProc) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(c.port)}, "sslmode": {"disable"}, "connect_timeout": {"2"}}
	if c.password != "" {
		q.Set("password", c.password)
	}
	dsn := "postgres://postgres@/postgres?" + q.Encode()
	for {
		conn, err := pgconn.Connect(ctx, dsn)
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		// Any answer but "the database system is starting up" means the
		// server is up, even one refusing us (Options.HBA may not allow
		// this connection).
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P03" {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited during startup (%v)", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %s: %w", readyTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the server down: fast shutdown first, then immediate, then
// SIGKILL should it hang.
func (p *serverProc) stop() error {
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
	}{
		{syscall.SIGINT, 60 * time.Second},
		{syscall.SIGQUIT, 10 * time.Second},
		{syscall.SIGKILL, 10 * time.Second},
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	for _, s := range steps {
		if err := p.process.Signal(s.sig); err != nil {
			if errors.Is(err, os.ErrProcessDone) {
				return nil
			}
			return fmt.Errorf("pgtest: signal postgres (pid %d): %w", p.process.Pid, err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(s.wait):
		}
	}
	return fmt.Errorf("pgtest: postgres (pid %d) did not exit even after SIGKILL", p.process.Pid)
}

// readFrom returns the text of file path from offset off on, or "" when it
// cannot be read (it serves error messages only).
func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// lastLines returns at most n final lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
