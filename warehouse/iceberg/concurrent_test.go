package iceberg

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestConcurrentTablesSQLiteCatalog: the runner syncs several tables at
// once, and so creates and commits several tables of one SQLite catalog
// at once, in one process and from two processes' worth of openings; none
// may fail with SQLITE_BUSY (a transaction that began reading and then
// wanted to write could, before transactions took the write lock at
// BEGIN and so waited for it).
func TestConcurrentTablesSQLiteCatalog(t *testing.T) {
	dir := t.TempDir()
	ws := []*Warehouse{openTest(t, dir), openTest(t, dir)}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			w := ws[i%2]
			for round := range 3 {
				tb, err := w.Table(ctx, fmt.Sprintf("t_%02d", i))
				if err != nil {
					errs <- err
					return
				}
				tx, err := tb.Begin(ctx, warehouse.Replace, accountsSchema, "full_refresh")
				if err != nil {
					errs <- err
					return
				}
				if err := tx.Write(ctx, accounts([]int32{int32(i), int32(round)}, 1)); err != nil {
					errs <- err
					return
				}
				if _, err := tx.Commit(ctx, records.Position{}); err != nil {
					errs <- fmt.Errorf("table t_%02d, commit %d: %w", i, round, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
