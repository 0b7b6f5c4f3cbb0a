package iceberg

import (
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestTableNames: runner table names (config.WarehouseName: [a-z0-9_],
// up to a prefix, a schema and a table of 63 bytes each) are each a
// table of their own that round-trips, their paths included.
func TestTableNames(t *testing.T) {
	w := openTest(t, t.TempDir())
	names := []string{"plain", "1digit_first", "_", "a__b", "postgres_prod_sales_order_items", strings.Repeat("x", 63) + "_" + strings.Repeat("y", 63) + "_" + strings.Repeat("z", 63)}
	for i, name := range names {
		tb := openTable(t, w, name)
		commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: name}, kvSimpleBatch(int64(i)))
	}
	for i, name := range names {
		tb := openTable(t, w, name)
		if pos, ok := tb.Position(); !ok || pos.Cursor != name {
			t.Errorf("%q: position %+v (%v)", name, pos, ok)
		}
		if rows := scan(t, tb); len(rows) != 1 || rows[0][0] != strings.TrimSpace(rows[0][0]) || len(rows) != 1 {
			t.Errorf("%q: rows %v, want key %d alone", name, rows, i)
		}
	}
}
