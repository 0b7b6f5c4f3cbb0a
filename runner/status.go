package runner

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
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

	// A cdc table streams all along, so its sync has no end: each commit
	// is recorded as it happens.

	// streamed records a commit of a streaming table at at: its snapshot
	// (res.full) or a batch of streamed changes (res.rowsRead of them),
	// completed with res's rows and warnings, and no next sync. A commit
	// of changes is written at most every statusEvery per table (the
	// stream commits every second), unless it has warnings; flush writes
	// the rest.
	streamed(ctx context.Context, j job, at time.Time, res result)
	// failed records that j failed at at outside a running/ended pair (a
	// stream that could not start, or stopped).
	failed(ctx context.Context, j job, at time.Time, err error)
	// flush writes the records of jobs whose last commits were not
	// written yet.
	flush(ctx context.Context, jobs []job)
	// current is a copy of j's record.
	current(j job) state.TableStatus
}

// statusEvery bounds how often a streaming table's status is written.
const statusEvery = 2 * time.Second

// runnerStatus is the statusRecorder of a runner's own records.
type runnerStatus struct{ r *Runner }

// update changes j's record, as this runner's, under the runner's lock
// and returns a copy of it to write. The notifier hears of the change
// (notify.go).
func (s runnerStatus) update(j job, change func(ts *state.TableStatus)) state.TableStatus {
	s.r.mu.Lock()
	ts := s.r.tableStatus(j)
	wasFailed := notifiedFailure(ts)
	ts.Runner = s.r.id()
	change(ts)
	cp := *ts
	s.r.mu.Unlock()
	s.r.notifyStatus(wasFailed, &cp)
	return cp
}

func (s runnerStatus) running(ctx context.Context, j job, at time.Time) state.TableStatus {
	running := s.update(j, func(ts *state.TableStatus) {
		ts.State = state.StateRunning
		ts.LastAttemptAt = at.UTC()
	})
	_ = s.r.opt.Status.PutTableStatus(ctx, &running)
	return running
}

func (s runnerStatus) ended(ctx context.Context, j job, at time.Time, res result, err error, next time.Time) {
	done := s.update(j, func(ts *state.TableStatus) {
		switch {
		case errors.Is(err, errNotYet):
			ts.State = state.StatePending
			ts.LastError = err.Error()
			ts.LastAttemptAt = time.Time{}
		case err != nil:
			failedStatus(ts, err)
		default:
			completedStatus(ts, at, res)
		}
		if !next.IsZero() {
			ts.NextSyncAt = next.UTC()
		}
	})
	s.put(ctx, &done)
}

func (s runnerStatus) streamed(ctx context.Context, j job, at time.Time, res result) {
	var write bool
	done := s.update(j, func(ts *state.TableStatus) {
		completedStatus(ts, at, res)
		ts.NextSyncAt = time.Time{}
		write = res.full || res.warnings > 0 || at.Sub(s.r.statusWritten[j.addr]) >= statusEvery
		if write && !res.full {
			s.r.statusWritten[j.addr] = at
		}
	})
	if write {
		s.put(ctx, &done)
	}
}

func (s runnerStatus) failed(ctx context.Context, j job, at time.Time, err error) {
	done := s.update(j, func(ts *state.TableStatus) {
		failedStatus(ts, err)
		ts.LastAttemptAt = at.UTC()
	})
	s.put(ctx, &done)
}

func (s runnerStatus) flush(ctx context.Context, jobs []job) {
	r := s.r
	r.mu.Lock()
	var out []state.TableStatus
	for _, j := range jobs {
		out = append(out, *r.tableStatus(j))
		delete(r.statusWritten, j.addr)
	}
	r.mu.Unlock()
	for i := range out {
		s.put(ctx, &out[i])
	}
}

func (s runnerStatus) current(j job) state.TableStatus {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return *s.r.tableStatus(j)
}

// put writes a record that ends a sync or a commit, under a fresh context,
// so that a sync abandoned at shutdown still records how it ended.
func (s runnerStatus) put(ctx context.Context, ts *state.TableStatus) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.r.opt.Status.PutTableStatus(sctx, ts); err != nil {
		s.r.opt.Logger.Warn("cannot record status", "table", ts.Address, "error", err)
	}
}

// completedStatus makes ts the record of a sync completed at at that did
// res.
func completedStatus(ts *state.TableStatus, at time.Time, res result) {
	ts.State = state.StateCompleted
	ts.LastError = ""
	ts.LastSyncAt = at.UTC()
	ts.RowsSynced = res.tableRows
	ts.LastRunRows = res.rowsRead
	ts.Warnings = res.warnings
	if res.version != (warehouse.TableVersion{}) {
		ts.MetadataLocation, ts.SnapshotID = res.version.MetadataLocation, res.version.SnapshotID
	}
	if res.full {
		ts.LastFullSyncAt = at.UTC()
	}
}

// failedStatus makes ts the record of a sync that failed with err.
func failedStatus(ts *state.TableStatus, err error) {
	ts.State = state.StateFailed
	ts.LastError = errorText(err)
}

func (s runnerStatus) rows(j job, n int64) {
	s.r.mu.Lock()
	s.r.tableStatus(j).RowsSynced = n
	s.r.mu.Unlock()
}
