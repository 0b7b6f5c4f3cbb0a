package parquet

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/warehouse"
)

// benchSchema is the 11-column table of the benchmarks.
var benchSchema = recordstest.WideSchema

// benchSource hands out batches of a table of n rows: a pool of distinct
// batches is built once and reused with fresh ids, so that building rows
// costs nothing in the measured time.
type benchSource struct {
	pool  []*records.Batch
	bytes int64 // in-memory size of one pass over the pool
}

const benchBatchRows = 25_000

var (
	benchPoolOnce sync.Once
	benchPool     *benchSource
)

func benchRows() *benchSource {
	benchPoolOnce.Do(func() {
		rng := rand.New(rand.NewPCG(7, 8))
		s := &benchSource{}
		for i := range 8 {
			b := recordstest.WideBatch(rng, int64(i*benchBatchRows), benchBatchRows)
			s.pool = append(s.pool, b)
			s.bytes += batchBytes(b)
		}
		benchPool = s
	})
	return benchPool
}

// write writes rows [first, first+n) to tx, batch by batch.
func (s *benchSource) write(tb testing.TB, tx *Tx, first, n int64) {
	for done := int64(0); done < n; {
		b := s.pool[(done/benchBatchRows)%int64(len(s.pool))]
		rows := min(int64(benchBatchRows), n-done)
		b.N = int(rows)
		for i := range b.N {
			b.Cols[0].I64[i] = first + done + int64(i)
		}
		if err := tx.Write(ctx, b); err != nil {
			tb.Fatal(err)
		}
		done += rows
	}
	for _, b := range s.pool {
		b.N = benchBatchRows
	}
}

// benchDir is where benchmarks write: a temporary directory, under
// $SLUICE_BENCH_DIR when set (/dev/shm measures the writer without the
// disk).
func benchDir(b *testing.B) string {
	parent := os.Getenv("SLUICE_BENCH_DIR")
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// heapPeak samples the heap in use while running fn.
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}

// BenchmarkWriteReplace writes a table of 11 columns as a full refresh
// (with its primary key, so bucketed), at three sizes: rows/s and MB/s of
// the in-memory columnar input, the file size, and the peak heap, which
// must stay flat as the table grows (DESIGN invariant 4).
func BenchmarkWriteReplace(b *testing.B) {
	withFsync(b)
	src := benchRows()
	perRow := float64(src.bytes) / float64(len(src.pool)*benchBatchRows)
	for _, c := range []struct{ rows, expected int64 }{
		{1_000_000, 1_000_000}, {2_000_000, 2_000_000}, {4_000_000, 4_000_000},
		// One bucket whatever the size: the peak heap of 4M rows is that of
		// 1M (more buckets hold more row groups at once, within 128 MiB).
		{4_000_000, 1},
	} {
		n := c.rows
		name := fmt.Sprintf("rows=%d", n)
		if c.expected != n {
			name += "/one_bucket"
		}
		b.Run(name, func(b *testing.B) {
			w, err := Open(benchDir(b))
			if err != nil {
				b.Fatal(err)
			}
			var m *Manifest
			var elapsed, cpu time.Duration
			var peak uint64
			for i := 0; b.Loop(); i++ {
				tb, err := w.OpenTable(fmt.Sprintf("t%d", i))
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, heapPeak(func() {
					start, startCPU := time.Now(), cpuTime()
					tx, err := tb.BeginTx(ctx, warehouse.Replace, benchSchema, WithExpectedRows(c.expected))
					if err != nil {
						b.Fatal(err)
					}
					src.write(b, tx, 0, n)
					if m, err = tx.commitManifest(ctx, records.Position{}); err != nil {
						b.Fatal(err)
					}
					elapsed += time.Since(start)
					cpu += cpuTime() - startCPU
				}))
				b.StopTimer()
				w.Drop(tb.Name())
				b.StartTimer()
			}
			sec := elapsed.Seconds() / float64(b.N)
			b.ReportMetric(float64(n)/sec, "rows/s")
			b.ReportMetric(perRow*float64(n)/sec/1e6, "MB/s")
			b.ReportMetric(float64(m.Bytes)/1e6, "file_MB")
			b.ReportMetric(float64(peak)/1e6, "peak_heap_MB")
			b.ReportMetric(float64(len(m.Files)), "files")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu_s")
		})
	}
}

