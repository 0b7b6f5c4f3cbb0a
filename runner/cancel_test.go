package runner

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
	whpg "github.com/sluice-dev/sluice/warehouse/postgres"
)

// TestCancelSyncStopsWarehouseCommit cancels a sync whose commit into the
// PostgreSQL warehouse waits for a lock another session holds: the sync
// returns at once, and the warehouse table keeps its rows and position.
func TestCancelSyncStopsWarehouseCommit(t *testing.T) {
	for _, tc := range []struct {
		name, sync string
		// block holds up the commit: a reader of the table a Replace
		// drops, a lock on a row a merge updates.
		block string
	}{
		{name: "full_refresh", sync: `sync = "full_refresh"`, block: `SELECT count(*) FROM wh.pg_t`},
		{name: "incremental", sync: "sync = \"incremental\"\n    incremental_field = \"n\"", block: `SELECT * FROM wh.pg_t WHERE id = 1 FOR UPDATE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCDCEnv(t, `
CREATE TABLE t (id bigint PRIMARY KEY, v text, n bigint);
INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 10) g;`, `
  table "t" {
    `+tc.sync+`
  }`, "")
			whURL := pgtest.NewDB(t)
			w, err := whpg.Open(e.ctx, &config.Warehouse{Backend: "postgres", URL: whURL, Schema: "wh", SSLMode: "disable"}, e.dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			e.pgwh = w
			e.mustOnce()
			wh, err := pgx.Connect(e.ctx, whURL)
			if err != nil {
				t.Fatal(err)
			}
			defer wh.Close(context.Background())
			rows := func() []string { return e.rows("pg_t", []string{"id", "v", "n"}, nil) }
			before := rows()
			tb, err := w.Table(e.ctx, "pg_t")
			if err != nil {
				t.Fatal(err)
			}
			committed, _ := tb.Position()

			e.exec(`UPDATE t SET v = 'changed', n = 100 WHERE id = 1`)
			blocker, err := pgx.Connect(e.ctx, whURL)
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Close(context.Background())
			for _, q := range []string{`BEGIN`, tc.block} {
				if _, err := blocker.Exec(e.ctx, q); err != nil {
					t.Fatal(err)
				}
			}

			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := e.runner().Sync(ctx, []string{"postgres.db/t"})
				done <- err
			}()
			// Cancel once the commit waits for the lock.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				var n int
				if err := wh.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the sync's commit never waited for the lock")
				}
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the cancelled sync did not return within 10s")
			}

			if _, err := blocker.Exec(e.ctx, `COMMIT`); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, rows()); diff != "" {
				t.Errorf("warehouse rows after the cancelled sync (-before +after):\n%s", diff)
			}
			tb, err = w.Table(e.ctx, "pg_t")
			if err != nil {
				t.Fatal(err)
			}
			if pos, _ := tb.Position(); !cmp.Equal(committed, pos) {
				t.Errorf("position after the cancelled sync = %+v, want %+v", pos, committed)
			}
			// The next sync commits the change.
			if failed, err := e.runner().Sync(e.ctx, []string{"postgres.db/t"}); err != nil || len(failed) > 0 {
				t.Fatalf("the next sync: %v, failed %v", err, failed)
			}
			if got := rows(); cmp.Equal(before, got) {
				t.Errorf("the next sync did not commit the change: %v", got)
			}
		})
	}
}
