// Command sluice-cdcbench is `make bench`'s CDC part: it measures sluice's
// change stream under pgbench's TPC-B load, in the same run on the same
// machine as the yardstick, and prints what it found.
//
//   - Catch-up: pgbench runs with no sluice running; then `sluice run
//     -once` drains the WAL it wrote into the warehouse (changes/s with
//     every warehouse commit), and pg_recvlogical drains a second slot of
//     the same publication to /dev/null (the server's decoding alone).
//   - Freshness: the `sluice run` daemon streams while pgbench runs; a
//     marker row is inserted every 100 ms, and the time from its COMMIT to
//     its visibility in the warehouse table (a reader polling the
//     committed manifest) is measured.
//   - Memory: the RSS of the sluice process, sampled during both.
//
// -warehouse=postgres streams into a PostgreSQL warehouse (another
// database of the same cluster) instead of Parquet; the reader then polls
// the marker table there. -warehouse=iceberg streams into Iceberg tables
// in a local directory (SQLite catalog beside the state); the reader
// polls the marker table's current snapshot through the catalog.
//
// -scale takes a comma-separated list (-scale=1,50): the whole benchmark
// runs once per scale, each on a fresh cluster, and a last table puts the
// scales side by side, to show whether the figures hold as the tables
// grow.
//
// sluice runs as bin/sluice in a subprocess, as users run it. For
// profiling, BENCH_SLUICE_ENV=NAME=VALUE is added to its environment
// (SLUICE_CPUPROFILE=FILE, GODEBUG=gctrace=1), and BENCH_SLUICE_LOG=FILE
// keeps the output of the catch-up's run -once.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/iceberg"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

func main() {
	bin := flag.String("sluice", "bin/sluice", "the sluice binary")
	scales := flag.String("scale", "1", "pgbench scale (pgbench -i -s); a comma-separated list runs the benchmark at each and compares them")
	clients := flag.Int("clients", 4, "pgbench clients (-c)")
	seconds := flag.Int("seconds", 20, "pgbench duration (-T) of each run")
	wh := flag.String("warehouse", "parquet", "the warehouse to stream into: parquet, postgres (another database of the cluster), or iceberg (a local directory)")
	flag.Parse()
	if *wh != "parquet" && *wh != "postgres" && *wh != "iceberg" {
		fmt.Fprintf(os.Stderr, "sluice-cdcbench: -warehouse=%q: want parquet, postgres or iceberg\n", *wh)
		os.Exit(2)
	}
	var list []int
	for _, f := range strings.Split(*scales, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "sluice-cdcbench: -scale=%q: want positive whole numbers, such as 1 or 1,50\n", *scales)
			os.Exit(2)
		}
		list = append(list, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var summaries []summary
	for _, scale := range list {
		b := &bench{bin: *bin, scale: scale, clients: *clients, seconds: *seconds, warehouse: *wh}
		if err := b.run(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "sluice-cdcbench: %v\n", err)
			os.Exit(1)
		}
		summaries = append(summaries, b.summary)
	}
	if len(summaries) > 1 {
		reportScales(*wh, summaries)
	}
}

// summary is one scale's figures, for the comparison of scales.
type summary struct {
	scale              int
	ofRecvlogical      float64 // sluice's catch-up rate / pg_recvlogical's
	p50, p99           time.Duration
	catchUpRSS, dmnRSS int64
}

// reportScales prints the scales' figures side by side.
func reportScales(wh string, s []summary) {
	w := os.Stdout
	fmt.Fprintf(w, "\nCDC into the %s warehouse by pgbench scale:\n\n", wh)
	fmt.Fprintf(w, "  %-8s %-10s %-20s %-12s %-14s %s\n", "scale", "accounts", "% of pg_recvlogical", "fresh p50", "fresh p99", "peak RSS (catch-up / daemon)")
	for _, r := range s {
		fmt.Fprintf(w, "  %-8d %-10d %-20s %-12s %-14s %s / %s\n", r.scale, r.scale*100_000, fmt.Sprintf("%.0f%%", 100*r.ofRecvlogical),
			r.p50.Round(10*time.Millisecond), r.p99.Round(10*time.Millisecond), mib(r.catchUpRSS), mib(r.dmnRSS))
	}
}

