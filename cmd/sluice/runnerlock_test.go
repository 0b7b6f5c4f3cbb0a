package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// startSluice starts sluice as a process of its own (this test binary,
// see TestMain), with its stderr in a file.
func startSluice(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "stderr")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, logPath
}

// TestOneRunnerPerState, for both state backends: while a `sluice run`
// process syncs, a second run, run -once or sync refuses to start, naming
// the lock and the first runner's pid; status shows the sync running.
// After a kill -9 of the runner, status shows the sync interrupted (not
// running), and the next runner takes the lock, records the interruption
// and syncs the table again.
func TestOneRunnerPerState(t *testing.T) {
	for _, backend := range []string{"local", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			s := newSyncShop(t)
			// No cdc table: a killed runner's replication connection keeps
			// the slot busy until the server notices, which is not the
			// point here.
			cfg := strings.Replace(syncConfig, "  table \"events\" {\n    sync = \"cdc\"\n  }\n", "", 1)
			if cfg == syncConfig {
				t.Fatal("no cdc table to remove")
			}
			lockName := filepath.Join(s.dir, ".sluice", "state.json.runner.lock")
			if backend == "postgres" {
				stateURL := pgtest.NewDB(t)
				cfg = "state {\n  backend = \"postgres\"\n  url     = \"" + stateURL + "\"\n}\n" + cfg
				lockName = "advisory lock"
			}
			s.write(cfg)
			s.must(0, "apply", "-auto-approve")
			// customers becomes a view that yields a row every 10ms: its
			// sync runs until the runner is killed.
			s.exec(`ALTER TABLE customers RENAME TO customers_t;
				CREATE VIEW customers AS SELECT g::bigint AS id, (SELECT 'x'::text FROM pg_sleep(0.01 + g * 0)) AS email FROM generate_series(1, 1000000) g`)
			daemon, logPath := startSluice(t, "-chdir="+s.dir, "-no-color", "run", "-listen=127.0.0.1:0")
			pid := strconv.Itoa(daemon.Process.Pid)
			waitStatus := func(what string, ok func(tableStatusJSON) bool) tableStatusJSON {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for {
					st := s.statusOf("postgres.shop/customers")
					if ok(st) {
						return st
					}
					if time.Now().After(deadline) {
						log, _ := os.ReadFile(logPath)
						t.Fatalf("customers never %s: %+v\nrunner's log:\n%s", what, st, log)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			waitStatus("running", func(st tableStatusJSON) bool { return st.State == "running" })

			// A second runner of any kind is refused at once.
			// A daemon that started anyway would stop after a while.
			runContext = func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Second)
			}
			defer func() { runContext = commandContext }()
			for _, args := range [][]string{{"run", "-listen=127.0.0.1:0"}, {"run", "-once"}, {"sync"}, {"sync", "postgres.shop/orders"}} {
				code, out, errOut := s.run(args...)
				if code != 1 {
					t.Errorf("%v while a runner runs: exit %d\n%s%s", args, code, out, errOut)
				}
				for _, want := range []string{"`sluice run` (pid " + pid + " on ", "is already running on this state", "runner lock (", lockName, "stop it first"} {
					if !strings.Contains(errOut, want) {
						t.Errorf("%v: the refusal lacks %q:\n%s", args, want, errOut)
					}
				}
			}
			if st := s.statusOf("postgres.shop/customers"); st.State != "running" {
				t.Errorf("while the runner syncs, status = %+v", st)
			}

			// kill -9: the sync is not running any more.
			if err := daemon.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			daemon.Wait()
			st := waitStatus("interrupted", func(st tableStatusJSON) bool { return st.State != "running" })
			if st.State != "failed" || !strings.HasPrefix(st.LastError, "interrupted: the runner stopped during this sync") {
				t.Errorf("after kill -9, status = %+v", st)
			}
			out := s.must(0, "status")
			if !strings.Contains(out, "postgres.shop/customers: interrupted:") {
				t.Errorf("status text:\n%s", out)
			}

			// The next runner records it and syncs the table again. (The
			// killed runner's query runs on at the server until it fails
			// to send a row; it holds the view.)
			s.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%customers%'`)
			s.exec(`DROP VIEW customers; ALTER TABLE customers_t RENAME TO customers; INSERT INTO customers VALUES (7, 'c@example.com')`)
			code, out, errOut := s.run("run", "-once")
			if code != 0 || !strings.Contains(errOut, "a sync was interrupted when its runner stopped") || !strings.HasPrefix(line(out, "postgres.shop/customers"), "postgres.shop/customers completed 1 rows") {
				t.Errorf("run -once after the kill: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}
