// Command sluice-fleetbench is `make bench`'s fleet part: it measures how
// fast several `sluice run` processes sharing one configuration (a fleet:
// the postgres state backend, table syncs as jobs in the state database)
// get through many small tables, against one runner with runner { fleet =
// false } (the in-process scheduler) in the same run on the same machine.
//
// The work is -tables full_refresh tables of -rows rows each, all due at
// the start (never synced), into a PostgreSQL warehouse; the source, the
// state and the warehouse are databases of one throwaway cluster. Each
// configuration gets a state and a warehouse database of its own and an
// `apply` (not timed); then its runners start together, as bin/sluice
// subprocesses as users run them, and the time runs until the status
// records every table completed once. The runners are then stopped with
// SIGTERM.
//
// Printed per configuration: the wall time, tables/s, the time against
// the baseline's, and how the tables spread over the runners; then the
// fleet's per-job overhead, (one fleet runner's time − the baseline's) /
// tables. On a machine with few cores more runners mostly share the same
// CPUs: the figures say what the coordination costs more than how far a
// fleet on several machines scales.
//
// Before sluice has a fleet, a second runner on the same state refuses to
// start ("another sluice runner is running"): those configurations are
// reported as refused, and only the baseline and the one-runner case are
// measured.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/state/pgstate"
)

func main() {
	tables := flag.Int("tables", 200, "full_refresh tables to sync, all due at the start")
	rows := flag.Int("rows", 1000, "rows per table")
	runnersList := flag.String("runners", "1,2,3", "fleet sizes to measure, comma-separated")
	bin := flag.String("sluice", "bin/sluice", "the sluice binary")
	concurrency := flag.Int("concurrency", 4, "syncs at once per runner (runner { concurrency }), the baseline's and each fleet runner's")
	repeat := flag.Int("repeat", 1, "measure each configuration this many times and keep the best")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up on a configuration after this long")
	flag.Parse()
	var sizes []int
	for _, f := range strings.Split(*runnersList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "sluice-fleetbench: -runners=%q: want positive whole numbers, such as 1,2,3\n", *runnersList)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	if *tables < 1 || *rows < 0 || *concurrency < 1 || *repeat < 1 {
		fmt.Fprintln(os.Stderr, "sluice-fleetbench: -tables, -concurrency and -repeat must be at least 1, -rows at least 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{bin: *bin, tables: *tables, rows: *rows, concurrency: *concurrency, repeat: *repeat, timeout: *timeout}
	if err := b.run(ctx, sizes); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-fleetbench: %v\n", err)
		os.Exit(1)
	}
}

// config is one measured configuration: a number of runners, in a fleet
// or not.
type config struct {
	runners int
	fleet   bool
}

func (c config) String() string {
	if !c.fleet {
		return "baseline (fleet = false)"
	}
	return fmt.Sprintf("fleet of %d", c.runners)
}

// result is a configuration's best measurement.
type result struct {
	config
	wall time.Duration
	// first is when the first table completed: mostly the runners'
	// start-up (configuration, state, connections).
	first time.Duration
	// perRunner counts the tables each runner synced (status "runner").
	perRunner map[string]int
	// refused is the refusal of a runner that would not start beside
	// another; the configuration has no figures then.
	refused string
}

type bench struct {
	bin                 string
	tables, rows        int
	concurrency, repeat int
	timeout             time.Duration
	cluster             *pgtest.Cluster
	sourceURL           string
	databases           int // state and warehouse databases made so far
}

func (b *bench) run(ctx context.Context, sizes []int) error {
	if _, err := os.Stat(b.bin); err != nil {
		return fmt.Errorf("%s not found: run `make build` first", b.bin)
	}
	b.bin, _ = filepath.Abs(b.bin)
	// Each runner holds pools to the state and warehouse databases (and a
	// fleet's job queue and claims): room for several runners.
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"max_connections": "400", "shared_buffers": "256MB"}})
	if err != nil {
		return err
	}
	defer c.Stop()
	b.cluster = c
	if b.sourceURL, err = c.CreateDatabase(ctx, "source"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "creating %d tables of %d rows ...\n", b.tables, b.rows)
	if err := b.fill(ctx); err != nil {
		return err
	}
	configs := []config{{runners: 1, fleet: false}}
	for _, n := range sizes {
		configs = append(configs, config{runners: n, fleet: true})
	}
	var results []result
	for _, cfg := range configs {
		best := result{config: cfg}
		for i := range b.repeat {
			fmt.Fprintf(os.Stderr, "%s: run %d of %d ...\n", cfg, i+1, b.repeat)
			r, err := b.measure(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", cfg, err)
			}
			if r.refused != "" {
				best = r
				fmt.Fprintf(os.Stderr, "%s: a runner refused to start beside another: %s\n", cfg, r.refused)
				break
			}
			if best.wall == 0 || r.wall < best.wall {
				best = r
			}
		}
		results = append(results, best)
	}
	b.report(os.Stdout, results)
	return nil
}

