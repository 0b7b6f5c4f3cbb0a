package iceberg

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lockTable takes the cross-process writer lock of the table called name
// (one writer per table across processes, warehouse doc "Tables and
// transactions"); unlock releases it. Begin takes it and Commit/Abort
// release it; Maintain takes it around its commits.
//
// The lock lives where the catalog lives, so that every process sharing
// the catalog sees it:
//
//   - SQLite catalog: an exclusive flock(2) on
//     <catalog file>.locks/<namespace>.<table>.lock (names escaped, see
//     lockFileName). The kernel releases it when the process dies, so a
//     killed writer never leaves a table locked. The lock files stay (an
//     empty file per table); removing one could let two writers lock two
//     different files of the same name.
//   - PostgreSQL catalog: a session advisory lock, pg_try_advisory_lock on
//     a 64-bit hash of the catalog name, namespace and table, in a session
//     (connection) the Warehouse keeps while it holds any lock (see
//     pgLocks). The server releases it when the connection ends, so again
//     a dead writer leaves nothing behind.
//
// The lock keeps writers from wasting work on commits that would lose;
// it is not what makes commits safe: the catalog's compare-and-swap on the
// table's metadata location refuses a commit from a stale version even
// when a lock was lost (a PostgreSQL session that broke).
//
// While another process writes the table, lockTable waits, polling every
// 10 ms to 500 ms (exponential backoff), until the lock is free or ctx
// ends; it then returns ctx's error, saying which table it waited for. The
// lock is not reentrant: a second lockTable of the same table waits for
// the first unlock, also within one process and one Warehouse (a flock
// is per open file, which each call opens; advisory locks, reentrant in a
// session, are counted by pgLocks). unlock is idempotent.
func (w *Warehouse) lockTable(ctx context.Context, name string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if w.catalog != nil && w.catalog.kind == postgresCatalog {
		return w.advisoryLock(ctx, name)
	}
	return w.flockTable(ctx, name)
}

// waitLock calls try until it takes the lock or fails, backing off between
// attempts, until ctx ends.
func waitLock(ctx context.Context, what string, try func() (bool, error)) error {
	delay := 10 * time.Millisecond
	for {
		ok, err := try()
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("iceberg table %s: waiting for its writer lock, which another writer (process) holds: %w", what, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func (w *Warehouse) flockTable(ctx context.Context, name string) (func(), error) {
	dir := w.lockDir
	if dir == "" {
		return nil, errors.New("iceberg warehouse: no lock directory")
	}
	what := w.ns + "." + name
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("iceberg table %s: writer lock: %w", what, err)
	}
	path := filepath.Join(dir, lockFileName(w.ns, name))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("iceberg table %s: writer lock: %w", what, err)
	}
	err = waitLock(ctx, what, func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
			return false, nil
		default:
			return false, fmt.Errorf("iceberg table %s: writer lock %s: %w", what, path, err)
		}
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	// Closing the file releases the lock.
	return func() { once.Do(func() { f.Close() }) }, nil
}

// lockFileName is <namespace>.<table>.lock with both names escaped so that
// any identifier makes a valid, distinct file name: bytes other than
// ASCII letters, digits, '_' and '-' become %XX (the '.' separator
// included). A name too long for a file system (255 bytes) is cut and
// followed by a hash of the whole.
func lockFileName(ns, table string) string {
	esc := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	n := esc(ns) + "." + esc(table)
	if len(n) > 200 {
		sum := sha256.Sum256([]byte(ns + "\x00" + table))
		n = n[:150] + "~" + hex.EncodeToString(sum[:16])
	}
	return n + ".lock"
}

// advisoryKey is the advisory lock key of a table: the first 8 bytes of
// SHA-256 over catalog, namespace and table, NUL-separated.
func advisoryKey(catalog, ns, table string) int64 {
	sum := sha256.Sum256([]byte(catalog + "\x00" + ns + "\x00" + table))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// pgLocks are the advisory locks a Warehouse holds in a PostgreSQL
// catalog, all in one session: a CDC commit that spans a hundred tables
// takes a hundred locks, not a hundred connections. Advisory locks are
// reentrant within a session, so held keeps two lockTable calls of this
// Warehouse from both taking the same table.
type pgLocks struct {
	mu   sync.Mutex
	conn *sql.Conn // the session; nil while no lock is held
	held map[int64]bool
}

// lockQueryTimeout bounds one lock or unlock statement. They run under a
// context of their own, not the caller's: a cancelled caller would make
// the driver close the connection, and with it every other table's lock.
const lockQueryTimeout = 30 * time.Second

func (w *Warehouse) advisoryLock(ctx context.Context, name string) (func(), error) {
	what := w.ns + "." + name
	key := advisoryKey(catalogName, w.ns, name)
	l := &w.pgLocks
	err := waitLock(ctx, what, func() (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.held[key] {
			return false, nil
		}
		qctx, cancel := context.WithTimeout(context.Background(), lockQueryTimeout)
		defer cancel()
		if l.conn == nil {
			conn, err := w.db.Conn(qctx)
			if err != nil {
				return false, fmt.Errorf("iceberg table %s: writer lock: connecting to the catalog %s: %w%s", what, w.catalog.name, err, catalogHint(w.catalog, err))
			}
			l.conn, l.held = conn, map[int64]bool{}
		}
		var ok bool
		if err := l.conn.QueryRowContext(qctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			l.dropConn()
			return false, fmt.Errorf("iceberg table %s: writer lock in the catalog %s: %w%s", what, w.catalog.name, err, catalogHint(w.catalog, err))
		}
		if ok {
			l.held[key] = true
		}
		return ok, nil
	})
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { l.unlock(key) }) }, nil
}

// unlock releases key; the session goes back to the pool when it holds
// nothing more. When the unlock fails the connection is discarded, which
// ends the session and so releases its locks anyway.
func (l *pgLocks) unlock(key int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held[key] || l.conn == nil {
		return // the session was lost, and the lock with it
	}
	delete(l.held, key)
	ctx, cancel := context.WithTimeout(context.Background(), lockQueryTimeout)
	defer cancel()
	var ok bool
	if err := l.conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&ok); err != nil || !ok {
		l.dropConn()
		return
	}
	if len(l.held) == 0 {
		_ = l.conn.Close()
		l.conn = nil
	}
}

// dropConn closes the session, releasing every lock it held (the others
// of this Warehouse then hold nothing; the catalog's compare-and-swap
// still refuses a commit from a stale version).
func (l *pgLocks) dropConn() {
	if l.conn == nil {
		return
	}
	// database/sql closes a connection whose Raw returns ErrBadConn.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = l.conn.Close()
	l.conn, l.held = nil, nil
}

// close ends the session at Warehouse.Close.
func (l *pgLocks) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropConn()
}
