package postgres

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// benchSchema is the 11-column table of the benchmarks.
var benchSchema = recordstest.WideSchema

const benchBatchRows = 25_000

// benchFullRefreshRows is the table size of BenchmarkFullRefresh;
// SLUICE_BENCH_ROWS overrides it.
func benchFullRefreshRows(b *testing.B) int64 {
	if s := os.Getenv("SLUICE_BENCH_ROWS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("SLUICE_BENCH_ROWS=%q: want a positive number", s)
		}
		return n
	}
	return 2_000_000
}

// BenchmarkFullRefresh replaces a table of 2M rows of the 11-column table
// in each warehouse: a full refresh as the runner does it, the rows
// already in memory (batches reused with fresh ids), so that the figure is
// the warehouse's. Run with -benchtime=1x.
func BenchmarkFullRefresh(b *testing.B) {
	n := benchFullRefreshRows(b)
	rng := rand.New(rand.NewPCG(7, 8))
	var pool []*records.Batch
	for range 8 {
		pool = append(pool, recordstest.WideBatch(rng, 0, benchBatchRows))
	}
	run := func(b *testing.B, w warehouse.Warehouse) {
		b.ReportAllocs()
		for b.Loop() {
			tbl, err := w.Table(ctx, "bench_orders")
			if err != nil {
				b.Fatal(err)
			}
			tx, err := tbl.Begin(ctx, warehouse.Replace, benchSchema, "full_refresh")
			if err != nil {
				b.Fatal(err)
			}
			for done := int64(0); done < n; {
				bt := pool[(done/benchBatchRows)%int64(len(pool))]
				bt.N = int(min(benchBatchRows, n-done))
				for i := range bt.N {
					bt.Cols[0].I64[i] = done + int64(i)
				}
				if err := tx.Write(ctx, bt); err != nil {
					b.Fatal(err)
				}
				done += int64(bt.N)
			}
			rows, err := tx.Commit(ctx, records.Position{})
			if err != nil {
				b.Fatal(err)
			}
			if rows != n {
				b.Fatalf("rows = %d, want %d", rows, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("postgres", func(b *testing.B) {
		w := openWH(b, pgtest.NewDB(b), "wh", false)
		run(b, w.Warehouse)
	})
	b.Run("parquet", func(b *testing.B) {
		w, err := parquet.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		run(b, w)
	})
}
