package parquet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	pq "github.com/parquet-go/parquet-go"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/records/recordstest"
	"github.com/sluice-dev/sluice/warehouse"
)

var kvSchema = &records.Schema{
	Columns:    []records.Column{col("id", tInt64), col("name", tString), col("n", tInt32)},
	PrimaryKey: []string{"id"},
}

// tinyLimits makes every file, row group and bucket hold a few rows, so
// that small tests exercise rotation, many files and many buckets.
func tinyLimits(w *Warehouse) {
	w.lim = limits{rowGroupRows: 5, rowGroupBytes: 1 << 20, fileRows: 12, fileBytes: 1 << 30, pageBytes: 64 << 10, bucketRows: 10}
	w.spillB = 2 << 10
}

// model is the expected content of a merged table: one row per key.
type model map[int][]any

func (m model) rows() [][]any {
	var out [][]any
	for _, r := range m {
		out = append(out, r)
	}
	sortRows(out)
	return out
}

func checkTable(t *testing.T, tb *Table, want [][]any) {
	t.Helper()
	_, got := scanAll(t, tb)
	want = slices.Clone(want)
	sortRows(want)
	// reflect.DeepEqual first: cmp.Diff is slow on tens of thousands of
	// rows, and only the failure needs its report.
	if got := withoutSyncedAt(got); !reflect.DeepEqual(want, got) {
		t.Fatalf("table rows (-want +got):\n%s", cmp.Diff(want, got))
	}
	m := tb.Manifest()
	if m.Rows != int64(len(want)) {
		t.Errorf("manifest rows %d, want %d", m.Rows, len(want))
	}
	if diff := cmp.Diff(manifestFiles(m), dataFiles(t, tb.Dir())); diff != "" {
		t.Errorf("directory holds other files than the manifest lists (-manifest +dir):\n%s", diff)
	}
}

func TestMergeKeepsOneRowPerKeyLastWins(t *testing.T) {
	for _, c := range []struct {
		name     string
		tiny     bool
		replaced bool // the table starts with a Replace (buckets chosen there)
	}{
		{"default limits", false, false},
		{"many files and buckets, spilling", true, false},
		{"after a bucketed replace", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := openTestWarehouse(t)
			if c.tiny {
				tinyLimits(w)
			}
			tb := mustTable(t, w, "kv")
			want := model{}
			rng := rand.New(rand.NewPCG(1, 2))
			if c.replaced {
				var rows [][]any
				for id := range 60 {
					r := []any{id, fmt.Sprintf("v0-%d", id), 0}
					rows = append(rows, r)
					want[id] = r
				}
				commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, rows, WithExpectedRows(60))
				if b := tb.Manifest().Buckets; b != 8 {
					t.Fatalf("a replace of 60 rows at 10 rows a bucket has %d buckets, want 8", b)
				}
				checkTable(t, tb, want.rows())
			}
			for round := 1; round <= 25; round++ {
				tx, err := tb.BeginTx(ctx, warehouse.Merge, kvSchema)
				if err != nil {
					t.Fatal(err)
				}
				// Several batches, keys repeating within and across them,
				// in one batch the producer reuses.
				batch := records.NewBatch(kvSchema, 0)
				for range 3 {
					var rows [][]any
					for range rng.IntN(30) {
						id := rng.IntN(100)
						r := []any{id, fmt.Sprintf("v%d-%d", round, rng.IntN(1000)), round}
						if rng.IntN(10) == 0 {
							r[1] = nil
						}
						rows = append(rows, r)
						want[id] = r
					}
					if err := tx.Write(ctx, fillBatch(t, batch, rows)); err != nil {
						t.Fatal(err)
					}
				}
				pos := records.Position{Cursor: fmt.Sprint(round)}
				m, err := tx.commitManifest(ctx, pos)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if m.Position.Cursor != pos.Cursor {
					t.Fatalf("committed position %v, want %v", m.Position, pos)
				}
				checkTable(t, tb, want.rows())
				for b := range m.Buckets {
					n := 0
					for _, f := range m.Files {
						if f.Bucket == b {
							n++
						}
					}
					if n > maxSmallFiles+1 {
						t.Errorf("bucket %d has %d files", b, n)
					}
				}
			}
			checkBuckets(t, tb)
		})
	}
}

