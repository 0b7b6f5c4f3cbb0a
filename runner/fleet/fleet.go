// Package fleet is the job engine of a fleet of runners: several `sluice
// run` processes sharing one configuration's work through the postgres
// state backend, with River (github.com/riverqueue/river) in the state
// database, in a schema of its own (RiverSchema) that Migrate creates and
// keeps up to date with River's migrator.
//
// The engine owns only the batch tables' schedule: River's leader enqueues
// a schedule job every ScheduleEvery; whichever runner works it asks the
// runner which tables are due (runner.FleetDue) and enqueues one sync job
// per table, unique per table among the jobs waiting or running, so that
// no two syncs of one table run at once anywhere. Any runner's workers
// take the sync jobs (runner.FleetSync), up to its concurrency. A failure
// sluice calls transient is retried by River with sluice's backoff; a
// permanent one cancels the job (the table waits for its next scheduled
// time). A job whose runner died is rescued by River after RescueAfter;
// at shutdown a running job is handed back at once (snoozed for zero).
// CDC streams and webhook appliers are not River jobs: they run under
// claims (runner/fleet.go).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
)

// RiverSchema is the schema of River's tables in the state database.
const RiverSchema = "sluice_river"

// queue is the River queue of sluice's jobs.
const queue = "sluice"

// migrateLockKey serializes Migrate across runners starting at once (the
// postgres state backend's setup lock key).
const migrateLockKey int64 = 0x736c756963650003

// Migrate creates River's schema and tables in the state database, or
// brings them up to this version of River, under the state backend's
// setup lock, so that runners starting together do not race.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: RiverSchema})
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	// River's migrations run one transaction each (an enum value added
	// in one is used in the next); a session lock on a connection of
	// its own keeps runners that start together from running them twice.
	err = func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
			return err
		}
		defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey)
		if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{RiverSchema}.Sanitize()); err != nil {
			return err
		}
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		return err
	}()
	if err != nil {
		return fmt.Errorf("fleet: create or migrate River's tables in schema %s of the state database (the role needs CREATE on the database, or an administrator runs a runner once): %w", RiverSchema, err)
	}
	return nil
}

// Options configure a fleet runner's engine.
type Options struct {
	Pool   *pgxpool.Pool
	Runner *runner.Runner
	// ID names this runner in River (unique per process).
	ID          string
	Concurrency int
	Logger      hclog.Logger
	// ScheduleEvery is how often due tables are enqueued (default 1s).
	ScheduleEvery time.Duration
	// SoftStop bounds how long Stop waits for running syncs before it
	// cancels them and hands their jobs back (default 30s).
	SoftStop time.Duration
	// RescueAfter is how long a job may stay running before River takes
	// its runner for dead and makes it available again (default 1m; the
	// table's claim keeps a rescued job from running beside a live
	// original).
	RescueAfter time.Duration
	// BusyRetry is how long a job waits when its table is claimed by
	// another runner (default 5s).
	BusyRetry time.Duration
}

// Engine is a running fleet engine.
type Engine struct {
	client *river.Client[pgx.Tx]
	opt    Options
}

// Start starts River's client for this runner: its workers, and, when it
// is River's leader, the schedule.
func Start(ctx context.Context, opt Options) (*Engine, error) {
	if opt.ScheduleEvery <= 0 {
		opt.ScheduleEvery = time.Second
	}
	if opt.SoftStop <= 0 {
		opt.SoftStop = 30 * time.Second
	}
	if opt.RescueAfter <= 0 {
		opt.RescueAfter = time.Minute
	}
	if opt.BusyRetry <= 0 {
		opt.BusyRetry = 5 * time.Second
	}
	if opt.Concurrency < 1 {
		opt.Concurrency = 1
	}
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	e := &Engine{opt: opt}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &syncWorker{e: e}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &scheduleWorker{e: e}); err != nil {
		return nil, err
	}
	client, err := river.NewClient(riverpgxv5.New(opt.Pool), &river.Config{
		ID:                   opt.ID,
		Schema:               RiverSchema,
		Logger:               newSlog(opt.Logger.Named("river")),
		Queues:               map[string]river.QueueConfig{queue: {MaxWorkers: opt.Concurrency}},
		Workers:              workers,
		JobTimeout:           -1, // a sync takes as long as its table needs
		MaxAttempts:          max(1, opt.Runner.RetryAttempts()),
		RetryPolicy:          retryPolicy{opt.Runner},
		RescueStuckJobsAfter: opt.RescueAfter,
		// A table's jobs are few and small: keep a day of them to look at.
		CompletedJobRetentionPeriod: 24 * time.Hour,
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(opt.ScheduleEvery),
			func() (river.JobArgs, *river.InsertOpts) {
				return scheduleArgs{}, &river.InsertOpts{Queue: queue, UniqueOpts: river.UniqueOpts{ByPeriod: opt.ScheduleEvery}}
			}, &river.PeriodicJobOpts{RunOnStart: true, ID: "sluice_schedule"})},
		FetchPollInterval: 500 * time.Millisecond,
		// A worker freed by a small table takes the next job soon, not
		// after River's default 100ms.
		FetchCooldown: 20 * time.Millisecond,
		// The job's own context ends at shutdown after SoftStop.
		SoftStopTimeout: opt.SoftStop,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	e.client = client
	if err := client.Start(ctx); err != nil {
		return nil, fmt.Errorf("fleet: start River: %w", err)
	}
	// The first schedule pass does not wait for River to elect a leader:
	// enqueueing is unique per table, so every runner may do it.
	go func() {
		if due, err := opt.Runner.FleetDue(ctx); err == nil {
			_, _ = enqueue(ctx, client, due)
		}
	}()
	return e, nil
}

