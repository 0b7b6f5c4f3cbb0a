package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// BenchmarkBatchSize times a first load of the same table without
// batch_size and with batch_size = 10000 and 200000, into each warehouse
// kind: the cost of the commits (`make bench` runs it; the rows are
// SLUICE_BENCH_BATCH_ROWS, default 1,500,000). Each figure is one load,
// against the unbatched load of the same run.
func BenchmarkBatchSize(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("SLUICE_BENCH_BATCH_ROWS"))
	if n == 0 {
		n = 1_500_000
	}
	for _, backend := range []string{"parquet", "postgres", "iceberg"} {
		b.Run(backend, func(t *testing.B) {
			s := newShop(t)
			s.exec(`CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL, n numeric(12,2), updated_at timestamptz NOT NULL);
				INSERT INTO big SELECT i, md5(i::text), i / 100.0, '2026-01-01'::timestamptz + (i / 50) * interval '1 second' FROM generate_series(1, ` + strconv.Itoa(n) + `) i;
				CREATE INDEX ON big (updated_at, id)`)
			s.exec(`VACUUM ANALYZE big`)
			wh := ""
			switch backend {
			case "postgres":
				wh = "warehouse {\n  backend = \"postgres\"\n  url     = \"" + pgtest.NewDB(t) + "\"\n  schema  = \"raw\"\n}\n"
			case "iceberg":
				wh = "warehouse {\n  backend   = \"iceberg\"\n  path      = \"lake\"\n  namespace = \"raw\"\n}\n"
			}
			cfg := shopHeader + wh + shopSource(`
  table "big" {
    sync              = "incremental"
    incremental_field = "updated_at"
    BATCH
  }`)
			s.runEnv()
			re := regexp.MustCompile(`postgres\.shop/big\s+completed\s+(\d+) rows`)
			load := func(batch string) time.Duration {
				s.write(strings.Replace(cfg, "BATCH", batch, 1))
				s.must(0, "apply", "-auto-approve")
				s.must(0, "resync", "postgres.shop/big")
				start := time.Now()
				out := s.must(0, "run", "-once")
				d := time.Since(start)
				if m := re.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(n) {
					t.Fatalf("load with %q:\n%s", batch, out)
				}
				return d
			}
			load("") // warm up: the first load creates the table
			plain := load("")
			for _, size := range []int{10000, 200000} {
				batched := load("batch_size = " + strconv.Itoa(size))
				t.Logf("%s, %d rows: unbatched %.2fs, batch_size = %d %.2fs (%d commits, %.1f ms more each)", backend, n, plain.Seconds(), size, batched.Seconds(),
					n/size+1, float64((batched-plain).Milliseconds())/float64(n/size+1))
				t.ReportMetric(batched.Seconds()/plain.Seconds(), fmt.Sprintf("x-unbatched@%d", size))
			}
			t.ReportMetric(plain.Seconds(), "s-unbatched")
		})
	}
}
