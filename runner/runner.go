// Package runner is the sync daemon behind `sluice run`: it schedules the
// tables apply recorded, runs their syncs with bounded concurrency, retries
// transient failures, records status beside the state, and serves
// /healthz and /metrics.
//
// The runner syncs what apply recorded, not what the files say: a table
// added to the configuration is synced once it has been applied. It reads
// the configuration only for what state never holds: connection secrets.
// It never writes state; its own records are status records.
package runner

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/webhooksecret"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/runner/journal"
	"github.com/sluice-dev/sluice/runner/notify"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

// Options configure a Runner.
type Options struct {
	Config    *config.Config
	Backend   state.Backend
	Status    state.StatusStore
	Warehouse warehouse.Warehouse
	// Open opens a configured source; providers.Open when nil.
	Open func(ctx context.Context, src *config.Source) (providers.Source, error)
	// Concurrency bounds the syncs running at once.
	Concurrency int
	Logger      hclog.Logger
	Metrics     *Metrics
	// Progress, when set, gets a progress line for long syncs (a terminal).
	Progress io.Writer
	// BatchRows and Parallel are passed to the readers.
	BatchRows int
	Parallel  int
	// PollInterval is how often the daemon looks for newly applied state.
	PollInterval time.Duration
	// Retry shapes retries of transient failures.
	Retry RetryPolicy
	Now   func() time.Time

	// CDCFlushChanges and CDCFlushInterval say when streamed changes are
	// committed: at the first transaction boundary after this many
	// changes or this long (defaults 50,000 and 1s). CDCFlushBytes bounds
	// the memory of buffered changes (default 32 MiB; the stream waits
	// for a commit at twice that).
	CDCFlushChanges  int
	CDCFlushInterval time.Duration
	CDCFlushBytes    int64
	// WALCheckInterval is how often each source's replication slot lag
	// is read (default 30s).
	WALCheckInterval time.Duration
	// Resources opens a source's resource manager, which the WAL monitor
	// needs to drop a slot over lag_critical (auto_drop_slot). When nil,
	// the monitor still marks such a source failed but cannot drop its
	// slot, and says so in the source's status.
	Resources func(ctx context.Context, src *config.Source) (providers.ResourceManager, error)

	// Owner is this runner, recorded with the status of the syncs it runs,
	// when the caller holds the runner lock (state.RunnerLocker) for it:
	// running records of other runners are then interrupted ones, marked
	// failed at the start. Lock, when set, is that lock: the daemon checks
	// it at every poll and stops when another runner took it.
	Owner *state.RunnerInfo
	Lock  state.RunnerLock
	// JournalDir is where the webhook journals are kept, one directory
	// per source under it (package journal): a directory of the state's,
	// such as <state dir>/webhooks beside the local backend's file. When
	// empty, .sluice/webhooks under the configuration's directory.
	JournalDir string
	// Requests, when set, are the sync requests of `sluice sync` (see
	// requests.go): the daemon takes them every second, run -once and sync
	// when they start. Only the holder of the runner lock may take them.
	Requests state.SyncRequests
	// WebhookJournal, when set, opens a webhook source's journal: in a
	// fleet, pgjournal.OpenPostgres on the state database, which every
	// runner receives into. Nil: the file journal in JournalDir.
	WebhookJournal func(ctx context.Context, source string) (journal.Store, error)
	// Claims, when set, make this runner one of a fleet (fleet.go): it
	// holds no runner lock, its batch tables are handed to it by the job
	// engine (FleetSync), and it streams the sources whose claims it
	// takes.
	Claims state.Claimer
	// Notify, when set, is told of failures, recoveries, stale tables and
	// slot lag, and sends the notify blocks' messages (notify.go).
	Notify *notify.Notifier
}

