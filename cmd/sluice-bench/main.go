// Command sluice-bench is `make bench`'s end-to-end part: it measures
// sluice syncs against PostgreSQL's own COPY of the same table, in the same
// run on the same machine, and prints a table.
//
// Each sync is `bin/sluice run -once` in a subprocess, so its wall time and
// peak RSS are the real program's, not a benchmark harness's. At the sizes
// -pg-warehouse-rows names, the full refresh is also measured into a
// PostgreSQL warehouse (another database of the same cluster). At the
// sizes -iceberg-rows names, the full refresh and the incremental 1% case
// are also measured into an Iceberg warehouse on a local directory, beside
// the Parquet warehouse's figures of the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/state"
)

// profiles numbers the CPU profiles BENCH_CPUPROFILE asks for.
var profiles int

func main() {
	sizes := flag.String("rows", "1000000,2000000,4000000", "table sizes to measure, comma-separated")
	pgSizes := flag.String("pg-warehouse-rows", "2000000", "table sizes at which to also measure a full refresh into a PostgreSQL warehouse, comma-separated (empty: none)")
	icebergSizes := flag.String("iceberg-rows", "2000000", "table sizes at which to also measure a full refresh and the incremental 1% case into an Iceberg warehouse (a local directory), comma-separated (empty: none)")
	bin := flag.String("sluice", "bin/sluice", "the sluice binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	at := func(list string) map[int64]bool {
		m := map[int64]bool{}
		for _, s := range strings.Split(list, ",") {
			var n int64
			if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err == nil {
				m[n] = true
			}
		}
		return m
	}
	if err := run(ctx, *bin, *sizes, at(*pgSizes), at(*icebergSizes)); err != nil {
		fmt.Fprintf(os.Stderr, "sluice-bench: %v\n", err)
		os.Exit(1)
	}
}

// wideTable is the table of the issue: 11 columns of the common types.
const wideTable = `
CREATE TABLE bench_wide (
	id bigint PRIMARY KEY, n int, label text, amount numeric(12,2), code char(3), flag bool,
	doc jsonb, ref uuid, tags text[], created_at timestamptz, updated_at timestamptz NOT NULL);
CREATE INDEX ON bench_wide (updated_at);`

const fillTable = `
INSERT INTO bench_wide
SELECT g, (g % 100000)::int, 'label number ' || g, (g % 1000000) / 100.0, lpad((g % 1000)::text, 3, '0'), g % 2 = 0,
	jsonb_build_object('k', g, 'v', 'value ' || (g % 97)), md5(g::text)::uuid, ARRAY['a' || (g % 10), 'b' || (g % 7)],
	'2026-01-01'::timestamptz + g * interval '1 second', '2026-01-01'::timestamptz + g * interval '1 second'
FROM generate_series($1::bigint, $2::bigint) g`

const configHCL = `
variable "url" {
  type = string
}
%s
source "postgres" "bench" {
  connection_string = var.url
  sslmode           = "disable"
  prefix            = "bench"
  table "bench_wide" {
    sync = "%s"
    %s
  }
}
`

type measurement struct {
	rows                   int64
	copyTime, syncTime     time.Duration
	peakRSS                int64
	incrRows               int64
	incrTime, incrFullTime time.Duration
	incrPeakRSS            int64
	// pgSyncTime and pgPeakRSS are the full refresh into a PostgreSQL
	// warehouse, when measured.
	pgSyncTime time.Duration
	pgPeakRSS  int64
	// ice are the same into an Iceberg warehouse, when measured.
	ice *icebergMeasurement
}

// icebergMeasurement is a size's figures into an Iceberg warehouse.
type icebergMeasurement struct {
	syncTime               time.Duration
	peakRSS                int64
	incrRows               int64
	incrTime, incrFullTime time.Duration
	incrPeakRSS            int64
	// incrErr says why the incremental case could not be measured (the
	// iceberg warehouse without Merge); "" when it was.
	incrErr string
}

// icebergBlock is the warehouse block of the Iceberg measurements.
const icebergBlock = "warehouse {\n  backend = \"iceberg\"\n  path    = \"lake\"\n}\n"

