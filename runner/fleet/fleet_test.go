package fleet

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestMigrateConcurrently: runners starting together migrate River's
// schema once between them, and a later start finds nothing to do.
func TestMigrateConcurrently(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'river_job'`, RiverSchema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("river_job in %s: %d, %v", RiverSchema, n, err)
	}
}

// TestEnqueueUnique: a table with a job waiting or running gets no
// second one, from any runner; once its job completed, it gets a new one.
func TestEnqueueUnique(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	clients := make([]*river.Client[pgx.Tx], 2)
	for i := range clients {
		c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: RiverSchema})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	tables := []string{"postgres.shop/a", "postgres.shop/b"}
	n, err := enqueue(ctx, clients[0], tables)
	if err != nil || n != 2 {
		t.Fatalf("first enqueue: %d, %v", n, err)
	}
	n, err = enqueue(ctx, clients[1], append(tables, "postgres.shop/c"))
	if err != nil || n != 1 {
		t.Fatalf("second enqueue from another runner: %d new jobs, %v; want only c's", n, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+RiverSchema+`.river_job SET state = 'running', attempted_at = now() WHERE args->>'table' = 'postgres.shop/a'`); err != nil {
		t.Fatal(err)
	}
	if n, _ := enqueue(ctx, clients[0], tables[:1]); n != 0 {
		t.Errorf("a running table got a second job")
	}
	if _, err := pool.Exec(ctx, `UPDATE `+RiverSchema+`.river_job SET state = 'completed', finalized_at = now() WHERE args->>'table' = 'postgres.shop/a'`); err != nil {
		t.Fatal(err)
	}
	if n, err := enqueue(ctx, clients[0], tables[:1]); n != 1 || err != nil {
		t.Errorf("a table whose job completed gets no new one: %d, %v", n, err)
	}
}