// Runner runs syncs.
type Runner struct {
	opt Options

	mu      sync.Mutex
	st      *state.State
	status  map[string]*state.TableStatus
	running map[string]bool
	hooks   *intake // receiver, journals, applier (intake.go)
	// statusWritten is when a streaming table's status was last written
	// (status.go).
	statusWritten map[string]time.Time
	// slots is the WAL monitor (walmonitor.go).
	slots *slotMonitor
	// ran are the tables the last Once or Sync synced.
	ran map[string]bool
	// requests are the sync requests the daemon took and has not
	// answered; requestWarned is when it last warned that it could not
	// read them.
	// recorder keeps the table status records through syncs (status.go).
	recorder statusRecorder
	// cdc is what the cdc engines of the sources work with (cdc.go).
	cdc           cdcDeps
	requests      map[string]*activeRequest
	requestWarned time.Time
	// engines are the daemon's cdc engines running now, by source;
	// cdcDown says why a source's stream stays stopped (its slot lost or
	// dropped) until apply changes it; watchers are the goroutines that
	// answer requests naming cdc tables (cdcrequests.go).
	engines  map[string]*cdcEngine
	cdcDown  map[string]error
	watchers sync.WaitGroup
	// maint maintains tables after their commits (maintain.go).
	maint *maintainer
	// claimsRenewed is when the fleet's claim session was last renewed;
	// loadedAt when the applied state was last read (fleet.go).
	claimsRenewed time.Time
	loadedAt      time.Time
	// elsewhere are the tables the last Once or Sync of a fleet runner
	// left to the runner holding their claims, and who that is.
	elsewhere map[string]string
	// staleChecked is when the daemon last looked for stale tables
	// (notify.go).
	staleChecked time.Time
}

// New returns a runner; Load must succeed before it runs.
func New(opt Options) *Runner {
	if opt.Open == nil {
		opt.Open = providers.Open
	}
	if opt.Concurrency < 1 {
		opt.Concurrency = 1
	}
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics()
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = 10 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.BatchRows <= 0 {
		opt.BatchRows = 50_000
	}
	if opt.CDCFlushChanges <= 0 {
		opt.CDCFlushChanges = defaultFlushChanges
	}
	if opt.CDCFlushInterval <= 0 {
		opt.CDCFlushInterval = defaultFlushInterval
	}
	if opt.CDCFlushBytes <= 0 {
		opt.CDCFlushBytes = defaultFlushBytes
	}
	if opt.JournalDir == "" && opt.Config != nil {
		opt.JournalDir = filepath.Join(opt.Config.Dir, ".sluice", "webhooks")
	}
	if opt.WALCheckInterval <= 0 {
		opt.WALCheckInterval = defaultWALCheckInterval
	}
	opt.Retry = opt.Retry.withDefaults()
	if opt.Status != nil {
		opt.Status = ownedStatus{StatusStore: opt.Status, owner: opt.Owner}
	}
	r := &Runner{opt: opt, status: map[string]*state.TableStatus{}, running: map[string]bool{},
		statusWritten: map[string]time.Time{}, requests: map[string]*activeRequest{},
		engines: map[string]*cdcEngine{}, cdcDown: map[string]error{}}
	r.recorder = runnerStatus{r}
	r.maint = newMaintainer(opt.Now, opt.Logger)
	r.cdc = cdcDeps{
		openSource: opt.Open, warehouse: opt.Warehouse, status: r.recorder, metrics: opt.Metrics,
		logger: opt.Logger, now: opt.Now, progressOut: opt.Progress,
		batchRows: opt.BatchRows, parallel: opt.Parallel,
		flushChanges: opt.CDCFlushChanges, flushInterval: opt.CDCFlushInterval, flushBytes: opt.CDCFlushBytes,
		maint: r.maint,
	}
	r.hooks = newIntake(intakeDeps{
		dir: opt.JournalDir, tables: r.webhookJobs, open: opt.Open, warehouse: opt.Warehouse,
		status: r.recorder, store: opt.Status,
		storedSecret: func(addr string) (string, error) { return webhooksecret.Read(opt.Backend, addr) },
		webhookURL:   r.webhookURL, registry: opt.Metrics.Registerer, log: opt.Logger, now: opt.Now,
		maint: r.maint, openJournal: opt.WebhookJournal, claims: opt.Claims, counter: fleetCounter(opt),
	})
	r.slots = &slotMonitor{
		open: opt.Open, openResources: opt.Resources, put: r.hooks.putSourceStatus,
		metrics: opt.Metrics, log: opt.Logger, now: opt.Now, interval: opt.WALCheckInterval,
		health: map[string]*state.SourceStatus{}, notify: opt.Notify,
	}
	return r
}

// id is this runner's name (Owner.ID), recorded as TableStatus.Runner by
// the syncs it runs; "" without an owner.
func (r *Runner) id() string {
	if r.opt.Owner == nil {
		return ""
	}
	return r.opt.Owner.ID
}