// cpuTime is the CPU time (user and system) this process used so far: the
// machine may be shared, so wall time alone says little.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMerge1Percent merges 10,000 rows into a table of 1,000,000 (its
// files bucketed by a Replace), against the time of writing the table: as
// updates of existing rows at random keys (every bucket is touched, so
// every bucket is rewritten: copy-on-write), and as inserts of new keys
// (nothing is rewritten).
func BenchmarkMerge1Percent(b *testing.B) {
	withFsync(b)
	const n = 1_000_000
	src := benchRows()
	for _, kind := range []string{"updates", "inserts"} {
		b.Run(kind, func(b *testing.B) {
			w, err := Open(benchDir(b))
			if err != nil {
				b.Fatal(err)
			}
			tb, err := w.OpenTable("t")
			if err != nil {
				b.Fatal(err)
			}
			start, startCPU := time.Now(), cpuTime()
			tx, err := tb.BeginTx(ctx, warehouse.Replace, benchSchema, WithExpectedRows(n))
			if err != nil {
				b.Fatal(err)
			}
			src.write(b, tx, 0, n)
			if _, err := tx.Commit(ctx, records.Position{}); err != nil {
				b.Fatal(err)
			}
			full, fullCPU := time.Since(start), cpuTime()-startCPU
			rng := rand.New(rand.NewPCG(3, 4))
			changes := recordstest.WideBatch(rng, 0, 10_000)
			next := int64(n)
			var elapsed, cpu time.Duration
			var m *Manifest
			for b.Loop() {
				for i := range changes.N {
					if kind == "updates" {
						changes.Cols[0].I64[i] = rng.Int64N(n)
					} else {
						changes.Cols[0].I64[i] = next
						next++
					}
				}
				start, startCPU := time.Now(), cpuTime()
				tx, err := tb.BeginTx(ctx, warehouse.Merge, benchSchema)
				if err != nil {
					b.Fatal(err)
				}
				if err := tx.Write(ctx, changes); err != nil {
					b.Fatal(err)
				}
				if m, err = tx.commitManifest(ctx, records.Position{}); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				cpu += cpuTime() - startCPU
			}
			sec := elapsed.Seconds() / float64(b.N)
			b.ReportMetric(sec*1000, "merge_ms")
			b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "merge_cpu_ms")
			b.ReportMetric(fullCPU.Seconds()*1000, "full_write_cpu_ms")
			b.ReportMetric(full.Seconds()*1000, "full_write_ms")
			b.ReportMetric(sec/full.Seconds(), "merge/full")
			b.ReportMetric(float64(len(m.Files)), "files")
		})
	}
}

// BenchmarkPostgresCopyBinary is the yardstick of BenchmarkWriteReplace:
// PostgreSQL's own COPY TO STDOUT (FORMAT binary) of a table of the same
// 11 columns, read by pgx and discarded. The end-to-end target of a
// full_refresh is at most twice this; the writer (which runs beside the
// reader on the other core) must not be the slower of the two.
func BenchmarkPostgresCopyBinary(b *testing.B) {
	ctx := context.Background()
	cluster, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Stop()
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE orders (
		id bigint PRIMARY KEY, quantity integer, name text, amount numeric(12,2), currency character(3),
		paid boolean, attrs jsonb, ref uuid, tags text[], created_at timestamptz, updated_at timestamptz)`)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int64{1_000_000, 2_000_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			_, err := conn.Exec(ctx, `TRUNCATE orders`)
			if err == nil {
				_, err = conn.Exec(ctx, `INSERT INTO orders
				SELECT i, (random()*1000)::int,
					(ARRAY['alpha','bravo','charlie','delta','echo','foxtrot','golf','hotel'])[1 + i % 8] || ' ' || (random()*100000)::int,
					CASE WHEN i % 20 = 0 THEN NULL ELSE round((random()*1000000)::numeric, 2) END,
					(ARRAY['EUR','USD','GBP','JPY'])[1 + i % 4], i % 2 = 0,
					jsonb_build_object('source', 'alpha', 'score', i % 1000, 'flags', jsonb_build_array(i % 9, i % 7)),
					gen_random_uuid(),
					CASE i % 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN ARRAY['alpha'] WHEN 2 THEN ARRAY['bravo','charlie'] ELSE ARRAY['delta','echo','golf'] END,
					timestamptz '2024-01-01' + random() * interval '365 days',
					CASE WHEN i % 10 = 0 THEN NULL ELSE timestamptz '2024-01-01' + random() * interval '365 days' END
				FROM generate_series(1, $1::bigint) i`, n)
			}
			if err == nil {
				_, err = conn.Exec(ctx, `VACUUM ANALYZE orders`)
			}
			if err != nil {
				b.Fatal(err)
			}
			var size int64
			for b.Loop() {
				tag, err := conn.PgConn().CopyTo(ctx, io.Discard, `COPY orders TO STDOUT (FORMAT binary)`)
				if err != nil {
					b.Fatal(err)
				}
				if tag.RowsAffected() != n {
					b.Fatalf("copied %d rows, want %d", tag.RowsAffected(), n)
				}
				size = n
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(size)/sec, "rows/s")
		})
	}
}
