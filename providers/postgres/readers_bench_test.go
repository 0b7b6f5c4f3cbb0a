package postgres

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

const benchRows = 2_000_000

// benchTableSQL creates the table of BenchmarkFullRefreshRead: 2,000,000
// rows of 11 columns of the common types, vacuumed (so that no read sets
// hint bits) and analyzed.
var benchTableSQL = fmt.Sprintf(`CREATE TABLE bench (
	id bigint, n int, name text, amount numeric(12,2), code char(3), active bool,
	payload jsonb, uid uuid, tags text[], created_at timestamptz, updated_at timestamptz);
INSERT INTO bench
SELECT i, i %% 1000, 'customer ' || i, (i %% 1000000) / 100.0, chr(65 + i %% 26) || 'X' || chr(65 + i %% 7), i %% 3 = 0,
	jsonb_build_object('i', i, 'kind', 'k' || (i %% 10), 'ok', i %% 2 = 0), md5(i::text)::uuid,
	ARRAY['tag' || (i %% 5), 'common'], '2024-01-01'::timestamptz + i * interval '1 second', '2025-01-01'::timestamptz + i * interval '1 ms'
FROM generate_series(1, %d) i;
ALTER TABLE bench ADD PRIMARY KEY (id)`, benchRows)

// benchDB is the database holding the table, created once per process:
// the benchmark function may run several times (-count).
var benchDB struct {
	once sync.Once
	url  string
	err  error
}

func benchTableURL(b *testing.B) string {
	b.Helper()
	benchDB.once.Do(func() {
		ctx := context.Background()
		if c := pgtest.Shared(); c != nil {
			// Dropped with the cluster, so that it outlives this run.
			benchDB.url, benchDB.err = c.CreateDatabase(ctx, fmt.Sprintf("bench_full_refresh_%d", os.Getpid()))
		} else {
			benchDB.url = pgtest.NewDB(b)
		}
		if benchDB.err != nil {
			return
		}
		conn := inspConnect(b, benchDB.url)
		start := time.Now()
		if _, benchDB.err = conn.Exec(ctx, benchTableSQL); benchDB.err != nil {
			return
		}
		_, benchDB.err = conn.Exec(ctx, "VACUUM (FREEZE, ANALYZE) bench")
		b.Logf("created %d rows in %v", benchRows, time.Since(start).Round(time.Millisecond))
	})
	if benchDB.err != nil {
		b.Fatal(benchDB.err)
	}
	return benchDB.url
}

// BenchmarkFullRefreshRead compares a snapshot read of a 2,000,000-row
// table into batches (discarded), with one connection and with two, with
// COPY of the same select list into io.Discard, the floor any reader
// stands on. Each iteration runs the three in turn (in alternating order),
// so that the ratios hold however the machine's load drifts; it reports
// each one's seconds per read and the reads' times as multiples of
// COPY's (xCOPY). It creates the table on first run, which takes a while.
func BenchmarkFullRefreshRead(b *testing.B) {
	url := benchTableURL(b)
	conn := inspConnect(b, url)
	p, err := New(inspSource(url, "public"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	info, err := loadTable(ctx, conn, p.normalize(providers.ReadRequest{Table: "bench"}), nil)
	if err != nil {
		b.Fatal(err)
	}
	copyStmt := copySQL(info, info.from(), chunk{})

	var rows int
	emit := func(batch *records.Batch) error { rows += batch.N; return nil }
	read := func(parallel int) func() {
		return func() {
			rows = 0
			if _, err := p.ReadSnapshot(ctx, providers.ReadRequest{Table: "bench", Parallel: parallel}, emit); err != nil {
				b.Fatal(err)
			}
			if rows != benchRows {
				b.Fatalf("read %d rows, want %d", rows, benchRows)
			}
		}
	}
	runs := []struct {
		name string
		run  func()
		took time.Duration
	}{
		{"COPY", func() {
			if _, err := conn.PgConn().CopyTo(ctx, io.Discard, copyStmt); err != nil {
				b.Fatal(err)
			}
		}, 0},
		{"parallel=1", read(1), 0},
		{"parallel=2", read(2), 0},
	}
	i := 0
	for b.Loop() {
		for j := range runs {
			r := &runs[(i+j)%len(runs)]
			start := time.Now()
			r.run()
			r.took += time.Since(start)
		}
		i++
	}
	for _, r := range runs {
		b.ReportMetric(r.took.Seconds()/float64(b.N), r.name+"-s/read")
		if r.name != "COPY" {
			b.ReportMetric(float64(r.took)/float64(runs[0].took), r.name+"-xCOPY")
		}
	}
}
