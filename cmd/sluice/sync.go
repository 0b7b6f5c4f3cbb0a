package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/runner/journal"
	"github.com/sluice-dev/sluice/runner/journal/pgjournal"
	"github.com/sluice-dev/sluice/runner/notify"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/state/pgstate"
	"github.com/sluice-dev/sluice/warehouse"
)

func init() { implement("sync", runSync) }

// runSync syncs the named tables now, whatever their schedule: the "sync
// now" of hosted pipelines. With the runner lock free, it is run -once
// with the tables forced due; while a `sluice run` daemon holds it, the
// tables are handed to the daemon (a sync request) and sync waits for its
// answer.
func runSync(e *env, args []string) int {
	c := findCommand("sync")
	fs := newFlags(e, c)
	timeout := fs.Duration("timeout", time.Hour, "how long to wait for a running `sluice run` to sync the tables (0: no limit); the daemon keeps the request after it")
	var rf runnerFlags
	rf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	ctx, stop := commandContext()
	defer stop()
	var tables []string
	rs, code := e.openRunner(ctx, &rf, func(cfg *config.Config, st *state.State) int {
		var problems []string
		tables, problems = syncTargets(cfg, st, pos)
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "Error: %s\n", p)
		}
		if len(problems) > 0 {
			return exitError
		}
		if len(tables) == 0 {
			fmt.Fprintln(e.stdout, "No enabled table is applied: nothing to sync. Run `sluice plan` and `sluice apply` first.")
			return exitOK
		}
		return proceed
	})
	if code != proceed {
		return code
	}
	defer rs.close()
	start := time.Now()
	err := rs.lockRunner(ctx, "sync")
	var locked *state.RunnerLockedError
	if errors.As(err, &locked) && locked.Holder != nil && locked.Holder.Operation == "run" {
		return e.handOffSync(ctx, rs, &rf, tables, *timeout, locked.Holder)
	}
	if err != nil {
		return e.lockFailed(rs, "sync", err)
	}
	return e.syncHere(ctx, rs, &rf, tables, start)
}

// syncHere runs the sync in this process, which holds the runner lock.
func (e *env) syncHere(ctx context.Context, rs *runnerSession, rf *runnerFlags, tables []string, start time.Time) int {
	if err := e.buildRunner(ctx, rs, rf); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	failed, err := rs.r.Sync(ctx, tables)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	e.printRunSummary(rs.r.Outcomes(), failed, time.Since(start), true)
	if len(failed) > 0 {
		return exitError
	}
	return exitOK
}

// Polling intervals of a sync waiting for a daemon: the answer (one small
// read), and who holds the runner lock.
var (
	answerPoll = 100 * time.Millisecond
	holderPoll = time.Second
)

// pgTakeover is how long the postgres runner lock must be seen free
// before a waiting sync takes it: a daemon whose session was cut (a
// restart of the state database) takes its lock back at its next check,
// within its 10s poll, and a sync must not take it from it meanwhile. A
// local lock (flock) is only free once its holder is gone.
const pgTakeover = 15 * time.Second