// Metrics returns the runner's metrics, to serve them.
func (r *Runner) Metrics() *Metrics { return r.opt.Metrics }

// job is one table to sync.
type job struct {
	src   *config.Source
	rs    *state.Source
	table *state.Table
	addr  string
}

// Load reads the applied state and the status records.
func (r *Runner) Load(ctx context.Context) error {
	if vr, ok := r.opt.Backend.(state.VersionReader); ok {
		r.mu.Lock()
		cur := r.st
		r.mu.Unlock()
		if cur != nil {
			lineage, serial, err := vr.LatestVersion(ctx)
			if err != nil {
				return fmt.Errorf("reading state: %w", err)
			}
			if lineage == cur.Lineage && serial == cur.Serial {
				r.mu.Lock()
				r.loadedAt = time.Now()
				r.mu.Unlock()
				return nil
			}
		}
	}
	st, err := r.opt.Backend.Read(ctx)
	if err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	status, err := r.opt.Status.ReadStatus(ctx)
	if err != nil {
		return fmt.Errorf("reading status: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadedAt = time.Now()
	if r.st != nil && st.Lineage == r.st.Lineage && st.Serial == r.st.Serial {
		return nil
	}
	if r.st != nil {
		r.opt.Logger.Info("noticed newly applied state", "serial", st.Serial)
	}
	r.st = st
	for addr, ts := range status.Tables {
		if _, ok := r.status[addr]; !ok {
			r.status[addr] = ts
		}
	}
	return nil
}

// jobs lists every applied table in a stable order, and the tables that
// cannot be synced (disabled, or a source missing from the files).
func (r *Runner) jobs() (jobs []job, problems []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, addr := range r.st.SourceAddrs() {
		rs := r.st.Sources[addr]
		src := r.opt.Config.Source(addr)
		for _, name := range rs.TableNames() {
			t := rs.Tables[name]
			taddr := addr + "/" + name
			if src == nil {
				problems = append(problems, fmt.Sprintf("%s: source %s is recorded in state but not in the configuration, which holds its credentials", taddr, addr))
				continue
			}
			jobs = append(jobs, job{src: src, rs: rs, table: t, addr: taddr})
		}
	}
	return jobs, problems
}

// tableStatus returns the status record of a table, creating it.
func (r *Runner) tableStatus(j job) *state.TableStatus {
	ts := r.status[j.addr]
	if ts == nil {
		ts = &state.TableStatus{Address: j.addr, State: state.StatePending}
		r.status[j.addr] = ts
	}
	ts.WarehouseTable, ts.Sync = j.table.WarehouseTable, string(j.table.Sync)
	return ts
}

// due reports whether a table should sync at now, and when it next will.
// A table whose recorded frequency is not one is not due: its status says
// why (naming it), and the error is returned.
func (r *Runner) due(j job, now time.Time) (bool, time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tableStatus(j)
	if !j.table.Enabled {
		ts.State = state.StateDisabled
		return false, time.Time{}, nil
	}
	if r.running[j.addr] {
		return false, time.Time{}, nil
	}
	ok, next, err := NextSync(j.table, ts, now)
	if err != nil && j.table.Sync != config.SyncCDC {
		// cdc tables stream whatever their frequency.
		err = fmt.Errorf("%s: %w", j.addr, err)
		if ts.State != state.StateFailed || ts.LastError != err.Error() {
			r.opt.Logger.Error("not scheduled", "table", j.addr, "error", err)
		}
		ts.State, ts.LastError = state.StateFailed, err.Error()
		return false, time.Time{}, err
	}
	return ok, next, nil
}

// NextSync reports whether an enabled table is due at now, and when it
// next will be, from its applied frequency (the current one: a frequency
// changed by apply counts at once) and its status record (nil: never
// synced). A table never synced, or whose resync was requested after its
// last full load, is due now. A recorded frequency that is not one is an
// error (the caller names the table), never a default schedule.
func NextSync(t *state.Table, ts *state.TableStatus, now time.Time) (bool, time.Time, error) {
	if ts == nil {
		ts = &state.TableStatus{}
	}
	if resyncDue(t, ts) || ts.LastSyncAt.IsZero() && ts.LastAttemptAt.IsZero() {
		return true, now, nil
	}
	sched, err := t.Frequency.Get()
	if err != nil {
		return false, time.Time{}, err
	}
	last := ts.LastSyncAt
	if ts.LastAttemptAt.After(last) {
		last = ts.LastAttemptAt
	}
	next := sched.Next(last)
	return !next.After(now), next, nil
}

func resyncDue(t *state.Table, ts *state.TableStatus) bool {
	return !t.ResyncRequestedAt.IsZero() && t.ResyncRequestedAt.After(ts.LastFullSyncAt)
}

// Once runs every sync that is due now, waits for them and returns the
// addresses of those that failed. The cdc tables of each source are
// snapshotted if needed and then drained of the changes committed before
// Once started, whatever their frequency.
func (r *Runner) Once(ctx context.Context) (failed []string, err error) {
	return r.once(ctx, nil)
}

// Sync is Once for the named tables (table addresses), whatever their
// schedule: incremental, append and xmin tables from their committed
// position, full_refresh tables reloaded, cdc tables drained of what was
// committed before it started (with the other cdc tables of their source,
// which share its stream), webhook tables' journals applied (after their
// bulk load when it is due). An address that is not an applied, enabled
// table of the configuration is an error, and nothing is synced.
func (r *Runner) Sync(ctx context.Context, addrs []string) (failed []string, err error) {
	force := map[string]bool{}
	for _, a := range addrs {
		force[a] = true
	}
	return r.once(ctx, force)
}

// once runs the due tables, or with force the tables it names.
func (r *Runner) once(ctx context.Context, force map[string]bool) (failed []string, err error) {
	if err := r.Load(ctx); err != nil {
		return nil, err
	}
	if r.fleet() {
		st, err := r.opt.Status.ReadStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading status: %w", err)
		}
		r.interruptDead(ctx, st)
		r.mu.Lock()
		for addr, ts := range st.Tables {
			cp := *ts
			r.status[addr] = &cp
		}
		r.mu.Unlock()
	} else {
		r.recoverInterrupted(ctx)
	}
	jobs, problems := r.jobs()
	for _, p := range problems {
		r.opt.Logger.Warn(p)
	}
	if force != nil {
		if err := r.checkForced(jobs, force); err != nil {
			return nil, err
		}
	}
	now := r.opt.Now()
	// Requests of a daemon that stopped (or of sync processes that could
	// not hand them to one) are run with the rest.
	taken := r.takeRequests(ctx, jobs, now)
	forced := func(addr string) bool { return force[addr] }
	if len(taken) > 0 {
		requested := map[string]bool{}
		for _, a := range taken {
			for _, addr := range a.tables() {
				requested[addr] = true
			}
		}
		forced = func(addr string) bool { return force[addr] || requested[addr] }
	}
	// The cdc tables of a source share its stream: a source is drained
	// whole, when one of its tables is named.
	cdcSources := map[string]bool{}
	for _, j := range jobs {
		if j.table.Sync == config.SyncCDC && (force == nil || forced(j.addr)) {
			cdcSources[j.src.Address()] = true
		}
	}
	ran := map[string]bool{}
	var due, cdc []job
	for _, j := range jobs {
		ok, next, derr := r.due(j, now)
		switch {
		case j.table.Sync == config.SyncCDC:
			// Streamed per source, by onceCDC.
			if cdcSources[j.src.Address()] {
				cdc = append(cdc, j)
				ran[j.addr] = j.table.Enabled
			}
		case force != nil && !forced(j.addr):
		case derr != nil:
			failed = append(failed, j.addr)
			ran[j.addr] = true
		case forced(j.addr) && !ok && j.table.Sync == config.SyncWebhook:
			// Its journal is applied below, after the syncs.
			ran[j.addr] = true
		case ok || forced(j.addr):
			due = append(due, j)
			ran[j.addr] = true
		case !next.IsZero():
			r.opt.Logger.Debug("not due", "table", j.addr, "next", next)
		}
	}
	var claims map[string]state.Claim
	if r.fleet() {
		var release func()
		due, cdc, claims, release = r.claimOnce(ctx, due, cdc, ran)
		defer release()
	}
	r.mu.Lock()
	r.ran = ran
	r.mu.Unlock()
	if !r.fleet() {
		r.writeAllStatus(ctx)
	}
	cdcDone := make(chan []string, 1)
	go func() { cdcDone <- r.onceCDC(ctx, cdc, claims) }()
	results := r.runJobs(ctx, due, claims)
	r.hooks.drain(ctx)
	for addr, err := range results {
		if err != nil {
			failed = append(failed, addr)
		}
	}
	failed = append(failed, <-cdcDone...)
	sort.Strings(failed)
	r.answerTaken(ctx, taken)
	return failed, ctx.Err()
}

// checkForced refuses addresses that are not applied, enabled tables with
// a source in the configuration.
func (r *Runner) checkForced(jobs []job, force map[string]bool) error {
	known := map[string]job{}
	for _, j := range jobs {
		known[j.addr] = j
	}
	var errs []string
	for _, addr := range sortedKeys(force) {
		j, ok := known[addr]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("%s is not an applied table of a configured source", addr))
		case !j.table.Enabled:
			errs = append(errs, fmt.Sprintf("%s is disabled (enabled = false)", addr))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nothing was synced: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Outcome is a table's status after Once or Sync, and whether that call
// synced it (false: not due, disabled, or not named).
type Outcome struct {
	state.TableStatus
	Ran bool
	// Elsewhere says which runner of a fleet syncs or streams the table
	// now, when that kept this call from running it.
	Elsewhere string
}

// Outcomes returns what the last Once or Sync did with every applied
// table, in address order.
func (r *Runner) Outcomes() []Outcome {
	statuses := r.Statuses()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Outcome, len(statuses))
	for i, ts := range statuses {
		out[i] = Outcome{TableStatus: ts, Ran: r.ran[ts.Address], Elsewhere: r.elsewhere[ts.Address]}
	}
	return out
}

// recoverInterrupted marks the running records of runners that are gone
// as failed: a runner with an owner holds the runner lock, so any other
// runner's sync stopped without recording its end (kill -9, a crash).
func (r *Runner) recoverInterrupted(ctx context.Context) {
	if r.opt.Owner == nil {
		return
	}
	r.mu.Lock()
	var marked []state.TableStatus
	for _, addr := range sortedKeys(r.status) {
		ts := r.status[addr]
		if ts.State == state.StateRunning && !state.RunnerAlive(ts.Owner, r.opt.Owner) {
			state.Interrupt(ts)
			marked = append(marked, *ts)
		}
	}
	r.mu.Unlock()
	for i := range marked {
		r.opt.Logger.Warn("a sync was interrupted when its runner stopped; it runs again when due", "table", marked[i].Address)
		if err := r.opt.Status.PutTableStatus(ctx, &marked[i]); err != nil {
			r.opt.Logger.Warn("cannot record status", "table", marked[i].Address, "error", err)
		}
	}
}

// runJobs runs jobs with bounded concurrency and waits for them.
func (r *Runner) runJobs(ctx context.Context, jobs []job, claims map[string]state.Claim) map[string]error {
	results := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.opt.Concurrency)
	for _, j := range jobs {
		wg.Add(1)
		r.setRunning(j.addr, true)
		go func(j job) {
			defer wg.Done()
			defer r.setRunning(j.addr, false)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				results[j.addr] = ctx.Err()
				mu.Unlock()
				return
			}
			err := r.runJob(withClaim(ctx, claims[tableClaim(j.addr)]), j)
			<-sem
			mu.Lock()
			results[j.addr] = err
			mu.Unlock()
		}(j)
	}
	wg.Wait()
	return results
}

