package roundtrip

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/warehouse"
	whpg "github.com/sluice-dev/sluice/warehouse/postgres"
)

// tInt64 is the Parquet type of a bigint key.
var tInt64 = records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}

// TestLookupAndScanRoundTrip writes a table of every type from a source
// database, then reads rows back by Lookup and Scan: each value is the
// value the source reader produced, with the same Parquet type (the
// stream fills unchanged values and tombstones from these).
func TestLookupAndScanRoundTrip(t *testing.T) {
	srcURL, _ := typesSource(t)
	w := newWH(t)
	ctx := context.Background()
	prov := sourceProvider(t, srcURL)
	req := providers.ReadRequest{Schema: "public", Table: "alltypes", BatchRows: 2}
	schema, err := prov.Schema(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := w.Table(ctx, "types")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := tbl.Begin(ctx, warehouse.Replace, schema, "cdc")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	pos, err := prov.ReadSnapshot(ctx, req, func(b *records.Batch) error {
		want = append(want, recordstest.RenderRows(b, recordstest.AllRows(b), len(schema.Columns))...)
		return tx.Write(ctx, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx, pos); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)

	// A fresh value reads the schema recorded with the position.
	tbl, err = w.Table(ctx, "types")
	if err != nil {
		t.Fatal(err)
	}
	wt := tbl.(*whpg.Table)
	got := wt.Schema()
	if got == nil {
		t.Fatal("no schema recorded")
	}
	if diff := cmp.Diff(schema.Columns, got.Columns[:len(schema.Columns)]); diff != "" {
		t.Errorf("recorded columns (-source +recorded):\n%s", diff)
	}
	if last := got.Columns[len(got.Columns)-1]; last.Name != whpg.SyncedAtColumn || len(got.Columns) != len(schema.Columns)+1 {
		t.Errorf("recorded schema ends with %q, %d columns", last.Name, len(got.Columns))
	}

	var scanned []string
	if err := wt.Scan(ctx, func(b *records.Batch) error {
		scanned = append(scanned, recordstest.RenderRows(b, recordstest.AllRows(b), len(schema.Columns))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(scanned)
	if diff := cmp.Diff(want, scanned); diff != "" {
		t.Errorf("scanned rows (-source +warehouse):\n%s", diff)
	}

	keySchema := &records.Schema{Columns: schema.Columns[:1], PrimaryKey: []string{"id"}}
	keys := records.NewBatch(keySchema, 4)
	for _, id := range []int64{3, 1, 99, 1} {
		keys.Cols[0].AppendInt64(id)
		keys.N++
	}
	var found []string
	if err := wt.Lookup(ctx, keys, false, func(b *records.Batch, rows []int32) error {
		found = append(found, recordstest.RenderRows(b, rows, len(schema.Columns))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(found)
	wantFound := slices.DeleteFunc(slices.Clone(want), func(r string) bool { return strings.HasPrefix(r, "2 |") })
	if diff := cmp.Diff(wantFound, found); diff != "" {
		t.Errorf("looked-up rows (-source +warehouse):\n%s", diff)
	}

	bad := records.NewBatch(&records.Schema{Columns: []records.Column{{Name: "ID", Type: tInt64}}}, 1)
	bad.Cols[0].AppendInt64(1)
	bad.N++
	if err := wt.Lookup(ctx, bad, false, func(*records.Batch, []int32) error { return nil }); err == nil || !strings.Contains(err.Error(), "the table's key is (id)") {
		t.Errorf("lookup by another key: %v", err)
	}
}