// handOffSync records a sync request for the daemon holding the runner
// lock and waits for its answer, printed as syncHere prints. When the
// daemon stops before answering, the next runner takes the request; when
// none does (the lock is free), this process takes the lock and runs it.
func (e *env) handOffSync(ctx context.Context, rs *runnerSession, rf *runnerFlags, tables []string, timeout time.Duration, daemon *state.RunnerInfo) int {
	store, err := state.Requests(rs.backend)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	locker := rs.backend.(state.RunnerLocker) // lockRunner checked it
	start := time.Now()
	req := state.NewSyncRequest(tables)
	if err := store.PutSyncRequest(ctx, req); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s is running on this state, but the sync could not be handed to it: %s\n", daemon, err)
		return exitError
	}
	limit := "no time limit"
	if timeout > 0 {
		limit = "up to " + timeout.String()
	}
	fmt.Fprintf(e.stderr, "%s is running on this state: it syncs the %s now (sync request %s). Waiting for it (%s; Ctrl-C stops waiting and leaves the request to it).\n",
		daemon, plural(len(tables), "table"), req.ID, limit)
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	holder := daemon
	lastHolderCheck := time.Now()
	var freeSince time.Time
	takeover := time.Duration(0)
	if _, ok := rs.backend.(*pgstate.Postgres); ok {
		takeover = pgTakeover
	}
	var readErr error
	for {
		got, err := store.SyncRequest(ctx, req.ID)
		switch {
		case err != nil && ctx.Err() == nil:
			// The state database restarting, say: try again.
			if readErr == nil {
				fmt.Fprintf(e.stderr, "Warning: cannot read the answer (%s); trying again.\n", err)
			}
			readErr = err
		case err == nil && got == nil:
			fmt.Fprintf(e.stderr, "Error: sync request %s was deleted before it was answered; `sluice status` shows the tables' last syncs.\n", req.ID)
			return exitError
		case err == nil && got.Done():
			_ = store.DeleteSyncRequest(context.WithoutCancel(ctx), req.ID)
			return e.printAnswer(got, time.Since(start))
		}
		if time.Since(lastHolderCheck) >= holderPoll {
			lastHolderCheck = time.Now()
			h, err := locker.RunnerHolder(ctx)
			if h != nil || err != nil {
				freeSince = time.Time{}
			} else if freeSince.IsZero() {
				freeSince = time.Now()
			}
			switch {
			case err != nil:
			case h == nil && time.Since(freeSince) < takeover:
			case h == nil:
				// The daemon stopped before answering, and no runner
				// took its place: run the request here (its tables,
				// and the request itself, which Sync takes).
				lerr := rs.lockRunner(ctx, "sync")
				if lerr == nil {
					fmt.Fprintf(e.stderr, "%s stopped before answering; syncing here.\n", holder)
					code := e.syncHere(ctx, rs, rf, tables, start)
					if code == exitOK || ctx.Err() == nil {
						_ = store.DeleteSyncRequest(context.WithoutCancel(ctx), req.ID)
					}
					return code
				}
			case h.ID != "" && !state.SameRunner(h, holder):
				// A new runner takes pending requests when it starts.
				holder = h
				fmt.Fprintf(e.stderr, "%s holds the runner lock now; it takes the request.\n", holder)
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(e.stderr, "Interrupted: stopped waiting. %s keeps sync request %s and syncs the tables; `sluice status` shows the outcome.\n", holder, req.ID)
			return exitError
		case <-deadline:
			fmt.Fprintf(e.stderr, "Error: %s has not answered sync request %s within %s. It still has it and syncs the tables; `sluice status` shows the outcome (or wait longer with -timeout).\n", holder, req.ID, timeout)
			return exitError
		case <-time.After(answerPoll):
		}
	}
}