type bench struct {
	bin                     string
	scale, clients, seconds int
	binDir                  string
	url                     string
	dir                     string
	conn                    *pgx.Conn
	warehouse               string // "parquet", "postgres" or "iceberg"
	whURL                   string // the postgres warehouse's database
	summary                 summary
}

const configHCL = `
variable "url" {
  type = string
}
%s

source "postgres" "bench" {
  connection_string = var.url
  sslmode           = "disable"
  prefix            = "bench"

  table "pgbench_accounts" { sync = "cdc" }
  table "pgbench_branches" { sync = "cdc" }
  table "pgbench_tellers"  { sync = "cdc" }
  table "pgbench_history"  { sync = "cdc" }
  table "bench_marker"     { sync = "cdc" }
}
`

// The tables pgbench changes: TPC-B updates accounts, tellers and
// branches and inserts into history.
var pgbenchTables = []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}

const publication = "sluice_pub_bench"

// recvSlots are the yardstick's slots: pg_recvlogical drains one before
// sluice runs and one after, and the faster counts, so that neither order
// nor a warm cache favours sluice.
var recvSlots = []string{"bench_recvlogical_1", "bench_recvlogical_2"}

func (b *bench) run(ctx context.Context) error {
	if _, err := os.Stat(b.bin); err != nil {
		return fmt.Errorf("%s not found: run `make build` first", b.bin)
	}
	b.bin, _ = filepath.Abs(b.bin)
	b.binDir = os.Getenv("PGTEST_BINDIR")
	if b.binDir == "" {
		b.binDir = pgtest.DefaultBinDir
	}
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"shared_buffers": "256MB", "max_wal_size": "4GB"}})
	if err != nil {
		return err
	}
	defer c.Stop()
	if b.url, err = c.CreateDatabase(ctx, "bench"); err != nil {
		return err
	}
	if b.conn, err = pgx.Connect(ctx, b.url); err != nil {
		return err
	}
	defer b.conn.Close(context.Background())
	if b.dir, err = os.MkdirTemp("", "sluice-cdcbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)

	fmt.Fprintf(os.Stderr, "pgbench -i -s %d ...\n", b.scale)
	if _, err := b.pgbench(ctx, "-i", "-q", "-s", strconv.Itoa(b.scale)); err != nil {
		return err
	}
	// CDC needs a key; pgbench_history has none.
	if _, err := b.conn.Exec(ctx, `ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY;
		CREATE TABLE bench_marker (id bigint PRIMARY KEY, at timestamptz NOT NULL);
		INSERT INTO bench_marker VALUES (0, now())`); err != nil {
		return err
	}
	warehouseBlock := ""
	if b.warehouse == "postgres" {
		if b.whURL, err = c.CreateDatabase(ctx, "warehouse"); err != nil {
			return err
		}
		warehouseBlock = fmt.Sprintf("warehouse {\n  backend = \"postgres\"\n  url     = %q\n  sslmode = \"disable\"\n}\n", b.whURL)
	}
	if b.warehouse == "iceberg" {
		warehouseBlock = "warehouse {\n  backend = \"iceberg\"\n  path    = \"lake\"\n}\n"
	}
	if err := os.WriteFile(filepath.Join(b.dir, "main.hcl"), []byte(fmt.Sprintf(configHCL, warehouseBlock)), 0o644); err != nil {
		return err
	}
	if _, err := b.sluice(ctx, nil, "apply", "-auto-approve"); err != nil {
		return err
	}
	snap, err := b.sluice(ctx, nil, "run", "-once")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "initial snapshot: %s\n", snap.took.Round(time.Millisecond))
	// The yardstick's slots, at the same place as sluice's.
	for _, slot := range recvSlots {
		if _, err := b.conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
			return err
		}
	}

	catchUp, err := b.catchUp(ctx)
	if err != nil {
		return err
	}
	fresh, err := b.freshness(ctx)
	if err != nil {
		return err
	}
	b.report(catchUp, fresh)
	return nil
}

// sample is RSS over time.
type rssSamples []int64