// checkBuckets verifies that every row of a bucketed table lives in a file
// of its key's bucket and that file key ranges hold the keys.
func checkBuckets(t *testing.T, tb *Table) {
	t.Helper()
	m := tb.Manifest()
	if m.Buckets == 0 {
		return
	}
	s := m.Schema.Records()
	keyCols, _ := s.KeyIndexes()
	for _, f := range m.Files {
		r, err := openFile(filepath.Join(tb.Dir(), f.Name), s)
		if err != nil {
			t.Fatal(err)
		}
		b := records.NewBatch(s, 0)
		for g := range r.numRowGroups() {
			if err := r.readRowGroup(g, b, nil); err != nil {
				t.Fatal(err)
			}
			for i := range b.N {
				k := b.AppendKey(nil, i, keyCols)
				if got := int(records.KeyHash(k) & uint64(m.Buckets-1)); got != f.Bucket {
					t.Errorf("file %s of bucket %d holds a row of bucket %d", f.Name, f.Bucket, got)
				}
				if string(k) < string(f.KeyMin) || string(k) > string(f.KeyMax) {
					t.Errorf("file %s holds key %x outside its range [%x, %x]", f.Name, k, f.KeyMin, f.KeyMax)
				}
			}
		}
		r.close()
	}
}

// A merge that only inserts new keys rewrites no file; one that updates a
// key rewrites only the files holding it.
func TestMergeRewritesOnlyTheFilesItMust(t *testing.T) {
	w := openTestWarehouse(t)
	w.lim.bucketRows = 100
	tb := mustTable(t, w, "kv")
	var rows [][]any
	for id := range 400 {
		rows = append(rows, []any{id, "a", 0})
	}
	m1 := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, rows, WithExpectedRows(400))
	if m1.Buckets != 4 || len(m1.Files) != 4 {
		t.Fatalf("replace of 400 rows: %d buckets, %d files; want 4 and 4", m1.Buckets, len(m1.Files))
	}

	// New keys above every existing one: the files' key ranges rule them
	// out, nothing is rewritten.
	m2 := commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, [][]any{{1000, "new", 1}, {1001, "new", 1}, {1002, "new", 1}})
	kept := 0
	for _, f := range m2.Files {
		if slices.Contains(manifestFiles(m1), f.Name) {
			kept++
		}
	}
	if kept != 4 || m2.Rows != 403 {
		t.Errorf("after inserting 3 rows: %d of 4 files kept, %d rows; want 4 and 403", kept, m2.Rows)
	}

	// An update of key 7 rewrites the one file holding it.
	m3 := commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, [][]any{{7, "changed", 2}})
	var gone []string
	for _, f := range m2.Files {
		if !slices.Contains(manifestFiles(m3), f.Name) {
			gone = append(gone, f.Name)
		}
	}
	if len(gone) != 1 || m3.Rows != 403 {
		t.Errorf("after updating one row: files replaced %v, rows %d; want one file and 403 rows", gone, m3.Rows)
	}
	_, got := scanAll(t, tb)
	n := 0
	for _, r := range got {
		if r[0] == 7 {
			n++
			if r[1] != "changed" {
				t.Errorf("row 7 = %v, want the merged value", r)
			}
		}
	}
	if n != 1 {
		t.Errorf("key 7 appears %d times", n)
	}
}

// Inserting merges add a file each; the bucket's file count stays bounded.
func TestMergeCompactsSmallFiles(t *testing.T) {
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "kv")
	want := model{}
	for round := range 30 {
		r := []any{round, "x", round}
		want[round] = r
		m := commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, [][]any{r})
		if len(m.Files) > maxSmallFiles {
			t.Fatalf("round %d: %d files in one bucket", round, len(m.Files))
		}
	}
	checkTable(t, tb, want.rows())
}

