package iceberg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// kvRows is a batch of keys from..to-1, each with value "v<k>-<tag>"
// (NULL for keys divisible by 7, to keep NULLs through compaction).
func kvRange(from, to int64, tag string) *records.Batch {
	b := records.NewBatch(kvSimple, int(to-from))
	for k := from; k < to; k++ {
		b.Cols[0].AppendInt64(k)
		if k%7 == 0 {
			b.Cols[1].AppendNull()
		} else {
			b.Cols[1].AppendString(fmt.Sprintf("v%d-%s", k, tag))
		}
		b.N++
	}
	return b
}

// testPolicy is a policy for files of a few KiB: small under target/4.
func testPolicy(target int64) policy {
	p := defaultPolicy(MaintenancePolicy{})
	p.target, p.small = target, target/4
	p.minSmall = 5
	p.maxRewrite = 1 << 40
	p.planInterval = 0
	return p
}

// setMergeOnRead makes iceberg-go's Delete write position deletes, as
// sluice's merge commits do.
// With fullMetrics, a position delete file's file_path bounds are its one
// data file's path (file-scoped, as Iceberg's Java writers make them);
// otherwise iceberg-go truncates them to 16 characters and the delete file
// applies to every data file of the partition.
func setMergeOnRead(t *testing.T, tb *Table, fullMetrics bool) {
	t.Helper()
	txn := tb.tbl.NewTransaction()
	props := iceberggo.Properties{table.WriteDeleteModeKey: table.WriteModeMergeOnRead}
	if fullMetrics {
		props[table.DefaultWriteMetricsModeKey] = "full"
	}
	if err := txn.SetProperties(props); err != nil {
		t.Fatal(err)
	}
	tbl, err := txn.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.load(tbl); err != nil {
		t.Fatal(err)
	}
}

// deleteKeys deletes the given keys with iceberg-go's merge-on-read
// delete (position delete files), in a snapshot with props.
func deleteKeys(t *testing.T, tb *Table, props iceberggo.Properties, keys ...int64) {
	t.Helper()
	ctx := context.Background()
	txn := tb.tbl.NewTransaction()
	if err := txn.Delete(ctx, iceberggo.IsIn(iceberggo.Reference("k"), keys...), props); err != nil {
		t.Fatal(err)
	}
	tbl, err := txn.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.load(tbl); err != nil {
		t.Fatal(err)
	}
}

func posProps(cursor string, extra ...string) iceberggo.Properties {
	b, _ := json.Marshal(records.Position{Cursor: cursor})
	p := iceberggo.Properties{PositionProperty: string(b)}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i]] = extra[i+1]
	}
	return p
}

// fileCounts is the number of live data and delete files of the current
// snapshot, counted from the manifests (not the summary).
func fileCounts(t *testing.T, tb *Table) (data, deletes int) {
	t.Helper()
	ctx := context.Background()
	fs, err := tb.tbl.FS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mans, err := tb.tbl.CurrentSnapshot().Manifests(fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mans {
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				t.Fatal(err)
			}
			if e.DataFile().ContentType() == iceberggo.EntryContentData {
				data++
			} else {
				deletes++
			}
		}
	}
	return data, deletes
}

// sortedScan is scan's rows in a canonical order.
func sortedScan(t *testing.T, tb *Table) [][]string {
	rows := scan(t, tb)
	sort.Slice(rows, func(i, j int) bool { return strings.Join(rows[i], "\x00") < strings.Join(rows[j], "\x00") })
	return rows
}

// sortedIcebird is icebird's rows in a canonical order.
func sortedIcebird(t *testing.T, tb *Table) []string {
	var out []string
	for _, r := range readIcebird(t, tb) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

func snapshotProps(tb *Table) map[string]string {
	s := tb.tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return nil
	}
	return s.Summary.Properties
}

