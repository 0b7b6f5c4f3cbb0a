package iceberg

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockCatalogs are the catalogs whose writer locks the tests take: a
// local directory with the default SQLite catalog (flock) and with a
// PostgreSQL catalog (advisory lock).
func lockCatalogs(t *testing.T) []testStore {
	return []testStore{
		{name: "sqlite", opts: Options{Location: t.TempDir()}},
		{name: "postgres", opts: Options{Location: t.TempDir(), CatalogURL: pgCatalogURL(t)}},
	}
}

// TestLockTwoWarehouses: a table's writer lock held through one Warehouse
// makes another wait until it is released, or until its context ends;
// other tables are not held up.
func TestLockTwoWarehouses(t *testing.T) {
	for _, st := range lockCatalogs(t) {
		t.Run(st.name, func(t *testing.T) {
			a, b := st.open(t), st.open(t)
			ctx := context.Background()
			name := "orders.2024 ü"
			unlockA, err := a.lockTable(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = b.lockTable(short, name)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "sluice."+name) || !strings.Contains(err.Error(), "another writer") {
				t.Fatalf("lockTable of a held table = %v, want a deadline error naming the table", err)
			}
			// Within one Warehouse the lock is not reentrant either.
			short, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
			_, err = a.lockTable(short, name)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a second lockTable through the same Warehouse = %v, want a deadline error", err)
			}
			unlockOther, err := b.lockTable(ctx, "orders")
			if err != nil {
				t.Fatalf("lockTable of another table: %v", err)
			}
			unlockOther()

			got := make(chan error, 1)
			go func() {
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				unlock, err := b.lockTable(wait, name)
				if err == nil {
					unlock()
				}
				got <- err
			}()
			select {
			case err := <-got:
				t.Fatalf("lockTable returned (%v) while the lock was held", err)
			case <-time.After(200 * time.Millisecond):
			}
			released := time.Now()
			unlockA()
			unlockA() // idempotent
			if err := <-got; err != nil {
				t.Fatalf("lockTable after the release: %v", err)
			}
			if d := time.Since(released); d > 2*time.Second {
				t.Errorf("lockTable took %v after the release", d)
			}
		})
	}
}

// TestLockHelperProcess is not a test: it is the other process of
// TestLockAcrossProcesses (SLUICE_ICEBERG_LOCK_HELPER holds its Options
// and table as JSON). It takes the lock, says "locked" and holds it until
// its stdin closes or it is killed.
func TestLockHelperProcess(t *testing.T) {
	spec := os.Getenv("SLUICE_ICEBERG_LOCK_HELPER")
	if spec == "" {
		return
	}
	var s struct {
		Opts  Options
		Table string
	}
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	w, err := Open(ctx, s.Opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	unlock, err := w.lockTable(ctx, s.Table)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	unlock()
	os.Exit(0)
}

// TestLockAcrossProcesses: a lock another process holds makes lockTable
// wait; when that process is killed (kill -9) the lock is free.
func TestLockAcrossProcesses(t *testing.T) {
	for _, st := range lockCatalogs(t) {
		t.Run(st.name, func(t *testing.T) {
			w := st.open(t) // creates the catalog before the helper opens it
			spec, _ := json.Marshal(map[string]any{"Opts": st.opts, "Table": "kv"})
			cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SLUICE_ICEBERG_LOCK_HELPER="+string(spec))
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "locked\n" {
				t.Fatalf("the helper said %q, %v", line, err)
			}
			ctx := context.Background()
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = w.lockTable(short, "kv")
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("lockTable while another process holds the lock = %v, want a deadline error", err)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			wait, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			unlock, err := w.lockTable(wait, "kv")
			if err != nil {
				t.Fatalf("lockTable after the holder was killed: %v", err)
			}
			unlock()
		})
	}
}

// TestLockFileName: any two identifiers get distinct, valid file names.
func TestLockFileName(t *testing.T) {
	long := strings.Repeat("ü", 200)
	pairs := [][2][2]string{
		{{"a.b", "c"}, {"a", "b.c"}},
		{{"sluice", "a/b"}, {"sluice", "a%2Fb"}},
		{{"sluice", ".."}, {"sluice", "%2E%2E"}},
		{{"sluice", long + "x"}, {"sluice", long + "y"}},
		{{"sluice", "Orders"}, {"sluice", "orders"}},
	}
	for _, p := range pairs {
		x, y := lockFileName(p[0][0], p[0][1]), lockFileName(p[1][0], p[1][1])
		if x == y {
			t.Errorf("%q and %q both lock %s", p[0], p[1], x)
		}
		for _, n := range []string{x, y} {
			if len(n) > 255 || strings.ContainsAny(n, "/\x00") || n == ".." {
				t.Errorf("lock file name %q is not a valid file name", n)
			}
		}
	}
	if got := lockFileName("sluice", "public_orders"); got != "sluice.public_orders.lock" {
		t.Errorf("lockFileName of plain names = %q", got)
	}
	// Files the lock creates live beside the catalog.
	w := openTest(t, t.TempDir())
	unlock, err := w.lockTable(context.Background(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(filepath.Join(w.dir, "catalog.db.locks", "sluice.a%2Fb.lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

// TestLockManyTablesOneSession: a Warehouse holding the locks of many
// tables of a PostgreSQL catalog uses one connection for them, and frees
// them all when it closes.
func TestLockManyTablesOneSession(t *testing.T) {
	url := pgCatalogURL(t)
	st := testStore{opts: Options{Location: t.TempDir(), CatalogURL: url}}
	w := st.open(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if _, err := w.lockTable(ctx, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var sessions, locks int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT pid), count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&sessions, &locks); err != nil {
		t.Fatal(err)
	}
	if sessions != 1 || locks != 50 {
		t.Errorf("50 locks held in %d sessions as %d advisory locks, want 1 session, 50 locks", sessions, locks)
	}
	w.Close()
	other := st.open(t)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := other.lockTable(short, "t7"); err != nil {
		t.Errorf("lockTable after the holder closed: %v", err)
	}
}
