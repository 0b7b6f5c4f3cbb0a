package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/runner"
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
	concurrency := fs.Int("concurrency", 0, "syncs running at once (default: the runner block's concurrency)")
	logFormat := fs.String("log-format", "text", "log `FORMAT`: text, or json for machines")
	logLevel := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn, error")
	parallel := fs.Int("parallel", 2, "connections one full read of a large table may use")
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: run takes no arguments (got %q).\n", pos[0])
		return exitError
	}
	if *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(e.stderr, "Error: -log-format must be text or json, not %q.\n", *logFormat)
		return exitError
	}
	cfg, diags := e.loadConfig(&vf, true)
	if diags.HasErrors() {
		return exitError
	}
	ctx, stop := runContext()
	defer stop()
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "sluice",
		Output:     e.stderr,
		JSONFormat: *logFormat == "json",
		Level:      hclog.LevelFromString(*logLevel),
		Color:      hclog.ColorOff,
	})
	backend, err := state.Open(ctx, cfg.State, cfg.Dir)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	defer backend.Close()
	store, err := state.Statuses(backend)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	wh, err := openWarehouse(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	n := cfg.Runner.Concurrency
	if *concurrency > 0 {
		n = *concurrency
	}
	opt := runner.Options{
		Config:      cfg,
		Backend:     backend,
		Status:      store,
		Warehouse:   wh,
		Resources:   openResources,
		Concurrency: n,
		Logger:      logger,
		Parallel:    *parallel,
	}
	if isTerminal(e.stderr) {
		opt.Progress = e.stderr
	}
	r := runner.New(opt)
	defer r.Close()
	if *once {
		start := time.Now()
		failed, err := r.Once(ctx)
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s\n", err)
			return exitError
		}
		e.printRunSummary(r.Statuses(), failed, time.Since(start))
		if len(failed) > 0 {
			return exitError
		}
		return exitOK
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
	logger.Info("runner started", "listen", ln.Addr().String(), "concurrency", n)
	err = r.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	return exitOK
}

func (e *env) printRunSummary(statuses []state.TableStatus, failed []string, took time.Duration) {
	for _, ts := range statuses {
		switch ts.State {
		case state.StateCompleted:
			fmt.Fprintf(e.stdout, "%-40s %-10s %10d rows  (%d read)\n", ts.Address, ts.State, ts.RowsSynced, ts.LastRunRows)
		case state.StateFailed:
			fmt.Fprintf(e.stdout, "%-40s %-10s %s\n", ts.Address, ts.State, ts.LastError)
		default:
			note := ""
			if ts.LastError != "" {
				note = " " + ts.LastError
			}
			fmt.Fprintf(e.stdout, "%-40s %-10s%s\n", ts.Address, ts.State, note)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(e.stdout, "\n%d sync(s) failed: %s (%s).\n", len(failed), strings.Join(failed, ", "), took.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(e.stdout, "\nAll due syncs completed in %s.\n", took.Round(time.Millisecond))
}