func run(ctx context.Context, bin, sizes string, pgAt, icebergAt map[int64]bool) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found: run `make build` first", bin)
	}
	bin, _ = filepath.Abs(bin)
	c, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"shared_buffers": "512MB", "max_wal_size": "4GB"}})
	if err != nil {
		return err
	}
	defer c.Stop()
	url, err := c.CreateDatabase(ctx, "bench")
	if err != nil {
		return err
	}
	whURL, err := c.CreateDatabase(ctx, "warehouse")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, wideTable); err != nil {
		return err
	}
	var results []measurement
	var have int64
	for _, s := range strings.Split(sizes, ",") {
		var n int64
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n <= have {
			return fmt.Errorf("bad size %q: sizes must grow", s)
		}
		fmt.Fprintf(os.Stderr, "loading %d rows...\n", n)
		if _, err := conn.Exec(ctx, fillTable, have+1, n); err != nil {
			return err
		}
		have = n
		if _, err := conn.Exec(ctx, "VACUUM ANALYZE bench_wide"); err != nil {
			return err
		}
		m, err := measure(ctx, conn, bin, url, n, pgAt[n], icebergAt[n], whURL)
		if err != nil {
			return err
		}
		results = append(results, m)
	}
	report(os.Stdout, results)
	reportIceberg(os.Stdout, results)
	return nil
}

func measure(ctx context.Context, conn *pgx.Conn, bin, url string, n int64, pgWarehouse, icebergWarehouse bool, whURL string) (measurement, error) {
	m := measurement{rows: n}
	// The baseline, warm: PostgreSQL's own binary COPY of the table.
	for range 2 {
		start := time.Now()
		if _, err := conn.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT * FROM bench_wide) TO STDOUT (FORMAT binary)"); err != nil {
			return m, err
		}
		if d := time.Since(start); m.copyTime == 0 || d < m.copyTime {
			m.copyTime = d
		}
	}
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return m, err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "keeping %s (BENCH_KEEP)\n", dir)
	}
	env := append(os.Environ(), "SLUICE_VAR_url="+url)
	var lastOut string
	sluice := func(args ...string) (time.Duration, int64, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-chdir=" + dir, "-no-color"}, args...)...)
		cmd.Env = env
		if prof := os.Getenv("BENCH_CPUPROFILE"); prof != "" && args[0] == "run" {
			profiles++
			cmd.Env = append(append([]string(nil), env...), fmt.Sprintf("SLUICE_CPUPROFILE=%s.%d", prof, profiles))
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		lastOut = out.String()
		if err != nil {
			return 0, 0, fmt.Errorf("sluice %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		rss := int64(0)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss * 1024 // kilobytes on Linux
		}
		return took, rss, nil
	}
	warehouseBlock := ""
	write := func(sync, extra string) error {
		return os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(fmt.Sprintf(configHCL, warehouseBlock, sync, extra)), 0o644)
	}

	// full_refresh, best of two runs (the second after a resync).
	if err := write("full_refresh", ""); err != nil {
		return m, err
	}
	if _, _, err := sluice("apply", "-auto-approve"); err != nil {
		return m, err
	}
	for i := range 2 {
		if i > 0 {
			if _, _, err := sluice("resync", "postgres.bench/bench_wide"); err != nil {
				return m, err
			}
		}
		took, rss, err := sluice("run", "-once", "-parallel=2")
		if err != nil {
			return m, err
		}
		if m.syncTime == 0 || took < m.syncTime {
			m.syncTime = took
		}
		m.peakRSS = max(m.peakRSS, rss)
	}

	// full_refresh into a PostgreSQL warehouse, best of two runs.
	if pgWarehouse {
		warehouseBlock = fmt.Sprintf("warehouse {\n  backend = \"postgres\"\n  url     = %q\n  sslmode = \"disable\"\n}\n", whURL)
		if err := write("full_refresh", ""); err != nil {
			return m, err
		}
		for range 2 {
			if _, _, err := sluice("resync", "postgres.bench/bench_wide"); err != nil {
				return m, err
			}
			took, rss, err := sluice("run", "-once", "-parallel=2")
			if err != nil {
				return m, err
			}
			if m.pgSyncTime == 0 || took < m.pgSyncTime {
				m.pgSyncTime = took
			}
			m.pgPeakRSS = max(m.pgPeakRSS, rss)
		}
		warehouseBlock = ""
	}

	// full_refresh into an Iceberg warehouse, best of two runs.
	if icebergWarehouse {
		m.ice = &icebergMeasurement{}
		warehouseBlock = icebergBlock
		if err := write("full_refresh", ""); err != nil {
			return m, err
		}
		for range 2 {
			if _, _, err := sluice("resync", "postgres.bench/bench_wide"); err != nil {
				return m, err
			}
			took, rss, err := sluice("run", "-once", "-parallel=2")
			if err != nil {
				return m, err
			}
			if m.ice.syncTime == 0 || took < m.ice.syncTime {
				m.ice.syncTime = took
			}
			m.ice.peakRSS = max(m.ice.peakRSS, rss)
		}
		warehouseBlock = ""
	}

	// incremental: the first sync reads everything, then 1% of the rows
	// change and the next sync reads those.
	if err := write("incremental", `incremental_field = "updated_at"`); err != nil {
		return m, err
	}
	if _, _, err := sluice("apply", "-auto-approve"); err != nil {
		return m, err
	}
	if m.incrFullTime, _, err = sluice("run", "-once"); err != nil {
		return m, err
	}
	tag, err := conn.Exec(ctx, `UPDATE bench_wide SET n = n + 1, updated_at = now() WHERE id % 100 = 0`)
	if err != nil {
		return m, err
	}
	m.incrRows = tag.RowsAffected()
	if err := makeDue(ctx, dir); err != nil {
		return m, err
	}
	if m.incrTime, m.incrPeakRSS, err = sluice("run", "-once"); err != nil {
		return m, err
	}
	// Leave the table as it was for the next size.
	if _, err := conn.Exec(ctx, `UPDATE bench_wide SET n = n - 1 WHERE id % 100 = 0`); err != nil {
		return m, err
	}

	// The same into the Iceberg warehouse: a resync reads everything
	// (the table there holds the full refresh's rows, without a cursor),
	// then 1% of the rows change again.
	if icebergWarehouse {
		warehouseBlock = icebergBlock
		if err := write("incremental", `incremental_field = "updated_at"`); err != nil {
			return m, err
		}
		if _, _, err := sluice("resync", "postgres.bench/bench_wide"); err != nil {
			return m, err
		}
		if m.ice.incrFullTime, _, err = sluice("run", "-once"); err != nil {
			return m, err
		}
		tag, err := conn.Exec(ctx, `UPDATE bench_wide SET n = n + 1, updated_at = now() WHERE id % 100 = 0`)
		if err != nil {
			return m, err
		}
		m.ice.incrRows = tag.RowsAffected()
		if err := makeDue(ctx, dir); err != nil {
			return m, err
		}
		m.ice.incrTime, m.ice.incrPeakRSS, err = sluice("run", "-once")
		if err != nil {
			if !strings.Contains(lastOut, "not supported yet by the iceberg warehouse") {
				return m, err
			}
			m.ice.incrErr = "n/a (no Merge yet)"
		}
		if _, err := conn.Exec(ctx, `UPDATE bench_wide SET n = n - 1 WHERE id % 100 = 0`); err != nil {
			return m, err
		}
		warehouseBlock = ""
	}
	return m, nil
}

// makeDue moves the recorded last sync back a day, so that the next
// `run -once` finds the table due without waiting out its frequency.
func makeDue(ctx context.Context, dir string) error {
	b := state.NewLocal(filepath.Join(dir, ".sluice", "state.json"))
	st, err := b.ReadStatus(ctx)
	if err != nil {
		return err
	}
	for _, ts := range st.Tables {
		ts.LastSyncAt = ts.LastSyncAt.Add(-24 * time.Hour)
		ts.LastAttemptAt = ts.LastAttemptAt.Add(-24 * time.Hour)
		if err := b.PutTableStatus(ctx, ts); err != nil {
			return err
		}
	}
	return nil
}

func report(w io.Writer, results []measurement) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows\tCOPY binary\tsluice full_refresh\tratio\tpeak RSS\t1% changed\tincremental\tvs full read\tpeak RSS\t")
	for _, m := range results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2fx\t%d MiB\t%d\t%s\t%.3fx\t%d MiB\t\n",
			m.rows, m.copyTime.Round(time.Millisecond), m.syncTime.Round(time.Millisecond),
			m.syncTime.Seconds()/m.copyTime.Seconds(), m.peakRSS>>20,
			m.incrRows, m.incrTime.Round(time.Millisecond), m.incrTime.Seconds()/m.incrFullTime.Seconds(), m.incrPeakRSS>>20)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCOPY binary: `COPY (SELECT * FROM bench_wide) TO STDOUT (FORMAT binary)` into io.Discard, best of 2.")
	fmt.Fprintln(w, "sluice full_refresh: `sluice run -once` (a process: connect, read, write Parquet, commit), best of 2; the target is at most 2.0x COPY.")
	fmt.Fprintln(w, "incremental: `sluice run -once` after 1% of the rows changed, against the first (full) incremental read.")
	var pg []measurement
	for _, m := range results {
		if m.pgSyncTime > 0 {
			pg = append(pg, m)
		}
	}
	if len(pg) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows\tinto Parquet\tinto PostgreSQL\tratio\tpeak RSS\tvs COPY binary\t")
	for _, m := range pg {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2fx\t%d MiB\t%.2fx\t\n", m.rows, m.syncTime.Round(time.Millisecond), m.pgSyncTime.Round(time.Millisecond),
			m.pgSyncTime.Seconds()/m.syncTime.Seconds(), m.pgPeakRSS>>20, m.pgSyncTime.Seconds()/m.copyTime.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w, "\ninto PostgreSQL: the same full refresh (`sluice run -once`, best of 2) into `warehouse { backend = \"postgres\" }`, another database of the same cluster:")
	fmt.Fprintln(w, "COPY into a new table, primary key, swap, position, one transaction. The source read and the warehouse write share the machine's cores.")
}

// reportIceberg prints the Iceberg warehouse's figures beside the
// Parquet warehouse's of the same run.
func reportIceberg(w io.Writer, results []measurement) {
	var ice []measurement
	for _, m := range results {
		if m.ice != nil {
			ice = append(ice, m)
		}
	}
	if len(ice) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows	full_refresh into Parquet	into Iceberg	ratio	peak RSS	1% changed	incremental into Iceberg	vs full read	(Parquet)	peak RSS	")
	for _, m := range ice {
		incr, vs, rss := m.ice.incrErr, "-", "-"
		if incr == "" {
			incr = m.ice.incrTime.Round(time.Millisecond).String()
			vs = fmt.Sprintf("%.3fx", m.ice.incrTime.Seconds()/m.ice.incrFullTime.Seconds())
			rss = fmt.Sprintf("%d MiB", m.ice.incrPeakRSS>>20)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2fx\t%d MiB\t%d\t%s\t%s\t%.3fx\t%s\t\n", m.rows,
			m.syncTime.Round(time.Millisecond), m.ice.syncTime.Round(time.Millisecond), m.ice.syncTime.Seconds()/m.syncTime.Seconds(), m.ice.peakRSS>>20,
			m.ice.incrRows, incr, vs, m.incrTime.Seconds()/m.incrFullTime.Seconds(), rss)
	}
	tw.Flush()
	fmt.Fprintln(w, "\ninto Iceberg: the same syncs (`sluice run -once`) into `warehouse { backend = \"iceberg\" }` on a local directory (SQLite catalog):")
	fmt.Fprintln(w, "the full refresh best of 2, target at most 1.2x the Parquet warehouse's; the incremental 1% case against its own full read, target at most 0.10x.")
}