// printAnswer prints a daemon's answer as syncHere prints its own
// outcome, and returns the exit code.
func (e *env) printAnswer(req *state.SyncRequest, took time.Duration) int {
	if req.Error != "" {
		fmt.Fprintf(e.stderr, "Error: sync request %s %s\n", req.ID, req.Error)
		return exitError
	}
	outcomes := make([]runner.Outcome, len(req.Results))
	var failed []string
	for i, res := range req.Results {
		outcomes[i] = runner.Outcome{TableStatus: res, Ran: true}
		if res.State == state.StateFailed {
			failed = append(failed, res.Address)
		}
	}
	sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].Address < outcomes[j].Address })
	sort.Strings(failed)
	e.printRunSummary(outcomes, failed, took, true)
	if len(failed) > 0 {
		return exitError
	}
	return exitOK
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// syncTargets resolves sync's addresses against the applied state and the
// configuration (which holds the credentials): a table, or a source for
// each of its enabled tables; none for every enabled table. problems says
// what cannot be synced and why, naming each address.
func syncTargets(cfg *config.Config, st *state.State, addrs []string) (tables, problems []string) {
	seen := map[string]bool{}
	add := func(addr string) {
		if !seen[addr] {
			seen[addr] = true
			tables = append(tables, addr)
		}
	}
	notConfigured := func(addr, srcAddr string) string {
		return fmt.Sprintf("%s: source %s is recorded in state but not in the configuration, which holds its credentials; add its source block back, or run `sluice state rm %s`", addr, srcAddr, srcAddr)
	}
	if len(addrs) == 0 {
		for _, srcAddr := range st.SourceAddrs() {
			if cfg.Source(srcAddr) == nil {
				continue // the runner warns about it
			}
			src := st.Sources[srcAddr]
			for _, name := range src.TableNames() {
				if src.Tables[name].Enabled {
					add(srcAddr + "/" + name)
				}
			}
		}
		return tables, nil
	}
	known := append(stateAddrs(st), configAddrs(cfg)...)
	for _, addr := range addrs {
		srcAddr, name, isTable := strings.Cut(addr, "/")
		src := st.Sources[srcAddr]
		switch {
		case src != nil && cfg.Source(srcAddr) == nil:
			problems = append(problems, notConfigured(addr, srcAddr))
		case isTable && src != nil && src.Tables[name] != nil:
			if !src.Tables[name].Enabled {
				problems = append(problems, fmt.Sprintf("%s is disabled (enabled = false); enable it and run `sluice apply` to sync it", addr))
				continue
			}
			add(addr)
		case !isTable && src != nil:
			n := 0
			for _, t := range src.TableNames() {
				if src.Tables[t].Enabled {
					add(srcAddr + "/" + t)
					n++
				}
			}
			if n == 0 {
				problems = append(problems, fmt.Sprintf("%s has no enabled table to sync", addr))
			}
		case inConfig(cfg, srcAddr, name, isTable):
			problems = append(problems, fmt.Sprintf("%s is in the configuration but not applied yet; run `sluice plan` and `sluice apply` first", addr))
		default:
			problems = append(problems, fmt.Sprintf("%s is not a table or source of this configuration.%s Addresses are TYPE.NAME (a source: all its enabled tables) or TYPE.NAME/TABLE; `sluice state list` shows the applied ones.",
				addr, closest(addr, known)))
		}
	}
	return tables, problems
}

// configAddrs are the source and table addresses of the configuration.
func configAddrs(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Sources {
		out = append(out, s.Address())
		for _, t := range s.Tables {
			out = append(out, s.Address()+"/"+t.Name)
		}
	}
	return out
}

func inConfig(cfg *config.Config, srcAddr, name string, isTable bool) bool {
	s := cfg.Source(srcAddr)
	if s == nil || !isTable {
		return s != nil
	}
	for _, t := range s.Tables {
		if t.Name == name {
			return true
		}
	}
	return false
}

// syncHint suggests sync to someone who gave run an address.
func syncHint(arg string) string {
	if strings.HasPrefix(arg, "-") {
		return ""
	}
	return fmt.Sprintf(" To sync a table now, run `sluice sync %s`.", arg)
}

// runnerFlags are the flags run and sync share.
type runnerFlags struct {
	vars        varFlags
	id          string
	concurrency int
	logFormat   string
	logLevel    string
	parallel    int
}

