package parquet

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pq "github.com/parquet-go/parquet-go"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// These tests read a table as a user's query engine does:
// read_parquet('<table>/*.parquet'), with an independent Parquet reader,
// knowing nothing of the manifest.

// globIDs reads the first column (an INT64 key) of every file that
// <dir>/*.parquet matches. A file that the glob listed but that is gone
// when opened gives an error wrapping os.ErrNotExist; any other error is a
// file that is not a complete Parquet file.
func globIDs(dir string) ([]int64, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, p := range paths {
		got, err := fileIDs(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(p), err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

func fileIDs(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		return nil, err
	}
	r := pq.NewReader(pf)
	defer r.Close()
	var ids []int64
	rows := make([]pq.Row, 64)
	for {
		n, err := r.ReadRows(rows)
		for _, row := range rows[:n] {
			ids = append(ids, row[0].Int64())
		}
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// wholeKeys reports whether ids are 0..n-1, each once: the one version of
// a table of n keys.
func wholeKeys(ids []int64, n int) bool {
	if len(ids) != n {
		return false
	}
	s := slices.Clone(ids)
	slices.Sort(s)
	for i, id := range s {
		if id != int64(i) {
			return false
		}
	}
	return true
}

func kvRows(ids []int, tag string, n int) [][]any {
	rows := make([][]any, len(ids))
	for i, id := range ids {
		rows[i] = []any{id, tag, n}
	}
	return rows
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestGlobReaderSeesOneVersion reads the table by glob in a loop while
// full refreshes and merges commit into it. Every file a reader lists is
// a complete Parquet file (it may be gone by the time it is opened only
// if a commit published meanwhile); a read that no commit's publish step
// overlapped sees exactly one version: every key once.
func TestGlobReaderSeesOneVersion(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	const keys = 100
	tb := mustTable(t, w, "kv")
	commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(keys), "v0", 0), WithExpectedRows(keys))

	// publishing is odd from the moment a commit's manifest lands until
	// its replaced files are removed.
	var publishing atomic.Int64
	var longest atomic.Int64
	var started time.Time
	w.hook = func(stage string) error {
		switch stage {
		case stageAfterManifest:
			publishing.Add(1)
			started = time.Now()
		case stageAfterCleanup:
			longest.Store(max(longest.Load(), int64(time.Since(started))))
			publishing.Add(1)
		}
		return nil
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var idle, overlapped, torn, gone atomic.Int64
	for range 1 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				before := publishing.Load()
				ids, err := globIDs(tb.Dir())
				quiet := before%2 == 0 && publishing.Load() == before
				switch {
				case errors.Is(err, os.ErrNotExist) && !quiet:
					overlapped.Add(1)
					gone.Add(1)
				case err != nil:
					t.Errorf("a glob reader failed (quiet %v): %v", quiet, err)
					return
				case quiet:
					idle.Add(1)
					if !wholeKeys(ids, keys) {
						t.Errorf("with no commit publishing, a glob read %d rows, not the %d keys once each", len(ids), keys)
						return
					}
				default:
					overlapped.Add(1)
					if !wholeKeys(ids, keys) {
						torn.Add(1)
					}
				}
			}
		})
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for v := 1; v <= 16 && !t.Failed(); v++ {
		tag := fmt.Sprintf("v%d", v)
		switch v % 4 {
		case 0:
			commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(keys), tag, v), WithExpectedRows(keys))
		case 1:
			commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(keys), tag, v)) // sized by the previous version
		case 2:
			commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, kvRows(seq(keys), tag, v)) // every key: every file rewritten
		case 3:
			some := rng.Perm(keys)[:keys/20]
			commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, kvRows(some, tag, v))
		}
		time.Sleep(2 * time.Millisecond) // let the readers see the version
	}
	close(stop)
	wg.Wait()
	if idle.Load() == 0 {
		t.Error("no glob read ran between commits: the test checked nothing")
	}
	t.Logf("glob reads: %d between commits, %d overlapping a publish step (%d of them torn, %d hit a removed file); longest publish step %v",
		idle.Load(), overlapped.Load(), torn.Load(), gone.Load(), time.Duration(longest.Load()))
	if files := dataFiles(t, tb.Dir()); !slices.Equal(files, manifestFiles(tb.Manifest())) {
		t.Errorf("the table directory holds %v, the manifest lists %v", files, manifestFiles(tb.Manifest()))
	}
}

