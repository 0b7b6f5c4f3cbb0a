package postgres

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
	"github.com/sluice-dev/sluice/warehouse/parquet"
)

// benchSchema is the 11-column table of the Parquet warehouse's
// benchmarks: what a typical orders table maps to (SPEC §5).
var benchSchema = &records.Schema{
	Columns: []records.Column{
		{Name: "id", Type: tInt64, SourceType: "bigint"},
		{Name: "quantity", Type: tInt32, SourceType: "integer", Nullable: true},
		{Name: "name", Type: tString, SourceType: "text", Nullable: true},
		{Name: "amount", Type: tDec, SourceType: "numeric(12,2)", Nullable: true},
		{Name: "currency", Type: tString, SourceType: "character(3)", Nullable: true},
		{Name: "paid", Type: tBool, SourceType: "boolean", Nullable: true},
		{Name: "attrs", Type: tJSON, SourceType: "jsonb", Nullable: true},
		{Name: "ref", Type: tString, SourceType: "uuid", Nullable: true},
		{Name: "tags", Type: tStrs, SourceType: "text[]", Nullable: true},
		{Name: "created_at", Type: tTSTZ, SourceType: "timestamp with time zone", Nullable: true},
		{Name: "updated_at", Type: tTSTZ, SourceType: "timestamp with time zone", Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

var words = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa"}

const benchBatchRows = 25_000

// benchBatch builds n rows of benchSchema; rng makes the values vary as
// real data does (nulls included).
func benchBatch(rng *rand.Rand, n int) *records.Batch {
	b := records.NewBatch(benchSchema, n)
	c := b.Cols
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	var scratch []byte
	for i := range n {
		c[0].AppendInt64(int64(i))
		c[1].AppendInt32(int32(rng.IntN(1000)))
		scratch = fmt.Appendf(scratch[:0], "%s %s %d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
		c[2].AppendBytes(scratch)
		if rng.IntN(20) == 0 {
			c[3].AppendNull()
		} else {
			c[3].AppendInt64(rng.Int64N(1_000_000_00))
		}
		c[4].AppendString([]string{"EUR", "USD", "GBP", "JPY"}[rng.IntN(4)])
		c[5].AppendBool(rng.IntN(2) == 0)
		scratch = fmt.Appendf(scratch[:0], `{"source": "%s", "score": %d, "flags": [%d, %d]}`, words[rng.IntN(len(words))], rng.IntN(1000), rng.IntN(9), rng.IntN(9))
		c[6].AppendBytes(scratch)
		u, v := rng.Uint64(), rng.Uint64()
		scratch = fmt.Appendf(scratch[:0], "%08x-%04x-4%03x-a%03x-%012x", u>>32, (u>>16)&0xffff, u&0xfff, v>>52, v&0xffffffffffff)
		c[7].AppendBytes(scratch)
		for range rng.IntN(4) {
			c[8].List.Elem.AppendString(words[rng.IntN(len(words))])
		}
		c[8].EndList()
		t := base + rng.Int64N(365*24*3600*1_000_000)
		c[9].AppendInt64(t)
		if rng.IntN(10) == 0 {
			c[10].AppendNull()
		} else {
			c[10].AppendInt64(t + rng.Int64N(3600*1_000_000))
		}
		b.N++
	}
	return b
}

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
		pool = append(pool, benchBatch(rng, benchBatchRows))
	}
	run := func(b *testing.B, w warehouse.Warehouse) {
		b.ReportAllocs()
		for b.Loop() {
			tbl, err := w.Table("bench_orders")
			if err != nil {
				b.Fatal(err)
			}
			tx, err := tbl.Begin(warehouse.Replace, benchSchema, "full_refresh")
			if err != nil {
				b.Fatal(err)
			}
			for done := int64(0); done < n; {
				bt := pool[(done/benchBatchRows)%int64(len(pool))]
				bt.N = int(min(benchBatchRows, n-done))
				for i := range bt.N {
					bt.Cols[0].I64[i] = done + int64(i)
				}
				if err := tx.Write(bt); err != nil {
					b.Fatal(err)
				}
				done += int64(bt.N)
			}
			rows, err := tx.Commit(records.Position{})
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
		run(b, parquet.AsWarehouse(w))
	})
}
