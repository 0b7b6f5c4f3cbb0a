package iceberg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestMain runs the crash test's writer when the test binary is started
// as one (SLUICE_ICEBERG_CRASH_DIR set): it appends forever until killed.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SLUICE_ICEBERG_CRASH_MODE"); mode != "" {
		if err := stageCrashWriter(mode); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	if dir := os.Getenv("SLUICE_ICEBERG_CRASH_DIR"); dir != "" {
		if err := crashWriter(dir); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashWriter appends 3 rows per commit, with the table's row count after
// the commit as the position's cursor, until it is killed.
func crashWriter(dir string) error {
	ctx := context.Background()
	w, err := Open(ctx, Options{Location: dir})
	if err != nil {
		return err
	}
	tb, err := w.Table(ctx, "types")
	if err != nil {
		return err
	}
	pos, _ := tb.Position()
	total, _ := strconv.Atoi(pos.Cursor)
	for {
		tx, err := tb.Begin(ctx, warehouse.Append, typesSchema, "crash")
		if err != nil {
			return err
		}
		if err := tx.Write(ctx, typesBatch()); err != nil {
			return err
		}
		total += 3
		if _, err := tx.Commit(ctx, records.Position{Cursor: strconv.Itoa(total)}); err != nil {
			return err
		}
	}
}

// TestKilledWriterKeepsPositionWithRows kills a writer process at varying
// moments of its commits: every opening afterwards finds the position
// that matches the rows (DESIGN invariant 1), and the next writer goes on.
func TestKilledWriterKeepsPositionWithRows(t *testing.T) {
	dir := t.TempDir()
	kills := 0
	for i := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SLUICE_ICEBERG_CRASH_DIR="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+i*137) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 2 {
			t.Fatalf("the writer ended by itself: %v", err)
		}
		kills++
		tb := openTable(t, openTest(t, dir), "types")
		pos, ok := tb.Position()
		if !ok {
			continue // killed before its first commit
		}
		n := len(scan(t, tb))
		if pos.Cursor != strconv.Itoa(n) {
			t.Fatalf("after kill %d the position says %s rows, the table holds %d", i, pos.Cursor, n)
		}
	}
	tb := openTable(t, openTest(t, dir), "types")
	pos, _ := tb.Position()
	t.Logf("%d kills, %s rows committed", kills, pos.Cursor)
	if pos.Cursor == "" {
		t.Error("no commit landed between kills: the test checked nothing")
	}
}