// TestUncommittedFilesAreInvisible checks that while a transaction writes,
// and after it is abandoned, the glob sees the committed version only.
func TestUncommittedFilesAreInvisible(t *testing.T) {
	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		t.Run(mode.String(), func(t *testing.T) {
			w := openTestWarehouse(t)
			tinyLimits(w)
			tb := mustTable(t, w, "kv")
			m1 := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(40), "v1", 1), WithExpectedRows(40))
			tx, err := tb.BeginTx(ctx, mode, kvSchema)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if err := tx.Write(ctx, batchOf(t, kvSchema, kvRows(seq(50), "v2", 2))); err != nil {
					t.Fatal(err)
				}
			}
			if files := dataFiles(t, tb.Dir()); !slices.Equal(files, manifestFiles(m1)) {
				t.Errorf("while the transaction writes, the glob sees %v; the committed version is %v", files, manifestFiles(m1))
			}
			if ids, err := globIDs(tb.Dir()); err != nil || !wholeKeys(ids, 40) {
				t.Errorf("while the transaction writes, a glob read %d rows (%v), want the 40 committed", len(ids), err)
			}
			staged, _ := os.ReadDir(filepath.Join(tb.Dir(), metaDir, stagedDir))
			if len(staged) == 0 && mode != warehouse.Merge { // a merge writes at Commit
				t.Errorf("nothing in %s/%s: where did the transaction write?", metaDir, stagedDir)
			}
			tx.Abort(ctx)
			if files := dataFiles(t, tb.Dir()); !slices.Equal(files, manifestFiles(m1)) {
				t.Errorf("after Abort the glob sees %v, want %v", files, manifestFiles(m1))
			}
		})
	}
}

// TestBeginCleansLeftovers puts what crashed commits leave into a table
// and checks that the next Begin (and open) removes each of them, completes
// a landed commit whose files were still staged, and keeps every file the
// manifest lists.
func TestBeginCleansLeftovers(t *testing.T) {
	cases := []struct {
		name string
		// leave changes the committed table as a crash would; it returns
		// the paths that must be gone afterwards.
		leave func(t *testing.T, tb *Table, m *Manifest) []string
	}{
		{"a partial file of an uncommitted transaction, staged", func(t *testing.T, tb *Table, m *Manifest) []string {
			return []string{writeJunk(t, tb.Dir(), metaDir, stagedDir, "9-b0-0123456789ab.parquet")}
		}},
		{"a data file no manifest lists, in the table directory (older sluice)", func(t *testing.T, tb *Table, m *Manifest) []string {
			return []string{writeJunk(t, tb.Dir(), "9-b0-0123456789ab.parquet")}
		}},
		{"a temporary manifest and a spill directory", func(t *testing.T, tb *Table, m *Manifest) []string {
			return []string{writeJunk(t, tb.Dir(), metaDir, tmpManifestPrefix+"42"), writeJunk(t, tb.Dir(), metaDir, spillPrefix+"9-abcd", "p0-0.parquet")}
		}},
		{"a landed commit whose new file is still staged", func(t *testing.T, tb *Table, m *Manifest) []string {
			name := m.Files[len(m.Files)-1].Name
			if err := os.Rename(filepath.Join(tb.Dir(), name), filepath.Join(tb.Dir(), metaDir, stagedDir, name)); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"a staged copy of a file already in place", func(t *testing.T, tb *Table, m *Manifest) []string {
			return []string{writeJunk(t, tb.Dir(), metaDir, stagedDir, m.Files[0].Name)}
		}},
	}
	for _, tc := range cases {
		for _, how := range []string{"Begin", "open"} {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				w := openTestWarehouse(t)
				tinyLimits(w)
				tb := mustTable(t, w, "kv")
				m := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{}, kvRows(seq(40), "v1", 1), WithExpectedRows(40))
				os.MkdirAll(filepath.Join(tb.Dir(), metaDir, stagedDir), 0o755)
				gone := tc.leave(t, tb, m)
				if how == "open" {
					tb = mustTable(t, w, "kv")
				} else {
					tx, err := tb.BeginTx(ctx, warehouse.Merge, kvSchema)
					if err != nil {
						t.Fatalf("Begin: %v", err)
					}
					tx.Abort(ctx)
				}
				for _, p := range gone {
					if fileExists(p) {
						t.Errorf("%s survived", strings.TrimPrefix(p, tb.Dir()))
					}
				}
				if files := dataFiles(t, tb.Dir()); !slices.Equal(files, manifestFiles(m)) {
					t.Errorf("the table directory holds %v, the manifest lists %v", files, manifestFiles(m))
				}
				if err := tb.Damaged(); err != nil {
					t.Errorf("Damaged: %v", err)
				}
				if ids, err := globIDs(tb.Dir()); err != nil || !wholeKeys(ids, 40) {
					t.Errorf("a glob read %d rows (%v), want the 40 committed", len(ids), err)
				}
				if entries, _ := os.ReadDir(filepath.Join(tb.Dir(), metaDir)); len(entries) != 2 {
					t.Errorf("_sluice holds %v, want the manifest and the lock", entries)
				}
			})
		}
	}
}

