package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server
// binaries. PGTEST_BINDIR or Options.BinDir point elsewhere.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Options configure a cluster. The zero value gives the defaults described
// on each field.
type Options struct {
	// BinDir holds initdb and postgres. Default: $PGTEST_BINDIR, else
	// DefaultBinDir.
	BinDir string

	// Settings are extra postgresql.conf settings, e.g.
	// {"wal_level": "replica"}. They override pgtest's defaults, except
	// port and unix_socket_directories, which pgtest chooses.
	Settings map[string]string

	// HBA, when non-nil, replaces the lines of pg_hba.conf entirely (for
	// instance to require scram-sha-256 for a role). The default trusts
	// every local and loopback connection, replication included.
	HBA []string

	// Password, when set, is the superuser's password, set at initdb. Auth
	// stays trust unless HBA says otherwise; URL includes the password.
	Password string
}

// Cluster is a running throwaway PostgreSQL server. Create it with Start and
// remove it with Stop. Its methods are safe for concurrent use.
type Cluster struct {
	dir      string // temporary directory: data/, Unix socket, server log
	port     int    // fixed once Start returns; Restart keeps it
	binDir   string
	password string
	cred     *syscall.Credential // nil unless we are root and run the server as "postgres"
	settings map[string]string   // effective postgresql.conf settings, without port
	baseConf []byte              // postgresql.conf as initdb wrote it
	watchdog *watchdog

	mu      sync.Mutex
	proc    *serverProc // the running postmaster; nil while stopped
	stopped bool
	stopErr error
}

// defaultSettings make a cluster fit for logical replication and fast:
// durability is worthless for throwaway data.
var defaultSettings = map[string]string{
	"listen_addresses":      "127.0.0.1",
	"wal_level":             "logical",
	"max_replication_slots": "10",
	"max_wal_senders":       "10",
	"fsync":                 "off",
	"synchronous_commit":    "off",
	"full_page_writes":      "off",
	"shared_buffers":        "128MB",
	"max_connections":       "100",
	// The server's stderr goes to a log file in the cluster directory.
	"logging_collector": "off",
}

// defaultHBA trusts every local and loopback connection, replication
// connections included.
var defaultHBA = []string{
	"local all         all              trust",
	"local replication all              trust",
	"host  all         all 127.0.0.1/32 trust",
	"host  all         all ::1/128      trust",
	"host  replication all 127.0.0.1/32 trust",
	"host  replication all ::1/128      trust",
}

// Start creates a cluster in a new temporary directory (initdb), starts the
// server on a free port of 127.0.0.1 and waits until it accepts connections.
// The caller must call Stop; should this process die first, the cluster's
// watchdog stops the server and removes the directory.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir := opts.BinDir
	if binDir == "" {
		binDir = os.Getenv("PGTEST_BINDIR")
	}
	if binDir == "" {
		binDir = DefaultBinDir
	}
	initdb := filepath.Join(binDir, "initdb")
	if _, err := os.Stat(initdb); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("initdb not found at %s; run `make test` (which installs postgresql-15) or `apt-get install postgresql-15`", initdb)
	} else if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	settings, err := mergeSettings(opts.Settings)
	if err != nil {
		return nil, err
	}
	if err := checkConfLines(opts.HBA); err != nil {
		return nil, fmt.Errorf("pgtest: Options.HBA: %w", err)
	}
	if strings.ContainsAny(opts.Password, "\n\r\x00") {
		// initdb reads the first line of the password file only. The
		// message does not quote the password.
		return nil, errors.New("pgtest: Options.Password contains a line break or NUL")
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := makeTempDir(cred)
	if err != nil {
		return nil, err
	}
	// The watchdog comes first so that even a crash during initdb leaves
	// nothing behind.
	wd, err := startWatchdog(dir)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	c := &Cluster{
		dir:      dir,
		binDir:   binDir,
		password: opts.Password,
		cred:     cred,
		settings: settings,
		watchdog: wd,
	}
	if err := c.create(ctx, opts); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// create runs initdb, writes the configuration and starts the server,
// choosing another port when the first one was taken in the meantime.
func (c *Cluster) create(ctx context.Context, opts Options) error {
	if err := c.initdb(ctx); err != nil {
		return err
	}
	hba := opts.HBA
	if hba == nil {
		hba = defaultHBA
	}
	if err := c.WriteHBA(hba); err != nil {
		return err
	}
	const attempts = 5
	for i := 1; ; i++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		c.port = port
		if err := c.writeConf(); err != nil {
			return err
		}
		p, err := c.startServer(ctx)
		if err == nil {
			c.mu.Lock()
			c.proc = p
			c.mu.Unlock()
			return nil
		}
		if !errors.Is(err, errAddrInUse) || i == attempts {
			return err
		}
	}
}

// Stop shuts the server down (fast shutdown: clients are disconnected, open
// transactions rolled back), removes the cluster's directory and ends the
// watchdog. Later calls return the first call's result. Stop on a nil
// Cluster does nothing.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.stopErr
	}
	c.stopped = true
	var errs []error
	if c.proc != nil {
		errs = append(errs, c.proc.stop())
		c.proc = nil
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: remove cluster directory: %w", err))
	}
	errs = append(errs, c.watchdog.close())
	c.stopErr = errors.Join(errs...)
	return c.stopErr
}

// Restart stops the server (fast shutdown) and starts it again on the same
// port, for settings that only take effect at server start (ALTER SYSTEM SET
// through Exec, then Restart).
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("pgtest: restart: cluster is stopped")
	}
	if c.proc != nil {
		err := c.proc.stop()
		c.proc = nil
		if err != nil {
			return fmt.Errorf("pgtest: restart: %w", err)
		}
	}
	p, err := c.startServer(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: restart: %w", err)
	}
	c.proc = p
	return nil
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// SocketDir is the directory of the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.dir }

// Dir is the cluster's temporary directory: the data directory (data/), the
// Unix socket and the server log (postgres.log) are in it.
func (c *Cluster) Dir() string { return c.dir }

// URL is the libpq URL of database dbname as the superuser "postgres" over
// TCP, e.g. postgres://postgres@127.0.0.1:PORT/DB?sslmode=disable. It
// includes Options.Password when one was set.
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	if c.password != "" {
		u.User = url.UserPassword("postgres", c.password)
	}
	return u.String()
}

// WriteHBA replaces the lines of pg_hba.conf. Call Reload to apply them.
func (c *Cluster) WriteHBA(lines []string) error {
	if err := checkConfLines(lines); err != nil {
		return fmt.Errorf("pgtest: pg_hba.conf: %w", err)
	}
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	if err := os.WriteFile(filepath.Join(c.dataDir(), "pg_hba.conf"), b, 0o600); err != nil {
		return fmt.Errorf("pgtest: write pg_hba.conf: %w", err)
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }
