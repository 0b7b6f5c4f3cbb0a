package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestCancel cancels the context of a transaction's COPY or commit while
// it waits for a lock another session holds (so that it is surely in
// flight): the call returns at once with context.Canceled, and once the
// other session lets go the table still holds the previous version and
// position, with nothing left behind, and takes commits again.
func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode warehouse.Mode
		// block is what the other session does, in its transaction, to
		// hold up the step.
		block string
		// atCommit says the step held up is Commit, not Write.
		atCommit bool
	}{
		// COPY into the table needs a lock the other session's LOCK
		// conflicts with.
		{name: "copy", mode: warehouse.Append, block: `LOCK TABLE wh.orders IN ACCESS EXCLUSIVE MODE`},
		// The swap drops the old table, which a reader is reading.
		{name: "replace commit", mode: warehouse.Replace, block: `SELECT count(*) FROM wh.orders`, atCommit: true},
		// The upsert updates a row the other session has locked.
		{name: "merge commit", mode: warehouse.Merge, block: `SELECT * FROM wh.orders WHERE id = 1 FOR UPDATE`, atCommit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWH(t, false)
			first := records.Position{Cursor: "first"}
			commit(t, w, "orders", tc.mode, ordersSchema, first, ordersBatch(row{id: 1, name: "a"}))
			before := w.rows(t, `SELECT id, name, amount, _sluice_synced_at FROM wh.orders ORDER BY 1`)

			blocker, err := pgx.Connect(t.Context(), w.url)
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Close(context.Background())
			exec(t, blocker, `BEGIN`)
			exec(t, blocker, tc.block)

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tbl, err := w.Table(ctx, "orders")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := tbl.Begin(ctx, tc.mode, ordersSchema, "incremental")
			if err != nil {
				t.Fatal(err)
			}
			batch := ordersBatch(row{id: 1, name: "changed"}, row{id: 2, name: "new"})
			step := func() error {
				if err := tx.Write(ctx, batch); err != nil || !tc.atCommit {
					return err
				}
				_, err := tx.Commit(ctx, records.Position{Cursor: "second"})
				return err
			}
			done := make(chan error, 1)
			go func() { done <- step() }()
			waitForLockWait(t, w)
			cancel()
			start := time.Now()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the cancelled call did not return within 10s")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the cancelled call took %s to return", took)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error = %v, want one wrapping context.Canceled", err)
			}
			if !tc.atCommit {
				if _, err := tx.Commit(context.Background(), records.Position{Cursor: "second"}); err == nil {
					t.Error("a commit after a cancelled write succeeded")
				}
			}
			if err := tx.Abort(context.Background()); err != nil {
				t.Errorf("abort: %v", err)
			}

			// The other session lets go: the cancelled transaction must
			// not go on.
			exec(t, blocker, `COMMIT`)
			if diff := cmp.Diff(before, w.rows(t, `SELECT id, name, amount, _sluice_synced_at FROM wh.orders ORDER BY 1`)); diff != "" {
				t.Errorf("rows after the cancel (-want +got):\n%s", diff)
			}
			reopened, err := w.Table(t.Context(), "orders")
			if err != nil {
				t.Fatal(err)
			}
			if pos, ok := reopened.Position(); !ok || pos.Cursor != "first" {
				t.Errorf("position = %+v, %v; want the first", pos, ok)
			}
			got := w.rows(t, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'wh' AND c.relkind = 'r' ORDER BY 1`)
			if diff := cmp.Diff([][]string{{"_sluice_positions"}, {"orders"}}, got); diff != "" {
				t.Errorf("tables (-want +got):\n%s", diff)
			}
			commit(t, w, "orders", tc.mode, ordersSchema, records.Position{Cursor: "third"}, ordersBatch(row{id: 3, name: "c"}))
			if pos, _ := position(t, w, "orders"); pos.Cursor != "third" {
				t.Errorf("position = %+v, want the third", pos)
			}
		})
	}
}

// waitForLockWait waits until a session of the warehouse's database waits
// for a lock.
func waitForLockWait(t *testing.T, w *testWH) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := w.conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no session waits for a lock after 10s")
}