func (f *runnerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.id, "id", "", "this runner's `NAME`, shown in logs, status and the runner lock (default: <hostname>-<pid>)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "syncs running at once (default: the runner block's concurrency)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `FORMAT`: text, or json for machines")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn, error")
	fs.IntVar(&f.parallel, "parallel", 2, "connections one full read of a large table may use")
	f.vars.register(fs)
}

// runnerSession is a runner ready to run, holding the runner lock.
type runnerSession struct {
	id          string // the runner's name (-id)
	cfg         *config.Config
	logger      hclog.Logger
	backend     state.Backend
	lock        state.RunnerLock
	owner       *state.RunnerInfo
	r           *runner.Runner
	wh          warehouse.Warehouse
	concurrency int
	// sweep ends the removal of orphan files started with the session
	// (nil when the warehouse has none to remove).
	sweep func()
	// claims and pool are a fleet runner's (postgres state backend): its
	// claim session, which stands for the runner lock, and connections
	// for the job engine and the shared webhook journals.
	claims *pgstate.Claims
	pool   *pgxpool.Pool
	// notify sends the notify blocks' messages (nil: none).
	notify *notify.Notifier
}

func (s *runnerSession) close() {
	if s.r != nil {
		_ = s.r.Close()
	}
	closeNotifier(s.notify)
	if s.pool != nil {
		s.pool.Close()
	}
	if s.claims != nil {
		_ = s.claims.Close()
	}
	if s.sweep != nil {
		s.sweep()
	}
	if s.wh != nil {
		_ = s.wh.Close()
	}
	if s.lock != nil {
		_ = s.lock.Unlock()
	}
	if s.backend != nil {
		_ = s.backend.Close()
	}
}

// startRunner loads the configuration, opens the state, takes the runner
// lock (one runner at a time: run, run -once and sync all record status)
// and makes the runner. check, when set, looks at the applied state
// first, and stops with its exit code unless it says proceed.
func (e *env) startRunner(ctx context.Context, f *runnerFlags, operation string, check func(*config.Config, *state.State) int) (*runnerSession, int) {
	s, code := e.openRunner(ctx, f, check)
	if code != proceed {
		return nil, code
	}
	if err := s.lockRunner(ctx, operation); err != nil {
		return nil, e.lockFailed(s, operation, err)
	}
	if err := e.buildRunner(ctx, s, f); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		s.close()
		return nil, exitError
	}
	return s, proceed
}

// openRunner is startRunner up to the runner lock: the configuration, the
// logger, the state backend and check.
func (e *env) openRunner(ctx context.Context, f *runnerFlags, check func(*config.Config, *state.State) int) (*runnerSession, int) {
	if f.logFormat != "text" && f.logFormat != "json" {
		fmt.Fprintf(e.stderr, "Error: -log-format must be text or json, not %q.\n", f.logFormat)
		return nil, exitError
	}
	id := f.id
	if id == "" {
		id = state.DefaultRunnerID()
	} else if err := state.CheckRunnerID(id); err != nil {
		fmt.Fprintf(e.stderr, "Error: %s.\n", err)
		return nil, exitError
	}
	cfg, diags := e.loadConfig(&f.vars, true)
	if diags.HasErrors() {
		return nil, exitError
	}
	s := &runnerSession{id: id, cfg: cfg}
	fail := func(err error) (*runnerSession, int) {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		s.close()
		return nil, exitError
	}
	s.logger = hclog.New(&hclog.LoggerOptions{
		Name:       "sluice",
		Output:     e.stderr,
		JSONFormat: f.logFormat == "json",
		Level:      hclog.LevelFromString(f.logLevel),
		Color:      hclog.ColorOff,
	}).With("runner", id)
	var err error
	if s.backend, err = state.Open(ctx, cfg.State, cfg.Dir); err != nil {
		return fail(err)
	}
	if check != nil {
		st, err := s.backend.Read(ctx)
		if err != nil {
			return fail(err)
		}
		if code := check(cfg, st); code != proceed {
			s.close()
			return nil, code
		}
	}
	return s, proceed
}

// lockRunner takes the runner lock for operation; a *RunnerLockedError
// (wrapped) names the holder.
func (s *runnerSession) lockRunner(ctx context.Context, operation string) error {
	if s.cfg.IsFleet() {
		return s.joinFleet(ctx, operation)
	}
	locker, ok := s.backend.(state.RunnerLocker)
	if !ok {
		return fmt.Errorf("the %T state backend has no runner lock", s.backend)
	}
	owner := state.NewRunnerInfo(operation)
	owner.ID = s.id
	lock, err := locker.LockRunner(ctx, owner)
	if err != nil {
		return err
	}
	s.lock, s.owner = lock, &owner
	return nil
}

