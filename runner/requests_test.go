package runner_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// requestRunner is a runner that takes sync requests from the local
// store, on the real clock.
func (e *env) requestRunner(owner *state.RunnerInfo) *runner.Runner {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	return runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		Concurrency: 2, BatchRows: 7, Retry: runner.RetryPolicy{Attempts: 1},
		Owner: owner, Requests: e.local,
	})
}

// waitRequest waits for a request to be answered.
func (e *env) waitRequest(id string) *state.SyncRequest {
	e.t.Helper()
	return runner.WaitRequest(e.t, e.ctx, e.local, id)
}

func results(req *state.SyncRequest) map[string]state.TableStatus {
	out := map[string]state.TableStatus{}
	for _, r := range req.Results {
		out[r.Address] = r
	}
	return out
}

// TestDaemonAnswersSyncRequests: a daemon syncs the tables of a request
// now although they are not due, answers it with each table's outcome
// (an unknown table fails, named), leaves the other tables alone, runs a
// request left by a runner that stopped, expires one nobody took for a
// day, and removes answers nobody collected.
func TestDaemonAnswersSyncRequests(t *testing.T) {
	e := newEnv(t)
	e.now = time.Now().UTC()
	if failed := e.once(); len(failed) > 0 {
		t.Fatalf("failed: %v", failed)
	}
	logBefore := e.status("postgres.db/log").LastSyncAt
	e.exec(`INSERT INTO items VALUES (101, 'new', 1, '2027-01-01'); INSERT INTO "Mixed Case" VALUES (3, 'three')`)

	old := time.Now().UTC().Add(-25 * time.Hour)
	expired := state.NewSyncRequest([]string{"postgres.db/log"})
	expired.RequestedAt = old
	collected := state.NewSyncRequest([]string{"postgres.db/log"})
	collected.RequestedAt, collected.DoneAt = old, old
	orphan := state.NewSyncRequest([]string{"postgres.db/Mixed Case"})
	orphan.Runner, orphan.TakenAt = "a runner that was killed", time.Now().UTC()
	for _, req := range []*state.SyncRequest{expired, collected, orphan} {
		if err := e.local.PutSyncRequest(e.ctx, req); err != nil {
			t.Fatal(err)
		}
	}

	me := state.NewRunnerInfo("run")
	r := e.requestRunner(&me)
	defer runner.StartRun(t, e.ctx, r)()

	req := runner.PutSyncRequest(t, e.ctx, e.local, "postgres.db/items", "postgres.db/nope")
	got := results(e.waitRequest(req.ID))
	if ts := got["postgres.db/items"]; ts.State != state.StateCompleted || ts.RowsSynced != 101 {
		t.Errorf("items: %+v", ts)
	}
	if ts := got["postgres.db/nope"]; ts.State != state.StateFailed || !strings.Contains(ts.LastError, "not an applied table") {
		t.Errorf("nope: %+v", ts)
	}
	answered := e.waitRequest(req.ID)
	if answered.Runner != me.ID || answered.TakenAt.IsZero() || len(answered.Results) != 2 || answered.Results[0].Address != "postgres.db/items" {
		t.Errorf("answer: %+v", answered)
	}
	if ts := results(e.waitRequest(orphan.ID))["postgres.db/Mixed Case"]; ts.State != state.StateCompleted || ts.RowsSynced != 3 {
		t.Errorf("request of a runner that stopped: %+v", ts)
	}
	if ex := e.waitRequest(expired.ID); !strings.HasPrefix(ex.Error, "expired: no runner took it within") || len(ex.Results) != 0 {
		t.Errorf("expired request: %+v", ex)
	}
	if c, _ := e.local.SyncRequest(e.ctx, collected.ID); c != nil {
		t.Errorf("an answer nobody collected for a day is kept: %+v", c)
	}
	if ts := e.status("postgres.db/log"); !ts.LastSyncAt.Equal(logBefore) {
		t.Errorf("a table no request named was synced: %+v", ts)
	}
}

// TestOnceTakesPendingRequests: run -once (and sync) run the tables of
// requests no daemon answered, with the due ones, and answer them.
func TestOnceTakesPendingRequests(t *testing.T) {
	e := newEnv(t)
	e.now = time.Now().UTC()
	e.once()
	e.exec(`INSERT INTO "Mixed Case" VALUES (3, 'three')`)
	req := runner.PutSyncRequest(t, e.ctx, e.local, "postgres.db/Mixed Case")
	me := state.NewRunnerInfo("run -once")
	if failed, err := e.requestRunner(&me).Once(e.ctx); err != nil || len(failed) > 0 {
		t.Fatalf("Once: %v, %v", failed, err)
	}
	if ts := results(e.waitRequest(req.ID))["postgres.db/Mixed Case"]; ts.State != state.StateCompleted || ts.RowsSynced != 3 {
		t.Errorf("answer: %+v", ts)
	}
	if ts := e.status("postgres.db/items"); ts.LastRunRows != 100 {
		t.Errorf("a table that was neither due nor requested was synced: %+v", ts)
	}
}

// TestRequestWaitsForASyncStartedAfterIt: a table whose sync started
// before the request is synced again once that sync ends, and the
// request is answered by the second sync, which sees the rows committed
// before the request.
func TestRequestWaitsForASyncStartedAfterIt(t *testing.T) {
	e := newEnv(t)
	// Every read of "Mixed Case" takes a second.
	e.exec(`ALTER TABLE "Mixed Case" RENAME TO "Mixed Case_t";
		CREATE VIEW "Mixed Case" AS SELECT "Id", "Value" FROM "Mixed Case_t", pg_sleep(1)`)
	me := state.NewRunnerInfo("run")
	r := e.requestRunner(&me)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Its read is under way: the rows inserted now are not in it.
		var reading bool
		if err := e.conn.QueryRow(e.ctx, `SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()`).Scan(&reading); err != nil {
			t.Fatal(err)
		}
		if reading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never started Mixed Case")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.exec(`INSERT INTO "Mixed Case_t" VALUES (3, 'three')`)
	req := runner.PutSyncRequest(t, e.ctx, e.local, "postgres.db/Mixed Case")
	ts := results(e.waitRequest(req.ID))["postgres.db/Mixed Case"]
	if ts.State != state.StateCompleted || ts.RowsSynced != 3 {
		t.Errorf("answered by the sync that started before the request: %+v", ts)
	}
}