// TestCompactionBinPacksAndAppliesDeletes compacts a table of one big
// file and many small ones with position deletes: the small files become
// one, the delete-heavy files are rewritten without their deleted rows,
// the delete files that no longer apply are dropped (and the one that
// still applies to the big file is kept), the rows stay the same for
// iceberg-go and icebird, the compaction snapshot carries the sluice.*
// properties, and a second call has nothing to do.
func TestCompactionBinPacksAndAppliesDeletes(t *testing.T) {
	for _, fileScoped := range []bool{true, false} {
		t.Run(fmt.Sprintf("file-scoped=%v", fileScoped), func(t *testing.T) { testCompaction(t, fileScoped) })
	}
}

func testCompaction(t *testing.T, fileScoped bool) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "kv")
	commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "0"}, kvRange(0, 3000, "big"))
	for i := int64(1); i <= 12; i++ {
		commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: fmt.Sprint(i)}, kvRange(10000+i*10, 10000+i*10+10, "small"))
	}
	setMergeOnRead(t, tb, fileScoped)
	// One delete across the big file and a small one: a delete file per
	// data file, or one naming both; either way the big file's rows stay
	// deleted after the small one is rewritten.
	deleteKeys(t, tb, posProps("d1"), 5, 6, 10011, 10012)
	// Delete-heavy: many deletes in one small file.
	for i, k := range []int64{10021, 10022, 10023, 10024, 10025} {
		deleteKeys(t, tb, posProps(fmt.Sprintf("d%d", i+2)), k)
	}
	// The newest sluice snapshot with an extra property a merge records.
	deleteKeys(t, tb, posProps("last", "sluice.schema", `{"columns":["k","v"]}`), 10031)

	dataBefore, deletesBefore := fileCounts(t, tb)
	if dataBefore != 13 || deletesBefore < 7 {
		t.Fatalf("before compaction: %d data files, %d delete files; want 13 and at least 7", dataBefore, deletesBefore)
	}
	wantRows := sortedScan(t, tb)
	if len(wantRows) != 3000+120-10 {
		t.Fatalf("before compaction the table holds %d rows, want %d", len(wantRows), 3000+120-10)
	}
	wantIcebird := sortedIcebird(t, tb)
	if len(wantIcebird) != len(wantRows) {
		t.Fatalf("icebird reads %d rows, iceberg-go %d", len(wantIcebird), len(wantRows))
	}
	posBefore, _ := tb.Position()
	propsBefore := snapshotProps(tb)
	snapsBefore := len(tb.tbl.Metadata().Snapshots())

	// The big file (3000 rows) is right-sized for this policy, the
	// 10-row files small.
	big := fileSize(t, tb, 3000)
	p := testPolicy(big * 2)
	rep, err := tb.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	data, deletes := fileCounts(t, tb)
	if fileScoped {
		// The small files packed into one; the big file keeps its one
		// delete file; the small files' delete files are gone.
		if data != 2 || deletes != 1 {
			t.Errorf("after compaction: %d data files and %d delete files, want 2 and 1", data, deletes)
		}
		if rep.Compacted != 12+deletesBefore-1 || rep.Written != 1 || rep.Pending || rep.ExpiredSnapshots != 0 {
			t.Errorf("report %+v, want Compacted %d, Written 1", rep, 12+deletesBefore-1)
		}
	} else {
		// Every delete file applies to every data file: all are
		// delete-heavy and rewritten, in bins of the target size (one or
		// two: the rewritten files' encoding differs from the writer's).
		if data < 1 || data > 2 || deletes != 0 {
			t.Errorf("after compaction: %d data files and %d delete files, want 1 or 2 and 0", data, deletes)
		}
		if rep.Compacted != 13+deletesBefore || rep.Written != data || rep.Pending || rep.ExpiredSnapshots != 0 {
			t.Errorf("report %+v, want Compacted %d, Written %d", rep, 13+deletesBefore, data)
		}
	}
	if got := len(tb.tbl.Metadata().Snapshots()); got != snapsBefore+1 {
		t.Errorf("compaction made %d snapshots, want 1", got-snapsBefore)
	}
	if op := tb.tbl.CurrentSnapshot().Summary.Operation; op != table.OpReplace {
		t.Errorf("the compaction snapshot's operation is %s, want replace", op)
	}
	if diff := cmp.Diff(wantRows, sortedScan(t, tb)); diff != "" {
		t.Errorf("iceberg-go reads other rows after compaction (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(wantIcebird, sortedIcebird(t, tb)); diff != "" {
		t.Errorf("icebird reads other rows after compaction (-before +after):\n%s", diff)
	}
	props := snapshotProps(tb)
	for k, v := range propsBefore {
		if strings.HasPrefix(k, "sluice.") && props[k] != v {
			t.Errorf("the compaction snapshot has %s = %q, want %q", k, props[k], v)
		}
	}
	if props["sluice.schema"] == "" {
		t.Error("the compaction snapshot lost sluice.schema")
	}
	reopened := openTable(t, openTest(t, dir), "kv")
	if pos, ok := reopened.Position(); !ok || !cmp.Equal(pos, posBefore) {
		t.Errorf("reopened after compaction: position %+v (%v), want %+v", pos, ok, posBefore)
	}

	// Nothing is due now: no snapshot, an empty report.
	loc := tb.MetadataLocation()
	rep, err = tb.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Empty() || tb.MetadataLocation() != loc {
		t.Errorf("a second maintenance did %+v and moved the metadata from %s to %s", rep, loc, tb.MetadataLocation())
	}

	// A sync commit after compaction lands on it.
	commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: "after"}, kvRange(20000, 20005, "after"))
	if n := len(scan(t, tb)); n != len(wantRows)+5 {
		t.Errorf("after an append on the compacted table: %d rows, want %d", n, len(wantRows)+5)
	}
}