func writeJunk(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(parts...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("PAR1 partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplaceRepairsDamagedTable damages a table as a user or a disk
// might, and checks that it still opens, that a Merge or Append refuses it
// saying to resync, and that a Replace (a resync) starts it anew without
// the old files: afterwards the table is whole and holds the new rows
// only, in the manifest and to a glob.
func TestReplaceRepairsDamagedTable(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(t *testing.T, tb *Table, m *Manifest)
		message string
	}{
		{"a data file removed", func(t *testing.T, tb *Table, m *Manifest) {
			os.Remove(filepath.Join(tb.Dir(), m.Files[1].Name))
		}, "is missing"},
		{"every data file removed", func(t *testing.T, tb *Table, m *Manifest) {
			for _, f := range m.Files {
				os.Remove(filepath.Join(tb.Dir(), f.Name))
			}
		}, "is missing"},
		{"the manifest truncated", func(t *testing.T, tb *Table, m *Manifest) {
			os.WriteFile(filepath.Join(tb.Dir(), metaDir, manifestName), []byte(`{"format": 1, "vers`), 0o644)
		}, "reading the table manifest"},
		{"the manifest truncated and a data file removed", func(t *testing.T, tb *Table, m *Manifest) {
			os.WriteFile(filepath.Join(tb.Dir(), metaDir, manifestName), nil, 0o644)
			os.Remove(filepath.Join(tb.Dir(), m.Files[0].Name))
		}, "reading the table manifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := openTestWarehouse(t)
			tinyLimits(w)
			tb := mustTable(t, w, "kv")
			m := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{Cursor: "old"}, kvRows(seq(40), "v1", 1), WithExpectedRows(40))
			tc.damage(t, tb, m)

			tb, err := w.OpenTable("kv")
			if err != nil {
				t.Fatalf("opening the damaged table: %v", err)
			}
			if err := tb.Damaged(); err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Damaged() = %v, want it to say %q", err, tc.message)
			}
			for _, mode := range []warehouse.Mode{warehouse.Merge, warehouse.Append} {
				_, err := tb.BeginTx(ctx, mode, kvSchema)
				if err == nil || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "resync") || !errors.Is(err, warehouse.ErrDamaged) {
					t.Errorf("Begin(%s) on the damaged table: %v, want it to say %q and to resync", mode, err, tc.message)
				}
			}
			if _, err := tb.BeginHistoryTx(ctx, historyTestSchema(t), time.Time{}); err == nil {
				t.Error("a history transaction that closes nothing began on the damaged table")
			}

			want := kvRows([]int{5, 6, 7}, "v2", 2)
			m2 := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{Cursor: "new"}, want)
			if m2.Version <= m.Version {
				t.Errorf("the repaired table's version is %d, want above %d", m2.Version, m.Version)
			}
			for _, reopened := range []*Table{tb, mustTable(t, w, "kv")} {
				if err := reopened.Damaged(); err != nil {
					t.Errorf("after the Replace: %v", err)
				}
				checkTable(t, reopened, want)
				if files := dataFiles(t, reopened.Dir()); !slices.Equal(files, manifestFiles(m2)) {
					t.Errorf("the table directory holds %v, the manifest lists %v", files, manifestFiles(m2))
				}
			}
			if ids, err := globIDs(tb.Dir()); err != nil || !slices.Equal(sorted(ids), []int64{5, 6, 7}) {
				t.Errorf("a glob reads %v (%v), want [5 6 7]", ids, err)
			}
			// And the table takes merges again.
			commitRows(t, tb, warehouse.Merge, kvSchema, records.Position{}, kvRows([]int{1}, "v3", 3))
		})
	}
}