func (s rssSamples) summary() string {
	if len(s) == 0 {
		return "no samples"
	}
	half := len(s) / 2
	return fmt.Sprintf("min %s, max %s; max of the first half %s, of the second half %s (%d samples)",
		mib(slices.Min(s)), mib(slices.Max(s)), mib(slices.Max(s[:max(half, 1)])), mib(slices.Max(s[half:])), len(s))
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

type run struct {
	took    time.Duration
	peakRSS int64
	rss     rssSamples
	out     string
}

// sluice runs bin/sluice and samples its RSS; stop, when set, ends a
// daemon (SIGTERM) when closed.
func (b *bench) sluice(ctx context.Context, stop <-chan struct{}, args ...string) (run, error) {
	var r run
	cmd := exec.CommandContext(ctx, b.bin, append([]string{"-chdir=" + b.dir, "-no-color"}, args...)...)
	cmd.Env = append(os.Environ(), "SLUICE_VAR_url="+b.url, os.Getenv("BENCH_SLUICE_ENV"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	done := make(chan struct{})
	var mu sync.Mutex
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n := rssOf(cmd.Process.Pid); n > 0 {
					mu.Lock()
					r.rss = append(r.rss, n)
					mu.Unlock()
				}
			}
		}
	}()
	if stop != nil {
		go func() {
			select {
			case <-stop:
				cmd.Process.Signal(syscall.SIGTERM)
			case <-done:
			}
		}()
	}
	err := cmd.Wait()
	close(done)
	r.took = time.Since(start)
	r.out = out.String()
	if dir := os.Getenv("BENCH_LOG_DIR"); dir != "" {
		// What each sluice run printed, for looking into a figure.
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("sluice-%s-%d.log", args[0], start.UnixNano())), []byte(r.out), 0o644)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.peakRSS = ru.Maxrss * 1024
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return r, fmt.Errorf("sluice %s: %v\n%s", strings.Join(args, " "), err, r.out)
	}
	return r, nil
}

// rssOf reads a process's resident set size.
func rssOf(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

var tpsPattern = regexp.MustCompile(`tps = ([0-9.]+)`)

func (b *bench) pgbench(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(b.binDir, "pgbench"), append(args, b.url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *bench) load(ctx context.Context) (string, error) {
	return b.pgbench(ctx, "-n", "-c", strconv.Itoa(b.clients), "-j", "2", "-T", strconv.Itoa(b.seconds))
}

// changes counts the rows pgbench's tables saw inserted, updated or
// deleted (the statistics count each change once).
func (b *bench) changes(ctx context.Context) (int64, error) {
	var n int64
	_, err := b.conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()")
	if err == nil {
		err = b.conn.QueryRow(ctx, `SELECT sum(n_tup_ins + n_tup_upd + n_tup_del)::int8 FROM pg_stat_user_tables WHERE relname = ANY($1)`, pgbenchTables).Scan(&n)
	}
	return n, err
}

type catchUpResult struct {
	changes       int64
	pgbenchTPS    string
	walBytes      int64
	sluice        run
	recv          time.Duration
	sluiceRate    float64
	recvRate      float64
	sluiceChanges int64
}

func (b *bench) catchUp(ctx context.Context) (*catchUpResult, error) {
	res := &catchUpResult{}
	before, err := b.changes(ctx)
	if err != nil {
		return nil, err
	}
	var startLSN string
	if err := b.conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&startLSN); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "catch-up: pgbench -c %d -T %d with nothing streaming ...\n", b.clients, b.seconds)
	out, err := b.load(ctx)
	if err != nil {
		return nil, err
	}
	if m := tpsPattern.FindStringSubmatch(out); m != nil {
		res.pgbenchTPS = m[1]
	}
	time.Sleep(600 * time.Millisecond) // statistics of the exited backends
	after, err := b.changes(ctx)
	if err != nil {
		return nil, err
	}
	res.changes = after - before
	var end string
	if err := b.conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::int8", startLSN).Scan(&end, &res.walBytes); err != nil {
		return nil, err
	}
	recv := func(slot string) error {
		fmt.Fprintf(os.Stderr, "catch-up: pg_recvlogical ...\n")
		start := time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(b.binDir, "pg_recvlogical"), "-d", b.url, "--slot", slot,
			"--start", "--no-loop", "-E", end, "-o", "proto_version=1", "-o", "publication_names="+publication, "-f", "/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_recvlogical: %v\n%s", err, out)
		}
		if d := time.Since(start); res.recv == 0 || d < res.recv {
			res.recv = d
		}
		return nil
	}
	if err := recv(recvSlots[0]); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "catch-up: %d changes, %s of WAL; sluice run -once ...\n", res.changes, mib(res.walBytes))
	if res.sluice, err = b.sluice(ctx, nil, "run", "-once"); err != nil {
		return nil, err
	}
	if p := os.Getenv("BENCH_SLUICE_LOG"); p != "" {
		os.WriteFile(p, []byte(res.sluice.out), 0o644)
	}
	if err := recv(recvSlots[1]); err != nil {
		return nil, err
	}
	res.sluiceRate = float64(res.changes) / res.sluice.took.Seconds()
	res.recvRate = float64(res.changes) / res.recv.Seconds()
	return res, nil
}

