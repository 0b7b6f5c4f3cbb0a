package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// benchTables defines pg_temp.bench_tables(lo, hi), which creates tables
// bench_lo to bench_hi: each has a few columns, every other one a primary
// key, every third an index on its cursor column, and every fiftieth is
// partitioned with two partitions.
const benchTables = `CREATE FUNCTION pg_temp.bench_tables(lo int, hi int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	name text;
BEGIN
	FOR i IN lo..hi LOOP
		name := 'bench_' || i;
		IF i % 50 = 0 THEN
			EXECUTE format('CREATE TABLE %I (id bigint, at date NOT NULL, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)', name);
			EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (''2025-01-01'') TO (''2026-01-01'')', name || '_a', name);
			EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (''2026-01-01'') TO (''2027-01-01'')', name || '_b', name);
		ELSIF i % 2 = 0 THEN
			EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, name text, amount numeric(12,2), tags text[], updated_at timestamptz)', name);
		ELSE
			EXECUTE format('CREATE TABLE %I (id bigint, payload jsonb, created_at timestamp NOT NULL)', name);
		END IF;
		IF i % 3 = 0 AND i % 50 <> 0 THEN
			EXECUTE format('CREATE INDEX ON %I (%I)', name, CASE WHEN i % 2 = 0 THEN 'updated_at' ELSE 'created_at' END);
		END IF;
	END LOOP;
END $$`

// BenchmarkInspect5000Tables times one Inspect of a database of 5,000
// tables (DESIGN invariant 3 targets under 2 s), reporting the queries it
// sends, which must not grow with the number of tables. It runs only
// under -bench: creating the tables takes a while.
func BenchmarkInspect5000Tables(b *testing.B) {
	const tables, chunk = 5000, 500
	dbURL := pgtest.NewDB(b)
	conn := inspConnect(b, dbURL)
	// One transaction creating 5,000 tables (with their indexes and TOAST
	// tables) would need more locks than the default lock table holds.
	inspExec(b, conn, benchTables)
	for lo := 1; lo <= tables; lo += chunk {
		inspExec(b, conn, "SELECT pg_temp.bench_tables($1, $2)", lo, lo+chunk-1)
	}
	inspExec(b, conn, "ANALYZE")
	src := inspSource(dbURL, "public", cdcDecl("bench_2"))
	p, qc := countingProvider(b, src)

	b.ResetTimer()
	start := time.Now()
	var seen int
	for b.Loop() {
		obs, err := p.Inspect(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		seen = len(obs.Tables)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if seen != tables {
		b.Fatalf("Inspect saw %d tables, want %d", seen, tables)
	}
	b.ReportMetric(float64(qc.n.Load())/float64(b.N), "queries/op")
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/op")
}
