package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestCommitGuard: a commit whose guard fails (a fleet runner that lost
// its claim) leaves the table and its position as they were; one whose
// guard passes commits.
func TestCommitGuard(t *testing.T) {
	w := newWH(t, false)
	commit(t, w, "orders", warehouse.Replace, ordersSchema, records.Position{Cursor: "1"}, ordersBatch(row{id: 1, name: "a"}))
	lost := errors.New("claim lost")
	calls := 0
	guarded := func(err error) context.Context {
		return warehouse.WithCommitGuard(context.Background(), func(context.Context) error { calls++; return err })
	}
	for _, tc := range []struct {
		err  error
		want string
	}{{lost, "1"}, {nil, "2"}} {
		ctx := guarded(tc.err)
		tb, err := w.Table(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		tx, err := tb.Begin(ctx, warehouse.Merge, ordersSchema, "incremental")
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Write(ctx, ordersBatch(row{id: 2, name: "b"})); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Commit(ctx, records.Position{Cursor: "2"})
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("commit with guard %v: %v", tc.err, err)
		}
		if err != nil {
			_ = tx.Abort(ctx)
		}
		if pos, _ := position(t, w, "orders"); pos.Cursor != tc.want {
			t.Errorf("guard %v: position %+v, want cursor %s", tc.err, pos, tc.want)
		}
	}
	if got := w.rows(t, `SELECT count(*)::text FROM wh.orders`); got[0][0] != "2" {
		t.Errorf("rows %v", got)
	}
	if calls != 2 {
		t.Errorf("the guard ran %d times, want once per commit", calls)
	}
}