func TestReplaceAbortAndFailedWriteKeepThePreviousVersion(t *testing.T) {
	withFsync(t)
	w := openTestWarehouse(t)
	tinyLimits(w)
	tb := mustTable(t, w, "kv")
	var v1 [][]any
	for id := range 30 {
		v1 = append(v1, []any{id, "v1", 1})
	}
	m1 := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{Cursor: "one"}, v1)

	cases := []struct {
		name string
		fail func(t *testing.T, tx *Tx)
	}{
		{"abort", func(t *testing.T, tx *Tx) {
			if err := tx.Abort(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"failed write, then commit", func(t *testing.T, tx *Tx) {
			other := &records.Schema{Columns: []records.Column{col("id", tString)}}
			if err := tx.Write(ctx, batchOf(t, other, [][]any{{"x"}})); err == nil {
				t.Fatal("a batch of another schema was written")
			}
			if _, err := tx.Commit(ctx, records.Position{Cursor: "two"}); err == nil {
				t.Fatal("a transaction whose write failed committed")
			}
		}},
		{"cancelled write, then commit", func(t *testing.T, tx *Tx) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := tx.Write(cctx, batchOf(t, kvSchema, [][]any{{100, "x", 1}})); !errors.Is(err, context.Canceled) {
				t.Fatalf("write error %v, want context.Canceled", err)
			}
			if _, err := tx.Commit(ctx, records.Position{Cursor: "two"}); err == nil {
				t.Fatal("a transaction whose write was cancelled committed")
			}
		}},
		{"cancelled commit", func(t *testing.T, tx *Tx) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := tx.Commit(cctx, records.Position{Cursor: "two"}); !errors.Is(err, context.Canceled) {
				t.Fatalf("commit error %v, want context.Canceled", err)
			}
		}},
		{"failed commit before the manifest", func(t *testing.T, tx *Tx) {
			w.hook = func(stage string) error {
				if stage == stageBeforeManifest {
					return errors.New("disk full")
				}
				return nil
			}
			defer func() { w.hook = nil }()
			if _, err := tx.Commit(ctx, records.Position{Cursor: "two"}); err == nil || !strings.Contains(err.Error(), "disk full") {
				t.Fatalf("commit error %v, want disk full", err)
			}
		}},
	}
	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		for _, c := range cases {
			t.Run(mode.String()+"/"+c.name, func(t *testing.T) {
				tx, err := tb.BeginTx(ctx, mode, kvSchema)
				if err != nil {
					t.Fatal(err)
				}
				var rows [][]any
				for id := range 40 {
					rows = append(rows, []any{id, "v2", 2})
				}
				if err := tx.Write(ctx, batchOf(t, kvSchema, rows)); err != nil {
					t.Fatal(err)
				}
				c.fail(t, tx)
				reopened := mustTable(t, w, "kv")
				if diff := cmp.Diff(m1, reopened.Manifest()); diff != "" {
					t.Errorf("manifest changed (-before +after):\n%s", diff)
				}
				checkTable(t, reopened, v1)
				if entries, _ := os.ReadDir(filepath.Join(tb.Dir(), metaDir)); len(entries) != 2 {
					t.Errorf("_sluice holds %d entries, want the manifest and the lock", len(entries))
				}
			})
		}
	}
}

func TestSchemaEvolution(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	tb := mustTable(t, w, "kv")
	v1 := &records.Schema{Columns: []records.Column{col("id", tInt64), col("a", tString)}, PrimaryKey: []string{"id"}}
	var rows [][]any
	for id := range 25 {
		rows = append(rows, []any{id, "a"})
	}
	commitRows(t, tb, warehouse.Replace, v1, records.Position{}, rows)

	// A new column: every file of the table gets it.
	v2 := &records.Schema{Columns: []records.Column{col("id", tInt64), col("a", tString), col("B b", tInt32)}, PrimaryKey: []string{"id"}}
	m := commitRows(t, tb, warehouse.Merge, v2, records.Position{}, [][]any{{3, "changed", 33}, {100, "new", 1}})
	want := [][]any{}
	for id := range 25 {
		want = append(want, []any{id, "a", nil})
	}
	want[3] = []any{3, "changed", 33}
	want = append(want, []any{100, "new", 1})
	checkTable(t, tb, want)
	for _, f := range m.Files {
		if cols := fileColumns(t, filepath.Join(tb.Dir(), f.Name)); !slices.Equal(cols, []string{"id", "a", "B b", SyncedAtColumn}) {
			t.Errorf("file %s has columns %q", f.Name, cols)
		}
	}

	// A dropped column stays, NULL in new rows; appended rows too.
	v3 := &records.Schema{Columns: []records.Column{col("id", tInt64), col("B b", tInt32)}, PrimaryKey: []string{"id"}}
	commitRows(t, tb, warehouse.Merge, v3, records.Position{}, [][]any{{4, 44}})
	want[4] = []any{4, nil, 44}
	checkTable(t, tb, want)
	v4 := &records.Schema{Columns: []records.Column{col("id", tInt64), col("c", tBool)}, PrimaryKey: []string{"id"}}
	m = commitRows(t, tb, warehouse.Append, v4, records.Position{}, [][]any{{4, true}})
	for i := range want {
		want[i] = append(want[i], nil)
	}
	want = append(want, []any{4, nil, nil, true})
	checkTable(t, tb, want)
	for _, f := range m.Files {
		if cols := fileColumns(t, filepath.Join(tb.Dir(), f.Name)); len(cols) != 5 {
			t.Errorf("file %s has columns %q", f.Name, cols)
		}
	}

	// A type change needs a resync.
	changed := &records.Schema{Columns: []records.Column{col("id", tInt64), col("a", tInt64)}, PrimaryKey: []string{"id"}}
	for _, mode := range []warehouse.Mode{warehouse.Merge, warehouse.Append} {
		if _, err := tb.BeginTx(ctx, mode, changed); !errors.Is(err, warehouse.ErrSchemaChanged) {
			t.Errorf("%v with a changed type: %v, want ErrSchemaChanged", mode, err)
		}
	}
	otherKey := &records.Schema{Columns: []records.Column{col("id", tInt64), col("a", tString)}, PrimaryKey: []string{"a"}}
	if _, err := tb.BeginTx(ctx, warehouse.Merge, otherKey); !errors.Is(err, warehouse.ErrSchemaChanged) {
		t.Errorf("merge with another key: %v, want ErrSchemaChanged", err)
	}
	commitRows(t, tb, warehouse.Replace, changed, records.Position{}, [][]any{{1, 2}})
	checkTable(t, tb, [][]any{{1, 2}})
}

