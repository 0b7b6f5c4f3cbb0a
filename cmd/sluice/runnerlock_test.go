package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
// process syncs, a second run or run -once refuses to start, naming the
// lock and the first runner's pid; status shows the sync running. sync
// hands its tables to the daemon, which syncs them now (new rows reach
// the warehouse), and prints its answer: exit 0, or 1 for a table that
// failed; a table whose sync runs since before the request is not
// answered by that sync, and sync gives up waiting at -timeout, saying
// the daemon keeps the request. After a kill -9 of the runner, status
// shows the sync interrupted (not running); a run -once that takes the
// lock makes sync refuse (it is no daemon); the next runner records the
// interruption and syncs the table again.
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
				// One runner (fleet = false): the runner lock of the
				// postgres backend, which a fleet does without.
				cfg = "state {\n  backend = \"postgres\"\n  url     = \"" + stateURL + "\"\n}\nrunner {\n  fleet = false\n}\n" + cfg
				lockName = "advisory lock"
			}
			s.write(cfg)
			s.must(0, "apply", "-auto-approve")
			// customers becomes a view that yields a row every 10ms: its
			// sync runs until the runner is killed.
			s.exec(`ALTER TABLE customers RENAME TO customers_t;
				CREATE VIEW customers AS SELECT g::bigint AS id, (SELECT 'x'::text FROM pg_sleep(0.01 + g * 0)) AS email FROM generate_series(1, 1000000) g`)
			daemon, logPath := startSluice(t, "-chdir="+s.dir, "-no-color", "run", "-id=daemon-1", "-listen=127.0.0.1:0")
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
			for _, args := range [][]string{{"run", "-listen=127.0.0.1:0"}, {"run", "-once"}} {
				code, out, errOut := s.run(args...)
				if code != 1 {
					t.Errorf("%v while a runner runs: exit %d\n%s%s", args, code, out, errOut)
				}
				for _, want := range []string{"runner daemon-1 (`sluice run`, pid " + pid + " on ", "is already running on this state", "runner lock (", lockName, "stop it first"} {
					if !strings.Contains(errOut, want) {
						t.Errorf("%v: the refusal lacks %q:\n%s", args, want, errOut)
					}
				}
			}
			if st := s.statusOf("postgres.shop/customers"); st.State != "running" || st.Runner != "daemon-1" {
				t.Errorf("while the runner syncs, status = %+v", st)
			}
			if log, _ := os.ReadFile(logPath); !strings.Contains(string(log), "runner=daemon-1") {
				t.Errorf("the daemon's log does not name it:\n%s", log)
			}

			// sync hands the tables to the daemon, which syncs them now
			// although they are not due (frequency 1h).
			waitTable := func(addr string) tableStatusJSON {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for {
					st := s.statusOf(addr)
					if st.State == "completed" {
						return st
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s never completed: %+v", addr, st)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			before := waitTable("postgres.shop/orders").RowsSynced
			s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (1001, 'now', now()), (1002, 'now', now())`)
			code, out, errOut := s.run("sync", "postgres.shop/orders")
			want := fmt.Sprintf("postgres.shop/orders completed %d rows", before+2)
			if code != 0 || !strings.HasPrefix(line(out, "postgres.shop/orders"), want) || !strings.Contains(out, "All 1 sync(s) completed") ||
				!strings.Contains(errOut, "runner daemon-1 (`sluice run`, pid "+pid+" on ") || !strings.Contains(errOut, "is running on this state: it syncs the 1 table now") {
				t.Errorf("sync while a daemon runs: exit %d, want a line %q\n%s%s", code, want, out, errOut)
			}
			if st := s.statusOf("postgres.shop/orders"); st.RowsSynced != before+2 || st.Runner != "daemon-1" {
				t.Errorf("after the daemon synced orders: %+v", st)
			}
			// A table that fails: exit 1, named.
			s.exec(`ALTER TABLE orders RENAME TO orders_away`)
			code, out, errOut = s.run("sync", "postgres.shop/orders")
			if code != 1 || !strings.Contains(out, "1 sync(s) failed: postgres.shop/orders") || !strings.HasPrefix(line(out, "postgres.shop/orders"), "postgres.shop/orders failed") {
				t.Errorf("sync of a failing table while a daemon runs: exit %d\n%s%s", code, out, errOut)
			}
			s.exec(`ALTER TABLE orders_away RENAME TO orders`)
			// customers' sync started before the request: it does not
			// answer it, and sync stops waiting at -timeout.
			code, out, errOut = s.run("sync", "-timeout=1s", "postgres.shop/customers")
			if code != 1 || out != "" || !strings.Contains(errOut, "has not answered sync request") || !strings.Contains(errOut, "It still has it and syncs the tables") {
				t.Errorf("sync -timeout=1s of a table that runs on: exit %d\n%s%s", code, out, errOut)
			}
			// Ctrl-C stops waiting and leaves the request to the daemon.
			waiter, waiterLog := startSluice(t, "-chdir="+s.dir, "-no-color", "sync", "postgres.shop/customers")
			waitLog := func(path, want string) string {
				t.Helper()
				deadline := time.Now().Add(20 * time.Second)
				for {
					data, _ := os.ReadFile(path)
					if strings.Contains(string(data), want) {
						return string(data)
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s never says %q:\n%s", path, want, data)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			waitLog(waiterLog, "Waiting for it")
			waiter.Process.Signal(os.Interrupt)
			err := waiter.Wait()
			text := waitLog(waiterLog, "Interrupted: stopped waiting.")
			if code := waiter.ProcessState.ExitCode(); code != 1 || !strings.Contains(text, "runner daemon-1 (`sluice run`, pid "+pid+" on ") || !strings.Contains(text, "keeps sync request") {
				t.Errorf("sync interrupted while waiting: exit %d (%v)\n%s", code, err, text)
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
			out = s.must(0, "status")
			if !strings.Contains(out, "postgres.shop/customers: interrupted:") {
				t.Errorf("status text:\n%s", out)
			}

			// A runner that is no daemon (run -once, on the endless view
			// again) makes sync refuse: it would not answer.
			once, _ := startSluice(t, "-chdir="+s.dir, "-no-color", "run", "-once")
			waitStatus("running again", func(st tableStatusJSON) bool { return st.State == "running" })
			code, out, errOut = s.run("sync", "postgres.shop/orders")
			host, _ := os.Hostname()
			onceID := fmt.Sprintf("%s-%d", host, once.Process.Pid) // the default -id
			if code != 1 || !strings.Contains(errOut, "runner "+onceID+" (`sluice run -once`, pid "+strconv.Itoa(once.Process.Pid)+" on ") || !strings.Contains(errOut, "is already running on this state") {
				t.Errorf("sync while run -once runs: exit %d\n%s%s", code, out, errOut)
			}
			once.Process.Kill()
			once.Wait()
			waitStatus("interrupted again", func(st tableStatusJSON) bool { return st.State != "running" })

			// The next runner records it and syncs the table again. (The
			// killed runner's query runs on at the server until it fails
			// to send a row; it holds the view.)
			s.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%customers%'`)
			s.exec(`DROP VIEW customers; ALTER TABLE customers_t RENAME TO customers; INSERT INTO customers VALUES (7, 'c@example.com')`)
			// Under the killed runner's name: a runner of the same name
			// is another runner all the same.
			code, out, errOut = s.run("run", "-once", "-id="+onceID)
			if code != 0 || !strings.Contains(errOut, "a sync was interrupted when its runner stopped") || !strings.HasPrefix(line(out, "postgres.shop/customers"), "postgres.shop/customers completed 1 rows") {
				t.Errorf("run -once after the kill: exit %d\n%s%s", code, out, errOut)
			}
			if st := s.statusOf("postgres.shop/customers"); st.Runner != onceID {
				t.Errorf("status after run -once -id=%s: %+v", onceID, st)
			}
			if code, _, errOut := s.run("run", "-once", "-id=two words"); code != 1 || !strings.Contains(errOut, "-id must be 1 to 128 letters, digits") {
				t.Errorf("run -id with a space: exit %d\n%s", code, errOut)
			}
		})
	}
}

