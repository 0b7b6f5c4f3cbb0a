package runner_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// newRunner is the runner of e.once, with an owner when one is given.
func (e *env) newRunner(owner *state.RunnerInfo) *runner.Runner {
	e.t.Helper()
	w, err := parquet.Open(filepath.Join(e.dir, "warehouse"))
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.now
	return runner.New(runner.Options{
		Config: e.cfg, Backend: e.local, Status: e.local, Warehouse: w,
		Concurrency: 2, BatchRows: 7, Now: func() time.Time { return now },
		Retry: runner.RetryPolicy{Attempts: 2, Base: time.Millisecond}, Owner: owner,
	})
}

// TestSyncForcesNamedTables: Sync runs the tables it names whether or not
// they are due, only those, and refuses addresses it cannot sync before
// running anything.
func TestSyncForcesNamedTables(t *testing.T) {
	e := newEnv(t)
	e.apply(func(t *state.Table) { t.Enabled = t.Name != "log" })
	if failed := e.once(); len(failed) > 0 {
		t.Fatalf("failed: %v", failed)
	}
	e.exec(`INSERT INTO items VALUES (101, 'new', 1, '2027-01-01')`)
	e.exec(`INSERT INTO "Mixed Case" VALUES (3, 'three')`)
	e.now = e.now.Add(time.Minute)

	r := e.newRunner(nil)
	failed, err := r.Sync(e.ctx, []string{"postgres.db/items"})
	if err != nil || len(failed) > 0 {
		t.Fatalf("Sync: %v, failed %v", failed, err)
	}
	if ts := e.status("postgres.db/items"); ts.RowsSynced != 101 {
		t.Errorf("items after sync: %+v", ts)
	}
	if ts := e.status("postgres.db/Mixed Case"); ts.RowsSynced != 2 {
		t.Errorf("a table that was not named was synced: %+v", ts)
	}
	var ran []string
	for _, o := range r.Outcomes() {
		if o.Ran {
			ran = append(ran, o.Address)
		}
	}
	if diff := cmp.Diff([]string{"postgres.db/items"}, ran); diff != "" {
		t.Errorf("ran (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"postgres.db/nope"}, "postgres.db/nope is not an applied table"},
		{[]string{"postgres.db/Mixed Case", "postgres.db/log"}, "postgres.db/log is disabled"},
	} {
		before := e.status("postgres.db/Mixed Case").LastSyncAt
		_, err := e.newRunner(nil).Sync(e.ctx, tt.addrs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Sync(%q): %v, want %q", tt.addrs, err, tt.want)
		}
		if !e.status("postgres.db/Mixed Case").LastSyncAt.Equal(before) {
			t.Errorf("Sync(%q) synced although it was refused", tt.addrs)
		}
	}
}

// TestInterruptedSyncIsRecoveredAtStart: a running record left by a
// runner that is gone becomes failed (interrupted) when a runner with an
// owner starts, and the interrupted attempt does not push the next sync a
// whole interval away as a failed one does.
func TestInterruptedSyncIsRecoveredAtStart(t *testing.T) {
	e := newEnv(t)
	start := e.now
	e.once() // frequency 1h: next at start+1h
	gone := state.NewRunnerInfo("run")
	ts := e.status("postgres.db/items")
	ts.State, ts.Owner, ts.LastAttemptAt = state.StateRunning, &gone, start.Add(50*time.Minute)
	if err := e.local.PutTableStatus(e.ctx, ts); err != nil {
		t.Fatal(err)
	}
	e.exec(`INSERT INTO items VALUES (101, 'new', 1, '2027-01-01')`)

	me := state.NewRunnerInfo("run -once")
	e.now = start.Add(55 * time.Minute)
	if failed, err := e.newRunner(&me).Once(e.ctx); err != nil || len(failed) > 0 {
		t.Fatalf("Once: %v, %v", failed, err)
	}
	got := e.status("postgres.db/items")
	if got.State != state.StateFailed || !strings.HasPrefix(got.LastError, "interrupted:") || got.Owner != nil || got.RowsSynced != 100 {
		t.Errorf("interrupted record = %+v", got)
	}
	// Due an hour after the last completed sync, not after the attempt.
	e.now = start.Add(65 * time.Minute)
	if failed, err := e.newRunner(&me).Once(e.ctx); err != nil || len(failed) > 0 {
		t.Fatalf("Once: %v, %v", failed, err)
	}
	if got := e.status("postgres.db/items"); got.State != state.StateCompleted || got.RowsSynced != 101 || got.Owner != nil {
		t.Errorf("after the next run: %+v", got)
	}
}
