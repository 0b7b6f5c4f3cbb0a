package iceberg

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestMain runs the crash test's writer when the test binary is started
// as one (SLUICE_ICEBERG_CRASH_DIR set): it appends forever until killed.
func TestMain(m *testing.M) {
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