func (r *Runner) isRunning(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[addr]
}

func (r *Runner) setRunning(addr string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.running[addr] = true
	} else {
		delete(r.running, addr)
	}
}

// Run is the daemon: it syncs tables as they come due, notices newly
// applied state, and returns when ctx is cancelled, after in-flight syncs
// have finished or been abandoned (an abandoned commit leaves the previous
// version intact).
func (r *Runner) Run(parent context.Context) error {
	if err := r.Load(parent); err != nil {
		return err
	}
	if !r.fleet() {
		r.recoverInterrupted(parent)
	}
	// A runner that lost its lock to another stops as at a shutdown.
	ctx, stopLost := context.WithCancel(parent)
	defer stopLost()
	var lost error
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.opt.Concurrency)
	streams := newCDCSupervisor(r)
	owner := newStreamOwner(r)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	freed := make(chan struct{}, 1)
	lastPoll := r.opt.Now()
	if !r.fleet() {
		// In a fleet the records are the syncs' own: a record written
		// from this runner's view could overwrite another runner's.
		r.writeAllStatus(ctx)
	}
	hooksDone := r.hooks.runApplier(ctx)
	for {
		now := r.opt.Now()
		if now.Sub(lastPoll) >= r.opt.PollInterval {
			lastPoll = now
			if err := r.Load(ctx); err != nil && ctx.Err() == nil {
				r.opt.Logger.Error("cannot reload state; keeping the previous one", "error", err)
			}
			if r.opt.Lock != nil && lost == nil {
				if err := r.opt.Lock.Check(ctx); err != nil && ctx.Err() == nil {
					lost = fmt.Errorf("stopping: %w", err)
					r.opt.Logger.Error("lost the runner lock", "error", err)
					stopLost()
				}
			}
		}
		jobs, _ := r.jobs()
		// One stream per source with cdc tables, restarted when they
		// change in state (cdc.go); in a fleet, of the sources whose
		// claims this runner holds (fleet.go).
		if r.fleet() {
			r.renewClaims(ctx)
			mine, claims := owner.groups(ctx, cdcGroups(jobs), now)
			streams.sync(ctx, mine, claims)
		} else {
			streams.sync(ctx, cdcGroups(jobs), nil)
		}
		if ctx.Err() == nil && !r.fleet() {
			r.pollRequests(ctx, jobs, now)
		}
		for _, j := range jobs {
			if r.fleet() {
				break // the job engine hands the batch tables out
			}
			if j.table.Sync == config.SyncCDC {
				continue
			}
			// due is false while the table runs: a request waits for
			// the running sync to end and then starts its own.
			if ok, _, _ := r.due(j, now); !ok && !(j.table.Enabled && r.requested(j.addr) && !r.isRunning(j.addr)) {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // all workers busy; try again at the next tick
			}
			r.setRunning(j.addr, true)
			r.requestStarted(j.addr)
			wg.Add(1)
			go func(j job) {
				defer wg.Done()
				_ = r.runJob(ctx, j)
				r.setRunning(j.addr, false)
				r.requestFinished(ctx, j.addr)
				<-sem
				// A free worker takes the next due table now, not at the
				// next tick.
				select {
				case freed <- struct{}{}:
				default:
				}
			}(j)
		}
		r.answerRequests(ctx, jobs, now)
		r.checkStale(ctx, jobs, now)
		select {
		case <-ctx.Done():
			r.opt.Logger.Info("stopping: waiting for running syncs to finish or abandon their commits")
			wg.Wait()
			streams.wait()
			r.watchers.Wait()
			<-hooksDone
			owner.release(context.WithoutCancel(ctx))
			return lost
		case <-tick.C:
		case <-freed:
		}
	}
}

