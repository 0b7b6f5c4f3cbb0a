package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// helperEnv makes the test binary a helper process for TestWatchdog; its
// value says how the helper dies.
const helperEnv = "PGTEST_HELPER_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A helper starts its own cluster; it must not start a shared one.
		os.Exit(m.Run())
	}
	Main(m)
}

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func show(t *testing.T, conn *pgx.Conn, names ...string) map[string]string {
	t.Helper()
	got := make(map[string]string, len(names))
	for _, n := range names {
		var v string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", n).Scan(&v); err != nil {
			t.Fatalf("current_setting(%q): %v", n, err)
		}
		got[n] = v
	}
	return got
}

func TestStartRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{
			name: "missing binaries",
			opts: Options{BinDir: "/nonexistent/pg/bin"},
			want: "initdb not found at /nonexistent/pg/bin/initdb; run `make test` (which installs postgresql-15) or `apt-get install postgresql-15`",
		},
		{
			name: "setting name",
			opts: Options{Settings: map[string]string{"work_mem = 1\nfsync": "on"}},
			want: `pgtest: Options.Settings: invalid parameter name "work_mem = 1\nfsync"`,
		},
		{
			name: "setting value",
			opts: Options{Settings: map[string]string{"work_mem": "1MB\nfsync = on"}},
			want: `pgtest: Options.Settings["work_mem"]: "1MB\nfsync = on" contains a line break or NUL`,
		},
		{
			name: "port is pgtest's",
			opts: Options{Settings: map[string]string{"port": "5432"}},
			want: "pgtest: Options.Settings: port is chosen by pgtest and cannot be set",
		},
		{
			name: "password",
			opts: Options{Password: "secret\nmore"},
			want: "pgtest: Options.Password contains a line break or NUL",
		},
		{
			name: "hba line",
			opts: Options{HBA: []string{"local all all trust\nhost all all 0.0.0.0/0 trust"}},
			want: `pgtest: Options.HBA: "local all all trust\nhost all all 0.0.0.0/0 trust" contains a line break or NUL`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Start(t.Context(), tt.opts)
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStartFailureShowsServerLog(t *testing.T) {
	c, err := Start(t.Context(), Options{Settings: map[string]string{"wal_level": "bogus"}})
	if err == nil {
		c.Stop()
		t.Fatal("Start succeeded with wal_level = bogus")
	}
	for _, want := range []string{"end of the server log", `invalid value for parameter "wal_level": "bogus"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

// TestStartRetriesTakenPort checks that a port taken between its choice and
// the server's bind costs a retry on another port, not a failure.
func TestStartRetriesTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func() (int, error) {
		calls++
		if calls == 1 {
			return takenPort, nil
		}
		return freePort()
	}
	t.Cleanup(func() { pickPort = freePort })
	c := startCluster(t, Options{})
	if calls != 2 || c.Port() == takenPort {
		t.Errorf("port %d after %d choices, want a second choice other than %d", c.Port(), calls, takenPort)
	}
	if err := c.Exec(t.Context(), "postgres", "SELECT 1"); err != nil {
		t.Error(err)
	}
}

func TestCluster(t *testing.T) {
	c := startCluster(t, Options{Settings: map[string]string{"work_mem": "8MB"}})
	conn := connect(t, c.URL("postgres"))
	postmaster := c.proc.process.Pid

	t.Run("settings", func(t *testing.T) {
		want := map[string]string{
			"wal_level":               "logical",
			"max_replication_slots":   "10",
			"max_wal_senders":         "10",
			"fsync":                   "off",
			"listen_addresses":        "127.0.0.1",
			"port":                    strconv.Itoa(c.Port()),
			"unix_socket_directories": c.SocketDir(),
			"work_mem":                "8MB",
			"server_encoding":         "UTF8",
			"server_version_num":      "",
		}
		got := show(t, conn, mapKeys(want)...)
		if !strings.HasPrefix(got["server_version_num"], "15") {
			t.Errorf("server_version_num = %q, want PostgreSQL 15", got["server_version_num"])
		}
		got["server_version_num"] = ""
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("settings (-want +got):\n%s", diff)
		}
	})

	t.Run("unix socket", func(t *testing.T) {
		sock := connect(t, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", c.SocketDir(), c.Port()))
		var one int
		if err := sock.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("exec and databases", func(t *testing.T) {
		url, err := c.CreateDatabase(t.Context(), "Mixed Case")
		if err != nil {
			t.Fatal(err)
		}
		if want := c.URL("Mixed Case"); url != want {
			t.Errorf("CreateDatabase URL = %q, want %q", url, want)
		}
		if err := c.Exec(t.Context(), "Mixed Case", "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := connect(t, url).QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("count = %d, want 2", n)
		}
		if err := c.DropDatabase(t.Context(), "Mixed Case"); err != nil {
			t.Fatal(err)
		}
		if databaseExists(t, conn, "Mixed Case") {
			t.Error("database still exists after DropDatabase")
		}
		if err := c.DropDatabase(t.Context(), "Mixed Case"); err != nil {
			t.Errorf("DropDatabase of a missing database: %v", err)
		}
		err = c.Exec(t.Context(), "postgres", "SELECT * FROM no_such_table")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
			t.Errorf("Exec of a bad statement: %v, want undefined_table", err)
		}
	})

	t.Run("reload", func(t *testing.T) {
		if err := c.Exec(t.Context(), "postgres", "ALTER SYSTEM SET work_mem = '16MB'"); err != nil {
			t.Fatal(err)
		}
		if err := c.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := show(t, connect(t, c.URL("postgres")), "work_mem")
		if diff := cmp.Diff(map[string]string{"work_mem": "16MB"}, got); diff != "" {
			t.Errorf("after Reload (-want +got):\n%s", diff)
		}
	})

	t.Run("restart", func(t *testing.T) {
		port := c.Port()
		if err := c.Exec(t.Context(), "postgres", "ALTER SYSTEM SET max_connections = 50"); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		if c.Port() != port {
			t.Errorf("port changed from %d to %d", port, c.Port())
		}
		got := show(t, connect(t, c.URL("postgres")), "max_connections")
		if diff := cmp.Diff(map[string]string{"max_connections": "50"}, got); diff != "" {
			t.Errorf("after Restart (-want +got):\n%s", diff)
		}
		if processAlive(postmaster) {
			t.Errorf("old postmaster %d still running after Restart", postmaster)
		}
		postmaster = c.proc.process.Pid
	})

	t.Run("stop", func(t *testing.T) {
		pids := append(childPIDs(postmaster), postmaster)
		if err := c.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		assertGone(t, c.Dir(), pids, 0)
		if err := c.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if err := c.Restart(t.Context()); err == nil {
			t.Error("Restart after Stop succeeded")
		}
	})
}

func TestPasswordAndHBA(t *testing.T) {
	const password = `s3cret 'pw' \ @:/`
	c := startCluster(t, Options{
		Password: password,
		HBA: []string{
			"local all all trust",
			"host  all all 127.0.0.1/32 scram-sha-256",
		},
	})
	wrong := strings.Replace(c.URL("postgres"), "s3cret", "wrong", 1)
	if wrong == c.URL("postgres") {
		t.Fatalf("URL %q does not carry the password", c.URL("postgres"))
	}
	ping := func(url string) error {
		conn, err := pgconn.Connect(t.Context(), url)
		if err == nil {
			conn.Close(t.Context())
		}
		return err
	}
	if err := ping(c.URL("postgres")); err != nil {
		t.Errorf("right password: %v", err)
	}
	var pgErr *pgconn.PgError
	if err := ping(wrong); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("wrong password: %v, want invalid_password", err)
	}
	if err := c.WriteHBA(defaultHBA); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ping(wrong); err != nil {
		t.Errorf("wrong password under trust: %v", err)
	}
}

// TestWatchdog checks that a cluster does not outlive the process that
// started it, however that process dies.
func TestWatchdog(t *testing.T) {
	tests := []struct {
		mode string // how the helper process dies
		kill bool   // whether the test kills it
	}{
		{mode: "panic"},
		{mode: "sigkill", kill: true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), helperEnv+"="+tt.mode)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			// Were the server or the watchdog to hold the helper's stdout,
			// Wait would hang; WaitDelay turns that into an error.
			cmd.WaitDelay = 10 * time.Second
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var dir string
			var pids []int
			sc := bufio.NewScanner(out)
			for (dir == "" || pids == nil) && sc.Scan() {
				line := sc.Text()
				if d, ok := strings.CutPrefix(line, "DIR="); ok {
					dir = d
				}
				if p, ok := strings.CutPrefix(line, "PIDS="); ok {
					for _, f := range strings.Fields(p) {
						n, err := strconv.Atoi(f)
						if err != nil {
							t.Fatalf("helper printed %q", line)
						}
						pids = append(pids, n)
					}
				}
			}
			if dir == "" || len(pids) == 0 {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("helper did not report its cluster; stderr:\n%s", stderr.String())
			}
			if tt.kill {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
			err = cmd.Wait()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("helper exit: %v, want a failure; stderr:\n%s", err, stderr.String())
			}
			if !tt.kill && !strings.Contains(stderr.String(), "helper panics") {
				t.Errorf("helper did not panic; stderr:\n%s", stderr.String())
			}
			assertGone(t, dir, pids, 10*time.Second)
		})
	}
}

// TestHelperProcess is the helper process of TestWatchdog: it starts a
// cluster, reports it and dies without stopping it. In a normal test run
// it does nothing.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	c, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	postmaster := c.proc.process.Pid
	pids := append(childPIDs(postmaster), postmaster)
	fmt.Printf("DIR=%s\nPIDS=%s\n", c.Dir(), strings.Trim(fmt.Sprint(pids), "[]"))
	if mode == "panic" {
		panic("helper panics with a running cluster")
	}
	time.Sleep(time.Minute) // until killed
}

// TestWatchdogAlone checks the watchdog without the help of Pdeathsig:
// closing its pipe, as this process's death would, stops the server and
// removes the directory.
func TestWatchdogAlone(t *testing.T) {
	c := startCluster(t, Options{})
	postmaster := c.proc.process.Pid
	pids := append(childPIDs(postmaster), postmaster)
	if err := c.watchdog.pipe.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, c.Dir(), pids, 10*time.Second)
}

func TestNewDB(t *testing.T) {
	admin := connect(t, adminURL)
	var names []string
	var urls []string
	for _, sub := range []string{"first", "second"} {
		t.Run(sub, func(t *testing.T) {
			url := NewDB(t)
			conn := connect(t, url)
			var name string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			var tables int
			if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'mine'").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("fresh database %s already has table mine", name)
			}
			if _, err := conn.Exec(t.Context(), "CREATE TABLE mine (x int)"); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
			urls = append(urls, url)
		})
	}
	if len(names) != 2 || names[0] == names[1] || urls[0] == urls[1] {
		t.Fatalf("NewDB gave databases %q at %q, want two distinct ones", names, urls)
	}
	for _, n := range names {
		if databaseExists(t, admin, n) {
			t.Errorf("database %s still exists after its test", n)
		}
	}
}

// TestNewDBDropsReplicationSlots checks that a database with a replication
// slot in use is dropped all the same.
func TestNewDBDropsReplicationSlots(t *testing.T) {
	admin := connect(t, adminURL)
	var name string
	var recv *exec.Cmd
	t.Run("slot in use", func(t *testing.T) {
		url := NewDB(t)
		conn := connect(t, url)
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), "SELECT pg_create_logical_replication_slot('held', 'test_decoding')"); err != nil {
			t.Fatal(err)
		}
		recv = exec.Command(filepath.Join(testBinDir(), "pg_recvlogical"), "-d", url, "-S", "held", "--start", "--no-loop", "-f", "/dev/null")
		if err := recv.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "slot to become active", func() bool {
			var active bool
			err := conn.QueryRow(t.Context(), "SELECT active FROM pg_replication_slots WHERE slot_name = 'held'").Scan(&active)
			return err == nil && active
		})
	})
	if databaseExists(t, admin, name) {
		t.Errorf("database %s still exists after its test", name)
	}
	var slots int
	if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'held'").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("%d slots named held remain", slots)
	}
	if recv != nil {
		// Its walsender was terminated and --no-loop makes it give up.
		done := make(chan error, 1)
		go func() { done <- recv.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			recv.Process.Kill()
			t.Error("pg_recvlogical still running after its slot was dropped")
		}
	}
}

func TestDBName(t *testing.T) {
	tests := []struct {
		test string
		want string
	}{
		{"TestX", "t_testx_42_7"},
		{"TestNewDB/first_case", "t_testnewdb_first_case_42_7"},
		{"TestÜber Größe", "t_test_ber_gr__e_42_7"},
		{strings.Repeat("TestLong", 20), "t_" + strings.Repeat("testlong", 20)[:56] + "_42_7"},
	}
	for _, tt := range tests {
		got := dbName(tt.test, 42, 7)
		if got != tt.want {
			t.Errorf("dbName(%q) = %q, want %q", tt.test, got, tt.want)
		}
		if len(got) > 63 {
			t.Errorf("dbName(%q) is %d bytes, over PostgreSQL's 63", tt.test, len(got))
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		password, db, want string
	}{
		{"", "shop", "postgres://postgres@127.0.0.1:5432/shop?sslmode=disable"},
		{"p@ss:w/rd", "shop", "postgres://postgres:p%40ss%3Aw%2Frd@127.0.0.1:5432/shop?sslmode=disable"},
		{"", "Mixed Case", "postgres://postgres@127.0.0.1:5432/Mixed%20Case?sslmode=disable"},
	}
	for _, tt := range tests {
		c := &Cluster{port: 5432, password: tt.password}
		if got := c.URL(tt.db); got != tt.want {
			t.Errorf("URL(%q) with password %q = %q, want %q", tt.db, tt.password, got, tt.want)
		}
	}
}

// assertGone waits up to patience for dir to be removed and for none of pids
// to run, then fails the test for what remains.
func assertGone(t *testing.T, dir string, pids []int, patience time.Duration) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(patience)
	for {
		left = left[:0]
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			left = append(left, "directory "+dir)
		}
		for _, p := range pids {
			if processAlive(p) {
				left = append(left, "process "+strconv.Itoa(p))
			}
		}
		for _, p := range processesMentioning(dir) {
			left = append(left, "process "+strconv.Itoa(p)+" for "+dir)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("left behind after %s: %s", patience, strings.Join(left, ", "))
	}
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// childPIDs lists the children of ppid: a postmaster's backends and
// auxiliary processes.
func childPIDs(ppid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processesMentioning lists running processes whose command line mentions
// dir, as a postmaster's does (postgres -D DIR/data).
func processesMentioning(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), dir+"/") && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func databaseExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func waitFor(t *testing.T, patience time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", patience, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testBinDir is where the client binaries of the server under test are.
func testBinDir() string {
	if c := Shared(); c != nil {
		return c.binDir
	}
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d
	}
	return DefaultBinDir
}

func mapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