// Stop stops taking jobs, waits up to SoftStop for the running syncs and
// then cancels them: their jobs are handed back for another runner.
func (e *Engine) Stop(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, e.opt.SoftStop)
	defer cancel()
	err := e.client.Stop(sctx)
	if err == nil {
		return nil
	}
	// Past SoftStop: cancel what still runs; it snoozes its job for zero
	// (available at once to the other runners).
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer ccancel()
	return e.client.StopAndCancel(cctx)
}

// Enqueue enqueues a sync of each table now (unique: a table with a job
// waiting or running is skipped).
func (e *Engine) Enqueue(ctx context.Context, tables []string) (int, error) {
	return enqueue(ctx, e.client, tables)
}

// uniqueStates are the states in which a table's job keeps another from
// being enqueued: waiting or running (River requires the first four).
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	rivertype.JobStateRetryable,
}

func enqueue(ctx context.Context, client *river.Client[pgx.Tx], tables []string) (int, error) {
	if len(tables) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, len(tables))
	for i, t := range tables {
		params[i] = river.InsertManyParams{Args: syncArgs{Table: t}, InsertOpts: &river.InsertOpts{
			Queue: queue, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
		}}
	}
	res, err := client.InsertMany(ctx, params)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			n++
		}
	}
	return n, nil
}

// syncArgs is a sync of one table.
type syncArgs struct {
	Table string `json:"table"`
}

func (syncArgs) Kind() string { return "sluice_sync" }

type syncWorker struct {
	river.WorkerDefaults[syncArgs]
	e *Engine
}

// Timeout: none; a sync takes as long as its table needs.
func (w *syncWorker) Timeout(*river.Job[syncArgs]) time.Duration { return -1 }

func (w *syncWorker) Work(ctx context.Context, job *river.Job[syncArgs]) error {
	err := w.e.opt.Runner.FleetSync(ctx, job.Args.Table, job.Attempt > 1)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// Shutdown: hand the job back for another runner, now, without
		// counting an attempt.
		return river.JobSnooze(0)
	case errors.Is(err, runner.ErrTableBusy):
		return river.JobSnooze(w.e.opt.BusyRetry)
	case errors.Is(err, state.ErrClaimLost):
		// This runner lost its claims (it was stopped or cut off past the
		// claim timeout) and committed nothing: the table is any
		// runner's again, now.
		return river.JobSnooze(0)
	case !runner.Transient(err):
		// Retrying cannot help: the table waits for its next time.
		return river.JobCancel(err)
	}
	return err
}

// scheduleArgs is a pass of the schedule.
type scheduleArgs struct{}

func (scheduleArgs) Kind() string { return "sluice_schedule" }

type scheduleWorker struct {
	river.WorkerDefaults[scheduleArgs]
	e *Engine
}

func (w *scheduleWorker) Timeout(*river.Job[scheduleArgs]) time.Duration { return time.Minute }

func (w *scheduleWorker) Work(ctx context.Context, job *river.Job[scheduleArgs]) error {
	due, err := w.e.opt.Runner.FleetDue(ctx)
	if err != nil {
		// The next pass tries again; a failed schedule job is not worth
		// retrying.
		w.e.opt.Logger.Warn("cannot compute the due tables", "error", err)
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	n, err := enqueue(ctx, client, due)
	if err != nil {
		w.e.opt.Logger.Warn("cannot enqueue the due tables", "error", err)
		return nil
	}
	if n > 0 {
		w.e.opt.Logger.Debug("enqueued due tables", "count", n)
	}
	return nil
}

// retryPolicy is sluice's backoff (runner.RetryPolicy) for River's
// retries.
type retryPolicy struct{ r *runner.Runner }

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.r.RetryDelay(max(1, job.Attempt)))
}