// TestCompactionMergesDeleteFiles: a right-sized data file with many
// delete files of its own, a few rows each, keeps its data file and gets
// one delete file holding all their positions.
func TestCompactionMergesDeleteFiles(t *testing.T) {
	ctx := context.Background()
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "kv")
	commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "0"}, kvRange(0, 2000, "big"))
	setMergeOnRead(t, tb, true)
	for i, keys := range [][]int64{{1}, {2, 3}, {500}, {1999}, {7, 8, 9}, {1000}} {
		deleteKeys(t, tb, posProps(fmt.Sprint(i)), keys...)
	}
	big := fileSize(t, tb, 2000)
	dataBefore := dataPaths(t, tb)
	if data, deletes := fileCounts(t, tb); data != 1 || deletes != 6 {
		t.Fatalf("before: %d data files, %d delete files; want 1 and 6", data, deletes)
	}
	want := sortedScan(t, tb)
	wantIcebird := sortedIcebird(t, tb)
	if len(want) != 2000-9 || len(wantIcebird) != len(want) {
		t.Fatalf("before: iceberg-go reads %d rows, icebird %d; want %d", len(want), len(wantIcebird), 2000-9)
	}
	p := testPolicy(big) // the data file is right-sized
	rep, err := tb.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Compacted != 6 || rep.Written != 0 {
		t.Errorf("report %+v, want 6 delete files compacted, no data file written", rep)
	}
	if data, deletes := fileCounts(t, tb); data != 1 || deletes != 1 {
		t.Errorf("after: %d data files, %d delete files; want 1 and 1", data, deletes)
	}
	if got := dataPaths(t, tb); !cmp.Equal(got, dataBefore) {
		t.Errorf("the data file was rewritten: before %v, after %v", dataBefore, got)
	}
	if diff := cmp.Diff(want, sortedScan(t, tb)); diff != "" {
		t.Errorf("iceberg-go reads other rows (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(wantIcebird, sortedIcebird(t, tb)); diff != "" {
		t.Errorf("icebird reads other rows (-before +after):\n%s", diff)
	}
	if pos, _ := tb.Position(); pos.Cursor != "5" {
		t.Errorf("position after compaction: %+v, want cursor 5", pos)
	}
	// The merged file applies to the data file alone and is one: nothing
	// is due.
	if rep, err := tb.maintain(ctx, p); err != nil || !rep.Empty() {
		t.Errorf("second maintenance: %+v, %v; want nothing due", rep, err)
	}
}

