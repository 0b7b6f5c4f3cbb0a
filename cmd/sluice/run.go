package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/runner"
	"github.com/sluice-dev/sluice/runner/fleet"
	"github.com/sluice-dev/sluice/state"
)

func init() { implement("run", runRun) }

// runContext is the daemon's context, ended by SIGINT or SIGTERM; tests
// replace it to stop the daemon.
var runContext = commandContext

func runRun(e *env, args []string) int {
	c := findCommand("run")
	fs := newFlags(e, c)
	once := fs.Bool("once", false, "run every sync that is due now, wait for them, and exit (1 if any failed)")
	listen := fs.String("listen", "", "serve /healthz, /metrics and webhooks on `ADDR` (default: the runner block's listen)")
	var rf runnerFlags
	rf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: run takes no arguments (got %q).%s\n", pos[0], syncHint(pos[0]))
		return exitError
	}
	operation := "run"
	if *once {
		operation = "run -once"
	}
	ctx, stop := runContext()
	defer stop()
	rs, code := e.startRunner(ctx, &rf, operation, nil)
	if code != proceed {
		return code
	}
	defer rs.close()
	cfg, logger, r, n := rs.cfg, rs.logger, rs.r, rs.concurrency
	if *once {
		start := time.Now()
		failed, err := r.Once(ctx)
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s\n", err)
			return exitError
		}
		e.printRunSummary(r.Outcomes(), failed, time.Since(start), false)
		if len(failed) > 0 {
			return exitError
		}
		return exitOK
	}
	// The daemon's start removes what failed or killed commits left in
	// the warehouse (run -once leaves it to the tables' maintenance: a
	// sweep lists every table's files, too much for a cron job's start).
	// In a fleet, only a runner that starts alone sweeps: another runner's
	// commit in progress has files no snapshot names yet.
	if rs.claims == nil || rs.aloneInFleet(ctx) {
		rs.sweep = sweepOrphans(ctx, rs.wh, logger)
	}
	addr := cfg.Runner.Listen
	if *listen != "" {
		addr = *listen
	}
	srv := newServer(addr, r, defaultServerLimits)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: cannot listen on %s: %s; pass -listen=ADDR or change the runner block's listen.\n", addr, err)
		return exitError
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "error", err)
		}
	}()
	var engine *fleet.Engine
	if rs.claims != nil {
		if err := fleet.Migrate(ctx, rs.pool); err != nil {
			fmt.Fprintf(e.stderr, "Error: %s\n", err)
			return exitError
		}
		info := rs.claims.Info()
		// The engine stops when asked, after ctx ends (below): its jobs
		// get SoftStop to finish.
		engine, err = fleet.Start(context.WithoutCancel(ctx), fleet.Options{
			Pool: rs.pool, Runner: r, ID: info.ID + "-" + shortInstance(info.Instance), Concurrency: n, Logger: logger,
			SoftStop: fleetSoftStop,
		})
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s\n", err)
			return exitError
		}
		logger.Info("runner joined the fleet", "state_backend", "postgres", "claim_timeout", claimTimeout())
	}
	logger.Info("runner started", "listen", ln.Addr().String(), "concurrency", n)
	engineDone := make(chan error, 1)
	if engine != nil {
		go func() {
			<-ctx.Done()
			logger.Info("stopping: handing running syncs back to the fleet after at most " + fleetSoftStop.String())
			engineDone <- engine.Stop(context.Background())
		}()
	}
	err = r.Run(ctx)
	if engine != nil {
		if serr := <-engineDone; serr != nil {
			logger.Warn("stopping the job engine", "error", serr)
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	return exitOK
}

// printRunSummary prints a line per table of a run -once or sync: the
// tables it synced with their outcome, and (run -once) those that were not
// due with their next sync. onlyRan leaves the others out (sync).
func (e *env) printRunSummary(outcomes []runner.Outcome, failed []string, took time.Duration, onlyRan bool) {
	ran := 0
	for _, o := range outcomes {
		if o.Ran {
			ran++
		} else if onlyRan {
			continue
		}
		switch {
		case !o.Ran && o.Elsewhere != "":
			fmt.Fprintf(e.stdout, "%-40s %-10s %s\n", o.Address, "elsewhere", o.Elsewhere)
		case !o.Ran && o.State != state.StateDisabled:
			next := ""
			if !o.NextSyncAt.IsZero() {
				next = "next sync " + o.NextSyncAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			if o.State == state.StateFailed && o.LastError != "" {
				next += " (the last attempt failed: " + o.LastError + ")"
			}
			fmt.Fprintf(e.stdout, "%-40s %-10s %s\n", o.Address, "not due", next)
		case o.State == state.StateCompleted:
			fmt.Fprintf(e.stdout, "%-40s %-10s %10d rows  (%d read)\n", o.Address, o.State, o.RowsSynced, o.LastRunRows)
		case o.State == state.StateFailed:
			fmt.Fprintf(e.stdout, "%-40s %-10s %s\n", o.Address, o.State, o.LastError)
		default:
			note := ""
			if o.LastError != "" {
				note = " " + o.LastError
			}
			fmt.Fprintf(e.stdout, "%-40s %-10s%s\n", o.Address, o.State, note)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(e.stdout, "\n%d sync(s) failed: %s (%s).\n", len(failed), strings.Join(failed, ", "), took.Round(time.Millisecond))
		return
	}
	if onlyRan {
		fmt.Fprintf(e.stdout, "\nAll %d sync(s) completed in %s.\n", ran, took.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(e.stdout, "\nAll due syncs completed in %s.\n", took.Round(time.Millisecond))
}

// fleetSoftStop bounds how long a stopping fleet runner waits for its
// running syncs before it cancels them and hands their jobs back.
const fleetSoftStop = 30 * time.Second

// shortInstance is the start of a runner's instance id, to tell apart
// runners started under the same name.
func shortInstance(instance string) string {
	if len(instance) > 8 {
		return instance[:8]
	}
	return instance
}

// aloneInFleet reports whether no other runner of the fleet is alive.
func (s *runnerSession) aloneInFleet(ctx context.Context) bool {
	reg, ok := s.backend.(state.RunnerRegistry)
	if !ok {
		return false
	}
	runners, err := reg.Runners(ctx)
	if err != nil {
		return false
	}
	me := s.claims.Info()
	for _, r := range runners {
		if r.Alive && r.Instance != me.Instance {
			return false
		}
	}
	return true
}
