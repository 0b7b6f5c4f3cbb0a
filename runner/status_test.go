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