// fill creates the source tables, t0001 and on, each of b.rows rows.
func (b *bench) fill(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.sourceURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := 1; i <= b.tables; i++ {
		name := pgx.Identifier{tableName(i)}.Sanitize()
		if _, err := conn.Exec(ctx, `CREATE TABLE `+name+` (id int PRIMARY KEY, label text NOT NULL, amount numeric(10,2), at timestamptz NOT NULL)`); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO `+name+` SELECT g, 'label ' || g, (g % 10000) / 100.0, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, $1::int) g`, b.rows); err != nil {
			return err
		}
	}
	_, err = conn.Exec(ctx, "VACUUM ANALYZE")
	return err
}

func tableName(i int) string { return fmt.Sprintf("t%04d", i) }

// configHCL is the measured configuration; %s are the runner block's
// fleet line and the table blocks.
const configHCL = `
variable "source_url" {
  type = string
}

variable "state_url" {
  type = string
}

variable "warehouse_url" {
  type = string
}

state {
  backend = "postgres"
  url     = var.state_url
}

warehouse {
  backend = "postgres"
  url     = var.warehouse_url
  sslmode = "disable"
}

runner {
  concurrency = %d
%s}

source "postgres" "bench" {
  connection_string = var.source_url
  sslmode           = "disable"
  prefix            = "bench"
  frequency         = "24h"
%s}
`

// measure applies a fresh copy of the configuration (new state and
// warehouse databases), starts its runners and times them until every
// table has completed once.
func (b *bench) measure(ctx context.Context, cfg config) (result, error) {
	res := result{config: cfg}
	b.databases++
	stateURL, err := b.cluster.CreateDatabase(ctx, fmt.Sprintf("state_%d", b.databases))
	if err != nil {
		return res, err
	}
	whURL, err := b.cluster.CreateDatabase(ctx, fmt.Sprintf("warehouse_%d", b.databases))
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "sluice-fleetbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	fleetLine := ""
	if !cfg.fleet {
		fleetLine = "  fleet       = false\n"
	}
	var blocks strings.Builder
	for i := 1; i <= b.tables; i++ {
		fmt.Fprintf(&blocks, "\n  table %q {\n    sync = \"full_refresh\"\n  }\n", tableName(i))
	}
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), fmt.Appendf(nil, configHCL, b.concurrency, fleetLine, blocks.String()), 0o644); err != nil {
		return res, err
	}
	env := append(os.Environ(), "SLUICE_VAR_source_url="+b.sourceURL, "SLUICE_VAR_state_url="+stateURL, "SLUICE_VAR_warehouse_url="+whURL)
	apply := exec.CommandContext(ctx, b.bin, "-chdir="+dir, "-no-color", "apply", "-auto-approve")
	apply.Env = env
	if out, err := apply.CombinedOutput(); err != nil {
		return res, fmt.Errorf("sluice apply: %v\n%s", err, out)
	}
	st, err := pgstate.OpenPostgres(ctx, stateURL)
	if err != nil {
		return res, err
	}
	defer st.Close()

	runners := make([]*runnerProc, cfg.runners)
	start := time.Now()
	for i := range runners {
		id := fmt.Sprintf("runner-%d", i+1)
		cmd := exec.Command(b.bin, "-chdir="+dir, "-no-color", "run", "-id="+id, "-listen=127.0.0.1:0")
		cmd.Env = env
		runners[i] = &runnerProc{id: id, cmd: cmd, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = &runners[i].out, &runners[i].out
		if err := cmd.Start(); err != nil {
			stopAll(runners[:i])
			return res, err
		}
		go func(r *runnerProc) {
			r.err = r.cmd.Wait()
			close(r.done)
		}(runners[i])
	}
	defer stopAll(runners)
	defer keepLogs(runners, cfg, start)

	deadline := time.After(b.timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline:
			return res, fmt.Errorf("not every table completed within %s (-timeout)", b.timeout)
		case <-tick.C:
		}
		for _, r := range runners {
			select {
			case <-r.done:
				out := r.out.String()
				if refusal(out) {
					msg, _, _ := strings.Cut(lastLine(out), ". Only one runner")
					res.refused = fmt.Sprintf("%s: %s", r.id, msg)
					return res, nil
				}
				return res, fmt.Errorf("%s exited before every table completed (%v):\n%s", r.id, r.err, tail(out, 20))
			default:
			}
		}
		status, err := st.ReadStatus(ctx)
		if err != nil {
			return res, err
		}
		completed, failed := 0, []string(nil)
		for _, ts := range status.Tables {
			switch ts.State {
			case state.StateCompleted:
				completed++
			case state.StateFailed:
				failed = append(failed, ts.Address+": "+ts.LastError)
			}
		}
		if len(failed) > 0 {
			sort.Strings(failed)
			return res, fmt.Errorf("%d table(s) failed, such as %s", len(failed), failed[0])
		}
		if completed > 0 && res.first == 0 {
			res.first = time.Since(start)
		}
		if completed >= b.tables {
			res.wall = time.Since(start)
			res.perRunner = map[string]int{}
			for _, ts := range status.Tables {
				res.perRunner[ts.Runner]++
			}
			return res, nil
		}
	}
}

// runnerProc is one `sluice run` subprocess.
type runnerProc struct {
	id   string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error
}

// stopAll stops the runners still running with SIGTERM, as a supervisor
// does, and waits for them; one that does not stop within a minute is
// killed.
func stopAll(runners []*runnerProc) {
	for _, r := range runners {
		if r != nil && r.cmd.Process != nil {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, r := range runners {
		if r == nil || r.cmd.Process == nil {
			continue
		}
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			fmt.Fprintf(os.Stderr, "%s did not stop within a minute of SIGTERM; killing it\n", r.id)
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	}
}

// keepLogs writes what each runner printed to BENCH_LOG_DIR, when set,
// for looking into a figure.
func keepLogs(runners []*runnerProc, cfg config, start time.Time) {
	dir := os.Getenv("BENCH_LOG_DIR")
	if dir == "" {
		return
	}
	stopAll(runners) // the logs are complete once the runners have stopped
	for _, r := range runners {
		name := fmt.Sprintf("fleetbench-%d-%t-%s-%d.log", cfg.runners, cfg.fleet, r.id, start.UnixNano())
		_ = os.WriteFile(filepath.Join(dir, name), []byte(r.out.String()), 0o644)
	}
}

// refusal reports whether a runner's output is the runner lock's refusal
// (a second runner on a state without a fleet).
func refusal(out string) bool {
	return strings.Contains(out, state.ErrRunnerLocked.Error()) || strings.Contains(out, "holds the runner lock")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (b *bench) report(w io.Writer, results []result) {
	var base time.Duration
	if len(results) > 0 && results[0].refused == "" {
		base = results[0].wall
	}
	fmt.Fprintf(w, "\n%d full_refresh tables of %d rows into a PostgreSQL warehouse, every table due at the start; concurrency %d per runner; %d CPUs\n\n",
		b.tables, b.rows, b.concurrency, runtime.NumCPU())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "configuration\trunners\twall time\tfirst table\ttables/s\tvs baseline\ttables per runner\t")
	var fleet1 time.Duration
	var refused []result
	for _, r := range results {
		if r.refused != "" {
			fmt.Fprintf(tw, "%s\t%d\trefused\t-\t-\t-\t-\t\n", r.config, r.runners)
			refused = append(refused, r)
			continue
		}
		if r.fleet && r.runners == 1 {
			fleet1 = r.wall
		}
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2fx", r.wall.Seconds()/base.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f\t%s\t%s\t\n", r.config, r.runners, r.wall.Round(time.Millisecond),
			r.first.Round(time.Millisecond), float64(b.tables)/r.wall.Seconds(), ratio, spread(r.perRunner))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nwall time: from starting the runners (`sluice run` subprocesses) until the status records every table completed once;")
	fmt.Fprintln(w, "first table: until the first completed (mostly start-up); vs baseline: wall time / the baseline's.")
	if base > 0 && fleet1 > 0 {
		ms := float64((fleet1 - base).Microseconds()) / 1000 / float64(b.tables)
		if math.Abs(ms) < 0.05 {
			ms = 0 // not "-0.0"
		}
		fmt.Fprintf(w, "per-job overhead of the fleet: (fleet of 1 − baseline) / %d tables = %.1f ms\n", b.tables, ms)
	}
	for _, r := range refused {
		fmt.Fprintf(w, "%s: refused, a runner would not start beside another: this sluice has no fleet yet (one runner per state).\n  %s\n", r.config, r.refused)
	}
}

// spread is how many tables each runner synced, most first: "70 / 66 / 64".
func spread(per map[string]int) string {
	var n []int
	for _, c := range per {
		n = append(n, c)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(n)))
	parts := make([]string, len(n))
	for i, c := range n {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, " / ")
}

// syncBuffer is a runner's output, read while the runner writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