// dataPaths lists the current data files.
func dataPaths(t *testing.T, tb *Table) []string {
	t.Helper()
	tasks, err := tb.tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, task := range tasks {
		paths = append(paths, task.File.FilePath())
	}
	slices.Sort(paths)
	return paths
}

// fileSize is the size of a data file of the table holding rows rows.
func fileSize(t *testing.T, tb *Table, rows int64) int64 {
	t.Helper()
	tasks, err := tb.tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.File.Count() == rows {
			return task.File.FileSizeBytes()
		}
	}
	t.Fatalf("no data file of %d rows", rows)
	return 0
}

// TestCompactionBoundedPerCall caps the bytes of one call: the first call
// does part and says Pending, the next ones finish, the rows never change.
func TestCompactionBoundedPerCall(t *testing.T) {
	ctx := context.Background()
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "kv")
	for i := int64(0); i < 12; i++ {
		commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: fmt.Sprint(i)}, kvRange(i*100, i*100+100, "x"))
	}
	want := sortedScan(t, tb)
	one := fileSize(t, tb, 100)
	p := testPolicy(one * 4) // bins of 4 files
	p.small = one * 2
	p.minSmall = 2
	p.maxRewrite = one * 4 // one bin per call
	rep, err := tb.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pending || rep.Compacted == 0 || rep.Compacted >= 12 {
		t.Errorf("first bounded call: %+v, want part of the 12 files and Pending", rep)
	}
	for i := 0; rep.Pending && i < 10; i++ {
		if rep, err = tb.maintain(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if rep.Pending {
		t.Error("compaction still pending after 10 calls")
	}
	if data, _ := fileCounts(t, tb); data >= 12 {
		t.Errorf("after bounded compaction: %d data files", data)
	}
	if diff := cmp.Diff(want, sortedScan(t, tb)); diff != "" {
		t.Errorf("rows changed (-before +after):\n%s", diff)
	}
	if pos, _ := tb.Position(); pos.Cursor != "11" {
		t.Errorf("position after compaction: %+v, want cursor 11", pos)
	}
}

// TestMaintainNothingDue: a fresh table under the default policy.
func TestMaintainNothingDue(t *testing.T) {
	ctx := context.Background()
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "kv")
	if rep, err := tb.Maintain(ctx); err != nil || !rep.Empty() {
		t.Fatalf("Maintain of a table never committed: %+v, %v", rep, err)
	}
	for i := int64(0); i < 3; i++ {
		commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: fmt.Sprint(i)}, kvRange(i*10, i*10+10, "x"))
	}
	loc := tb.MetadataLocation()
	rep, err := tb.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Empty() || tb.MetadataLocation() != loc {
		t.Errorf("Maintain with nothing due did %+v and moved the metadata from %s to %s", rep, loc, tb.MetadataLocation())
	}
}

