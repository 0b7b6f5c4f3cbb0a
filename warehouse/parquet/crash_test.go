package parquet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// The crash tests run a commit in a child process (this test binary) that
// kills itself with SIGKILL at a stage of the commit, as a power cut or an
// OOM kill would: no deferred cleanup runs, the lock dies with the process.
const (
	envCrashDir   = "SLUICE_TEST_CRASH_DIR"
	envCrashStage = "SLUICE_TEST_CRASH_STAGE"
	envCrashMode  = "SLUICE_TEST_CRASH_MODE"
)

// stageWrite kills the child after its rows are written, before Commit.
const stageWrite = "write"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		crashChild(dir, os.Getenv(envCrashStage), os.Getenv(envCrashMode))
	}
	// Tests of what a table holds skip the fsyncs (withFsync turns them
	// back on): hundreds of commits on a busy disk would take minutes.
	durable = false
	os.Exit(m.Run())
}

// withFsync turns the fsyncs on for a test of durability or recovery.
func withFsync(t testing.TB) {
	durable = true
	t.Cleanup(func() { durable = false })
}

func crashChild(dir, stage, mode string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	die := func() {
		p, _ := os.FindProcess(os.Getpid())
		p.Kill()
		select {}
	}
	w, err := Open(dir)
	if err != nil {
		fail(err)
	}
	tinyLimits(w)
	tb, err := w.OpenTable("kv")
	if err != nil {
		fail(err)
	}
	m, _ := strconv.Atoi(mode)
	tx, err := tb.BeginTx(ctx, warehouse.Mode(m), kvSchema)
	if err != nil {
		fail(err)
	}
	b := records.NewBatch(kvSchema, 0)
	for id := 20; id < 60; id++ {
		b.Cols[0].AppendInt64(int64(id))
		b.Cols[1].AppendString("v2")
		b.Cols[2].AppendInt32(2)
		b.N++
	}
	// Three times: a merge spills (tiny limits) and keeps the last of each
	// key.
	for range 3 {
		if err := tx.Write(ctx, b); err != nil {
			fail(err)
		}
	}
	if stage == stageWrite {
		die()
	}
	w.hook = func(s string) error {
		if s == stage {
			die()
		}
		return nil
	}
	if _, err := tx.Commit(ctx, records.Position{Cursor: "two"}); err != nil {
		fail(err)
	}
	fail(errors.New("the commit finished without reaching stage " + stage))
}

func TestCrashAtEveryStageLosesAndDuplicatesNothing(t *testing.T) {
	withFsync(t)
	v1 := model{}
	for id := range 30 {
		v1[id] = []any{id, "v1", 1}
	}
	v2 := model{}
	for id := 20; id < 60; id++ {
		v2[id] = []any{id, "v2", 2}
	}
	merged := model{}
	for id, r := range v1 {
		merged[id] = r
	}
	for id, r := range v2 {
		merged[id] = r
	}
	after := map[warehouse.Mode][][]any{
		warehouse.Replace: append(v2.rows(), append(v2.rows(), v2.rows()...)...),
		warehouse.Merge:   merged.rows(),
		warehouse.Append:  append(v1.rows(), append(v2.rows(), append(v2.rows(), v2.rows()...)...)...),
	}
	for _, mode := range []warehouse.Mode{warehouse.Replace, warehouse.Merge, warehouse.Append} {
		for _, stage := range []string{stageWrite, stageBeforeManifest, stageAfterManifest, stageAfterPublish, stageAfterCleanup} {
			t.Run(mode.String()+"/"+stage, func(t *testing.T) {
				w := openTestWarehouse(t)
				tinyLimits(w)
				tb := mustTable(t, w, "kv")
				m1 := commitRows(t, tb, warehouse.Replace, kvSchema, records.Position{Cursor: "one"}, v1.rows(), WithExpectedRows(30))

				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), envCrashDir+"="+w.Root(), envCrashStage+"="+stage, envCrashMode+"="+strconv.Itoa(int(mode)))
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != -1 {
					t.Fatalf("the child was not killed: %v\n%s", err, out)
				}

				if mode == warehouse.Merge {
					spills, _ := filepath.Glob(filepath.Join(w.Root(), "kv", metaDir, spillPrefix+"*"))
					if len(spills) != 1 {
						t.Errorf("the merge left %d spill directories, want 1 (it must have spilled)", len(spills))
					}
				}
				// What a glob reader sees before anything recovers the
				// table: never a partial file; the old version until the
				// manifest landed and its files were renamed into place.
				dir := filepath.Join(w.Root(), "kv")
				ids, err := globIDs(dir)
				if err != nil {
					t.Errorf("a glob read after the crash failed: %v", err)
				}
				landed, err := readManifest(dir)
				if err != nil {
					t.Fatal(err)
				}
				switch stage {
				case stageWrite, stageBeforeManifest, stageAfterManifest:
					if files := dataFiles(t, dir); !slices.Equal(files, manifestFiles(m1)) || !wholeKeys(ids, 30) {
						t.Errorf("the glob sees %v (%d rows), want the old version's files %v", files, len(ids), manifestFiles(m1))
					}
				case stageAfterCleanup:
					if files := dataFiles(t, dir); !slices.Equal(files, manifestFiles(landed)) {
						t.Errorf("the glob sees %v, want the new version's files %v", files, manifestFiles(landed))
					}
				}

				reopened := mustTable(t, w, "kv")
				if files := dataFiles(t, dir); !slices.Equal(files, manifestFiles(reopened.Manifest())) {
					t.Errorf("after reopening the glob sees %v, want the manifest's files %v", files, manifestFiles(reopened.Manifest()))
				}
				got := reopened.Manifest()
				if stage == stageWrite || stage == stageBeforeManifest {
					if diff := cmp.Diff(m1, got); diff != "" {
						t.Errorf("the manifest changed (-before +after):\n%s", diff)
					}
					checkTable(t, reopened, v1.rows())
				} else {
					if got.Version != 2 || got.Position.Cursor != "two" {
						t.Errorf("version %d at %q, want 2 at two", got.Version, got.Position.Cursor)
					}
					checkTable(t, reopened, after[mode])
				}
				entries, err := os.ReadDir(filepath.Join(reopened.Dir(), metaDir))
				if err != nil || len(entries) != 2 {
					t.Errorf("_sluice holds %v, want the manifest and the lock", entries)
				}
				// The dead writer's lock is gone: the table takes commits.
				commitRows(t, reopened, warehouse.Merge, kvSchema, records.Position{}, [][]any{{1000, "later", 3}})
			})
		}
	}
}