func sorted(s []int64) []int64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// historyTestSchema is a history table's schema keyed by id.
func historyTestSchema(t *testing.T) *records.Schema {
	t.Helper()
	return &records.Schema{
		Columns: []records.Column{
			col("id", tInt64), col("name", tString),
			col(HistoryOpColumn, tString), col(ValidFromColumn, tTSTZ), col(ValidToColumn, tTSTZ),
		},
		PrimaryKey: []string{"id"},
	}
}

// TestHistoryResyncRepairsDamagedTable: the resync of a cdc table closes
// every current version of its history table; on a damaged history table
// it keeps the files that survive (their current versions closed) and
// drops those that are gone.
func TestHistoryResyncRepairsDamagedTable(t *testing.T) {
	w := openTestWarehouse(t)
	tinyLimits(w)
	tb := mustTable(t, w, "kv_cdc")
	s := historyTestSchema(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	var rows [][]any
	for id := range 40 {
		rows = append(rows, []any{id, "a", "I", int(t0.UnixMicro()), nil})
	}
	tx, err := tb.BeginHistoryTx(ctx, s, time.Time{}, WithExpectedRows(40))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, batchOf(t, s, rows)); err != nil {
		t.Fatal(err)
	}
	m, err := tx.commitManifest(ctx, records.Position{})
	if err != nil {
		t.Fatal(err)
	}
	lost := m.Files[0]
	os.Remove(filepath.Join(tb.Dir(), lost.Name))
	tb = mustTable(t, w, "kv_cdc")
	if tb.Damaged() == nil {
		t.Fatal("the history table with a missing file is not damaged")
	}

	tx, err = tb.BeginHistoryTx(ctx, s, t1)
	if err != nil {
		t.Fatalf("the resync's history transaction: %v", err)
	}
	if err := tx.Write(ctx, batchOf(t, s, [][]any{{7, "b", "I", int(t1.UnixMicro()), nil}})); err != nil {
		t.Fatal(err)
	}
	m2, err := tx.commitManifest(ctx, records.Position{})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Damaged() != nil || mustTable(t, w, "kv_cdc").Damaged() != nil {
		t.Errorf("still damaged after the resync")
	}
	_, got := scanAll(t, tb)
	var current, closed int
	for _, r := range got {
		switch {
		case r[4] == nil:
			current++
			if r[0] != 7 || r[1] != "b" {
				t.Errorf("current version %v, want only id 7's new one", r)
			}
		case r[4] == int(t1.UnixMicro()):
			closed++
		default:
			t.Errorf("version %v closed at %v, want the resync's time", r, r[4])
		}
	}
	if want := 40 - int(lost.Rows); current != 1 || closed != want {
		t.Errorf("%d current and %d closed versions, want 1 and %d (the versions of the lost file are gone)", current, closed, want)
	}
	if m2.Rows != int64(len(got)) {
		t.Errorf("the manifest counts %d rows, the table holds %d", m2.Rows, len(got))
	}
	if diff := cmp.Diff(manifestFiles(m2), dataFiles(t, tb.Dir())); diff != "" {
		t.Errorf("files (-manifest +directory):\n%s", diff)
	}
}

// TestHistoryWithUnreadableManifestIsNotStartedAnew: a history table
// whose manifest is unreadable holds versions the source cannot give back,
// so even a resync's history transaction refuses it, saying what to do.
func TestHistoryWithUnreadableManifestIsNotStartedAnew(t *testing.T) {
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "kv_cdc")
	s := historyTestSchema(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tx, err := tb.BeginHistoryTx(ctx, s, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, batchOf(t, s, [][]any{{1, "a", "I", int(at.UnixMicro()), nil}})); err != nil {
		t.Fatal(err)
	}
	m, err := tx.commitManifest(ctx, records.Position{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tb.Dir(), metaDir, manifestName), []byte("{"), 0o644)
	tb = mustTable(t, w, "kv_cdc")
	if _, err := tb.BeginHistoryTx(ctx, s, at.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "remove its directory") {
		t.Errorf("BeginHistory on a history table with an unreadable manifest: %v, want a refusal saying what to do", err)
	}
	if files := dataFiles(t, tb.Dir()); !slices.Equal(files, manifestFiles(m)) {
		t.Errorf("the refused resync left %v, want the files untouched: %v", files, manifestFiles(m))
	}
}
