package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/state"
)

// TestStatusRecorder: the records a sync leaves, by how it ended, as
// `sluice status` reads them back: the owner while running, the runner
// always, rows and warnings of a completed sync, the error of a failed
// one, the next sync.
func TestStatusRecorder(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	end := start.Add(time.Minute)
	next := end.Add(time.Hour)
	owner := &state.RunnerInfo{ID: "r1", Host: "h", PID: 1}
	done := result{rowsRead: 7, tableRows: 9, warnings: 2, full: true}
	for _, tc := range []struct {
		name string
		err  error
		want state.TableStatus
	}{
		{"completed", nil, state.TableStatus{State: state.StateCompleted, LastSyncAt: end, LastFullSyncAt: end,
			RowsSynced: 9, LastRunRows: 7, Warnings: 2, LastAttemptAt: start}},
		{"failed", errors.New("boom \n"), state.TableStatus{State: state.StateFailed, LastError: "boom", LastAttemptAt: start}},
		{"not in this build", fmt.Errorf("xmin: %w", errNotYet), state.TableStatus{State: state.StatePending, LastError: "xmin: not available yet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			local := state.NewLocal(filepath.Join(t.TempDir(), "state.json"))
			r := New(Options{Config: &config.Config{}, Backend: local, Status: local, Owner: owner})
			j := job{table: &state.Table{WarehouseTable: "public_t", Sync: "incremental"}, addr: "postgres.app/t"}
			r.recorder.running(ctx, j, start)
			st, err := local.ReadStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Tables[j.addr]; got.State != state.StateRunning || got.Owner == nil || got.Owner.ID != "r1" || got.Runner != "r1" {
				t.Errorf("running record: %+v", got)
			}
			r.recorder.ended(ctx, j, end, done, tc.err, next)
			if st, err = local.ReadStatus(ctx); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Address, want.WarehouseTable, want.Sync, want.Runner, want.NextSyncAt = j.addr, "public_t", "incremental", "r1", next
			if diff := cmp.Diff(want, *st.Tables[j.addr], cmpopts.EquateApproxTime(0)); diff != "" {
				t.Errorf("ended record (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatusRecorderStream: the records of a streaming (cdc) table: a
// committed snapshot is written at once, a commit of changes at most every
// statusEvery unless it has warnings, flush writes what was held back, and
// a failure records the attempt and the error.
func TestStatusRecorderStream(t *testing.T) {
	ctx := context.Background()
	local := state.NewLocal(filepath.Join(t.TempDir(), "state.json"))
	r := New(Options{Config: &config.Config{}, Backend: local, Status: local, Owner: &state.RunnerInfo{ID: "r1"}})
	j := job{table: &state.Table{WarehouseTable: "pg_t", Sync: "cdc"}, addr: "postgres.db/t"}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := state.TableStatus{Address: j.addr, WarehouseTable: "pg_t", Sync: "cdc", Runner: "r1"}
	snapshot := base
	snapshot.State, snapshot.LastSyncAt, snapshot.LastFullSyncAt, snapshot.RowsSynced, snapshot.LastRunRows = state.StateCompleted, t0, t0, 10, 10
	commit := snapshot
	commit.LastSyncAt, commit.RowsSynced, commit.LastRunRows = t0.Add(3*time.Second), 12, 2
	warned := commit
	warned.LastSyncAt, warned.RowsSynced, warned.LastRunRows, warned.Warnings = t0.Add(5*time.Second), 15, 1, 1
	held := warned
	held.LastSyncAt, held.RowsSynced, held.LastRunRows, held.Warnings = t0.Add(6*time.Second), 16, 1, 0
	failed := held
	failed.State, failed.LastError, failed.LastAttemptAt = state.StateFailed, "boom", t0.Add(7*time.Second)
	for _, step := range []struct {
		name string
		do   func()
		want state.TableStatus // written
		rows int64             // in memory
	}{
		{"snapshot", func() { r.recorder.streamed(ctx, j, t0, result{full: true, rowsRead: 10, tableRows: 10}) }, snapshot, 10},
		{"first commit", func() {
			r.recorder.streamed(ctx, j, t0.Add(3*time.Second), result{rowsRead: 2, tableRows: 12})
		}, commit, 12},
		{"commit held back", func() {
			r.recorder.streamed(ctx, j, t0.Add(4*time.Second), result{rowsRead: 2, tableRows: 14})
		}, commit, 14},
		{"commit with warnings", func() {
			r.recorder.streamed(ctx, j, t0.Add(5*time.Second), result{rowsRead: 1, tableRows: 15, warnings: 1})
		}, warned, 15},
		{"held back again", func() {
			r.recorder.streamed(ctx, j, t0.Add(6*time.Second), result{rowsRead: 1, tableRows: 16})
		}, warned, 16},
		{"flush", func() { r.recorder.flush(ctx, []job{j}) }, held, 16},
		{"failure", func() { r.recorder.failed(ctx, j, t0.Add(7*time.Second), errors.New("boom")) }, failed, 16},
	} {
		step.do()
		st, err := local.ReadStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(step.want, *st.Tables[j.addr], cmpopts.EquateApproxTime(0)); diff != "" {
			t.Errorf("%s: record (-want +got):\n%s", step.name, diff)
		}
		if got := r.recorder.current(j).RowsSynced; got != step.rows {
			t.Errorf("%s: the record in memory has %d rows, want %d", step.name, got, step.rows)
		}
	}
}