// TestExpiry expires the snapshots older than the retention and removes
// the files only they listed, keeping the current rows and position, and
// the snapshots back to the newest one with a position.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openTest(t, dir)
	tb := openTable(t, w, "kv")
	commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "1"}, kvRange(0, 10, "one"))
	firstFiles := liveFiles(t, tb)
	firstList := tb.tbl.CurrentSnapshot().ManifestList
	commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "2"}, kvRange(0, 10, "two"))
	commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: "3"}, kvRange(10, 20, "three"))
	// A snapshot without a position (another engine's), as the current.
	setMergeOnRead(t, tb, false)
	deleteKeys(t, tb, nil, 3)
	want := sortedScan(t, tb)
	if len(tb.tbl.Metadata().Snapshots()) != 4 {
		t.Fatalf("%d snapshots, want 4", len(tb.tbl.Metadata().Snapshots()))
	}

	p := testPolicy(1 << 20)
	p.retention = 200 * time.Millisecond
	p.orphanAge = time.Hour
	// Not due before the retention and its slack have passed.
	if rep, err := tb.maintain(ctx, p); err != nil || !rep.Empty() {
		t.Fatalf("maintenance within the retention: %+v, %v", rep, err)
	}
	time.Sleep(p.retention + expirySlack(p.retention) + 50*time.Millisecond)
	rep, err := tb.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: the current snapshot and its parent, the newest with a position.
	if rep.ExpiredSnapshots != 2 || len(tb.tbl.Metadata().Snapshots()) != 2 {
		t.Errorf("report %+v with %d snapshots left; want 2 expired, 2 left", rep, len(tb.tbl.Metadata().Snapshots()))
	}
	for _, f := range append(firstFiles, firstList) {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s of an expired snapshot is still there (%v)", f, err)
		}
	}
	if rep.RemovedFiles < len(firstFiles)+2 {
		t.Errorf("removed %d files, want at least %d", rep.RemovedFiles, len(firstFiles)+2)
	}
	for _, f := range liveFiles(t, tb) {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("a live file is gone: %v", err)
		}
	}
	if diff := cmp.Diff(want, sortedScan(t, tb)); diff != "" {
		t.Errorf("rows changed by expiry (-before +after):\n%s", diff)
	}
	reopened := openTable(t, openTest(t, dir), "kv")
	if pos, ok := reopened.Position(); !ok || pos.Cursor != "3" {
		t.Errorf("reopened after expiry: position %+v (%v), want cursor 3", pos, ok)
	}
	if got := len(readIcebird(t, reopened)); got != len(want) {
		t.Errorf("icebird reads %d rows after expiry, want %d", got, len(want))
	}
}

// listFiles lists the files under dir.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestExpiryKeepsAtMostMaxSnapshots expires the snapshots beyond the
// newest maxSnapshots, however young, with their files.
func TestExpiryKeepsAtMostMaxSnapshots(t *testing.T) {
	ctx := context.Background()
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "kv")
	var replaced []string
	for i := int64(0); i < 12; i++ {
		commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: fmt.Sprint(i)}, kvRange(i, i+10, "r"))
		replaced = append(replaced, dataPaths(t, tb)...)
	}
	p := testPolicy(1 << 20)
	p.maxSnapshots = 5
	rep, err := tb.maintain(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExpiredSnapshots != 7 || len(tb.tbl.Metadata().Snapshots()) != 5 {
		t.Errorf("report %+v, %d snapshots left; want 7 expired, 5 left", rep, len(tb.tbl.Metadata().Snapshots()))
	}
	// The data files of the 7 expired snapshots (each replaced by the
	// next) are gone; those of the 5 kept ones (time travel) stay.
	for i, f := range replaced {
		_, err := os.Stat(f)
		if gone := os.IsNotExist(err); gone != (i < 7) {
			t.Errorf("data file of snapshot %d: removed %v (%v)", i, gone, err)
		}
	}
	if pos, _ := tb.Position(); pos.Cursor != "11" {
		t.Errorf("position %+v, want cursor 11", pos)
	}
	if n := len(scan(t, tb)); n != 10 {
		t.Errorf("%d rows, want 10", n)
	}
}

// TestCompactionPlanStands: a plan that found nothing due stands for the
// plan interval unless MinSmallFiles files were added.
func TestCompactionPlanStands(t *testing.T) {
	ctx := context.Background()
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "kv")
	add := func(from, n int64) {
		for i := from; i < from+n; i++ {
			commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: fmt.Sprint(i)}, kvRange(i*10, i*10+10, "x"))
		}
	}
	add(0, 6)
	p := testPolicy(1 << 20)
	p.planInterval = time.Hour
	p.small = 1 // nothing small: nothing due
	if rep, err := tb.maintain(ctx, p); err != nil || !rep.Empty() {
		t.Fatalf("first plan: %+v, %v", rep, err)
	}
	p.small = 1 << 18 // now all are small, but the plan stands
	if rep, err := tb.maintain(ctx, p); err != nil || !rep.Empty() {
		t.Fatalf("within the plan interval: %+v, %v; want nothing", rep, err)
	}
	add(6, int64(p.minSmall)) // enough new files: planned again
	if rep, err := tb.maintain(ctx, p); err != nil || rep.Compacted != 6+p.minSmall {
		t.Fatalf("after %d new files: %+v, %v; want all %d compacted", p.minSmall, rep, err, 6+p.minSmall)
	}
}

