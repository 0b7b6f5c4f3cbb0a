package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

// errNotYet marks sync types whose engine is not in this build: the table
// stays pending rather than failing.
var errNotYet = errors.New("not available yet")

// runJob syncs one table, retrying transient failures, and records the
// outcome in status and metrics.
func (r *Runner) runJob(ctx context.Context, j job) error {
	return r.runJobAttempts(ctx, j, r.opt.Retry.Attempts)
}

// runJobAttempts is runJob with at most attempts attempts.
func (r *Runner) runJobAttempts(ctx context.Context, j job, attempts int) error {
	log := r.opt.Logger.With("table", j.addr)
	start := r.opt.Now()
	running := r.recorder.running(ctx, j, start)
	full := resyncDue(j.table, &running)

	var res result
	var err error
	for attempt := 1; ; attempt++ {
		res, err = r.syncTable(ctx, j, full)
		if err == nil || ctx.Err() != nil || !Transient(err) || attempt >= attempts {
			break
		}
		wait := r.opt.Retry.backoff(attempt)
		log.Warn("transient failure; retrying", "attempt", attempt, "in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	end := r.opt.Now()
	if err == nil && j.table.Sync != config.SyncWebhook {
		// A webhook table is maintained under its writers' lock
		// (syncWebhookTable); this one has no other writer here.
		res.version = r.maint.after(ctx, j.table.WarehouseTable, res.table, res.version)
	}
	var next time.Time
	if sched, perr := j.table.Frequency.Get(); perr == nil {
		next = sched.Next(end)
	}
	switch {
	case errors.Is(err, errNotYet):
		log.Warn("skipped", "reason", err)
	case err != nil:
		r.opt.Metrics.failures.WithLabelValues(j.addr).Inc()
		log.Error("sync failed", "error", err)
	default:
		r.opt.Metrics.rows.WithLabelValues(j.addr).Add(float64(res.rowsRead))
		r.opt.Metrics.bytes.WithLabelValues(j.addr).Add(float64(res.bytes))
		r.opt.Metrics.lastSuccess.WithLabelValues(j.addr).Set(float64(end.Unix()))
		log.Info("synced", "mode", res.mode, "rows", res.rowsRead, "table_rows", res.tableRows, "seconds", end.Sub(start).Seconds())
		if res.warnings > 0 {
			log.Warn(warehouse.NulledWarning(r.opt.Warehouse), "count", res.warnings)
		}
	}
	r.opt.Metrics.duration.WithLabelValues(j.addr).Observe(end.Sub(start).Seconds())
	r.recorder.ended(ctx, j, end, res, err, next)
	if errors.Is(err, errNotYet) {
		err = nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	r.reportSource(sctx, j, err)
	return err
}

// reportSource records the source's health as its last sync saw it: a
// source that could not be reached is failed; one whose tables sync (or
// fail for reasons of their own, such as a dropped table) is healthy.
func (r *Runner) reportSource(ctx context.Context, j job, err error) {
	ss := &state.SourceStatus{Address: j.src.Address(), State: "healthy", UpdatedAt: r.opt.Now().UTC()}
	if err != nil && (Transient(err) || Unreachable(err)) {
		ss.State, ss.Message = "failed", errorText(err)
	}
	r.slots.withHealth(ss)
	if serr := r.putSourceStatus(ctx, ss); serr != nil {
		r.opt.Logger.Warn("cannot record source status", "source", ss.Address, "error", serr)
	}
}

// result is what one sync did.
type result struct {
	mode      warehouse.Mode
	full      bool
	rowsRead  int64
	bytes     int64
	tableRows int64
	warnings  int64
	// table is the table committed, for maintenance after the sync
	// (maintain.go); version its version then (warehouse.Versioned).
	table   warehouse.Table
	version warehouse.TableVersion
}

// syncTable reads from the source and commits into the warehouse: the
// data and the new position in one commit (DESIGN invariant 1).
func (r *Runner) syncTable(ctx context.Context, j job, full bool) (result, error) {
	t := j.table
	switch t.Sync {
	case config.SyncCDC:
		// Once and Run stream a source's cdc tables together (cdc.go).
		return result{}, fmt.Errorf("cdc tables are synced by their source's stream, not one by one")
	case config.SyncWebhook:
		return r.syncWebhookTable(ctx, j)
	}
	src, err := r.opt.Open(ctx, j.src)
	if err != nil {
		return result{}, err
	}
	defer src.Close()
	wt, err := r.opt.Warehouse.Table(ctx, t.WarehouseTable)
	if err != nil {
		return result{}, err
	}
	if err := renameInPlace(ctx, wt, t, t.WarehouseTable, full || t.Sync == config.SyncFullRefresh, r.opt.Logger); err != nil {
		return result{}, err
	}
	from, committed := wt.Position()
	req := providers.ReadRequest{
		Schema:     t.Schema,
		Table:      t.Table,
		Query:      t.Query,
		Columns:    t.Columns,
		PrimaryKey: t.PrimaryKey,
		Cursor:     t.IncrementalField,
		From:       from,
		BatchRows:  r.opt.BatchRows,
		Parallel:   r.opt.Parallel,
	}
	res := result{full: full || !committed}
	// fullFrom is where a full read starts: the beginning, or, for a
	// table without historical load, its start (startWithoutHistory).
	fullFrom := func(resync bool) (records.Position, error) {
		if !t.Sync.NeedsCursor() || t.LoadsHistory(resync) {
			return records.Position{}, nil
		}
		return startWithoutHistory(ctx, src, t, req, resync)
	}
	if res.full {
		if req.From, err = fullFrom(full); err != nil {
			return res, err
		}
	}
	sr, ok := src.(providers.SnapshotReader)
	if !ok {
		return res, fmt.Errorf("%s sources cannot be read by sluice run yet", j.src.Type)
	}
	schema, err := sr.Schema(ctx, req)
	if err != nil {
		return res, err
	}
	h := jobHasher(j)
	if schema, err = h.schema(schema); err != nil {
		return res, err
	}
	var read func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error)
	switch t.Sync {
	case config.SyncFullRefresh:
		res.mode, res.full, read = warehouse.Replace, true, sr.ReadSnapshot
	case config.SyncIncremental, config.SyncAppend, config.SyncXmin:
		cr, ok := src.(providers.CursorReader)
		if !ok {
			return res, fmt.Errorf("%s sources cannot do %s syncs", j.src.Type, t.Sync)
		}
		read = cr.ReadIncremental
		if t.Sync == config.SyncXmin {
			read = cr.ReadXmin
		}
		switch {
		case res.full:
			res.mode = warehouse.Replace
		case t.Sync == config.SyncAppend:
			res.mode = warehouse.Append
		default:
			res.mode = warehouse.Merge
		}
	default:
		return res, fmt.Errorf("unknown sync type %q", t.Sync)
	}
	if h != nil {
		read = hashedRead(h, read)
	}
	res, err = r.commit(ctx, j, src, wt, schema, req, res, read)
	if errors.Is(err, warehouse.ErrSchemaChanged) && !res.full {
		r.opt.Logger.Warn("a column changed type at the source: reloading the whole table", "table", j.addr)
		if req.From, err = fullFrom(false); err != nil {
			return res, err
		}
		res = result{mode: warehouse.Replace, full: true}
		return r.commit(ctx, j, src, wt, schema, req, res, read)
	}
	return res, err
}

// startWithoutHistory is where a full read of an incremental or append
// table without historical load starts: the position apply recorded
// (state.Table.Start), or, for a resync (`sluice resync` without
// -historical) and a table apply recorded none for, the cursor's greatest
// value now: the table is replaced by the rows past it.
func startWithoutHistory(ctx context.Context, src providers.Source, t *state.Table, req providers.ReadRequest, resync bool) (records.Position, error) {
	if t.Start != nil && !resync {
		return *t.Start, nil
	}
	m, ok := src.(providers.CursorMarker)
	if !ok {
		return records.Position{}, fmt.Errorf("this source cannot start a table without its history (historical_load = false)")
	}
	req.From = records.Position{}
	pos, err := m.CursorMark(ctx, req)
	if err != nil {
		return records.Position{}, fmt.Errorf("finding the greatest %s, where the table starts again without its history: %w", t.IncrementalField, err)
	}
	return pos, nil
}

// hashedRead is read with every batch through h before fn.
func hashedRead(h *hasher, read func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error)) func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error) {
	return func(ctx context.Context, req providers.ReadRequest, fn func(*records.Batch) error) (records.Position, error) {
		return read(ctx, req, func(b *records.Batch) error {
			hb, err := h.batch(b)
			if err != nil {
				return err
			}
			return fn(hb)
		})
	}
}

