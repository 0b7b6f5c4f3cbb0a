package state

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/pgtest"
)

// TestStatusStores writes status records concurrently, as the runner's
// workers do, and reads them back, with both backends.
func TestStatusStores(t *testing.T) {
	ctx := context.Background()
	pg, err := OpenPostgres(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	backends := map[string]Backend{
		"local":    NewLocal(filepath.Join(t.TempDir(), ".sluice", "state.json")),
		"postgres": pg,
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			store, err := Statuses(b)
			if err != nil {
				t.Fatal(err)
			}
			empty, err := store.ReadStatus(ctx)
			if err != nil || len(empty.Tables)+len(empty.Sources) != 0 {
				t.Fatalf("fresh status: %v, %v", empty, err)
			}
			var wg sync.WaitGroup
			for _, addr := range []string{"postgres.p/a", "postgres.p/b", "postgres.p/c", "postgres.p/d"} {
				wg.Add(1)
				go func(addr string) {
					defer wg.Done()
					ts := &TableStatus{Address: addr, State: StateCompleted, RowsSynced: 10, LastSyncAt: at}
					if err := store.PutTableStatus(ctx, ts); err != nil {
						t.Error(err)
					}
				}(addr)
			}
			wg.Wait()
			if err := store.PutSourceStatus(ctx, &SourceStatus{Address: "postgres.p", State: "healthy", SlotLagBytes: 42, UpdatedAt: at}); err != nil {
				t.Fatal(err)
			}
			if err := store.PutTableStatus(ctx, &TableStatus{Address: "postgres.p/a", State: StateFailed, LastError: "boom", LastSyncAt: at}); err != nil {
				t.Fatal(err)
			}
			got, err := store.ReadStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"postgres.p/a", "postgres.p/b", "postgres.p/c", "postgres.p/d"}, got.TableAddrs()); diff != "" {
				t.Errorf("tables (-want +got):\n%s", diff)
			}
			want := &TableStatus{Address: "postgres.p/a", State: StateFailed, LastError: "boom", LastSyncAt: at}
			if diff := cmp.Diff(want, got.Tables["postgres.p/a"]); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.Sources["postgres.p"].SlotLagBytes != 42 {
				t.Errorf("source status = %+v", got.Sources["postgres.p"])
			}
		})
	}
}