// TestSyncWhenDaemonStops: a daemon that stops (kill -9) before answering
// a sync does not leave it waiting: with the lock free, sync takes it and
// syncs the tables itself, and the request is gone afterwards.
func TestSyncWhenDaemonStops(t *testing.T) {
	s := newSyncShop(t)
	cfg := strings.Replace(syncConfig, "  table \"events\" {\n    sync = \"cdc\"\n  }\n", "", 1)
	s.write(cfg)
	s.must(0, "apply", "-auto-approve")
	daemon, logPath := startSluice(t, "-chdir="+s.dir, "-no-color", "run", "-listen=127.0.0.1:0")
	deadline := time.Now().Add(30 * time.Second)
	for s.statusOf("postgres.shop/orders").State != "completed" {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("the daemon never synced orders:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Stopped, it holds the lock but takes no request.
	if err := daemon.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s.exec(`INSERT INTO orders (id, status, updated_at) VALUES (1001, 'now', now())`)
	type res struct {
		code        int
		out, errOut string
	}
	done := make(chan res, 1)
	go func() {
		code, out, errOut := s.run("sync", "postgres.shop/orders")
		done <- res{code, out, errOut}
	}()
	time.Sleep(300 * time.Millisecond)
	daemon.Process.Kill()
	daemon.Wait()
	var r res
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("sync still waits for a daemon that was killed")
	}
	if r.code != 0 || !strings.HasPrefix(line(r.out, "postgres.shop/orders"), "postgres.shop/orders completed 1 rows") ||
		!strings.Contains(r.errOut, "is running on this state: it syncs the 1 table now") || !strings.Contains(r.errOut, "stopped before answering; syncing here.") {
		t.Errorf("sync whose daemon was killed: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, ".sluice", "state.sync-requests"))
	if len(entries) != 0 {
		t.Errorf("requests left behind: %v", entries)
	}
}