// liveFiles lists the current snapshot's data and delete files and
// manifests.
func liveFiles(t *testing.T, tb *Table) []string {
	t.Helper()
	fs, err := tb.tbl.FS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mans, err := tb.tbl.CurrentSnapshot().Manifests(fs)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, m := range mans {
		files = append(files, m.FilePath())
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, e.DataFile().FilePath())
		}
	}
	return files
}

// TestRemoveOrphans removes the files no snapshot lists that are older
// than OrphanAge, and nothing else: not a young one (a commit in flight
// elsewhere), not a committed file however old.
func TestRemoveOrphans(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openTest(t, dir)
	tables := map[string]*Table{"kv": openTable(t, w, "kv"), "kv2": openTable(t, w, "kv2")}
	for _, tb := range tables {
		commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "1"}, kvRange(0, 10, "one"))
		commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: "2"}, kvRange(10, 20, "two"))
	}
	// A failed commit's files, as a killed writer leaves them.
	before := listFiles(t, tables["kv"].tbl.Location())
	w.beforeCommit = func() error { return fmt.Errorf("crash") }
	tx, err := tables["kv"].Begin(ctx, warehouse.Append, kvSimple, "test")
	if err != nil {
		t.Fatal(err)
	}
	tx.Write(ctx, kvRange(20, 30, "lost"))
	if _, err := tx.Commit(ctx, records.Position{Cursor: "lost"}); err == nil {
		t.Fatal("a commit went through the crash")
	}
	w.beforeCommit = nil
	var failed []string
	for _, f := range listFiles(t, tables["kv"].tbl.Location()) {
		if !slices.Contains(before, f) {
			failed = append(failed, f)
		}
	}
	if len(failed) == 0 {
		t.Fatal("the failed commit left no file")
	}

	old := time.Now().Add(-2 * OrphanAge)
	var oldOrphans, youngOrphans, committed []string
	for _, tb := range tables {
		loc := tb.tbl.Location()
		youngOrphans = append(youngOrphans, filepath.Join(loc, "data", "young.parquet"), filepath.Join(loc, "metadata", "young.avro"))
		orphans := []string{filepath.Join(loc, "data", "old.parquet"), filepath.Join(loc, "metadata", "old-m0.avro"), filepath.Join(loc, "data", "sub", "deep.parquet")}
		for _, f := range append(slices.Clone(orphans), youngOrphans[len(youngOrphans)-2:]...) {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte("orphan"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		files := append(liveFiles(t, tb), tb.MetadataLocation(), tb.tbl.CurrentSnapshot().ManifestList)
		committed = append(committed, files...)
		// Everything but the young orphans is old, the committed files too.
		err := filepath.WalkDir(loc, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(path, "young") {
				return err
			}
			return os.Chtimes(path, old, old)
		})
		if err != nil {
			t.Fatal(err)
		}
		oldOrphans = append(oldOrphans, orphans...)
	}
	oldOrphans = append(oldOrphans, failed...)
	want := sortedScan(t, tables["kv"])

	if err := w.RemoveOrphans(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range oldOrphans {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("old orphan %s is still there (%v)", f, err)
		}
	}
	for _, f := range append(youngOrphans, committed...) {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("RemoveOrphans removed a young or committed file: %v", err)
		}
	}
	reopened := openTable(t, openTest(t, dir), "kv")
	if diff := cmp.Diff(want, sortedScan(t, reopened)); diff != "" {
		t.Errorf("rows changed (-before +after):\n%s", diff)
	}
	if got := len(readIcebird(t, reopened)); got != len(want) {
		t.Errorf("icebird reads %d rows, want %d", got, len(want))
	}
}