// joinFleet makes s a runner of a fleet: instead of the runner lock, it
// opens the runner's claim session (which records the runner and its
// heartbeats) and a pool of connections to the state database.
func (s *runnerSession) joinFleet(ctx context.Context, operation string) error {
	pg, ok := s.backend.(*pgstate.Postgres)
	if !ok {
		return fmt.Errorf("a fleet needs the postgres state backend, not %T", s.backend)
	}
	owner := state.NewRunnerInfo(operation)
	owner.ID = s.id
	claims, err := pg.OpenClaims(ctx, owner, claimTimeout())
	if err != nil {
		return err
	}
	info := claims.Info()
	s.claims, s.owner = claims, &info
	return nil
}

// claimTimeout is how long a fleet runner that stops answering keeps its
// claims: SLUICE_CLAIM_TIMEOUT (a Go duration, at least 2s), or 20s.
func claimTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SLUICE_CLAIM_TIMEOUT")); err == nil && d >= 2*time.Second {
		return d
	}
	return pgstate.DefaultClaimTimeout
}

// lockFailed says why the runner lock was not taken, closes s and returns
// the exit code.
func (e *env) lockFailed(s *runnerSession, operation string, err error) int {
	var locked *state.RunnerLockedError
	if errors.As(err, &locked) {
		fmt.Fprintf(e.stderr, "Error: cannot start `sluice %s`: %s\n", operation, err)
	} else {
		fmt.Fprintf(e.stderr, "Error: cannot take the runner lock: %s\n", err)
	}
	s.close()
	return exitError
}

// buildRunner makes the runner of a session holding the runner lock.
func (e *env) buildRunner(ctx context.Context, s *runnerSession, f *runnerFlags) error {
	store, err := state.Statuses(s.backend)
	if err != nil {
		return err
	}
	requests, err := state.Requests(s.backend)
	if err != nil {
		return err
	}
	wh, err := openWarehouse(ctx, s.cfg)
	if err != nil {
		return err
	}
	s.wh = wh
	s.concurrency = s.cfg.Runner.Concurrency
	if f.concurrency > 0 {
		s.concurrency = f.concurrency
	}
	opt := runner.Options{
		Config:      s.cfg,
		Backend:     s.backend,
		Status:      store,
		Warehouse:   wh,
		Resources:   openResources,
		Concurrency: s.concurrency,
		Logger:      s.logger,
		Parallel:    f.parallel,
		Owner:       s.owner,
		Lock:        s.lock,
		Requests:    requests,
		JournalDir:  journalDir(s.backend, s.cfg.Dir),
		Metrics:     runner.NewRunnerMetrics(s.id),
	}
	if s.claims != nil {
		// A fleet: no runner lock to hand sync requests over with (each
		// runner runs what it claims), and the status records and
		// journals are shared.
		opt.Claims, opt.Requests = s.claims, nil
		pg := s.backend.(*pgstate.Postgres)
		if s.pool, err = pg.NewPool(ctx, int32(s.concurrency+4), "sluice runner "+s.id); err != nil {
			return err
		}
		pool := s.pool
		opt.WebhookJournal = func(ctx context.Context, source string) (journal.Store, error) {
			return pgjournal.OpenPostgres(ctx, pool, source, time.Now())
		}
	}
	if isTerminal(e.stderr) {
		opt.Progress = e.stderr
	}
	// notify blocks: messages on failures, recoveries, stale tables and
	// slot lag (notify.go).
	s.notify = newNotifier(s.cfg, s.id, s.logger)
	opt.Notify = s.notify
	s.r = runner.New(opt)
	return nil
}

// journalDir is where the runner keeps its webhook journals: beside the
// local backend's state file (<state dir>/webhooks), and under the
// configuration's directory (.sluice/webhooks) with a backend that has no
// directory of its own (postgres).
func journalDir(b state.Backend, configDir string) string {
	if l, ok := b.(*state.Local); ok {
		return filepath.Join(filepath.Dir(l.Path()), "webhooks")
	}
	return filepath.Join(configDir, ".sluice", "webhooks")
}