// commit reads and commits one sync. With batch_size (a cursor or xmin
// table), the read hands over a position every batch_size rows, and each
// is a commit of its own, with the data read up to it (DESIGN invariant
// 1 holds for each): a run killed part-way keeps its commits, and the
// next continues after the last. The first commit is in the sync's mode
// (Replace for a first load or a resync, as unbatched); the next ones
// add to it: Merge for an incremental or xmin table resuming from its
// position, Append otherwise.
func (r *Runner) commit(ctx context.Context, j job, src providers.Source, wt warehouse.Table, schema *records.Schema, req providers.ReadRequest, res result,
	read func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error)) (result, error) {
	sync := string(j.table.Sync)
	ren := newRenamer(j.table.Rename)
	wschema := ren.schema(schema)
	tx, err := wt.Begin(ctx, res.mode, wschema, sync)
	if err != nil {
		return res, err
	}
	abort := func() {
		if tx != nil {
			_ = tx.Abort(ctx)
		}
	}
	if n := j.table.BatchSize; n > 0 && (j.table.Sync == config.SyncIncremental || j.table.Sync == config.SyncAppend || j.table.Sync == config.SyncXmin) {
		// After a Replace, the read's next rows cannot hold a key committed
		// before (a read gives each row once), so they are appended, which
		// costs a warehouse no lookup of the keys it holds.
		next := warehouse.Merge
		if j.table.Sync == config.SyncAppend || res.mode == warehouse.Replace {
			next = warehouse.Append
		}
		req.CommitRows = n
		req.Commit = func(pos records.Position) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			rows, err := tx.Commit(ctx, pos)
			if err != nil {
				return err
			}
			res.tableRows = rows
			tx = nil
			tx, err = wt.Begin(ctx, next, wschema, sync)
			return err
		}
	}
	progress := newProgress(r.opt.Progress, j.addr)
	if est, ok := src.(providers.RowEstimator); ok && r.opt.Progress != nil {
		if n, known, err := est.EstimateRows(ctx, req); err == nil && known {
			progress.estimate = n
		}
	}
	pos, err := read(ctx, req, func(b *records.Batch) error {
		res.rowsRead += int64(b.N)
		res.warnings += warehouse.Nulled(r.opt.Warehouse, b)
		for i := range b.Cols {
			res.bytes += int64(len(b.Cols[i].Data))
		}
		progress.add(int64(b.N))
		return tx.Write(ctx, ren.batch(b))
	})
	progress.done()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		abort()
		return res, err
	}
	rows, err := tx.Commit(ctx, pos)
	if err != nil {
		abort()
		return res, err
	}
	res.tableRows = rows
	res.table, res.version = wt, tableVersion(wt)
	return res, nil
}
