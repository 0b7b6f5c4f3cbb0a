package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/state"
)

func init() { implement("sync", runSync) }

// runSync syncs the named tables now, whatever their schedule: the "sync
// now" of hosted pipelines. It is run -once with the tables forced due.
func runSync(e *env, args []string) int {
	c := findCommand("sync")
	fs := newFlags(e, c)
	var rf runnerFlags
	rf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	ctx, stop := commandContext()
	defer stop()
	var tables []string
	rs, code := e.startRunner(ctx, &rf, "sync", func(cfg *config.Config, st *state.State) int {
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
	concurrency int
	logFormat   string
	logLevel    string
	parallel    int
}

func (f *runnerFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.concurrency, "concurrency", 0, "syncs running at once (default: the runner block's concurrency)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `FORMAT`: text, or json for machines")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn, error")
	fs.IntVar(&f.parallel, "parallel", 2, "connections one full read of a large table may use")
	f.vars.register(fs)
}

// runnerSession is a runner ready to run, holding the runner lock.
type runnerSession struct {
	cfg         *config.Config
	logger      hclog.Logger
	backend     state.Backend
	lock        state.RunnerLock
	r           *runner.Runner
	concurrency int
}

func (s *runnerSession) close() {
	if s.r != nil {
		_ = s.r.Close()
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
	if f.logFormat != "text" && f.logFormat != "json" {
		fmt.Fprintf(e.stderr, "Error: -log-format must be text or json, not %q.\n", f.logFormat)
		return nil, exitError
	}
	cfg, diags := e.loadConfig(&f.vars, true)
	if diags.HasErrors() {
		return nil, exitError
	}
	s := &runnerSession{cfg: cfg}
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
	})
	var err error
	if s.backend, err = state.Open(ctx, cfg.State, cfg.Dir); err != nil {
		return fail(err)
	}
	store, err := state.Statuses(s.backend)
	if err != nil {
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
	locker, ok := s.backend.(state.RunnerLocker)
	if !ok {
		return fail(fmt.Errorf("the %T state backend has no runner lock", s.backend))
	}
	owner := state.NewRunnerInfo(operation)
	if s.lock, err = locker.LockRunner(ctx, owner); err != nil {
		var locked *state.RunnerLockedError
		if errors.As(err, &locked) {
			return fail(fmt.Errorf("cannot start `sluice %s`: %w", operation, err))
		}
		return fail(fmt.Errorf("cannot take the runner lock: %w", err))
	}
	wh, err := openWarehouse(cfg)
	if err != nil {
		return fail(err)
	}
	s.concurrency = cfg.Runner.Concurrency
	if f.concurrency > 0 {
		s.concurrency = f.concurrency
	}
	opt := runner.Options{
		Config:      cfg,
		Backend:     s.backend,
		Status:      store,
		Warehouse:   wh,
		Resources:   openResources,
		Concurrency: s.concurrency,
		Logger:      s.logger,
		Parallel:    f.parallel,
		Owner:       &owner,
		Lock:        s.lock,
	}
	if isTerminal(e.stderr) {
		opt.Progress = e.stderr
	}
	s.r = runner.New(opt)
	return s, proceed
}