var (
	benchFiles = flag.Int("compact-files", 50, "BenchmarkCompact: number of small files")
	benchRows  = flag.Int("compact-rows", 1000, "BenchmarkCompact: rows per small file")
	benchWide  = flag.Bool("compact-wide", false, "BenchmarkCompact: values of 64 random hex characters (pgbench_accounts' row size) instead of short ones")
)

// wideRows is a batch of keys from..to-1 with 64 random hex characters.
func wideRows(from, to int64) *records.Batch {
	b := records.NewBatch(kvSimple, int(to-from))
	for k := from; k < to; k++ {
		sum := sha256.Sum256([]byte(strconv.FormatInt(k, 10)))
		b.Cols[0].AppendInt64(k)
		b.Cols[1].AppendString(hex.EncodeToString(sum[:]))
		b.N++
	}
	return b
}

// BenchmarkCompact times the compaction of -compact-files small files of
// -compact-rows rows each (an 8-byte key and a ~12-byte text, or with
// -compact-wide 64 random hex characters) into one, and its peak heap,
// under the default policy, and prints the input size and the rate.
func BenchmarkCompact(b *testing.B) {
	files, rows := int64(*benchFiles), int64(*benchRows)
	ctx := context.Background()
	var bytes int64
	var peakHeap, baseHeap uint64
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		w, err := Open(ctx, Options{Location: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		tbv, _ := w.Table(ctx, "kv")
		tb := tbv.(*Table)
		for i := int64(0); i < files; i++ {
			tx, _ := tb.Begin(ctx, warehouse.Append, kvSimple, "bench")
			batch := kvRange(i*rows, i*rows+rows, "bench")
			if *benchWide {
				batch = wideRows(i*rows, i*rows+rows)
			}
			tx.Write(ctx, batch)
			if _, err := tx.Commit(ctx, records.Position{Cursor: fmt.Sprint(i)}); err != nil {
				b.Fatal(err)
			}
		}
		tasks, err := tb.tbl.Scan().PlanFiles(ctx)
		if err != nil {
			b.Fatal(err)
		}
		bytes = 0
		for _, t := range tasks {
			bytes += t.File.FileSizeBytes()
		}
		p := defaultPolicy(MaintenancePolicy{})
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseHeap = ms.HeapInuse
		stop := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			var peak uint64
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				select {
				case <-stop:
					sampled <- peak
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		b.StartTimer()
		start := time.Now()
		rep, err := tb.maintain(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		took = time.Since(start)
		close(stop)
		peakHeap = <-sampled
		if rep.Compacted != int(files) || rep.Written != 1 {
			b.Fatalf("report %+v, want %d compacted into 1", rep, files)
		}
		w.Close()
	}
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(files*rows), "rows")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB_in")
	b.ReportMetric(float64(bytes)/(1<<20)/took.Seconds(), "MiB/s")
	b.ReportMetric(float64(files*rows)/took.Seconds(), "rows/s")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak_heap_MiB")
	b.ReportMetric(float64(baseHeap)/(1<<20), "heap_before_MiB")
}

// TestDefaultPolicy: every default is in the policy, and the retention
// comes from the options.
func TestDefaultPolicy(t *testing.T) {
	want := policy{
		retention: DefaultRetention, maxSnapshots: MaxSnapshots,
		target: TargetFileSize, small: SmallFileSize, minSmall: MinSmallFiles,
		deleteFiles: DeleteFilesThreshold, deleteRatio: DeleteRatioThreshold,
		maxRewrite: MaxRewriteBytes, orphanAge: OrphanAge, planInterval: planInterval,
	}
	if diff := cmp.Diff(want, defaultPolicy(MaintenancePolicy{}), cmp.AllowUnexported(policy{})); diff != "" {
		t.Errorf("default policy (-want +got):\n%s", diff)
	}
	want.retention = time.Hour
	if diff := cmp.Diff(want, defaultPolicy(MaintenancePolicy{Retention: time.Hour}), cmp.AllowUnexported(policy{})); diff != "" {
		t.Errorf("policy with a retention (-want +got):\n%s", diff)
	}
}
