package runner

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/state"
)

// statusRecorder keeps the status records of tables through a sync: the
// running record when it starts, the completed, failed or pending one when
// it ends, each with the runner that ran it (and, while running, the owner
// that holds the runner lock: ownedStatus). A sync's code says what
// happened; the recorder says it in the records, the same way for every
// kind of sync.
type statusRecorder interface {
	// running records that j's sync started at at, writes the record and
	// returns it.
	running(ctx context.Context, j job, at time.Time) state.TableStatus
	// ended records how j's sync ended at at: completed (err nil, res its
	// rows and warnings), left pending (err wraps errNotYet: its engine is
	// not in this build) or failed; next is when the table syncs next (zero
	// when unknown). The record is written under a fresh context, so that
	// a sync abandoned at shutdown still records that it did not complete.
	ended(ctx context.Context, j job, at time.Time, res result, err error, next time.Time)
	// rows records the rows a table holds after a commit outside its
	// syncs (the webhook applier's); written with the table's next record.
	rows(j job, n int64)
}

// runnerStatus is the statusRecorder of a runner's own records.
type runnerStatus struct{ r *Runner }

func (s runnerStatus) running(ctx context.Context, j job, at time.Time) state.TableStatus {
	r := s.r
	r.mu.Lock()
	ts := r.tableStatus(j)
	ts.State = state.StateRunning
	ts.LastAttemptAt = at.UTC()
	ts.Runner = r.id()
	running := *ts
	r.mu.Unlock()
	_ = r.opt.Status.PutTableStatus(ctx, &running)
	return running
}

func (s runnerStatus) ended(ctx context.Context, j job, at time.Time, res result, err error, next time.Time) {
	r := s.r
	r.mu.Lock()
	ts := r.tableStatus(j)
	ts.Runner = r.id()
	switch {
	case errors.Is(err, errNotYet):
		ts.State = state.StatePending
		ts.LastError = err.Error()
		ts.LastAttemptAt = time.Time{}
	case err != nil:
		ts.State = state.StateFailed
		ts.LastError = errorText(err)
	default:
		ts.State = state.StateCompleted
		ts.LastError = ""
		ts.LastSyncAt = at.UTC()
		ts.RowsSynced = res.tableRows
		ts.LastRunRows = res.rowsRead
		ts.Warnings = res.warnings
		if res.full {
			ts.LastFullSyncAt = at.UTC()
		}
	}
	if !next.IsZero() {
		ts.NextSyncAt = next.UTC()
	}
	done := *ts
	r.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := r.opt.Status.PutTableStatus(sctx, &done); serr != nil {
		r.opt.Logger.Warn("cannot record status", "table", j.addr, "error", serr)
	}
}

func (s runnerStatus) rows(j job, n int64) {
	s.r.mu.Lock()
	s.r.tableStatus(j).RowsSynced = n
	s.r.mu.Unlock()
}
