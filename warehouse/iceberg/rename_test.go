package iceberg

import (
	"context"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestRenameColumns: a rename is a schema update by field id: the rows
// written before read back under the new names (iceberg-go's scan), the
// position and the snapshot stay, the recorded schema follows, and a
// merge by the renamed key (a lookup in the old data files) goes on.
func TestRenameColumns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "kv")
	s := kvSchema(tInt64, false)
	pos := records.Position{Cursor: "7"}
	commit(t, tb, warehouse.Merge, s, pos, kvBatch(s, row{k: "1", v: str("a")}, row{k: "2", v: str("b")}))
	snap := tb.Version().SnapshotID

	for _, bad := range [][]warehouse.ColumnRename{{{From: "nope", To: "x"}}, {{From: "k", To: "v"}}} {
		if err := tb.RenameColumns(ctx, bad); err == nil {
			t.Errorf("RenameColumns(%v) succeeded", bad)
		}
	}
	renames := []warehouse.ColumnRename{{From: "k", To: "key", Source: "k"}, {From: "v", To: "value", Source: "v"}}
	if err := tb.RenameColumns(ctx, renames); err != nil {
		t.Fatal(err)
	}
	// Made already (as by another runner): nothing to do.
	if err := tb.RenameColumns(ctx, renames); err != nil {
		t.Errorf("renaming again: %v", err)
	}
	want := [][]string{{"key=1", "value=a", "_sluice_deleted=false"}, {"key=2", "value=b", "_sluice_deleted=false"}}
	if diff := cmp.Diff(want, scan(t, tb)); diff != "" {
		t.Errorf("rows after the rename (-want +got):\n%s", diff)
	}
	reopened := openTable(t, openTest(t, dir), "kv")
	if p, _ := reopened.Position(); p.Cursor != "7" || reopened.Version().SnapshotID != snap {
		t.Errorf("position %+v, snapshot %d (was %d)", p, reopened.Version().SnapshotID, snap)
	}
	stored := reopened.Schema()
	if diff := cmp.Diff([]string{"key"}, stored.PrimaryKey); diff != "" {
		t.Errorf("recorded key (-want +got):\n%s", diff)
	}
	if i := stored.Index("value"); i < 0 || stored.Columns[i].SourceName != "v" {
		t.Errorf("recorded columns = %+v", stored.Columns)
	}

	rs := warehouse.RenamedSchema(s, renames)
	b := kvBatch(s, row{k: "2", v: str("b2")}, row{k: "3", v: str("c")})
	b.Schema = rs
	if n := commit(t, reopened, warehouse.Merge, rs, records.Position{Cursor: "8"}, b); n != 3 {
		t.Errorf("%d rows after the merge, want 3", n)
	}
	want = [][]string{{"key=1", "value=a", "_sluice_deleted=false"}, {"key=2", "value=b2", "_sluice_deleted=false"}, {"key=3", "value=c", "_sluice_deleted=false"}}
	if diff := cmp.Diff(want, sortedRows(scan(t, reopened))); diff != "" {
		t.Errorf("rows after the merge (-want +got):\n%s", diff)
	}
}

func sortedRows(rows [][]string) [][]string {
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return rows
}
