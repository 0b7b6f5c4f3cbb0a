package iceberg

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestBigPositionOutOfLine: a position of thousands of boundary keys (a
// bulk UPDATE setting one updated_at) goes to a file the snapshot names,
// so metadata files stay small; it reads back exactly, after maintenance
// commits too, and orphan removal keeps the files snapshots name.
func TestBigPositionOutOfLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "kv")
	big := records.Position{Cursor: "2026-12-07 06:47:22.898514+00"}
	for i := range 5000 {
		big.BoundaryKeys = append(big.BoundaryKeys, fmt.Sprintf("key-%06d-%s", i, strings.Repeat("x", 16)))
	}
	small := records.Position{Cursor: "7"}
	commit(t, tb, warehouse.Replace, kvSimple, small, kvSimpleBatch(1, 2))
	for i := range 3 {
		commit(t, tb, warehouse.Append, kvSimple, big, kvSimpleBatch(int64(10+i)))
	}
	prop := tb.tbl.CurrentSnapshot().Summary.Properties[PositionProperty]
	if !strings.HasPrefix(prop, positionFileMark) {
		t.Fatalf("a %d-key position is inline in the summary", len(big.BoundaryKeys))
	}
	st, err := os.Stat(strings.TrimPrefix(tb.tbl.MetadataLocation(), "file://"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 64<<10 {
		t.Errorf("the metadata file is %d bytes after three big positions", st.Size())
	}
	reopened := openTable(t, openTest(t, dir), "kv")
	if got, ok := reopened.Position(); !ok || !cmp.Equal(got, big) {
		t.Errorf("reopened position differs (-want +got):\n%s", cmp.Diff(big, got))
	}
	// Every file older than now is fair game to the orphan sweep but
	// those the snapshots list or name.
	if _, err := reopened.removeOrphans(ctx, 0); err != nil {
		t.Fatal(err)
	}
	again := openTable(t, openTest(t, dir), "kv")
	if got, ok := again.Position(); !ok || !cmp.Equal(got, big) {
		t.Errorf("after the orphan sweep the position differs (-want +got):\n%s", cmp.Diff(big, got))
	}
	if n := len(scan(t, again)); n != 5 {
		t.Errorf("the table holds %d rows, want 5", n)
	}
	// A small position stays inline.
	commit(t, again, warehouse.Append, kvSimple, small, kvSimpleBatch(20))
	if p := again.tbl.CurrentSnapshot().Summary.Properties[PositionProperty]; strings.HasPrefix(p, positionFileMark) {
		t.Errorf("a small position went to a file: %s", p)
	}
}