func fileColumns(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range pf.Root().Columns() {
		out = append(out, c.Name())
	}
	return out
}

func TestAppendKeepsEveryRow(t *testing.T) {
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "log")
	s := &records.Schema{Columns: []records.Column{col("id", tInt64), col("v", tString)}}
	commitRows(t, tb, warehouse.Append, s, records.Position{Cursor: "1"}, [][]any{{1, "a"}, {1, "a"}})
	m := commitRows(t, tb, warehouse.Append, s, records.Position{Cursor: "2"}, [][]any{{1, "b"}})
	checkTable(t, tb, [][]any{{1, "a"}, {1, "a"}, {1, "b"}})
	if m.Version != 2 || m.Position.Cursor != "2" || m.Buckets != 0 || m.Mode != "append" {
		t.Errorf("manifest version %d cursor %q buckets %d mode %q", m.Version, m.Position.Cursor, m.Buckets, m.Mode)
	}
}

// A table first written without a key (append) and then merged is spread
// into buckets.
func TestMergeIntoUnbucketedFiles(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	tb := mustTable(t, w, "kv")
	want := model{}
	var rows [][]any
	for id := range 50 {
		r := []any{id, "appended", 0}
		rows = append(rows, r)
		want[id] = r
	}
	commitRows(t, tb, warehouse.Append, kvSchema, records.Position{}, rows)
	m := commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, [][]any{{5, "merged", 1}, {500, "merged", 1}})
	want[5] = []any{5, "merged", 1}
	want[500] = []any{500, "merged", 1}
	checkTable(t, tb, want.rows())
	if m.Buckets < 2 {
		t.Errorf("%d buckets, want several", m.Buckets)
	}
	for _, f := range m.Files {
		if f.Bucket < 0 {
			t.Errorf("file %s is still unbucketed", f.Name)
		}
	}
	checkBuckets(t, tb)
}

