package iceberg

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/warehouse"
)

// accountsSchema is pgbench_accounts.
var accountsSchema = &records.Schema{Columns: []records.Column{
	{Name: "aid", Type: pt(records.PhysicalInt32, records.LogicalNone, "INT32")},
	{Name: "bid", Type: pt(records.PhysicalInt32, records.LogicalNone, "INT32"), Nullable: true},
	{Name: "abalance", Type: pt(records.PhysicalInt32, records.LogicalNone, "INT32"), Nullable: true},
	{Name: "filler", Type: tText, Nullable: true},
}, PrimaryKey: []string{"aid"}}

var filler = strings.Repeat(" ", 84)

func accounts(aids []int32, balance int32) *records.Batch {
	b := records.NewBatch(accountsSchema, len(aids))
	for _, a := range aids {
		b.Cols[0].AppendInt32(a)
		b.Cols[1].AppendInt32(a/100000 + 1)
		b.Cols[2].AppendInt32(balance)
		b.Cols[3].AppendString(filler)
		b.N++
	}
	return b
}

// BenchmarkMergeCommit measures a merge commit of 1,000
// (SLUICE_BENCH_UPDATES) random-key updates into a table of
// SLUICE_BENCH_ROWS rows (default 1M) loaded in
// key order, as CDC of pgbench makes: ns per commit, and the bytes of
// key columns and delete files read per commit (the first commit after
// the load reads the big file's keys; later ones take them from the
// cache).
//
//	go test -run '^$' -bench MergeCommit -benchtime 20x ./warehouse/iceberg/
//	SLUICE_BENCH_ROWS=5000000 go test ...
//	SLUICE_BENCH_COLD=1 ...: every commit from a new opening, cache empty
func BenchmarkMergeCommit(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	ctx := context.Background()
	w, err := Open(ctx, Options{Location: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	tb0, err := w.Table(ctx, "pgbench_accounts")
	if err != nil {
		b.Fatal(err)
	}
	tb := tb0.(*Table)
	start := time.Now()
	tx, err := tb.Begin(ctx, warehouse.Replace, accountsSchema, "bench")
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64 << 10
	for lo := 0; lo < rows; lo += batch {
		aids := make([]int32, 0, batch)
		for a := lo; a < min(lo+batch, rows); a++ {
			aids = append(aids, int32(a+1))
		}
		if err := tx.Write(ctx, accounts(aids, 0)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := tx.Commit(ctx, records.Position{LSN: "0/0"}); err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.Logf("load of %d rows: %v, heap in use %d MiB", rows, time.Since(start).Round(time.Millisecond), ms.HeapInuse>>20)
	updates := 1000
	if v, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_UPDATES")); err == nil && v > 0 {
		updates = v
	}
	// Cold: every commit from a new opening with an empty key cache, as
	// a sync run by a fresh process.
	cold := os.Getenv("SLUICE_BENCH_COLD") != ""
	rng := rand.New(rand.NewPCG(1, 2))
	commitOnce := func(i int) {
		if cold {
			cache.mu.Lock()
			cache.ll.Init()
			clear(cache.m)
			cache.bytes = 0
			cache.mu.Unlock()
			t, err := w.Table(ctx, "pgbench_accounts")
			if err != nil {
				b.Fatal(err)
			}
			tb = t.(*Table)
		}
		aids := make([]int32, updates)
		for j := range aids {
			aids[j] = int32(rng.IntN(rows) + 1)
		}
		tx, err := tb.Begin(ctx, warehouse.Merge, accountsSchema, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Write(ctx, accounts(aids, int32(i))); err != nil {
			b.Fatal(err)
		}
		n, err := tx.Commit(ctx, records.Position{LSN: "0/" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		if n != int64(rows) {
			b.Fatalf("the table holds %d rows after a merge, want %d", n, rows)
		}
	}
	fileStats.Lock()
	fileStats.bytesRead, fileStats.keyFilesRead, fileStats.deleteFilesRead = 0, 0, 0
	fileStats.Unlock()
	t0 := time.Now()
	commitOnce(0)
	b.Logf("first merge commit (cold key cache): %v, %d bytes of keys and deletes read", time.Since(t0).Round(time.Millisecond), fileStats.bytesRead)
	fileStats.Lock()
	fileStats.bytesRead, fileStats.keyFilesRead, fileStats.deleteFilesRead = 0, 0, 0
	fileStats.Unlock()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		commitOnce(i + 1)
	}
	b.StopTimer()
	b.ReportMetric(float64(fileStats.bytesRead)/float64(b.N), "bytes-read/commit")
	b.ReportMetric(float64(fileStats.keyFilesRead+fileStats.deleteFilesRead)/float64(b.N), "files-read/commit")
	runtime.ReadMemStats(&ms)
	b.Logf("heap in use after %d commits: %d MiB (key cache %d MiB)", b.N, ms.HeapInuse>>20, cache.bytes>>20)
}

// BenchmarkWriteReplace writes the 11-column table of the Parquet
// warehouse's benchmark (recordstest.WideSchema) as a full refresh of
// SLUICE_BENCH_ROWS rows (default 2M), in batches of 25,000: rows/s, CPU
// seconds and the peak heap, which stays flat as the table grows.
// Compare with warehouse/parquet's BenchmarkWriteReplace.
func BenchmarkWriteReplace(b *testing.B) {
	n := 2_000_000
	if v, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	const batchRows = 25_000
	rng := rand.New(rand.NewPCG(7, 8))
	var pool []*records.Batch
	for i := range 8 {
		pool = append(pool, recordstest.WideBatch(rng, int64(i*batchRows), batchRows))
	}
	ctx := context.Background()
	w, err := Open(ctx, Options{Location: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var elapsed, cpu time.Duration
	var peak uint64
	for i := 0; b.Loop(); i++ {
		t, err := w.Table(ctx, "t"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		tb := t.(*Table)
		peak = max(peak, heapPeak(func() {
			start, startCPU := time.Now(), cpuTime()
			tx, err := tb.Begin(ctx, warehouse.Replace, recordstest.WideSchema, "bench")
			if err != nil {
				b.Fatal(err)
			}
			for done := 0; done < n; done += batchRows {
				bt := pool[(done/batchRows)%len(pool)]
				for k := range bt.N {
					bt.Cols[0].I64[k] = int64(done + k)
				}
				if err := tx.Write(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := tx.Commit(ctx, records.Position{}); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
			cpu += cpuTime() - startCPU
		}))
	}
	sec := elapsed.Seconds() / float64(b.N)
	b.ReportMetric(float64(n)/sec, "rows/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu_s")
	b.ReportMetric(float64(peak)/1e6, "peak_heap_MB")
}

// heapPeak samples the heap in use while running fn.
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
