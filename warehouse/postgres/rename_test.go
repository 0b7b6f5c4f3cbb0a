package postgres

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestRenameColumns: a rename keeps the rows, the position and the
// primary key (under its new name), records the new names with their
// source names, and a merge by the renamed key goes on; a rename from a
// name the table lacks, or to one it has, changes nothing.
func TestRenameColumns(t *testing.T) {
	w := newWH(t, false)
	pos := records.Position{Cursor: "7"}
	commit(t, w, "orders", warehouse.Merge, ordersSchema, pos, ordersBatch(row{id: 1, name: "a", amount: int64(100)}, row{id: 2, name: "b"}))
	tbl, err := w.Table(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	renamer := tbl.(warehouse.ColumnRenamer)
	for _, bad := range [][]warehouse.ColumnRename{{{From: "nope", To: "x"}}, {{From: "id", To: "name"}}} {
		if err := renamer.RenameColumns(ctx, bad); err == nil {
			t.Errorf("RenameColumns(%v) succeeded", bad)
		}
	}
	renames := []warehouse.ColumnRename{{From: "id", To: "order_id", Source: "id"}, {From: "name", To: "title", Source: "name"}}
	if err := renamer.RenameColumns(ctx, renames); err != nil {
		t.Fatal(err)
	}
	// Made already (as by another runner): nothing to do.
	if err := renamer.RenameColumns(ctx, renames); err != nil {
		t.Errorf("renaming again: %v", err)
	}
	if got := w.rows(t, `SELECT string_agg(order_id || ':' || title, ',' ORDER BY order_id) FROM wh.orders`); got[0][0] != "1:a,2:b" {
		t.Errorf("rows = %v", got)
	}
	if got := w.rows(t, `SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'wh.orders'::regclass AND i.indisprimary`); got[0][0] != "order_id" {
		t.Errorf("primary key = %v", got)
	}
	reopened, err := w.Table(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := reopened.Position(); p.Cursor != "7" {
		t.Errorf("position = %+v", p)
	}
	stored := reopened.(warehouse.SchemaReader).Schema()
	if diff := cmp.Diff([]string{"order_id"}, stored.PrimaryKey); diff != "" {
		t.Errorf("recorded key (-want +got):\n%s", diff)
	}
	if i := stored.Index("title"); i < 0 || stored.Columns[i].SourceName != "name" {
		t.Errorf("recorded columns = %+v", stored.Columns)
	}

	renamed := warehouse.RenamedSchema(ordersSchema, renames)
	b := ordersBatch(row{id: 2, name: "b2"}, row{id: 3, name: "c"})
	b.Schema = renamed
	if n := commit(t, w, "orders", warehouse.Merge, renamed, records.Position{Cursor: "8"}, b); n != 3 {
		t.Errorf("%d rows after the merge, want 3", n)
	}
	if got := w.rows(t, `SELECT string_agg(order_id || ':' || title, ',' ORDER BY order_id) FROM wh.orders`); got[0][0] != "1:a,2:b2,3:c" {
		t.Errorf("rows after the merge = %v", got)
	}
}
