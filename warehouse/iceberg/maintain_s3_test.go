package iceberg

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	iceio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud" // s3:// through gocloud's blob IO
	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/s3test"
	"github.com/sluice-dev/sluice/warehouse"
)

// openS3Test is a warehouse on s3://bucket/wh of the test process's
// Versity gateway (internal/s3test), with the SQL catalog on SQLite.
func openS3Test(t *testing.T) *Warehouse {
	t.Helper()
	srv, bucket := s3test.NewBucket(t)
	w, err := Open(context.Background(), Options{
		Location:   "s3://" + bucket + "/wh",
		CatalogURL: "sqlite://" + filepath.Join(t.TempDir(), "catalog.db"),
		S3:         s3Options(srv),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestMaintainS3 compacts, expires and sweeps orphans of tables on S3
// (gocloud's blob IO against Versity's gateway): the rows stay, the
// files of expired snapshots and old orphans go, a young orphan and
// every committed file stay, and the sweep of table "kv" never touches
// table "kv2" whose location it prefixes.
func TestMaintainS3(t *testing.T) {
	ctx := context.Background()
	w := openS3Test(t)
	kv, kv2 := openTable(t, w, "kv"), openTable(t, w, "kv2")
	for i := int64(0); i < 6; i++ {
		for _, tb := range []*Table{kv, kv2} {
			commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: fmt.Sprint(i)}, kvRange(i*10, i*10+10, "s3"))
		}
	}
	if !strings.HasPrefix(kv.tbl.Location(), "s3://") {
		t.Fatalf("table location %s is not on S3", kv.tbl.Location())
	}
	want := sortedScan(t, kv)
	kv2Files := liveFiles(t, kv2)

	// Compaction and expiry on S3.
	p := testPolicy(1 << 20)
	p.retention = 100 * time.Millisecond
	p.orphanAge = time.Hour
	time.Sleep(p.retention + expirySlack(p.retention) + 50*time.Millisecond)
	before := liveFiles(t, kv)
	rep, err := kv.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Compacted != 6 || rep.Written != 1 || rep.ExpiredSnapshots != 6 {
		t.Errorf("report %+v, want 6 files compacted into 1 and the 6 sync snapshots expired", rep)
	}
	if diff := cmp.Diff(want, sortedScan(t, kv)); diff != "" {
		t.Errorf("rows changed (-before +after):\n%s", diff)
	}
	fs, err := kv.tbl.FS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exists := func(path string) bool {
		f, err := fs.Open(path)
		if err != nil {
			return false
		}
		f.Close()
		return true
	}
	for _, f := range before {
		if exists(f) {
			t.Errorf("%s of an expired snapshot is still there", f)
		}
	}

	// Orphans: one old (age 0 below), one young (age 1h), under kv.
	orphan := kv.tbl.Location() + "/data/orphan.parquet"
	if err := fs.(iceio.WriteFileIO).WriteFile(orphan, []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	if n, err := kv.removeOrphans(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("sweep with age 1h removed %d files (%v), want none: all are young", n, err)
	}
	time.Sleep(1100 * time.Millisecond) // object times have seconds
	if n, err := kv.removeOrphans(ctx, time.Second); err != nil || n != 1 {
		t.Errorf("sweep removed %d files (%v), want the orphan", n, err)
	}
	if exists(orphan) {
		t.Error("the orphan is still there")
	}
	for _, f := range slices.Concat(liveFiles(t, kv), kv2Files) {
		if !exists(f) {
			t.Errorf("the sweep removed %s, which a snapshot lists", f)
		}
	}
	if diff := cmp.Diff(want, sortedScan(t, openTable(t, w, "kv"))); diff != "" {
		t.Errorf("rows changed (-before +after):\n%s", diff)
	}
	if n := len(scan(t, openTable(t, w, "kv2"))); n != 60 {
		t.Errorf("kv2 holds %d rows after kv's sweep, want 60", n)
	}
}