func TestManifestRecordsTheCommit(t *testing.T) {
	withFsync(t)
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "kv")
	if m := tb.Manifest(); m.Version != 0 || len(m.Files) != 0 {
		t.Fatalf("a new table has version %d and %d files", m.Version, len(m.Files))
	}
	tx, err := tb.BeginTx(ctx, warehouse.Merge, kvSchema, WithSyncMode("incremental"))
	if err != nil {
		t.Fatal(err)
	}
	b := batchOf(t, kvSchema, [][]any{{1, "a", nil}, {2, "b", nil}})
	b.Cols[2].Nulled = 2 // NaN that became NULL
	if err := tx.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	pos := records.Position{Cursor: "2026-01-01 00:00:00+00", BoundaryKeys: []string{"k"}, LSN: "0/1", Extra: map[string]string{"x": "y"}}
	m, err := tx.commitManifest(ctx, pos)
	if err != nil {
		t.Fatal(err)
	}
	reopened := mustTable(t, w, "kv")
	if diff := cmp.Diff(m, reopened.Manifest()); diff != "" {
		t.Errorf("manifest on disk differs from the one returned (-returned +disk):\n%s", diff)
	}
	got := reopened.Manifest()
	if diff := cmp.Diff(pos, got.Position); diff != "" {
		t.Errorf("position (-want +got):\n%s", diff)
	}
	if got.Version != 1 || got.Rows != 2 || got.Warnings != 2 || got.CommitWarnings != 2 || got.SyncMode != "incremental" || got.Mode != "merge" || got.Buckets != 1 || got.KeyHash == "" || got.CommittedAt.IsZero() {
		t.Errorf("manifest %+v", got)
	}
	wantSchema := append(slices.Clone(kvSchema.Columns), records.Column{Name: SyncedAtColumn, Type: syncedAtType, SourceType: "timestamp with time zone"})
	if diff := cmp.Diff(wantSchema, got.Schema.Records().Columns); diff != "" {
		t.Errorf("schema (-want +got):\n%s", diff)
	}
	m2 := commitRows(t, reopened, warehouse.Merge, kvSchema, pos, nil)
	if m2.Version != 2 || m2.Warnings != 2 || m2.CommitWarnings != 0 || m2.SyncMode != "incremental" {
		t.Errorf("second commit: version %d warnings %d/%d sync mode %q", m2.Version, m2.Warnings, m2.CommitWarnings, m2.SyncMode)
	}
}

func TestOneWriterAtATime(t *testing.T) {
	w := openTestWarehouse(t)
	a := mustTable(t, w, "kv")
	b := mustTable(t, w, "kv")
	tx, err := a.BeginTx(ctx, warehouse.Replace, kvSchema)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, batchOf(t, kvSchema, [][]any{{1, "a", 1}})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.BeginTx(ctx, warehouse.Merge, kvSchema); err == nil || !strings.Contains(err.Error(), "another sync is writing it") {
		t.Fatalf("second Begin: %v, want a lock error", err)
	}
	// Opening the table meanwhile must not take the writer's files for
	// strays.
	c := mustTable(t, w, "kv")
	if _, err := tx.Commit(ctx, records.Position{}); err != nil {
		t.Fatal(err)
	}
	if c.Manifest().Version != 0 {
		t.Errorf("a Table's manifest changed without a commit through it")
	}
	checkTable(t, mustTable(t, w, "kv"), [][]any{{1, "a", 1}})
	tx2, err := b.BeginTx(ctx, warehouse.Merge, kvSchema)
	if err != nil {
		t.Fatalf("Begin after the commit: %v", err)
	}
	tx2.Abort(ctx)
}

func TestOpenRemovesStrays(t *testing.T) {
	withFsync(t)
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "kv")
	m := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, [][]any{{1, "a", 1}})
	strays := []string{
		filepath.Join(tb.Dir(), "2-b0-deadbeef.parquet"),
		filepath.Join(tb.Dir(), metaDir, tmpManifestPrefix+"123"),
		filepath.Join(tb.Dir(), metaDir, spillPrefix+"2-abcd", "p0-0.parquet"),
	}
	for _, p := range strays {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reopened := mustTable(t, w, "kv")
	for _, p := range strays {
		if fileExists(p) {
			t.Errorf("%s survived reopening", p)
		}
	}
	if fileExists(filepath.Join(tb.Dir(), metaDir, spillPrefix+"2-abcd")) {
		t.Error("the spill directory survived reopening")
	}
	if diff := cmp.Diff(m, reopened.Manifest()); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
	checkTable(t, reopened, [][]any{{1, "a", 1}})
}

func TestDropAndRename(t *testing.T) {
	withFsync(t)
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "kv")
	commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, [][]any{{1, "a", 1}})
	if err := tb.Rename("kv2"); err != nil {
		t.Fatal(err)
	}
	checkTable(t, mustTable(t, w, "kv2"), [][]any{{1, "a", 1}})
	if fileExists(filepath.Join(w.Root(), "kv")) {
		t.Error("the old directory is still there")
	}
	if err := w.Drop("kv2"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(w.Root())
	if len(entries) != 0 {
		t.Errorf("the warehouse holds %v after the drop", entries)
	}
	if err := w.Drop("never"); err != nil {
		t.Errorf("dropping a missing table: %v", err)
	}
	// Looking at a table creates nothing.
	ghost := mustTable(t, w, "ghost")
	if ghost.Manifest().Version != 0 || fileExists(ghost.Dir()) {
		t.Errorf("opening a missing table: version %d, directory created: %v", ghost.Manifest().Version, fileExists(ghost.Dir()))
	}
	if err := ghost.Scan(ctx, func(*records.Batch) error { t.Error("a missing table has rows"); return nil }); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", ".hidden"} {
		if _, err := w.OpenTable(bad); err == nil {
			t.Errorf("table name %q accepted", bad)
		}
	}
}