// writeAllStatus records the status of every applied table, so that
// `sluice status` shows pending and disabled tables too.
func (r *Runner) writeAllStatus(ctx context.Context) {
	jobs, _ := r.jobs()
	now := r.opt.Now()
	for _, j := range jobs {
		ok, next, _ := r.due(j, now)
		r.mu.Lock()
		ts := r.tableStatus(j)
		if ok {
			ts.NextSyncAt = now
		} else if !next.IsZero() {
			ts.NextSyncAt = next
		}
		cp := *ts
		r.mu.Unlock()
		if err := r.opt.Status.PutTableStatus(ctx, &cp); err != nil {
			r.opt.Logger.Warn("cannot record status", "table", j.addr, "error", err)
		}
	}
}

// ownedStatus records the runner with a running status, and no runner
// with any other.
type ownedStatus struct {
	state.StatusStore
	owner *state.RunnerInfo
}

func (s ownedStatus) PutTableStatus(ctx context.Context, ts *state.TableStatus) error {
	cp := *ts
	cp.Owner = nil
	if cp.State == state.StateRunning {
		cp.Owner = s.owner
	}
	return s.StatusStore.PutTableStatus(ctx, &cp)
}

// Statuses returns a copy of the runner's table status records.
func (r *Runner) Statuses() []state.TableStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]state.TableStatus, 0, len(r.status))
	for _, ts := range r.status {
		out = append(out, *ts)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimSpace(err.Error())
}