func TestCancelledCommit(t *testing.T) {
	dir := t.TempDir()
	tb := openTable(t, openTest(t, dir), "types")
	commit(t, tb, warehouse.Replace, typesSchema, records.Position{Cursor: "one"}, typesBatch())
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := tb.Begin(ctx, warehouse.Append, typesSchema, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, typesBatch()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := tx.Commit(ctx, records.Position{Cursor: "two"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a cancelled context = %v, want context.Canceled", err)
	}
	if err := tx.Abort(context.Background()); err != nil {
		t.Errorf("Abort after a failed commit: %v", err)
	}
	reopened := openTable(t, openTest(t, dir), "types")
	if pos, _ := reopened.Position(); pos.Cursor != "one" || len(scan(t, reopened)) != 3 {
		t.Errorf("after a cancelled commit: position %+v, %d rows; want cursor one, 3 rows", pos, len(scan(t, reopened)))
	}
}

// The stage crash tests: a child process commits crashCommits
// transactions of a mode and kills itself (SIGKILL) at one stage of the
// last one (stageHook); the parent then checks that the table is what
// the commits up to its position made, with no duplicate key, and that
// the next writer goes on.

const crashCommits = 3

// stageCrashWriter is the child: SLUICE_ICEBERG_CRASH_MODE commits into
// the table of SLUICE_ICEBERG_CRASH_AT (dir), killed at stage
// SLUICE_ICEBERG_CRASH_STAGE of commit crashCommits.
func stageCrashWriter(mode string) error {
	ctx := context.Background()
	w, err := Open(ctx, Options{Location: os.Getenv("SLUICE_ICEBERG_CRASH_AT")})
	if err != nil {
		return err
	}
	tb, err := w.Table(ctx, "t")
	if err != nil {
		return err
	}
	want := os.Getenv("SLUICE_ICEBERG_CRASH_STAGE")
	for i := 1; i <= crashCommits; i++ {
		if i == crashCommits {
			stageHook = func(s string) {
				if s == want {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {}
				}
			}
		}
		if err := crashCommit(ctx, tb.(*Table), mode, i); err != nil {
			return err
		}
	}
	return errors.New("the stage " + want + " was never reached")
}

// crashCommit makes commit i of mode, its position's cursor i.
func crashCommit(ctx context.Context, tb *Table, mode string, i int) error {
	pos := records.Position{Cursor: strconv.Itoa(i)}
	var tx warehouse.Tx
	var err error
	var b *records.Batch
	s := kvSchema(tInt64, false)
	switch mode {
	case "replace":
		tx, err = tb.Begin(ctx, warehouse.Replace, s, "crash")
		b = kvBatch(s, crashRows(mode, i)...)
	case "append":
		tx, err = tb.Begin(ctx, warehouse.Append, s, "crash")
		b = kvBatch(s, crashRows(mode, i)...)
	case "merge":
		m := warehouse.Merge
		if i == 1 {
			m = warehouse.Replace
		}
		tx, err = tb.Begin(ctx, m, s, "crash")
		b = kvBatch(s, crashRows(mode, i)...)
	case "history":
		tx, err = tb.BeginHistory(ctx, histSchema, "crash", time.Time{})
		b = histBatch(crashVersions(i)...)
	}
	if err != nil {
		return err
	}
	if err := tx.Write(ctx, b); err != nil {
		tx.Abort(ctx)
		return err
	}
	_, err = tx.Commit(ctx, pos)
	return err
}

// crashRows is commit i's rows.
func crashRows(mode string, i int) []row {
	var rows []row
	switch mode {
	case "replace", "append":
		for j := range 3 {
			rows = append(rows, row{k: strconv.Itoa(i*10 + j), v: str("c" + strconv.Itoa(i))})
		}
	case "merge":
		if i == 1 {
			for k := 1; k <= 20; k++ {
				rows = append(rows, row{k: strconv.Itoa(k), v: str("0")})
			}
			return rows
		}
		for j := range 6 {
			k := (i*7+j*3)%25 + 1
			rows = append(rows, row{k: strconv.Itoa(k), v: str(strconv.Itoa(i*10 + j)), del: j == 0})
		}
		// A key twice in one transaction: the last row wins.
		rows = append(rows, row{k: rows[1].k, v: str("again" + strconv.Itoa(i))})
	}
	return rows
}

func crashVersions(i int) []version {
	vs := []version{
		{k: int64(i%3 + 1), v: "a" + strconv.Itoa(i), op: "U", from: int64(i * 100)},
		{k: int64((i+1)%3 + 1), v: "b" + strconv.Itoa(i), op: "U", from: int64(i*100 + 1)},
		{k: int64(i%3 + 1), v: "c" + strconv.Itoa(i), op: "U", from: int64(i*100 + 2)},
	}
	if i%2 == 0 {
		vs[1].op = "D"
	}
	return vs
}

// crashExpect is the table after commits 1..n of mode, as scanRows or
// scanVersions strings.
func crashExpect(mode string, n int) []string {
	var out []string
	switch mode {
	case "replace", "append", "merge":
		m := map[string]string{}
		for i := 1; i <= n; i++ {
			if mode == "replace" {
				m = map[string]string{}
			}
			for _, r := range crashRows(mode, i) {
				v := *r.v
				if r.del {
					v += " D"
				}
				m[r.k] = r.k + "=" + v
			}
		}
		for _, v := range m {
			out = append(out, v)
		}
	case "history":
		var vs []version
		for i := 1; i <= n; i++ {
			for _, x := range crashVersions(i) {
				for j := range vs {
					if vs[j].k == x.k && vs[j].to == 0 {
						vs[j].to = x.from
					}
				}
				if x.op == "D" {
					x.to = x.from
				}
				vs = append(vs, x)
			}
		}
		for _, x := range vs {
			out = append(out, fmt.Sprint(x))
		}
	}
	sort.Strings(out)
	return out
}

func crashState(t *testing.T, tb *Table, mode string) []string {
	t.Helper()
	if mode != "history" {
		return scanRows(t, tb)
	}
	var out []string
	for _, x := range scanVersions(t, tb) {
		out = append(out, fmt.Sprint(x))
	}
	sort.Strings(out)
	return out
}

func TestKilledAtEveryStage(t *testing.T) {
	stages := map[string][]string{
		"replace": {stageData, stageManifests, stageCatalog},
		"append":  {stageData, stageManifests, stageCatalog},
		"merge":   {stageData, stageDeletes, stageManifests, stageCatalog},
		"history": {stageData, stageDeletes, stageManifests, stageCatalog},
	}
	for _, mode := range []string{"replace", "append", "merge", "history"} {
		for _, st := range stages[mode] {
			t.Run(mode+"/"+st, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "SLUICE_ICEBERG_CRASH_MODE="+mode, "SLUICE_ICEBERG_CRASH_AT="+dir, "SLUICE_ICEBERG_CRASH_STAGE="+st)
				cmd.Stderr = os.Stderr
				err := cmd.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != -1 {
					t.Fatalf("the writer was not killed: %v", err)
				}
				tb := openTable(t, openTest(t, dir), "t")
				pos, ok := tb.Position()
				wantN := crashCommits - 1
				if st == stageCatalog {
					wantN = crashCommits
				}
				if !ok || pos.Cursor != strconv.Itoa(wantN) {
					t.Fatalf("killed at %s: the position is %+v (committed %v), want commit %d", st, pos, ok, wantN)
				}
				check := func(n int) {
					t.Helper()
					got := crashState(t, tb, mode)
					if diff := cmp.Diff(crashExpect(mode, n), got); diff != "" {
						t.Fatalf("after commit %d (-want +got):\n%s", n, diff)
					}
					if mode == "merge" {
						seen := map[string]bool{}
						for _, r := range got {
							k := strings.SplitN(r, "=", 2)[0]
							if seen[k] {
								t.Fatalf("key %s twice", k)
							}
							seen[k] = true
						}
					}
				}
				check(wantN)
				// The next writer goes on.
				if err := crashCommit(context.Background(), tb, mode, wantN+1); err != nil {
					t.Fatal(err)
				}
				tb = openTable(t, openTest(t, dir), "t")
				check(wantN + 1)
				if got := readIcebird(t, tb); len(got) != len(crashExpect(mode, wantN+1)) {
					t.Errorf("icebird reads %d rows, want %d", len(got), len(crashExpect(mode, wantN+1)))
				}
			})
		}
	}
}