func TestRejectedSchemas(t *testing.T) {
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "x")
	cases := map[string]*records.Schema{
		"reserved column": {Columns: []records.Column{col(SyncedAtColumn, tInt64)}},
		"duplicate":       {Columns: []records.Column{col("a", tInt64), col("a", tInt64)}},
		"unknown key":     {Columns: []records.Column{col("a", tInt64)}, PrimaryKey: []string{"b"}},
		"bad type":        {Columns: []records.Column{col("a", records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalDecimal, Precision: 30})}},
		"no columns":      {},
	}
	for name, s := range cases {
		if _, err := tb.BeginTx(ctx, warehouse.Replace, s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := tb.BeginTx(ctx, warehouse.Merge, &records.Schema{Columns: []records.Column{col("a", tInt64)}}); err == nil || !strings.Contains(err.Error(), "primary key") {
		t.Errorf("merge without a key: %v", err)
	}
}

// Batches large enough for the parallel column writers, several row groups
// and buckets at the default row group size, read back value for value.
func TestLargeTablesRoundTrip(t *testing.T) {
	w := openTestWarehouse(t)
	w.lim.bucketRows = 8000
	w.lim.rowGroupRows = 4096
	tb := mustTable(t, w, "orders")
	rng := rand.New(rand.NewPCG(5, 6))
	want := model{}
	tx, err := tb.BeginTx(ctx, warehouse.Replace, benchSchema, WithExpectedRows(30_000))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := recordstest.WideBatch(rng, int64(i*10_000), 10_000)
		for _, r := range rowsOf(b) {
			want[r[0].(int)] = r
		}
		if err := tx.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	m, err := tx.commitManifest(ctx, records.Position{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Buckets != 4 {
		t.Errorf("%d buckets, want 4", m.Buckets)
	}
	checkTable(t, tb, want.rows())

	// 5,000 updates and 5,000 inserts, some keys twice.
	b := recordstest.WideBatch(rng, 0, 10_000)
	for i := range b.N {
		if i%2 == 0 {
			b.Cols[0].I64[i] = rng.Int64N(30_000)
		} else {
			b.Cols[0].I64[i] = 30_000 + rng.Int64N(5_000)
		}
	}
	for _, r := range rowsOf(b) {
		want[r[0].(int)] = r
	}
	tx, err = tb.BeginTx(ctx, warehouse.Merge, benchSchema)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx, records.Position{}); err != nil {
		t.Fatal(err)
	}
	checkTable(t, tb, want.rows())
	checkBuckets(t, tb)
}

// A table that outgrows its buckets gets more, and keeps one row per key.
func TestMergeGrowsBuckets(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	tb := mustTable(t, w, "kv")
	want := model{}
	seen := map[int]bool{}
	next := 0
	for round := range 12 {
		var rows [][]any
		for range 15 {
			r := []any{next, fmt.Sprint(round), round}
			rows = append(rows, r)
			want[next] = r
			next++
		}
		rows = append(rows, []any{round, "updated", round}) // and an update
		want[round] = rows[len(rows)-1]
		m := commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, rows)
		seen[m.Buckets] = true
		checkTable(t, tb, want.rows())
		checkBuckets(t, tb)
	}
	if len(seen) < 2 {
		t.Errorf("bucket counts over the merges: %v, want the table to grow them", seen)
	}
}

// A Replace without a size hint writes one bucket; the first merge spreads
// the table into as many as its size calls for.
func TestMergeAfterUnhintedReplaceSpreadsBuckets(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	tb := mustTable(t, w, "kv")
	want := model{}
	var rows [][]any
	for id := range 200 {
		r := []any{id, "replaced", 0}
		rows = append(rows, r)
		want[id] = r
	}
	if m := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, rows); m.Buckets != 1 {
		t.Fatalf("%d buckets, want 1", m.Buckets)
	}
	m := commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, [][]any{{7, "merged", 1}, {700, "merged", 1}})
	want[7] = []any{7, "merged", 1}
	want[700] = []any{700, "merged", 1}
	if m.Buckets != 32 {
		t.Errorf("%d buckets after the merge, want 32", m.Buckets)
	}
	checkTable(t, tb, want.rows())
	checkBuckets(t, tb)
}