type freshResult struct {
	pgbenchTPS string
	latencies  []time.Duration
	lost       int
	daemon     run
}

// freshness runs pgbench with the daemon streaming, and measures how long
// marker rows take from COMMIT to the warehouse.
func (b *bench) freshness(ctx context.Context) (*freshResult, error) {
	res := &freshResult{}
	markers, closeMarkers, err := b.markerReader(ctx)
	if err != nil {
		return nil, err
	}
	defer closeMarkers()
	stop := make(chan struct{})
	daemonDone := make(chan error, 1)
	go func() {
		r, err := b.sluice(ctx, stop, "run", "-listen=127.0.0.1:0", "-log-level="+cmp.Or(os.Getenv("BENCH_LOG_LEVEL"), "warn"))
		res.daemon = r
		daemonDone <- err
	}()

	var mu sync.Mutex
	committed := map[int64]time.Time{}
	visible := map[int64]time.Time{}
	pollDone := make(chan struct{})
	pollStop := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-pollStop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ids, err := markers()
			if err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			for _, id := range ids {
				if _, ok := visible[id]; !ok {
					visible[id] = now
				}
			}
			mu.Unlock()
		}
	}()
	// The daemon is up when a first marker shows.
	if _, err := b.conn.Exec(ctx, `INSERT INTO bench_marker VALUES (1, now())`); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		_, ok := visible[1]
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			err := <-daemonDone
			return nil, fmt.Errorf("the daemon did not stream within a minute (%v)\n%s", err, res.daemon.out)
		}
		time.Sleep(20 * time.Millisecond)
	}

	fmt.Fprintf(os.Stderr, "freshness: pgbench -c %d -T %d with the daemon streaming ...\n", b.clients, b.seconds)
	loadDone := make(chan error, 1)
	go func() {
		out, err := b.load(ctx)
		if m := tpsPattern.FindStringSubmatch(out); m != nil {
			res.pgbenchTPS = m[1]
		}
		loadDone <- err
	}()
	markerConn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return nil, err
	}
	defer markerConn.Close(context.Background())
	id := int64(1)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case err := <-loadDone:
			if err != nil {
				return nil, err
			}
			break loop
		case <-tick.C:
			id++
			if _, err := markerConn.Exec(ctx, `INSERT INTO bench_marker VALUES ($1, now())`, id); err != nil {
				return nil, err
			}
			mu.Lock()
			committed[id] = time.Now()
			mu.Unlock()
		}
	}
	// The last markers arrive.
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		_, ok := visible[id]
		mu.Unlock()
		if ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(pollStop)
	<-pollDone
	close(stop)
	if err := <-daemonDone; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "the daemon: %v\n", err)
	}
	for m, at := range committed {
		if v, ok := visible[m]; ok {
			res.latencies = append(res.latencies, v.Sub(at))
		} else {
			res.lost++
		}
	}
	slices.Sort(res.latencies)
	return res, nil
}

// markerReader returns a function reading the marker ids committed to
// the warehouse.
func (b *bench) markerReader(ctx context.Context) (func() ([]int64, error), func(), error) {
	if b.warehouse == "postgres" {
		conn, err := pgx.Connect(ctx, b.whURL)
		if err != nil {
			return nil, nil, err
		}
		read := func() ([]int64, error) {
			rows, err := conn.Query(ctx, `SELECT id FROM public.bench_bench_marker`)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		return read, func() { conn.Close(context.Background()) }, nil
	}
	if b.warehouse == "iceberg" {
		// The catalog has the table's current snapshot: each poll loads
		// it, as a reader of the lake would.
		w, err := iceberg.Open(ctx, iceberg.Options{Location: filepath.Join(b.dir, "lake"),
			CatalogURL: "sqlite://" + filepath.Join(b.dir, ".sluice", "iceberg-catalog.db")})
		if err != nil {
			return nil, nil, err
		}
		read := func() ([]int64, error) {
			t, err := w.Table(ctx, "bench_bench_marker")
			if err != nil {
				return nil, err
			}
			sc, ok := t.(warehouse.Scanner)
			if !ok {
				return nil, errors.New("the iceberg warehouse's tables cannot be scanned (no warehouse.Scanner)")
			}
			var ids []int64
			err = sc.Scan(ctx, func(bt *records.Batch) error {
				v := &bt.Cols[bt.Schema.Index("id")]
				ids = append(ids, v.I64[:bt.N]...)
				return nil
			})
			return ids, err
		}
		return read, func() { w.Close() }, nil
	}
	w, err := parquet.Open(filepath.Join(b.dir, "warehouse"))
	if err != nil {
		return nil, nil, err
	}
	// Opened once, before the daemon runs: opening takes the table's lock
	// for a moment to clean up, scanning takes none.
	marker, err := w.OpenTable("bench_bench_marker")
	if err != nil {
		return nil, nil, err
	}
	read := func() ([]int64, error) {
		var ids []int64
		err := marker.Scan(ctx, func(bt *records.Batch) error {
			v := &bt.Cols[bt.Schema.Index("id")]
			ids = append(ids, v.I64[:bt.N]...)
			return nil
		})
		return ids, err
	}
	return read, func() {}, nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

func (b *bench) report(c *catchUpResult, f *freshResult) {
	w := os.Stdout
	fmt.Fprintf(w, "\nCDC under pgbench TPC-B (scale %d, %d clients, %d s per run) into the %s warehouse, on this machine:\n\n", b.scale, b.clients, b.seconds, b.warehouse)
	fmt.Fprintf(w, "catch-up: %d changes (%s of WAL) written by pgbench at %s tps with nothing streaming, then drained\n", c.changes, mib(c.walBytes), c.pgbenchTPS)
	fmt.Fprintf(w, "  sluice run -once      %8.2f s  %9.0f changes/s  (decoded, committed to the warehouse, slot confirmed; peak RSS %s)\n",
		c.sluice.took.Seconds(), c.sluiceRate, mib(c.sluice.peakRSS))
	fmt.Fprintf(w, "  pg_recvlogical        %8.2f s  %9.0f changes/s  (pgoutput to /dev/null; the faster of a run before sluice's and one after)\n", c.recv.Seconds(), c.recvRate)
	fmt.Fprintf(w, "  sluice / pg_recvlogical: %.0f%% (target >= 50%%)\n", 100*c.sluiceRate/c.recvRate)
	fmt.Fprintf(w, "  memory of run -once: %s (target <= 256 MiB)\n\n", c.sluice.rss.summary())
	fmt.Fprintf(w, "freshness: the daemon streaming while pgbench runs at %s tps; a marker row every 100 ms\n", f.pgbenchTPS)
	fmt.Fprintf(w, "  commit to visible in the warehouse: p50 %s, p99 %s, max %s over %d markers (%d not seen) (target p50 < 1 s, p99 < 5 s)\n",
		percentile(f.latencies, 0.50).Round(time.Millisecond), percentile(f.latencies, 0.99).Round(time.Millisecond),
		percentile(f.latencies, 1).Round(time.Millisecond), len(f.latencies), f.lost)
	fmt.Fprintf(w, "  memory of the daemon: %s (peak RSS %s; target <= 256 MiB)\n", f.daemon.rss.summary(), mib(f.daemon.peakRSS))
	b.summary = summary{scale: b.scale, ofRecvlogical: c.sluiceRate / c.recvRate,
		p50: percentile(f.latencies, 0.50), p99: percentile(f.latencies, 0.99),
		catchUpRSS: c.sluice.peakRSS, dmnRSS: f.daemon.peakRSS}
}
